# Shared helpers of the benchmark scripts (bench/run.sh, bench/cache.sh).
# Source it after setting:
#   T         the run's temporary directory     keep  1 to keep T at exit
#   RES       the raw results file (JSON lines) PROXY_CPU, LOAD_CPU
#   PIDS=()   processes to stop at exit (start_bg adds to it)
# and install the traps:   trap cleanup EXIT; trap 'log interrupted; exit 130' INT TERM
# Everything listens on 127.0.0.1 only.

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Process helpers read /proc directly (no procps needed).
descendants() { # PID -> PID and all its descendants
	local p=$1 c
	echo "$p"
	for c in $(awk -v pp="$p" '{ sub(/.*\) /, ""); if ($2 == pp) { split(FILENAME, f, "/"); print f[3] } }' \
		/proc/[0-9]*/stat 2>/dev/null); do
		descendants "$c"
	done
}

alive() { # PID -> true if running and not a zombie
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

stop_pid() { # PID: SIGTERM it and its descendants, SIGKILL after 10 s
	local p=$1 all i
	all=$(descendants "$p")
	kill -TERM $all 2>/dev/null || true
	for i in $(seq 1 100); do
		alive "$p" || break
		sleep 0.1
	done
	for i in $all; do alive "$i" && kill -KILL "$i" 2>/dev/null; done
	wait "$p" 2>/dev/null || true
}

cleanup() {
	local rc=$? p
	trap - EXIT INT TERM
	for p in ${PIDS[@]+"${PIDS[@]}"}; do
		alive "$p" && stop_pid "$p"
	done
	if [ $keep -eq 1 ]; then log "kept $T"; else rm -rf "$T"; fi
	exit $rc
}


start_bg() { # CPU LOGFILE CMD... -> sets BGPID
	local cpu=$1 logf=$2
	shift 2
	taskset -c "$cpu" "$@" >"$logf" 2>&1 &
	BGPID=$!
	PIDS+=("$BGPID")
}

forget_pid() {
	local keepp=() p
	for p in ${PIDS[@]+"${PIDS[@]}"}; do [ "$p" = "$1" ] || keepp+=("$p"); done
	PIDS=(${keepp[@]+"${keepp[@]}"})
}

free_ports() { # N -> N free TCP ports on 127.0.0.1
	python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

wait_port() { # PORT PID -> true when PORT accepts; false if PID died / 20 s
	local i
	for i in $(seq 1 200); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		alive "$2" || return 1
		sleep 0.1
	done
	return 1
}

cpu_ticks() { # PID -> utime+stime (clock ticks) of PID and its descendants
	local p sum=0 v
	for p in $(descendants "$1"); do
		v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || v=0
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}

mem_kib() { # PID -> "RSS_KiB PSS_KiB" summed over PID and its descendants
	local p rss=0 pss=0 v
	for p in $(descendants "$1"); do
		v=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null) || v=0
		rss=$((rss + ${v:-0}))
		v=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null) || v=0
		pss=$((pss + ${v:-0}))
	done
	echo "$rss $pss"
}

cpu_busy() { # -> "now_s busy_ticks_PROXY_CPU busy_ticks_LOAD_CPU" (from /proc/stat)
	awk -v a="cpu$PROXY_CPU" -v b="cpu$LOAD_CPU" -v now="$(date +%s.%N)" '
		$1 == a { pa = $2 + $3 + $4 + $7 + $8 + $9 }
		$1 == b { pb = $2 + $3 + $4 + $7 + $8 + $9 }
		END { printf "%s %d %d\n", now, pa, pb }' /proc/stat
}

busy_json() { # "before" "after" -> ,"busy_proxy_cpu":P,"busy_load_cpu":L  (percent)
	awk -v t="$TICK" -v x="$1" -v y="$2" 'BEGIN {
		split(x, a, " "); split(y, b, " "); w = b[1] - a[1]
		printf ",\"busy_proxy_cpu\":%.1f,\"busy_load_cpu\":%.1f", (b[2]-a[2])/t/w*100, (b[3]-a[3])/t/w*100 }'
}

origin_counts() { # -> "accepts requests" from the origin's stub_status
	curl -s --max-time 5 "http://127.0.0.1:$STATUS_PORT/status" | awk 'NR==3{print $1, $3}'
}

record() { # JSON object text -> results file
	echo "$1" >>"$RES"
}

fail_record() { # SCEN TARGET REASON
	local why=${3//\"/\'}
	record "{\"scenario\":$1,\"target\":\"$2\",\"status\":\"${why//$'\n'/ }\"}"
	log "scenario $1 $2: $3"
}


TICK=$(getconf CLK_TCK)

# start_origin DIR PORT STATUS_PORT NOFILE EXTRA SIZE... -> sets ORIGIN_PID
# The origin nginx on CPU $LOAD_CPU: one worker, sendfile, serving a file of
# random bytes for each SIZE (NAME=BYTES, e.g. 1k=1024) from DIR/www. EXTRA
# is put into the server block as it is (e.g. add_header lines). Requests
# are counted by stub_status on STATUS_PORT (see origin_counts).
start_origin() {
	local d=$1 port=$2 sport=$3 nofile=$4 extra=$5 sz
	shift 5
	mkdir -p "$d/www" "$d/tmp"
	for sz in "$@"; do
		head -c "${sz#*=}" /dev/urandom >"$d/www/${sz%%=*}"
	done
	cat >"$d/nginx.conf" <<EOC
# Origin for the benchmark: one worker, sendfile, no access log (requests
# are counted by stub_status instead, which costs nothing per request).
worker_processes 1;
daemon off;
master_process off;
pid $d/nginx.pid;
error_log $d/error.log warn;
worker_rlimit_nofile $nofile;
events { worker_connections $((nofile - 100)); }
http {
    access_log off;
    client_body_temp_path $d/tmp;
    proxy_temp_path $d/tmp;
    fastcgi_temp_path $d/tmp;
    uwsgi_temp_path $d/tmp;
    scgi_temp_path $d/tmp;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000000;
    keepalive_timeout 600s;
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$port backlog=4096;
        root $d/www;${extra:+
$extra}
    }
    server {
        listen 127.0.0.1:$sport;
        location /status { stub_status; }
    }
}
EOC
	start_bg "$LOAD_CPU" "$d/stderr.log" nginx -p "$d" -c "$d/nginx.conf"
	ORIGIN_PID=$BGPID
	if ! wait_port "$port" "$ORIGIN_PID"; then
		cat "$d/stderr.log" "$d/error.log" >&2
		echo "${0##*/}: origin nginx did not start" >&2
		exit 1
	fi
	if [ "$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$port/1k")" != 1024 ]; then
		echo "${0##*/}: origin does not serve /1k" >&2
		exit 1
	fi
}

# bench_versions PACKAGE... -> "package version" lines of those installed
bench_versions() {
	dpkg-query -W -f='${Package} ${Version}\n' "$@" 2>/dev/null || true
}

# sluice_version -> the commit, and whether src/ has uncommitted changes
sluice_version() {
	local v
	v="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	if [ -n "$(git -C "$ROOT" --no-optional-locks status --porcelain -- src 2>/dev/null)" ]; then
		v="$v plus uncommitted changes in src/"
	fi
	echo "$v"
}
