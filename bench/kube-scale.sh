#!/usr/bin/env bash
# Kubernetes mode at scale: the release tollgate against the in-process fake
# API server with 10,000 Ingresses, 20,000 Services and 20,000 EndpointSlices
# (100,000 endpoints). Measures start-up and RSS, Ingress and endpoint
# propagation latency, CPU under 100 EndpointSlice updates/s, RSS after the
# churn. All of it lives in benches/kube_scale.rs; this only builds and runs.
#
# Usage: bench/kube-scale.sh              # ~1 min after the build
#        QUICK=1 bench/kube-scale.sh      # 1,000 Ingresses, short phases (~15 s)
#        PERF=1 bench/kube-scale.sh       # also perf-record each phase (perturbs the figures)
#        NO_BUILD=1 bench/kube-scale.sh   # skip `cargo build --release`
#        PROFILE=profiling bench/kube-scale.sh  # build and measure the `profiling`
#                                         # profile (release without fat LTO: minutes, not 15)
# Any KUBE_SCALE_* knob of benches/kube_scale.rs passes through.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
profile="${PROFILE:-release}"
if [ -z "${NO_BUILD:-}" ]; then
  cargo build --profile "$profile"
fi
export TOLLGATE_PROFILE="$profile"
if [ -n "${QUICK:-}" ]; then
  export KUBE_SCALE_INGRESSES="${KUBE_SCALE_INGRESSES:-1000}"
  export KUBE_SCALE_INGRESS_N="${KUBE_SCALE_INGRESS_N:-10}"
  export KUBE_SCALE_ENDPOINT_N="${KUBE_SCALE_ENDPOINT_N:-20}"
  export KUBE_SCALE_CHURN_SECS="${KUBE_SCALE_CHURN_SECS:-3}"
fi
if [ -n "${PERF:-}" ]; then
  export KUBE_SCALE_PERF=1
fi
# The bench harness is built with the same profile (`bench` is release's).
if [ "$profile" = release ]; then
  cargo bench --bench kube_scale
else
  cargo bench --profile "$profile" --bench kube_scale
fi
if [ -n "${PERF:-}" ]; then
  echo
  echo "profiles: perf report -i target/kube-scale/perf-ingress.data --no-children --sort symbol"
  echo "          (also perf-endpoints.data, perf-churn.data)"
fi
