#!/usr/bin/env bash
# sluice cache and reverse-proxy benchmark: sluice in reverse (accelerator)
# mode and its peers side by side, against direct.
#
#   bench/cache.sh [--quick] [--only sluice,sluice-sf,sluice-bp,varnish,trafficserver,squid,haproxy,nginx]
#                  [--scenario 1,2,3,3b] [--duration SECONDS] [--runs N] [--keep] [--build]
#
#   --quick      5 s runs, 1 round, 1 s warm-up (smoke test)
#   --only       which proxies to run (direct always runs: it is the baseline)
#   --scenario   which scenarios to run, 1,2,3,3b or C1,C2,C3,C3b (default all)
#   --duration   seconds per measured run (default 10; --quick 5)
#   --runs       rounds: measured runs per cell, median reported (default 5; --quick 1)
#   --keep       keep the temporary directory (configs, logs, raw results)
#   --build      run 'make build/sluice' first (default: use build/sluice as it is)
#
# Scenarios (docs/benchmarks.md, "Cache and reverse-proxy benchmark"):
#   C1  1 KiB cache hits, 50 keep-alive connections    req/s  varnish trafficserver squid
#   C2  reverse proxy, cache off, 1 KiB, 50 conns      req/s  haproxy nginx
#   C3  1 MiB cache hits, 8 keep-alive connections     MiB/s  varnish trafficserver
#   C3b the same with a lean client (connect_bulk -k)   MiB/s  varnish trafficserver
#
# sluice-sf is sluice with `sendfile on`, measured beside it in C3 and C3b;
# sluice-bp is sluice with `busy_poll 20us`, measured beside it in C2.
#
# Every proxy is a reverse proxy for one origin; wrk (connect_bulk in C3b) sends origin-form
# requests (GET /1k HTTP/1.1, Host: bench.local). The proxy under test runs
# on CPU $PROXY_CPU (default 0); the origin nginx and wrk on CPU $LOAD_CPU
# (default 1). $SLUICE names the sluice binary (default build/sluice; it is
# copied at start, so a rebuild during the run does not matter). Everything
# listens on 127.0.0.1 only. Prints a Markdown report and writes it to
# bench/results/DATE-cache.md (DATE-cache-quick.md for --quick).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
ALL_PROXIES=(sluice sluice-sf sluice-bp varnish trafficserver squid haproxy nginx)
ALL_SCENARIOS=(1 2 3 4) # 4 is C3b
HOST=bench.local

quick=0 keep=0 build=0 duration= runs= only= scen=
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=1 ;;
	--keep) keep=1 ;;
	--build) build=1 ;;
	--only) only=${2:?--only needs a list}; shift ;;
	--only=*) only=${1#*=} ;;
	--scenario) scen=${2:?--scenario needs a list}; shift ;;
	--scenario=*) scen=${1#*=} ;;
	--duration) duration=${2:?}; shift ;;
	--runs) runs=${2:?}; shift ;;
	-h|--help) sed -n '2,30p' "$0"; exit 0 ;;
	*) echo "cache.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done
if [ $quick -eq 1 ]; then
	duration=${duration:-5} runs=${runs:-1} warm=1
else
	duration=${duration:-10} runs=${runs:-5} warm=2
fi

proxies=()
if [ -n "$only" ]; then
	IFS=, read -ra req <<<"$only"
	for p in "${req[@]}"; do
		[ "$p" = direct ] && continue
		[ "$p" = ats ] && p=trafficserver
		case " ${ALL_PROXIES[*]} " in *" $p "*) proxies+=("$p") ;;
		*) echo "cache.sh: unknown proxy '$p' (known: ${ALL_PROXIES[*]})" >&2; exit 2 ;;
		esac
	done
else
	proxies=("${ALL_PROXIES[@]}")
fi
scenarios=()
if [ -n "$scen" ]; then
	IFS=, read -ra req <<<"$scen"
	for s in "${req[@]}"; do
		s=${s#[Cc]}
		[ "$s" = 3b ] && s=4
		case "$s" in 1|2|3|4) scenarios+=("$s") ;; *) echo "cache.sh: unknown scenario '$s'" >&2; exit 2 ;; esac
	done
else
	scenarios=("${ALL_SCENARIOS[@]}")
fi

# The peers of each scenario, in report order (sluice first).
scenario_peers() {
	case "$1" in
	1) echo sluice varnish trafficserver squid ;;
	2) echo sluice sluice-bp haproxy nginx ;;
	3|4) echo sluice sluice-sf varnish trafficserver ;;
	esac
}
targets_of() { # SCEN -> direct and the selected peers of SCEN
	local p out=direct
	for p in $(scenario_peers "$1"); do
		case " ${proxies[*]-} " in *" $p "*) out="$out $p" ;; esac
	done
	echo "$out"
}
scen_label() { # SCEN -> C1, C2, C3 or C3b
	if [ "$1" = 4 ]; then echo C3b; else echo "C$1"; fi
}
scenario_name() {
	case "$1" in
	1) echo "C1: 1 KiB cache hits, 50 keep-alive connections" ;;
	2) echo "C2: reverse proxy, cache off, 1 KiB, 50 keep-alive connections" ;;
	3) echo "C3: 1 MiB cache hits, 8 keep-alive connections" ;;
	4) echo "C3b: 1 MiB cache hits, 8 keep-alive connections, lean client" ;;
	esac
}

# Shared helpers: log, process and port helpers, cpu/memory probes, record,
# start_origin (bench/lib.sh).
. "$BENCH/lib.sh"

# ---------------------------------------------------------------- setup ----

# Peers: the forward-proxy benchmark's set, plus Varnish and HAProxy.
"$ROOT/scripts/deps.sh" bench
install_missing() { # PACKAGE... : apt-get install those not installed
	local p missing=() sudo= made=0
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing: ${missing[*]}"
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null || { echo "cache.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
		sudo=sudo
	fi
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	# The packages' services must not start: the benchmark starts its own.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
		$sudo chmod +x /usr/sbin/policy-rc.d
		made=1
	fi
	$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || {
		[ $made -eq 1 ] && $sudo rm -f /usr/sbin/policy-rc.d
		echo "cache.sh: apt-get install ${missing[*]} failed" >&2; exit 1; }
	[ $made -eq 1 ] && $sudo rm -f /usr/sbin/policy-rc.d
	return 0
}
install_missing varnish haproxy
for t in wrk nginx curl python3 taskset varnishd haproxy squid traffic_server; do
	command -v "$t" >/dev/null || { echo "cache.sh: $t is missing" >&2; exit 1; }
done
[ "$(nproc)" -ge 2 ] || log "warning: fewer than 2 CPUs; pinning will overlap"

ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)

T=$(mktemp -d /tmp/sluice-cache-bench.XXXXXX)
chmod 755 "$T"
RES=$T/results.jsonl
: >"$RES"
PIDS=()

trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

STARTS=0
mkdir -p "$BENCH/results"
LUA=$BENCH/wrk/req.lua
CB=$ROOT/build/bench/connect_bulk
mkdir -p "$ROOT/build/bench"
gcc -O2 -Wall -Wextra -pthread -o "$CB" "$BENCH/tools/connect_bulk.c"

SLUICE_WHY= SLUICE_SRC=${SLUICE:-$ROOT/build/sluice} SLUICE_BUILT=
if case " ${proxies[*]-} " in *" sluice "* | *" sluice-sf "* | *" sluice-bp "*) true ;; *) false ;; esac; then
	if [ $build -eq 1 ]; then
		log "building sluice (make build/sluice)"
		make -C "$ROOT" --no-print-directory build/sluice >"$T/sluice-build.log" 2>&1 ||
			SLUICE_WHY="not measured yet: make build/sluice failed ($(grep -m1 -E 'error|Error|No rule' "$T/sluice-build.log" | cut -c1-120))"
	fi
	if [ -z "$SLUICE_WHY" ] && [ ! -x "$SLUICE_SRC" ]; then
		SLUICE_WHY="not measured yet: $SLUICE_SRC is missing (make build/sluice, or --build)"
	fi
	if [ -n "$SLUICE_WHY" ]; then
		log "$SLUICE_WHY"
	else
		# One binary for the whole run, even if build/ is rebuilt meanwhile.
		cp "$SLUICE_SRC" "$T/sluice-bin"
		SLUICE_BUILT=$(date -u -r "$SLUICE_SRC" '+%Y-%m-%d %H:%M UTC')
	fi
fi

# ------------------------------------------------------------- origin ------

read -r OPORT STATUS_PORT SLUICE_PORT VARNISH_PORT VARNISH_ADMIN ATS_PORT SQUID_PORT \
	HAPROXY_PORT NGX_PORT <<<"$(free_ports 9)"
ORIGIN=127.0.0.1:$OPORT
# Every response may be cached for an hour (C1, C3; C2 turns caching off in
# the proxy, the header does not matter there).
start_origin "$T/origin" "$OPORT" "$STATUS_PORT" "$NOFILE" \
	'        add_header Cache-Control "max-age=3600";' 1k=1024 1m=$((1024 * 1024))
log "origin nginx on $ORIGIN (pid $ORIGIN_PID, CPU $LOAD_CPU); temp dir $T"
got=$(curl -s -o /dev/null -D - "http://$ORIGIN/1k" | tr -d '\r' | grep -i '^cache-control:' || true)
[ "$got" = "Cache-Control: max-age=3600" ] || { echo "cache.sh: origin sends '$got', not Cache-Control: max-age=3600" >&2; exit 1; }

# ------------------------------------------------------------- proxies -----
# Each write_* gets CACHE=on|off (off only in C2, where no cache peer runs
# but sluice).

write_sluice() { # DIR [EXTRA DIRECTIVE LINE]
	mkdir -p "$T/$1"
	cat >"$T/$1/sluice.conf" <<EOF
${2-}
listen 127.0.0.1:$SLUICE_PORT
threads 1
access_log off
cache $CACHE
cache_mem 256M
backend origin $ORIGIN
route / origin
forward off
EOF
}

# Varnish: the builtin VCL (-b) caches a GET without cookies whose response
# has a lifetime and no Set-Cookie, for the response's max-age. For one
# core: one thread pool (the default is 2; a second pool on one core only
# adds threads), 64 worker threads made at start (each of the 50
# connections needs a worker while its request is in flight; the default
# minimum is 100 per pool), at most 1,000 (default 5,000).
VARNISH_PARAMS=(-p thread_pools=1 -p thread_pool_min=64 -p thread_pool_max=1000)
start_varnish() {
	local d=$T/varnish
	rm -rf "$d/work"
	mkdir -p "$d"
	start_bg "$PROXY_CPU" "$T_LOG" varnishd -F -a "127.0.0.1:$VARNISH_PORT" -b "$ORIGIN" \
		-s malloc,256m -n "$d/work" -T "127.0.0.1:$VARNISH_ADMIN" "${VARNISH_PARAMS[@]}"
}

write_trafficserver() {
	local d=$T/trafficserver
	rm -rf "$d/etc" "$d/run" "$d/cache"
	mkdir -p "$d/etc" "$d/run" "$d/log" "$d/cache"
	cp -r /etc/trafficserver/. "$d/etc/"
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
# Reverse proxy (remap required), one net thread, 256 MiB RAM cache in front
# of a 256 MiB disk cache file (ATS caches nothing without storage), no logging.
CONFIG proxy.config.exec_thread.autoconfig INT 0
CONFIG proxy.config.exec_thread.limit INT 1
CONFIG proxy.config.exec_thread.affinity INT 0
CONFIG proxy.config.accept_threads INT 0
CONFIG proxy.config.task_threads INT 1
CONFIG proxy.config.cache.threads_per_disk INT 1
CONFIG proxy.config.http.server_ports STRING $ATS_PORT:ipv4:ip-in=127.0.0.1
CONFIG proxy.config.http.cache.http INT 1
CONFIG proxy.config.cache.ram_cache.size INT $((256 * 1024 * 1024))
CONFIG proxy.config.http.wait_for_cache INT 2
CONFIG proxy.config.url_remap.remap_required INT 1
CONFIG proxy.config.reverse_proxy.enabled INT 1
CONFIG proxy.config.log.logging_enabled INT 0
CONFIG proxy.config.http.keep_alive_no_activity_timeout_in INT 600
CONFIG proxy.config.http.keep_alive_no_activity_timeout_out INT 600
CONFIG proxy.config.net.connections_throttle INT 30000
CONFIG proxy.config.net.max_connections_in INT 30000
CONFIG proxy.config.diags.debug.enabled INT 0
CONFIG proxy.config.admin.user_id STRING #-1
EOF
	echo "$d/cache 256M" >"$d/etc/storage.config"
	echo "map http://$HOST/ http://$ORIGIN/" >"$d/etc/remap.config"
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
# Accelerator (reverse proxy) for the origin, memory cache only (no
# cache_dir), one worker, no access log.
http_port 127.0.0.1:$SQUID_PORT accel defaultsite=$HOST vhost
cache_peer 127.0.0.1 parent $OPORT 0 no-query no-digest originserver name=origin
cache_peer_access origin allow all
never_direct allow all
workers 1
cache_mem 256 MB
maximum_object_size_in_memory 2 MB
memory_cache_mode always
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
	chown -R proxy: "$d" 2>/dev/null || chmod 777 "$d"
}

write_haproxy() {
	local d=$T/haproxy
	mkdir -p "$d"
	cat >"$d/haproxy.cfg" <<EOF
# HTTP mode, one thread, keep-alive on both sides, server connections
# shared between clients (http-reuse always), no logging. The same four
# fields sluice adds to a request it forwards in reverse mode (Via,
# X-Forwarded-For, Forwarded, X-Forwarded-Proto), so both do the same work.
global
    nbthread 1
    maxconn 4000
    pidfile $d/haproxy.pid
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 600s
    timeout server 600s
    timeout http-keep-alive 600s
frontend bench
    bind 127.0.0.1:$HAPROXY_PORT
    option forwardfor
    http-request add-header Via "1.1 haproxy"
    http-request add-header Forwarded "for=%[src];host=%[req.hdr(host)];proto=http"
    http-request set-header X-Forwarded-Proto http
    default_backend origin
backend origin
    server origin1 $ORIGIN
EOF
}

write_nginx() {
	local d=$T/nginx
	mkdir -p "$d/tmp"
	cat >"$d/nginx.conf" <<EOF
# nginx as a reverse proxy: proxy_pass to an upstream with pooled keep-alive
# connections, HTTP/1.1 upstream, default buffering, no proxy_cache; the
# request fields sluice adds in reverse mode (see write_haproxy).
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
            proxy_set_header Host \$host;
            proxy_set_header Via "1.1 nginx";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header Forwarded "for=\$remote_addr;host=\$host;proto=\$scheme";
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
}
EOF
}

get() { # PORT PATH -> "code size" of a GET with Host: $HOST
	curl -s --max-time 10 -o /dev/null -w '%{http_code} %{size_download}' \
		-H "Host: $HOST" "http://127.0.0.1:$1$2" || true
}

# cache_headers PORT PATH -> the cache-related response fields of a GET, one line
cache_headers() {
	curl -s --max-time 10 -o /dev/null -D - -H "Host: $HOST" "http://127.0.0.1:$1$2" 2>/dev/null |
		tr -d '\r' | grep -i -E '^(cache-status|x-cache|x-varnish|age):' | paste -sd '\t' - |
		sed 's/\t/, /g' || true
}

# start_target NAME -> sets T_PID T_PORT; or returns 1 with T_WHY.
start_target() {
	T_WHY=
	STARTS=$((STARTS + 1))
	T_LOG=$T/$1/stderr.$STARTS.log
	mkdir -p "$T/$1"
	case "$1" in
	direct)
		T_PID=$ORIGIN_PID T_PORT=$OPORT
		return 0 ;;
	sluice | sluice-sf | sluice-bp)
		if [ -n "$SLUICE_WHY" ]; then T_WHY=$SLUICE_WHY; return 1; fi
		case "$1" in
		sluice) write_sluice "$1" ;;
		sluice-sf) write_sluice "$1" "sendfile on" ;;
		sluice-bp) write_sluice "$1" "busy_poll 20us" ;;
		esac
		if ! "$T/sluice-bin" -t -c "$T/$1/sluice.conf" >"$T_LOG" 2>&1; then
			T_WHY="config rejected: $(tail -n 2 "$T_LOG" | tr '\n' ' ' | cut -c1-160)"
			return 1
		fi
		T_PORT=$SLUICE_PORT
		start_bg "$PROXY_CPU" "$T_LOG" "$T/sluice-bin" -c "$T/$1/sluice.conf" ;;
	varnish)
		T_PORT=$VARNISH_PORT
		start_varnish ;;
	trafficserver)
		write_trafficserver
		T_PORT=$ATS_PORT
		start_bg "$PROXY_CPU" "$T_LOG" traffic_server --run-root="$T/trafficserver/runroot.yaml" ;;
	squid)
		write_squid
		T_PORT=$SQUID_PORT
		start_bg "$PROXY_CPU" "$T_LOG" squid -N -f "$T/squid/squid.conf" ;;
	haproxy)
		write_haproxy
		T_PORT=$HAPROXY_PORT
		start_bg "$PROXY_CPU" "$T_LOG" haproxy -db -f "$T/haproxy/haproxy.cfg" ;;
	nginx)
		write_nginx
		T_PORT=$NGX_PORT
		start_bg "$PROXY_CPU" "$T_LOG" nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" ;;
	esac
	T_PID=$BGPID
	if ! wait_port "$T_PORT" "$T_PID"; then
		T_WHY="did not start: $(tail -n 3 "$T_LOG" 2>/dev/null | tr '\n' ' ' | cut -c1-160)"
		stop_target "$1"
		return 1
	fi
	# A request through it must reach the origin (and, with a cache,
	# stores /1k).
	local got i
	for i in 1 2 3 4 5 6 7 8 9 10; do
		got=$(get "$T_PORT" /1k)
		[ "$got" = "200 1024" ] && break
		# Traffic Server answers 502/503 until its cache is up.
		sleep 0.5
	done
	if [ "$got" != "200 1024" ]; then
		T_WHY="does not proxy: GET /1k (Host: $HOST) through it gave '${got:-no answer}'"
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

# run_load SCEN NAME RUN CONNS PATH  (RUN=0: warm-up, not recorded)
# The client is wrk, but in C3b (SCEN 4) bench/tools/connect_bulk -k: the
# same GETs on kept connections, each body dropped in the kernel (recv
# MSG_TRUNC), so that the client costs little and the proxy limits.
run_load() {
	local s=$1 name=$2 run=$3 conns=$4 path=$5 out secs
	secs=$duration
	[ "$run" = 0 ] && secs=$warm
	local c0 c1 o0 o1 b0 b1 tool=wrk mark=WRKRESULT
	[ "$s" = 4 ] && tool=connect_bulk mark=CBRESULT
	c0=$(cpu_ticks "$T_PID")
	o0=$(origin_counts)
	b0=$(cpu_busy)
	if [ "$s" = 4 ]; then
		out=$(taskset -c "$LOAD_CPU" "$CB" -k -a "127.0.0.1:$T_PORT" -o "$HOST" -u "$path" \
			-c "$conns" -d "$secs" -w 0 2>&1) || true
	else
		out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$conns" -d"${secs}s" --timeout 10s -s "$LUA" \
			"http://127.0.0.1:$T_PORT/" -- "$path" "$HOST" 2>&1) || true
	fi
	b1=$(cpu_busy)
	c1=$(cpu_ticks "$T_PID")
	o1=$(origin_counts)
	[ "$run" = 0 ] && return 0
	local line
	line=$(grep "^$mark" <<<"$out" || true)
	if [ -z "$line" ]; then
		fail_record "$s" "$name" "$tool failed: $(tail -n 2 <<<"$out" | tr '\n' ' ' | cut -c1-160)"
		return 0
	fi
	local requests seconds bytes p50_ms p99_ms errors err_read=0 err_status=0
	if [ "$s" = 4 ]; then
		local mib_s objects
		eval "${line#CBRESULT }"
		requests=$objects
	else
		local duration_us p50_us p99_us mean_us err_connect err_write err_timeout
		eval "${line#WRKRESULT }"
		errors=$((err_connect + err_read + err_write + err_status + err_timeout))
		seconds=$(awk "BEGIN{print $duration_us/1e6}")
		p50_ms=$(awk "BEGIN{print $p50_us/1000}")
		p99_ms=$(awk "BEGIN{print $p99_us/1000}")
	fi
	set -- $o0 $o1
	local acc=$(($3 - $1)) oreq=$(($4 - $2 - 1))
	record "$(printf '{"scenario":%s,"target":"%s","run":%s,"requests":%s,"seconds":%s,"bytes":%s,"p50_ms":%s,"p99_ms":%s,"errors":%s,"err_read":%s,"err_status":%s,"cpu_s":%s,"origin_requests":%s,"origin_accepts":%s%s}' \
		"$s" "$name" "$run" "$requests" "$seconds" "$bytes" "$p50_ms" "$p99_ms" "$errors" \
		"$err_read" "$err_status" "$(awk "BEGIN{print ($c1-$c0)/$TICK}")" "$oreq" "$acc" \
		"$(busy_json "$b0" "$b1")")"
	log "scenario $(scen_label "$s") $name run $run: $requests requests, p99 $p99_ms ms, origin served $oreq, errors $errors"
}

json_str() { # TEXT -> TEXT with " and \ escaped, control characters dropped
	local v=${1//\\/\\\\}
	v=${v//\"/\\\"}
	printf '%s' "$v" | tr -d '\000-\037'
}

run_cell() { # SCEN NAME ROUND : a fresh proxy, its probes, a warm-up and measured run ROUND
	local s=$1 name=$2 round=$3 r path conns
	case "$s" in
	1) path=/1k conns=50 CACHE=on ;;
	2) path=/1k conns=50 CACHE=off ;;
	3|4) path=/1m conns=8 CACHE=on ;;
	esac
	if ! start_target "$name"; then fail_record "$s" "$name" "$T_WHY"; return 0; fi
	if [ "$name" != direct ]; then
		# Fill the cache with the object of the scenario (start_target
		# fetched /1k already), then look at how the proxy answers the
		# next request: the hit header is the first check that hits
		# happen; the origin's counter during the runs is the second.
		# Whether the origin saw the second GET (its counter grows by
		# one for our own status request) does not depend on headers.
		local first second o0 o1 went
		first=$(cache_headers "$T_PORT" "$path")
		o0=$(origin_counts)
		second=$(cache_headers "$T_PORT" "$path")
		o1=$(origin_counts)
		set -- $o0 $o1
		went=$(($4 - $2 - 1))
		record "{\"scenario\":$s,\"target\":\"$name\",\"probe_first\":\"$(json_str "$first")\",\"probe_second\":\"$(json_str "$second")\",\"probe_origin\":$went}"
		log "scenario $(scen_label "$s") $name: 2nd GET $path: origin requests $went; answered with: ${second:-no cache header}"
		if [ "$name" = sluice ] && [ "$CACHE" = on ] && ! grep -qiE 'cache-status:[^,]*;[[:space:]]*hit' <<<"$second"; then
			log "scenario $(scen_label "$s") sluice: the 2nd GET $path was not a hit (Cache-Status: ${second:-none})"
		fi
	fi
	for r in 0 "$round"; do
		run_load "$s" "$name" "$r" "$conns" "$path"
		if [ "$name" != direct ] && ! alive "$T_PID"; then
			local when="run $round"
			[ "$r" = 0 ] && when="the warm-up of run $round"
			fail_record "$s" "$name" "crashed during $when: $(tail -n 1 "$T_LOG" 2>/dev/null | cut -c1-200)"
			forget_pid "$T_PID"
			return 0
		fi
	done
	if [ "$name" != direct ]; then
		local m
		m=$(mem_kib "$T_PID")
		set -- $m
		record "{\"scenario\":$s,\"target\":\"$name\",\"run\":$round,\"rss_kib\":$1,\"pss_kib\":$2}"
	fi
	stop_target "$name"
}

# Rounds: each round measures every target of the scenario once, in an
# order rotated by one per round, so that a slow drift of the machine (a
# busy neighbour, the clock) falls on all targets alike, and every proxy
# ratio can be taken against the direct run of its own round.
START=$(date +%s)
for s in "${scenarios[@]}"; do
	log "== scenario $(scenario_name "$s")"
	read -ra names <<<"$(targets_of "$s")"
	for round in $(seq 1 "$runs"); do
		k=$(((round - 1) % ${#names[@]}))
		for name in "${names[@]:k}" "${names[@]:0:k}"; do
			run_cell "$s" "$name" "$round"
		done
	done
done
ELAPSED=$(($(date +%s) - START))

# -------------------------------------------------------------- report -----

versions=$(bench_versions nginx-light nginx wrk varnish trafficserver squid haproxy)
sluice_ver=$(sluice_version)
[ -n "$SLUICE_BUILT" ] && sluice_ver="$sluice_ver; binary $SLUICE_SRC built $SLUICE_BUILT"
cpu_model=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
stamp=$(date +%Y-%m-%d)
suffix=-cache
[ $quick -eq 1 ] && suffix=-cache-quick
outfile=$BENCH/results/$stamp$suffix.md
tlist=
for s in "${scenarios[@]}"; do tlist="$tlist;$s:$(targets_of "$s" | tr ' ' ,)"; done
python3 "$BENCH/cache/report.py" "$RES" \
	--date "$(date '+%Y-%m-%d %H:%M %Z')" --quick "$quick" --duration "$duration" \
	--runs "$runs" --warm "$warm" --elapsed "$ELAPSED" \
	--cpu "$cpu_model" --kernel "$(uname -r)" --nproc "$(nproc)" --nofile "$NOFILE" \
	--proxy-cpu "$PROXY_CPU" --load-cpu "$LOAD_CPU" --sluice "$sluice_ver" \
	--targets "${tlist#;}" --varnish-params "${VARNISH_PARAMS[*]}" \
	--versions "$versions" >"$outfile.tmp"
mv "$outfile.tmp" "$outfile"
cp "$RES" "$BENCH/results/$stamp$suffix.jsonl"
cat "$outfile"
log "report written to ${outfile#"$ROOT"/} (raw: ${outfile%.md}.jsonl); took ${ELAPSED}s"
