"""The TrafficPolicy CRD (crds/trafficpolicy.yaml): a valid Kubernetes
object (kubernetes-validate); example policies checked against its
openAPIV3Schema with jsonschema (a good one passes, each bad value fails at
its field); and the binary's own validation (`tollgate check`, which has no
API server to lean on) refuses exactly what the schema refuses, at the same
field.

Usage: python3 crd.py PATH_TO_TOLLGATE_BINARY
"""

from __future__ import annotations

import copy
import sys
import tempfile
from pathlib import Path

import jsonschema
import yaml

from common import ROOT, check, check_json, finish, load_all, validate_k8s, warn_on_version_drift

BINARY = sys.argv[1]
CRD = ROOT / "crds" / "trafficpolicy.yaml"

GOOD = {
    "apiVersion": "tollgate.dev/v1alpha1",
    "kind": "TrafficPolicy",
    "metadata": {"name": "web-policy", "namespace": "shop"},
    "spec": {
        "targetRefs": [{"group": "networking.k8s.io", "kind": "Ingress", "name": "web"}],
        "rateLimit": {"requestsPerSecond": 50, "burst": 100, "connections": 20},
        "loadBalancer": {"algorithm": "consistent-hash", "hashBy": {"cookie": "session"}},
        "sessionAffinity": {"cookieName": "INGRESSCOOKIE", "maxAge": "1h", "path": "/", "mode": "balanced"},
        "timeouts": {"connect": "2s", "responseHeaders": "30s", "idle": "1m30s"},
        "retries": {"attempts": 2, "retryOn": ["connect-failure", "5xx"], "budget": 20},
        "cors": {
            "allowOrigins": ["https://shop.example.com", "https://*.example.com"],
            "allowMethods": ["GET", "POST"],
            "allowHeaders": ["Authorization"],
            "exposeHeaders": ["X-Request-Id"],
            "allowCredentials": True,
            "maxAge": 600,
        },
        "ipAllow": ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"],
        "ipDeny": ["10.66.0.0/16"],
        "maxRequestBodyBytes": 10485760,
        "headers": {
            "request": {"set": [{"name": "X-Env", "value": "prod"}], "add": [{"name": "X-Tag", "value": "a b"}], "remove": ["X-Debug"]},
            "response": {"set": [{"name": "Cache-Control", "value": "no-store"}]},
        },
    },
}

# (what, path in spec, bad value, the field tollgate names). Values the
# OpenAPI schema itself refuses (CEL rules need an API server, so they are
# left to the Rust unit tests).
BAD = [
    ("rps 0", ["rateLimit", "requestsPerSecond"], 0, "spec.rateLimit.requestsPerSecond"),
    ("negative burst", ["rateLimit", "burst"], -5, "spec.rateLimit.burst"),
    ("bad CIDR", ["ipAllow"], ["10.0.0.0/8", "10.0.0.0/33"], "spec.ipAllow[1]"),
    ("not an address", ["ipDeny"], ["example.com"], "spec.ipDeny[0]"),
    ("unknown algorithm", ["loadBalancer", "algorithm"], "least-conn", "spec.loadBalancer.algorithm"),
    ("bad duration", ["timeouts", "connect"], "5 seconds", "spec.timeouts.connect"),
    ("duration without unit", ["sessionAffinity", "maxAge"], "3600", "spec.sessionAffinity.maxAge"),
    ("too many attempts", ["retries", "attempts"], 11, "spec.retries.attempts"),
    ("budget over 100", ["retries", "budget"], 101, "spec.retries.budget"),
    ("unknown retry condition", ["retries", "retryOn"], ["reset"], "spec.retries.retryOn[0]"),
    ("unknown affinity mode", ["sessionAffinity", "mode"], "sticky", "spec.sessionAffinity.mode"),
    ("cookie name with space", ["loadBalancer", "hashBy", "cookie"], "my cookie", "spec.loadBalancer.hashBy.cookie"),
    ("relative cookie path", ["sessionAffinity", "path"], "app", "spec.sessionAffinity.path"),
    ("origin without scheme", ["cors", "allowOrigins"], ["shop.example.com"], "spec.cors.allowOrigins[0]"),
    ("negative CORS max age", ["cors", "maxAge"], -1, "spec.cors.maxAge"),
    ("negative body limit", ["maxRequestBodyBytes"], -1, "spec.maxRequestBodyBytes"),
    ("target of another kind", ["targetRefs"], [{"group": "networking.k8s.io", "kind": "Service", "name": "web"}], "spec.targetRefs[0].kind"),
    # (gateway.networking.k8s.io is a target group too, for HTTPRoute and
    # Gateway; pairing it with Ingress is a CEL rule, which jsonschema does
    # not run: the Rust tests cover it.)
    ("target of another group", ["targetRefs"], [{"group": "apps", "kind": "Ingress", "name": "web"}], "spec.targetRefs[0].group"),
    ("no target", ["targetRefs"], [], "spec.targetRefs"),
    ("header name with space", ["headers", "request", "set"], [{"name": "X Env", "value": "prod"}], "spec.headers.request.set[0].name"),
    ("header value with a line break", ["headers", "response", "set"], [{"name": "X-A", "value": "a\nb"}], "spec.headers.response.set[0].value"),
    ("too many removals", ["headers", "request", "remove"], [f"X-{i}" for i in range(17)], "spec.headers.request.remove"),
]


def with_value(path: list[str], value: object) -> dict:
    policy = copy.deepcopy(GOOD)
    node = policy["spec"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return policy


def ingress_and_service() -> list[dict]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"ports": [{"port": 80}]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "ingressClassName": "tollgate",
                "rules": [{"host": "shop.example", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}
                ]}}],
            },
        },
    ]


def policy_diagnostics(policy: dict) -> tuple[int, list[dict]]:
    """`tollgate check` on the policy plus the Ingress it targets."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "policy.yaml"
        path.write_text(yaml.safe_dump_all(ingress_and_service() + [policy]))
        code, report = check_json([BINARY, "check", "--manifests", str(path)])
    return code, [d for d in report.get("diagnostics", []) if d.get("kind") == "TrafficPolicy"]


def main() -> None:
    warn_on_version_drift()
    docs = load_all(CRD.read_text(), "crds/trafficpolicy.yaml")
    check(len(docs) == 1 and docs[0].get("kind") == "CustomResourceDefinition", "crds/trafficpolicy.yaml is one CRD")
    if not docs:
        finish("crd")
    crd = docs[0]
    validate_k8s(crd, "crds/trafficpolicy.yaml")
    # YAML 1.1 readers (kubectl's, PyYAML) turn unquoted keys such as `on`,
    # `yes` or `off` into booleans: every key must have stayed a string.
    def keys(node: object) -> list[object]:
        if isinstance(node, dict):
            return list(node) + [k for v in node.values() for k in keys(v)]
        if isinstance(node, list):
            return [k for v in node for k in keys(v)]
        return []
    odd = [k for k in keys(crd) if not isinstance(k, str)]
    check(not odd, f"crds/trafficpolicy.yaml has keys a YAML 1.1 reader does not see as strings: {odd}")
    spec = crd.get("spec", {})
    check(spec.get("group") == "tollgate.dev" and spec.get("scope") == "Namespaced", "group tollgate.dev, namespaced")
    check(spec.get("names", {}).get("kind") == "TrafficPolicy", "kind TrafficPolicy")
    versions = spec.get("versions", [])
    check([v.get("name") for v in versions] == ["v1alpha1"], f"one version, v1alpha1: {versions and [v.get('name') for v in versions]}")
    version = versions[0]
    check(version.get("served") and version.get("storage"), "v1alpha1 is served and stored")
    check(version.get("subresources", {}).get("status") == {}, "the status subresource is enabled")
    schema = version["schema"]["openAPIV3Schema"]
    validator = jsonschema.Draft4Validator(schema)

    errors = sorted(validator.iter_errors(GOOD), key=str)
    check(not errors, f"the good policy fails the schema: {[e.message for e in errors]}")
    code, diagnostics = policy_diagnostics(GOOD)
    check(code == 0 and not diagnostics, f"tollgate check refuses the good policy: {diagnostics}")

    for what, path, value, field in BAD:
        policy = with_value(path, value)
        errors = list(validator.iter_errors(policy))
        check(errors, f"{what}: the schema accepts {path} = {value!r}")
        where = {"/".join(str(p) for p in e.absolute_path) for e in errors}
        wanted = "spec/" + "/".join(path)
        check(any(w.startswith(wanted) for w in where), f"{what}: the schema errors are at {where}, not {wanted}")
        code, diagnostics = policy_diagnostics(policy)
        fields = [d.get("field") for d in diagnostics if d.get("severity") == "rejected"]
        check(code == 1 and field in fields, f"{what}: tollgate check names {fields}, not {field} (exit {code})")
    finish("crd")


if __name__ == "__main__":
    main()
