#!/usr/bin/env bash
# Admission webhook answer time at scale (issue 18): a standalone tollgate
# holding INGRESSES Ingresses (each with its Service and EndpointSlice) serves
# the webhook; REVIEWS AdmissionReviews of a new Ingress are posted with curl,
# each on a new TLS connection (as the API server does when it does not keep
# the connection), and the p50/p99 of curl's total time are printed.
#
#   INGRESSES=10000 REVIEWS=50 TOLLGATE_BIN=target/release/tollgate bench/admission-latency.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${INGRESSES:-10000}
REVIEWS=${REVIEWS:-50}
BIN=${TOLLGATE_BIN:-target/release/tollgate}
[ -x "$BIN" ] || { echo "build first: cargo build --release (or set TOLLGATE_BIN)" >&2; exit 1; }
WORK=$(mktemp -d)
TG_PID=""
cleanup() { [ -n "$TG_PID" ] && kill "$TG_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

# A CA and a certificate for localhost, in a kubernetes.io/tls Secret.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bench CA" \
  -keyout "$WORK/ca.key" -out "$WORK/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
  -keyout "$WORK/tls.key" -out "$WORK/tls.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost\n' > "$WORK/ext"
openssl x509 -req -in "$WORK/tls.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" \
  -CAcreateserial -days 2 -extfile "$WORK/ext" -out "$WORK/tls.crt" 2>/dev/null

python3 - "$WORK" "$N" <<'PY'
import base64, json, sys
work, n = sys.argv[1], int(sys.argv[2])
b64 = lambda p: base64.b64encode(open(f"{work}/{p}", "rb").read()).decode()
docs = [
    {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "tollgate"},
     "spec": {"controller": "tollgate.dev/ingress-controller"}},
    {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
     "metadata": {"namespace": "tollgate", "name": "admission"},
     "data": {"tls.crt": b64("tls.crt"), "tls.key": b64("tls.key")}},
]
def ingress(i):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"namespace": "apps", "name": f"ing-{i}"},
            "spec": {"ingressClassName": "tollgate", "rules": [{"host": f"h{i}.bench", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": f"svc-{i}", "port": {"number": 80}}}}]}}]}}
for i in range(n):
    docs.append({"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "apps", "name": f"svc-{i}"},
                 "spec": {"ports": [{"port": 80, "targetPort": 9}]}})
    docs.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                 "metadata": {"namespace": "apps", "name": f"svc-{i}-x",
                              "labels": {"kubernetes.io/service-name": f"svc-{i}"}},
                 "addressType": "IPv4", "ports": [{"port": 9}],
                 "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]})
    docs.append(ingress(i))
with open(f"{work}/manifests.json", "w") as f:
    json.dump({"apiVersion": "v1", "kind": "List", "items": docs}, f)
review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
    "uid": "bench", "kind": {"group": "networking.k8s.io", "version": "v1", "kind": "Ingress"},
    "namespace": "apps", "name": "new", "operation": "CREATE", "object": ingress("new")}}
json.dump(review, open(f"{work}/review.json", "w"))
PY

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ADM=$(port); ADMIN=$(port)
"$BIN" run --manifests "$WORK/manifests.json" --http-addr "127.0.0.1:$(port)" --https-addr "127.0.0.1:$(port)" \
  --admin-addr "127.0.0.1:$ADMIN" --admission-addr "127.0.0.1:$ADM" \
  --admission-certificate tollgate/admission --access-log false > "$WORK/tollgate.log" 2>&1 &
TG_PID=$!
for _ in $(seq 1 600); do
  curl -fs "http://127.0.0.1:$ADMIN/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fs "http://127.0.0.1:$ADMIN/readyz" >/dev/null || { echo "tollgate not ready" >&2; tail -5 "$WORK/tollgate.log" >&2; exit 1; }
answer=$(curl -s --cacert "$WORK/ca.crt" --resolve "localhost:$ADM:127.0.0.1" \
  -H 'Content-Type: application/json' --data-binary @"$WORK/review.json" "https://localhost:$ADM/validate")
echo "$answer" | grep -q '"allowed":true' || { echo "unexpected answer: $answer" >&2; exit 1; }
for _ in $(seq 1 "$REVIEWS"); do
  curl -s -o /dev/null -w '%{time_total}\n' --cacert "$WORK/ca.crt" --resolve "localhost:$ADM:127.0.0.1" \
    -H 'Content-Type: application/json' --data-binary @"$WORK/review.json" "https://localhost:$ADM/validate"
done | sort -n | awk -v n="$N" '{t[NR]=$1} END {
  p50=t[int((NR+1)/2)]; i=int(NR*0.99+0.999); if (i>NR) i=NR;
  printf "admission review at %d Ingresses: %d reviews, p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", n, NR, p50*1000, t[i]*1000, t[NR]*1000 }'
