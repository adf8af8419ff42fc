#!/usr/bin/env bash
# Proves that tollgate streams request and response bodies with backpressure:
# a 1 GiB upload and a 1 GiB download go through the proxy while its VmRSS is
# sampled every 100 ms, then a deliberately slow reader (curl --limit-rate)
# starts another 1 GiB download and aborts it after a few seconds. If bodies
# were buffered, RSS would grow by up to the body size; with streaming and
# backpressure it stays within a few MB of idle.
#
# Processes (all on 127.0.0.1, free ports):
#   tollgate echo --listen P=echo        JSON echo backend: counts upload bytes while
#                                        streaming ("bodyBytes"), `?bytes=N` streams N
#                                        zero bytes in 64 KiB chunks
#   tollgate run --threads 1 --access-log false   Ingress bench.local / -> echo
#   curl                                 the client (one transfer at a time)
#
# CPU layout (2-core machine): the proxy on PROXY_CPU (0); backend, curl and
# the data source (head) on LOAD_CPU (1). PIN=0 disables pinning.
#
# Environment knobs (all optional):
#   SIZE=1073741824      bytes per transfer (upload, download, and the slow
#                        download's requested size)
#   RSS_BOUND_MB=30      fail if any phase's peak VmRSS exceeds the idle VmRSS
#                        (after start-up, before traffic) by more than this
#   SLOW_RATE=20M        curl --limit-rate of the slow reader
#   SLOW_SECS=3          the slow reader aborts after this long (curl --max-time)
#   TRANSFER_TIMEOUT_S=120  curl --max-time of the full-size transfers
#   SAMPLE_MS=100        RSS sampling interval
#   PROXY_CPU=0 LOAD_CPU=1 PIN=1
#   TOLLGATE_BIN=path    use this binary instead of target/release/tollgate
#   NO_BUILD=1           do not run `cargo build --release`
#   KEEP_TMP=1           keep the temp dir (manifests, logs, samples)
#
# Exit status: 0 = sizes right and RSS within bound; 1 = something failed to
#              start / died / was not usable; 2 = a size mismatch, a failed
#              transfer, or RSS growth above the bound.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

SIZE=${SIZE:-1073741824}
RSS_BOUND_MB=${RSS_BOUND_MB:-30}
SLOW_RATE=${SLOW_RATE:-20M}
SLOW_SECS=${SLOW_SECS:-3}
TRANSFER_TIMEOUT_S=${TRANSFER_TIMEOUT_S:-120}
SAMPLE_MS=${SAMPLE_MS:-100}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PIN=${PIN:-1}
HOST_HEADER=bench.local
START_TIMEOUT_S=30   # per process, bounded

for v in SIZE RSS_BOUND_MB SLOW_SECS TRANSFER_TIMEOUT_S SAMPLE_MS PROXY_CPU LOAD_CPU; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "$v must be a non-negative integer (got '${!v}')" >&2; exit 1; }
done
(( SIZE >= 1 && SIZE <= 1099511627776 )) || { echo "SIZE must be 1..1 TiB" >&2; exit 1; }
(( SLOW_SECS >= 1 && SLOW_SECS <= 600 )) || { echo "SLOW_SECS must be 1..600" >&2; exit 1; }
(( TRANSFER_TIMEOUT_S >= 1 && TRANSFER_TIMEOUT_S <= 3600 )) || { echo "TRANSFER_TIMEOUT_S must be 1..3600" >&2; exit 1; }
(( SAMPLE_MS >= 10 && SAMPLE_MS <= 10000 )) || { echo "SAMPLE_MS must be 10..10000" >&2; exit 1; }
[[ "$SLOW_RATE" =~ ^[0-9]+[kKmMgG]?$ ]] || { echo "SLOW_RATE must look like 20M" >&2; exit 1; }

for tool in curl python3 awk head; do
    command -v "$tool" >/dev/null || { echo "error: '$tool' not found in PATH" >&2; exit 1; }
done
if [[ "$PIN" == 1 ]]; then
    command -v taskset >/dev/null || { echo "error: 'taskset' not found (or set PIN=0)" >&2; exit 1; }
    ON_PROXY=(taskset -c "$PROXY_CPU"); ON_LOAD=(taskset -c "$LOAD_CPU")
else
    ON_PROXY=(); ON_LOAD=()
fi

TMP=$(mktemp -d /tmp/tollgate-stream.XXXXXX)
PIDS=()          # long-lived processes we started (echo, tollgate)
AUX_PIDS=()      # short-lived ones (samplers, transfers) still to reap

cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    for pid in "${AUX_PIDS[@]}"; do     # a transfer may be a function (subshell): its children first
        pkill -TERM -P "$pid" 2>/dev/null || true
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${AUX_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    stop_pids
    remove_tmp
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"



# io_field PID KEY: a field of /proc/PID/io. wchar counts bytes passed to
# write(2)/writev(2), which is how tokio writes to sockets (its reads use
# recv(2), which rchar does not count).
io_field() { awk -v k="$2" '$1 == k":" { print $2; f = 1 } END { if (!f) print 0 }' "/proc/$1/io" 2>/dev/null || echo 0; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

# sampler PID OUT: rss_sampler (bench/lib.sh) bounded by the transfer timeout.
sampler() { rss_sampler "$1" "$2" $(( (TRANSFER_TIMEOUT_S + 30) * 1000 / SAMPLE_MS )); }
SAMPLER_PID=""
start_sampler() { : >"$2"; sampler "$1" "$2" & SAMPLER_PID=$!; AUX_PIDS+=("$SAMPLER_PID"); }
stop_sampler() {
    [[ -n "$SAMPLER_PID" ]] || return 0
    kill -TERM "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=""
}
# samples_stat FILE -> "count max_kB"
samples_stat() { awk 'BEGIN { m = 0 } { n++; if ($2 > m) m = $2 } END { print n + 0, m + 0 }' "$1"; }

# ---------------------------------------------------------------- build
TOLLGATE_BIN=${TOLLGATE_BIN:-$REPO_ROOT/target/release/tollgate}
build_tollgate "$TOLLGATE_BIN" "$REPO_ROOT/target/release/tollgate"

read -r ECHO_PORT TG_HTTP TG_HTTPS TG_ADMIN <<<"$(free_ports 4)"

# ---------------------------------------------------------------- backend
"${ON_LOAD[@]}" "$TOLLGATE_BIN" echo --listen "127.0.0.1:$ECHO_PORT=echo" >"$TMP/echo.log" 2>&1 &
ECHO_PID=$!; PIDS+=("$ECHO_PID")
wait_http "echo backend" "$ECHO_PID" "http://127.0.0.1:$ECHO_PORT/"
# The download side needs `?bytes=N` (src/echo.rs); an older binary answers JSON instead.
probe=$(curl -s -o /dev/null -w '%{size_download}' --max-time 5 "http://127.0.0.1:$ECHO_PORT/probe?bytes=65537" || true)
[[ "$probe" == 65537 ]] || die "echo backend ignored ?bytes=65537 (got ${probe:-nothing} bytes):" \
    "$TOLLGATE_BIN predates the download mode of 'tollgate echo'; rebuild it"
log "echo backend pid $ECHO_PID on 127.0.0.1:$ECHO_PORT"

# ---------------------------------------------------------------- tollgate
M="$TMP/manifests"; mkdir -p "$M"
{ echo_backend_yaml "$ECHO_PORT"; cat <<EOF
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: bench
  namespace: default
spec:
  ingressClassName: tollgate
  rules:
    - host: $HOST_HEADER
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: echo
                port:
                  name: http
EOF
} >"$M/bench.yaml"
"${ON_PROXY[@]}" "$TOLLGATE_BIN" run --manifests "$M" \
    --http-addr "127.0.0.1:$TG_HTTP" --https-addr "127.0.0.1:$TG_HTTPS" \
    --admin-addr "127.0.0.1:$TG_ADMIN" --threads 1 --access-log false \
    >"$TMP/tollgate.log" 2>&1 &
TG_PID=$!; PIDS+=("$TG_PID")
wait_http "tollgate (readyz)" "$TG_PID" "http://127.0.0.1:$TG_ADMIN/readyz"
wait_http "tollgate (route)" "$TG_PID" "http://127.0.0.1:$TG_HTTP/" "$HOST_HEADER"
log "tollgate pid $TG_PID on 127.0.0.1:$TG_HTTP, threads=$(ls /proc/$TG_PID/task | wc -l)"
BASE="http://127.0.0.1:$TG_HTTP"

HWM_OK=1
reset_hwm "$TG_PID" || { HWM_OK=0; log "note: cannot reset VmHWM (/proc/PID/clear_refs); peaks come from samples only"; }
sleep 0.5
IDLE_RSS=$(rss_kb "$TG_PID" VmRSS)
IDLE_ANON=$(rss_kb "$TG_PID" RssAnon)
BOUND_KB=$(( RSS_BOUND_MB * 1024 ))

echo
echo "stream-rss: size=$SIZE bytes ($(mib "$SIZE") MiB) sample=${SAMPLE_MS}ms bound=+${RSS_BOUND_MB} MB over idle" \
     "slow-reader=${SLOW_RATE}/s for ${SLOW_SECS}s pin=$([[ $PIN == 1 ]] && echo "proxy:$PROXY_CPU load:$LOAD_CPU" || echo off)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "tollgate: $("$TOLLGATE_BIN" --version 2>/dev/null | head -1)   curl: $(curl --version | head -1 | cut -d' ' -f2)"
echo "tollgate idle: VmRSS $IDLE_RSS kB (RssAnon $IDLE_ANON kB)"

RESULTS="$TMP/results.tsv"   # phase bytes_expected bytes_seen seconds rss_before peak_sampled hwm samples status note
: >"$RESULTS"
FAILS=0

# run_phase NAME CMD...: wraps one transfer with RSS sampling. CMD (a command
# or a shell function, run in the background) must print "http_code bytes seconds" on
# stdout, which is captured in $TMP/NAME.out (its stderr in $TMP/NAME.err).
# Sets PHASE_RC (the command's exit status).
PHASE_RC=0
run_phase() {
    local name=$1; shift
    alive "$TG_PID" || die "tollgate died before phase $name"
    alive "$ECHO_PID" || die "echo backend died before phase $name"
    PHASE_BEFORE=$(rss_kb "$TG_PID" VmRSS)
    if (( HWM_OK )); then reset_hwm "$TG_PID" || true; fi
    ECHO_W0=$(io_field "$ECHO_PID" wchar)
    start_sampler "$TG_PID" "$TMP/rss-$name.txt"
    local t_pid
    "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    t_pid=$!; AUX_PIDS+=("$t_pid")
    PHASE_RC=0
    wait "$t_pid" || PHASE_RC=$?
    stop_sampler
    PHASE_HWM=$( (( HWM_OK )) && rss_kb "$TG_PID" VmHWM || echo 0 )
    ECHO_W1=$(io_field "$ECHO_PID" wchar)
    read -r PHASE_SAMPLES PHASE_PEAK < <(samples_stat "$TMP/rss-$name.txt")
    # the exact peak is the larger of the sampled maximum and VmHWM
    (( PHASE_HWM > PHASE_PEAK )) && PHASE_PEAK=$PHASE_HWM
    alive "$TG_PID" || die "tollgate died during phase $name"
    alive "$ECHO_PID" || die "echo backend died during phase $name"
}

record() {   # phase expected seen seconds status note
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$PHASE_BEFORE" \
        "$PHASE_PEAK" "$PHASE_HWM" "$PHASE_SAMPLES" "$5" "$6" >>"$RESULTS"
    if [[ "$5" != ok ]]; then FAILS=$(( FAILS + 1 )); fi
    if (( PHASE_PEAK - IDLE_RSS > BOUND_KB )); then
        log "phase $1: peak VmRSS $PHASE_PEAK kB is $(( PHASE_PEAK - IDLE_RSS )) kB over idle (bound $BOUND_KB kB)"
        FAILS=$(( FAILS + 1 ))
    fi
}

# ---------------------------------------------------------------- warm-up
# A few small transfers so first-use allocations (pool connection, buffers)
# are not attributed to the big ones. The reference for the bound stays the
# idle RSS measured above, before any traffic.
for (( i=0; i<3; i++ )); do
    head -c 1048576 /dev/zero | curl -sS --max-time 10 -T - -H "Host: $HOST_HEADER" -o /dev/null "$BASE/warm" \
        || die "warm-up upload failed"
    curl -sS --max-time 10 -H "Host: $HOST_HEADER" -o /dev/null "$BASE/warm?bytes=1048576" || die "warm-up download failed"
done
WARM_RSS=$(rss_kb "$TG_PID" VmRSS)
echo "tollgate after warm-up (3 x 1 MiB each way): VmRSS $WARM_RSS kB"

# ---------------------------------------------------------------- 1: upload
# curl -T - : chunked request body from a pipe (sent with Expect: 100-continue,
# as curl does for uploads). The echo answers JSON with the bytes it counted.
upload() {
    "${ON_LOAD[@]}" head -c "$SIZE" /dev/zero |
        "${ON_LOAD[@]}" curl -sS --max-time "$TRANSFER_TIMEOUT_S" -T - -H "Host: $HOST_HEADER" \
            -o "$TMP/upload-body.json" -w '%{http_code} %{size_upload} %{time_total}\n' "$BASE/upload"
}
log "upload: $SIZE bytes through the proxy"
run_phase upload upload
read -r code sent secs <"$TMP/upload.out" || true
got=$(python3 -c 'import json,sys
try: print(json.load(open(sys.argv[1]))["bodyBytes"])
except Exception: print("none")' "$TMP/upload-body.json" 2>/dev/null || echo none)
status=ok; note="echo counted bodyBytes=$got"
if (( PHASE_RC != 0 )) || [[ "${code:-}" != 200 ]]; then
    status=FAIL; note="curl exit $PHASE_RC, HTTP ${code:-none}: $(head -c 300 "$TMP/upload.err" | tr '\n' ' ')"
elif [[ "$got" != "$SIZE" ]]; then
    status=FAIL; note="echo counted bodyBytes=$got, expected $SIZE (curl sent ${sent:-?})"
fi
record upload "$SIZE" "${got}" "${secs:-0}" "$status" "$note"

# ---------------------------------------------------------------- 2: download
log "download: $SIZE bytes through the proxy"
run_phase download "${ON_LOAD[@]}" curl -sS --max-time "$TRANSFER_TIMEOUT_S" -H "Host: $HOST_HEADER" \
    -o /dev/null -w '%{http_code} %{size_download} %{time_total}\n' "$BASE/dl?bytes=$SIZE"
read -r code got secs <"$TMP/download.out" || true
status=ok; note="client received $got bytes"
if (( PHASE_RC != 0 )) || [[ "${code:-}" != 200 ]]; then
    status=FAIL; note="curl exit $PHASE_RC, HTTP ${code:-none}, $got bytes: $(head -c 300 "$TMP/download.err" | tr '\n' ' ')"
elif [[ "$got" != "$SIZE" ]]; then
    status=FAIL; note="client received $got bytes, expected $SIZE"
fi
record download "$SIZE" "${got:-0}" "${secs:-0}" "$status" "$note"

# ---------------------------------------------------------------- 3: slow reader
# The client reads at SLOW_RATE while the backend could send much faster; the
# proxy must not read ahead into memory. curl gives up after SLOW_SECS (exit 28),
# which also checks that an aborted download is cleaned up.
log "slow reader: $SIZE-byte download read at $SLOW_RATE/s, aborted after ${SLOW_SECS}s"
run_phase slow "${ON_LOAD[@]}" curl -sS --limit-rate "$SLOW_RATE" --max-time "$SLOW_SECS" -H "Host: $HOST_HEADER" \
    -o /dev/null -w '%{http_code} %{size_download} %{time_total}\n' "$BASE/slow?bytes=$SIZE"
read -r code got secs <"$TMP/slow.out" || true
SLOW_ECHO_SENT=$(( ECHO_W1 - ECHO_W0 ))
status=ok
note="client received $(mib "${got:-0}") MiB, backend wrote $(mib "$SLOW_ECHO_SENT") MiB (difference: kernel socket buffers + proxy)"
if (( PHASE_RC != 28 )) || [[ "${code:-}" != 200 ]]; then
    status=FAIL; note="expected curl to time out (exit 28) mid-body with HTTP 200; got exit $PHASE_RC, HTTP ${code:-none}, ${got:-0} bytes"
elif (( ${got:-0} >= SIZE )); then
    status=FAIL; note="slow reader finished the whole body: SLOW_RATE/SLOW_SECS too high for SIZE, nothing shown"
fi
record slow "$SIZE" "${got:-0}" "${secs:-0}" "$status" "$note"

# ---------------------------------------------------------------- after
# After the abort: the proxy must still serve, and drop the client connection.
sleep 1
after_code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Host: $HOST_HEADER" "$BASE/after?bytes=1024" || true)
[[ "$after_code" == 200 ]] || { log "request after the aborted download answered ${after_code:-nothing}"; FAILS=$(( FAILS + 1 )); }
open_conns=$(curl -s --max-time 5 "http://127.0.0.1:$TG_ADMIN/metrics" | awk '$1 == "tollgate_open_connections" { print $2 }' || true)
AFTER_RSS=$(rss_kb "$TG_PID" VmRSS)
AFTER_ANON=$(rss_kb "$TG_PID" RssAnon)
alive "$TG_PID" || die "tollgate died"

# ---------------------------------------------------------------- report
echo
printf '  %-9s %12s %8s %9s %11s %11s %10s %8s  %s\n' phase bytes "time(s)" "MiB/s" "rss-before" "rss-peak" "peak-idle" samples status
while IFS=$'\t' read -r phase exp seen secs before peak hwm samples status note; do
    bytes=$seen; [[ "$bytes" =~ ^[0-9]+$ ]] || bytes=0
    rate=$(awk -v b="$bytes" -v s="$secs" 'BEGIN { printf "%.1f", (s > 0 ? b / 1048576 / s : 0) }')
    printf '  %-9s %12s %8.2f %9s %8s kB %8s kB %7s kB %8s  %s\n' "$phase" "$seen" "$secs" "$rate" \
        "$before" "$peak" "$(( peak - IDLE_RSS ))" "$samples" "$status"
    printf '  %-9s %s\n' "" "$note"
done <"$RESULTS"
echo
echo "  tollgate VmRSS: idle $IDLE_RSS kB | peak upload $(awk -F'\t' '$1=="upload"{print $6}' "$RESULTS") kB" \
     "| peak download $(awk -F'\t' '$1=="download"{print $6}' "$RESULTS") kB" \
     "| peak slow reader $(awk -F'\t' '$1=="slow"{print $6}' "$RESULTS") kB | after $AFTER_RSS kB"
echo "  RssAnon (heap+stacks): idle $IDLE_ANON kB, after $AFTER_ANON kB;" \
     "$([[ $HWM_OK == 1 ]] && echo "peaks = max(samples, per-phase VmHWM reset via clear_refs)" || echo "peaks are sampled only")"
echo "  bound: peak - idle <= $BOUND_KB kB ($RSS_BOUND_MB MB)"
echo "  after the aborted download: request -> HTTP ${after_code:-none}, tollgate_open_connections ${open_conns:-?}"

if grep -qiE 'error|panic|warn' "$TMP/tollgate.log"; then
    echo "note: tollgate log contains warnings/errors (first 10):"
    grep -iE 'error|panic|warn' "$TMP/tollgate.log" | head -n 10 | sed 's/^/    /'
fi

if (( FAILS > 0 )); then
    log "$FAILS check(s) failed"
    exit 2
fi
log "all checks passed: sizes right, VmRSS within +$RSS_BOUND_MB MB of idle"
