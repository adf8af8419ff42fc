#!/usr/bin/env bash
# Global rate limits on Redis, measured end to end.
#
# Parts (PARTS, default "cost accuracy"):
#   cost      One tollgate (--threads 1 on PROXY_CPU), the echo backend,
#             redis-server and wrk on LOAD_CPU. Two hosts that differ only
#             in their annotations:
#               none    no annotations (the plain route)
#               global  tollgate.dev/limit-rps = limit-burst = COST_RPS,
#                       limit-scope global (a limit that never triggers, so
#                       every request is decided by the store)
#             ROUNDS interleaved rounds of wrk -t1 -cCONNS -dDURATION --latency
#             per host: req/s, p50/p99 latency, CPU µs per request of the
#             tollgate process (utime+stime from /proc/PID/stat), medians
#             side by side; and the store's script calls per request
#             (Redis INFO commandstats: evalsha + eval). All wrk connections
#             come from one client (one key): the batching case.
#   accuracy  ACC_REPLICAS tollgate replicas (--threads 1 each) sharing one
#             Redis; a route limited to ACC_RATE rps, burst ACC_BURST, scope
#             global; one wrk per replica at once (ACC_CONNS connections,
#             ACC_SECS s, bench/ratelimit-count.lua counting 200s). Allowed/s
#             = 200s / duration; expected = ACC_RATE + ACC_BURST / ACC_SECS;
#             the check is |allowed/s - expected| <= ACC_TOL_PCT % of it.
#             Script calls per request again (several replicas, one key).
#
# Environment knobs (all optional):
#   PARTS="cost accuracy"  ROUNDS=3 CONNS=20 DURATION=5 WARMUP=1
#   COST_RPS=10000000
#   ACC_REPLICAS=3 ACC_RATE=100 ACC_BURST=10 ACC_SECS=10 ACC_CONNS=4 ACC_TOL_PCT=5
#   PROXY_CPU=0 LOAD_CPU=1
#   TOLLGATE_BIN=path   (default $CARGO_TARGET_DIR/release/tollgate, ./target)
#   NO_BUILD=1          do not run `cargo build --release`
#   KEEP_TMP=1          keep the temp dir (manifests, logs, raw wrk output)
#
# Exit status: 0 = checks passed; 1 = something failed to start; 2 = a wrk
# run had errors, or accuracy is outside the tolerance.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

PARTS=${PARTS:-cost accuracy}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-20}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
COST_RPS=${COST_RPS:-10000000}
ACC_REPLICAS=${ACC_REPLICAS:-3}
ACC_RATE=${ACC_RATE:-100}
ACC_BURST=${ACC_BURST:-10}
ACC_SECS=${ACC_SECS:-10}
ACC_CONNS=${ACC_CONNS:-4}
ACC_TOL_PCT=${ACC_TOL_PCT:-5}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
START_TIMEOUT_S=30
for v in ROUNDS CONNS DURATION WARMUP COST_RPS ACC_REPLICAS ACC_RATE ACC_BURST ACC_SECS ACC_CONNS ACC_TOL_PCT PROXY_CPU LOAD_CPU; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "$v must be a non-negative integer (got '${!v}')" >&2; exit 1; }
done
(( ROUNDS >= 1 && DURATION >= 1 && ACC_SECS >= 1 && ACC_REPLICAS >= 1 && ACC_RATE >= 1 && ACC_BURST >= 1 )) \
    || { echo "ROUNDS, DURATION, ACC_* must be >= 1" >&2; exit 1; }
want() { [[ " $PARTS " == *" $1 "* ]]; }
for tool in wrk curl taskset python3 awk redis-server redis-cli; do
    command -v "$tool" >/dev/null || { echo "error: '$tool' not found in PATH" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/tollgate-global-rl.XXXXXX)
PIDS=()
CHECKS_FAILED=0
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pids
    remove_tmp
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
fail_check() { log "CHECK FAILED: $*"; CHECKS_FAILED=$(( CHECKS_FAILED + 1 )); }

TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
DEFAULT_BIN=$TARGET_DIR/release/tollgate
BIN=${TOLLGATE_BIN:-$DEFAULT_BIN}
build_tollgate "$BIN" "$DEFAULT_BIN"

read -r ECHO_PORT REDIS_PORT <<<"$(free_ports 2)"
taskset -c "$LOAD_CPU" "$BIN" echo --fixed --listen "127.0.0.1:$ECHO_PORT=echo" >"$TMP/echo.log" 2>&1 &
PIDS+=($!)
taskset -c "$LOAD_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$TMP" >"$TMP/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
    [[ "$(redis-cli -p "$REDIS_PORT" PING 2>/dev/null)" == PONG ]] && break
    sleep 0.1
done
[[ "$(redis-cli -p "$REDIS_PORT" PING 2>/dev/null)" == PONG ]] || die "redis-server did not start"
STORE="redis://127.0.0.1:$REDIS_PORT"

# script_calls: evalsha + eval calls so far (INFO commandstats).
script_calls() {
    redis-cli -p "$REDIS_PORT" INFO commandstats | tr -d '\r' \
        | awk -F'[:=,]' '$1 == "cmdstat_evalsha" || $1 == "cmdstat_eval" { n += $3 } END { print n + 0 }'
}

# ingress NAME HOST ANNOTATIONS-YAML
ingress() {
    cat <<YAML
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: $1
  namespace: default
  annotations: {$3}
spec:
  ingressClassName: tollgate
  rules:
    - host: $2
      http:
        paths:
          - path: /
            pathType: Prefix
            backend: {service: {name: echo, port: {number: 80}}}
YAML
}

# start_tollgate NAME MANIFEST CPU: starts a replica; sets TG_PID, TG_HTTP.
start_tollgate() {
    local name=$1 manifest=$2 cpu=$3 admin https
    read -r TG_HTTP https admin <<<"$(free_ports 3)"
    taskset -c "$cpu" "$BIN" run --manifests "$manifest" --threads 1 --access-log false \
        --http-addr "127.0.0.1:$TG_HTTP" --https-addr "127.0.0.1:$https" --admin-addr "127.0.0.1:$admin" \
        --global-rate-limit-store "$STORE" >"$TMP/$name.log" 2>&1 &
    TG_PID=$!
    PIDS+=("$TG_PID")
    wait_url "$name" "$TG_PID" "http://127.0.0.1:$admin/readyz"
}

# stop_tollgate PID: TERM, reaped, forgotten (cleanup never signals a
# recycled PID).
stop_tollgate() {
    local keep=() p
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# wrk_run OUT URL HOST CONNS SECS [extra args]: wrk -t1 with --latency.
wrk_run() {
    local out=$1 url=$2 host=$3 conns=$4 secs=$5
    shift 5
    taskset -c "$LOAD_CPU" wrk -t1 -c"$conns" -d"${secs}s" --latency -H "Host: $host" "$@" "$url" >"$out" 2>&1 \
        || die "wrk failed: $(tail -n 5 "$out")"
    if grep -q "Non-2xx\|Socket errors" "$out"; then
        fail_check "$(basename "$out"): $(grep "Non-2xx\|Socket errors" "$out" | tr '\n' ' ')"
    fi
}
wrk_field() { awk -v k="$2" '$1 == k { print $2; exit }' "$1"; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

if want cost; then
    MANIFEST=$TMP/cost.yaml
    { echo_backend_yaml "$ECHO_PORT"
      ingress none none.test ""
      ingress global global.test "tollgate.dev/limit-rps: '$COST_RPS', tollgate.dev/limit-burst: '$COST_RPS', tollgate.dev/limit-scope: global"
    } >"$MANIFEST"
    start_tollgate cost "$MANIFEST" "$PROXY_CPU"
    TG=$TG_PID HTTP=$TG_HTTP
    URL="http://127.0.0.1:$HTTP/"
    wait_http tollgate "$TG" "$URL" global.test
    for host in none.test global.test; do wrk_run "$TMP/warm-$host.out" "$URL" "$host" "$CONNS" "$WARMUP"; done
    for (( r=1; r <= ROUNDS; r++ )); do
        order="none global"; (( r % 2 == 0 )) && order="global none"
        for v in $order; do
            out=$TMP/cost-$v-$r.out
            calls0=$(script_calls); t0=$(cpu_ticks "$TG")
            wrk_run "$out" "$URL" "$v.test" "$CONNS" "$DURATION"
            t1=$(cpu_ticks "$TG"); calls1=$(script_calls)
            reqs=$(awk '/requests in/ { print $1; exit }' "$out")
            rps=$(wrk_field "$out" "Requests/sec:")
            p50=$(to_ms "$(awk '$1 == "50%" { print $2; exit }' "$out")")
            p99=$(to_ms "$(awk '$1 == "99%" { print $2; exit }' "$out")")
            cpu=$(awk -v t=$(( t1 - t0 )) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
            rt=$(awk -v c=$(( calls1 - calls0 )) -v n="$reqs" 'BEGIN { printf "%.3f", c / n }')
            echo "$v $rps $p50 $p99 $cpu $rt" >>"$TMP/cost.txt"
            log "round $r $v: $rps req/s, p50 ${p50} ms, p99 ${p99} ms, ${cpu} µs CPU/req, ${rt} script calls/req"
        done
    done
    echo
    echo "== cost: never-triggering global limit vs none (tollgate --threads 1 on CPU $PROXY_CPU; wrk -t1 -c$CONNS -d${DURATION}s, $ROUNDS rounds, medians)"
    printf '%-8s %10s %9s %9s %12s %15s\n' variant "req/s" "p50 ms" "p99 ms" "CPU µs/req" "calls/request"
    for v in none global; do
        row=()
        for col in 2 3 4 5 6; do row+=("$(awk -v v="$v" -v c="$col" '$1 == v { print $c }' "$TMP/cost.txt" | median)"); done
        printf '%-8s %10s %9s %9s %12s %15s\n' "$v" "${row[@]}"
    done
    stop_tollgate "$TG"
fi

if want accuracy; then
    MANIFEST=$TMP/accuracy.yaml
    { echo_backend_yaml "$ECHO_PORT"
      ingress acc acc.test "tollgate.dev/limit-rps: '$ACC_RATE', tollgate.dev/limit-burst: '$ACC_BURST', tollgate.dev/limit-scope: global"
    } >"$MANIFEST"
    URLS=()
    for (( i=0; i < ACC_REPLICAS; i++ )); do
        start_tollgate "acc$i" "$MANIFEST" "$(( i % 2 == 0 ? PROXY_CPU : LOAD_CPU ))"
        URLS+=("http://127.0.0.1:$TG_HTTP/")
    done
    redis-cli -p "$REDIS_PORT" FLUSHDB >/dev/null
    calls0=$(script_calls)
    WRKS=()
    for (( i=0; i < ACC_REPLICAS; i++ )); do
        wrk -t1 -c"$ACC_CONNS" -d"${ACC_SECS}s" -H "Host: acc.test" -s "$SCRIPT_DIR/ratelimit-count.lua" \
            "${URLS[i]}" >"$TMP/acc-$i.out" 2>&1 &
        WRKS+=($!)
    done
    for w in "${WRKS[@]}"; do wait "$w" || die "wrk failed"; done
    calls1=$(script_calls)
    cat "$TMP"/acc-*.out | awk -v rate="$ACC_RATE" -v burst="$ACC_BURST" -v secs="$ACC_SECS" \
        -v tol="$ACC_TOL_PCT" -v calls=$(( calls1 - calls0 )) -v n="$ACC_REPLICAS" '
        $1 == "RL" && $2 == "duration_us" { if ($3 > dur) dur = $3 }
        $1 == "RL" && $2 == "status" { st[$3] += $4; total += $4 }
        END {
            d = dur / 1e6; ok = st[200] + 0; expected = rate + burst / secs
            per_s = ok / d; dev = (per_s - expected) / expected * 100
            printf "\n== accuracy: %d replicas, one client, limit %d/s burst %d, %.2f s\n", n, rate, burst, d
            printf "requests %d, allowed %d, refused (429) %d\n", total, ok, st[429] + 0
            printf "allowed/s %.2f, expected %.2f (rate + burst/%ds), deviation %+.2f %% (tolerance ±%d %%)\n", per_s, expected, secs, dev, tol
            printf "script calls %d = %.4f per request\n", calls, calls / total
            exit (dev > tol || dev < -tol) ? 3 : 0
        }' || { [[ $? == 3 ]] && fail_check "accuracy outside ±$ACC_TOL_PCT %"; }
fi

(( CHECKS_FAILED == 0 )) || exit 2
