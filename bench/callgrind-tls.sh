#!/usr/bin/env bash
# Instructions per HTTPS request (user space), counted by callgrind, for
# tollgate or for nginx over the same requests: the HTTPS mode of
# bench/callgrind.sh (`SCHEME=https bench/callgrind.sh` runs this script).
# Usage: [PROXY=tollgate|nginx] [MODE=keepalive|handshake] [CONNS=1]
#        bench/callgrind-tls.sh [seconds]     (needs valgrind, wrk, curl, openssl, cc)
#
# Same set-up as bench/tls-vs-nginx.sh: one ECDSA P-256 certificate for
# bench.local, wrk sends SNI and Host bench.local and connects to 127.0.0.1
# (a Lua wrk.resolve override), the proxied backend is tollgate's echo
# server (--fixed), nginx has the same proxy headers as there.
#   keepalive  requests over kept-alive TLS connections (no handshakes in
#              the counted interval): what TLS records cost per request.
#   handshake  `Connection: close` and an LD_PRELOAD shim that stops wrk
#              resuming sessions: every request on a new TCP connection with
#              a FULL TLS handshake (accept + handshake + request + close).
# tollgate: every thread's instructions over the requests counted (its
# /metrics counter); `worker` counts the data-plane worker thread only
# (callgrind --separate-threads). nginx runs as one process
# (`master_process off`), so its figure is its only thread; its requests are
# counted by stub_status. TOLLGATE_BIN defaults to the profiling build.
# The negotiated suite and group are printed (openssl s_client, the same
# OpenSSL defaults as wrk's).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${TOLLGATE_BIN:-$root/target/profiling/tollgate}"
nginx_bin="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
secs="${1:-6}"
proxy="${PROXY:-tollgate}"
mode="${MODE:-keepalive}"
conns="${CONNS:-1}"
case "$proxy" in tollgate|nginx) ;; *) echo "PROXY must be tollgate|nginx" >&2; exit 1 ;; esac
case "$mode" in keepalive|handshake) ;; *) echo "MODE must be keepalive|handshake" >&2; exit 1 ;; esac
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
backend=$(free_port); http=$(free_port); https=$(free_port); admin=$(free_port)
host=bench.local
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$work/key.pem" -out "$work/cert.pem" -days 2 \
  -subj "/CN=$host" -addext "subjectAltName=DNS:$host" >/dev/null 2>&1
cat > "$work/sni.lua" <<'EOF'
function wrk.resolve(host, service)
   wrk.addrs = wrk.lookup("127.0.0.1", service)
end
EOF
wrk_env=()
if [ "$mode" = handshake ]; then
  cat > "$work/noresume.c" <<'EOF'
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
  "${CC:-cc}" -O2 -shared -fPIC -o "$work/noresume.so" "$work/noresume.c" -ldl
  wrk_env=(env "LD_PRELOAD=$work/noresume.so")
fi
wrk_run() { # seconds
  local -a cmd=("${wrk_env[@]}" wrk -t1 -c"$conns" -d"$1" --timeout 10s -s "$work/sni.lua" -H "Host: $host")
  [ "$mode" = handshake ] && cmd+=(-H "Connection: close")
  "${cmd[@]}" "https://$host:$port/"
}

"$bin" echo --fixed --listen "127.0.0.1:$backend=echo" >/dev/null 2>&1 &
pids+=($!)

if [ "$proxy" = tollgate ]; then
  port=$https
  cat > "$work/m.yaml" <<YAML
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bench, namespace: bench}
spec:
  ingressClassName: tollgate
  tls: [{hosts: [$host], secretName: bench-tls}]
  rules:
  - host: $host
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
---
apiVersion: v1
kind: Secret
type: kubernetes.io/tls
metadata: {name: bench-tls, namespace: bench}
data:
  tls.crt: $(base64 -w0 "$work/cert.pem")
  tls.key: $(base64 -w0 "$work/key.pem")
YAML
  valgrind --tool=callgrind --separate-threads=yes --compress-strings=no --compress-pos=no --callgrind-out-file="$work/cg.out" "$bin" run --manifests "$work" \
    --http-addr "127.0.0.1:$http" --https-addr "127.0.0.1:$https" --admin-addr "127.0.0.1:$admin" \
    --threads 1 --access-log "${ACCESS_LOG:-false}" ${TOLLGATE_ARGS:-} >"$work/log" 2>&1 &
  vpid=$!
  count() { curl -fs "127.0.0.1:$admin/metrics" | awk '/^tollgate_requests_total\{ingress="bench\/bench".*status="200"/ {print $2}'; }
  for _ in $(seq 1 200); do curl -fs "127.0.0.1:$admin/readyz" >/dev/null 2>&1 && break; sleep 0.3; done
else
  port=$https
  n="$work/nginx"; mkdir -p "$n"
  cat > "$n/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process off;
pid $n/nginx.pid;
error_log $n/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    server_tokens off;
    client_body_temp_path $n; proxy_temp_path $n; fastcgi_temp_path $n; uwsgi_temp_path $n; scgi_temp_path $n;
    keepalive_timeout  75s;
    keepalive_requests 1000000;
    upstream echo {
        server 127.0.0.1:$backend;
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }
    server {
        listen 127.0.0.1:$https ssl default_server;
        server_name $host;
        ssl_certificate     $work/cert.pem;
        ssl_certificate_key $work/key.pem;
        ssl_protocols       TLSv1.2 TLSv1.3;
        ssl_session_cache   shared:SSL:10m;
        ssl_session_tickets on;
        location / {
            set \$proxy_upstream_name "upstream-bench-echo-http";
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
        listen 127.0.0.1:$admin;
        location = /status { stub_status; }
    }
}
EOF
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$nginx_bin" -p "$n" -c "$n/nginx.conf" >"$work/log" 2>&1 &
  vpid=$!
  # stub_status counts its own request too: subtract it.
  count() { curl -fs "127.0.0.1:$admin/status" | awk 'NR == 3 { print $3 }'; }
  for _ in $(seq 1 200); do curl -fsk --resolve "$host:$https:127.0.0.1" "https://$host:$https/" >/dev/null 2>&1 && break; sleep 0.3; done
fi
pids+=($vpid)
curl -fsk --resolve "$host:$https:127.0.0.1" "https://$host:$https/" >/dev/null || { echo "proxy does not answer; log:" >&2; tail "$work/log" >&2; exit 1; }
echo "negotiated: $(openssl s_client -connect "127.0.0.1:$https" -servername "$host" </dev/null 2>/dev/null \
  | awk '/^New, / {printf "%s %s ", $2, $5} /^(Server|Negotiated) Temp Key|^Peer signature type/ {printf "%s ", $0}')"
wrk_run 1s >/dev/null
before=$(count)
callgrind_control -z "$vpid" >/dev/null 2>&1
wrk_run "${secs}s" | grep -E "requests in|Non-2xx|Socket errors" || true
after=$(count)
callgrind_control -d "$vpid" >/dev/null 2>&1
ir=0; wir=0
for out in "$work"/cg.out*; do
  case "$out" in *.out) continue ;; esac
  t=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); if ($1 == ".") $1 = 0; print $1}')
  [ -z "${DEBUG:-}" ] || echo "$out: $t" >&2
  ir=$((ir + ${t:-0}))
  if grep -q 'proxy..service..handle\|ngx_http_process_request' "$out"; then wir=$((wir + ${t:-0})); fi
done
n=$((after - before))
[ "$proxy" = nginx ] && n=$((n - 1))
echo "$proxy $mode conns=$conns requests: $n  instructions: $ir  per request: $((ir / n))  worker threads: $((wir / n))"
if [ -n "${KEEP:-}" ]; then
  mkdir -p "$KEEP"; cp "$work"/cg.out* "$KEEP"/; echo "profiles kept in $KEEP"
fi
