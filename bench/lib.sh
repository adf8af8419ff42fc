# Helpers shared by the bench scripts (sourced, not run). Each script sets
# TMP (its temp dir, whose *.log files `die` shows) and START_TIMEOUT_S
# before calling these; DIE_LOGS may name extra log files for `die`.

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# die MESSAGE: logs the error, the last lines of every log, and exits 1.
die() {
    log "error: $*"
    local f
    for f in "$TMP"/*.log ${DIE_LOGS:-}; do
        [[ -s "$f" ]] || continue
        echo "---- last lines of $(basename "$f") ----" >&2
        tail -n 20 "$f" >&2
    done
    exit 1
}

alive() { kill -0 "$1" 2>/dev/null; }

# free_ports N: N free TCP ports on 127.0.0.1 (small race window, acceptable for a bench).
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# wait_url NAME PID URL [curl args...]: poll until URL answers 200, bounded by START_TIMEOUT_S.
wait_url() {
    local name=$1 pid=$2 url=$3 code="" i
    shift 3
    for (( i=0; i < START_TIMEOUT_S*10; i++ )); do
        alive "$pid" || die "$name (pid $pid) exited during start-up"
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$@" "$url" 2>/dev/null || true)
        [[ "$code" == 200 ]] && return 0
        sleep 0.1
    done
    die "$name did not answer 200 on $url within ${START_TIMEOUT_S}s (last status: ${code:-none})"
}

# wait_http NAME PID URL [HOST]: wait_url with a Host header.
wait_http() {
    if [[ -n "${4:-}" ]]; then wait_url "$1" "$2" "$3" -H "Host: $4"; else wait_url "$1" "$2" "$3"; fi
}

# cpu_ticks PID...: CPU ticks (utime+stime, /proc/PID/stat fields 14+15) summed
# over the PIDs. The comm field may contain spaces: strip up to the last ')'.
cpu_ticks() {
    local pid total=0 t
    for pid in "$@"; do
        t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null) || t=0
        total=$(( total + ${t:-0} ))
    done
    echo "$total"
}
CLK_TCK=$(getconf CLK_TCK)

# core_jiffies CPU: "busy total" jiffies of one CPU from /proc/stat (busy includes irq/softirq/steal).
core_jiffies() {
    awk -v c="cpu$1" '$1 == c { busy = $2 + $3 + $4 + $7 + $8 + $9; print busy, busy + $5 + $6; exit }' /proc/stat
}

# rss_kb PID KEY: a kB field of /proc/PID/status (VmRSS, VmHWM, RssAnon...), 0 if absent.
rss_kb() { awk -v k="$2" '$1 == k":" { print $2; f = 1 } END { if (!f) print 0 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# build_tollgate BIN DEFAULT: `cargo build --release` when BIN is the default
# build output and NO_BUILD is not 1 (a no-op when up to date); then BIN must
# exist.
build_tollgate() {
    if [[ "${NO_BUILD:-0}" != 1 && "$1" == "$2" ]]; then
        log "cargo build --release (no-op if up to date)"
        (cd "$REPO_ROOT" && cargo build --release --bin tollgate) >"$TMP/cargo-build.out" 2>&1 \
            || { tail -n 40 "$TMP/cargo-build.out" >&2; die "cargo build --release failed"; }
    fi
    [[ -x "$1" ]] || die "tollgate binary not found at $1"
}

# echo_backend_yaml PORT: the IngressClass `tollgate`, Service default/echo
# (port 80 named http) and its EndpointSlice at 127.0.0.1:PORT, as YAML
# documents (no trailing separator).
echo_backend_yaml() {
    cat <<YAML
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: tollgate
spec:
  controller: tollgate.dev/ingress-controller
---
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
---
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
    port: $1
    protocol: TCP
YAML
}

# to_ms VALUE-WITH-UNIT  (wrk prints us / ms / s / m / h)
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000;
        else if (u == "m") n *= 60000; else if (u == "h") n *= 3600000;
        else if (u != "ms") n = -1;
        printf "%.3f", n }'
}

# Resets VmHWM (peak RSS) of a process to its current RSS ("5" in clear_refs,
# Linux >= 4.0), so VmHWM afterwards is the exact peak of the next phase,
# including spikes between two samples. Returns non-zero if not permitted.
reset_hwm() { { echo 5 >"/proc/$1/clear_refs"; } 2>/dev/null; }

# rss_sampler PID OUT MAX: every SAMPLE_MS append "elapsed_ms VmRSS_kB" to
# OUT, until killed, PID exits, or MAX samples (so it never outlives a run
# by much). Only builtins and sleep per sample.
rss_sampler() {
    local pid=$1 out=$2 max=$3 n k v _ t0 now interval
    interval=$(awk -v ms="$SAMPLE_MS" 'BEGIN { printf "%.3f", ms / 1000 }')
    t0=$(date +%s%N)
    for (( n=0; n < max; n++ )); do
        [[ -r /proc/$pid/status ]] || break
        while read -r k v _; do
            if [[ "$k" == VmRSS: ]]; then
                now=$(date +%s%N)
                echo "$(( (now - t0) / 1000000 )) $v" >>"$out"
                break
            fi
        done <"/proc/$pid/status" || true
        sleep "$interval"
    done
}

# stop_pids: TERM every process in PIDS (newest first), give each up to 5 s,
# then KILL; all reaped. For the scripts' EXIT traps.
stop_pids() {
    local pid i
    for (( i=${#PIDS[@]}-1; i>=0; i-- )); do
        kill -TERM "${PIDS[i]}" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

# remove_tmp: removes TMP, or keeps it (and says where) with KEEP_TMP=1.
remove_tmp() {
    if [[ "${KEEP_TMP:-0}" == 1 ]]; then
        echo "temp dir kept: $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
