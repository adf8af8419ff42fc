#!/usr/bin/env bash
# Memory footprint of the standalone quick start: start it, send N requests
# (default 1000) spread over every Ingress route it defines, print the proxy's
# VmRSS (idle, after the requests, peak).
#
# Mode selection:
#   - examples/quickstart/run.sh exists (and QS_DIRECT!=1): run it exactly as a
#     user would (in its own session), find the `tollgate run` process it started
#     and read its --http-addr / --admin-addr from its command line.
#   - otherwise: start `tollgate echo` on every address:port the quick start's
#     EndpointSlices point at, then `tollgate run --manifests examples/quickstart`
#     on free loopback ports.
#
# Environment knobs:
#   REQUESTS=1000        number of requests (curl, one process, keep-alive)
#   BURST=0              if >0, additionally run `wrk -c50 -d${BURST}s` and report RSS after it
#   QS_DIR=examples/quickstart
#   QS_DIRECT=1          ignore run.sh, use the direct mode
#   QS_HTTP_ADDR=h:p     override the proxy's HTTP address (run.sh mode)
#   QS_ADMIN_ADDR=h:p    override the admin address (run.sh mode)
#   HTTP_PORT / ADMIN_PORT   passed to run.sh (default: free ports, so a running
#                        quick start on 8080/9180 is not disturbed)
#   BUILD_TIMEOUT_S=900  run.sh mode: how long run.sh may take (it builds) before
#                        the proxy process must appear
#   TOLLGATE_BIN=path  NO_BUILD=1  KEEP_TMP=1   as in wrk-vs-nginx.sh
#   QS_INSPECT=cmd       run `cmd PID` (e.g. a pagemap reader) after the figures,
#                        before the proxy is stopped
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
QS_DIR=${QS_DIR:-$REPO_ROOT/examples/quickstart}
REQUESTS=${REQUESTS:-1000}
BURST=${BURST:-0}
START_TIMEOUT_S=${START_TIMEOUT_S:-60}
BUILD_TIMEOUT_S=${BUILD_TIMEOUT_S:-900}
TOLLGATE_BIN=${TOLLGATE_BIN:-$REPO_ROOT/target/release/tollgate}
[[ "$REQUESTS" =~ ^[0-9]+$ && "$REQUESTS" -ge 1 && "$REQUESTS" -le 1000000 ]] || { echo "REQUESTS must be 1..1000000" >&2; exit 1; }
[[ "$BURST" =~ ^[0-9]+$ && "$BURST" -le 600 ]] || { echo "BURST must be 0..600" >&2; exit 1; }

for tool in curl python3 awk; do
    command -v "$tool" >/dev/null || { echo "error: '$tool' not found" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/tollgate-qs.XXXXXX)
PIDS=()      # plain processes we started
PGIDS=()     # process groups we started (run.sh mode)

cleanup() {
    local rc=$? p
    trap - EXIT INT TERM
    for p in "${PGIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 1 50); do            # ≤5 s in total
        local any=0
        for p in "${PGIDS[@]}"; do kill -0 -- "-$p" 2>/dev/null && any=1; done
        for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && any=1; done
        (( any )) || break
        sleep 0.1
    done
    for p in "${PGIDS[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    remove_tmp
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"



[[ -d "$QS_DIR" ]] || die "quick start directory $QS_DIR does not exist (yet)"

# ---------------------------------------------------------------- parse manifests
# Emits lines:  backend <ip> <port> <service>      (from EndpointSlices)
#               route <host|*> <path> <pathType>   (from Ingress rules, http)
python3 - "$QS_DIR" >"$TMP/plan.txt" <<'EOF' || die "could not parse manifests in $QS_DIR"
import os, sys
try:
    import yaml
except ImportError:
    sys.exit("python3 yaml module missing (pip install pyyaml)")
root = sys.argv[1]
docs = []
for dp, _, files in os.walk(root):
    for f in sorted(files):
        if f.endswith((".yaml", ".yml")):
            with open(os.path.join(dp, f)) as fh:
                try:
                    docs += [d for d in yaml.safe_load_all(fh) if isinstance(d, dict)]
                except yaml.YAMLError as e:
                    print(f"warning: {f}: {e}", file=sys.stderr)
seen = set()
for d in docs:
    kind = d.get("kind")
    if kind == "EndpointSlice":
        svc = (d.get("metadata", {}).get("labels") or {}).get("kubernetes.io/service-name", "unknown")
        for ep in d.get("endpoints") or []:
            for addr in ep.get("addresses") or []:
                for p in d.get("ports") or []:
                    key = (addr, p.get("port"))
                    if p.get("port") and key not in seen:
                        seen.add(key)
                        print("backend", addr, p["port"], svc)
    elif kind == "Ingress":
        for rule in (d.get("spec") or {}).get("rules") or []:
            host = rule.get("host") or "*"
            for p in ((rule.get("http") or {}).get("paths")) or []:
                print("route", host, p.get("path") or "/", p.get("pathType") or "Prefix")
EOF
mapfile -t BACKENDS < <(awk '$1 == "backend" { print $2, $3, $4 }' "$TMP/plan.txt")
mapfile -t ROUTES < <(awk '$1 == "route" { print $2, $3, $4 }' "$TMP/plan.txt")
(( ${#ROUTES[@]} > 0 )) || die "no Ingress routes found in $QS_DIR"
log "quick start: ${#ROUTES[@]} route(s), ${#BACKENDS[@]} backend endpoint(s) in $QS_DIR"

# ---------------------------------------------------------------- build
# (run.sh mode: run.sh is responsible for building whatever it runs.)
USE_RUN_SH=0
[[ -f "$QS_DIR/run.sh" && "${QS_DIRECT:-0}" != 1 ]] && USE_RUN_SH=1
if (( ! USE_RUN_SH )); then
    build_tollgate "$TOLLGATE_BIN" "$REPO_ROOT/target/release/tollgate"
fi

# ---------------------------------------------------------------- start
HTTP_ADDR=""; ADMIN_ADDR=""; PROXY_PID=""
if (( USE_RUN_SH )); then
    MODE=run.sh
    # run.sh knobs: HTTP_PORT / ADMIN_PORT (free ports unless given), TOLLGATE_BIN
    # (skips run.sh's own `cargo build` when NO_BUILD=1 or TOLLGATE_BIN is set).
    read -r FREE_HTTP FREE_ADMIN <<<"$(free_ports 2)"
    export HTTP_PORT=${HTTP_PORT:-$FREE_HTTP} ADMIN_PORT=${ADMIN_PORT:-$FREE_ADMIN}
    if [[ "${NO_BUILD:-0}" == 1 || "$TOLLGATE_BIN" != "$REPO_ROOT/target/release/tollgate" ]]; then
        export TOLLGATE_BIN
    else
        unset TOLLGATE_BIN
    fi
    log "starting $QS_DIR/run.sh (own session; HTTP_PORT=$HTTP_PORT ADMIN_PORT=$ADMIN_PORT${TOLLGATE_BIN:+ TOLLGATE_BIN=$TOLLGATE_BIN})"
    (cd "$REPO_ROOT" && exec setsid bash "$QS_DIR/run.sh") >"$TMP/run-sh.log" 2>&1 </dev/null &
    RUN_PID=$!; PGIDS+=("$RUN_PID")
    # Find the `tollgate run` process in that session (bounded by BUILD_TIMEOUT_S:
    # run.sh may run `cargo build --release` first).
    for (( i=0; i < BUILD_TIMEOUT_S*10; i++ )); do
        for p in $(ps -o pid= -s "$RUN_PID" 2>/dev/null); do
            if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qE '(^|/)tollgate( .*)? run( |$)'; then
                PROXY_PID=$p; break 2
            fi
        done
        alive "$RUN_PID" || die "run.sh exited before starting the proxy"
        sleep 0.1
    done
    [[ -n "$PROXY_PID" ]] || die "no 'tollgate run' process appeared under run.sh within ${BUILD_TIMEOUT_S}s"
    mapfile -d '' -t ARGV <"/proc/$PROXY_PID/cmdline"
    argval() {   # argval --flag  -> value of --flag X or --flag=X
        local j
        for (( j=0; j<${#ARGV[@]}; j++ )); do
            [[ "${ARGV[j]}" == "$1" ]] && { echo "${ARGV[j+1]:-}"; return; }
            [[ "${ARGV[j]}" == "$1="* ]] && { echo "${ARGV[j]#*=}"; return; }
        done
    }
    envval() { tr '\0' '\n' <"/proc/$PROXY_PID/environ" 2>/dev/null | awk -F= -v k="$1" '$1 == k { sub(/^[^=]*=/, ""); print; exit }'; }
    # flag, else environment variable (clap `env`), else the built-in default (`tollgate run --help`)
    HTTP_ADDR=${QS_HTTP_ADDR:-$(argval --http-addr)}
    HTTP_ADDR=${HTTP_ADDR:-$(envval TOLLGATE_HTTP_ADDR)}
    HTTP_ADDR=${HTTP_ADDR:-0.0.0.0:8080}
    ADMIN_ADDR=${QS_ADMIN_ADDR:-$(argval --admin-addr)}
    ADMIN_ADDR=${ADMIN_ADDR:-$(envval TOLLGATE_ADMIN_ADDR)}
    ADMIN_ADDR=${ADMIN_ADDR:-0.0.0.0:9180}
else
    MODE=direct
    [[ -x "$TOLLGATE_BIN" ]] || die "tollgate binary not found at $TOLLGATE_BIN"
    (( ${#BACKENDS[@]} > 0 )) || die "no EndpointSlices found in $QS_DIR"
    LISTEN=()
    for b in "${BACKENDS[@]}"; do
        read -r ip port svc <<<"$b"
        [[ "$ip" == 127.* ]] || die "EndpointSlice address $ip is not loopback; cannot host an echo backend there"
        LISTEN+=(--listen "$ip:$port=$svc")
    done
    "$TOLLGATE_BIN" echo "${LISTEN[@]}" >"$TMP/echo.log" 2>&1 &
    ECHO_PID=$!; PIDS+=("$ECHO_PID")
    for b in "${BACKENDS[@]}"; do
        read -r ip port svc <<<"$b"
        wait_http "echo backend $svc" "$ECHO_PID" "http://$ip:$port/"
    done
    read -r P_HTTP P_HTTPS P_ADMIN <<<"$(free_ports 3)"
    HTTP_ADDR=127.0.0.1:$P_HTTP; ADMIN_ADDR=127.0.0.1:$P_ADMIN
    "$TOLLGATE_BIN" run --manifests "$QS_DIR" --http-addr "$HTTP_ADDR" \
        --https-addr "127.0.0.1:$P_HTTPS" --admin-addr "$ADMIN_ADDR" >"$TMP/tollgate.log" 2>&1 &
    PROXY_PID=$!; PIDS+=("$PROXY_PID")
fi
HTTP_ADDR=${HTTP_ADDR/#0.0.0.0:/127.0.0.1:}; HTTP_ADDR=${HTTP_ADDR/#\[::\]:/127.0.0.1:}
HTTP_ADDR=${HTTP_ADDR/#:/127.0.0.1:}
ADMIN_ADDR=${ADMIN_ADDR/#0.0.0.0:/127.0.0.1:}; ADMIN_ADDR=${ADMIN_ADDR/#\[::\]:/127.0.0.1:}
ADMIN_ADDR=${ADMIN_ADDR/#:/127.0.0.1:}

# Route list for curl: host header + concrete path.
TARGETS=()
for r in "${ROUTES[@]}"; do
    read -r host path ptype <<<"$r"
    [[ "$host" == "*" ]] && host=localhost
    [[ "$host" == \*.* ]] && host="bench${host#\*}"          # wildcard host -> concrete name
    [[ "$path" =~ [\(\)\[\]\*\+\?\^\$\|\\] ]] && continue     # regex path: skip
    TARGETS+=("$host $path")
done
(( ${#TARGETS[@]} > 0 )) || die "no usable routes (all regex?)"

if [[ -n "$ADMIN_ADDR" ]]; then
    wait_http "tollgate readyz" "$PROXY_PID" "http://$ADMIN_ADDR/readyz"
fi
# First route must answer something other than a connection failure.
read -r h0 p0 <<<"${TARGETS[0]}"
for (( i=0; i < START_TIMEOUT_S*10; i++ )); do
    alive "$PROXY_PID" || die "proxy exited during start-up"
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 -H "Host: $h0" "http://$HTTP_ADDR$p0" || true)
    [[ "$code" =~ ^[23] ]] && break
    sleep 0.1
done
[[ "$code" =~ ^[23] ]] || die "route $h0$p0 via $HTTP_ADDR never answered 2xx/3xx (last: $code)"
log "mode=$MODE proxy pid $PROXY_PID http=$HTTP_ADDR admin=${ADMIN_ADDR:-?}"

sleep 1
RSS_IDLE=$(rss_kb "$PROXY_PID" VmRSS)

# ---------------------------------------------------------------- requests
CFG="$TMP/curl.cfg"
: >"$CFG"
n=${#TARGETS[@]}
for (( i=0; i<REQUESTS; i++ )); do
    read -r host path <<<"${TARGETS[i % n]}"
    printf 'url = "http://%s%s"\nheader = "Host: %s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\nsilent\nmax-time = 5\n' \
        "$HTTP_ADDR" "$path" "$host" >>"$CFG"
    (( i < REQUESTS - 1 )) && echo next >>"$CFG"
done
t0=$(date +%s.%N)
timeout $(( 60 + REQUESTS / 50 )) curl --config "$CFG" >"$TMP/codes.txt" 2>"$TMP/curl.err" || true
t1=$(date +%s.%N)
alive "$PROXY_PID" || die "proxy died while serving requests"
RSS_AFTER=$(rss_kb "$PROXY_PID" VmRSS)

echo
echo "quickstart-rss: mode=$MODE routes=${#TARGETS[@]} requests=$REQUESTS ($(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')s, one curl process, keep-alive)"
echo "  status codes:"
sort "$TMP/codes.txt" | uniq -c | sed 's/^/    /'
got=$(wc -l <"$TMP/codes.txt")
bad=$(grep -cvE '^[23][0-9][0-9]$' "$TMP/codes.txt" || true)
echo "  per route (one extra request each; status, x-echo-service of the backend that answered):"
for t in "${TARGETS[@]}"; do
    read -r host path <<<"$t"
    hdrs=$(curl -s -D - -o /dev/null --max-time 2 -H "Host: $host" "http://$HTTP_ADDR$path" || true)
    printf '    %-40s %s %s\n' "$host$path" \
        "$(awk 'NR == 1 { print $2 }' <<<"$hdrs" | tr -d '\r')" \
        "$(awk -F': ' 'tolower($1) == "x-echo-service" { print $2 }' <<<"$hdrs" | tr -d '\r')"
done

if (( BURST > 0 )) && command -v wrk >/dev/null; then
    read -r h0 p0 <<<"${TARGETS[0]}"
    timeout $(( BURST + 30 )) wrk -t1 -c50 -d"${BURST}s" -H "Host: $h0" "http://$HTTP_ADDR$p0" >"$TMP/wrk.txt" 2>&1 || true
    echo "  burst: $(awk '/^Requests\/sec:/ {print $2 " req/s"}' "$TMP/wrk.txt") $(grep -E 'Non-2xx|Socket errors' "$TMP/wrk.txt" | tr '\n' ' ')"
    RSS_BURST=$(rss_kb "$PROXY_PID" VmRSS)
fi

echo
row() { printf '  %-34s %s\n' "$1" "$2"; }
row "tollgate VmRSS idle:" "${RSS_IDLE} kB"
row "tollgate VmRSS after $REQUESTS requests:" "${RSS_AFTER} kB"
[[ -n "${RSS_BURST:-}" ]] && row "tollgate VmRSS after ${BURST}s wrk burst:" "${RSS_BURST} kB"
row "tollgate VmHWM (peak):" "$(rss_kb "$PROXY_PID" VmHWM) kB"
row "tollgate RssAnon / RssFile:" "$(rss_kb "$PROXY_PID" RssAnon) / $(rss_kb "$PROXY_PID" RssFile) kB"
row "tollgate threads:" "$(ls "/proc/$PROXY_PID/task" | wc -l)"

# Where the resident pages are (/proc/PID/smaps, kB): the binary's
# file-backed pages (text, rodata, eh_frame, relocation tables: shared with
# the page cache), its private dirty pages (.data.rel.ro and .got after
# relocation, .data), the heap and .bss, shared libraries, thread stacks and
# the allocator's other anonymous mappings.
EXE=$(readlink "/proc/$PROXY_PID/exe")
echo
echo "  resident by mapping (smaps, kB):"
awk -v exe="$EXE" '
    /^[0-9a-f]+-[0-9a-f]+ / {
        path = $6; perm = $2
        if (path == exe)                     cls = (perm ~ /x/ ? "binary r-x (text)" : "binary r-- / rw-")
        else if (path ~ /\.so/)              cls = "shared libraries"
        else if (path == "[heap]")           cls = "[heap]"
        else if (path ~ /^\[stack/)          cls = "[stack] (main thread)"
        else if (path ~ /^\[/)               cls = "[vdso] [vvar]"
        else if (path == "")                 cls = "anonymous (.bss, jemalloc, stacks)"
        else                                 cls = "other files"
        next
    }
    $1 == "Rss:"           { rss[cls] += $2 }
    $1 == "Anonymous:"     { anon[cls] += $2 }
    END {
        for (c in rss) if (rss[c] > 0) printf "    %-38s %7d  (anonymous %d)\n", c, rss[c], anon[c]
    }' "/proc/$PROXY_PID/smaps" | sort
if [[ -n "${QS_INSPECT:-}" ]]; then
    $QS_INSPECT "$PROXY_PID" || true
fi

if (( got != REQUESTS )); then
    log "only $got/$REQUESTS requests completed (curl stderr: $(head -c 300 "$TMP/curl.err"))"
    exit 2
fi
if (( bad > 0 )); then
    log "$bad/$REQUESTS responses were not 2xx/3xx"
    exit 2
fi
