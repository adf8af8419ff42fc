"""The examples: every manifest is a valid Kubernetes object; the standalone
examples compile with `tollgate check`; the cluster and migration examples
select tollgate as their READMEs say; and the TLS example serves HTTPS to
curl, run exactly as its README shows.

Usage: python3 examples.py PATH_TO_TOLLGATE_BINARY
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from common import FAILURES, ROOT, check, check_json, clean_env, finish, load_all, validate_k8s, warn_on_version_drift

BINARY = sys.argv[1]
EXAMPLES = ROOT / "examples"
# Directories `tollgate run --manifests DIR` serves as they are (their
# EndpointSlices point at local echo backends).
STANDALONE = ["quickstart", "tls"]
TLS_HOST = "tls.example.com"


def manifests(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def objects(path: Path) -> list[dict]:
    return load_all(path.read_text(), str(path.relative_to(ROOT)))


def check_schemas() -> None:
    files = manifests(EXAMPLES)
    check(len(files) >= 8, f"example manifests found: {[str(f) for f in files]}")
    for path in files:
        objs = objects(path)
        check(objs, f"{path}: no objects")
        for obj in objs:
            validate_k8s(obj, str(path.relative_to(ROOT)))


def check_standalone() -> None:
    for name in STANDALONE:
        directory = EXAMPLES / name
        code, report = check_json([BINARY, "check", "--manifests", str(directory)])
        check(code == 0, f"`tollgate check --manifests examples/{name}` exit {code}: {report.get('diagnostics')}")
        check(not report.get("diagnostics"), f"examples/{name}: diagnostics {report.get('diagnostics')}")
        check(report.get("routes"), f"examples/{name}: no routes")
        for route in report.get("routes", []):
            check(route["endpoints"], f"examples/{name}: route {route['host']}{route['path']} has no endpoints")


def check_cluster() -> None:
    """The cluster example's Ingress is tollgate's (its endpoints come from
    the cluster, so none here), and the echo Deployment runs `tollgate echo`
    from the controller's image."""
    directory = EXAMPLES / "cluster"
    code, report = check_json([BINARY, "check", "--manifests", str(directory)])
    check(code == 0, f"`tollgate check --manifests examples/cluster` exit {code}: {report.get('diagnostics')}")
    hosts = {r["host"] for r in report.get("routes", [])}
    check(hosts == {"echo.example.com"}, f"examples/cluster routes {hosts}")
    deployments = [o for p in manifests(directory) for o in objects(p) if o.get("kind") == "Deployment"]
    check(len(deployments) == 1, "examples/cluster: one Deployment")
    for d in deployments:
        c = d["spec"]["template"]["spec"]["containers"][0]
        check(c["image"].startswith("ghcr.io/tollgate-dev/tollgate:"), f"echo image {c['image']}")
        check(c.get("args") == ["echo", "--listen", "0.0.0.0:8080=echo"], f"echo args {c.get('args')}")
        # The same arguments parse with this build.
        p = subprocess.run([BINARY, *c["args"], "--help"], capture_output=True, text=True, timeout=10)
        check(p.returncode == 0, f"`tollgate {' '.join(c['args'])} --help`: {p.stderr}")


def check_migration() -> None:
    """before.yaml belongs to ingress-nginx (tollgate serves none of it);
    after.yaml is tollgate's, and its nginx annotations are understood
    (no diagnostic about them)."""
    directory = EXAMPLES / "migration"
    _, before = check_json([BINARY, "check", "--manifests", str(directory / "before.yaml")])
    check(before.get("routes") == [], f"examples/migration/before.yaml must not be served by tollgate: {before.get('routes')}")
    _, after = check_json([BINARY, "check", "--manifests", str(directory / "after.yaml")])
    hosts = {r["host"] for r in after.get("routes", [])}
    check(hosts == {"shop.example.com", "api.example.com"}, f"examples/migration/after.yaml routes {hosts}")
    for d in after.get("diagnostics", []):
        check(
            not d.get("field", "").startswith("metadata.annotations"),
            f"examples/migration/after.yaml: annotation not understood: {d}",
        )
    b = {o["metadata"]["name"]: o for o in objects(directory / "before.yaml")}
    a = {o["metadata"]["name"]: o for o in objects(directory / "after.yaml")}
    check(set(a) == set(b), "before.yaml and after.yaml hold the same Ingresses")
    used = set()
    for name in a.keys() & b.keys():
        ba = dict(b[name]["metadata"].get("annotations", {}))
        check(ba.pop("kubernetes.io/ingress.class", None) == "nginx", f"before {name}: class annotation nginx")
        check(a[name]["metadata"].get("annotations", {}) == ba, f"after {name}: only the class annotation removed")
        check(a[name]["spec"].pop("ingressClassName", None) == "tollgate", f"after {name}: ingressClassName tollgate")
        check(a[name]["spec"] == b[name]["spec"], f"after {name}: spec otherwise unchanged")
        used |= set(ba)
    for annotation in ("ssl-redirect", "force-ssl-redirect", "backend-protocol", "load-balance"):
        check(f"nginx.ingress.kubernetes.io/{annotation}" in used, f"migration example shows {annotation}")


def free_port() -> int:
    """A free port on 127.0.0.1, below the ephemeral range."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


def spawn(cmd: list[str], log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=clean_env())


def wait_ready(url: str, deadline: float, procs: list[subprocess.Popen]) -> bool:
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            return False
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    return False


def wait_listening(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def curl(*args: str) -> tuple[int, str, str]:
    """curl -sS -i ...: (status, headers, body)."""
    p = subprocess.run(["curl", "-sS", "-i", "--max-time", "10", *args], capture_output=True, text=True, timeout=20)
    if p.returncode != 0:
        return 0, p.stderr, ""
    head, _, body = p.stdout.replace("\r\n", "\n").partition("\n\n")
    status = int(head.split()[1]) if head.startswith("HTTP/") else 0
    return status, head, body


def check_tls_smoke() -> None:
    """Runs the TLS example as its README says: echo backends where the
    EndpointSlices point, tollgate on the manifests, curl with --resolve."""
    directory = EXAMPLES / "tls"
    objs = [o for p in manifests(directory) for o in objects(p)]

    # The committed certificate file is the Secret's, and is marked as an
    # example.
    secrets = [o for o in objs if o.get("kind") == "Secret"]
    check(len(secrets) == 1, "examples/tls: one Secret")
    crt = (directory / "tls.crt").read_text()
    check(secrets and secrets[0]["stringData"]["tls.crt"].strip() == crt.strip(), "examples/tls/tls.crt is the Secret's certificate")
    check("EXAMPLE KEY" in (directory / "secret.yaml").read_text(), "examples/tls/secret.yaml marks its key as an example")

    backends = []
    for o in objs:
        if o.get("kind") == "EndpointSlice":
            service = o["metadata"]["labels"]["kubernetes.io/service-name"]
            for port in o["ports"]:
                for ep in o["endpoints"]:
                    for addr in ep["addresses"]:
                        check(addr == "127.0.0.1", f"examples/tls endpoints are local: {addr}")
                        backends.append((port["port"], service))
    check(backends, "examples/tls: EndpointSlices name backends")

    http, https, admin = free_port(), free_port(), free_port()
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        try:
            for port, _ in backends:
                with socket.socket() as s:
                    # As servers bind (the echo backend too): connections of
                    # an earlier run in TIME_WAIT do not make the port taken.
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    try:
                        s.bind(("127.0.0.1", port))
                    except OSError:
                        check(False, f"port {port} (examples/tls EndpointSlice) is taken on this machine")
                        return
            listen = [a for port, svc in backends for a in ("--listen", f"127.0.0.1:{port}={svc}")]
            procs.append(spawn([BINARY, "echo", *listen], logs / "echo.log"))
            procs.append(
                spawn(
                    [
                        BINARY, "run", "--manifests", str(directory),
                        "--http-addr", f"127.0.0.1:{http}",
                        "--https-addr", f"127.0.0.1:{https}",
                        "--admin-addr", f"127.0.0.1:{admin}",
                        "--https-redirect-port", str(https),
                    ],
                    logs / "tollgate.log",
                )
            )
            deadline = time.monotonic() + 15
            up = wait_ready(f"http://127.0.0.1:{admin}/readyz", deadline, procs) and all(
                wait_listening(port, deadline) for port, _ in backends
            )
            exited = [" ".join(p.args[:2]) for p in procs if p.poll() is not None]
            if not check(up, f"the TLS example did not become ready within 15 s (exited: {exited})"):
                return

            resolve = ["--resolve", f"{TLS_HOST}:{https}:127.0.0.1"]
            url = f"https://{TLS_HOST}:{https}/hello"
            # Trusting the example certificate...
            status, head, body = curl("--cacert", str(directory / "tls.crt"), *resolve, url)
            check(status == 200, f"curl --cacert tls.crt {url}: {status} {head}")
            if status == 200:
                echo = json.loads(body)
                check(echo.get("service") == backends[0][1], f"served by the example's backend: {echo.get('service')}")
                check(echo.get("path") == "/hello", f"path forwarded: {echo.get('path')}")
            # ...and with -k, as the README's first command.
            status, head, _ = curl("-k", *resolve, url)
            check(status == 200, f"curl -k {url}: {status} {head}")
            # Plain HTTP for a host with a certificate: 308 to HTTPS.
            status, head, _ = curl("-H", f"Host: {TLS_HOST}", f"http://127.0.0.1:{http}/hello")
            check(status == 308, f"plain HTTP for {TLS_HOST}: {status}, want 308")
            check(f"location: https://{TLS_HOST}:{https}/hello" in head.lower(), f"redirect location: {head}")
        finally:
            for p in procs:
                p.kill()
            for p in procs:
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            if FAILURES:
                for log in sorted(logs.glob("*.log")):
                    sys.stderr.write(f"--- {log.name}\n{log.read_text()[-4000:]}\n")


def main() -> None:
    warn_on_version_drift()
    check_schemas()
    check_standalone()
    check_cluster()
    check_migration()
    check_tls_smoke()
    finish("examples")


if __name__ == "__main__":
    main()
