"""The examples: every manifest is a valid Kubernetes object (a
TrafficPolicy: valid for its CRD's schema); the standalone examples compile
with `tollgate check` without a diagnostic, and their READMEs start the echo
backends their EndpointSlices name; the cluster and migration examples
select tollgate as their READMEs say; and the TLS, rate-limit, canary and
TrafficPolicy examples, run as their READMEs show, answer curl as the READMEs
say.

Usage: python3 examples.py PATH_TO_TOLLGATE_BINARY
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import jsonschema
import yaml

from common import FAILURES, ROOT, check, check_json, clean_env, finish, load_all, validate_k8s, warn_on_version_drift

BINARY = sys.argv[1]
EXAMPLES = ROOT / "examples"
# Directories `tollgate run --manifests DIR` serves as they are (their
# EndpointSlices point at local echo backends).
STANDALONE = ["quickstart", "tls", "rate-limit", "canary", "trafficpolicy", "gateway-api"]
# Gateway API kinds: kubernetes-validate knows only built-in kinds and the
# upstream CRDs are not vendored here; `tollgate check` (check_standalone)
# reads them, and refuses what it cannot.
GATEWAY_API_VERSIONS = {"gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"}
TLS_HOST = "tls.example.com"
CRD = ROOT / "crds" / "trafficpolicy.yaml"


def manifests(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def objects(path: Path) -> list[dict]:
    return load_all(path.read_text(), str(path.relative_to(ROOT)))


def crd_validator() -> tuple[str, jsonschema.Draft4Validator]:
    """The TrafficPolicy CRD's apiVersion and a validator for its
    openAPIV3Schema (kubernetes-validate knows only built-in kinds)."""
    crd = load_all(CRD.read_text(), "crds/trafficpolicy.yaml")[0]
    spec = crd["spec"]
    version = spec["versions"][0]
    api_version = f"{spec['group']}/{version['name']}"
    return api_version, jsonschema.Draft4Validator(version["schema"]["openAPIV3Schema"])


def check_schemas() -> None:
    files = manifests(EXAMPLES)
    check(len(files) >= 17, f"example manifests found: {[str(f) for f in files]}")
    api_version, policy_schema = crd_validator()
    policies = 0
    for path in files:
        objs = objects(path)
        check(objs, f"{path}: no objects")
        for obj in objs:
            source = str(path.relative_to(ROOT))
            if obj.get("kind") == "TrafficPolicy":
                policies += 1
                check(obj.get("apiVersion") == api_version, f"{source}: TrafficPolicy apiVersion {obj.get('apiVersion')}, the CRD serves {api_version}")
                errors = [f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in policy_schema.iter_errors(obj)]
                check(not errors, f"{source}: TrafficPolicy fails the CRD schema: {errors}")
            elif str(obj.get("apiVersion", "")).startswith("gateway.networking.k8s.io/"):
                check(obj.get("apiVersion") in GATEWAY_API_VERSIONS, f"{source}: {obj.get('kind')} apiVersion {obj.get('apiVersion')}")
            else:
                validate_k8s(obj, source)
    check(policies >= 1, "the examples hold a TrafficPolicy")


def check_standalone() -> None:
    for name in STANDALONE:
        directory = EXAMPLES / name
        code, report = check_json([BINARY, "check", "--manifests", str(directory)])
        check(code == 0, f"`tollgate check --manifests examples/{name}` exit {code}: {report.get('diagnostics')}")
        check(not report.get("diagnostics"), f"examples/{name}: diagnostics {report.get('diagnostics')}")
        check(report.get("routes"), f"examples/{name}: no routes")
        for route in report.get("routes", []):
            # A redirect (Gateway RequestRedirect) has no backend.
            if any(p.startswith("redirect") for p in route.get("policy", [])):
                continue
            check(route["endpoints"], f"examples/{name}: route {route['host']}{route['path']} has no endpoints")
        # The README starts an echo backend on every address the
        # EndpointSlices name, and nothing else. (The quick start has a
        # script instead, tested by tests/quickstart.rs.)
        readme = directory / "README.md"
        if readme.exists():
            started = set(re.findall(r"--listen (127\.0\.0\.1:[0-9]+=[a-z0-9-]+)", readme.read_text()))
            wanted = {f"127.0.0.1:{port}={svc}" for port, svc in echo_backends(name)}
            check(started == wanted, f"examples/{name}/README.md starts echo backends {sorted(started)}, the EndpointSlices name {sorted(wanted)}")


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


def echo_backends(name: str) -> list[tuple[int, str]]:
    """(port, service) of every endpoint the example's EndpointSlices name;
    all must be on 127.0.0.1, where the README starts echo backends."""
    backends = []
    for path in manifests(EXAMPLES / name):
        for o in objects(path):
            if o.get("kind") != "EndpointSlice":
                continue
            service = o["metadata"]["labels"]["kubernetes.io/service-name"]
            for port in o["ports"]:
                for ep in o["endpoints"]:
                    for addr in ep["addresses"]:
                        check(addr == "127.0.0.1", f"examples/{name} endpoints are local: {addr}")
                        backends.append((port["port"], service))
    check(backends, f"examples/{name}: EndpointSlices name backends")
    return sorted(set(backends))


@contextlib.contextmanager
def serving(name: str, https_redirect: bool = False) -> Iterator[tuple[int, int] | None]:
    """Runs a standalone example as its README says: `tollgate echo` on the
    addresses its EndpointSlices name, `tollgate run --manifests` on its
    directory (on free ports; `https_redirect`: redirects name the HTTPS
    listener's port). Yields (HTTP port, HTTPS port),
    or None (a failure recorded) when it did not come up; stops both
    processes afterwards and prints their logs if any check failed."""
    directory = EXAMPLES / name
    backends = echo_backends(name)
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
                        check(False, f"port {port} (examples/{name} EndpointSlice) is taken on this machine")
                        yield None
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
                        *(["--https-redirect-port", str(https)] if https_redirect else []),
                    ],
                    logs / "tollgate.log",
                )
            )
            deadline = time.monotonic() + 15
            up = wait_ready(f"http://127.0.0.1:{admin}/readyz", deadline, procs) and all(
                wait_listening(port, deadline) for port, _ in backends
            )
            exited = [" ".join(p.args[:2]) for p in procs if p.poll() is not None]
            if not check(up, f"examples/{name} did not become ready within 15 s (exited: {exited})"):
                yield None
                return
            yield http, https
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
                    sys.stderr.write(f"--- examples/{name}: {log.name}\n{log.read_text()[-4000:]}\n")


def header(head: str, name: str) -> str | None:
    """A response header's value from curl -i's head (the last one)."""
    found = re.findall(rf"^{re.escape(name)}:[ \t]*(.*)$", head, re.I | re.M)
    return found[-1].strip() if found else None


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

    backends = echo_backends("tls")
    with serving("tls", https_redirect=True) as ports:
        if ports is None:
            return
        http, https = ports
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
        # Plain HTTP for a host with a certificate: 308 to HTTPS (the
        # redirect names --https-redirect-port).
        status, head, _ = curl("-H", f"Host: {TLS_HOST}", f"http://127.0.0.1:{http}/hello")
        check(status == 308, f"plain HTTP for {TLS_HOST}: {status}, want 308")
        check(header(head, "location") == f"https://{TLS_HOST}:{https}/hello", f"redirect location: {head}")


def check_rate_limit_smoke() -> None:
    """tollgate.dev/limit-rps 2 + burst 5: five pass, then 429 with
    Retry-After; nginx limit-rps 1 × multiplier 2: three pass, then 503
    (with Retry-After); the limit-whitelist address is never limited."""
    with serving("rate-limit") as ports:
        if ports is None:
            return
        http, _ = ports
        url = f"http://127.0.0.1:{http}/"
        # The budget starts full, so the first five pass whatever the
        # timing; it refills at 2/s, so a 429 follows within a few more,
        # and is the sixth answer when six took under half a second.
        statuses, limited = [], None
        sixth_within = float("inf")  # (fewer answers: the other checks fail)
        started = time.monotonic()
        for _ in range(20):
            status, head, _ = curl("-H", "Host: api.example.com", url)
            statuses.append(status)
            if len(statuses) == 6:
                sixth_within = time.monotonic() - started
            if status != 200:
                limited = head
                break
        check(statuses[:5] == [200] * 5, f"api.example.com: the burst of 5 passes: {statuses}")
        check(statuses[-1] == 429, f"api.example.com: 429 after the burst: {statuses}")
        check(len(statuses) == 6 or sixth_within >= 0.5, f"api.example.com: a sixth request within {sixth_within:.2f} s passed: {statuses}")
        retry_after = header(limited or "", "retry-after")
        check(retry_after is not None and retry_after.isdigit() and int(retry_after) >= 1, f"429 with Retry-After: {limited}")

        statuses, limited = [], None
        fourth_within = float("inf")
        started = time.monotonic()
        for _ in range(10):
            status, head, _ = curl("-H", "Host: legacy.example.com", url)
            statuses.append(status)
            if len(statuses) == 4:
                fourth_within = time.monotonic() - started
            if status != 200:
                limited = head
                break
        check(statuses[:3] == [200] * 3, f"legacy.example.com: rate × multiplier + 1 = 3 pass: {statuses}")
        check(len(statuses) == 4 or fourth_within >= 1, f"legacy.example.com: a fourth request within {fourth_within:.2f} s passed: {statuses}")
        check(statuses[-1] == 503, f"legacy.example.com: 503 as ingress-nginx: {statuses}")
        check(header(limited or "", "retry-after") is not None, f"503 with Retry-After: {limited}")

        whitelisted = [curl("--interface", "127.0.0.2", "-H", "Host: legacy.example.com", url)[0] for _ in range(6)]
        check(whitelisted == [200] * 6, f"limit-whitelist 127.0.0.2 is never limited: {whitelisted}")


def echo_service(body: str) -> str | None:
    try:
        return json.loads(body).get("service")
    except json.JSONDecodeError:
        return None


def check_canary_smoke() -> None:
    """X-Canary: always → app-canary, never → app; without the header
    about 10 of 100 go to the canary."""
    with serving("canary") as ports:
        if ports is None:
            return
        http, _ = ports
        url = f"http://127.0.0.1:{http}/"
        host = ["-H", "Host: app.example.com"]
        for _ in range(3):
            status, head, body = curl(*host, "-H", "X-Canary: always", url)
            check((status, echo_service(body)) == (200, "app-canary"), f"X-Canary: always → app-canary: {status} {head} {body[:200]}")
            status, head, body = curl(*host, "-H", "X-Canary: never", url)
            check((status, echo_service(body)) == (200, "app"), f"X-Canary: never → app: {status} {head} {body[:200]}")
        served = [echo_service(curl(*host, url)[2]) for _ in range(100)]
        canary = served.count("app-canary")
        check(served.count("app") + canary == 100, f"every request served by app or app-canary: {set(served)}")
        # Binomial(100, 0.1): 0 has probability 3e-5, over 30 far less.
        check(1 <= canary <= 30, f"canary-weight 10: {canary} of 100 went to the canary")


def check_trafficpolicy_smoke() -> None:
    """The policy's consistent hashing, CORS, response timeout and allow
    list on the request path; the annotation it leaves alone still
    applies; `tollgate check` shows the precedence warning and refuses an
    invalid edit, as the README says."""
    directory = EXAMPLES / "trafficpolicy"
    with tempfile.TemporaryDirectory() as tmp:
        # The README's precedence demonstration: the Ingress plus an
        # ingress-nginx rate limit, with the policy.
        ingress = [o for o in objects(directory / "ingress.yaml") if o.get("kind") == "Ingress"]
        check(len(ingress) == 1, "examples/trafficpolicy/ingress.yaml: one Ingress")
        annotated = Path(tmp) / "web-annotated.yaml"
        ingress[0]["metadata"]["annotations"]["nginx.ingress.kubernetes.io/limit-rps"] = "100"
        annotated.write_text(yaml.safe_dump(ingress[0]))
        _, report = check_json([BINARY, "check", "--manifests", str(annotated), "--manifests", str(directory / "app.yaml"), "--manifests", str(directory / "policy.yaml")])
        warnings = [d.get("reason", "") for d in report.get("diagnostics", []) if d.get("field") == "metadata.annotations"]
        check(
            any("TrafficPolicy policy-demo/web overrides these annotations: limit-*" in w for w in warnings),
            f"the policy's precedence over limit-rps is reported: {report.get('diagnostics')}",
        )
        # The README's invalid edit.
        bad = Path(tmp) / "bad-policy.yaml"
        text = (directory / "policy.yaml").read_text()
        check("requestsPerSecond: 20" in text, "policy.yaml has the README's requestsPerSecond: 20")
        bad.write_text(text.replace("requestsPerSecond: 20", "requestsPerSecond: 0"))
        code, report = check_json([BINARY, "check", "--manifests", str(bad), "--manifests", str(directory / "app.yaml"), "--manifests", str(directory / "ingress.yaml")])
        fields = [d.get("field") for d in report.get("diagnostics", []) if d.get("severity") == "rejected"]
        check(code == 1 and "spec.rateLimit.requestsPerSecond" in fields, f"the invalid edit is refused at its field (exit {code}): {report.get('diagnostics')}")

    with serving("trafficpolicy") as ports:
        if ports is None:
            return
        http, _ = ports
        url = f"http://127.0.0.1:{http}"
        host = ["-H", "Host: shop.example.com"]

        # Consistent hashing by X-User: one user, one replica.
        pods: dict[str, set] = {}
        # (Three in a row each: round robin would spread them.)
        for user in [u for u in ["alice", "bob", "carol", "dave", "erin", "frank"] for _ in range(3)]:
            status, _, body = curl(*host, "-H", f"X-User: {user}", f"{url}/")
            check(status == 200, f"X-User {user}: {status}")
            pod = json.loads(body).get("pod") if status == 200 else None
            pods.setdefault(user, set()).add(pod)
        check(all(len(p) == 1 for p in pods.values()), f"each X-User stays on one replica: {pods}")
        check(len(set().union(*pods.values())) >= 2, f"users spread over the replicas: {pods}")

        # CORS: the preflight answered by tollgate, the origin echoed;
        # another origin gets no CORS header.
        origin = "https://shop.example.com"
        status, head, _ = curl("-X", "OPTIONS", *host, "-H", f"Origin: {origin}", "-H", "Access-Control-Request-Method: POST", f"{url}/cart")
        check(status == 204, f"CORS preflight: {status} {head}")
        check(header(head, "access-control-allow-origin") == origin, f"preflight Allow-Origin: {head}")
        check(header(head, "access-control-allow-methods") == "GET, POST", f"preflight Allow-Methods: {head}")
        check(header(head, "access-control-max-age") == "600", f"preflight Max-Age: {head}")
        status, head, _ = curl(*host, "-H", f"Origin: {origin}", f"{url}/")
        check(status == 200 and header(head, "access-control-allow-origin") == origin, f"CORS response header: {status} {head}")
        status, head, _ = curl(*host, "-H", "Origin: https://elsewhere.example", f"{url}/")
        check(status == 200 and header(head, "access-control-allow-origin") is None, f"no CORS header for another origin: {status} {head}")

        # responseHeaders: 2s.
        status, head, _ = curl(*host, f"{url}/slow?delay=3000")
        check(status == 504, f"timeouts.responseHeaders 2s: {status} {head}")

        # ipAllow: 127.0.0.1 and 10.0.0.0/8 only.
        status, head, _ = curl("--interface", "127.0.0.2", *host, f"{url}/")
        check(status == 403, f"ipAllow: 127.0.0.2 refused: {status} {head}")

        # The annotation the policy leaves alone: proxy-body-size 1m.
        with tempfile.NamedTemporaryFile() as big:
            big.write(b"\0" * 2_000_000)
            big.flush()
            status, head, _ = curl(*host, "--data-binary", f"@{big.name}", f"{url}/upload")
            check(status == 413, f"proxy-body-size 1m: {status} {head}")


def main() -> None:
    warn_on_version_drift()
    check_schemas()
    check_standalone()
    check_cluster()
    check_migration()
    check_tls_smoke()
    check_rate_limit_smoke()
    check_canary_smoke()
    check_trafficpolicy_smoke()
    finish("examples")


if __name__ == "__main__":
    main()
