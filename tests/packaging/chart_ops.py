"""The chart's values for every cluster and for operations (issue 18),
rendered by Helm's own code (helm-python-sdk) and every object validated
against the Kubernetes schemas (kubernetes-validate): the admission webhook
(Helm-generated and cert-manager certificates), Deployment or DaemonSet,
hostNetwork and hostPort, dual-stack Services, node ports, the internal
load balancer, extra volumes, containers, init containers, envFrom and
objects, overridable security contexts (OpenShift restricted-v2 without a
fixed uid), ServiceMonitor relabelings and namespace, the PrometheusRule
and the Grafana dashboard, whose metric names must all be ones the binary
exposes (the README's metric table, which tests/observability.rs checks
against the binary's /metrics).

Usage: python3 chart_ops.py PATH_TO_TOLLGATE_BINARY
"""

from __future__ import annotations

import base64
import json
import re
import sys

from common import CHART, ROOT, check, describe, finish, load_all, native_stderr_filtered, run, validate_k8s

import helm_python as helm

BINARY = sys.argv[1]
# CRDs of other projects: no schema in kubernetes-validate; their apiVersion
# is checked instead.
FOREIGN = {
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "PrometheusRule": "monitoring.coreos.com/v1",
    "Certificate": "cert-manager.io/v1",
    "Issuer": "cert-manager.io/v1",
}
# Metrics the alerts may read that the binary does not expose: Prometheus'
# own and kube-state-metrics'.
EXTERNAL_METRICS = {"up", "kube_deployment_status_replicas_ready", "kube_daemonset_status_number_ready"}
# PromQL words that look like metric names.
PROMQL_WORDS = {
    "sum", "by", "rate", "min", "max", "time", "count", "histogram_quantile", "le",
    "vector", "or", "and", "unless", "without", "on", "ignoring", "avg",
}

OPENSHIFT = {
    "podSecurityContext": {"runAsUser": None, "runAsGroup": None, "fsGroup": None},
    "containerSecurityContext": {"runAsUser": None, "runAsGroup": None},
}


def render(values: dict, name: str, release: str = "tollgate", namespace: str = "tollgate") -> dict[str, list[dict]]:
    """Renders and validates; returns the objects by kind."""
    with native_stderr_filtered("found symbolic link in path"):
        report = helm.lint(CHART, values or None, strict=True, namespace=namespace, kube_version="v1.33.0")
    problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    check(not problems and not report.get("errors"), f"[{name}] helm lint --strict: {problems} {report.get('errors')}")
    with native_stderr_filtered("found symbolic link in path"):
        with helm.Chart.load(CHART) as chart:
            rendered = chart.render(values or None, name=release, namespace=namespace, is_install=True)
    by_kind: dict[str, list[dict]] = {}
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for obj in load_all(text, f"[{name}] {path}"):
            by_kind.setdefault(obj["kind"], []).append(obj)
            if obj["kind"] in FOREIGN:
                check(obj.get("apiVersion") == FOREIGN[obj["kind"]], f"[{name}] {describe(obj)} apiVersion")
            elif obj["kind"] != "GatewayClass":
                validate_k8s(obj, f"[{name}] {path}")
    return by_kind


def workload(objs: dict[str, list[dict]]) -> dict:
    found = objs.get("Deployment", []) + objs.get("DaemonSet", [])
    check(len(found) == 1, f"one workload: {[describe(o) for o in found]}")
    return found[0] if found else {}


def container(objs: dict[str, list[dict]]) -> dict:
    pod = workload(objs).get("spec", {}).get("template", {}).get("spec", {})
    return next((c for c in pod.get("containers", []) if c["name"] == "tollgate"), {})


def flag(args: list[str], name: str) -> str | None:
    return next((a.split("=", 1)[1] for a in args if a.startswith(name + "=")), None)


def binary_accepts(name: str, args: list[str]) -> None:
    p = run([BINARY, *args, "--help"])
    check(p.returncode == 0, f"[{name}] `tollgate {' '.join(args)} --help`: {p.stderr.strip()}")


# ---------------------------------------------------------------------------


def check_defaults() -> None:
    objs = render({}, "defaults")
    args = container(objs).get("args", [])
    for f, port in (("--http-addr", 8080), ("--https-addr", 8443), ("--admin-addr", 9180)):
        check(flag(args, f) == f"[::]:{port}", f"[defaults] {f} is dual-stack [::]:{port}: {flag(args, f)}")
    for kind in ("ValidatingWebhookConfiguration", "PrometheusRule", "ConfigMap", "DaemonSet"):
        check(kind not in objs, f"[defaults] no {kind} unless asked for")
    check(flag(args, "--admission-addr") is None, "[defaults] no webhook flags")
    services = objs.get("Service", [])
    check(len(services) == 2, f"[defaults] two Services: {[describe(s) for s in services]}")
    for s in services:
        check("ipFamilies" not in s["spec"] and "ipFamilyPolicy" not in s["spec"], "[defaults] the cluster's IP families")


def check_webhook_generated() -> None:
    name = "admission webhook, Helm-generated certificate"
    values = {"admissionWebhook": {"enabled": True, "failurePolicy": "Fail", "timeoutSeconds": 5},
              "gatewayAPI": {"enabled": True}}
    objs = render(values, name, namespace="edge")
    c = container(objs)
    args = c.get("args", [])
    check(flag(args, "--admission-addr") == "[::]:8444", f"[{name}] --admission-addr: {args}")
    check(flag(args, "--admission-certificate") == "edge/tollgate-admission-tls", f"[{name}] --admission-certificate")
    binary_accepts(name, args)
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    check(ports.get("admission") == 8444, f"[{name}] container port admission: {ports}")
    secret = next((s for s in objs.get("Secret", []) if s["metadata"]["name"] == "tollgate-admission-tls"), {})
    check(secret.get("type") == "kubernetes.io/tls", f"[{name}] a kubernetes.io/tls Secret")
    crt = base64.b64decode(secret.get("data", {}).get("tls.crt", "")).decode()
    check("BEGIN CERTIFICATE" in crt, f"[{name}] the Secret holds a PEM certificate")
    svc = next((s for s in objs.get("Service", []) if s["metadata"]["name"] == "tollgate-admission"), {})
    check([p.get("targetPort") for p in svc.get("spec", {}).get("ports", [])] == ["admission"], f"[{name}] Service → admission port")
    vwcs = objs.get("ValidatingWebhookConfiguration", [])
    check(len(vwcs) == 1, f"[{name}] one ValidatingWebhookConfiguration")
    hooks = vwcs[0]["webhooks"] if vwcs else []
    check(len(hooks) == 2, f"[{name}] two webhooks (Ingresses; policies and routes)")
    for h in hooks:
        check(h["failurePolicy"] == "Fail" and h["timeoutSeconds"] == 5, f"[{name}] failurePolicy and timeout: {h['name']}")
        check(h["sideEffects"] == "None" and h["admissionReviewVersions"] == ["v1"], f"[{name}] sideEffects None, v1 reviews")
        cc = h["clientConfig"]
        check(cc["service"] == {"name": "tollgate-admission", "namespace": "edge", "path": "/validate", "port": 443}, f"[{name}] clientConfig {cc}")
        check(cc.get("caBundle") == secret.get("data", {}).get("ca.crt"), f"[{name}] caBundle is the generated CA")
        for rule in h["rules"]:
            check(set(rule["operations"]) == {"CREATE", "UPDATE"}, f"[{name}] CREATE and UPDATE only (DELETE is always allowed)")
    ingress_hook = hooks[0] if hooks else {}
    check(ingress_hook.get("rules", [{}])[0].get("resources") == ["ingresses"], f"[{name}] first webhook: Ingresses")
    conditions = [m["expression"] for m in ingress_hook.get("matchConditions", [])]
    check(any("ingressClassName == 'tollgate'" in e for e in conditions), f"[{name}] scoped to our class: {conditions}")
    groups = {g for h in hooks[1:] for r in h["rules"] for g in r["apiGroups"]}
    check(groups == {"tollgate.dev", "gateway.networking.k8s.io"}, f"[{name}] policies and Gateway API: {groups}")

    # Default failurePolicy is Ignore, and without Gateway API only policies.
    objs = render({"admissionWebhook": {"enabled": True}}, "admission webhook defaults")
    hooks = objs.get("ValidatingWebhookConfiguration", [{}])[0].get("webhooks", [])
    check(all(h["failurePolicy"] == "Ignore" for h in hooks), "[admission webhook defaults] failurePolicy Ignore")
    groups = {g for h in hooks[1:] for r in h["rules"] for g in r["apiGroups"]}
    check(groups == {"tollgate.dev"}, f"[admission webhook defaults] no Gateway API rules: {groups}")

    # The certificate Secret must be watched.
    try:
        with native_stderr_filtered("found symbolic link in path"):
            with helm.Chart.load(CHART) as chart:
                chart.render({"admissionWebhook": {"enabled": True}, "watchNamespaces": ["apps"]},
                             name="tollgate", namespace="tollgate", is_install=True)
        check(False, "a webhook whose Secret is not in watchNamespaces renders")
    except helm.HelmError as e:
        check("watchNamespaces" in str(e), f"the render fails naming watchNamespaces: {e}")


def check_webhook_cert_manager() -> None:
    name = "admission webhook, cert-manager"
    objs = render({"admissionWebhook": {"enabled": True, "certManager": {"enabled": True}}}, name)
    check(len(objs.get("Issuer", [])) == 1 and len(objs.get("Certificate", [])) == 1, f"[{name}] a self-signed Issuer and a Certificate")
    cert = objs.get("Certificate", [{}])[0]
    check(cert.get("spec", {}).get("secretName") == "tollgate-admission-tls", f"[{name}] Certificate → the Secret the controller reads")
    check("tollgate-admission.tollgate.svc" in cert.get("spec", {}).get("dnsNames", []), f"[{name}] Certificate names the Service")
    check(not [s for s in objs.get("Secret", []) if s["metadata"]["name"] == "tollgate-admission-tls"], f"[{name}] no Helm-generated Secret")
    vwc = objs.get("ValidatingWebhookConfiguration", [{}])[0]
    check(vwc["metadata"].get("annotations", {}).get("cert-manager.io/inject-ca-from") == "tollgate/tollgate-admission", f"[{name}] CA injected by cert-manager")
    check(all("caBundle" not in h["clientConfig"] for h in vwc.get("webhooks", [])), f"[{name}] no caBundle of Helm's")
    objs = render({"admissionWebhook": {"enabled": True, "certManager": {"enabled": True, "issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}}}}, name + ", own issuer")
    check("Issuer" not in objs, f"[{name}, own issuer] no Issuer created")
    check(objs.get("Certificate", [{}])[0]["spec"]["issuerRef"] == {"name": "corp-ca", "kind": "ClusterIssuer"}, f"[{name}, own issuer] issuerRef")


def check_every_cluster() -> None:
    name = "DaemonSet, hostNetwork, hostPort, dual-stack, node ports, internal LB, extras"
    values = {
        "kind": "DaemonSet",
        "hostNetwork": True,
        "hostPort": {"enabled": True, "ports": {"http": 80, "https": 443}},
        "autoscaling": {"enabled": True},
        "service": {
            "type": "NodePort",
            "ipFamilies": ["IPv6", "IPv4"],
            "ipFamilyPolicy": "PreferDualStack",
            "nodePorts": {"http": 30080, "https": 30443},
            "internal": {"enabled": True, "annotations": {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"},
                         "loadBalancerSourceRanges": ["10.0.0.0/8"]},
        },
        "extraVolumes": [{"name": "geoip", "emptyDir": {}}],
        "extraVolumeMounts": [{"name": "geoip", "mountPath": "/geoip", "readOnly": True}],
        "extraInitContainers": [{"name": "fetch", "image": "busybox:1.36", "command": ["true"],
                                 "volumeMounts": [{"name": "geoip", "mountPath": "/geoip"}]}],
        "extraContainers": [{"name": "sidecar", "image": "busybox:1.36", "command": ["sleep", "infinity"]}],
        "envFrom": [{"configMapRef": {"name": "tollgate-env"}}, {"secretRef": {"name": "tollgate-secrets"}}],
        "extraObjects": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "tollgate-env", "namespace": "{{ .Release.Namespace }}"},
             "data": {"TOLLGATE_IDLE_TIMEOUT": "90s"}},
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-extra\n  namespace: {{ .Release.Namespace }}\ndata: {}\n",
        ],
    }
    objs = render(values, name)
    check("Deployment" not in objs and len(objs.get("DaemonSet", [])) == 1, f"[{name}] a DaemonSet instead of the Deployment")
    check("HorizontalPodAutoscaler" not in objs and "PodDisruptionBudget" not in objs, f"[{name}] no HPA or PDB for a DaemonSet")
    ds = workload(objs)
    pod = ds.get("spec", {}).get("template", {}).get("spec", {})
    check(pod.get("hostNetwork") is True and pod.get("dnsPolicy") == "ClusterFirstWithHostNet", f"[{name}] hostNetwork with its DNS policy")
    c = container(objs)
    host_ports = {p["name"]: p.get("hostPort") for p in c.get("ports", [])}
    check(host_ports == {"http": 80, "https": 443, "admin": None}, f"[{name}] hostPorts {host_ports}")
    check(pod.get("volumes") == values["extraVolumes"], f"[{name}] extraVolumes")
    check(c.get("volumeMounts") == values["extraVolumeMounts"], f"[{name}] extraVolumeMounts")
    check([i["name"] for i in pod.get("initContainers", [])] == ["fetch"], f"[{name}] extraInitContainers")
    check([x["name"] for x in pod.get("containers", [])] == ["tollgate", "sidecar"], f"[{name}] extraContainers")
    check(c.get("envFrom") == values["envFrom"], f"[{name}] envFrom")
    services = {s["metadata"]["name"]: s for s in objs.get("Service", [])}
    main, internal = services.get("tollgate", {}), services.get("tollgate-internal", {})
    for s in (main, internal):
        check(s.get("spec", {}).get("ipFamilies") == ["IPv6", "IPv4"] and s["spec"].get("ipFamilyPolicy") == "PreferDualStack", f"[{name}] {describe(s)} IP families")
        node_ports = {p["name"]: p.get("nodePort") for p in s.get("spec", {}).get("ports", [])}
        check(node_ports == {"http": 30080, "https": 30443}, f"[{name}] {describe(s)} node ports {node_ports}")
    check(internal.get("spec", {}).get("type") == "LoadBalancer", f"[{name}] internal Service is a LoadBalancer")
    check(internal.get("metadata", {}).get("annotations") == values["service"]["internal"]["annotations"], f"[{name}] internal annotations")
    check(internal.get("spec", {}).get("loadBalancerSourceRanges") == ["10.0.0.0/8"], f"[{name}] internal source ranges")
    configmaps = sorted(m["metadata"]["name"] for m in objs.get("ConfigMap", []))
    check(configmaps == ["tollgate-env", "tollgate-extra"], f"[{name}] extraObjects rendered and templated: {configmaps}")


def check_security_contexts() -> None:
    name = "OpenShift restricted-v2 (no fixed uid)"
    objs = render(OPENSHIFT, name)
    pod = workload(objs)["spec"]["template"]["spec"]
    psc, csc = pod.get("securityContext", {}), container(objs).get("securityContext", {})
    for where, sc in (("pod", psc), ("container", csc)):
        check("runAsUser" not in sc and "runAsGroup" not in sc, f"[{name}] {where}: no fixed uid/gid: {sc}")
        check(sc.get("runAsNonRoot") is True and sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"[{name}] {where}: still non-root, RuntimeDefault")
    check("fsGroup" not in psc, f"[{name}] no fixed fsGroup")
    # restricted-v2: no privilege escalation, every capability dropped.
    check(csc.get("allowPrivilegeEscalation") is False and csc.get("capabilities", {}).get("drop") == ["ALL"], f"[{name}] restricted-v2 container rules")
    check(csc.get("readOnlyRootFilesystem") is True, f"[{name}] read-only root filesystem kept")

    name = "securityContext overridden"
    objs = render({"containerSecurityContext": {"readOnlyRootFilesystem": False}, "podSecurityContext": {"runAsUser": 1000}}, name)
    check(container(objs)["securityContext"]["readOnlyRootFilesystem"] is False, f"[{name}] container override")
    check(workload(objs)["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 1000, f"[{name}] pod override")
    docs = (ROOT / "docs" / "install.md").read_text()
    check("restricted-v2" in docs and "runAsUser: null" in docs, "docs/install.md documents the OpenShift values")


def metric_names_in(expr: str) -> set[str]:
    """Metric names in a PromQL expression (label matchers, strings and
    durations removed; histogram suffixes folded)."""
    expr = re.sub(r'"[^"]*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    names = set()
    for word in re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", expr):
        if word in PROMQL_WORDS or word.startswith("$") or re.fullmatch(r"\d+[smhd]?", word):
            continue
        if "_" not in word and word not in EXTERNAL_METRICS:
            continue
        names.add(re.sub(r"_(bucket|sum|count)$", "", word) if word.endswith(("_bucket", "_sum", "_count")) and not word.endswith("_total") else word)
    return names


def check_monitoring() -> None:
    # The README's metric table: tests/observability.rs checks it against
    # what the binary's /metrics exposes, so the dashboard and alerts are
    # checked against the binary through it.
    exposed = set(re.findall(r"^\| `((?:tollgate|process)_[a-z_]+)`", (ROOT / "README.md").read_text(), re.M))
    check(len(exposed) > 20, f"README metric table read ({len(exposed)} names)")
    name = "ServiceMonitor, PrometheusRule, Grafana dashboard"
    relabel = [{"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}]
    values = {"metrics": {
        "serviceMonitor": {"enabled": True, "namespace": "monitoring", "relabelings": relabel,
                           "metricRelabelings": [{"action": "drop", "regex": "go_.*", "sourceLabels": ["__name__"]}]},
        "prometheusRule": {"enabled": True, "namespace": "monitoring", "labels": {"release": "prom"},
                           "additionalRules": [{"alert": "Extra", "expr": "tollgate_reloads_total > 1000"}]},
        "grafanaDashboard": {"enabled": True, "namespace": "monitoring", "annotations": {"grafana_folder": "Ingress"}},
    }}
    objs = render(values, name)
    mon = objs.get("ServiceMonitor", [{}])[0]
    check(mon["metadata"]["namespace"] == "monitoring", f"[{name}] ServiceMonitor namespace")
    check(mon["spec"]["namespaceSelector"]["matchNames"] == ["tollgate"], f"[{name}] still scrapes the release namespace")
    ep = mon["spec"]["endpoints"][0]
    check(ep.get("relabelings") == relabel and ep.get("metricRelabelings"), f"[{name}] relabelings passed through")
    rules = objs.get("PrometheusRule", [{}])[0]
    check(rules["metadata"]["namespace"] == "monitoring" and rules["metadata"]["labels"].get("release") == "prom", f"[{name}] PrometheusRule namespace and labels")
    alerts = {r.get("alert"): r for g in rules["spec"]["groups"] for r in g["rules"]}
    for alert in ("TollgateHigh5xxRatio", "TollgateConfigApplyFailing", "TollgateCertificateExpiringSoon", "TollgateNoReadyReplica", "Extra"):
        check(alert in alerts, f"[{name}] alert {alert}")
    check("14 * 24 * 3600" in alerts.get("TollgateCertificateExpiringSoon", {}).get("expr", ""), f"[{name}] certificate alert: 14 days")
    ds_rules = render({"kind": "DaemonSet", "metrics": {"prometheusRule": {"enabled": True}}}, "PrometheusRule for a DaemonSet")
    expr = {r.get("alert"): r for g in ds_rules["PrometheusRule"][0]["spec"]["groups"] for r in g["rules"]}["TollgateNoReadyReplica"]["expr"]
    check("kube_daemonset_status_number_ready" in expr, "[PrometheusRule for a DaemonSet] replica alert reads the DaemonSet")

    cm = next((m for m in objs.get("ConfigMap", []) if m["metadata"]["name"] == "tollgate-dashboard"), {})
    check(cm.get("metadata", {}).get("labels", {}).get("grafana_dashboard") == "1", f"[{name}] dashboard ConfigMap labelled grafana_dashboard")
    check(cm.get("metadata", {}).get("namespace") == "monitoring", f"[{name}] dashboard namespace")
    check(cm.get("metadata", {}).get("annotations", {}).get("grafana_folder") == "Ingress", f"[{name}] dashboard annotations")
    dashboard = json.loads(cm.get("data", {}).get("tollgate.json", "{}"))
    check(dashboard == json.loads((CHART / "dashboards" / "tollgate.json").read_text()), f"[{name}] the ConfigMap carries dashboards/tollgate.json")

    queried: dict[str, set[str]] = {}
    for panel in dashboard.get("panels", []):
        for t in panel.get("targets", []):
            for m in metric_names_in(t["expr"]):
                queried.setdefault(m, set()).add(f"panel {panel['title']!r}")
    for var in dashboard.get("templating", {}).get("list", []):
        q = var.get("query")
        if isinstance(q, dict):
            for m in re.findall(r"label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*)", q.get("query", "")):
                queried.setdefault(m, set()).add(f"variable {var['name']}")
    for alert, rule in alerts.items():
        if alert == "Extra":
            continue
        for m in metric_names_in(rule["expr"]):
            queried.setdefault(m, set()).add(f"alert {alert}")
    check(len(queried) >= 8, f"the dashboard and alerts query the metrics: {sorted(queried)}")
    for m, where in sorted(queried.items()):
        check(m in exposed or m in EXTERNAL_METRICS, f"{m} ({', '.join(sorted(where))}) is not a metric the binary exposes (README metric table)")
    for must in ("tollgate_requests_total", "tollgate_request_duration_seconds", "tollgate_upstream_response_duration_seconds",
                 "tollgate_config_last_apply_success", "tollgate_certificate_expiry_timestamp_seconds"):
        check(must in queried, f"the dashboard or alerts use {must}")


def main() -> None:
    helm.disable_logging()
    check_defaults()
    check_webhook_generated()
    check_webhook_cert_manager()
    check_every_cluster()
    check_security_contexts()
    check_monitoring()
    finish("chart_ops")


if __name__ == "__main__":
    main()
