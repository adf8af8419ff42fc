"""Shared helpers of the packaging tests (run by tests/packaging.rs).

The tests need two PyPI packages: helm-python-sdk (Helm's own Go code,
bundled as a shared library, renders and lints the chart offline) and
kubernetes-validate (the Kubernetes OpenAPI schemas as JSON Schema).
They are pinned in tests/packaging/requirements.txt; tests/packaging.rs
installs them into target/ when they are missing (so `cargo test` alone
works on a fresh machine), and .ci/run installs them up front.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "tollgate"
# The Kubernetes version objects are validated against (k8s-openapi's
# feature in Cargo.toml is v1_33 too).
KUBE_VERSION = "1.33"


REQUIREMENTS = ROOT / "tests" / "packaging" / "requirements.txt"


def _pip_line() -> str:
    """How to install the pinned packages (tests/packaging/requirements.txt)."""
    return f"python3 -m pip install -r {REQUIREMENTS.relative_to(ROOT)}"


def _pins() -> dict[str, str]:
    try:
        text = REQUIREMENTS.read_text()
    except OSError:
        return {}
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+-]+)", text, re.M))


try:
    import helm_python  # noqa: F401
    import kubernetes_validate
    import yaml
except ImportError as missing:  # pragma: no cover - the message is the point
    sys.stderr.write(
        f"\nThe packaging tests need Python packages that are not installed ({missing}).\n"
        f"Install them with:\n\n    {_pip_line()}\n\n"
    )
    sys.exit(3)


def warn_on_version_drift() -> None:
    """Different versions than the pinned ones still run, with a note."""
    from importlib.metadata import PackageNotFoundError, version

    for name, pinned in _pins().items():
        try:
            got = version(name)
        except PackageNotFoundError:
            continue
        if got != pinned:
            sys.stderr.write(f"note: {name} {got} is installed; requirements.txt pins {pinned}\n")


# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------

FAILURES: list[str] = []
CHECKS = 0


def check(condition: object, message: str) -> bool:
    """Records a failed assertion and goes on, so one run shows them all."""
    global CHECKS
    CHECKS += 1
    if not condition:
        FAILURES.append(message)
        sys.stderr.write(f"FAIL: {message}\n")
    return bool(condition)


def finish(name: str) -> None:
    if FAILURES:
        sys.stderr.write(f"\n{name}: {len(FAILURES)} of {CHECKS} checks failed\n")
        sys.exit(1)
    print(f"{name}: {CHECKS} checks passed")
    sys.exit(0)


# ---------------------------------------------------------------------------
# YAML
# ---------------------------------------------------------------------------


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (PyYAML keeps the last
    one silently; the API server's strict decoding would not)."""


def _mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_all(text: str, source: str) -> list[dict]:
    """Every non-empty document of a multi-document YAML text."""
    try:
        docs = [d for d in yaml.load_all(text, Loader=StrictLoader) if d is not None]
    except yaml.YAMLError as e:
        check(False, f"{source}: not valid YAML: {e}")
        return []
    for d in docs:
        check(isinstance(d, dict), f"{source}: a document is not a mapping: {d!r}")
    return [d for d in docs if isinstance(d, dict)]


def describe(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    name = f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))
    return f"{obj.get('kind')} {name}"


def validate_k8s(obj: dict, source: str) -> None:
    """Validates one object against the Kubernetes schema (strict: unknown
    fields are errors)."""
    try:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        check(True, "")
    except kubernetes_validate.ValidationError as e:
        path = "/".join(str(p) for p in e.path)
        check(False, f"{source}: {describe(obj)}: invalid at {path or '(root)'}: {e.message}")
    except kubernetes_validate.SchemaNotFoundError as e:
        check(False, f"{source}: {describe(obj)}: no Kubernetes schema: {e}")


@contextlib.contextmanager
def native_stderr_filtered(drop: str):
    """Hides the lines containing `drop` that native code (Helm's Go
    logger, which helm_python.disable_logging does not reach in every call)
    writes to file descriptor 2; everything else is passed on."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            for line in tmp.read().decode(errors="replace").splitlines():
                if drop not in line:
                    sys.stderr.write(line + "\n")


# ---------------------------------------------------------------------------
# The binary
# ---------------------------------------------------------------------------


def run(cmd: list[str], timeout: float = 30, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL
    )


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """An environment with no TOLLGATE_* and no Kubernetes configuration, so
    only what a test passes reaches the binary."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TOLLGATE_") and not k.startswith("KUBERNETES_") and k != "KUBECONFIG"
    }
    env.update(extra or {})
    return env


def run_help_defaults(binary: str) -> dict[str, str]:
    """`tollgate run --help`: flag -> its `[default: ...]`."""
    out = run([binary, "run", "--help"], env=clean_env()).stdout
    defaults: dict[str, str] = {}
    flag = None
    for line in out.splitlines():
        m = re.match(r"\s+(?:-\w, )?(--[a-z0-9-]+)", line)
        if m:
            flag = m.group(1)
        # A default may hold brackets itself (`[::]:8080`).
        d = re.search(r"\[default: ((?:\[[^\]]*\]|[^\]])*)\]", line)
        if d and flag:
            defaults[flag] = d.group(1)
    return defaults


def check_json(cmd: list[str], timeout: float = 30) -> tuple[int, dict]:
    """Runs `tollgate check ... --output json`; exit code and report."""
    p = run(cmd + ["--output", "json"], timeout=timeout, env=clean_env())
    try:
        return p.returncode, json.loads(p.stdout)
    except json.JSONDecodeError:
        check(False, f"{' '.join(cmd)}: output is not JSON:\n{p.stdout}\n{p.stderr}")
        return p.returncode, {"routes": [], "diagnostics": []}
