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
