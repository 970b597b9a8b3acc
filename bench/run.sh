#!/usr/bin/env bash
# sluice benchmark: sluice and its peers side by side, against direct.
#
#   bench/run.sh [--quick] [--only sluice,trafficserver,squid,tinyproxy,nginx]
#                [--scenario 1,2,3,4,5] [--duration SECONDS] [--runs N] [--keep]
#
#   --quick      5 s runs, 1 repetition, 1 s warm-up (smoke test)
#   --only       which proxies to run (direct always runs: it is the baseline)
#   --scenario   which scenarios to run (default all)
#   --duration   seconds per measured run (default 10; --quick 5)
#   --runs       repetitions per cell, median reported (default 3; --quick 1)
#   --keep       keep the temporary directory (configs, logs, raw results)
#
# Scenarios (docs/benchmarks.md has the method):
#   1  1 KiB GET, 50 keep-alive connections (wrk)          req/s
#   2  1 MiB GET, 8 keep-alive connections (wrk)           MiB/s
#   3  CONNECT tunnels, 64 MiB GETs inside, 4 in parallel  MiB/s
#   4  1 KiB GET, new client connection per request        req/s
#   5  5,000 idle keep-alive clients                       KiB per client
#
# The proxy under test runs on CPU $PROXY_CPU (default 0); the origin nginx
# and the load generators run on CPU $LOAD_CPU (default 1). Everything
# listens on 127.0.0.1 only. Prints a Markdown report and writes it to
# bench/results/DATE.md (DATE-quick.md for --quick).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
ALL_PROXIES=(sluice trafficserver squid tinyproxy nginx)
ALL_SCENARIOS=(1 2 3 4 5)

quick=0 keep=0 duration= runs= only= scen=
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=1 ;;
	--keep) keep=1 ;;
	--only) only=${2:?--only needs a list}; shift ;;
	--only=*) only=${1#*=} ;;
	--scenario) scen=${2:?--scenario needs a list}; shift ;;
	--scenario=*) scen=${1#*=} ;;
	--duration) duration=${2:?}; shift ;;
	--runs) runs=${2:?}; shift ;;
	-h|--help) sed -n '2,25p' "$0"; exit 0 ;;
	*) echo "run.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done
if [ $quick -eq 1 ]; then
	duration=${duration:-5} runs=${runs:-1} warm=1
else
	duration=${duration:-10} runs=${runs:-3} warm=2
fi
IDLE_N=${IDLE_N:-5000}

proxies=()
if [ -n "$only" ]; then
	IFS=, read -ra req <<<"$only"
	for p in "${req[@]}"; do
		[ "$p" = direct ] && continue
		case " ${ALL_PROXIES[*]} " in *" $p "*) proxies+=("$p") ;;
		*) echo "run.sh: unknown proxy '$p' (known: ${ALL_PROXIES[*]})" >&2; exit 2 ;;
		esac
	done
else
	proxies=("${ALL_PROXIES[@]}")
fi
targets=(direct ${proxies[@]+"${proxies[@]}"})
scenarios=()
if [ -n "$scen" ]; then
	IFS=, read -ra scenarios <<<"$scen"
	for s in "${scenarios[@]}"; do
		case "$s" in 1|2|3|4|5) ;; *) echo "run.sh: unknown scenario '$s'" >&2; exit 2 ;; esac
	done
else
	scenarios=("${ALL_SCENARIOS[@]}")
fi

# Shared helpers: log, process and port helpers, cpu/memory probes, record,
# start_origin (bench/lib.sh).
. "$BENCH/lib.sh"

# ---------------------------------------------------------------- setup ----

"$ROOT/scripts/deps.sh" bench
for t in wrk nginx curl gcc python3 taskset; do
	command -v "$t" >/dev/null || { echo "run.sh: $t is missing" >&2; exit 1; }
done
[ "$(nproc)" -ge 2 ] || log "warning: fewer than 2 CPUs; pinning will overlap"

# File descriptors: 5,000 clients plus the proxy's upstream side. The hard
# limit can be raised only with CAP_SYS_RESOURCE; take what we can get.
ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)

T=$(mktemp -d /tmp/sluice-bench.XXXXXX)
chmod 755 "$T"
RES=$T/results.jsonl
: >"$RES"
PIDS=()

trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

STARTS=0

# ------------------------------------------------------ build and tools ----

BIN=$ROOT/build/bench
mkdir -p "$BIN" "$BENCH/results"
for tool in connect_bulk idle_clients; do
	gcc -O2 -Wall -Wextra -pthread -o "$BIN/$tool" "$BENCH/tools/$tool.c"
done
LUA=$BENCH/wrk/req.lua

SLUICE_WHY=
if case " ${proxies[*]-} " in *" sluice "*) true ;; *) false ;; esac; then
	log "building sluice (make build/sluice)"
	if ! make -C "$ROOT" --no-print-directory build/sluice >"$T/sluice-build.log" 2>&1; then
		SLUICE_WHY="not measured yet: make build/sluice failed ($(grep -m1 -E 'error|Error|No rule' "$T/sluice-build.log" | cut -c1-120))"
		log "$SLUICE_WHY"
	else
		# One binary for the whole run, even if build/ is rebuilt meanwhile.
		cp "$ROOT/build/sluice" "$T/sluice-bin"
	fi
fi

# ------------------------------------------------------------- origin ------

read -r OPORT STATUS_PORT SLUICE_PORT ATS_PORT SQUID_PORT TP_PORT NGX_PORT <<<"$(free_ports 7)"
ORIGIN=127.0.0.1:$OPORT
start_origin "$T/origin" "$OPORT" "$STATUS_PORT" "$NOFILE" "" 1k=1024 1m=$((1024 * 1024)) 64m=$((64 * 1024 * 1024))
log "origin nginx on $ORIGIN (pid $ORIGIN_PID, CPU $LOAD_CPU); temp dir $T"

# ------------------------------------------------------------- proxies -----

write_sluice() {
	mkdir -p "$T/sluice"
	cat >"$T/sluice/sluice.conf" <<EOF
listen 127.0.0.1:$SLUICE_PORT
threads 1
access_log off
cache off
connect_ports 1-65535
max_connections 20000
max_connections_per_client 0
client_idle_timeout 5m
EOF
}

write_trafficserver() {
	local d=$T/trafficserver
	rm -rf "$d/etc" "$d/run" "$d/cache"
	mkdir -p "$d/etc" "$d/run" "$d/log" "$d/cache"
	cp -r /etc/trafficserver/. "$d/etc/"
	# A runroot that takes binaries and plugins from the package and
	# everything writable (config, logs, runtime) from the temp dir.
	cat >"$d/runroot.yaml" <<EOF
prefix: /usr
exec_prefix: /usr
bindir: /usr/bin
sbindir: /usr/sbin
sysconfdir: $d/etc
datadir: $d/cache
includedir: /usr/include
libdir: /usr/lib/trafficserver
libexecdir: /usr/lib/trafficserver/modules
localstatedir: $d/run
runtimedir: $d/run
logdir: $d/log
cachedir: $d/cache
EOF
	cat >"$d/etc/records.config" <<EOF
# Forward proxy, one net thread, no cache, no logging.
CONFIG proxy.config.exec_thread.autoconfig INT 0
CONFIG proxy.config.exec_thread.limit INT 1
CONFIG proxy.config.exec_thread.affinity INT 0
CONFIG proxy.config.accept_threads INT 0
CONFIG proxy.config.task_threads INT 1
CONFIG proxy.config.http.server_ports STRING $ATS_PORT:ipv4:ip-in=127.0.0.1
CONFIG proxy.config.http.connect_ports STRING 1-65535
CONFIG proxy.config.http.cache.http INT 0
CONFIG proxy.config.cache.ram_cache.size INT 0
CONFIG proxy.config.http.wait_for_cache INT 0
CONFIG proxy.config.url_remap.remap_required INT 0
CONFIG proxy.config.reverse_proxy.enabled INT 0
CONFIG proxy.config.log.logging_enabled INT 0
CONFIG proxy.config.http.keep_alive_no_activity_timeout_in INT 600
CONFIG proxy.config.http.keep_alive_no_activity_timeout_out INT 600
CONFIG proxy.config.net.connections_throttle INT 30000
CONFIG proxy.config.net.max_connections_in INT 30000
CONFIG proxy.config.diags.debug.enabled INT 0
CONFIG proxy.config.admin.user_id STRING #-1
EOF
	: >"$d/etc/storage.config"
	: >"$d/etc/remap.config"
	cat >"$d/etc/ip_allow.yaml" <<EOF
ip_allow:
  - apply: in
    ip_addrs: 127.0.0.1
    action: allow
    methods: ALL
  - apply: in
    ip_addrs: 0/0
    action: deny
    methods: ALL
EOF
}

write_squid() {
	local d=$T/squid
	mkdir -p "$d"
	cat >"$d/squid.conf" <<EOF
# Forward proxy, no cache, no access log, one worker.
http_port 127.0.0.1:$SQUID_PORT
workers 1
cache deny all
cache_mem 0 MB
memory_pools off
access_log none
cache_store_log none
cache_log $d/cache.log
pid_filename $d/squid.pid
coredump_dir $d
max_filedescriptors $NOFILE
pinger_enable off
acl bench_clients src 127.0.0.1/32
http_access allow bench_clients
http_access deny all
client_idle_pconn_timeout 10 minutes
pconn_timeout 10 minutes
shutdown_lifetime 1 seconds
dns_nameservers 127.0.0.1
udp_incoming_address 127.0.0.1
udp_outgoing_address 127.0.0.1
visible_hostname sluice-bench
EOF
	# squid drops root for the 'proxy' user: it must write its own dir.
	chown -R proxy: "$d" 2>/dev/null || chmod 777 "$d"
}

write_tinyproxy() {
	local d=$T/tinyproxy
	mkdir -p "$d"
	cat >"$d/tinyproxy.conf" <<EOF
# Forward proxy; LogLevel Critical, so it logs nothing in normal operation.
Port $TP_PORT
Listen 127.0.0.1
Timeout 600
MaxClients $((NOFILE / 2 - 100))
LogFile "$d/tinyproxy.log"
LogLevel Critical
PidFile "$d/tinyproxy.pid"
Allow 127.0.0.1
ConnectPort $OPORT
DisableViaHeader Yes
EOF
}

write_nginx() {
	local d=$T/nginx
	mkdir -p "$d/tmp"
	cat >"$d/nginx.conf" <<EOF
# nginx as a reverse proxy in front of the origin (a baseline: clients send
# origin-form requests, not absolute-form). Pooled upstream connections,
# responses streamed (proxy_buffering off, 64k buffer), no access log.
worker_processes 1;
daemon off;
master_process off;
pid $d/nginx.pid;
error_log $d/error.log warn;
worker_rlimit_nofile $NOFILE;
events { worker_connections $((NOFILE - 100)); }
http {
    access_log off;
    client_body_temp_path $d/tmp;
    proxy_temp_path $d/tmp;
    fastcgi_temp_path $d/tmp;
    uwsgi_temp_path $d/tmp;
    scgi_temp_path $d/tmp;
    keepalive_requests 100000000;
    keepalive_timeout 600s;
    upstream origin {
        server $ORIGIN;
        keepalive 1024;
        keepalive_requests 100000000;
        keepalive_timeout 600s;
    }
    server {
        listen 127.0.0.1:$NGX_PORT backlog=4096;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_buffer_size 64k;
            proxy_buffers 4 64k;
            proxy_busy_buffers_size 128k;
        }
    }
}
EOF
}

# start_target NAME -> sets T_PID T_PORT T_MODE (direct|proxy|reverse); or
# returns 1 with T_WHY.
start_target() {
	T_WHY=
	STARTS=$((STARTS + 1))
	T_LOG=$T/$1/stderr.$STARTS.log
	mkdir -p "$T/$1"
	case "$1" in
	direct)
		T_PID=$ORIGIN_PID T_PORT=$OPORT T_MODE=direct
		return 0 ;;
	sluice)
		if [ -n "$SLUICE_WHY" ]; then T_WHY=$SLUICE_WHY; return 1; fi
		write_sluice
		T_PORT=$SLUICE_PORT T_MODE=proxy
		start_bg "$PROXY_CPU" "$T_LOG" "$T/sluice-bin" -c "$T/sluice/sluice.conf" ;;
	trafficserver)
		write_trafficserver
		T_PORT=$ATS_PORT T_MODE=proxy
		start_bg "$PROXY_CPU" "$T_LOG" traffic_server --run-root="$T/trafficserver/runroot.yaml" ;;
	squid)
		write_squid
		T_PORT=$SQUID_PORT T_MODE=proxy
		start_bg "$PROXY_CPU" "$T_LOG" squid -N -f "$T/squid/squid.conf" ;;
	tinyproxy)
		write_tinyproxy
		T_PORT=$TP_PORT T_MODE=proxy
		start_bg "$PROXY_CPU" "$T_LOG" tinyproxy -d -c "$T/tinyproxy/tinyproxy.conf" ;;
	nginx)
		write_nginx
		T_PORT=$NGX_PORT T_MODE=reverse
		start_bg "$PROXY_CPU" "$T_LOG" nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" ;;
	esac
	T_PID=$BGPID
	if ! wait_port "$T_PORT" "$T_PID"; then
		T_WHY="did not start: $(tail -n 3 "$T_LOG" 2>/dev/null | tr '\n' ' ' | cut -c1-160)"
		stop_target "$1"
		return 1
	fi
	# A request through it must reach the origin.
	local got
	if [ "$T_MODE" = proxy ]; then
		got=$(curl -s --max-time 10 -o /dev/null -w '%{http_code} %{size_download}' -x "http://127.0.0.1:$T_PORT" "http://$ORIGIN/1k" || true)
	else
		got=$(curl -s --max-time 10 -o /dev/null -w '%{http_code} %{size_download}' "http://127.0.0.1:$T_PORT/1k" || true)
	fi
	if [ "$got" != "200 1024" ]; then
		T_WHY="does not proxy: GET /1k through it gave '${got:-no answer}'"
		stop_target "$1"
		return 1
	fi
	return 0
}

stop_target() {
	[ "$1" = direct ] && return 0
	stop_pid "$T_PID"
	forget_pid "$T_PID"
}

# ----------------------------------------------------------- scenarios -----

# run_wrk SCEN NAME RUN CONNS PATH [close]  (RUN=0: warm-up, not recorded)
run_wrk() {
	local s=$1 name=$2 run=$3 conns=$4 path=$5 close=${6:-} target out secs
	if [ "$T_MODE" = proxy ]; then target="http://$ORIGIN$path"; else target=$path; fi
	secs=$duration
	[ "$run" = 0 ] && secs=$warm
	local c0 c1 o0 o1 b0 b1
	c0=$(cpu_ticks "$T_PID")
	o0=$(origin_counts)
	b0=$(cpu_busy)
	out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$conns" -d"${secs}s" --timeout 10s -s "$LUA" \
		"http://127.0.0.1:$T_PORT/" -- "$target" "$ORIGIN" $close 2>&1) || true
	b1=$(cpu_busy)
	c1=$(cpu_ticks "$T_PID")
	o1=$(origin_counts)
	[ "$run" = 0 ] && return 0
	local line
	line=$(grep '^WRKRESULT' <<<"$out" || true)
	if [ -z "$line" ]; then
		fail_record "$s" "$name" "wrk failed: $(tail -n 2 <<<"$out" | tr '\n' ' ' | cut -c1-160)"
		return 0
	fi
	local requests duration_us bytes p50_us p99_us mean_us err_connect err_read err_write err_status err_timeout
	eval "${line#WRKRESULT }"
	local errors=$((err_connect + err_read + err_write + err_status + err_timeout))
	set -- $o0 $o1
	local acc=$(($3 - $1)) oreq=$(($4 - $2 - 1))
	record "$(printf '{"scenario":%s,"target":"%s","run":%s,"requests":%s,"seconds":%s,"bytes":%s,"p50_ms":%s,"p99_ms":%s,"errors":%s,"err_read":%s,"cpu_s":%s,"origin_requests":%s,"origin_accepts":%s%s}' \
		"$s" "$name" "$run" "$requests" "$(awk "BEGIN{print $duration_us/1e6}")" "$bytes" \
		"$(awk "BEGIN{print $p50_us/1000}")" "$(awk "BEGIN{print $p99_us/1000}")" "$errors" "$err_read" \
		"$(awk "BEGIN{print ($c1-$c0)/$TICK}")" "$oreq" "$acc" "$(busy_json "$b0" "$b1")")"
	log "scenario $s $name run $run: $requests requests, p99 $((p99_us / 1000)) ms, errors $errors"
}

run_bulk() { # SCEN NAME RUN
	local s=$1 name=$2 run=$3 secs=$duration xflag=
	[ "$run" = 0 ] && secs=$warm
	[ "$T_MODE" = proxy ] && xflag=-x
	local c0 c1 out b0 b1
	c0=$(cpu_ticks "$T_PID")
	b0=$(cpu_busy)
	out=$(taskset -c "$LOAD_CPU" "$BIN/connect_bulk" -a "127.0.0.1:$T_PORT" $xflag -o "$ORIGIN" \
		-u /64m -c 4 -d "$secs" -w 0 2>&1) || true
	b1=$(cpu_busy)
	c1=$(cpu_ticks "$T_PID")
	[ "$run" = 0 ] && return 0
	local line
	line=$(grep '^CBRESULT' <<<"$out" || true)
	if [ -z "$line" ]; then
		fail_record "$s" "$name" "connect_bulk failed: $(tail -n 2 <<<"$out" | tr '\n' ' ' | cut -c1-160)"
		return 0
	fi
	local bytes seconds mib_s objects errors p50_ms p99_ms
	eval "${line#CBRESULT }"
	record "$(printf '{"scenario":%s,"target":"%s","run":%s,"bytes":%s,"seconds":%s,"objects":%s,"errors":%s,"p50_ms":%s,"p99_ms":%s,"cpu_s":%s%s}' \
		"$s" "$name" "$run" "$bytes" "$seconds" "$objects" "$errors" "$p50_ms" "$p99_ms" \
		"$(awk "BEGIN{print ($c1-$c0)/$TICK}")" "$(busy_json "$b0" "$b1")")"
	log "scenario $s $name run $run: $mib_s MiB/s, $objects objects, errors $errors"
}

run_idle() { # SCEN NAME RUN  (the target was just started)
	local s=$1 name=$2 run=$3 target
	if [ "$T_MODE" = proxy ]; then target="http://$ORIGIN/1k"; else target=/1k; fi
	sleep 1
	local before after
	before=$(mem_kib "$T_PID")
	local out=$T/idle.$name.$run.out
	start_bg "$LOAD_CPU" "$out" "$BIN/idle_clients" -a "127.0.0.1:$T_PORT" -t "$target" \
		-h "$ORIGIN" -n "$IDLE_N" -H 300
	local ipid=$BGPID i
	for i in $(seq 1 600); do
		grep -q '^READY' "$out" 2>/dev/null && break
		alive "$ipid" || break
		sleep 0.2
	done
	if ! grep -q '^READY' "$out" 2>/dev/null; then
		stop_pid "$ipid"; forget_pid "$ipid"
		fail_record "$s" "$name" "idle_clients did not get ready: $(tail -n 2 "$out" | tr '\n' ' ' | cut -c1-160)"
		return 0
	fi
	sleep 2
	after=$(mem_kib "$T_PID")
	stop_pid "$ipid"; forget_pid "$ipid"
	if ! alive "$T_PID"; then
		fail_record "$s" "$name" "crashed during run $run: $(tail -n 1 "$T_LOG" 2>/dev/null | cut -c1-200)"
		forget_pid "$T_PID"
		return 2
	fi
	local ready done_line idle failed closed_by_peer
	ready=$(grep -m1 '^READY' "$out")
	done_line=$(grep -m1 '^DONE' "$out" || echo "DONE idle=0 failed=0 closed_by_peer=0")
	eval "${ready#READY }"
	local idle_ready=$idle failed_ready=$failed
	if [ $((idle_ready * 10)) -lt "$IDLE_N" ]; then
		fail_record "$s" "$name" "n/a: it closed $closed_by_peer of $IDLE_N client connections right after the response (no client keep-alive); $failed_ready failed"
		return 2
	fi
	eval "${done_line#DONE }"
	set -- $before $after
	record "$(printf '{"scenario":%s,"target":"%s","run":%s,"clients":%s,"idle":%s,"failed":%s,"closed_after":%s,"rss_before":%s,"pss_before":%s,"rss_after":%s,"pss_after":%s}' \
		"$s" "$name" "$run" "$IDLE_N" "$idle_ready" "$failed_ready" "$closed_by_peer" "$1" "$2" "$3" "$4")"
	log "scenario $s $name run $run: $idle_ready idle ($failed_ready failed), RSS $1 -> $3 KiB"
}

scenario_name() {
	case "$1" in
	1) echo "1 KiB GET, 50 keep-alive connections" ;;
	2) echo "1 MiB GET, 8 keep-alive connections" ;;
	3) echo "CONNECT tunnels, 64 MiB GET inside, 4 parallel" ;;
	4) echo "1 KiB GET, new connection per request" ;;
	5) echo "$IDLE_N idle keep-alive clients" ;;
	esac
}

run_cell() { # SCEN NAME
	local s=$1 name=$2 r
	if [ "$name" = nginx ] && [ "$s" = 3 ]; then
		fail_record "$s" "$name" "n/a: nginx is a reverse proxy here; it has no CONNECT"
		return 0
	fi
	if [ "$s" = 5 ]; then
		for r in $(seq 1 "$runs"); do
			if ! start_target "$name"; then fail_record "$s" "$name" "$T_WHY"; return 0; fi
			if [ "$name" = direct ]; then
				# The origin is shared by every cell: measure it only
				# after the idle connections of earlier cells are gone.
				sleep 1
			fi
			local rc=0
			run_idle "$s" "$name" "$r" || rc=$?
			stop_target "$name"
			[ $rc -eq 2 ] && break
		done
		return 0
	fi
	if ! start_target "$name"; then fail_record "$s" "$name" "$T_WHY"; return 0; fi
	for r in $(seq 0 "$runs"); do
		case "$s" in
		1) run_wrk "$s" "$name" "$r" 50 /1k ;;
		2) run_wrk "$s" "$name" "$r" 8 /1m ;;
		3) run_bulk "$s" "$name" "$r" ;;
		4) run_wrk "$s" "$name" "$r" 50 /1k close ;;
		esac
		if [ "$name" != direct ] && ! alive "$T_PID"; then
			local when="run $r"
			[ "$r" = 0 ] && when="the warm-up"
			fail_record "$s" "$name" "crashed during $when: $(tail -n 1 "$T_LOG" 2>/dev/null | cut -c1-200)"
			forget_pid "$T_PID"
			return 0
		fi
	done
	stop_target "$name"
}

START=$(date +%s)
for s in "${scenarios[@]}"; do
	log "== scenario $s: $(scenario_name "$s")"
	for name in "${targets[@]}"; do
		run_cell "$s" "$name"
	done
done
ELAPSED=$(($(date +%s) - START))

# -------------------------------------------------------------- report -----

versions=$(dpkg-query -W -f='${Package} ${Version}\n' nginx-light nginx wrk squid tinyproxy trafficserver 2>/dev/null || true)
sluice_ver="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git -C "$ROOT" --no-optional-locks status --porcelain -- src 2>/dev/null)" ]; then
	sluice_ver="$sluice_ver plus uncommitted changes in src/"
fi
cpu_model=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
stamp=$(date +%Y-%m-%d)
suffix=
[ $quick -eq 1 ] && suffix=-quick
outfile=$BENCH/results/$stamp$suffix.md
python3 "$BENCH/report.py" "$RES" \
	--date "$(date '+%Y-%m-%d %H:%M %Z')" --quick "$quick" --duration "$duration" \
	--runs "$runs" --warm "$warm" --idle "$IDLE_N" --elapsed "$ELAPSED" \
	--cpu "$cpu_model" --kernel "$(uname -r)" --nproc "$(nproc)" --nofile "$NOFILE" \
	--proxy-cpu "$PROXY_CPU" --load-cpu "$LOAD_CPU" --sluice "$sluice_ver" \
	--targets "$(IFS=,; echo "${targets[*]}")" --scenarios "$(IFS=,; echo "${scenarios[*]}")" \
	--versions "$versions" >"$outfile.tmp"
mv "$outfile.tmp" "$outfile"
cp "$RES" "$BENCH/results/$stamp$suffix.jsonl"
cat "$outfile"
log "report written to ${outfile#"$ROOT"/} (raw: ${outfile%.md}.jsonl); took ${ELAPSED}s"
