#!/usr/bin/env bash
# Side-by-side TLS termination cost of tollgate and nginx: HTTPS (HTTP/1.1 over
# TLS) proxied to the same plain-HTTP backend (tollgate's built-in echo server),
# with one ECDSA P-256 certificate for bench.local shared by both proxies.
#
# Two measurements ("modes"), each in interleaved rounds, both proxies per round:
#   keepalive  wrk -t1 -c$CONNS --latency over kept-alive TLS connections:
#              req/s, p99, proxy CPU µs per request (TLS record cost, no handshakes).
#   handshake  the same with `Connection: close`: every request on a fresh TCP+TLS
#              connection, every handshake a FULL one (see "resumption" below):
#              handshakes/s (= req/s), proxy CPU µs per handshake (accept + full
#              TLS 1.3 handshake + one proxied request + close).
#   resumed    (optional, MODES="keepalive handshake resumed") like handshake, but
#              wrk is left alone and resumes its TLS 1.3 sessions (PSK).
#
# SNI: wrk sends the URL host as SNI and as Host. bench.local does not resolve
# (and /etc/hosts is not ours to edit), and https://127.0.0.1:P/ would send the
# IP as SNI: rustls ignores an IP SNI, tollgate then presents its default
# certificate and answers 421 (Misdirected Request) for Host: bench.local.
# So wrk gets https://bench.local:P/ plus a 3-line Lua script that overrides
# wrk.resolve() to connect to 127.0.0.1. The script defines no request/response
# functions, so wrk keeps its static (zero-Lua-per-request) fast path.
#
# Resumption: wrk reuses one SSL object per connection slot (SSL_shutdown +
# SSL_clear on reconnect), which keeps the session, so on reconnect it offers
# the TLS 1.3 ticket it got and both proxies resume: only the first handshake
# per slot is full. For the "handshake" mode the script builds a tiny
# LD_PRELOAD shim (needs a C compiler) whose SSL_clear also drops the session,
# so every handshake is full. A passive census (python, AF_PACKET on lo, reads
# the plaintext ClientHello/ServerHello) shows SNI, version, cipher, group and
# full vs resumed for plain wrk and wrk+shim against both proxies (PROBE=0 skips it).
#
# CPU layout (this machine has exactly 2 cores):
#   CPU ${PROXY_CPU:-0}: the proxy under test (tollgate --threads 1, or nginx with 1 worker).
#                        Both proxies run all the time but only the one being
#                        measured receives traffic.
#   CPU ${LOAD_CPU:-1}:  the echo backend AND wrk (the load generator) share this core.
# The client side of a full handshake (X25519 + ECDSA verify of CertificateVerify)
# is not free either, so check prx% / lcore%: if the proxy is not saturated, the
# CPU-per-request / per-handshake columns are the ones to compare.
#
# Environment knobs (all optional):
#   ROUNDS=5 CONNS=50 DURATION=8 WARMUP=2  interleaved rounds, wrk -c, wrk -d (s), warm-up (s)
#   QUICK=1          smoke mode: ROUNDS=2 DURATION=3 WARMUP=1 (explicit values still win)
#   MODES="keepalive handshake"  which measurements (also: resumed)
#   ONLY=both|tollgate|nginx   benchmark only one proxy (ratios need both)
#   TOLLGATE_BIN=path          use this binary instead of target/release/tollgate
#   NO_BUILD=1                 do not run `cargo build --release`
#   ECHO_FIXED=1               backend answers a fixed 3-byte body (0 = JSON echo)
#   PROXY_CPU=0 LOAD_CPU=1     core pinning
#   PROBE=1 PROBE_S=1          handshake census before the rounds (0 = skip)
#   PROXY_QUOTA=50             give each proxy the same CPU budget, this percent of
#                              one core (cgroup v1 cpu.cfs_quota_us; needs root and
#                              /sys/fs/cgroup/cpu). For the handshake modes: one
#                              client core cannot saturate a whole server core
#                              (the client's half of a handshake costs about as
#                              much), so without a quota both proxies run at the
#                              client's pace and the rate ratio says nothing about
#                              the proxies; with an equal quota the proxy is the
#                              bottleneck and the rate ratio is the efficiency ratio.
#   ACCESS_LOG=off|on          on: both proxies log every request in ingress-nginx's
#                              default format (`upstreaminfo`): nginx to a file
#                              (unbuffered), tollgate its default line to stdout
#                              redirected to a file (as bench/wrk-vs-nginx.sh)
#   KEEP_TMP=1                 keep the temp dir (certs, configs, logs, raw wrk output)
#
# Exit status: 0 = all rounds clean; 1 = something failed to start / died;
#              2 = benchmark ran but at least one run had wrk errors or non-2xx
#                  (or tollgate counted more failed handshakes than CONNS in a run).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

if [[ "${QUICK:-0}" == 1 ]]; then
    ROUNDS=${ROUNDS:-2}; DURATION=${DURATION:-3}; WARMUP=${WARMUP:-1}
fi
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-50}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
ONLY=${ONLY:-both}
ECHO_FIXED=${ECHO_FIXED:-1}
ACCESS_LOG=${ACCESS_LOG:-off}
case "$ACCESS_LOG" in on|off) ;; *) echo "ACCESS_LOG must be on|off" >&2; exit 1 ;; esac
TG_ACCESS=false; [[ "$ACCESS_LOG" == on ]] && TG_ACCESS=true
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PROBE=${PROBE:-1}
PROBE_S=${PROBE_S:-1}
MODES=${MODES:-keepalive handshake}
PROXY_QUOTA=${PROXY_QUOTA:-}; export PROXY_QUOTA
CGROUPS=()       # cgroup dirs we created (PROXY_QUOTA)
TLS_HOST=bench.local
START_TIMEOUT_S=30   # per process, bounded

case "$ONLY" in both|tollgate|nginx) ;; *) echo "ONLY must be both|tollgate|nginx" >&2; exit 1 ;; esac
for v in ROUNDS CONNS DURATION WARMUP PROXY_CPU LOAD_CPU PROBE_S; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "$v must be a non-negative integer (got '${!v}')" >&2; exit 1; }
done
(( ROUNDS >= 1 && ROUNDS <= 100 )) || { echo "ROUNDS must be 1..100" >&2; exit 1; }
(( DURATION >= 1 && DURATION <= 600 )) || { echo "DURATION must be 1..600" >&2; exit 1; }
(( CONNS >= 1 && CONNS <= 10000 )) || { echo "CONNS must be 1..10000" >&2; exit 1; }
(( PROBE_S >= 1 && PROBE_S <= 60 )) || { echo "PROBE_S must be 1..60" >&2; exit 1; }
read -r -a MODE_LIST <<<"$MODES"
(( ${#MODE_LIST[@]} >= 1 )) || { echo "MODES is empty" >&2; exit 1; }
for m in "${MODE_LIST[@]}"; do
    case "$m" in keepalive|handshake|resumed) ;; *) echo "MODES: unknown mode '$m' (keepalive|handshake|resumed)" >&2; exit 1 ;; esac
done

want() { [[ "$ONLY" == both || "$ONLY" == "$1" ]]; }
want_mode() { local m; for m in "${MODE_LIST[@]}"; do [[ "$m" == "$1" ]] && return 0; done; return 1; }

for tool in wrk curl taskset python3 awk openssl timeout; do
    command -v "$tool" >/dev/null || { echo "error: '$tool' not found in PATH" >&2; exit 1; }
done
CC=${CC:-$(command -v cc || command -v gcc || true)}
if [[ -z "$CC" ]] && { want_mode handshake || [[ "$PROBE" == 1 ]]; }; then
    echo "error: a C compiler (cc) is needed for the no-resumption shim of the 'handshake' mode;" \
         "use MODES='keepalive resumed' PROBE=0 without one" >&2
    exit 1
fi
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
if want nginx && [[ ! -x "$NGINX" ]]; then echo "error: nginx not found" >&2; exit 1; fi

TMP=$(mktemp -d /tmp/tollgate-tls-bench.XXXXXX)
PIDS=()          # every process we started, in start order
FAILED_RUNS=0
WRK_PID=""       # wrk run in progress, if any
SNIFF_PID=""     # census sniffer in progress, if any

cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    for pid in "$WRK_PID" "$SNIFF_PID"; do
        [[ -n "$pid" ]] || continue
        kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
    done
    stop_pids
    for i in "${CGROUPS[@]}"; do rmdir "$i" 2>/dev/null || true; done
    remove_tmp
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# limit_cpu NAME PID...: with PROXY_QUOTA, moves the processes into a cgroup
# allowed PROXY_QUOTA% of one core (the same budget for every proxy).
limit_cpu() {
    [[ -n "$PROXY_QUOTA" ]] || return 0
    local name=$1 dir pid; shift
    dir="/sys/fs/cgroup/cpu/tollgate-bench-$$-$name"
    mkdir -p "$dir" || die "PROXY_QUOTA: cannot create $dir (needs root and cgroup v1 cpu)"
    CGROUPS+=("$dir")
    echo 100000 >"$dir/cpu.cfs_period_us"
    echo $(( PROXY_QUOTA * 1000 )) >"$dir/cpu.cfs_quota_us"
    for pid in "$@"; do echo "$pid" >"$dir/cgroup.procs"; done
    log "$name limited to $PROXY_QUOTA% of one core ($dir)"
}

# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"
DIE_LOGS="$TMP/nginx/error.log"




# https_curl PORT [curl args...]: curl https://bench.local:PORT/ connecting to 127.0.0.1,
# so SNI and Host are bench.local. -k: the certificate is self-signed.
https_url() { echo "https://$TLS_HOST:$1/"; }
https_args() { echo "-k --resolve $TLS_HOST:$1:127.0.0.1"; }

# served_fp PORT: SHA-256 fingerprint of the certificate served for SNI bench.local.
served_fp() {
    timeout 5 openssl s_client -connect "127.0.0.1:$1" -servername "$TLS_HOST" </dev/null 2>/dev/null \
        | openssl x509 -noout -fingerprint -sha256 2>/dev/null | sed 's/.*=//' || true
}




# ---------------------------------------------------------------- build
TOLLGATE_BIN=${TOLLGATE_BIN:-$REPO_ROOT/target/release/tollgate}
build_tollgate "$TOLLGATE_BIN" "$REPO_ROOT/target/release/tollgate"
# A binary from before TLS termination still has --https-addr but never listens on it.
# (Output captured first: `cmd | grep -q` can fail under pipefail when grep exits early.)
tg_help=$("$TOLLGATE_BIN" run --help 2>/dev/null || true)
[[ "$tg_help" == *--default-certificate* ]] \
    || die "$TOLLGATE_BIN has no TLS termination (built before it?): rebuild it or set TOLLGATE_BIN"

read -r ECHO_PORT TG_HTTP TG_HTTPS TG_ADMIN NG_PORT NG_STATUS <<<"$(free_ports 6)"

# ---------------------------------------------------------------- certificate, wrk helpers
mkdir -p "$TMP/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$TMP/tls/key.pem" -out "$TMP/tls/cert.pem" -days 2 \
    -subj "/CN=$TLS_HOST" -addext "subjectAltName=DNS:$TLS_HOST" >"$TMP/openssl.out" 2>&1 \
    || { cat "$TMP/openssl.out" >&2; die "openssl could not generate the certificate"; }
CERT_FP=$(openssl x509 -in "$TMP/tls/cert.pem" -noout -fingerprint -sha256 | sed 's/.*=//')

# wrk connects to 127.0.0.1 but keeps bench.local as URL host (-> SNI and Host).
cat >"$TMP/sni.lua" <<EOF
-- wrk resolves the URL host once at start-up; connect to 127.0.0.1 instead,
-- so that $TLS_HOST stays the SNI name (SSL_set_tlsext_host_name) and Host.
function wrk.resolve(host, service)
   wrk.addrs = wrk.lookup("127.0.0.1", service)
end
EOF

# No-resumption shim: wrk calls SSL_shutdown + SSL_clear before reconnecting on
# the same SSL object, which keeps the session and resumes it. Dropping the
# session after SSL_clear makes every handshake a full one.
NORESUME_SO=""
if [[ -n "$CC" ]] && { want_mode handshake || [[ "$PROBE" == 1 ]]; }; then
    cat >"$TMP/noresume.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;
int SSL_clear(SSL *s) {
    static int (*real_clear)(SSL *);
    static int (*set_session)(SSL *, SSL_SESSION *);
    if (!real_clear) {
        real_clear = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_clear");
        set_session = (int (*)(SSL *, SSL_SESSION *))dlsym(RTLD_NEXT, "SSL_set_session");
    }
    int rc = real_clear ? real_clear(s) : 0;
    if (set_session) set_session(s, NULL);
    return rc;
}
EOF
    "$CC" -O2 -shared -fPIC -o "$TMP/noresume.so" "$TMP/noresume.c" -ldl >"$TMP/cc.out" 2>&1 \
        || { cat "$TMP/cc.out" >&2; die "could not build the no-resumption shim"; }
    NORESUME_SO="$TMP/noresume.so"
    wrk_syms=$(nm -D "$(command -v wrk)" 2>/dev/null || true)
    if [[ "$wrk_syms" != *" U SSL_clear"* ]]; then
        log "warning: wrk does not import SSL_clear dynamically; the shim may not take effect (see the census)"
    fi
fi

# ---------------------------------------------------------------- backend
BACKEND_PID=""
ECHO_ARGS=()
[[ "$ECHO_FIXED" == 1 ]] && ECHO_ARGS+=(--fixed)
taskset -c "$LOAD_CPU" "$TOLLGATE_BIN" echo "${ECHO_ARGS[@]}" --listen "127.0.0.1:$ECHO_PORT=echo" \
    >"$TMP/echo.log" 2>&1 &
BACKEND_PID=$!; PIDS+=("$BACKEND_PID")
wait_url "echo backend" "$BACKEND_PID" "http://127.0.0.1:$ECHO_PORT/"
log "echo backend pid $BACKEND_PID on 127.0.0.1:$ECHO_PORT (CPU $LOAD_CPU)"

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
  namespace: bench
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
  namespace: bench
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
    cat >"$M/secret.yaml" <<EOF
apiVersion: v1
kind: Secret
type: kubernetes.io/tls
metadata:
  name: bench-tls
  namespace: bench
data:
  tls.crt: $(base64 -w0 "$TMP/tls/cert.pem")
  tls.key: $(base64 -w0 "$TMP/tls/key.pem")
EOF
    cat >"$M/ingress.yaml" <<EOF
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: bench
  namespace: bench
spec:
  ingressClassName: tollgate
  tls:
    - hosts: [$TLS_HOST]
      secretName: bench-tls
  rules:
    - host: $TLS_HOST
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
    limit_cpu tollgate "$TG_PID"
    wait_url "tollgate (readyz)" "$TG_PID" "http://127.0.0.1:$TG_ADMIN/readyz"
    # shellcheck disable=SC2046
    wait_url "tollgate (https route)" "$TG_PID" "$(https_url "$TG_HTTPS")" $(https_args "$TG_HTTPS")
    fp=$(served_fp "$TG_HTTPS")
    [[ "$fp" == "$CERT_FP" ]] || die "tollgate serves another certificate for SNI $TLS_HOST (got '${fp:-none}', want $CERT_FP)"
    redirect=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H "Host: $TLS_HOST" "http://127.0.0.1:$TG_HTTP/" || true)
    log "tollgate pid $TG_PID https 127.0.0.1:$TG_HTTPS (CPU $PROXY_CPU), threads=$(ls /proc/$TG_PID/task | wc -l)," \
        "serves the bench certificate for SNI $TLS_HOST; plain HTTP answers $redirect (not measured)"
fi

# ---------------------------------------------------------------- nginx
NG_PID=""; NG_PIDS=()
if want nginx; then
    N="$TMP/nginx"; mkdir -p "$N"/{body,proxy,fastcgi,uwsgi,scgi}
    # Same proxy settings as nginx.conf.template (used by wrk-vs-nginx.sh), plus
    # a production-like TLS server and a stub_status listener (connection counts).
    NG_ACCESS=off; [[ "$ACCESS_LOG" == on ]] && NG_ACCESS="$N/access.log upstreaminfo"
    cat >"$N/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $N/nginx.pid;
error_log $N/error.log warn;

events {
    worker_connections 4096;
}

http {
    log_format upstreaminfo '\$remote_addr - \$remote_user [\$time_local] "\$request" '
        '\$status \$body_bytes_sent "\$http_referer" "\$http_user_agent" '
        '\$request_length \$request_time [\$proxy_upstream_name] '
        '[\$proxy_alternative_upstream_name] \$upstream_addr '
        '\$upstream_response_length \$upstream_response_time \$upstream_status \$request_id';
    access_log $NG_ACCESS;
    server_tokens off;

    client_body_temp_path $N/body;
    proxy_temp_path       $N/proxy;
    fastcgi_temp_path     $N/fastcgi;
    uwsgi_temp_path       $N/uwsgi;
    scgi_temp_path        $N/scgi;

    keepalive_timeout  75s;
    keepalive_requests 1000000;

    upstream echo {
        server 127.0.0.1:$ECHO_PORT;
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }

    server {
        listen 127.0.0.1:$NG_PORT ssl default_server;
        server_name $TLS_HOST;

        ssl_certificate     $TMP/tls/cert.pem;
        ssl_certificate_key $TMP/tls/key.pem;
        ssl_protocols       TLSv1.2 TLSv1.3;
        ssl_session_cache   shared:SSL:10m;
        ssl_session_tickets on;

        location / {
            set \$proxy_upstream_name "upstream-bench-echo-http";
            set \$proxy_alternative_upstream_name "";
            proxy_pass http://echo;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host              \$host;
            proxy_set_header X-Real-IP         \$remote_addr;
            proxy_set_header X-Forwarded-For   \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Host  \$host;
            proxy_set_header X-Forwarded-Port  \$server_port;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Request-ID      \$request_id;
        }
    }

    server {
        listen 127.0.0.1:$NG_STATUS;
        location = /status { stub_status; }
    }
}
EOF
    "$NGINX" -t -q -p "$N" -c "$N/nginx.conf" >"$TMP/nginx-t.log" 2>&1 \
        || { cat "$TMP/nginx-t.log" >&2; die "nginx config test failed"; }
    taskset -c "$PROXY_CPU" "$NGINX" -p "$N" -c "$N/nginx.conf" >"$TMP/nginx.log" 2>&1 &
    NG_PID=$!; PIDS+=("$NG_PID")
    # shellcheck disable=SC2046
    wait_url "nginx" "$NG_PID" "$(https_url "$NG_PORT")" $(https_args "$NG_PORT")
    fp=$(served_fp "$NG_PORT")
    [[ "$fp" == "$CERT_FP" ]] || die "nginx serves another certificate (got '${fp:-none}', want $CERT_FP)"
    # master + worker(s); only the worker does real work.
    mapfile -t NG_WORKERS < <(pgrep -P "$NG_PID" || true)
    (( ${#NG_WORKERS[@]} >= 1 )) || die "nginx has no worker process"
    NG_PIDS=("$NG_PID" "${NG_WORKERS[@]}")
    limit_cpu nginx "${NG_PIDS[@]}"
    log "nginx master $NG_PID worker(s) ${NG_WORKERS[*]} https 127.0.0.1:$NG_PORT (CPU $PROXY_CPU)"
fi

# ---------------------------------------------------------------- helpers for runs
proxy_port() { [[ $1 == tollgate ]] && echo "$TG_HTTPS" || echo "$NG_PORT"; }
proxy_pids() { if [[ $1 == tollgate ]]; then echo "$TG_PID"; else echo "${NG_PIDS[*]}"; fi; }

check_alive() {
    local p
    for p in "${PIDS[@]}"; do alive "$p" || die "process $p died (see logs)"; done
}

# conn_counters PROXY -> "connections failed_handshakes" (cumulative)
#   tollgate: tollgate_tls_handshakes_total{ok,error,timeout}; failed = error + timeout
#   nginx: stub_status accepts (this status request included), failed = "-"
conn_counters() {
    if [[ $1 == tollgate ]]; then
        curl -s --max-time 2 "http://127.0.0.1:$TG_ADMIN/metrics" | awk '
            /^tollgate_tls_handshakes_total\{/ { n += $NF; if ($0 !~ /result="ok"/) f += $NF }
            END { printf "%d %d\n", n, f }'
    else
        curl -s --max-time 2 "http://127.0.0.1:$NG_STATUS/status" | awk 'NR == 3 { print $1, "-" }'
    fi
}


# wrk_cmd MODE PROXY DURATION CONNS: the wrk command line for one run, pinned to LOAD_CPU.
wrk_cmd() {
    local mode=$1 port; port=$(proxy_port "$2")
    local -a cmd=(taskset -c "$LOAD_CPU" timeout $(( $3 + 30 )))
    [[ "$mode" == handshake ]] && cmd+=(env "LD_PRELOAD=$NORESUME_SO")
    cmd+=(wrk -t1 -c"$4" -d"${3}s" --timeout 5s --latency -s "$TMP/sni.lua" -H "Host: $TLS_HOST")
    [[ "$mode" != keepalive ]] && cmd+=(-H "Connection: close")
    cmd+=("$(https_url "$port")")
    printf '%s\0' "${cmd[@]}"
}

RESULTS="$TMP/results.tsv"
: >"$RESULTS"

# run_one MODE PROXY ROUND DURATION -> appends one TSV row to $RESULTS
run_one() {
    local mode=$1 proxy=$2 round=$3 dur=$4 out pids c0 c1 b0 b1 t0 t1 k0 k1
    pids=$(proxy_pids "$proxy")
    out="$TMP/wrk-$mode-$proxy-r$round.txt"
    check_alive
    local -a cmd
    mapfile -d '' -t cmd < <(wrk_cmd "$mode" "$proxy" "$dur" "$CONNS")
    k0=$(conn_counters "$proxy")
    # shellcheck disable=SC2086
    c0=$(cpu_ticks $pids); b0=$(cpu_ticks "$BACKEND_PID")
    local pc0 lc0 pc1 lc1
    pc0=$(core_jiffies "$PROXY_CPU"); lc0=$(core_jiffies "$LOAD_CPU")
    t0=$(date +%s.%N)
    # Background + wait so a TERM/INT trap fires immediately instead of after wrk ends.
    "${cmd[@]}" >"$out" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || { WRK_PID=""; cat "$out" >&2; die "wrk failed against $proxy ($mode)"; }
    WRK_PID=""
    t1=$(date +%s.%N)
    pc1=$(core_jiffies "$PROXY_CPU"); lc1=$(core_jiffies "$LOAD_CPU")
    # shellcheck disable=SC2086
    c1=$(cpu_ticks $pids); b1=$(cpu_ticks "$BACKEND_PID")
    sleep 0.2   # let the proxy finish the connections wrk dropped at its end
    k1=$(conn_counters "$proxy")
    check_alive

    local reqs rps p50 p99 non2xx sockerr conns hsfail
    reqs=$(awk '/ requests in / { print $1; exit }' "$out")
    rps=$(awk '/^Requests\/sec:/ { print $2; exit }' "$out")
    p50=$(awk '$1 == "50%" { print $2; exit }' "$out")
    p99=$(awk '$1 == "99%" { print $2; exit }' "$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF; exit }' "$out")
    sockerr=$(awk '/Socket errors:/ { gsub(/,/, ""); print $4 + $6 + $8 + $10; exit }' "$out")
    [[ -n "$reqs" && -n "$rps" && -n "$p99" ]] || { cat "$out" >&2; die "could not parse wrk output for $proxy ($mode)"; }
    p50=$(to_ms "$p50"); p99=$(to_ms "$p99")
    non2xx=${non2xx:-0}; sockerr=${sockerr:-0}
    read -r a0 f0 <<<"$k0"; read -r a1 f1 <<<"$k1"
    if [[ $proxy == tollgate ]]; then
        conns=$(( a1 - a0 )); hsfail=$(( f1 - f0 ))
    else
        conns=$(( a1 - a0 - 1 )); hsfail=-    # minus the second status request itself
    fi
    local status=ok
    # wrk stops mid-handshake on up to CONNS connections at its end; tollgate
    # counts those as failed handshakes. More than that is a real failure.
    if (( non2xx > 0 || sockerr > 0 || reqs == 0 )) || { [[ "$hsfail" != - ]] && (( hsfail > CONNS )); }; then
        status=FAIL
        FAILED_RUNS=$(( FAILED_RUNS + 1 ))
        log "round $round $mode $proxy: errors (non-2xx/3xx=$non2xx socket errors=$sockerr failed handshakes=$hsfail); raw wrk output:"
        sed 's/^/    /' "$out" >&2
    fi
    local pcore lcore
    pcore=$(awk -v a="$pc0" -v b="$pc1" 'BEGIN { split(a, x, " "); split(b, y, " ");
        d = y[2] - x[2]; printf "%.0f", (d > 0 ? 100 * (y[1] - x[1]) / d : 0) }')
    lcore=$(awk -v a="$lc0" -v b="$lc1" 'BEGIN { split(a, x, " "); split(b, y, " ");
        d = y[2] - x[2]; printf "%.0f", (d > 0 ? 100 * (y[1] - x[1]) / d : 0) }')
    # mode round proxy reqs rps p50 p99 cpu_ticks wall backend_ticks non2xx sockerr status pcore% lcore% conns hsfail
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$mode" "$round" "$proxy" "$reqs" "$rps" "$p50" "$p99" "$(( c1 - c0 ))" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" "$(( b1 - b0 ))" \
        "$non2xx" "$sockerr" "$status" "$pcore" "$lcore" "$conns" "$hsfail" >>"$RESULTS"
}

print_row() {   # reads TSV rows on stdin
    awk -F'\t' -v hz="$CLK_TCK" '{
        cpu = $8 / hz; us = ($4 > 0) ? cpu * 1e6 / $4 : 0
        printf "  %-9s %-5s %-9s %9.0f %9.3f %9.3f %9.2f %6.0f%% %6.0f%% %6.0f%% %6.0f%% %8d %6s %7d %6d  %s\n",
            $1, $2, $3, $5, $6, $7, us, 100 * cpu / $9, $14, 100 * ($10 / hz) / $9, $15, $16, $17, $11, $12, $13 }'
}
print_header() {
    printf '  %-9s %-5s %-9s %9s %9s %9s %9s %7s %7s %7s %7s %8s %6s %7s %6s  %s\n' \
        mode round proxy "req/s" "p50(ms)" "p99(ms)" "cpuµs/req" "prx%" "pcore%" "bknd%" "lcore%" \
        conns hsfail non2xx sockerr status
}

# ---------------------------------------------------------------- header
PROXIES=()
want tollgate && PROXIES+=(tollgate)
want nginx && PROXIES+=(nginx)

echo
echo "tls-vs-nginx: modes='${MODE_LIST[*]}' rounds=$ROUNDS conns=$CONNS duration=${DURATION}s warmup=${WARMUP}s" \
     "proxy-cpu=$PROXY_CPU load-cpu=$LOAD_CPU (wrk+backend) clk_tck=$CLK_TCK" \
     "backend=$([[ "$ECHO_FIXED" == 1 ]] && echo "echo --fixed" || echo "echo (json)")"
echo "certificate: ECDSA P-256, CN/SAN $TLS_HOST, sha256 ${CERT_FP:0:23}...; both proxies serve it for SNI $TLS_HOST;" \
     "wrk sends SNI + Host $TLS_HOST (wrk.resolve -> 127.0.0.1)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "tollgate: $([[ -n "$TG_PID" ]] && "$TOLLGATE_BIN" --version 2>/dev/null | head -1 || echo n/a) ($TOLLGATE_BIN)" \
     "  nginx: $("$NGINX" -v 2>&1 | sed 's/.*: //')   wrk: $(wrk -v 2>&1 | head -1 | awk '{ print $2 }')" \
     "  $(openssl version | awk '{ print $1, $2 }')"

# ---------------------------------------------------------------- warm-up
if (( WARMUP > 0 )); then
    for m in "${MODE_LIST[@]}"; do
        for p in "${PROXIES[@]}"; do
            run_one "$m" "$p" warm "$WARMUP"
        done
    done
    echo
    echo "warm-up (discarded):"
    print_header
    print_row <"$RESULTS"
    if (( FAILED_RUNS > 0 )); then
        die "warm-up had errors; refusing to benchmark a broken setup"
    fi
    : >"$RESULTS"
fi

# ---------------------------------------------------------------- handshake census
# Sniffs ClientHello/ServerHello on lo while wrk runs `Connection: close` for
# PROBE_S seconds with 4 connections: plain wrk, and wrk with the shim.
CENSUS_FULL_OK=unknown
if [[ "$PROBE" == 1 ]]; then
    cat >"$TMP/sniff.py" <<'EOF'
# Passive TLS handshake census on lo for one server port (needs CAP_NET_RAW).
import json, signal, socket, struct, sys, time
from collections import Counter

port, max_s, out, ready = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
HRR = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind(("lo", 0))
s.settimeout(0.2)
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGINT, on_term)
open(ready, "w").close()

c, sni, ver, suite, group = Counter(), Counter(), Counter(), Counter(), Counter()

def exts(b, i):
    end = min(len(b), i + 2 + struct.unpack_from("!H", b, i)[0]); i += 2
    while i + 4 <= end:
        t, n = struct.unpack_from("!HH", b, i)
        yield t, b[i + 4:i + 4 + n]
        i += 4 + n

def client_hello(h):
    c["client_hello"] += 1
    i = 2 + 32
    i += 1 + h[i]                                   # session id
    i += 2 + struct.unpack_from("!H", h, i)[0]      # cipher suites
    i += 1 + h[i]                                   # compression
    name = None
    for t, d in exts(h, i):
        if t == 0 and len(d) > 5:
            name = d[5:5 + struct.unpack_from("!H", d, 3)[0]].decode("ascii", "replace")
        elif t == 41:
            c["offers_psk"] += 1
    sni[name or "(none)"] += 1

def has_certificate(rest):
    i = 0
    while i + 5 < len(rest):
        if rest[i] == 0x16 and rest[i + 5] == 11:
            return True
        i += 5 + struct.unpack_from("!H", rest, i + 3)[0]
    return False

def server_hello(h, rest):
    if h[2:34] == HRR:
        c["hello_retry"] += 1
        return
    c["server_hello"] += 1
    i = 2 + 32
    i += 1 + h[i]
    cs = struct.unpack_from("!H", h, i)[0]; i += 3
    v, psk, grp = struct.unpack_from("!H", h, 0)[0], False, None
    for t, d in exts(h, i):
        if t == 43 and len(d) >= 2:
            v = struct.unpack_from("!H", d)[0]
        elif t == 41:
            psk = True
        elif t == 51 and len(d) >= 2:
            grp = struct.unpack_from("!H", d)[0]
    ver[{0x0304: "TLSv1.3", 0x0303: "TLSv1.2"}.get(v, hex(v))] += 1
    suite[cs] += 1
    if grp is not None:
        group[grp] += 1
    if v == 0x0304:
        c["resumed" if psk else "full"] += 1
    else:   # TLS 1.2: a full handshake sends its Certificate in the same flight
        c["full" if has_certificate(rest) else "resumed"] += 1

deadline = time.monotonic() + max_s
while not stop and time.monotonic() < deadline:
    try:
        pkt, addr = s.recvfrom(262144)
    except (socket.timeout, InterruptedError):
        continue
    if addr[2] != socket.PACKET_OUTGOING or len(pkt) < 34:   # lo shows each packet twice
        continue
    ip = pkt[14:]
    if ip[0] >> 4 != 4 or ip[9] != 6:
        continue
    tcp = ip[(ip[0] & 15) * 4:]
    sp, dp = struct.unpack_from("!HH", tcp)
    if port not in (sp, dp):
        continue
    data = tcp[(tcp[12] >> 4) * 4:]
    if len(data) < 9 or data[0] != 0x16 or data[1] != 3:    # handshake record first
        continue
    rlen = struct.unpack_from("!H", data, 3)[0]
    try:
        if dp == port and data[5] == 1:
            client_hello(data[9:5 + rlen])
        elif sp == port and data[5] == 2:
            server_hello(data[9:5 + rlen], data[5 + rlen:])
    except (IndexError, struct.error):
        c["unparsed"] += 1

SUITES = {0x1301: "TLS_AES_128_GCM_SHA256", 0x1302: "TLS_AES_256_GCM_SHA384",
          0x1303: "TLS_CHACHA20_POLY1305_SHA256", 0xc02b: "ECDHE-ECDSA-AES128-GCM-SHA256",
          0xc02c: "ECDHE-ECDSA-AES256-GCM-SHA384", 0xcca9: "ECDHE-ECDSA-CHACHA20-POLY1305"}
GROUPS = {0x001d: "x25519", 0x0017: "secp256r1", 0x0018: "secp384r1", 0x001e: "x448",
          0x11ec: "X25519MLKEM768"}
json.dump(dict(counts=c, sni=sni, version=ver,
               suite={SUITES.get(k, f"0x{k:04x}"): v for k, v in suite.items()},
               group={GROUPS.get(k, f"0x{k:04x}"): v for k, v in group.items()}), open(out, "w"))
EOF
    census() {   # census PROXY MODE(resumed|handshake); sets CENSUS_JSON, returns 1 if no census
        local proxy=$1 mode=$2 port j i
        port=$(proxy_port "$proxy")
        j="$TMP/census-$proxy-$mode.json"; CENSUS_JSON=$j
        rm -f "$TMP/sniff.ready" "$j"
        taskset -c "$LOAD_CPU" timeout $(( PROBE_S + 15 )) \
            python3 "$TMP/sniff.py" "$port" $(( PROBE_S + 10 )) "$j" "$TMP/sniff.ready" \
            2>"$TMP/sniff.err" &
        SNIFF_PID=$!
        for (( i=0; i < 50; i++ )); do
            [[ -e "$TMP/sniff.ready" ]] && break
            alive "$SNIFF_PID" || break
            sleep 0.1
        done
        if [[ ! -e "$TMP/sniff.ready" ]]; then
            kill -TERM "$SNIFF_PID" 2>/dev/null || true; wait "$SNIFF_PID" 2>/dev/null || true; SNIFF_PID=""
            return 1
        fi
        local -a cmd
        mapfile -d '' -t cmd < <(wrk_cmd "$mode" "$proxy" "$PROBE_S" 4)
        "${cmd[@]}" >"$TMP/census-$proxy-$mode.wrk" 2>&1 &
        WRK_PID=$!
        wait "$WRK_PID" || true
        WRK_PID=""
        sleep 0.2
        kill -TERM "$SNIFF_PID" 2>/dev/null || true
        wait "$SNIFF_PID" 2>/dev/null || true
        SNIFF_PID=""
        [[ -s "$j" ]]
    }
    echo
    echo "TLS handshake census (ClientHello/ServerHello sniffed on lo; wrk -c4 -d${PROBE_S}s -H 'Connection: close'):"
    echo "  (CH/SH = ClientHellos/ServerHellos seen; PSK = ClientHellos offering a session to resume;"
    echo "   resumed/full = ServerHellos accepting a PSK / doing a certificate handshake)"
    printf '  %-9s %-13s %6s %6s %-16s %-8s %-24s %-10s %6s %8s %6s\n' \
        proxy client CH SH SNI version cipher group PSK resumed full
    census_lines=()
    for p in "${PROXIES[@]}"; do
        for m in resumed handshake; do
            [[ $m == handshake && -z "$NORESUME_SO" ]] && continue
            if ! census "$p" "$m"; then
                echo "  census unavailable (raw socket on lo failed: $(tail -n 1 "$TMP/sniff.err" 2>/dev/null))"
                break 2
            fi
            python3 - "$CENSUS_JSON" "$p" "$([[ $m == handshake ]] && echo wrk+noresume || echo wrk)" <<'EOF' >>"$TMP/census.txt"
import json, sys
d = json.load(open(sys.argv[1])); c = d["counts"]
top = lambda k: ",".join(f"{n}" if len(d[k]) == 1 else f"{n}:{v}" for n, v in sorted(d[k].items(), key=lambda x: -x[1])) or "-"
print(f"  {sys.argv[2]:<9} {sys.argv[3]:<13} {c.get('client_hello', 0):>6} {c.get('server_hello', 0):>6} {top('sni'):<16} {top('version'):<8} "
      f"{top('suite'):<24} {top('group'):<10} {c.get('offers_psk', 0):>6} {c.get('resumed', 0):>8} {c.get('full', 0):>6}"
      + (f"  hello-retry {c['hello_retry']}" if c.get("hello_retry") else "")
      + (f"  unparsed {c['unparsed']}" if c.get("unparsed") else ""))
print("#", sys.argv[2], sys.argv[3], c.get("server_hello", 0), c.get("resumed", 0), c.get("full", 0),
      int(set(d["sni"]) == {"bench.local"}), sep="\t")
EOF
        done
    done
    if [[ -s "$TMP/census.txt" ]]; then
        grep -v '^#' "$TMP/census.txt"
        # verdicts
        while IFS=$'\t' read -r _ p client n res full sni_ok; do
            (( sni_ok == 1 )) || echo "  warning: $p/$client: not every ClientHello carried SNI $TLS_HOST"
            if [[ $client == wrk+noresume ]]; then
                if (( res == 0 && full > 0 )); then CENSUS_FULL_OK=${CENSUS_FULL_OK/unknown/yes}
                else CENSUS_FULL_OK=no; echo "  warning: $p: wrk+noresume still resumed $res of $n handshakes"; fi
            else
                echo "  $p: plain wrk resumed $res of $n handshakes (full $full = the first one per connection slot)"
            fi
        done < <(grep '^#' "$TMP/census.txt")
    fi
fi

# ---------------------------------------------------------------- interleaved rounds
for (( r=1; r<=ROUNDS; r++ )); do
    # ABBA ordering: alternate which proxy goes first to cancel drift.
    if (( r % 2 == 1 )); then order=("${PROXIES[@]}"); else
        order=(); for (( i=${#PROXIES[@]}-1; i>=0; i-- )); do order+=("${PROXIES[i]}"); done
    fi
    for m in "${MODE_LIST[@]}"; do
        for p in "${order[@]}"; do
            run_one "$m" "$p" "$r" "$DURATION"
            sleep 0.5
        done
    done
    echo
    echo "round $r/$ROUNDS:"
    print_header
    awk -F'\t' -v r="$r" '$2 == r' "$RESULTS" | print_row
done

# ---------------------------------------------------------------- summary
echo
echo "=== all rounds (req/s = handshakes/s and cpuµs/req = cpuµs/handshake in the handshake/resumed modes;"
echo "    conns = new connections the proxy accepted, hsfail = handshakes tollgate counted as failed) ==="
print_header
for m in "${MODE_LIST[@]}"; do awk -F'\t' -v m="$m" '$1 == m' "$RESULTS" | print_row; done

python3 - "$RESULTS" "$CLK_TCK" "$CONNS" "$CENSUS_FULL_OK" "${MODE_LIST[@]}" <<'EOF'
import os, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
hz, conns, full_ok, modes = float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5:]
LABEL = {"keepalive": ("req/s", "CPU/req", "request"),
         "handshake": ("handshakes/s", "CPU/handshake", "full handshake"),
         "resumed": ("resumed hs/s", "CPU/resumed hs", "resumed handshake")}
def ratio(a, b): return a / b if b else float("nan")
notes = []
print()
print("=== summary (medians over clean rounds) ===")
for mode in modes:
    by = {}
    for r in rows:
        m, rnd, proxy, reqs, rps, p50, p99, ticks, wall, bt, n2, se, st, pc, lc, cn, hf = r
        if m != mode or st != "ok":
            continue
        reqs = int(reqs)
        util = 100 * (int(ticks) / hz) / float(wall)
        by.setdefault(proxy, []).append(dict(
            rps=float(rps), p50=float(p50), p99=float(p99),
            cpu_us=(int(ticks) / hz) * 1e6 / reqs if reqs else float("nan"),
            util=util, other=float(pc) - util, lcore=float(lc),
            cpr=int(cn) / reqs if reqs else float("nan")))
    med = {p: {k: statistics.median(x[k] for x in v) for k in v[0]} for p, v in by.items() if v}
    rate, cpu, unit = LABEL[mode]
    print()
    print(f"  [{mode}]  ({unit}s; conns/req = new connections per request)")
    print(f"  {'proxy':<9} {'n':>2} {rate:>13} {'p50(ms)':>9} {'p99(ms)':>9} {'cpuµs/' + unit.split()[-1][:9]:>16} {'prx%':>6} {'conns/req':>10}")
    for p in ("tollgate", "nginx"):
        if p in med:
            m = med[p]
            print(f"  {p:<9} {len(by[p]):>2} {m['rps']:>13.0f} {m['p50']:>9.3f} {m['p99']:>9.3f} {m['cpu_us']:>16.2f} {m['util']:>5.0f}% {m['cpr']:>10.4f}")
    if "tollgate" in med and "nginx" in med:
        t, n = med["tollgate"], med["nginx"]
        print("  ratios tollgate/nginx (ratio of medians):")
        print(f"    {rate:<15} {ratio(t['rps'], n['rps']):6.3f}   (>1 = tollgate faster)")
        print(f"    {'p99':<15} {ratio(t['p99'], n['p99']):6.3f}   (<1 = tollgate lower tail latency)")
        print(f"    {cpu:<15} {ratio(t['cpu_us'], n['cpu_us']):6.3f}   (<1 = tollgate cheaper per {unit})")
        pairs = {}
        for r in rows:
            if r[0] == mode and r[12] == "ok":
                pairs.setdefault(r[1], {})[r[2]] = r
        pr = [float(d["tollgate"][4]) / float(d["nginx"][4]) for d in pairs.values() if "tollgate" in d and "nginx" in d]
        pc = [(int(d["tollgate"][7]) / int(d["tollgate"][3])) / (int(d["nginx"][7]) / int(d["nginx"][3]))
              for d in pairs.values() if "tollgate" in d and "nginx" in d and int(d["nginx"][7]) > 0]
        if pr:
            print(f"    per-round {rate} ratios: {' '.join(f'{x:.3f}' for x in pr)}  (median {statistics.median(pr):.3f})")
        if pc:
            print(f"    per-round {cpu} ratios: {' '.join(f'{x:.3f}' for x in pc)}  (median {statistics.median(pc):.3f})")
    for p, m in med.items():
        # With PROXY_QUOTA the proxy's ceiling is the quota, not a core.
        budget = float(os.environ.get("PROXY_QUOTA") or 100)
        if m["util"] >= 0.85 * budget:
            notes.append(f"  note: [{mode}] {p} used its CPU budget (prx% {m['util']:.0f} of {budget:.0f}): "
                         f"its rate is proxy-bound.")
        elif m["lcore"] > 90:
            notes.append(f"  note: [{mode}] {p} was not saturated (prx% {m['util']:.0f} of {budget:.0f}) while the load core was busy "
                         f"({m['lcore']:.0f}%): its rate is load-generator-bound, compare CPU µs.")
        if m["other"] > 15:
            notes.append(f"  warning: [{mode}] ~{m['other']:.0f}% of the proxy core went to something other than {p} "
                         f"(other processes / softirq): the machine was noisy, treat rates and p99 with care.")
        if mode != "keepalive" and not 0.97 <= m["cpr"] <= 1.03:
            notes.append(f"  warning: [{mode}] {p}: {m['cpr']:.3f} new connections per request, expected 1.")
    if mode != "keepalive":
        errs = sum(int(r[11]) for r in rows if r[0] == mode)
        n2 = sum(int(r[10]) for r in rows if r[0] == mode)
        hf = [int(r[16]) for r in rows if r[0] == mode and r[2] == "tollgate" and r[16] != "-"]
        notes.append(f"  [{mode}] over all runs: wrk socket errors {errs}, non-2xx {n2}"
                     + (f"; tollgate failed handshakes {sum(hf)} (max {max(hf)} per run; up to {conns} per run are "
                        f"wrk dropping its in-flight handshakes when the run ends)" if hf else ""))
if "handshake" in modes:
    notes.append("  [handshake] every handshake full (no resumption): "
                 + {"yes": "verified by the census", "no": "NO, the census saw resumptions (see above)",
                    "unknown": "not verified (PROBE=0 or census unavailable)"}[full_ok])
if notes:
    print()
    print("\n".join(notes))
EOF

echo
if [[ -n "$TG_PID" ]]; then
    echo "tollgate memory after runs: VmRSS $(rss_kb "$TG_PID" VmRSS) kB, VmHWM $(rss_kb "$TG_PID" VmHWM) kB," \
         "threads $(ls /proc/$TG_PID/task | wc -l)"
    echo "tollgate TLS handshakes (whole session): $(curl -s --max-time 2 "http://127.0.0.1:$TG_ADMIN/metrics" \
        | awk '/^tollgate_tls_handshakes_total\{/ { match($0, /result="[a-z]+"/); printf "%s=%s ", substr($0, RSTART + 8, RLENGTH - 9), $NF }')"
fi
if [[ -n "$NG_PID" ]]; then
    ng_rss=0; for p in "${NG_PIDS[@]}"; do ng_rss=$(( ng_rss + $(rss_kb "$p" VmRSS) )); done
    echo "nginx memory after runs (master+workers): VmRSS $ng_rss kB"
fi
if [[ "$ACCESS_LOG" == on ]]; then
    echo "access-log lines: tollgate $(grep -c '"GET / HTTP/1.1"' "$TMP/tollgate.log" || true)," \
         "nginx $(grep -c '"GET / HTTP/1.1"' "${N:-$TMP}/access.log" 2>/dev/null || true); sample lines:"
    grep -m1 '"GET / HTTP/1.1"' "$TMP/tollgate.log" 2>/dev/null | sed 's/^/    tollgate: /' || true
    grep -m1 '"GET / HTTP/1.1"' "${N:-$TMP}/access.log" 2>/dev/null | sed 's/^/    nginx:    /' || true
fi
if [[ -s "$TMP/tollgate.log" ]] && grep -v '"GET / HTTP/1.1"' "$TMP/tollgate.log" | grep -qiE 'error|panic|warn'; then
    echo "note: tollgate log contains warnings/errors ($(grep -v '"GET / HTTP/1.1"' "$TMP/tollgate.log" | grep -ciE 'error|panic|warn') lines, first 10):"
    grep -v '"GET / HTTP/1.1"' "$TMP/tollgate.log" | grep -iE 'error|panic|warn' | head -n 10 | sed 's/^/    /'
fi
if [[ -n "$NG_PID" ]] && grep -qE '\[(error|crit|alert|emerg)\]' "$N/error.log" 2>/dev/null; then
    echo "note: nginx error.log has errors (first 5):"
    grep -E '\[(error|crit|alert|emerg)\]' "$N/error.log" | head -n 5 | sed 's/^/    /'
fi

if (( FAILED_RUNS > 0 )); then
    log "$FAILED_RUNS run(s) had wrk errors, non-2xx responses or failed handshakes; they are excluded from the medians"
    exit 2
fi
