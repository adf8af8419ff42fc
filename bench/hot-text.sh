#!/usr/bin/env bash
# Regenerates link/hot-text.ld, the linker script that places the functions
# the quick start executes next to each other at the start of the binary's
# code (see build.rs, `hot_text_layout`).
#
# Why: the kernel maps a file-backed page together with the cached pages
# around it (64 kB "fault-around" windows). Executed functions scattered over
# the code make most of it resident; gathered, they take a few windows.
#
# How: runs the standalone quick start under callgrind (start-up, requests
# to every route, the admin endpoints, shutdown), takes every executed
# function that is a symbol of the binary, and writes one input-section
# pattern per function, with the build-specific parts of its name (the
# legacy mangling's `17h<hash>E` and LLVM's `.llvm.<n>` suffix) replaced by
# `*`, so the script keeps matching after code or dependency changes and in
# other build profiles. A function that no longer exists simply matches
# nothing; a new hot function stays where the linker puts it until the next
# regeneration.
#
# Usage: [TOLLGATE_BIN=target/release/tollgate] [MERGE=1] bench/hot-text.sh
#   MERGE=1 keeps the patterns already in link/hot-text.ld and adds the new
#   ones (e.g. to cover a profiling build and a release build).
#   REQUESTS=100 requests per route.
# Needs valgrind, nm, curl, python3. Ports: the quick start's backends
# (127.0.0.1:9101, :9102, :9201) and free loopback ports for tollgate.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
TOLLGATE_BIN=${TOLLGATE_BIN:-$REPO_ROOT/target/release/tollgate}
REQUESTS=${REQUESTS:-100}
OUT=$REPO_ROOT/link/hot-text.ld
START_TIMEOUT_S=${START_TIMEOUT_S:-120}
[[ "$REQUESTS" =~ ^[0-9]+$ && "$REQUESTS" -ge 1 && "$REQUESTS" -le 10000 ]] || { echo "REQUESTS must be 1..10000" >&2; exit 1; }
for tool in valgrind nm curl python3; do
    command -v "$tool" >/dev/null || { echo "error: '$tool' not found" >&2; exit 1; }
done
[[ -x "$TOLLGATE_BIN" ]] || { echo "error: no tollgate binary at $TOLLGATE_BIN" >&2; exit 1; }

TMP=$(mktemp -d /tmp/tollgate-hot-text.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
source "$SCRIPT_DIR/lib.sh"

read -r HTTP HTTPS ADMIN <<<"$(free_ports 3)"
"$TOLLGATE_BIN" echo --listen 127.0.0.1:9101=web --listen 127.0.0.1:9102=web \
    --listen 127.0.0.1:9201=api >"$TMP/echo.log" 2>&1 &
PIDS+=($!)
valgrind --tool=callgrind --demangle=no --callgrind-out-file="$TMP/cg.out" \
    "$TOLLGATE_BIN" run --manifests "$REPO_ROOT/examples/quickstart" \
    --http-addr "127.0.0.1:$HTTP" --https-addr "127.0.0.1:$HTTPS" \
    --admin-addr "127.0.0.1:$ADMIN" >"$TMP/run.log" 2>&1 &
VPID=$!
PIDS+=("$VPID")
wait_url "tollgate (under callgrind)" "$VPID" "http://127.0.0.1:$ADMIN/readyz"
log "tollgate ready under callgrind; $REQUESTS requests per route"

# One curl process, keep-alive, every route of examples/quickstart/ingress.yaml.
for _ in $(seq 1 "$REQUESTS"); do
    printf 'url = "http://127.0.0.1:%s/"\nheader = "Host: demo.local"\noutput = /dev/null\n' "$HTTP"
    printf 'url = "http://127.0.0.1:%s/api/items"\nheader = "Host: demo.local"\noutput = /dev/null\n' "$HTTP"
    printf 'url = "http://127.0.0.1:%s/page"\nheader = "Host: www.demo.local"\noutput = /dev/null\n' "$HTTP"
    printf 'url = "http://127.0.0.1:%s/"\nheader = "Host: unknown.example"\noutput = /dev/null\n' "$HTTP"
done >"$TMP/urls.cfg"
curl -s -K "$TMP/urls.cfg" || true
for path in metrics healthz readyz; do curl -s -o /dev/null "http://127.0.0.1:$ADMIN/$path" || true; done
sleep 1
kill -TERM "$VPID"
wait "$VPID" || true
nm --defined-only "$TOLLGATE_BIN" | awk 'NF == 3 && $2 ~ /^[tTwW]$/ { print $3 }' >"$TMP/symbols.txt"

mkdir -p "$(dirname "$OUT")"
EXISTING=/dev/null
[[ "${MERGE:-0}" == 1 && -f "$OUT" ]] && EXISTING=$OUT
python3 "$SCRIPT_DIR/hot-text.py" --callgrind "$TMP/cg.out" --symbols "$TMP/symbols.txt" \
    --existing "$EXISTING" --out "$OUT" --binary "$(basename "$TOLLGATE_BIN")"
