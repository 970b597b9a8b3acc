-- wrk script for the sluice benchmark.
--
--   wrk -t1 -c50 -d10s -s bench/wrk/req.lua http://PROXY:PORT/ -- TARGET HOST [close]
--
-- TARGET is the request-target wrk sends: the absolute URL
-- "http://127.0.0.1:ORIGINPORT/1k" when wrk connects to a forward proxy
-- (absolute-form, RFC 9112 §3.2.2), or "/1k" when it connects straight to
-- the origin or to a reverse proxy. HOST is the Host header (the origin's
-- authority, so it agrees with an absolute URL). "close" adds
-- "Connection: close", so every request opens a new connection (wrk
-- reconnects when a response is not keep-alive).
--
-- done() prints one machine-readable line that bench/run.sh parses.

function init(args)
	local target = args[1] or "/"
	local host = args[2]
	wrk.path = target
	if host then
		wrk.headers["Host"] = host
	end
	if args[3] == "close" then
		wrk.headers["Connection"] = "close"
	end
end

function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format(
		"WRKRESULT requests=%d duration_us=%d bytes=%d p50_us=%d p99_us=%d " ..
		"mean_us=%.0f err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
		summary.requests, summary.duration, summary.bytes,
		latency:percentile(50), latency:percentile(99), latency.mean,
		e.connect, e.read, e.write, e.status, e.timeout))
end
