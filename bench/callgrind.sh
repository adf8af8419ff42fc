#!/usr/bin/env bash
# Instructions per proxied request (user space), counted by callgrind: a
# figure that is repeatable on a noisy shared machine, unlike req/s.
# Usage: [CONNS=20] bench/callgrind.sh [seconds]   (needs valgrind, wrk, curl)
# CONNS=1 sends one request at a time: every request takes the same path
# (one wakeup each), so two builds compare to within a fraction of a per
# cent even on a loaded machine; with 20 connections the count also moves
# with how many requests share a wakeup, which depends on the load.
# ACCESS_LOG=true counts the access log too (written to a file; add
# TOLLGATE_ARGS="--log-format json" for the JSON lines).
# The figure is every thread's instructions over the requests counted, so
# background work (timers, the control plane) is spread over them: on a
# loaded machine (few requests per second under valgrind) it weighs more.
# The `worker` figure counts the data-plane worker thread(s) and the
# access-log writer only (callgrind --separate-threads), which moves much
# less with the load.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# HTTPS mode (issue 15): SCHEME=https runs bench/callgrind-tls.sh (also
# PROXY=nginx, MODE=handshake; see there).
if [ "${SCHEME:-http}" = https ]; then exec "$root/bench/callgrind-tls.sh" "$@"; fi
bin="${TOLLGATE_BIN:-$root/target/release/tollgate}"
secs="${1:-6}"
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
backend=$(free_port); http=$(free_port); admin=$(free_port)
# The manifests in a directory of their own: the access log written to
# "$work/log" must not wake the manifest watcher (a reload per batch).
mkdir -p "$work/m"
cat > "$work/m/m.yaml" <<YAML
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bench, namespace: bench}
spec:
  ingressClassName: tollgate
  rules:
  - host: bench.local
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: echo, port: {name: http}}}}
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: bench}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: echo-1, namespace: bench, labels: {kubernetes.io/service-name: echo}}
addressType: IPv4
ports: [{name: http, port: $backend}]
endpoints: [{addresses: ["127.0.0.1"]}]
YAML
"$bin" echo --fixed --listen "127.0.0.1:$backend=echo" >/dev/null 2>&1 &
pids+=($!)
valgrind --tool=callgrind --separate-threads=yes --compress-strings=no --callgrind-out-file="$work/cg.out" "$bin" run --manifests "$work/m" \
  --http-addr "127.0.0.1:$http" --admin-addr "127.0.0.1:$admin" --threads 1 --access-log "${ACCESS_LOG:-false}" ${TOLLGATE_ARGS:-} >"$work/log" 2>&1 &
vpid=$!
pids+=($vpid)
for _ in $(seq 1 100); do curl -fs "127.0.0.1:$admin/readyz" >/dev/null 2>&1 && break; sleep 0.3; done
wrk -t1 -c${CONNS:-20} -d1s -H 'Host: bench.local' "http://127.0.0.1:$http/" >/dev/null
count() { curl -fs "127.0.0.1:$admin/metrics" | awk '/^tollgate_requests_total\{ingress="bench\/bench".*status="200"/ {print $2}'; }
before=$(count)
callgrind_control -z "$vpid" >/dev/null 2>&1
wrk -t1 -c${CONNS:-20} -d"${secs}s" -H 'Host: bench.local' "http://127.0.0.1:$http/" | grep -E "requests in|Non-2xx|Socket errors" || true
after=$(count)
callgrind_control -d "$vpid" >/dev/null 2>&1
# One dump per thread (`cg.out.1-<thread>`); the dump does not name the
# thread, so the worker's (and the log writer's) are told by their functions.
# `--compress-strings=no` above: with compressed names a function is named
# only in the first dump that mentions it, so a thread's dump could lack
# the name that tells it (the log writer was then left out of `worker`);
# the writer's loop may be inlined into its thread's closure, so its dump is
# also told by the access log's source file.
ir=0; wir=0; lir=0
for out in "$work"/cg.out.1-*; do
  t=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); if ($1 == ".") $1 = 0; print $1}')
  [ -z "${DEBUG:-}" ] || echo "$out: $t" >&2
  ir=$((ir + ${t:-0}))
  if grep -q 'proxy..service..handle\|proxy..fastpath\|access_log..write_loop\|src/access_log/mod.rs' "$out"; then wir=$((wir + ${t:-0})); fi
  # The access-log writer thread (its loop is inlined into the thread's
  # entry, so the `worker` test above does not see it): the thread that
  # runs access_log's code and writes to stdout, and serves no request.
  if grep -q 'src/access_log/mod.rs' "$out" && grep -q 'StdoutLock' "$out" \
    && ! grep -q 'proxy..service..handle\|proxy..fastpath' "$out"; then lir=$((lir + ${t:-0})); fi
done
n=$((after - before))
echo "requests: $n  instructions: $ir  per request: $((ir / n))  worker threads: $((wir / n))  log writer: $((lir / n))"
if [ -n "${KEEP:-}" ]; then
  # The measured interval's profiles, one per thread (callgrind_annotate FILE).
  mkdir -p "$KEEP"; cp "$work"/cg.out* "$KEEP"/; echo "whole-run profiles (one per thread) kept in $KEEP"
fi
