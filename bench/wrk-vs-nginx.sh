#!/usr/bin/env bash
# Side-by-side throughput / latency / CPU-cost comparison of tollgate and nginx
# proxying to the same backend (tollgate's built-in echo server).
#
# CPU layout (this machine has exactly 2 cores):
#   CPU ${PROXY_CPU:-0}: the proxy under test (tollgate --threads 1, or nginx with 1 worker).
#                        Both proxies run all the time but only the one being
#                        measured receives traffic.
#   CPU ${LOAD_CPU:-1}:  the echo backend AND wrk (the load generator) share this core.
# Because the load side shares one core, the proxy may not be saturated; the
# "prx%" column (proxy CPU utilisation during the run) tells you whether the
# proxy was the bottleneck (~100%) or the load core was (well below 100%).
# Compare the CPU-per-request columns in that case: they stay meaningful.
#
# Environment knobs (all optional):
#   ROUNDS=5 CONNS=50 DURATION=10 WARMUP=2  interleaved rounds, wrk -c, wrk -d (s), warm-up (s)
#   QUICK=1          smoke mode: ROUNDS=2 DURATION=3 WARMUP=1 (explicit values still win)
#   ONLY=both|tollgate|nginx   benchmark only one proxy (ratios need both)
#   TOLLGATE_BIN=path          use this binary instead of target/release/tollgate
#   NO_BUILD=1                 do not run `cargo build --release`
#   BACKEND_ADDR=host:port     use an already running backend instead of `tollgate echo`
#   ECHO_FIXED=1               backend answers a fixed 3-byte body (`tollgate echo --fixed`,
#                              cheapest, leaves more of the shared load core to wrk);
#                              0 = the JSON echo (body ~350 B, reflects request headers)
#   PROXY_CPU=0 LOAD_CPU=1     core pinning
#   ACCESS_LOG=off|on          on: both proxies log every request, in the same
#                              format (ingress-nginx's default `upstreaminfo`):
#                              nginx to a file (unbuffered, as ingress-nginx),
#                              tollgate its default line to stdout redirected
#                              to a file; the line counts are checked at the end
#   KEEP_TMP=1                 keep the temp dir (configs, logs, raw wrk output)
#
# Exit status: 0 = all rounds clean; 1 = something failed to start / died;
#              2 = benchmark ran but at least one round had wrk errors or non-2xx.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

if [[ "${QUICK:-0}" == 1 ]]; then
    ROUNDS=${ROUNDS:-2}; DURATION=${DURATION:-3}; WARMUP=${WARMUP:-1}
fi
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-50}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ONLY=${ONLY:-both}
ECHO_FIXED=${ECHO_FIXED:-1}
ACCESS_LOG=${ACCESS_LOG:-off}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
HOST_HEADER=bench.local
START_TIMEOUT_S=30   # per process, bounded

case "$ONLY" in both|tollgate|nginx) ;; *) echo "ONLY must be both|tollgate|nginx" >&2; exit 1 ;; esac
case "$ACCESS_LOG" in on|off) ;; *) echo "ACCESS_LOG must be on|off" >&2; exit 1 ;; esac
TG_ACCESS=false; [[ "$ACCESS_LOG" == on ]] && TG_ACCESS=true
# tollgate's stdout (access log and its own log lines) goes to tollgate.log.
for v in ROUNDS CONNS DURATION WARMUP PROXY_CPU LOAD_CPU; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "$v must be a non-negative integer (got '${!v}')" >&2; exit 1; }
done
(( ROUNDS >= 1 && ROUNDS <= 100 )) || { echo "ROUNDS must be 1..100" >&2; exit 1; }
(( DURATION >= 1 && DURATION <= 600 )) || { echo "DURATION must be 1..600" >&2; exit 1; }

want() { [[ "$ONLY" == both || "$ONLY" == "$1" ]]; }

for tool in wrk curl taskset python3 awk; do
    command -v "$tool" >/dev/null || { echo "error: '$tool' not found in PATH" >&2; exit 1; }
done
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
if want nginx && [[ ! -x "$NGINX" ]]; then echo "error: nginx not found" >&2; exit 1; fi

TMP=$(mktemp -d /tmp/tollgate-bench.XXXXXX)
PIDS=()          # every process we started, in start order
FAILED_ROUNDS=0
WRK_PID=""       # wrk run in progress, if any

cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    if [[ -n "$WRK_PID" ]]; then kill -TERM "$WRK_PID" 2>/dev/null || true; wait "$WRK_PID" 2>/dev/null || true; fi
    stop_pids
    remove_tmp
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"







# ---------------------------------------------------------------- build
TOLLGATE_BIN=${TOLLGATE_BIN:-$REPO_ROOT/target/release/tollgate}
need_tollgate=0
{ want tollgate || [[ -z "${BACKEND_ADDR:-}" ]]; } && need_tollgate=1
if (( need_tollgate )); then
    build_tollgate "$TOLLGATE_BIN" "$REPO_ROOT/target/release/tollgate"
fi

read -r ECHO_PORT TG_HTTP TG_HTTPS TG_ADMIN NG_PORT <<<"$(free_ports 5)"

# ---------------------------------------------------------------- backend
if [[ -n "${BACKEND_ADDR:-}" ]]; then
    BACKEND_HOST=${BACKEND_ADDR%:*}; ECHO_PORT=${BACKEND_ADDR##*:}
    BACKEND_PID=""
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$BACKEND_ADDR/" || true)
    [[ "$code" == 200 ]] || die "external backend $BACKEND_ADDR did not answer 200 (got ${code:-nothing})"
    log "using external backend $BACKEND_ADDR"
else
    BACKEND_HOST=127.0.0.1
    ECHO_ARGS=()
    [[ "$ECHO_FIXED" == 1 ]] && ECHO_ARGS+=(--fixed)
    taskset -c "$LOAD_CPU" "$TOLLGATE_BIN" echo "${ECHO_ARGS[@]}" --listen "127.0.0.1:$ECHO_PORT=echo" \
        >"$TMP/echo.log" 2>&1 &
    BACKEND_PID=$!; PIDS+=("$BACKEND_PID")
    wait_http "echo backend" "$BACKEND_PID" "http://127.0.0.1:$ECHO_PORT/"
    log "echo backend pid $BACKEND_PID on 127.0.0.1:$ECHO_PORT (CPU $LOAD_CPU)"
fi
[[ "$BACKEND_HOST" == 127.0.0.1 ]] || die "BACKEND_ADDR must be an IPv4 127.0.0.1:port address (EndpointSlice is IPv4)"

# ---------------------------------------------------------------- tollgate
TG_PID=""
if want tollgate; then
    M="$TMP/manifests"; mkdir -p "$M"
    cat >"$M/ingressclass.yaml" <<EOF
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: tollgate
spec:
  controller: tollgate.dev/ingress-controller
EOF
    cat >"$M/service.yaml" <<EOF
apiVersion: v1
kind: Service
metadata:
  name: echo
  namespace: default
spec:
  selector:
    app: echo
  ports:
    - name: http
      port: 80
      protocol: TCP
      targetPort: http
EOF
    cat >"$M/endpointslice.yaml" <<EOF
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: echo-bench
  namespace: default
  labels:
    kubernetes.io/service-name: echo
addressType: IPv4
endpoints:
  - addresses: ["127.0.0.1"]
    conditions:
      ready: true
ports:
  - name: http
    port: $ECHO_PORT
    protocol: TCP
EOF
    cat >"$M/ingress.yaml" <<EOF
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
    taskset -c "$PROXY_CPU" "$TOLLGATE_BIN" run --manifests "$M" \
        --http-addr "127.0.0.1:$TG_HTTP" --https-addr "127.0.0.1:$TG_HTTPS" \
        --admin-addr "127.0.0.1:$TG_ADMIN" --threads 1 --access-log "$TG_ACCESS" \
        >"$TMP/tollgate.log" 2>&1 &
    TG_PID=$!; PIDS+=("$TG_PID")
    wait_http "tollgate (readyz)" "$TG_PID" "http://127.0.0.1:$TG_ADMIN/readyz"
    wait_http "tollgate (route)" "$TG_PID" "http://127.0.0.1:$TG_HTTP/" "$HOST_HEADER"
    log "tollgate pid $TG_PID on 127.0.0.1:$TG_HTTP (CPU $PROXY_CPU), threads=$(ls /proc/$TG_PID/task | wc -l)"
fi

# ---------------------------------------------------------------- nginx
NG_PID=""; NG_PIDS=()
if want nginx; then
    N="$TMP/nginx"; mkdir -p "$N"/{body,proxy,fastcgi,uwsgi,scgi}
    NG_ACCESS=off; [[ "$ACCESS_LOG" == on ]] && NG_ACCESS="$N/access.log upstreaminfo"
    sed -e "s#@TMP@#$N#g" -e "s#@PORT@#$NG_PORT#g" -e "s#@BACKEND@#127.0.0.1:$ECHO_PORT#g" \
        -e "s#@HOST@#$HOST_HEADER#g" -e "s#@ACCESS_LOG@#$NG_ACCESS#g" \
        "$SCRIPT_DIR/nginx.conf.template" >"$N/nginx.conf"
    "$NGINX" -t -q -p "$N" -c "$N/nginx.conf" >"$TMP/nginx-t.log" 2>&1 \
        || { cat "$TMP/nginx-t.log" >&2; die "nginx config test failed"; }
    taskset -c "$PROXY_CPU" "$NGINX" -p "$N" -c "$N/nginx.conf" >"$TMP/nginx.log" 2>&1 &
    NG_PID=$!; PIDS+=("$NG_PID")
    wait_http "nginx" "$NG_PID" "http://127.0.0.1:$NG_PORT/" "$HOST_HEADER"
    # master + worker(s); only the worker does real work.
    mapfile -t NG_WORKERS < <(pgrep -P "$NG_PID" || true)
    (( ${#NG_WORKERS[@]} >= 1 )) || die "nginx has no worker process"
    NG_PIDS=("$NG_PID" "${NG_WORKERS[@]}")
    log "nginx master $NG_PID worker(s) ${NG_WORKERS[*]} on 127.0.0.1:$NG_PORT (CPU $PROXY_CPU)"
fi

# ---------------------------------------------------------------- helpers for runs
proxy_port() { [[ $1 == tollgate ]] && echo "$TG_HTTP" || echo "$NG_PORT"; }
proxy_pids() { if [[ $1 == tollgate ]]; then echo "$TG_PID"; else echo "${NG_PIDS[*]}"; fi; }

check_alive() {
    local p
    for p in "${PIDS[@]}"; do alive "$p" || die "process $p died (see logs)"; done
}


RESULTS="$TMP/results.tsv"
: >"$RESULTS"

# run_one PROXY ROUND DURATION -> appends one TSV row to $RESULTS
run_one() {
    local proxy=$1 round=$2 dur=$3 port out pids c0 c1 b0 b1 t0 t1
    port=$(proxy_port "$proxy"); pids=$(proxy_pids "$proxy")
    out="$TMP/wrk-$proxy-r$round.txt"
    check_alive
    # shellcheck disable=SC2086
    c0=$(cpu_ticks $pids)
    b0=$( [[ -n "$BACKEND_PID" ]] && cpu_ticks "$BACKEND_PID" || echo 0 )
    local pc0 lc0 pc1 lc1
    pc0=$(core_jiffies "$PROXY_CPU"); lc0=$(core_jiffies "$LOAD_CPU")
    t0=$(date +%s.%N)
    # Background + wait so a TERM/INT trap fires immediately instead of after wrk ends.
    taskset -c "$LOAD_CPU" timeout $(( dur + 30 )) \
        wrk -t1 -c"$CONNS" -d"${dur}s" --timeout 5s --latency -H "Host: $HOST_HEADER" \
        "http://127.0.0.1:$port/" >"$out" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || { WRK_PID=""; cat "$out" >&2; die "wrk failed against $proxy"; }
    WRK_PID=""
    t1=$(date +%s.%N)
    pc1=$(core_jiffies "$PROXY_CPU"); lc1=$(core_jiffies "$LOAD_CPU")
    # shellcheck disable=SC2086
    c1=$(cpu_ticks $pids)
    b1=$( [[ -n "$BACKEND_PID" ]] && cpu_ticks "$BACKEND_PID" || echo 0 )
    check_alive

    local reqs rps p50 p99 non2xx sockerr
    reqs=$(awk '/ requests in / { print $1; exit }' "$out")
    rps=$(awk '/^Requests\/sec:/ { print $2; exit }' "$out")
    p50=$(awk '$1 == "50%" { print $2; exit }' "$out")
    p99=$(awk '$1 == "99%" { print $2; exit }' "$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF; exit }' "$out")
    sockerr=$(awk '/Socket errors:/ { gsub(/,/, ""); print $4 + $6 + $8 + $10; exit }' "$out")
    [[ -n "$reqs" && -n "$rps" && -n "$p99" ]] || { cat "$out" >&2; die "could not parse wrk output for $proxy"; }
    echo "$reqs" >>"$TMP/served-$proxy"
    p50=$(to_ms "$p50"); p99=$(to_ms "$p99")
    non2xx=${non2xx:-0}; sockerr=${sockerr:-0}
    local status=ok
    if (( non2xx > 0 || sockerr > 0 || reqs == 0 )); then
        status=FAIL
        FAILED_ROUNDS=$(( FAILED_ROUNDS + 1 ))
        log "round $round $proxy: wrk reported errors (non-2xx/3xx=$non2xx socket errors=$sockerr); raw output:"
        sed 's/^/    /' "$out" >&2
    fi
    local pcore lcore
    pcore=$(awk -v a="$pc0" -v b="$pc1" 'BEGIN { split(a, x, " "); split(b, y, " ");
        d = y[2] - x[2]; printf "%.0f", (d > 0 ? 100 * (y[1] - x[1]) / d : 0) }')
    lcore=$(awk -v a="$lc0" -v b="$lc1" 'BEGIN { split(a, x, " "); split(b, y, " ");
        d = y[2] - x[2]; printf "%.0f", (d > 0 ? 100 * (y[1] - x[1]) / d : 0) }')
    # round proxy reqs rps p50 p99 cpu_ticks wall backend_ticks non2xx sockerr status pcore% lcore%
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$round" "$proxy" "$reqs" "$rps" "$p50" "$p99" "$(( c1 - c0 ))" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" "$(( b1 - b0 ))" \
        "$non2xx" "$sockerr" "$status" "$pcore" "$lcore" >>"$RESULTS"
}

print_row() {   # reads one TSV row on stdin
    awk -F'\t' -v hz="$CLK_TCK" '{
        cpu = $7 / hz; us = ($3 > 0) ? cpu * 1e6 / $3 : 0
        printf "  %-5s %-9s %11.0f %9.3f %9.3f %9.2f %6.0f%% %6.0f%% %6.0f%% %6.0f%% %7d %6d  %s\n",
            $1, $2, $4, $5, $6, us, 100 * cpu / $8, $13, 100 * ($9 / hz) / $8, $14, $10, $11, $12 }'
}
print_header() {
    printf '  %-5s %-9s %11s %9s %9s %9s %7s %7s %7s %7s %7s %6s  %s\n' \
        round proxy "req/s" "p50(ms)" "p99(ms)" "cpuµs/req" "prx%" "pcore%" "bknd%" "lcore%" non2xx sockerr status
}

# ---------------------------------------------------------------- warm-up
PROXIES=()
want tollgate && PROXIES+=(tollgate)
want nginx && PROXIES+=(nginx)

echo
echo "tollgate-vs-nginx: rounds=$ROUNDS conns=$CONNS duration=${DURATION}s warmup=${WARMUP}s access-log=$ACCESS_LOG" \
     "proxy-cpu=$PROXY_CPU load-cpu=$LOAD_CPU (wrk+backend) clk_tck=$CLK_TCK" \
     "backend=$([[ -n "${BACKEND_ADDR:-}" ]] && echo "external $BACKEND_ADDR" || { [[ "$ECHO_FIXED" == 1 ]] && echo "echo --fixed" || echo "echo (json)"; })"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "tollgate: $([[ -n "$TG_PID" ]] && "$TOLLGATE_BIN" --version 2>/dev/null | head -1 || echo n/a)   nginx: $("$NGINX" -v 2>&1 | sed 's/.*: //')"

if (( WARMUP > 0 )); then
    for p in "${PROXIES[@]}"; do
        run_one "$p" warm "$WARMUP"
    done
    echo
    echo "warm-up (discarded):"
    print_header
    print_row <"$RESULTS"
    if (( FAILED_ROUNDS > 0 )); then
        die "warm-up had errors; refusing to benchmark a broken setup"
    fi
    : >"$RESULTS"
fi

# ---------------------------------------------------------------- interleaved rounds
for (( r=1; r<=ROUNDS; r++ )); do
    # ABBA ordering: alternate which proxy goes first to cancel drift.
    if (( r % 2 == 1 )); then order=("${PROXIES[@]}"); else
        order=(); for (( i=${#PROXIES[@]}-1; i>=0; i-- )); do order+=("${PROXIES[i]}"); done
    fi
    for p in "${order[@]}"; do
        run_one "$p" "$r" "$DURATION"
        sleep 0.5
    done
    echo
    echo "round $r/$ROUNDS:"
    print_header
    awk -F'\t' -v r="$r" '$1 == r' "$RESULTS" | print_row
done

# ---------------------------------------------------------------- summary
echo
echo "=== all rounds ==="
print_header
print_row <"$RESULTS"

python3 - "$RESULTS" "$CLK_TCK" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
hz = float(sys.argv[2])
by = {}
for r in rows:
    rnd, proxy, reqs, rps, p50, p99, ticks, wall, bt, n2, se, st = r[:12]
    if st != "ok":
        continue
    reqs = int(reqs)
    by.setdefault(proxy, []).append(dict(
        rps=float(rps), p50=float(p50), p99=float(p99),
        cpu_us=(int(ticks) / hz) * 1e6 / reqs if reqs else float("nan"),
        util=100 * (int(ticks) / hz) / float(wall),
        other=float(r[12]) - 100 * (int(ticks) / hz) / float(wall) if len(r) > 12 else 0.0,
        lcore=float(r[13]) if len(r) > 13 else 0.0))
med = {p: {k: statistics.median(x[k] for x in v) for k in v[0]} for p, v in by.items() if v}
print()
print("=== summary (medians over clean rounds) ===")
print(f"  {'proxy':<9} {'n':>2} {'req/s':>11} {'p50(ms)':>9} {'p99(ms)':>9} {'cpuµs/req':>10} {'prx%':>6}")
for p in ("tollgate", "nginx"):
    if p in med:
        m = med[p]
        print(f"  {p:<9} {len(by[p]):>2} {m['rps']:>11.0f} {m['p50']:>9.3f} {m['p99']:>9.3f} {m['cpu_us']:>10.2f} {m['util']:>5.0f}%")
if "tollgate" in med and "nginx" in med:
    t, n = med["tollgate"], med["nginx"]
    def ratio(a, b): return a / b if b else float("nan")
    print()
    print("  ratios tollgate/nginx (ratio of medians):")
    print(f"    req/s     {ratio(t['rps'], n['rps']):6.3f}   (>1 = tollgate faster)")
    print(f"    p99       {ratio(t['p99'], n['p99']):6.3f}   (<1 = tollgate lower tail latency)")
    print(f"    CPU/req   {ratio(t['cpu_us'], n['cpu_us']):6.3f}   (<1 = tollgate cheaper per request)")
    # per-round paired ratios show the spread (rounds are adjacent in time)
    pairs = {}
    for r in rows:
        if r[11] == "ok":
            pairs.setdefault(r[0], {})[r[1]] = r
    pr = []
    for rnd, d in pairs.items():
        if "tollgate" in d and "nginx" in d:
            pr.append(float(d["tollgate"][3]) / float(d["nginx"][3]))
    if pr:
        print(f"    per-round req/s ratios: {' '.join(f'{x:.3f}' for x in pr)}  (median {statistics.median(pr):.3f})")
notes = []
for p, m in med.items():
    if m["util"] < 85 and m["lcore"] > 90:
        notes.append(f"  note: {p} was not saturated (prx% {m['util']:.0f}) while the load core was busy "
              f"({m['lcore']:.0f}%): req/s is load-generator-bound, compare CPU µs/req.")
    if m["other"] > 15:
        notes.append(f"  warning: ~{m['other']:.0f}% of the proxy core went to something other than {p} "
              f"(other processes / softirq): the machine was noisy, treat req/s and p99 with care.")
if notes:
    print()
    print("\n".join(notes))
EOF

echo
if [[ -n "$TG_PID" ]]; then
    echo "tollgate memory after runs: VmRSS $(rss_kb "$TG_PID" VmRSS) kB, VmHWM $(rss_kb "$TG_PID" VmHWM) kB," \
         "threads $(ls /proc/$TG_PID/task | wc -l) ($(cat /proc/$TG_PID/task/*/comm 2>/dev/null | sort | paste -sd, -))"
fi
if [[ -n "$NG_PID" ]]; then
    ng_rss=0; for p in "${NG_PIDS[@]}"; do ng_rss=$(( ng_rss + $(rss_kb "$p" VmRSS) )); done
    echo "nginx memory after runs (master+workers): VmRSS $ng_rss kB"
fi
if [[ "$ACCESS_LOG" == on ]]; then
    # Every request is logged by both: a proxy's lines are the requests wrk
    # counted for it (warm-up included) plus a few start-up probes.
    served() { awk '{ n += $1 } END { print n + 0 }' "$TMP/served-$1" 2>/dev/null || echo 0; }
    tg_lines=$(grep -c '"GET / HTTP/1.1"' "$TMP/tollgate.log" 2>/dev/null || true)
    ng_lines=$(grep -c '"GET / HTTP/1.1"' "${N:-$TMP}/access.log" 2>/dev/null || true)
    echo "access-log lines (wrk requests): tollgate ${tg_lines:-0} ($(served tollgate))," \
         "nginx ${ng_lines:-0} ($(served nginx)); sample lines:"
    grep -m1 '"GET / HTTP/1.1"' "$TMP/tollgate.log" 2>/dev/null | sed 's/^/    tollgate: /' || true
    grep -m1 '"GET / HTTP/1.1"' "${N:-$TMP}/access.log" 2>/dev/null | sed 's/^/    nginx:    /' || true
fi
if [[ -s "$TMP/tollgate.log" ]] && grep -v '"GET / HTTP/1.1"' "$TMP/tollgate.log" | grep -qiE 'error|panic|warn'; then
    echo "note: tollgate log contains warnings/errors (first 10):"
    grep -v '"GET / HTTP/1.1"' "$TMP/tollgate.log" | grep -iE 'error|panic|warn' | head -n 10 | sed 's/^/    /'
fi
if [[ -n "$NG_PID" ]] && grep -qE '\[(error|crit|alert|emerg)\]' "$N/error.log" 2>/dev/null; then
    echo "note: nginx error.log has errors (first 5):"
    grep -E '\[(error|crit|alert|emerg)\]' "$N/error.log" | head -n 5 | sed 's/^/    /'
fi

if (( FAILED_ROUNDS > 0 )); then
    log "$FAILED_ROUNDS run(s) had wrk errors or non-2xx responses; they are excluded from the medians"
    exit 2
fi
