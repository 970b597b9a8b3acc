/* conf.h - the configuration: grammar, directive registry and snapshots.
 *
 * Grammar (one directive per line): `name arg...`; arguments are separated by
 * spaces or tabs; a double-quoted argument may contain spaces and the escapes
 * \" and \\; `#` starts a comment outside quotes; blank lines are ignored;
 * `include PATH` (glob patterns allowed, relative to the including file's
 * directory) reads another file in place. Directive names are case-sensitive.
 *
 * A loaded config is an immutable, refcounted snapshot: a reload builds a new
 * one and swaps it; transactions in flight keep the one they started with.
 *
 * Every directive lives in one table (conf.c, CONF_DIRECTIVES) with its
 * default and its parser; docs/config.md documents each one. */
#ifndef SLUICE_CONF_H
#define SLUICE_CONF_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/base.h"
#include "base/log.h"
#include "buf/limits.h"

#define CONF_MAGIC 0xc0f1c0f1u

/* A config file (or included file) larger than this is refused: a config is
 * read whole, and nothing legitimate comes near this. */
#define CONF_FILE_MAX (16 * 1024 * 1024)
/* A count given as "auto": worked out from others when the load ends. */
#define CONF_AUTO UINT32_MAX

struct conf_addr {
	struct sockaddr_storage ss; /* AF_INET or AF_INET6, port set */
	socklen_t len;
	char text[64]; /* canonical form: "127.0.0.1:3128", "[::1]:3128" */
};

struct conf_cidr {
	int family;	  /* AF_INET or AF_INET6 */
	uint8_t addr[16]; /* network address, host bits zero; 4 bytes used for AF_INET */
	unsigned prefix;  /* 0..32 or 0..128 */
};

struct conf_ports {
	uint16_t lo, hi; /* inclusive */
};

/* Reverse (accelerator) mode: backends, their servers and the routes to them.
 * A snapshot is immutable but for the servers' health fields, which all
 * workers share (atomics): a reload starts every server healthy. */
enum conf_balance {
	BALANCE_ROUNDROBIN,
	BALANCE_LEASTCONN,
	BALANCE_HASH, /* by URL (Host and path): one URL goes to one server */
};

struct conf_server {
	char host[HOST_NAME_MAX_LEN + 1]; /* name or IP literal, no brackets */
	uint16_t port;
	char text[HOST_NAME_MAX_LEN + 10]; /* as configured: "10.0.0.1:8080", "[::1]:80" */
	_Atomic uint64_t down_until_ms;	   /* passive health: skipped until then (monotonic) */
	atomic_uint active;		   /* requests in flight to it (leastconn) */
};

struct conf_backend {
	char name[CONF_NAME_MAX + 1];
	struct conf_server *servers;
	size_t nservers; /* 1..CONF_MAX_SERVERS */
	enum conf_balance balance;
	atomic_uint rr; /* round-robin cursor */
};

struct conf_route {
	char host[HOST_NAME_MAX_LEN + 1]; /* lower case, "" = any host */
	uint16_t port;			  /* 0 = any port */
	char *prefix;			  /* path prefix, "" = any path */
	size_t prefix_len;
	size_t backend;	    /* index into conf->backends */
	char *backend_name; /* resolved to backend at the end of a load */
	char *file;	    /* where the route was given, for that error */
	unsigned line;
};

enum alog_format {
	ALOG_SQUID,
	ALOG_COMBINED,
};

struct conf {
	unsigned magic;
	atomic_int refs;

	char *source; /* file it was loaded from, or NULL (built-in) */

	/* The three lists (listen, allow, connect_ports): the first occurrence in a
	 * load (counting included files) replaces the default, later ones append. */
	struct conf_addr *listen; /* listen ADDR:PORT (repeatable); default 127.0.0.1:3128 */
	size_t nlisten;
	unsigned threads;	      /* threads N|auto; 0 = auto (one per core) */
	uint32_t busy_poll_us;	      /* busy_poll INTERVAL [WINDOW]; 0 = off (default) */
	uint32_t busy_poll_window_us; /* WINDOW; 10 x INTERVAL unless given */
	struct conf_cidr *allow;      /* allow CIDR|all|none... (repeatable, appends); default
	                                 127.0.0.0/8 ::1. all = 0.0.0.0/0 + ::/0; none empties the
	                                 list (nallow 0: nobody). At most CONF_MAX_CIDRS. */
	size_t nallow;
	struct conf_ports *connect_ports; /* connect_ports PORT|LO-HI|any|none...; default 443.
	                                     any = 1-65535; none empties (CONNECT refused) */
	size_t nconnect_ports;
	bool via;		/* via on|off; default on */
	bool forwarded_for;	/* forwarded_for on|off; default off (X-Forwarded-For) */
	char *visible_hostname; /* visible_hostname NAME; default gethostname(), or
	                                 "localhost". Only [A-Za-z0-9._-], so header-safe */

	char *access_log; /* access_log PATH|stderr|off [squid|combined]; NULL = off,
	                                 "stderr" = standard error; default "stderr" */
	enum alog_format access_log_format; /* default squid */
	enum log_level log_level;	    /* log_level error|warn|info|debug; default info */

	uint32_t connect_timeout_ms;	   /* connect_timeout DURATION; default 10s */
	uint32_t read_timeout_ms;	   /* read_timeout DURATION; default 60s */
	uint32_t client_idle_timeout_ms;   /* client_idle_timeout DURATION; default 60s */
	uint32_t upstream_idle_timeout_ms; /* upstream_idle_timeout DURATION; default 30s */
	uint32_t tunnel_idle_timeout_ms;   /* tunnel_idle_timeout DURATION; default 10m */
	uint32_t shutdown_timeout_ms;	   /* shutdown_timeout DURATION; default 10s */
	bool half_closed_clients;	   /* half_closed_clients on|off; default off */

	uint32_t max_connections;	     /* max_connections N; default 10000 (whole process) */
	uint32_t max_connections_per_client; /* max_connections_per_client N|auto; 0 =
	                                        unlimited; auto (default) = max_connections
	                                        / 4 */
	uint32_t max_header_size;	     /* max_header_size SIZE; default 32K, ceiling 64K */
	uint32_t max_headers;		     /* max_headers N; default 100, ceiling 1000 */
	uint32_t max_request_line; /* max_request_line SIZE; default 8K, <= max_header_size
	                                     (if unset, shrinks to a smaller max_header_size) */

	char *dns_servers;	 /* dns_servers IP[:PORT]...; NULL = /etc/resolv.conf.
	                                     Stored as c-ares CSV: "1.2.3.4:53,[::1]:53" */
	uint32_t dns_cache_size; /* dns_cache_size N; default 4096 entries, 0 = no cache */

	bool cache;		   /* cache on|off; default on */
	uint64_t cache_mem;	   /* cache_mem SIZE; default 256M; 0 = no memory cache.
	                              Taken at start only */
	uint32_t cache_max_object; /* cache_max_object SIZE; default 16M */
	char *cache_dir;	   /* cache_dir PATH SIZE; default none (NULL). Start only */
	uint64_t cache_dir_size;
	bool sendfile;		       /* sendfile on|off; default off */
	struct conf_cidr *purge_allow; /* cache_purge_allow CIDR|all|none...; default none */
	size_t npurge_allow;

	struct conf_backend *backends; /* backend NAME ADDR:PORT... [balance ...] (repeatable) */
	size_t nbackends;
	struct conf_route *routes; /* route [HOST][/PREFIX] BACKEND (repeatable) */
	size_t nroutes;
	bool forward;			  /* forward on|off; default on */
	uint32_t backend_fail_timeout_ms; /* backend_fail_timeout DURATION; default 10s */
};

/* Built-in defaults (what `sluice` runs with no -c). Never fails. refs = 1. */
struct conf *conf_defaults(void);

/* Load and validate a file. On success returns 0 and *out (refs = 1). On
 * failure returns -1, sets *out to NULL and writes "FILE:LINE: message" into
 * err (NUL-terminated, truncated to errlen; err may be NULL if errlen is 0).
 * FILE is the file the error is in (an included file names itself). When the
 * top-level file itself cannot be read the message is "FILE: message" (there
 * is no line). Runs on the main thread only (reads files, globs).
 *
 * Lines may end in LF or CRLF; any other control byte (NUL, a bare CR, ...)
 * except TAB is an error, as is a line longer than CONF_LINE_MAX bytes or a
 * file larger than CONF_FILE_MAX. A file is read as a whole before parsing. */
int conf_load_file(const char *path, struct conf **out, char *err, size_t errlen) SL_WUR;

/* The same from a string; `name` is used as FILE in messages. `include` is
 * resolved relative to the current directory. For tests and the fuzzer. */
int conf_load_string(const char *text, size_t len, const char *name, struct conf **out, char *err,
		     size_t errlen) SL_WUR;

/* Allow or forbid `include` for the whole process (default: allowed). The
 * fuzzer forbids it so that input cannot make it read arbitrary files; a
 * forbidden include is an error at its line. Not thread-safe: set it once
 * before loading. */
void conf_set_includes_allowed(bool allowed);

/* Name of directive i in table order, or NULL when i is past the end. Lets a
 * test check that docs/config.md documents every directive. */
const char *conf_directive_name(size_t i);

/* Take a reference (thread-safe). */
struct conf *conf_ref(struct conf *c);
/* Drop a reference and set *cp to NULL; frees on the last one. NULL is ok. */
void conf_unref(struct conf **cp);

/* Policy helpers (pure). */
/* Whether a client address may PURGE (cache_purge_allow). */
bool conf_purge_allowed(const struct conf *c, const struct sockaddr *sa);
bool conf_client_allowed(const struct conf *c, const struct sockaddr *sa);
bool conf_connect_port_allowed(const struct conf *c, uint16_t port);
/* Match one address against one CIDR (IPv4-mapped IPv6 addresses match IPv4 CIDRs,
 * and only those; a non-IP address never matches). */
bool conf_cidr_match(const struct conf_cidr *cidr, const struct sockaddr *sa);

/* Parse helpers, exposed for unit tests. Each returns 0 or -1. */
/* 123, 64K, 256M, 10G, 1T (powers of 1024), optional trailing B; suffixes in
 * either case. Digits only before the suffix; overflow past UINT64_MAX fails. */
int conf_parse_size(const char *s, uint64_t *out) SL_WUR;
/* 500ms, 30s, 5m, 2h, 1d; bare number = seconds; suffixes in either case; no
 * fractions or compounds; overflow fails. 0 parses (directives reject it). */
int conf_parse_duration_ms(const char *s, uint64_t *out) SL_WUR;
/* IPv4:PORT, [IPv6]:PORT, *:PORT (= 0.0.0.0), PORT (= 0.0.0.0:PORT); port
 * 1..65535; no host names, no zone ids. Fills ss, len and text. */
int conf_parse_addr(const char *s, struct conf_addr *out) SL_WUR;
/* ADDR, ADDR/PREFIX; "all" is not accepted here; host bits set is an error. A v6 CIDR
 * inside ::ffff:0:0/96 (prefix >= 96) is stored as the IPv4 CIDR it stands for. */
int conf_parse_cidr(const char *s, struct conf_cidr *out) SL_WUR;

#endif
