"""The Helm chart, rendered and linted by Helm's own code (helm-python-sdk),
with the default values and a matrix of non-default ones. Every rendered
object is validated against the Kubernetes schemas, and the chart is checked
against the binary it deploys: RBAC rules equal `tollgate rbac`, the
container arguments parse, the IngressClass controller and the flag defaults
match `tollgate run --help`.

Usage: python3 chart.py PATH_TO_TOLLGATE_BINARY
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path

from common import (
    CHART,
    KUBE_VERSION,
    ROOT,
    check,
    clean_env,
    describe,
    finish,
    load_all,
    native_stderr_filtered,
    run,
    run_help_defaults,
    validate_k8s,
    warn_on_version_drift,
)

import helm_python as helm
import yaml

BINARY = sys.argv[1]
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "IngressClass", "GatewayClass"}

# name -> (values, release name, namespace). Non-default values are combined
# so that each template branch renders at least once.
CASES: dict[str, tuple[dict, str, str]] = {
    "defaults": ({}, "tollgate", "tollgate"),
    "other release name and namespace": ({}, "edge", "ingress-system"),
    "single replica (no PodDisruptionBudget)": ({"replicaCount": 1}, "tollgate", "tollgate"),
    "replicas 3 + HPA + ServiceMonitor": (
        {
            "replicaCount": 3,
            "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 9},
            "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}},
        },
        "tollgate",
        "tollgate",
    ),
    "watchNamespaces, defaultClass, extraArgs, TLS flags": (
        {
            "watchNamespaces": ["team-a", "team-b"],
            "ingressClass": {"default": True},
            "extraArgs": ["--trusted-proxies=10.0.0.0/8", "--upstream-response-timeout=30s"],
            "extraEnv": [{"name": "TOLLGATE_IDLE_TIMEOUT", "value": "90s"}],
            "defaultCertificate": "tollgate/default-tls",
            "hsts": "max-age=31536000; includeSubDomains",
            "logFormat": "text",
            "controller": {"config": {"ssl-redirect": "false", "proxy-body-size": "8m", "hsts-preload": True}},
        },
        "tollgate",
        "tollgate",
    ),
    "Local traffic policy, LB annotations and ranges, port 8443, PROXY protocol": (
        {
            "proxyProtocol": True,
            "service": {
                "externalTrafficPolicy": "Local",
                "annotations": {
                    "service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
                    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing",
                    "service.beta.kubernetes.io/aws-load-balancer-proxy-protocol": "*",
                },
                "loadBalancerSourceRanges": ["203.0.113.0/24"],
                "ports": {"https": 8443},
            },
            "shutdownGraceSeconds": 40,
            "preStopSleepSeconds": 10,
            "image": {"tag": "0.1.0-rc1", "pullPolicy": "Always"},
        },
        "tollgate",
        "tollgate",
    ),
    "Gateway API enabled": ({"gatewayAPI": {"enabled": True}}, "tollgate", "tollgate"),
    "Gateway API, own class and controller name, watchNamespaces": (
        {
            "gatewayAPI": {"enabled": True, "className": "edge", "controllerName": "example.com/edge-gateway"},
            "watchNamespaces": ["team-a"],
        },
        "edge",
        "edge-system",
    ),
    "second controller, own class, no preStop, ClusterIP": (
        {
            "fullnameOverride": "tollgate-internal",
            "ingressClass": {"name": "internal", "controllerName": "tollgate.dev/internal"},
            "electionId": "tollgate-internal-leader",
            "preStopSleepSeconds": 0,
            "service": {"type": "ClusterIP"},
            "serviceAccount": {"name": "internal-sa"},
        },
        "internal",
        "tollgate",
    ),
}

# Values the schema must reject (the render fails, as `helm install` would).
BAD_VALUES = [
    {"replicaCount": -1},
    {"replicaCount": "3"},
    {"unknownKey": True},
    {"logFormat": "xml"},
    {"service": {"externalTrafficPolicy": "Sometimes"}},
    {"service": {"type": "ExternalName"}},
    {"image": {"pullPolicy": "Sometimes"}},
    {"shutdownGraceSeconds": -5},
    {"hsts": "includeSubDomains"},
    {"proxyProtocol": "yes"},
    {"defaultCertificate": "no-namespace"},
    {"extraArgs": ["run"]},
    {"ingressClass": {"nmae": "typo"}},
    {"gatewayAPI": {"enabled": "yes"}},
    {"gatewayAPI": {"controllerName": "no-domain"}},
]


def deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def flag_value(args: list[str], flag: str) -> str | None:
    """The value of `--flag=value` or `--flag value` in an argument list."""
    for i, a in enumerate(args):
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
        if a == flag and i + 1 < len(args):
            return args[i + 1]
    return None


def seconds(duration: str) -> float:
    m = re.fullmatch(r"(\d+)(ms|s|m)", duration)
    if not check(m, f"--shutdown-grace {duration!r} is not N(ms|s|m)"):
        return 0
    n = int(m.group(1))
    return {"ms": n / 1000, "s": n, "m": n * 60}[m.group(2)]


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in (selector or {}).items())


# ---------------------------------------------------------------------------


def check_chart_metadata() -> None:
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    check(meta.get("apiVersion") == "v2", "Chart.yaml: apiVersion v2")
    check(meta.get("version") == "0.1.0", "Chart.yaml: version 0.1.0")
    check(meta.get("appVersion") == "0.1.0", "Chart.yaml: appVersion \"0.1.0\" (a string)")
    cargo = re.search(r'(?m)^version\s*=\s*"([^"]+)"', (ROOT / "Cargo.toml").read_text()).group(1)
    check(
        meta.get("appVersion") == cargo,
        f"Chart.yaml appVersion {meta.get('appVersion')} != Cargo.toml version {cargo}: "
        "the default image tag would not be this build",
    )

    schema = json.loads((CHART / "values.schema.json").read_text())
    check(schema.get("additionalProperties") is False, "values.schema.json: top-level additionalProperties false")
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for key in values:
        check(key in schema.get("properties", {}), f"values.yaml key {key} missing from values.schema.json")

    # The documented values table covers every value.
    install = (ROOT / "docs" / "install.md").read_text()

    def leaves(d: dict, prefix: str = ""):
        for k, v in d.items():
            path = f"{prefix}{k}"
            # Whole objects documented as one row (their keys are Kubernetes').
            if isinstance(v, dict) and v and k not in ("resources", "podSecurityContext", "containerSecurityContext", "labels"):
                yield from leaves(v, path + ".")
            else:
                yield path

    for path in leaves(values):
        check(f"`{path}`" in install, f"docs/install.md: the values table does not describe `{path}`")


def check_crds(chart: helm.Chart) -> None:
    link = CHART / "crds"
    top = ROOT / "crds"
    check(top.is_dir() and (top / "README.md").is_file(), "crds/README.md exists at the top level")
    check(link.is_symlink(), "helm/tollgate/crds is a symbolic link to the top-level crds/")
    for crd in sorted(top.glob("*.y*ml")):
        groups = {
            (doc.get("spec") or {}).get("group")
            for doc in yaml.safe_load_all(crd.read_text())
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition"
        }
        check(
            "gateway.networking.k8s.io" not in groups,
            f"{crd.name}: the chart does not install the Gateway API CRDs",
        )
    check(link.resolve() == top.resolve(), f"helm/tollgate/crds resolves to {link.resolve()}, not {top}")
    manifests = sorted(
        p.name for p in top.iterdir() if p.suffix in (".yaml", ".yml", ".json") and p.is_file()
    )
    shipped = sorted(Path(c["filename"]).name for c in chart.crds)
    check(shipped == manifests, f"Helm ships CRDs {shipped}, crds/ holds {manifests}")
    # `helm package` follows the link: the archive carries the same CRDs and
    # renders the same objects.
    with tempfile.TemporaryDirectory() as tmp, native_stderr_filtered("found symbolic link in path"):
        archive = helm.package(CHART, destination=tmp)
        with helm.Chart.load(archive) as packaged:
            check(
                sorted(c["data"] for c in packaged.crds) == sorted(c["data"] for c in chart.crds),
                "the packaged chart ships the CRDs of crds/",
            )
            check(
                packaged.render(None, name="tollgate", namespace="tollgate")
                == chart.render(None, name="tollgate", namespace="tollgate"),
                "the packaged chart renders as the directory does",
            )
    for c in chart.crds:
        for obj in load_all(c["data"], f"crds/{c['filename']}"):
            check(obj.get("kind") == "CustomResourceDefinition", f"crds/{c['filename']}: {describe(obj)} is not a CRD")
            validate_k8s(obj, f"crds/{c['filename']}")


def check_lint(name: str, values: dict, namespace: str) -> None:
    # Helm logs (INFO) that crds/ is a symbolic link on every load.
    with native_stderr_filtered("found symbolic link in path"):
        report = helm.lint(
            CHART, values or None, strict=True, namespace=namespace, kube_version=f"v{KUBE_VERSION}.0"
        )
    problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    check(
        not problems and not report.get("errors"),
        f"[{name}] helm lint --strict: {problems} {report.get('errors')}",
    )


def check_binary_accepts(name: str, container: dict) -> None:
    """The container's command line parses with this build's binary, and its
    environment too."""
    args = container["args"]
    env = {"POD_NAME": "tollgate-0", "POD_NAMESPACE": "tollgate"}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]

    # 1. clap parses every argument before --help: an unknown flag or a bad
    #    value exits 2.
    p = run([BINARY, *args, "--help"], env=clean_env(env))
    check(p.returncode == 0, f"[{name}] `tollgate {' '.join(args)} --help` exit {p.returncode}: {p.stderr.strip()}")

    # 2. The real start-up, minus the cluster: arguments and TOLLGATE_*
    #    variables parse, the cross-flag validation passes, and it stops
    #    where Kubernetes mode needs an API server (none here). Listeners
    #    are moved to 127.0.0.1:0 in case it ever got further.
    local = [
        re.sub(r"^(--(?:http|https|admin)-addr=).*", r"\g<1>127.0.0.1:0", a) for a in args
    ]
    with tempfile.TemporaryDirectory() as home:
        env2 = clean_env({**env, "HOME": home, "KUBECONFIG": os.path.join(home, "absent")})
        try:
            p = run([BINARY, *local], env=env2, timeout=20)
            out = p.stdout + p.stderr
            check(
                p.returncode == 1 and "kubeconfig" in out.lower(),
                f"[{name}] `tollgate {' '.join(local)}` should stop only for lack of a Kubernetes "
                f"API configuration; exit {p.returncode}: {out.strip()[:2000]}",
            )
        except Exception as e:  # noqa: BLE001 - a hang is a failure too
            check(False, f"[{name}] start-up check: {e}")


def check_release(name: str, values: dict, release: str, namespace: str, chart: helm.Chart, defaults: dict, rbac: dict) -> None:
    merged = deep_merge(chart.values, values)
    rendered = chart.render(values or None, name=release, namespace=namespace, is_install=True)
    objects: list[dict] = []
    notes = ""
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        for obj in load_all(text, f"[{name}] {path}"):
            objects.append(obj)
            if obj.get("kind") == "ServiceMonitor":
                # A CRD (Prometheus Operator): no schema in kubernetes-validate.
                check(obj.get("apiVersion") == "monitoring.coreos.com/v1", f"[{name}] ServiceMonitor apiVersion")
            elif obj.get("kind") == "GatewayClass":
                # A Gateway API CRD (not installed by the chart): checked below.
                check(obj.get("apiVersion") == "gateway.networking.k8s.io/v1", f"[{name}] GatewayClass apiVersion")
            else:
                validate_k8s(obj, f"[{name}] {path}")

    by_kind: dict[str, list[dict]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)
        ns = obj.get("metadata", {}).get("namespace")
        if obj["kind"] in CLUSTER_SCOPED:
            check(ns is None, f"[{name}] {describe(obj)} is cluster-scoped: no namespace")
        else:
            check(ns == namespace, f"[{name}] {describe(obj)}: namespace {ns}, want the release's {namespace}")
    names = [(o["kind"], o["metadata"]["name"]) for o in objects]
    check(len(names) == len(set(names)), f"[{name}] duplicate objects: {names}")

    def one(kind: str) -> dict:
        found = by_kind.get(kind, [])
        check(len(found) == 1, f"[{name}] expected one {kind}, got {len(found)}")
        return found[0] if found else {}

    # --- Deployment ---------------------------------------------------------
    deploy = one("Deployment")
    spec = deploy.get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    pod_labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
    check(selects(spec.get("selector", {}).get("matchLabels"), pod_labels), f"[{name}] Deployment selector matches its pods")
    containers = pod.get("containers", [])
    check(len(containers) == 1, f"[{name}] one container")
    c = containers[0] if containers else {}
    args = c.get("args", [])

    hpa = by_kind.get("HorizontalPodAutoscaler", [])
    if merged["autoscaling"]["enabled"]:
        check("replicas" not in spec, f"[{name}] with the HPA the Deployment leaves replicas to it")
        check(len(hpa) == 1, f"[{name}] HPA rendered")
        if hpa:
            h = hpa[0]
            check(h["apiVersion"] == "autoscaling/v2", f"[{name}] HPA autoscaling/v2")
            ref = h["spec"]["scaleTargetRef"]
            check(ref["kind"] == "Deployment" and ref["name"] == deploy["metadata"]["name"], f"[{name}] HPA targets the Deployment")
            check(h["spec"]["minReplicas"] == merged["autoscaling"]["minReplicas"], f"[{name}] HPA minReplicas")
    else:
        check(spec.get("replicas") == merged["replicaCount"], f"[{name}] replicas {spec.get('replicas')}")
        check(not hpa, f"[{name}] no HPA unless enabled")

    strategy = spec.get("strategy", {})
    check(
        strategy.get("type") == "RollingUpdate" and strategy.get("rollingUpdate", {}).get("maxUnavailable") == 0,
        f"[{name}] RollingUpdate with maxUnavailable 0: {strategy}",
    )
    spread = pod.get("topologySpreadConstraints") or []
    anti = (pod.get("affinity") or {}).get("podAntiAffinity")
    check(spread or anti, f"[{name}] replicas are spread (topologySpreadConstraints or podAntiAffinity)")
    for t in spread:
        check(selects(t.get("labelSelector", {}).get("matchLabels"), pod_labels), f"[{name}] spread constraint selects the pods")

    # Image
    app_version = chart.metadata["appVersion"]
    tag = merged["image"]["tag"] or app_version
    check(c.get("image") == f"ghcr.io/tollgate-dev/tollgate:{tag}", f"[{name}] image {c.get('image')}")
    check(c.get("imagePullPolicy") == merged["image"]["pullPolicy"], f"[{name}] imagePullPolicy")

    # Security
    psc = pod.get("securityContext", {})
    csc = c.get("securityContext", {})
    for where, sc in (("pod", psc), ("container", csc)):
        check(sc.get("runAsNonRoot") is True, f"[{name}] {where} runAsNonRoot")
        check(sc.get("runAsUser") == 65532, f"[{name}] {where} runAsUser 65532 (numeric)")
        check(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"[{name}] {where} seccompProfile RuntimeDefault")
    check(csc.get("allowPrivilegeEscalation") is False, f"[{name}] allowPrivilegeEscalation false")
    check(csc.get("readOnlyRootFilesystem") is True, f"[{name}] readOnlyRootFilesystem")
    check(csc.get("capabilities", {}).get("drop") == ["ALL"], f"[{name}] capabilities drop ALL")
    check(not csc.get("capabilities", {}).get("add"), f"[{name}] no capability added")
    check(not csc.get("privileged"), f"[{name}] not privileged")
    check(not pod.get("hostNetwork"), f"[{name}] no hostNetwork")

    # Resources
    check(c.get("resources", {}).get("requests", {}).get("cpu") and c["resources"]["requests"].get("memory"), f"[{name}] resource requests")

    # Arguments
    check(args[:1] == ["run"], f"[{name}] args start with run: {args}")
    check(flag_value(args, "--manifests") is None, f"[{name}] Kubernetes mode (no --manifests)")
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    check(ports == {"http": 8080, "https": 8443, "admin": 9180}, f"[{name}] container ports {ports}")
    for flag, port in (("--http-addr", "http"), ("--https-addr", "https"), ("--admin-addr", "admin")):
        check(flag_value(args, flag) == f"[::]:{ports.get(port)}", f"[{name}] {flag} listens dual-stack on the {port} port: {flag_value(args, flag)}")
    check(flag_value(args, "--ingress-class") == merged["ingressClass"]["name"], f"[{name}] --ingress-class")
    check(flag_value(args, "--controller-name") == merged["ingressClass"]["controllerName"], f"[{name}] --controller-name")
    check(flag_value(args, "--election-id") == merged["electionId"], f"[{name}] --election-id")
    check(flag_value(args, "--log-format") == merged["logFormat"], f"[{name}] --log-format")
    check(flag_value(args, "--watch-namespace") == (",".join(merged["watchNamespaces"]) or None), f"[{name}] --watch-namespace {flag_value(args, '--watch-namespace')}")
    check(flag_value(args, "--default-certificate") == (merged["defaultCertificate"] or None), f"[{name}] --default-certificate")
    check(flag_value(args, "--hsts") == (merged["hsts"] or None), f"[{name}] --hsts")
    check(("--proxy-protocol" in args) == merged["proxyProtocol"], f"[{name}] --proxy-protocol iff proxyProtocol")
    https_port = merged["service"]["ports"]["https"]
    check(
        flag_value(args, "--https-redirect-port") == (None if https_port == 443 else str(https_port)),
        f"[{name}] --https-redirect-port follows service.ports.https",
    )
    for extra in merged["extraArgs"]:
        check(extra in args, f"[{name}] extra argument {extra} passed")
    # controller.config: the ConfigMap (values as strings) and --configmap.
    config = merged["controller"]["config"]
    maps = [m for m in by_kind.get("ConfigMap", []) if m["metadata"]["name"].endswith("-config")]
    check(len(maps) == (1 if config else 0), f"[{name}] one ConfigMap iff controller.config")
    if config and maps:
        want = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in config.items()}
        check(maps[0].get("data") == want, f"[{name}] ConfigMap data {maps[0].get('data')} != {want}")
        check(
            flag_value(args, "--configmap") == f"{namespace}/{maps[0]['metadata']['name']}",
            f"[{name}] --configmap names the rendered ConfigMap",
        )
    else:
        check(flag_value(args, "--configmap") is None, f"[{name}] no --configmap without controller.config")
    check_binary_accepts(name, c)

    # Shutdown: the kubelet waits longer than the preStop sleep + drain.
    grace = seconds(flag_value(args, "--shutdown-grace") or defaults["--shutdown-grace"])
    check(grace == merged["shutdownGraceSeconds"], f"[{name}] --shutdown-grace {grace}")
    pre_stop = c.get("lifecycle", {}).get("preStop", {})
    sleep = pre_stop.get("sleep", {}).get("seconds", 0)
    check(sleep == merged["preStopSleepSeconds"], f"[{name}] preStop sleep {sleep}")
    check("exec" not in pre_stop, f"[{name}] preStop does not exec (the image has no shell)")
    tgps = pod.get("terminationGracePeriodSeconds", 30)
    check(tgps > grace + sleep, f"[{name}] terminationGracePeriodSeconds {tgps} > preStop {sleep} + shutdown grace {grace}")

    # Environment for leader election
    env = {e["name"]: e for e in c.get("env", [])}
    for var, field in (("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")):
        check(env.get(var, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == field, f"[{name}] {var} from the downward API ({field})")
    for e in merged["extraEnv"]:
        check(env.get(e["name"]) == e, f"[{name}] extraEnv {e['name']}")

    # Probes on the admin port
    admin_port = int(flag_value(args, "--admin-addr").rsplit(":", 1)[1])
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = c.get(probe, {}).get("httpGet", {})
        port = get.get("port")
        port = ports.get(port, port)
        check(get.get("path") == path, f"[{name}] {probe} path {get.get('path')}, want {path}")
        check(port == admin_port == 9180, f"[{name}] {probe} on the admin port: {port}")

    # ServiceAccount
    sa_name = pod.get("serviceAccountName")
    sas = by_kind.get("ServiceAccount", [])
    check([s["metadata"]["name"] for s in sas] == [sa_name], f"[{name}] the ServiceAccount {sa_name} is rendered")

    # --- Services -----------------------------------------------------------
    services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}
    check(len(services) == 2, f"[{name}] two Services (controller, metrics): {list(services)}")
    publish = flag_value(args, "--publish-service") or ""
    pub_ns, _, pub_name = publish.partition("/")
    check(pub_ns == namespace and pub_name in services, f"[{name}] --publish-service {publish} names the controller Service")
    svc = services.get(pub_name, {})
    sspec = svc.get("spec", {})
    check(sspec.get("type") == merged["service"]["type"], f"[{name}] Service type {sspec.get('type')}")
    check(selects(sspec.get("selector"), pod_labels), f"[{name}] Service selects the controller pods")
    sports = {p["name"]: p for p in sspec.get("ports", [])}
    check(
        sports.get("http", {}).get("port") == merged["service"]["ports"]["http"] and sports["http"].get("targetPort") == "http",
        f"[{name}] Service http port → http",
    )
    check(
        sports.get("https", {}).get("port") == https_port and sports["https"].get("targetPort") == "https",
        f"[{name}] Service https port → https",
    )
    if sspec.get("type") != "ClusterIP":
        check(sspec.get("externalTrafficPolicy") == merged["service"]["externalTrafficPolicy"], f"[{name}] externalTrafficPolicy")
    for k, v in merged["service"]["annotations"].items():
        check(svc["metadata"].get("annotations", {}).get(k) == v, f"[{name}] Service annotation {k} passed through")
    check(sspec.get("loadBalancerSourceRanges", []) == merged["service"]["loadBalancerSourceRanges"], f"[{name}] loadBalancerSourceRanges")

    metrics = [s for n, s in services.items() if n != pub_name]
    m = metrics[0] if metrics else {}
    mports = m.get("spec", {}).get("ports", [])
    check(
        m.get("spec", {}).get("type") == "ClusterIP" and [p.get("targetPort") for p in mports] == ["admin"],
        f"[{name}] metrics Service: ClusterIP to the admin port",
    )
    check(selects(m.get("spec", {}).get("selector"), pod_labels), f"[{name}] metrics Service selects the pods")

    mons = by_kind.get("ServiceMonitor", [])
    if merged["metrics"]["serviceMonitor"]["enabled"]:
        check(len(mons) == 1, f"[{name}] ServiceMonitor rendered")
        for mon in mons:
            sel = mon["spec"]["selector"]["matchLabels"]
            check(selects(sel, m["metadata"]["labels"]), f"[{name}] ServiceMonitor selects the metrics Service")
            check(not selects(sel, svc["metadata"]["labels"]), f"[{name}] ServiceMonitor does not select the controller Service")
            check(mon["spec"]["namespaceSelector"]["matchNames"] == [namespace], f"[{name}] ServiceMonitor namespace")
            for ep in mon["spec"]["endpoints"]:
                check(ep["port"] in [p["name"] for p in mports] and ep["path"] == "/metrics", f"[{name}] ServiceMonitor endpoint {ep}")
            for k, v in merged["metrics"]["serviceMonitor"]["labels"].items():
                check(mon["metadata"]["labels"].get(k) == v, f"[{name}] ServiceMonitor label {k}")
    else:
        check(not mons, f"[{name}] no ServiceMonitor unless enabled")

    # --- RBAC: exactly `tollgate rbac` --------------------------------------
    fullname = deploy["metadata"]["name"]
    expected = {doc["kind"]: doc for doc in yaml.safe_load_all(
        run([BINARY, "rbac", "--name", fullname, "--namespace", namespace,
             f"--gateway-api={str(merged['gatewayAPI']['enabled']).lower()}"]).stdout) if doc}
    check(set(expected) == {"ClusterRole", "Role"}, f"`tollgate rbac` prints a ClusterRole and a Role: {list(expected)}")
    for kind in ("ClusterRole", "Role"):
        got = one(kind)
        want = expected.get(kind, {})
        check(got.get("rules") == want.get("rules"), f"[{name}] {kind} rules differ from `tollgate rbac`:\n got  {got.get('rules')}\n want {want.get('rules')}")
        check(got.get("metadata", {}).get("name") == want.get("metadata", {}).get("name"), f"[{name}] {kind} name")
        check(got.get("metadata", {}).get("namespace") == want.get("metadata", {}).get("namespace"), f"[{name}] {kind} namespace")
        for rule in got.get("rules", []):
            flat = rule.get("apiGroups", []) + rule.get("resources", []) + rule.get("verbs", [])
            check("*" not in flat, f"[{name}] {kind}: no wildcard: {rule}")
            if "secrets" in rule.get("resources", []):
                check(set(rule["verbs"]) <= {"get", "list", "watch"}, f"[{name}] {kind}: Secrets are never written: {rule}")
    for kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        b = one(kind)
        check(b.get("roleRef") == {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": fullname}, f"[{name}] {kind} roleRef")
        check(b.get("subjects") == [{"kind": "ServiceAccount", "name": sa_name, "namespace": namespace}], f"[{name}] {kind} subject is the ServiceAccount")
    rbac[name] = expected

    # --- IngressClass -------------------------------------------------------
    ic = one("IngressClass")
    check(ic.get("metadata", {}).get("name") == merged["ingressClass"]["name"], f"[{name}] IngressClass name")
    check(ic.get("spec", {}).get("controller") == flag_value(args, "--controller-name"), f"[{name}] IngressClass controller = --controller-name")
    annotations = ic.get("metadata", {}).get("annotations") or {}
    if merged["ingressClass"]["default"]:
        check(annotations.get("ingressclass.kubernetes.io/is-default-class") == "true", f"[{name}] default-class annotation")
    else:
        check("ingressclass.kubernetes.io/is-default-class" not in annotations, f"[{name}] not the default class")

    # --- Gateway API ---------------------------------------------------------
    gw_enabled = merged["gatewayAPI"]["enabled"]
    check(flag_value(args, "--gateway-api") == str(gw_enabled).lower(), f"[{name}] --gateway-api={gw_enabled}")
    gateway_rules = [r for r in one("ClusterRole").get("rules", []) if "gateway.networking.k8s.io" in r.get("apiGroups", [])]
    namespace_rules = [r for r in one("ClusterRole").get("rules", []) if "namespaces" in r.get("resources", [])]
    if gw_enabled:
        gc = one("GatewayClass")
        check(gc.get("metadata", {}).get("name") == merged["gatewayAPI"]["className"], f"[{name}] GatewayClass name")
        check(gc.get("spec", {}).get("controllerName") == flag_value(args, "--gateway-controller-name"), f"[{name}] GatewayClass controllerName = --gateway-controller-name")
        check(gc.get("spec", {}).get("controllerName") == merged["gatewayAPI"]["controllerName"], f"[{name}] GatewayClass controllerName = gatewayAPI.controllerName")
        resources = sorted(res for r in gateway_rules for res in r.get("resources", []))
        check(resources == sorted(["gatewayclasses", "gateways", "httproutes", "grpcroutes", "referencegrants",
                                   "gatewayclasses/status", "gateways/status", "httproutes/status", "grpcroutes/status"]),
              f"[{name}] Gateway API rules: {resources}")
        check(all(set(r["verbs"]) <= {"list", "watch", "patch"} for r in gateway_rules + namespace_rules), f"[{name}] Gateway API rules only read and patch status")
        check(len(namespace_rules) == 1 and namespace_rules[0]["verbs"] == ["list", "watch"], f"[{name}] Namespaces list/watch")
    else:
        check(not by_kind.get("GatewayClass"), f"[{name}] no GatewayClass unless gatewayAPI.enabled")
        check(not gateway_rules and not namespace_rules, f"[{name}] no Gateway API rules unless gatewayAPI.enabled")

    # --- PodDisruptionBudget ------------------------------------------------
    replicas = merged["autoscaling"]["minReplicas"] if merged["autoscaling"]["enabled"] else merged["replicaCount"]
    pdbs = by_kind.get("PodDisruptionBudget", [])
    if replicas > 1:
        check(len(pdbs) == 1, f"[{name}] a PodDisruptionBudget with {replicas} replicas")
        for pdb in pdbs:
            check(pdb["spec"].get("minAvailable") == 1, f"[{name}] PDB minAvailable 1")
            check(selects(pdb["spec"]["selector"]["matchLabels"], pod_labels), f"[{name}] PDB selects the pods")
    else:
        check(not pdbs, f"[{name}] no PodDisruptionBudget with one replica (it would block node drains)")

    # --- helm test ----------------------------------------------------------
    tests = [p for p in by_kind.get("Pod", []) if p["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    check(len(tests) == 1, f"[{name}] one helm test Pod")
    for t in tests:
        check(not selects(spec["selector"]["matchLabels"], t["metadata"].get("labels", {})), f"[{name}] the test Pod is not selected as a controller pod")
        text = json.dumps(t)
        check(f"{m['metadata']['name']}.{namespace}.svc:9180/readyz" in text, f"[{name}] test Pod checks /readyz on the metrics Service")
        check(f"{pub_name}.{namespace}.svc:{merged['service']['ports']['http']}/" in text and "404" in text, f"[{name}] test Pod expects the built-in 404 through the controller Service")
        tsc = t["spec"]["containers"][0].get("securityContext", {})
        check(t["spec"].get("securityContext", {}).get("runAsNonRoot") and tsc.get("allowPrivilegeEscalation") is False, f"[{name}] test Pod runs unprivileged")

    # --- NOTES.txt ----------------------------------------------------------
    check("curl -H 'Host: " in notes and "http://$LB_IP/" in notes, f"[{name}] NOTES.txt shows the curl to try")
    check(pub_name in notes, f"[{name}] NOTES.txt names the Service")


def main() -> None:
    warn_on_version_drift()
    helm.disable_logging()
    defaults = run_help_defaults(BINARY)
    check(defaults.get("--controller-name"), f"`tollgate run --help` shows a --controller-name default: {defaults}")

    check_chart_metadata()
    with native_stderr_filtered("found symbolic link in path"):
        loaded = helm.Chart.load(CHART)
    with loaded as chart:
        values = chart.values
        # The chart's defaults are the binary's.
        check(values["ingressClass"]["controllerName"] == defaults.get("--controller-name"), "ingressClass.controllerName default = --controller-name default")
        check(values["ingressClass"]["name"] == defaults.get("--ingress-class"), "ingressClass.name default = --ingress-class default")
        check(values["electionId"] == defaults.get("--election-id"), "electionId default = --election-id default")
        check(values["gatewayAPI"]["controllerName"] == defaults.get("--gateway-controller-name"), "gatewayAPI.controllerName default = --gateway-controller-name default")
        check(values["gatewayAPI"]["enabled"] is False, "gatewayAPI.enabled defaults to false")
        check(f"{values['shutdownGraceSeconds']}s" == defaults.get("--shutdown-grace"), "shutdownGraceSeconds default = --shutdown-grace default")
        for flag, port in (("--http-addr", 8080), ("--https-addr", 8443), ("--admin-addr", 9180)):
            check(defaults.get(flag, "").endswith(f":{port}"), f"{flag} default {defaults.get(flag)}: the chart assumes port {port}")
        check(values["image"]["repository"] == "ghcr.io/tollgate-dev/tollgate" and values["image"]["tag"] == "", "image: ghcr.io/tollgate-dev/tollgate, tag = appVersion")
        check(values["image"]["pullPolicy"] == "IfNotPresent", "pullPolicy IfNotPresent")

        check_crds(chart)

        rbac: dict = {}
        for name, (vals, release, namespace) in CASES.items():
            try:
                chart.validate_schema(vals or None)
            except helm.HelmError as e:
                check(False, f"[{name}] values rejected by the schema: {e}")
                continue
            check_lint(name, vals, namespace)
            try:
                check_release(name, vals, release, namespace, chart, defaults, rbac)
            except helm.HelmError as e:
                check(False, f"[{name}] render failed: {e}")

        for bad in BAD_VALUES:
            try:
                chart.render(bad, name="tollgate", namespace="tollgate", is_install=True)
                check(False, f"the schema accepts bad values {bad}")
            except helm.HelmValuesError as e:
                check("schema" in str(e), f"bad values {bad} rejected, but not by the schema: {e}")
            except helm.HelmError as e:
                check(False, f"bad values {bad}: unexpected error {type(e).__name__}: {e}")
    finish("chart")


if __name__ == "__main__":
    main()
