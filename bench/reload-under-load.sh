#!/usr/bin/env bash
# Failed requests across configuration reloads under load, tollgate vs nginx.
#
# For each proxy: `wrk -t1 -c$CONNS -d${DURATION}s` against `/` of bench.local
# while the proxy's configuration is switched RELOADS times, alternating
# between two versions A and B:
#   A: /  -> Service echo,  /v1 -> Service echo-v
#   B: /  -> Service echo,  /v2 -> Service echo-v
# Both versions route the benchmarked path `/` to the same backend, so every
# request should succeed; only the reload itself can make one fail.
#
#   tollgate: the Ingress manifest is replaced by an atomic rename into the
#             watched directory (tollgate reloads by itself, atomic table swap).
#   nginx:    nginx.conf is replaced by an atomic rename, then the master gets
#             SIGHUP (what `nginx -s reload` sends): new workers start, old
#             workers close their idle keep-alive connections and exit.
#
# Every switch is confirmed: the script polls /v1 and /v2 until the response
# header X-Echo-Service shows the new version (/vN of the active version is
# answered by the `echo-v` listener, the other one falls through to `/` and
# `echo`). For tollgate it also checks that tollgate_table_generation (from
# /metrics) went up by RELOADS; for nginx it counts the worker generations.
#
# Processes (all on 127.0.0.1, free ports):
#   tollgate echo --fixed --listen P1=echo --listen P2=echo-v   (one backend, two services)
#   tollgate run --threads 1 --access-log false      on PROXY_CPU
#   nginx (worker_processes 1, bench/nginx.conf.template + the /vN location)  on PROXY_CPU
#   wrk and the backend                              on LOAD_CPU
#
# Environment knobs (all optional):
#   RELOADS=20        configuration switches per proxy
#   DURATION=20       wrk -d (seconds) per proxy
#   CONNS=50          wrk -c
#   INTERVAL=         seconds between switches (default: spread the reloads
#                     over the run, capped to 0.5..1 s: (DURATION-3)/RELOADS)
#   RATE=             switches per second instead (e.g. RATE=10 DURATION=63:
#                     10 swaps/s for 60 s); sets INTERVAL=1/RATE and, unless
#                     given, RELOADS=RATE*(DURATION-3), CONFIRM=0 and tollgate's
#                     --reload-debounce to 10ms
#   CONFIRM=1         poll /v1 and /v2 after every switch until it shows (0: only
#                     after the last one; the table generation must still rise)
#   DEBOUNCE=         tollgate --reload-debounce (default: tollgate's own)
#   ROLLOUTS=0        tollgate only: after the reload run, a second wrk run of
#                     DURATION seconds during which Service `echo` rolls ROLLOUTS
#                     times between two backend processes, as a Deployment
#                     rollout does: the new backend starts and its endpoints
#                     are added, the old ones turn terminating (ready: false),
#                     then are removed, then the old process gets SIGTERM
#   ONLY=both|tollgate|nginx
#   PROXY_CPU=0 LOAD_CPU=1
#   TOLLGATE_BIN=path  NO_BUILD=1  KEEP_TMP=1   as in wrk-vs-nginx.sh
#
# Exit status: 0 = tollgate had no failed request and every reload took effect;
#              1 = something failed to start / died; 2 = tollgate had failed
#              requests, or a reload was not confirmed. nginx's failures are
#              reported, not judged (they are the baseline being compared).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

DURATION=${DURATION:-20}
if [[ -n "${RATE:-}" ]]; then
    [[ "$RATE" =~ ^[0-9]+$ ]] && (( RATE >= 1 && RATE <= 20 )) || { echo "RATE must be 1..20" >&2; exit 1; }
    [[ "$DURATION" =~ ^[0-9]+$ ]] || { echo "DURATION must be a number" >&2; exit 1; }
    INTERVAL=${INTERVAL:-$(awk -v r="$RATE" 'BEGIN { printf "%.3f", 1 / r }')}
    RELOADS=${RELOADS:-$(( RATE * (DURATION - 3) ))}
    CONFIRM=${CONFIRM:-0}
    DEBOUNCE=${DEBOUNCE:-10ms}
fi
RELOADS=${RELOADS:-20}
CONFIRM=${CONFIRM:-1}
ROLLOUTS=${ROLLOUTS:-0}
CONNS=${CONNS:-50}
ONLY=${ONLY:-both}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
HOST_HEADER=bench.local
START_TIMEOUT_S=30     # per process, bounded
CONFIRM_TIMEOUT_S=5    # per reload: how long a switch may take to become visible

case "$ONLY" in both|tollgate|nginx) ;; *) echo "ONLY must be both|tollgate|nginx" >&2; exit 1 ;; esac
for v in RELOADS DURATION CONNS PROXY_CPU LOAD_CPU CONFIRM ROLLOUTS; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "$v must be a non-negative integer (got '${!v}')" >&2; exit 1; }
done
(( RELOADS >= 1 && RELOADS <= 12000 )) || { echo "RELOADS must be 1..12000" >&2; exit 1; }
(( ROLLOUTS <= 100 )) || { echo "ROLLOUTS must be 0..100" >&2; exit 1; }
[[ -z "${DEBOUNCE:-}" || "$DEBOUNCE" =~ ^[0-9]+(ms|s)$ ]] || { echo "DEBOUNCE must look like 10ms" >&2; exit 1; }
(( DURATION >= 5 && DURATION <= 600 )) || { echo "DURATION must be 5..600" >&2; exit 1; }
(( CONNS >= 1 && CONNS <= 10000 )) || { echo "CONNS must be 1..10000" >&2; exit 1; }
if [[ -z "${INTERVAL:-}" ]]; then
    INTERVAL=$(awk -v d="$DURATION" -v n="$RELOADS" 'BEGIN { i = (d - 3) / n; if (i > 1) i = 1; if (i < 0.5) i = 0.5; printf "%.2f", i }')
fi
[[ "$INTERVAL" =~ ^[0-9]+(\.[0-9]+)?$ ]] && awk -v i="$INTERVAL" 'BEGIN { exit !(i >= 0.05 && i <= 60) }' \
    || { echo "INTERVAL must be 0.05..60 seconds" >&2; exit 1; }

want() { [[ "$ONLY" == both || "$ONLY" == "$1" ]]; }

for tool in wrk curl taskset python3 awk; do
    command -v "$tool" >/dev/null || { echo "error: '$tool' not found in PATH" >&2; exit 1; }
done
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
if want nginx && [[ ! -x "$NGINX" ]]; then echo "error: nginx not found" >&2; exit 1; fi

TMP=$(mktemp -d /tmp/tollgate-reload.XXXXXX)
PIDS=()          # every long-lived process we started, in start order
WRK_PID=""       # wrk run in progress, if any

cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    if [[ -n "$WRK_PID" ]]; then kill -TERM "$WRK_PID" 2>/dev/null || true; wait "$WRK_PID" 2>/dev/null || true; fi
    stop_pids
    # nginx workers are children of the master and exit with it (TERM = fast
    # shutdown); any that outlived a KILLed master are killed by their pid.
    if [[ -n "${NG_SEEN_WORKERS_FILE:-}" && -s "$NG_SEEN_WORKERS_FILE" ]]; then
        while read -r pid; do
            if [[ "$(cat "/proc/$pid/cmdline" 2>/dev/null | tr '\0' ' ')" == nginx:* ]]; then
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done <"$NG_SEEN_WORKERS_FILE"
    fi
    remove_tmp
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"
DIE_LOGS="$TMP/nginx/error.log"



now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# served_by PORT PATH: the X-Echo-Service header of the answer (or "-").
served_by() {
    local v
    v=$(curl -s -o /dev/null --max-time 1 -H "Host: $HOST_HEADER" -w '%header{x-echo-service}' \
        "http://127.0.0.1:$1$2" 2>/dev/null || true)
    echo "${v:--}"
}
# Older curl lacks %header{}: fall back to dumping headers.
if ! curl -s -o /dev/null -w '%header{x}' --max-time 1 "file:///dev/null" >/dev/null 2>&1; then
    served_by() {
        local v
        v=$(curl -s -o /dev/null -D - --max-time 1 -H "Host: $HOST_HEADER" "http://127.0.0.1:$1$2" 2>/dev/null \
            | tr -d '\r' | awk -F': ' 'tolower($1) == "x-echo-service" { print $2 }' || true)
        echo "${v:--}"
    }
fi

# wait_version PORT VERSION(a|b): poll (bounded) until /v1 and /v2 show VERSION.
# Prints the time it took in ms, or "timeout".
wait_version() {
    local port=$1 ver=$2 t0 i want1 want2
    if [[ "$ver" == a ]]; then want1=echo-v; want2=echo; else want1=echo; want2=echo-v; fi
    t0=$(now_ms)
    for (( i=0; i < CONFIRM_TIMEOUT_S*50; i++ )); do
        if [[ "$(served_by "$port" /v1)" == "$want1" && "$(served_by "$port" /v2)" == "$want2" ]]; then
            echo $(( $(now_ms) - t0 )); return 0
        fi
        sleep 0.02
    done
    echo timeout
}

# ---------------------------------------------------------------- build
TOLLGATE_BIN=${TOLLGATE_BIN:-$REPO_ROOT/target/release/tollgate}
build_tollgate "$TOLLGATE_BIN" "$REPO_ROOT/target/release/tollgate"

read -r ECHO_PORT ECHOV_PORT TG_HTTP TG_HTTPS TG_ADMIN NG_PORT <<<"$(free_ports 6)"

# ---------------------------------------------------------------- backend
taskset -c "$LOAD_CPU" "$TOLLGATE_BIN" echo --fixed \
    --listen "127.0.0.1:$ECHO_PORT=echo" --listen "127.0.0.1:$ECHOV_PORT=echo-v" >"$TMP/echo.log" 2>&1 &
ECHO_PID=$!; PIDS+=("$ECHO_PID")
wait_http "echo backend" "$ECHO_PID" "http://127.0.0.1:$ECHO_PORT/"
wait_http "echo backend (echo-v)" "$ECHO_PID" "http://127.0.0.1:$ECHOV_PORT/"
log "echo backend pid $ECHO_PID: echo on 127.0.0.1:$ECHO_PORT, echo-v on 127.0.0.1:$ECHOV_PORT (CPU $LOAD_CPU)"

RESULTS="$TMP/results.tsv"   # proxy reloads confirmed reqs non2xx connect read write timeout lat_med lat_max extra
: >"$RESULTS"

# run_wrk_with_reloads PROXY PORT SWITCH_FUNC
# Runs wrk in the background; after 1 s starts switching versions every
# INTERVAL seconds (bounded by RELOADS and by wrk's lifetime), confirms each.
# Appends "i version ms" lines to $TMP/switch-PROXY.txt.
run_wrk_with_reloads() {
    local proxy=$1 port=$2 switch=$3 out="$TMP/wrk-$1.txt" sw="$TMP/switch-$1.txt" i ver ms
    : >"$sw"
    taskset -c "$LOAD_CPU" timeout $(( DURATION + 30 )) \
        wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 5s -H "Host: $HOST_HEADER" \
        "http://127.0.0.1:$port/" >"$out" 2>&1 &
    WRK_PID=$!
    sleep 1
    # Fixed cadence: switch i happens at t0 + (i-1)*INTERVAL, whatever the
    # confirmation of the previous one took.
    local t0 step_ms wait_ms
    t0=$(now_ms)
    step_ms=$(awk -v i="$INTERVAL" 'BEGIN { printf "%d", i * 1000 }')
    for (( i=1; i<=RELOADS; i++ )); do
        wait_ms=$(( t0 + (i - 1) * step_ms - $(now_ms) ))
        if (( wait_ms > 0 )); then sleep "$(awk -v m="$wait_ms" 'BEGIN { printf "%.3f", m / 1000 }')"; fi
        alive "$WRK_PID" || { log "$proxy: wrk ended after $(( i - 1 )) reloads (raise DURATION or lower INTERVAL)"; break; }
        if (( i % 2 == 1 )); then ver=b; else ver=a; fi
        "$switch" "$ver"
        if (( CONFIRM == 1 || i == RELOADS )); then
            ms=$(wait_version "$port" "$ver")
        else
            ms=unconfirmed
        fi
        echo "$i $ver $ms" >>"$sw"
        if [[ "$ms" == timeout ]]; then
            log "$proxy: reload $i (to version $ver) not visible after ${CONFIRM_TIMEOUT_S}s"
        fi
    done
    wait "$WRK_PID" || { local rc=$?; WRK_PID=""; cat "$out" >&2; die "wrk failed against $proxy (exit $rc)"; }
    WRK_PID=""
}

# parse_wrk PROXY -> "reqs non2xx connect read write timeout"
parse_wrk() {
    local out="$TMP/wrk-$1.txt" reqs non2xx se
    reqs=$(awk '/ requests in / { print $1; exit }' "$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF; exit }' "$out")
    se=$(awk '/Socket errors:/ { gsub(/,/, ""); print $4, $6, $8, $10; exit }' "$out")
    [[ -n "$reqs" ]] || { cat "$out" >&2; die "could not parse wrk output for $1"; }
    echo "$reqs ${non2xx:-0} ${se:-0 0 0 0}"
}

# switch stats: "switches confirmed median_ms max_ms" (unconfirmed switches
# count as confirmed when the last one is: see CONFIRM)
switch_stats() {
    local n ok timed med mx
    n=$(wc -l <"$1")
    ok=$(awk '$3 != "timeout"' "$1" | wc -l)
    timed=$(awk '$3 ~ /^[0-9]+$/' "$1" | wc -l)
    if (( timed > 0 )); then
        med=$(awk '$3 ~ /^[0-9]+$/ { print $3 }' "$1" | sort -n | awk -v k=$(( (timed + 1) / 2 )) 'NR == k')
        mx=$(awk '$3 ~ /^[0-9]+$/ { print $3 }' "$1" | sort -n | tail -n 1)
    else
        med=-; mx=-
    fi
    echo "$n $ok $med $mx"
}

echo
echo "reload-under-load: reloads=$RELOADS interval=${INTERVAL}s wrk -t1 -c$CONNS -d${DURATION}s" \
     "proxy-cpu=$PROXY_CPU load-cpu=$LOAD_CPU (wrk+backend) backend=echo --fixed"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "tollgate: $("$TOLLGATE_BIN" --version 2>/dev/null | head -1)   nginx: $("$NGINX" -v 2>&1 | sed 's/.*: //')"

STATUS=0

# ---------------------------------------------------------------- tollgate
if want tollgate; then
    M="$TMP/manifests"; S="$TMP/staging"; mkdir -p "$M" "$S"
    # base_yaml FILE WITH_ECHO_SLICE(1|0): the IngressClass, Services echo and
    # echo-v, and their EndpointSlices (echo's only when asked: the rollout
    # phase gives it its own).
    base_yaml() {
        local out=$1 with_echo=$2 svc port
        cat >"$out" <<EOF
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: tollgate
spec:
  controller: tollgate.dev/ingress-controller
EOF
        for svc in echo echo-v; do
            port=$ECHO_PORT; [[ $svc == echo-v ]] && port=$ECHOV_PORT
            cat >>"$out" <<EOF
---
apiVersion: v1
kind: Service
metadata:
  name: $svc
  namespace: default
spec:
  selector:
    app: $svc
  ports:
    - name: http
      port: 80
      protocol: TCP
      targetPort: http
EOF
            [[ $svc == echo && $with_echo == 0 ]] && continue
            cat >>"$out" <<EOF
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: $svc-bench
  namespace: default
  labels:
    kubernetes.io/service-name: $svc
addressType: IPv4
endpoints:
  - addresses: ["127.0.0.1"]
    conditions:
      ready: true
ports:
  - name: http
    port: $port
    protocol: TCP
EOF
        done
    }
    base_yaml "$M/base.yaml" 1
    # slice_yaml NAME PORT READY(true|false): one EndpointSlice of Service echo.
    slice_yaml() {
        cat <<EOF
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: $1
  namespace: default
  labels:
    kubernetes.io/service-name: echo
addressType: IPv4
endpoints:
  - addresses: ["127.0.0.1"]
    conditions:
      ready: $3
      serving: $3
      terminating: $([[ $3 == true ]] && echo false || echo true)
ports:
  - name: http
    port: $2
    protocol: TCP
EOF
    }
    # tg_endpoints SLICE_DOCS: base.yaml with Service echo's slices replaced,
    # written atomically (tollgate applies it on the endpoint fast path).
    tg_endpoints() {
        base_yaml "$S/base-next.yaml" 0
        printf '%s\n' "$1" >>"$S/base-next.yaml"
        mv -f "$S/base-next.yaml" "$M/base.yaml"
    }
    # start_backend PORT: a new echo backend answering as `echo`; prints its pid.
    start_backend() {
        taskset -c "$LOAD_CPU" "$TOLLGATE_BIN" echo --fixed --listen "127.0.0.1:$1=echo" \
            >>"$TMP/rollout-echo.log" 2>&1 &
        echo $!
    }
    # The endpoint rollout: wrk on / (Service echo) while echo's endpoints
    # move ROLLOUTS times between two backend processes, each step as a
    # Deployment rollout makes it: new backend up and added, old endpoints
    # terminating, old removed, old process SIGTERM.
    rollout_phase() {
        local ports r1 r2 old_port old_pid new_port new_pid i step=0.4 out="$TMP/wrk-rollout.txt"
        read -r r1 r2 <<<"$(free_ports 2)"
        log "tollgate: endpoint rollout, $ROLLOUTS rollouts of Service echo during a ${DURATION}s wrk run"
        old_port=$ECHO_PORT; old_pid=""   # the first backend is the shared echo process: kept
        taskset -c "$LOAD_CPU" timeout $(( DURATION + 30 )) \
            wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 5s -H "Host: $HOST_HEADER" \
            "http://127.0.0.1:$TG_HTTP/" >"$out" 2>&1 &
        WRK_PID=$!
        sleep 1
        for (( i=1; i<=ROLLOUTS; i++ )); do
            alive "$WRK_PID" || { log "rollout: wrk ended after $(( i - 1 )) rollouts (raise DURATION)"; break; }
            if (( i % 2 == 1 )); then new_port=$r1; else new_port=$r2; fi
            new_pid=$(start_backend "$new_port"); PIDS+=("$new_pid")
            wait_http "rollout backend $i" "$new_pid" "http://127.0.0.1:$new_port/"
            tg_endpoints "$(slice_yaml "echo-$old_port" "$old_port" true; slice_yaml "echo-$new_port" "$new_port" true)"
            sleep "$step"
            tg_endpoints "$(slice_yaml "echo-$old_port" "$old_port" false; slice_yaml "echo-$new_port" "$new_port" true)"
            sleep "$step"
            tg_endpoints "$(slice_yaml "echo-$new_port" "$new_port" true)"
            sleep "$step"
            if [[ -n "$old_pid" ]]; then
                kill -TERM "$old_pid" 2>/dev/null || true
                wait "$old_pid" 2>/dev/null || true
            fi
            old_port=$new_port; old_pid=$new_pid
            sleep "$step"
        done
        wait "$WRK_PID" || { local rc=$?; WRK_PID=""; cat "$out" >&2; die "wrk failed during the rollout (exit $rc)"; }
        WRK_PID=""
        alive "$TG_PID" || die "tollgate died during the rollout"
        read -r reqs non2xx sc sr sw st < <(parse_wrk rollout)
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' rollout "$(( i - 1 ))" "$(( i - 1 ))" "$reqs" \
            "$non2xx" "$sc" "$sr" "$sw" "$st" - - "endpoint rollouts of Service echo (tollgate)" >>"$RESULTS"
        if (( non2xx + sc + sr + sw + st > 0 )); then
            log "tollgate: failed requests during the endpoint rollout; raw wrk output:"
            sed 's/^/    /' "$out" >&2
            STATUS=2
        fi
    }
    for ver in a b; do
        vpath=/v1; [[ $ver == b ]] && vpath=/v2
        cat >"$S/ingress-$ver.yaml" <<EOF
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: bench
  namespace: default
  annotations:
    bench.tollgate.dev/version: "$ver"
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
          - path: $vpath
            pathType: Prefix
            backend:
              service:
                name: echo-v
                port:
                  name: http
EOF
    done
    cp "$S/ingress-a.yaml" "$M/ingress.yaml"
    taskset -c "$PROXY_CPU" "$TOLLGATE_BIN" run --manifests "$M" \
        --http-addr "127.0.0.1:$TG_HTTP" --https-addr "127.0.0.1:$TG_HTTPS" \
        --admin-addr "127.0.0.1:$TG_ADMIN" --threads 1 --access-log false \
        ${DEBOUNCE:+--reload-debounce "$DEBOUNCE"} >"$TMP/tollgate.log" 2>&1 &
    TG_PID=$!; PIDS+=("$TG_PID")
    wait_http "tollgate (readyz)" "$TG_PID" "http://127.0.0.1:$TG_ADMIN/readyz"
    wait_http "tollgate (route)" "$TG_PID" "http://127.0.0.1:$TG_HTTP/" "$HOST_HEADER"
    [[ "$(wait_version "$TG_HTTP" a)" != timeout ]] || die "tollgate does not serve version A (/v1 -> echo-v)"
    log "tollgate pid $TG_PID on 127.0.0.1:$TG_HTTP (CPU $PROXY_CPU)"

    tg_generation() {
        curl -s --max-time 2 "http://127.0.0.1:$TG_ADMIN/metrics" \
            | awk '$1 == "tollgate_table_generation" { print $2; f = 1 } END { if (!f) print "?" }'
    }
    # Same filesystem (both under $TMP), so mv is an atomic rename(2): the
    # watcher never sees a half-written file.
    tg_switch() {
        cp "$S/ingress-$1.yaml" "$S/next.yaml"
        mv -f "$S/next.yaml" "$M/ingress.yaml"
    }
    GEN0=$(tg_generation)
    log "tollgate: wrk for ${DURATION}s, $RELOADS manifest switches every ${INTERVAL}s (table generation $GEN0)"
    run_wrk_with_reloads tollgate "$TG_HTTP" tg_switch
    sleep 0.5
    GEN1=$(tg_generation)
    alive "$TG_PID" || die "tollgate died during the run"
    read -r n ok med mx < <(switch_stats "$TMP/switch-tollgate.txt")
    read -r reqs non2xx sc sr sw st < <(parse_wrk tollgate)
    gen_delta="?"; [[ "$GEN0" =~ ^[0-9]+$ && "$GEN1" =~ ^[0-9]+$ ]] && gen_delta=$(( GEN1 - GEN0 ))
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' tollgate "$n" "$ok" "$reqs" "$non2xx" \
        "$sc" "$sr" "$sw" "$st" "$med" "$mx" "table generation $GEN0 -> $GEN1 (+$gen_delta)" >>"$RESULTS"
    if (( non2xx + sc + sr + sw + st > 0 )); then
        log "tollgate: failed requests during reloads; raw wrk output:"
        sed 's/^/    /' "$TMP/wrk-tollgate.txt" >&2
        STATUS=2
    fi
    if (( CONFIRM == 1 )) && { (( ok != RELOADS )) || [[ "$gen_delta" != "$RELOADS" ]]; }; then
        log "tollgate: $ok of $RELOADS switches confirmed, table generation +$gen_delta (expected +$RELOADS)"
        STATUS=2
    fi
    # Unconfirmed switches: the last one showed, and the file watcher may
    # coalesce switches closer than its debounce, so at least one reload.
    if (( CONFIRM == 0 )) && { (( ok != RELOADS )) || ! [[ "$gen_delta" =~ ^[0-9]+$ ]] || (( gen_delta < 1 )); }; then
        log "tollgate: last switch not confirmed or no reload (table generation +$gen_delta)"
        STATUS=2
    fi
    if (( ROLLOUTS > 0 )); then
        rollout_phase
    fi
fi

# ---------------------------------------------------------------- nginx
if want nginx; then
    N="$TMP/nginx"; mkdir -p "$N"/{body,proxy,fastcgi,uwsgi,scgi,staging}
    NG_SEEN_WORKERS_FILE="$N/workers-seen.txt"; : >"$NG_SEEN_WORKERS_FILE"
    sed -e "s#@TMP@#$N#g" -e "s#@PORT@#$NG_PORT#g" -e "s#@BACKEND@#127.0.0.1:$ECHO_PORT#g" \
        -e "s#@HOST@#$HOST_HEADER#g" "$SCRIPT_DIR/nginx.conf.template" >"$N/base.conf"
    grep -qE '^[[:space:]]*location / \{' "$N/base.conf" && grep -qE '^[[:space:]]*server \{' "$N/base.conf" \
        || die "nginx.conf.template has no 'server {' / 'location / {' line to extend"
    # Version X = the template plus `upstream echo_v` and `location /vN`, which
    # proxies like `location /` (same settings, copied from the template).
    for ver in a b; do
        vpath=/v1; [[ $ver == b ]] && vpath=/v2
        awk -v vpath="$vpath" -v vport="$ECHOV_PORT" -v ver="$ver" '
            /^[[:space:]]*location \/ \{/ { inloc = 1 }
            inloc { body = body $0 "\n" }
            inloc && /^[[:space:]]*\}/ { inloc = 0 }
            { lines[++n] = $0 }
            END {
                sub(/location \/ \{/, "location " vpath " {", body)
                sub(/proxy_pass http:\/\/echo;/, "proxy_pass http://echo_v;", body)
                for (i = 1; i <= n; i++) {
                    if (lines[i] ~ /^[[:space:]]*server \{/) {
                        print "    # bench version " ver
                        print "    upstream echo_v {"
                        print "        server 127.0.0.1:" vport ";"
                        print "        keepalive 64;"
                        print "        keepalive_requests 1000000;"
                        print "        keepalive_timeout 60s;"
                        print "    }"
                        print ""
                    }
                    if (lines[i] ~ /^[[:space:]]*location \/ \{/) printf "%s", body
                    print lines[i]
                }
            }' "$N/base.conf" >"$N/staging/nginx-$ver.conf"
        grep -q "proxy_pass http://echo_v;" "$N/staging/nginx-$ver.conf" || die "could not build nginx config version $ver"
    done
    cp "$N/staging/nginx-a.conf" "$N/nginx.conf"
    "$NGINX" -t -q -p "$N" -c "$N/nginx.conf" >"$TMP/nginx-t.log" 2>&1 \
        || { cat "$TMP/nginx-t.log" >&2; die "nginx config test failed"; }
    cp "$N/staging/nginx-b.conf" "$N/nginx-b-test.conf"
    "$NGINX" -t -q -p "$N" -c "$N/nginx-b-test.conf" >"$TMP/nginx-t.log" 2>&1 \
        || { cat "$TMP/nginx-t.log" >&2; die "nginx config (version b) test failed"; }
    rm -f "$N/nginx-b-test.conf"
    taskset -c "$PROXY_CPU" "$NGINX" -p "$N" -c "$N/nginx.conf" >"$TMP/nginx.log" 2>&1 &
    NG_PID=$!; PIDS+=("$NG_PID")
    wait_http "nginx" "$NG_PID" "http://127.0.0.1:$NG_PORT/" "$HOST_HEADER"
    [[ "$(wait_version "$NG_PORT" a)" != timeout ]] || die "nginx does not serve version A (/v1 -> echo-v)"
    pgrep -P "$NG_PID" >>"$NG_SEEN_WORKERS_FILE" || true
    log "nginx master $NG_PID, worker(s) $(pgrep -P "$NG_PID" | paste -sd' ') on 127.0.0.1:$NG_PORT (CPU $PROXY_CPU)"

    # What `nginx -s reload` does: SIGHUP to the master (taken from our own pid,
    # not the pid file). New workers inherit the master's CPU affinity.
    ng_switch() {
        cp "$N/staging/nginx-$1.conf" "$N/staging/next.conf"
        mv -f "$N/staging/next.conf" "$N/nginx.conf"
        kill -HUP "$NG_PID"
        pgrep -P "$NG_PID" >>"$NG_SEEN_WORKERS_FILE" || true
    }
    log "nginx: wrk for ${DURATION}s, $RELOADS reloads (SIGHUP) every ${INTERVAL}s"
    run_wrk_with_reloads nginx "$NG_PORT" ng_switch
    pgrep -P "$NG_PID" >>"$NG_SEEN_WORKERS_FILE" || true
    alive "$NG_PID" || die "nginx died during the run"
    gens=$(sort -u "$NG_SEEN_WORKERS_FILE" | wc -l)
    read -r n ok med mx < <(switch_stats "$TMP/switch-nginx.txt")
    read -r reqs non2xx sc sr sw st < <(parse_wrk nginx)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' nginx "$n" "$ok" "$reqs" "$non2xx" \
        "$sc" "$sr" "$sw" "$st" "$med" "$mx" "$gens distinct worker pids seen (1 + one per reload)" >>"$RESULTS"
    if (( ok != RELOADS )); then
        log "nginx: $ok of $RELOADS reloads confirmed"
    fi
fi

# ---------------------------------------------------------------- summary
echo
echo "=== summary: wrk -t1 -c$CONNS -d${DURATION}s on / while reloading every ${INTERVAL}s ==="
printf '  %-9s %8s %10s %8s %17s %8s %9s %13s\n' proxy reloads requests non-2xx "sockerr c/r/w/t" failures "fail/rel" "apply ms p50/max"
while IFS=$'\t' read -r proxy n ok reqs non2xx sc sr sw st med mx extra; do
    fails=$(( non2xx + sc + sr + sw + st ))
    printf '  %-9s %8s %10s %8s %17s %8s %9s %13s\n' "$proxy" "$ok/$n" "$reqs" "$non2xx" \
        "$(( sc + sr + sw + st )) $sc/$sr/$sw/$st" "$fails" \
        "$(awk -v f="$fails" -v n="$n" 'BEGIN { printf "%.1f", (n ? f / n : 0) }')" "$med/$mx"
    printf '  %-9s %s\n' "" "$extra"
done <"$RESULTS"
echo "  reloads: switches confirmed / made (by X-Echo-Service on /v1 and /v2); apply ms: time from"
echo "  the switch (rename, + SIGHUP for nginx) until both paths answered from the new version"
echo "  failures = non-2xx + socket errors (connect/read/write/timeout) as counted by wrk"

for p in tollgate rollout nginx; do
    [[ -s "$TMP/wrk-$p.txt" ]] || continue
    echo
    echo "--- wrk output, $p ---"
    sed 's/^/    /' "$TMP/wrk-$p.txt"
done
if [[ -s "$TMP/tollgate.log" ]] && grep -qiE 'error|panic|warn' "$TMP/tollgate.log"; then
    echo "note: tollgate log contains warnings/errors (first 10):"
    grep -iE 'error|panic|warn' "$TMP/tollgate.log" | head -n 10 | sed 's/^/    /'
fi
if [[ -s "${N:-/nonexistent}/error.log" ]] && grep -qE '\[(error|crit|alert|emerg)\]' "$N/error.log"; then
    echo "note: nginx error.log has errors (first 5):"
    grep -E '\[(error|crit|alert|emerg)\]' "$N/error.log" | head -n 5 | sed 's/^/    /'
fi
exit "$STATUS"
