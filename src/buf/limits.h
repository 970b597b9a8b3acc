/* limits.h - every size cap in sluice, in one place.
 *
 * Configurable limits have their default and their hard ceiling here; the
 * config layer rejects values above the ceiling. */
#ifndef SLUICE_LIMITS_H
#define SLUICE_LIMITS_H

/* I/O buffers: one pool of standard buffers, one of large ones for heads that
 * outgrow a standard buffer (big cookies). */
#define IOBUF_SIZE	 (16 * 1024)
#define IOBUF_LARGE_SIZE (64 * 1024)
/* Buffers a worker keeps cached per pool before returning them to malloc. */
#define IOBUF_POOL_KEEP 64

/* Request/response heads. */
#define MAX_HEADER_SIZE_DEFAULT	 (32 * 1024)
#define MAX_HEADER_SIZE_CEIL	 IOBUF_LARGE_SIZE
#define MAX_HEADERS_DEFAULT	 100
#define MAX_HEADERS_CEIL	 1000
#define MAX_REQUEST_LINE_DEFAULT (8 * 1024)
/* A response head from an origin: same ceiling as requests. */
#define MAX_RESPONSE_HEAD IOBUF_LARGE_SIZE

/* Chunked coding: a chunk-size line with its extensions, and the trailer
 * section as a whole. */
#define CHUNK_LINE_MAX	  4096
#define CHUNK_TRAILER_MAX (16 * 1024)

/* Host names (RFC 1035: 253 octets in text form). */
#define HOST_NAME_MAX_LEN 253

/* Outgoing request head built by the proxy: the client head plus a little. */
#define OUT_HEAD_MAX (MAX_HEADER_SIZE_CEIL + 1024)

/* Cache. The memory store's index has CACHE_SHARDS independently locked
 * hash tables of CACHE_BUCKETS_PER_SHARD chains; body bytes are kept in
 * chunks of at most CACHE_CHUNK. A cache key is the normalised URI. */
#define CACHE_MEM_CEIL		(1ull << 40)
#define CACHE_MAX_OBJECT_CEIL	(1u << 30)
#define CACHE_SHARDS		64
#define CACHE_BUCKETS_PER_SHARD 1024
#define CACHE_MAX_VARIANTS	32
/* Invalidation generations, shared by key hash (mem_gen). */
#define CACHE_GEN_SLOTS 4096
#define CACHE_CHUNK	(64 * 1024)
/* A body at least this large (of a known length) gets one mapping of its
 * own as its one chunk: one piece to write from, returned whole to the
 * system when the object goes. */
#define CACHE_MAP_MIN (256 * 1024)
/* With sendfile on, such bodies live in memfds: one descriptor each, at most
 * this many, and at most an eighth of RLIMIT_NOFILE. */
#define CACHE_MEMFD_MAX	   16384
#define CACHE_KEY_MAX	   (HOST_NAME_MAX_LEN + OUT_HEAD_MAX)
#define CACHE_VARY_KEY_MAX (8 * 1024)

/* Config. */
#define CONF_LINE_MAX	     4096
#define CONF_INCLUDE_DEPTH   16
#define CONF_MAX_LISTEN	     64
#define CONF_MAX_CIDRS	     4096
#define CONF_MAX_PORT_RANGES 256
#define CONF_MAX_BACKENDS    1024
#define CONF_MAX_SERVERS     64 /* per backend: the tried set of a request is a 64-bit mask */
#define CONF_MAX_ROUTES	     4096
#define CONF_NAME_MAX	     63

/* DNS. */
#define DNS_CACHE_SIZE_DEFAULT 4096
#define DNS_NEG_TTL_S	       10
#define DNS_MIN_TTL_S	       1
#define DNS_MAX_TTL_S	       3600
#define DNS_MAX_ADDRS	       8 /* kept of an answer: both families, interleaved */
/* An answer of which a query timed out (one family may be missing) is kept
 * no longer than this. */
#define DNS_PARTIAL_TTL_S 5
/* The hosts file is read whole up to this size. */
#define HOSTS_FILE_MAX (16 * 1024 * 1024)

/* Upstream connection pool, per worker. Out of descriptors, a worker
 * closes POOL_TRIM of its idle connections (the longest idle) and tries
 * again before it gives up on an accept or a connect. */
#define POOL_TRIM		 16
#define POOL_MAX_IDLE_PER_ORIGIN 256
#define POOL_MAX_IDLE_TOTAL	 4096

/* splice() pipe size asked for (F_SETPIPE_SZ). */
#define PIPE_SIZE (256 * 1024)
/* A response body with at least this much left (or delimited by close) is
 * moved with splice() instead of through a user-space buffer. */
#define SPLICE_MIN (64 * 1024)
/* A relay half that has moved this much is a bulk transfer: its source
 * socket gets a fixed receive buffer of RELAY_WIDE_RCVBUF (the kernel
 * doubles it for its own overhead) in place of receive autotuning. On a
 * spliced socket autotuning lets the origin queue tens of MiB in the proxy
 * (25 MiB seen on loopback); the fixed size bounds the kernel memory a
 * tunnel can pin and measured faster (docs/benchmarks.md). Done only where
 * net.core.rmem_max lets the whole size be set, since a smaller fixed
 * buffer would cut throughput on long paths. */
#define RELAY_WIDEN_AFTER (1024 * 1024)
#define RELAY_WIDE_RCVBUF (2 * 1024 * 1024)

/* Connections. */
#define MAX_CONNECTIONS_DEFAULT		   10000
#define MAX_CONNECTIONS_PER_CLIENT_DEFAULT (MAX_CONNECTIONS_DEFAULT / 4) /* auto */

/* A forward proxy's connections from clients outside `allow` (outsiders)
 * are let in only to be told so with a 403: they take none of the slots of
 * max_connections, but at most this many are open on a worker at once, and
 * each has this long to send its request head. */
#define OUTSIDERS_MAX	 64
#define OUTSIDER_WAIT_MS 5000

/* Lingering close: after answering a request whose body we did not read
 * (an early 413, a 400), the client may still be sending. Closing with
 * unread bytes makes the kernel send a reset that can destroy the answer in
 * flight, so the write side is shut and input is read and dropped until the
 * client closes, goes quiet this long, or the total runs out. */
#define LINGER_IDLE_MS	5000
#define LINGER_TOTAL_MS 30000

/* Access log: a worker flushes its buffer when it holds this much. */
#define ALOG_BUF_SIZE (64 * 1024)

/* Graceful stop: in-flight requests get this long after SIGTERM. */
#define DRAIN_DEADLINE_MS_DEFAULT 10000

#endif
