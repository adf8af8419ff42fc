#!/usr/bin/env bash
# tollgate standalone quick start.
#
# Builds tollgate, starts three built-in echo backends (service `web` twice,
# service `api` once) where the EndpointSlices in this directory point, runs
# the proxy on these manifests, and shows host and path routing with curl.
# Then it keeps serving until Ctrl-C; with --once it stops after the curls.
#
# Environment: TOLLGATE_BIN (use this binary instead of building),
# HTTP_PORT (default 8080), ADMIN_PORT (default 9180).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
once=false
[ "${1:-}" = "--once" ] && once=true
http_port="${HTTP_PORT:-8080}"
admin_port="${ADMIN_PORT:-9180}"

bin="${TOLLGATE_BIN:-}"
if [ -z "$bin" ]; then
  echo "==> building tollgate (release)"
  (cd "$root" && cargo build --release --locked --quiet)
  bin="$root/target/release/tollgate"
fi

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

echo "==> starting echo backends on 127.0.0.1:9101, :9102 (web) and :9201 (api)"
"$bin" echo --listen 127.0.0.1:9101=web --listen 127.0.0.1:9102=web --listen 127.0.0.1:9201=api \
  >"${TMPDIR:-/tmp}/tollgate-quickstart-echo.log" 2>&1 &
pids+=($!)

echo "==> starting tollgate on 127.0.0.1:$http_port (admin :$admin_port) with $here"
"$bin" run --manifests "$here" \
  --http-addr "127.0.0.1:$http_port" --admin-addr "127.0.0.1:$admin_port" \
  >"${TMPDIR:-/tmp}/tollgate-quickstart.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$admin_port/readyz" >/dev/null 2>&1; then break; fi
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$admin_port/readyz" >/dev/null || { echo "tollgate did not become ready" >&2; exit 1; }

show() {
  local host="$1" path="$2"
  echo
  echo "\$ curl -H 'Host: $host' http://127.0.0.1:$http_port$path"
  # Print the status line and the fields that show where the request went.
  curl -sS -i -H "Host: $host" "http://127.0.0.1:$http_port$path" \
    | grep -E '^HTTP/|"(service|pod|path)"' | sed 's/^/  /'
}

show demo.local /              # -> web (round robin over two replicas)
show demo.local /              # -> web, the other replica
show demo.local /api/users     # -> api (Prefix /api)
show demo.local /apix          # -> web (/api matches whole segments only)
show eu.demo.local /           # -> api (wildcard *.demo.local)
show other.example /           # -> 404 (no rule for this host)

echo
echo "Routing table: $bin check --manifests $here"
echo "Metrics:       curl http://127.0.0.1:$admin_port/metrics"
echo "Logs:          ${TMPDIR:-/tmp}/tollgate-quickstart.log (one access-log line per request)"
if $once; then
  exit 0
fi
echo "Serving; edit the manifests in $here and they apply without restart. Ctrl-C stops."
wait
