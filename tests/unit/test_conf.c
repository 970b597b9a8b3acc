#include "conf/conf.h"
#include "buf/limits.h"
#include "unit.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static char err[512];

/* Load text as "t.conf"; NULL on error (then err holds the message). */
static struct conf *load(const char *text)
{
	struct conf *c = NULL;

	if (conf_load_string(text, strlen(text), "t.conf", &c, err, sizeof(err)) < 0)
		return NULL;
	return c;
}

/* Load text that must fail; returns the message. */
static const char *load_err(const char *text)
{
	struct conf *c = load(text);

	if (c != NULL) {
		conf_unref(&c);
		return "(loaded fine)";
	}
	return err;
}

static struct sockaddr_storage sa_of(const char *ip)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, ip, &s6->sin6_addr) != 1)
			abort();
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		if (inet_pton(AF_INET, ip, &s4->sin_addr) != 1)
			abort();
	}
	return ss;
}

static bool allowed(const struct conf *c, const char *ip)
{
	struct sockaddr_storage ss = sa_of(ip);

	return conf_client_allowed(c, (struct sockaddr *)&ss);
}

static bool cidr_match(const char *cidr, const char *ip)
{
	struct conf_cidr cc;
	struct sockaddr_storage ss = sa_of(ip);

	if (conf_parse_cidr(cidr, &cc) < 0)
		abort();
	return conf_cidr_match(&cc, (struct sockaddr *)&ss);
}

/* ---- temporary files for include tests ---- */

static char tmpdir[64];
static char made[64][256];
static int nmade;

static void mk_dir(const char *rel)
{
	snprintf(made[nmade], sizeof(made[0]), "%s/%s", tmpdir, rel);
	if (mkdir(made[nmade], 0700) < 0)
		abort();
	nmade++;
}

/* Write rel under tmpdir; returns the full path (valid until cleanup). */
static const char *mk_file(const char *rel, const char *text)
{
	char *p = made[nmade++];
	FILE *f;

	snprintf(p, sizeof(made[0]), "%s/%s", tmpdir, rel);
	f = fopen(p, "w");
	if (f == NULL)
		abort();
	fputs(text, f);
	fclose(f);
	return p;
}

static void tmp_setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/sluice-conf-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		abort();
	nmade = 0;
}

static void tmp_cleanup(void)
{
	while (nmade > 0) {
		const char *p = made[--nmade];

		if (unlink(p) < 0)
			(void)rmdir(p);
	}
	(void)rmdir(tmpdir);
}

static const char *load_file_err(const char *path)
{
	struct conf *c = NULL;

	if (conf_load_file(path, &c, err, sizeof(err)) == 0) {
		conf_unref(&c);
		return "(loaded fine)";
	}
	CHECK(c == NULL);
	return err;
}

/* ---- tests ---- */

TEST(defaults_are_safe_and_documented)
{
	struct conf *c = conf_defaults();

	CHECK(c->magic == CONF_MAGIC);
	CHECK_INT(atomic_load(&c->refs), 1);
	CHECK(c->source == NULL);
	CHECK_INT(c->nlisten, 1);
	CHECK_STR(c->listen[0].text, "127.0.0.1:3128");
	CHECK_INT(c->listen[0].ss.ss_family, AF_INET);
	CHECK_INT(c->listen[0].len, sizeof(struct sockaddr_in));
	CHECK_INT(ntohs(((struct sockaddr_in *)&c->listen[0].ss)->sin_port), 3128);
	CHECK_INT(c->threads, 0);
	CHECK_INT(c->nallow, 2);
	CHECK(allowed(c, "127.0.0.1"));
	CHECK(allowed(c, "127.255.1.2"));
	CHECK(allowed(c, "::1"));
	CHECK(allowed(c, "::ffff:127.0.0.1"));
	CHECK(!allowed(c, "10.0.0.1"));
	CHECK(!allowed(c, "::2"));
	CHECK(!allowed(c, "128.0.0.1"));
	CHECK_INT(c->nconnect_ports, 1);
	CHECK(conf_connect_port_allowed(c, 443));
	CHECK(!conf_connect_port_allowed(c, 80));
	CHECK(!conf_connect_port_allowed(c, 22));
	CHECK(c->via);
	CHECK(!c->forwarded_for);
	CHECK(c->visible_hostname != NULL && c->visible_hostname[0] != '\0');
	CHECK(c->access_log != NULL && strcmp(c->access_log, "stderr") == 0);
	CHECK_INT(c->access_log_format, ALOG_SQUID);
	CHECK_INT(c->log_level, LOG_INFO);
	CHECK_INT(c->connect_timeout_ms, 10000);
	CHECK_INT(c->read_timeout_ms, 60000);
	CHECK_INT(c->client_idle_timeout_ms, 60000);
	CHECK_INT(c->upstream_idle_timeout_ms, 30000);
	CHECK(!c->half_closed_clients);
	CHECK_INT(c->tunnel_idle_timeout_ms, 600000);
	CHECK_INT(c->shutdown_timeout_ms, 10000);
	CHECK_INT(c->max_connections, MAX_CONNECTIONS_DEFAULT);
	CHECK_INT(c->max_connections_per_client, MAX_CONNECTIONS_DEFAULT / 4);
	CHECK_INT(c->max_header_size, MAX_HEADER_SIZE_DEFAULT);
	CHECK_INT(c->max_headers, MAX_HEADERS_DEFAULT);
	CHECK_INT(c->max_request_line, MAX_REQUEST_LINE_DEFAULT);
	CHECK(c->dns_servers == NULL);
	CHECK_INT(c->dns_cache_size, DNS_CACHE_SIZE_DEFAULT);
	conf_unref(&c);
	CHECK(c == NULL);
}

TEST(empty_file_is_the_defaults)
{
	struct conf *c = load("");

	CHECK(c != NULL);
	if (c) {
		CHECK_STR(c->source, "t.conf");
		CHECK_STR(c->listen[0].text, "127.0.0.1:3128");
		CHECK_INT(c->nallow, 2);
		conf_unref(&c);
	}
	c = load("\n\n   \t\n# only a comment\n   # indented comment\n");
	CHECK(c != NULL);
	conf_unref(&c);
}

TEST(comments_blank_lines_and_crlf)
{
	struct conf *c = load("# header\r\n"
			      "\r\n"
			      "via off # trailing comment\r\n"
			      "forwarded_for on#no space needed\n"
			      "\tthreads\t4\t\n"
			      "log_level debug");
	CHECK(c != NULL);
	if (c) {
		CHECK(!c->via);
		CHECK(c->forwarded_for);
		CHECK_INT(c->threads, 4);
		CHECK_INT(c->log_level, LOG_DEBUG);
		conf_unref(&c);
	}
}

TEST(quoting)
{
	struct conf *c = load("access_log \"/tmp/with space/a.log\" combined\n"
			      "visible_hostname \"proxy.example\"\n");
	CHECK(c != NULL);
	if (c) {
		CHECK_STR(c->access_log, "/tmp/with space/a.log");
		CHECK_INT(c->access_log_format, ALOG_COMBINED);
		CHECK_STR(c->visible_hostname, "proxy.example");
		conf_unref(&c);
	}
	c = load("access_log \"/tmp/a\\\"b\\\\c#d\" # comment \"x\n");
	CHECK(c != NULL);
	if (c) {
		CHECK_STR(c->access_log, "/tmp/a\"b\\c#d");
		conf_unref(&c);
	}
	/* A quoted directive name works like an unquoted one. */
	c = load("\"via\" \"off\"\n");
	CHECK(c != NULL);
	if (c) {
		CHECK(!c->via);
		conf_unref(&c);
	}
	/* Outside quotes a backslash is an ordinary byte. */
	c = load("access_log /tmp/a\\b\n");
	CHECK(c != NULL);
	if (c) {
		CHECK_STR(c->access_log, "/tmp/a\\b");
		conf_unref(&c);
	}
	CHECK_STR(load_err("via on\naccess_log \"/tmp/x\n"),
		  "t.conf:2: unterminated quoted string");
	CHECK_STR(load_err("access_log \"/tmp/x\\"), "t.conf:1: unterminated quoted string");
	CHECK_STR(load_err("access_log \"/tmp/\\n\""),
		  "t.conf:1: unknown escape \\n in quoted string (only \\\" and \\\\)");
	CHECK_STR(load_err("access_log /tmp/\"x\""),
		  "t.conf:1: unexpected quote inside an argument (quote the whole argument)");
	CHECK_STR(load_err("access_log \"/tmp/x\"y"),
		  "t.conf:1: expected a space after the closing quote");
	CHECK_STR(load_err("access_log \"\""),
		  "t.conf:1: access_log: expected PATH, stderr or off, got \"\"");
	CHECK_STR(load_err("\"\" x"), "t.conf:1: unknown directive \"\"");
}

TEST(bad_bytes_and_long_lines)
{
	char big[CONF_LINE_MAX + 64];
	struct conf *c;

	CHECK_STR(load_err("via on\nvia\toff\x01\n"),
		  "t.conf:2: control character 0x01 not allowed");
	CHECK_STR(load_err("via on\rvia off\n"), "t.conf:1: control character 0x0d not allowed");
	CHECK_STR(load_err("via on\x7f\n"), "t.conf:1: control character 0x7f not allowed");
	CHECK_STR(load_err("# comment \x1b[31m\n"), "t.conf:1: control character 0x1b not allowed");
	{
		static const char nul[] = "via on\n\nvia\0off\n";
		struct conf *n = NULL;

		CHECK_INT(conf_load_string(nul, sizeof(nul) - 1, "n.conf", &n, err, sizeof(err)),
			  -1);
		CHECK(n == NULL);
		CHECK_STR(err, "n.conf:3: NUL byte not allowed");
	}
	/* A line of exactly CONF_LINE_MAX bytes is fine; one more is not. */
	memset(big, ' ', sizeof(big));
	memcpy(big, "via off", 7);
	big[CONF_LINE_MAX] = '\n';
	big[CONF_LINE_MAX + 1] = '\0';
	c = load(big);
	CHECK(c != NULL);
	if (c) {
		CHECK(!c->via);
		conf_unref(&c);
	}
	big[CONF_LINE_MAX] = ' ';
	big[CONF_LINE_MAX + 1] = '\n';
	big[CONF_LINE_MAX + 2] = '\0';
	CHECK_STR(load_err(big), "t.conf:1: line longer than 4096 bytes");
	/* UTF-8 is data, not control. */
	c = load("access_log \"/tmp/журнал.log\"\n");
	CHECK(c != NULL);
	conf_unref(&c);
}

TEST(unknown_directive_and_argument_counts)
{
	CHECK_STR(load_err("via on\n\n\nlisen 1.2.3.4:80\n"),
		  "t.conf:4: unknown directive \"lisen\"");
	CHECK_STR(load_err("Listen 80\n"), "t.conf:1: unknown directive \"Listen\"");
	CHECK_STR(load_err("listen\n"),
		  "t.conf:1: listen: expected 1 argument, got 0 (usage: listen ADDR:PORT)");
	CHECK_STR(load_err("listen 80 81\n"),
		  "t.conf:1: listen: expected 1 argument, got 2 (usage: listen ADDR:PORT)");
	CHECK_STR(load_err("allow\n"), "t.conf:1: allow: expected at least 1 argument, got 0 "
				       "(usage: allow CIDR|all|none...)");
	CHECK_STR(load_err("access_log a squid x\n"),
		  "t.conf:1: access_log: expected 1 to 2 "
		  "arguments, got 3 (usage: access_log PATH|stderr|off [squid|combined])");
	CHECK_STR(load_err("include\n"),
		  "t.conf:1: include: expected 1 argument, got 0 (usage: include PATH)");
}

TEST(every_directive_once)
{
	struct conf *c = load("listen 0.0.0.0:8080\n"
			      "threads 8\n"
			      "allow 10.0.0.0/8\n"
			      "connect_ports 443 8443\n"
			      "via off\n"
			      "forwarded_for on\n"
			      "visible_hostname proxy-1.example.org\n"
			      "access_log /var/log/sluice/access.log combined\n"
			      "log_level warn\n"
			      "connect_timeout 5s\n"
			      "read_timeout 2m\n"
			      "client_idle_timeout 90\n"
			      "upstream_idle_timeout 1500ms\n"
			      "half_closed_clients on\n"
			      "tunnel_idle_timeout 1h\n"
			      "shutdown_timeout 1d\n"
			      "max_connections 500\n"
			      "max_connections_per_client 20\n"
			      "max_header_size 16K\n"
			      "max_headers 50\n"
			      "max_request_line 4k\n"
			      "dns_servers 1.1.1.1 [2606:4700::1111]:5353\n"
			      "dns_cache_size 0\n");
	CHECK(c != NULL);
	if (!c) {
		printf("    %s\n", err);
		return;
	}
	CHECK_INT(c->nlisten, 1);
	CHECK_STR(c->listen[0].text, "0.0.0.0:8080");
	CHECK_INT(c->threads, 8);
	CHECK_INT(c->nallow, 1);
	CHECK(allowed(c, "10.9.8.7"));
	CHECK(!allowed(c, "127.0.0.1"));
	CHECK_INT(c->nconnect_ports, 2);
	CHECK(conf_connect_port_allowed(c, 8443));
	CHECK(!c->via);
	CHECK(c->forwarded_for);
	CHECK_STR(c->visible_hostname, "proxy-1.example.org");
	CHECK_STR(c->access_log, "/var/log/sluice/access.log");
	CHECK_INT(c->access_log_format, ALOG_COMBINED);
	CHECK_INT(c->log_level, LOG_WARN);
	CHECK_INT(c->connect_timeout_ms, 5000);
	CHECK_INT(c->read_timeout_ms, 120000);
	CHECK_INT(c->client_idle_timeout_ms, 90000);
	CHECK_INT(c->upstream_idle_timeout_ms, 1500);
	CHECK(c->half_closed_clients);
	CHECK_INT(c->tunnel_idle_timeout_ms, 3600000);
	CHECK_INT(c->shutdown_timeout_ms, 86400000);
	CHECK_INT(c->max_connections, 500);
	CHECK_INT(c->max_connections_per_client, 20);
	CHECK_INT(c->max_header_size, 16384);
	CHECK_INT(c->max_headers, 50);
	CHECK_INT(c->max_request_line, 4096);
	CHECK_STR(c->dns_servers, "1.1.1.1:53,[2606:4700::1111]:5353");
	CHECK_INT(c->dns_cache_size, 0);
	conf_unref(&c);
}

TEST(last_one_wins)
{
	struct conf *c = load("via off\nvia on\nthreads 2\nthreads auto\n"
			      "access_log /tmp/a.log combined\naccess_log /tmp/b.log\n"
			      "dns_servers 1.1.1.1\ndns_servers 9.9.9.9\n");
	CHECK(c != NULL);
	if (c) {
		CHECK(c->via);
		CHECK_INT(c->threads, 0);
		CHECK_STR(c->access_log, "/tmp/b.log");
		CHECK_INT(c->access_log_format, ALOG_SQUID);
		CHECK_STR(c->dns_servers, "9.9.9.9:53");
		conf_unref(&c);
	}
}

TEST(listen_directive)
{
	struct conf *c = load("listen 3128\nlisten [::1]:8080\nlisten *:80\n"
			      "listen 192.168.1.1:65535\n");

	CHECK(c != NULL);
	if (c) {
		CHECK_INT(c->nlisten, 4);
		CHECK_STR(c->listen[0].text, "0.0.0.0:3128");
		CHECK_STR(c->listen[1].text, "[::1]:8080");
		CHECK_INT(c->listen[1].ss.ss_family, AF_INET6);
		CHECK_INT(c->listen[1].len, sizeof(struct sockaddr_in6));
		CHECK_INT(ntohs(((struct sockaddr_in6 *)&c->listen[1].ss)->sin6_port), 8080);
		CHECK_STR(c->listen[2].text, "0.0.0.0:80");
		CHECK_STR(c->listen[3].text, "192.168.1.1:65535");
		conf_unref(&c);
	}
	CHECK_STR(load_err("via on\nvia on\nlisten 300000\n"),
		  "t.conf:3: listen: expected ADDR:PORT, got \"300000\"");
	CHECK_STR(load_err("listen 0\n"), "t.conf:1: listen: expected ADDR:PORT, got \"0\"");
	CHECK_STR(load_err("listen localhost:80\n"),
		  "t.conf:1: listen: expected ADDR:PORT, got \"localhost:80\"");
	CHECK_STR(load_err("listen ::1:80\n"),
		  "t.conf:1: listen: expected ADDR:PORT, got "
		  "\"::1:80\" (an IPv6 address needs brackets: [ADDR]:PORT)");
	CHECK_STR(load_err("listen 80\nlisten 0.0.0.0:80\n"),
		  "t.conf:2: listen: 0.0.0.0:80 is given twice");
	{
		char text[CONF_MAX_LISTEN * 24 + 64];
		size_t o = 0;

		for (int i = 0; i <= CONF_MAX_LISTEN; i++)
			o += (size_t)snprintf(text + o, sizeof(text) - o, "listen %d\n", 1000 + i);
		CHECK_STR(load_err(text), "t.conf:65: listen: too many addresses (at most 64)");
	}
}

TEST(threads_directive)
{
	struct conf *c = load("threads 256\n");

	CHECK(c != NULL);
	if (c) {
		CHECK_INT(c->threads, 256);
		conf_unref(&c);
	}
	CHECK_STR(load_err("threads 0\n"),
		  "t.conf:1: threads: expected a number 1..256 or auto, got \"0\"");
	CHECK_STR(load_err("threads 257\n"),
		  "t.conf:1: threads: expected a number 1..256 or auto, got \"257\"");
	CHECK_STR(load_err("threads -1\n"),
		  "t.conf:1: threads: expected a number 1..256 or auto, got \"-1\"");
	CHECK_STR(load_err("threads Auto\n"),
		  "t.conf:1: threads: expected a number 1..256 or auto, got \"Auto\"");
}

TEST(allow_directive)
{
	struct conf *c = load("allow 10.0.0.0/8 192.168.0.0/16\nallow 2001:db8::/32\n");

	CHECK(c != NULL);
	if (c) {
		CHECK_INT(c->nallow, 3);
		CHECK(allowed(c, "10.1.2.3"));
		CHECK(allowed(c, "192.168.255.1"));
		CHECK(allowed(c, "2001:db8::5"));
		CHECK(allowed(c, "::ffff:10.1.2.3"));
		CHECK(!allowed(c, "127.0.0.1"));
		CHECK(!allowed(c, "::1"));
		conf_unref(&c);
	}
	c = load("allow all\n");
	CHECK(c != NULL);
	if (c) {
		CHECK_INT(c->nallow, 2);
		CHECK(allowed(c, "8.8.8.8"));
		CHECK(allowed(c, "2001:db8::1"));
		CHECK(allowed(c, "::ffff:8.8.8.8"));
		conf_unref(&c);
	}
	c = load("allow none\n");
	CHECK(c != NULL);
	if (c) {
		CHECK_INT(c->nallow, 0);
		CHECK(!allowed(c, "127.0.0.1"));
		conf_unref(&c);
	}
	/* none empties the list wherever it appears; later lines add again. */
	c = load("allow 10.0.0.0/8\nallow none\nallow 172.16.0.0/12\n");
	CHECK(c != NULL);
	if (c) {
		CHECK_INT(c->nallow, 1);
		CHECK(allowed(c, "172.16.0.1"));
		CHECK(!allowed(c, "10.0.0.1"));
		conf_unref(&c);
	}
	/* A single address is a /32 or /128. */
	c = load("allow 10.0.0.1 fe80::1\n");
	CHECK(c != NULL);
	if (c) {
		CHECK(allowed(c, "10.0.0.1"));
		CHECK(!allowed(c, "10.0.0.2"));
		CHECK(allowed(c, "fe80::1"));
		CHECK(!allowed(c, "fe80::2"));
		conf_unref(&c);
	}
	CHECK_STR(load_err("allow 10.0.0.1/8\n"),
		  "t.conf:1: allow: 10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?");
	CHECK_STR(load_err("allow 2001:db8::1/32\n"),
		  "t.conf:1: allow: 2001:db8::1/32 has host bits set; did you mean 2001:db8::/32?");
	CHECK_STR(load_err("allow 10.0.0.0/33\n"), "t.conf:1: allow: expected ADDR, ADDR/PREFIX, "
						   "all or none, got \"10.0.0.0/33\"");
	CHECK_STR(load_err("allow 10.0.0.0/\n"), "t.conf:1: allow: expected ADDR, ADDR/PREFIX, "
						 "all or none, got \"10.0.0.0/\"");
	CHECK_STR(load_err("allow example.com\n"), "t.conf:1: allow: expected ADDR, ADDR/PREFIX, "
						   "all or none, got \"example.com\"");
	CHECK_STR(load_err("allow none 10.0.0.0/8\n"),
		  "t.conf:1: allow: none must be alone on its line");
}

TEST(connect_ports_directive)
{
	struct conf *c = load("connect_ports 443 8000-8100\nconnect_ports 563\n");

	CHECK(c != NULL);
	if (c) {
		CHECK_INT(c->nconnect_ports, 3);
		CHECK(conf_connect_port_allowed(c, 443));
		CHECK(conf_connect_port_allowed(c, 8000));
		CHECK(conf_connect_port_allowed(c, 8050));
		CHECK(conf_connect_port_allowed(c, 8100));
		CHECK(!conf_connect_port_allowed(c, 8101));
		CHECK(conf_connect_port_allowed(c, 563));
		CHECK(!conf_connect_port_allowed(c, 80));
		conf_unref(&c);
	}
	c = load("connect_ports any\n");
	CHECK(c != NULL);
	if (c) {
		CHECK(conf_connect_port_allowed(c, 1));
		CHECK(conf_connect_port_allowed(c, 65535));
		CHECK(!conf_connect_port_allowed(c, 0));
		conf_unref(&c);
	}
	c = load("connect_ports none\n");
	CHECK(c != NULL);
	if (c) {
		CHECK_INT(c->nconnect_ports, 0);
		CHECK(!conf_connect_port_allowed(c, 443));
		conf_unref(&c);
	}
	CHECK_STR(load_err("connect_ports 0\n"), "t.conf:1: connect_ports: expected PORT or LO-HI "
						 "(ports 1..65535), any or none, got \"0\"");
	CHECK_STR(load_err("connect_ports 65536\n"),
		  "t.conf:1: connect_ports: expected PORT or "
		  "LO-HI (ports 1..65535), any or none, got \"65536\"");
	CHECK_STR(load_err("connect_ports 1-\n"), "t.conf:1: connect_ports: expected PORT or LO-HI "
						  "(ports 1..65535), any or none, got \"1-\"");
	CHECK_STR(load_err("connect_ports -5\n"), "t.conf:1: connect_ports: expected PORT or LO-HI "
						  "(ports 1..65535), any or none, got \"-5\"");
	CHECK_STR(load_err("connect_ports 500-400\n"),
		  "t.conf:1: connect_ports: range \"500-400\" ends before it starts");
	CHECK_STR(load_err("connect_ports 443 none\n"),
		  "t.conf:1: connect_ports: none must be alone on its line");
}

TEST(bool_and_hostname_directives)
{
	CHECK_STR(load_err("via yes\n"), "t.conf:1: via: expected on or off, got \"yes\"");
	CHECK_STR(load_err("forwarded_for ON\n"),
		  "t.conf:1: forwarded_for: expected on or off, got \"ON\"");
	CHECK_STR(load_err("visible_hostname a/b\n"),
		  "t.conf:1: visible_hostname: expected a host "
		  "name (1..253 letters, digits, '-', '.', '_'), got \"a/b\"");
	CHECK_STR(load_err("visible_hostname \"a b\"\n"),
		  "t.conf:1: visible_hostname: expected a "
		  "host name (1..253 letters, digits, '-', '.', '_'), got \"a b\"");
	CHECK_STR(load_err("visible_hostname \"\"\n"),
		  "t.conf:1: visible_hostname: expected a "
		  "host name (1..253 letters, digits, '-', '.', '_'), got \"\"");
}

TEST(access_log_and_log_level_directives)
{
	struct conf *c = load("access_log off\n");

	CHECK(c != NULL);
	if (c) {
		CHECK(c->access_log == NULL);
		conf_unref(&c);
	}
	c = load("access_log off\naccess_log stderr combined\n");
	CHECK(c != NULL);
	if (c) {
		CHECK_STR(c->access_log, "stderr");
		CHECK_INT(c->access_log_format, ALOG_COMBINED);
		conf_unref(&c);
	}
	CHECK_STR(load_err("access_log off squid\n"), "t.conf:1: access_log: off takes no format");
	CHECK_STR(load_err("access_log /tmp/x common\n"),
		  "t.conf:1: access_log: expected squid or combined, got \"common\"");
	CHECK_STR(load_err("log_level verbose\n"),
		  "t.conf:1: log_level: expected error, warn, info or debug, got \"verbose\"");
	for (int i = 0; i < 4; i++) {
		static const char *const names[] = {"error", "warn", "info", "debug"};
		static const enum log_level lv[] = {LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG};
		char text[64];

		snprintf(text, sizeof(text), "log_level %s\n", names[i]);
		c = load(text);
		CHECK(c != NULL);
		if (c) {
			CHECK_INT(c->log_level, lv[i]);
			conf_unref(&c);
		}
	}
}

TEST(duration_directives)
{
	static const char *const names[] = {"connect_timeout",	   "read_timeout",
					    "client_idle_timeout", "upstream_idle_timeout",
					    "tunnel_idle_timeout", "shutdown_timeout"};
	char text[128], want[256];

	for (size_t i = 0; i < SL_ARRAY_LEN(names); i++) {
		struct conf *c;

		snprintf(text, sizeof(text), "%s 1ms\n", names[i]);
		c = load(text);
		CHECK(c != NULL);
		conf_unref(&c);
		snprintf(text, sizeof(text), "%s 0\n", names[i]);
		snprintf(want, sizeof(want),
			 "t.conf:1: %s: expected a duration 1ms..1d "
			 "(e.g. 500ms, 30s, 5m, 2h), got \"0\"",
			 names[i]);
		CHECK_STR(load_err(text), want);
		snprintf(text, sizeof(text), "%s 86401s\n", names[i]);
		snprintf(want, sizeof(want),
			 "t.conf:1: %s: expected a duration 1ms..1d "
			 "(e.g. 500ms, 30s, 5m, 2h), got \"86401s\"",
			 names[i]);
		CHECK_STR(load_err(text), want);
	}
	CHECK_STR(load_err("read_timeout 5x\n"), "t.conf:1: read_timeout: expected a duration "
						 "1ms..1d (e.g. 500ms, 30s, 5m, 2h), got \"5x\"");
}

TEST(busy_poll_directive)
{
	static const struct {
		const char *text;
		uint32_t us, window_us;
	} ok[] = {
		{"", 0, 0},		       /* off by default */
		{"busy_poll 20us\n", 20, 200}, /* window: 10 intervals */
		{"busy_poll 1ms 1s\n", 1000, 1000000},
		{"busy_poll 50US 50us\nbusy_poll off\n", 0, 0},
	};
	static const struct {
		const char *text, *err;
	} bad[] = {
		{"on", "expected off or an interval 10us..10ms (e.g. 20us), got \"on\""},
		{"0us", "expected off or an interval 10us..10ms (e.g. 20us), got \"0us\""},
		{"9us", "expected off or an interval 10us..10ms (e.g. 20us), got \"9us\""},
		{"20", "expected off or an interval 10us..10ms (e.g. 20us), got \"20\""},
		{"11ms", "expected off or an interval 10us..10ms (e.g. 20us), got \"11ms\""},
		{"20us 10us", "expected a window 20us..1s (at least the interval), got \"10us\""},
		{"20us 2s", "expected a window 20us..1s (at least the interval), got \"2s\""},
		{"off 1ms", "off takes no window"},
		{"20us 1ms 2ms",
		 "expected 1 to 2 arguments, got 3 (usage: busy_poll off|INTERVAL [WINDOW])"},
	};
	char text[64], want[160];

	for (size_t i = 0; i < SL_ARRAY_LEN(ok); i++) {
		struct conf *c = load(ok[i].text);
		CHECK(c != NULL);
		if (c == NULL)
			continue;
		CHECK_INT(c->busy_poll_us, ok[i].us);
		CHECK_INT(c->busy_poll_window_us, ok[i].window_us);
		conf_unref(&c);
	}
	for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
		snprintf(text, sizeof(text), "busy_poll %s\n", bad[i].text);
		snprintf(want, sizeof(want), "t.conf:1: busy_poll: %s", bad[i].err);
		CHECK_STR(load_err(text), want);
	}
}

TEST(count_and_size_directives)
{
	struct conf *c = load("max_connections 1000000\nmax_connections_per_client 0\n"
			      "max_header_size 64K\nmax_headers 1000\nmax_request_line 64K\n"
			      "dns_cache_size 1000000\n");
	CHECK(c != NULL);
	if (c) {
		CHECK_INT(c->max_connections, 1000000);
		CHECK_INT(c->max_connections_per_client, 0);
		CHECK_INT(c->max_header_size, 65536);
		CHECK_INT(c->max_headers, 1000);
		CHECK_INT(c->max_request_line, 65536);
		CHECK_INT(c->dns_cache_size, 1000000);
		conf_unref(&c);
	}
	c = load("max_header_size 1K\nmax_request_line 256\n");
	CHECK(c != NULL);
	conf_unref(&c);
	CHECK_STR(load_err("max_connections 0\n"),
		  "t.conf:1: max_connections: expected a number 1..1000000, got \"0\"");
	CHECK_STR(load_err("max_connections 1000001\n"),
		  "t.conf:1: max_connections: expected a number 1..1000000, got \"1000001\"");
	CHECK_STR(load_err("max_connections 99999999999999999999999\n"),
		  "t.conf:1: "
		  "max_connections: expected a number 1..1000000, got \"99999999999999999999999\"");
	CHECK_STR(load_err("max_connections_per_client 1e3\n"),
		  "t.conf:1: "
		  "max_connections_per_client: expected a number 0..1000000 or auto, got \"1e3\"");
	/* auto, said or not: a quarter of max_connections, in any order. */
	c = load("max_connections 16\n");
	CHECK(c && c->max_connections_per_client == 4);
	conf_unref(&c);
	c = load("max_connections_per_client auto\nmax_connections 3\n");
	CHECK(c && c->max_connections_per_client == 1);
	conf_unref(&c);
	c = load("max_connections_per_client 7\nmax_connections 16\n");
	CHECK(c && c->max_connections_per_client == 7);
	conf_unref(&c);
	CHECK_STR(load_err("max_headers 0\n"),
		  "t.conf:1: max_headers: expected a number 1..1000, got \"0\"");
	CHECK_STR(load_err("dns_cache_size 1000001\n"),
		  "t.conf:1: dns_cache_size: expected a number 0..1000000, got \"1000001\"");
	CHECK_STR(load_err("max_header_size 1023\n"),
		  "t.conf:1: max_header_size: expected a size "
		  "1K..64K (bytes, or with K, M, G), got \"1023\"");
	CHECK_STR(load_err("max_header_size 65537\n"),
		  "t.conf:1: max_header_size: expected a size "
		  "1K..64K (bytes, or with K, M, G), got \"65537\"");
	CHECK_STR(load_err("max_request_line 255\n"),
		  "t.conf:1: max_request_line: expected a size "
		  "256..64K (bytes, or with K, M, G), got \"255\"");
}

TEST(max_request_line_is_checked_against_max_header_size)
{
	struct conf *c;

	/* Checked after the whole file: the order of the two lines does not matter. */
	c = load("max_request_line 16K\nmax_header_size 16K\n");
	CHECK(c != NULL);
	conf_unref(&c);
	CHECK_STR(load_err("via on\nmax_request_line 16K\nmax_header_size 8K\nvia off\n"),
		  "t.conf:2: max_request_line: 16K is larger than max_header_size 8K "
		  "(set at t.conf:3)");
	CHECK_STR(load_err("max_request_line 33K\n"), "t.conf:1: max_request_line: 33K is larger "
						      "than max_header_size 32K (the default)");
	/* An unset max_request_line shrinks with max_header_size. */
	c = load("max_header_size 4K\n");
	CHECK(c != NULL);
	if (c) {
		CHECK_INT(c->max_request_line, 4096);
		conf_unref(&c);
	}
}

TEST(dns_servers_directive)
{
	struct conf *c = load("dns_servers 8.8.8.8 8.8.4.4:5353 2001:4860:4860::8888 [::1] "
			      "[2001:db8:0::0:1]:53\n");
	CHECK(c != NULL);
	if (c) {
		CHECK_STR(c->dns_servers, "8.8.8.8:53,8.8.4.4:5353,[2001:4860:4860::8888]:53,"
					  "[::1]:53,[2001:db8::1]:53");
		conf_unref(&c);
	}
	static const char *const bad[] = {
		"dns.google", "8.8.8.8:0", "8.8.8.8:70000", "[::1",	    "[::1]x", "[::1]:",
		"1.2.3",      "::1:53x",   "8.8.8.8:",	    "[1.2.3.4]:53", ""};
	for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
		char text[64], want[200];

		snprintf(text, sizeof(text), "dns_servers 1.1.1.1 \"%s\"\n", bad[i]);
		snprintf(want, sizeof(want),
			 "t.conf:1: dns_servers: expected IPv4[:PORT], IPv6 or "
			 "[IPv6]:PORT, got \"%s\"",
			 bad[i]);
		CHECK_STR(load_err(text), want);
	}
}

TEST(parse_size_edge_cases)
{
	uint64_t v = 0;

	CHECK_INT(conf_parse_size("0", &v), 0);
	CHECK_INT(v, 0);
	CHECK_INT(conf_parse_size("123", &v), 0);
	CHECK_INT(v, 123);
	CHECK_INT(conf_parse_size("123B", &v), 0);
	CHECK_INT(v, 123);
	CHECK_INT(conf_parse_size("64K", &v), 0);
	CHECK_INT(v, 65536);
	CHECK_INT(conf_parse_size("64k", &v), 0);
	CHECK_INT(v, 65536);
	CHECK_INT(conf_parse_size("64KB", &v), 0);
	CHECK_INT(v, 65536);
	CHECK_INT(conf_parse_size("64kb", &v), 0);
	CHECK_INT(v, 65536);
	CHECK_INT(conf_parse_size("256M", &v), 0);
	CHECK_INT(v, 256ull << 20);
	CHECK_INT(conf_parse_size("10G", &v), 0);
	CHECK(v == 10ull << 30);
	CHECK_INT(conf_parse_size("1T", &v), 0);
	CHECK(v == 1ull << 40);
	CHECK_INT(conf_parse_size("18446744073709551615", &v), 0);
	CHECK(v == UINT64_MAX);
	CHECK_INT(conf_parse_size("16777215T", &v), 0);
	CHECK(v == 16777215ull << 40);
	CHECK_INT(conf_parse_size("16777216T", &v), -1);
	CHECK_INT(conf_parse_size("18446744073709551616", &v), -1);
	CHECK_INT(conf_parse_size("", &v), -1);
	CHECK_INT(conf_parse_size("K", &v), -1);
	CHECK_INT(conf_parse_size("B", &v), -1);
	CHECK_INT(conf_parse_size("-1", &v), -1);
	CHECK_INT(conf_parse_size("+1", &v), -1);
	CHECK_INT(conf_parse_size(" 1", &v), -1);
	CHECK_INT(conf_parse_size("1 ", &v), -1);
	CHECK_INT(conf_parse_size("1.5K", &v), -1);
	CHECK_INT(conf_parse_size("1KK", &v), -1);
	CHECK_INT(conf_parse_size("1BB", &v), -1);
	CHECK_INT(conf_parse_size("1KiB", &v), -1);
	CHECK_INT(conf_parse_size("1P", &v), -1);
	CHECK_INT(conf_parse_size("0x10", &v), -1);
}

TEST(parse_duration_edge_cases)
{
	uint64_t v = 0;

	CHECK_INT(conf_parse_duration_ms("0", &v), 0);
	CHECK_INT(v, 0);
	CHECK_INT(conf_parse_duration_ms("30", &v), 0);
	CHECK_INT(v, 30000);
	CHECK_INT(conf_parse_duration_ms("500ms", &v), 0);
	CHECK_INT(v, 500);
	CHECK_INT(conf_parse_duration_ms("30s", &v), 0);
	CHECK_INT(v, 30000);
	CHECK_INT(conf_parse_duration_ms("5m", &v), 0);
	CHECK_INT(v, 300000);
	CHECK_INT(conf_parse_duration_ms("2h", &v), 0);
	CHECK_INT(v, 7200000);
	CHECK_INT(conf_parse_duration_ms("1d", &v), 0);
	CHECK_INT(v, 86400000);
	CHECK_INT(conf_parse_duration_ms("10S", &v), 0);
	CHECK_INT(v, 10000);
	CHECK_INT(conf_parse_duration_ms("18446744073709551615ms", &v), 0);
	CHECK(v == UINT64_MAX);
	CHECK_INT(conf_parse_duration_ms("18446744073709551615s", &v), -1);
	CHECK_INT(conf_parse_duration_ms("18446744073709551615", &v), -1);
	CHECK_INT(conf_parse_duration_ms("213503982334602d", &v), -1);
	CHECK_INT(conf_parse_duration_ms("", &v), -1);
	CHECK_INT(conf_parse_duration_ms("s", &v), -1);
	CHECK_INT(conf_parse_duration_ms("-1s", &v), -1);
	CHECK_INT(conf_parse_duration_ms("1.5s", &v), -1);
	CHECK_INT(conf_parse_duration_ms("1 s", &v), -1);
	CHECK_INT(conf_parse_duration_ms("1sec", &v), -1);
	CHECK_INT(conf_parse_duration_ms("1h30m", &v), -1);
	CHECK_INT(conf_parse_duration_ms("1w", &v), -1);
	CHECK_INT(conf_parse_duration_ms("1us", &v), -1);
}

TEST(parse_addr_forms)
{
	struct conf_addr a;

	CHECK_INT(conf_parse_addr("127.0.0.1:3128", &a), 0);
	CHECK_STR(a.text, "127.0.0.1:3128");
	CHECK_INT(conf_parse_addr("[::1]:3128", &a), 0);
	CHECK_STR(a.text, "[::1]:3128");
	CHECK_INT(conf_parse_addr("[2001:DB8:0:0::1]:1", &a), 0);
	CHECK_STR(a.text, "[2001:db8::1]:1");
	CHECK_INT(conf_parse_addr("[::]:80", &a), 0);
	CHECK_STR(a.text, "[::]:80");
	CHECK_INT(conf_parse_addr("*:8080", &a), 0);
	CHECK_STR(a.text, "0.0.0.0:8080");
	CHECK_INT(conf_parse_addr("8080", &a), 0);
	CHECK_STR(a.text, "0.0.0.0:8080");
	CHECK_INT(a.ss.ss_family, AF_INET);
	CHECK_INT(conf_parse_addr("65535", &a), 0);
	CHECK_INT(conf_parse_addr("65536", &a), -1);
	CHECK_INT(conf_parse_addr("0", &a), -1);
	CHECK_INT(conf_parse_addr("1.2.3.4:0", &a), -1);
	CHECK_INT(conf_parse_addr("1.2.3.4", &a), -1);
	CHECK_INT(conf_parse_addr("1.2.3.4:", &a), -1);
	CHECK_INT(conf_parse_addr(":80", &a), -1);
	CHECK_INT(conf_parse_addr("1.2.3:80", &a), -1);
	CHECK_INT(conf_parse_addr("::1:80", &a), -1);
	CHECK_INT(conf_parse_addr("[::1]", &a), -1);
	CHECK_INT(conf_parse_addr("[::1]80", &a), -1);
	CHECK_INT(conf_parse_addr("[1.2.3.4]:80", &a), -1);
	CHECK_INT(conf_parse_addr("[]:80", &a), -1);
	CHECK_INT(conf_parse_addr("[*]:80", &a), -1);
	CHECK_INT(conf_parse_addr("**:80", &a), -1);
	CHECK_INT(conf_parse_addr("1.2.3.4:+80", &a), -1);
	CHECK_INT(conf_parse_addr("", &a), -1);
	CHECK_INT(conf_parse_addr("[fe80::1%eth0]:80", &a), -1);
}

TEST(parse_cidr_forms)
{
	struct conf_cidr c;

	CHECK_INT(conf_parse_cidr("10.0.0.0/8", &c), 0);
	CHECK_INT(c.family, AF_INET);
	CHECK_INT(c.prefix, 8);
	CHECK_INT(c.addr[0], 10);
	CHECK_INT(conf_parse_cidr("1.2.3.4", &c), 0);
	CHECK_INT(c.prefix, 32);
	CHECK_INT(conf_parse_cidr("0.0.0.0/0", &c), 0);
	CHECK_INT(conf_parse_cidr("::/0", &c), 0);
	CHECK_INT(c.family, AF_INET6);
	CHECK_INT(c.prefix, 0);
	CHECK_INT(conf_parse_cidr("::1", &c), 0);
	CHECK_INT(c.prefix, 128);
	CHECK_INT(conf_parse_cidr("2001:db8::/32", &c), 0);
	/* A v4-mapped network is stored as the v4 network it stands for. */
	CHECK_INT(conf_parse_cidr("::ffff:10.0.0.0/104", &c), 0);
	CHECK_INT(c.family, AF_INET);
	CHECK_INT(c.prefix, 8);
	CHECK_INT(c.addr[0], 10);
	CHECK_INT(conf_parse_cidr("10.0.0.1/8", &c), -1);
	CHECK_INT(conf_parse_cidr("10.0.0.0/33", &c), -1);
	CHECK_INT(conf_parse_cidr("10.0.0.0/-1", &c), -1);
	CHECK_INT(conf_parse_cidr("10.0.0.0/", &c), -1);
	CHECK_INT(conf_parse_cidr("10.0.0.0/8/8", &c), -1);
	CHECK_INT(conf_parse_cidr("::/129", &c), -1);
	CHECK_INT(conf_parse_cidr("all", &c), -1);
	CHECK_INT(conf_parse_cidr("", &c), -1);
	CHECK_INT(conf_parse_cidr("/8", &c), -1);
	CHECK_INT(conf_parse_cidr("10.0.0.0 /8", &c), -1);
}

TEST(cidr_matching_v4_v6_and_mapped)
{
	CHECK(cidr_match("10.0.0.0/8", "10.255.255.255"));
	CHECK(!cidr_match("10.0.0.0/8", "11.0.0.0"));
	CHECK(cidr_match("192.168.16.0/20", "192.168.31.255"));
	CHECK(!cidr_match("192.168.16.0/20", "192.168.32.0"));
	CHECK(!cidr_match("192.168.16.0/20", "192.168.15.255"));
	CHECK(cidr_match("0.0.0.0/0", "1.2.3.4"));
	CHECK(cidr_match("1.2.3.4/32", "1.2.3.4"));
	CHECK(!cidr_match("1.2.3.4/32", "1.2.3.5"));
	/* v4-mapped clients are v4 clients. */
	CHECK(cidr_match("10.0.0.0/8", "::ffff:10.1.1.1"));
	CHECK(!cidr_match("10.0.0.0/8", "::ffff:11.1.1.1"));
	CHECK(cidr_match("0.0.0.0/0", "::ffff:1.2.3.4"));
	CHECK(!cidr_match("::/0", "::ffff:1.2.3.4"));
	CHECK(cidr_match("::ffff:10.0.0.0/104", "10.2.3.4"));
	CHECK(cidr_match("::ffff:10.0.0.0/104", "::ffff:10.2.3.4"));
	/* Families do not mix otherwise. */
	CHECK(!cidr_match("0.0.0.0/0", "::1"));
	CHECK(!cidr_match("::/0", "1.2.3.4"));
	CHECK(cidr_match("::/0", "2001:db8::1"));
	CHECK(cidr_match("2001:db8::/33", "2001:db8:7fff::1"));
	CHECK(!cidr_match("2001:db8::/33", "2001:db8:8000::1"));
	CHECK(cidr_match("::1", "::1"));
	CHECK(!cidr_match("::1", "::"));
	/* A hand-built v6 CIDR over the mapped range behaves like the parsed one. */
	{
		struct conf_cidr c = {.family = AF_INET6, .prefix = 104};
		struct sockaddr_storage ss = sa_of("10.9.9.9");

		c.addr[10] = 0xff;
		c.addr[11] = 0xff;
		c.addr[12] = 10;
		CHECK(conf_cidr_match(&c, (struct sockaddr *)&ss));
	}
	/* Not an IP socket: never matches. */
	{
		struct sockaddr_un un = {.sun_family = AF_UNIX};
		struct conf_cidr c;

		CHECK_INT(conf_parse_cidr("0.0.0.0/0", &c), 0);
		CHECK(!conf_cidr_match(&c, (struct sockaddr *)&un));
	}
}

TEST(refcounting)
{
	struct conf *c = conf_defaults(), *r;

	r = conf_ref(c);
	CHECK(r == c);
	CHECK_INT(atomic_load(&c->refs), 2);
	conf_unref(&r);
	CHECK(r == NULL);
	CHECK_INT(atomic_load(&c->refs), 1);
	conf_unref(&c);
	CHECK(c == NULL);
	conf_unref(&c); /* NULL is fine */
	CHECK(c == NULL);
}

TEST(error_truncation_and_null_err)
{
	struct conf *c = NULL;
	char small[12];

	CHECK_INT(conf_load_string("lisen 1", 7, "t.conf", &c, small, sizeof(small)), -1);
	CHECK_STR(small, "t.conf:1: u");
	CHECK_INT(conf_load_string("lisen 1", 7, "t.conf", &c, NULL, 0), -1);
	CHECK(c == NULL);
	/* Long arguments are shortened in messages, so the line number survives. */
	{
		char text[CONF_LINE_MAX];

		memset(text, 'x', sizeof(text) - 1);
		text[sizeof(text) - 1] = '\0';
		CHECK(strncmp(load_err(text), "t.conf:1: unknown directive \"xxxx", 33) == 0);
		CHECK(strstr(err, "xxx...\"") != NULL);
		CHECK(strlen(err) < 200);
	}
}

TEST(include_relative_glob_and_errors)
{
	struct conf *c = NULL;
	const char *main_conf;
	char text[512];

	tmp_setup();
	mk_dir("sub");
	mk_dir("conf.d");
	mk_file("sub/a.conf", "via off\ninclude b.conf\n");
	mk_file("sub/b.conf", "# b\nlisten 1001\n");
	mk_file("conf.d/20-second.conf", "listen 1003\n");
	mk_file("conf.d/10-first.conf", "listen 1002\n");
	mk_file("conf.d/ignored.txt", "this is not config\n");
	main_conf = mk_file("main.conf", "include sub/a.conf\n"
					 "include \"conf.d/*.conf\"\n"
					 "include nothing.d/*.conf\n"
					 "include conf.d/*.none\n"
					 "forwarded_for on\n");
	CHECK_INT(conf_load_file(main_conf, &c, err, sizeof(err)), 0);
	if (c) {
		CHECK_STR(c->source, main_conf);
		CHECK(!c->via);
		CHECK(c->forwarded_for);
		CHECK_INT(c->nlisten, 3);
		CHECK_STR(c->listen[0].text, "0.0.0.0:1001");
		CHECK_STR(c->listen[1].text, "0.0.0.0:1002");
		CHECK_STR(c->listen[2].text, "0.0.0.0:1003");
		conf_unref(&c);
	} else {
		printf("    %s\n", err);
	}

	/* An absolute include works from anywhere, including a string. */
	snprintf(text, sizeof(text), "via on\ninclude %s/sub/a.conf\n", tmpdir);
	c = load(text);
	CHECK(c != NULL);
	if (c) {
		CHECK(!c->via);
		CHECK_STR(c->listen[0].text, "0.0.0.0:1001");
		conf_unref(&c);
	}

	/* Errors name the included file and its line. */
	{
		const char *p = mk_file("bad.conf", "via on\ninclude sub/bad-inner.conf\n");
		const char *inner = mk_file("sub/bad-inner.conf", "\n\nthreads many\n");
		char want[512];

		snprintf(want, sizeof(want),
			 "%s/sub/bad-inner.conf:3: threads: expected a number "
			 "1..256 or auto, got \"many\"",
			 tmpdir);
		(void)inner;
		CHECK_STR(load_file_err(p), want);
	}
	/* A missing file without wildcards is an error at the include line. */
	{
		const char *p = mk_file("missing.conf", "via on\n\ninclude nope.conf\n");
		char want[512];

		snprintf(want, sizeof(want),
			 "%s:3: include: cannot read \"%s/nope.conf\": No such "
			 "file or directory",
			 p, tmpdir);
		CHECK_STR(load_file_err(p), want);
	}
	/* A directory is not a config file. */
	{
		const char *p = mk_file("dir.conf", "include sub\n");
		char want[512];

		snprintf(want, sizeof(want),
			 "%s:1: include: cannot read \"%s/sub\": not a regular "
			 "file",
			 p, tmpdir);
		CHECK_STR(load_file_err(p), want);
	}
	/* The top-level file itself missing has no line. */
	{
		char p[128], want[256];

		snprintf(p, sizeof(p), "%s/absent.conf", tmpdir);
		snprintf(want, sizeof(want), "%s: cannot read: No such file or directory", p);
		CHECK_STR(load_file_err(p), want);
	}
	tmp_cleanup();
}

TEST(include_cycles_and_depth)
{
	char want[1024], name[128], body[64];
	const char *p;

	tmp_setup();
	p = mk_file("a.conf", "via on\ninclude b.conf\n");
	mk_file("b.conf", "\ninclude a.conf\n");
	snprintf(want, sizeof(want), "%s/b.conf:2: include cycle: %s -> %s/b.conf -> %s/a.conf",
		 tmpdir, p, tmpdir, tmpdir);
	CHECK_STR(load_file_err(p), want);

	p = mk_file("self.conf", "include self.conf\n");
	snprintf(want, sizeof(want), "%s:1: include cycle: %s -> %s/self.conf", p, p, tmpdir);
	CHECK_STR(load_file_err(p), want);

	/* Including the same file twice side by side is not a cycle. */
	p = mk_file("twice.conf", "include leaf.conf\ninclude leaf.conf\n");
	mk_file("leaf.conf", "via off\n");
	CHECK_STR(load_file_err(p), "(loaded fine)");

	/* d0 includes d1 ... : 16 levels below the top are fine, 17 are not. */
	for (int i = 0; i <= CONF_INCLUDE_DEPTH + 1; i++) {
		snprintf(name, sizeof(name), "d%d.conf", i);
		snprintf(body, sizeof(body), "include d%d.conf\n", i + 1);
		mk_file(name, i == CONF_INCLUDE_DEPTH + 1 ? "via off\n" : body);
	}
	snprintf(name, sizeof(name), "%s/d1.conf", tmpdir);
	CHECK_STR(load_file_err(name), "(loaded fine)");
	snprintf(name, sizeof(name), "%s/d0.conf", tmpdir);
	snprintf(want, sizeof(want), "%s/d16.conf:1: include: nested more than 16 deep", tmpdir);
	CHECK_STR(load_file_err(name), want);
	tmp_cleanup();
}

TEST(include_from_string_is_relative_to_cwd)
{
	char cwd[512];
	struct conf *c;

	tmp_setup();
	mk_file("rel.conf", "via off\nthreads 3\n");
	if (getcwd(cwd, sizeof(cwd)) == NULL || chdir(tmpdir) < 0)
		abort();
	c = load("include rel.conf\n");
	CHECK(c != NULL);
	if (c) {
		CHECK(!c->via);
		CHECK_INT(c->threads, 3);
		conf_unref(&c);
	}
	CHECK_STR(load_err("include other.conf\n"), "t.conf:1: include: cannot read "
						    "\"other.conf\": No such file or directory");
	if (chdir(cwd) < 0)
		abort();
	tmp_cleanup();
}

/* The including file's directory is a literal path even when its name looks
 * like a pattern; only the pattern written after `include` globs. */
TEST(include_glob_in_a_directory_with_glob_characters)
{
	struct conf *c = NULL;
	const char *x;

	tmp_setup();
	mk_dir("we[ir]d*");
	x = mk_file("we[ir]d*/x.conf", "include [yz].conf\n");
	mk_file("we[ir]d*/y.conf", "via off\n");
	mk_file("we[ir]d*/z.conf", "forwarded_for on\n");
	CHECK_INT(conf_load_file(x, &c, err, sizeof(err)), 0);
	if (c) {
		CHECK(!c->via);
		CHECK(c->forwarded_for);
		conf_unref(&c);
	}
	tmp_cleanup();
}

TEST(includes_can_be_disabled)
{
	conf_set_includes_allowed(false);
	CHECK_STR(load_err("via on\ninclude /etc/passwd\n"),
		  "t.conf:2: include: not allowed here (includes are disabled)");
	conf_set_includes_allowed(true);
}

TEST(list_replacement_spans_includes)
{
	struct conf *c;
	char text[256];

	tmp_setup();
	mk_file("l.conf", "listen 2002\nallow 10.0.0.0/8\nconnect_ports 8443\n");
	snprintf(text, sizeof(text), "listen 2001\nallow 192.168.0.0/16\ninclude %s/l.conf\n",
		 tmpdir);
	c = load(text);
	CHECK(c != NULL);
	if (c) {
		CHECK_INT(c->nlisten, 2);
		CHECK_INT(c->nallow, 2);
		CHECK(!allowed(c, "127.0.0.1"));
		CHECK_INT(c->nconnect_ports, 1);
		CHECK(!conf_connect_port_allowed(c, 443));
		conf_unref(&c);
	}
	tmp_cleanup();
}

/* docs/config.md must document every directive, and conf/sluice.conf must
 * load; both are looked up from the repository root (where make runs tests). */
TEST(docs_and_example_config)
{
	FILE *f = fopen("docs/config.md", "r");
	static char doc[256 * 1024];
	size_t n;
	struct conf *c = NULL;

	if (f == NULL) {
		printf("    (docs/config.md not found from here: skipped)\n");
		return;
	}
	n = fread(doc, 1, sizeof(doc) - 1, f);
	fclose(f);
	doc[n] = '\0';
	for (size_t i = 0; conf_directive_name(i) != NULL; i++) {
		char head[128];

		snprintf(head, sizeof(head), "### %s\n", conf_directive_name(i));
		if (strstr(doc, head) == NULL) {
			printf("    docs/config.md has no \"### %s\"\n", conf_directive_name(i));
			CHECK(0);
		}
	}
	CHECK_INT(conf_load_file("conf/sluice.conf", &c, err, sizeof(err)), 0);
	if (c == NULL)
		printf("    %s\n", err);
	conf_unref(&c);
}

TEST(cache_directives)
{
	struct conf *c = load("cache_mem 3G\ncache_max_object 1M\ncache off\n"
			      "cache_purge_allow 10.0.0.0/8\ncache_purge_allow ::1\n");
	CHECK(c != NULL);
	if (c) {
		CHECK(c->cache_mem == 3ull << 30); /* past 4G's 32 bits: a 64-bit field */
		CHECK_INT(c->cache_max_object, 1 << 20);
		CHECK(!c->cache);
		CHECK_INT(c->npurge_allow, 2);
		CHECK_INT(c->nallow, 2); /* allow keeps its own default */
	}
	conf_unref(&c);
	c = load("");
	CHECK(c && c->cache && c->cache_mem == 256ull << 20 && c->npurge_allow == 0);
	conf_unref(&c);
	CHECK(strstr(load_err("cache_mem 2T\n"), "cache_mem: expected a size 0..1T") != NULL);
	c = load("cache_dir \"/var/cache/my sluice\" 20G\n");
	CHECK(c && c->cache_dir && strcmp(c->cache_dir, "/var/cache/my sluice") == 0 &&
	      c->cache_dir_size == 20ull << 30);
	conf_unref(&c);
	c = load("");
	CHECK(c && c->cache_dir == NULL);
	conf_unref(&c);
	CHECK(strstr(load_err("cache_dir /x 10K\n"), "cache_dir: expected a size 1M..") != NULL);
	CHECK(strstr(load_err("cache_dir /x\n"), "cache_dir: expected 2 arguments") != NULL);
}

int main(void)
{
	RUN(cache_directives);
	RUN(defaults_are_safe_and_documented);
	RUN(empty_file_is_the_defaults);
	RUN(comments_blank_lines_and_crlf);
	RUN(quoting);
	RUN(bad_bytes_and_long_lines);
	RUN(unknown_directive_and_argument_counts);
	RUN(every_directive_once);
	RUN(last_one_wins);
	RUN(listen_directive);
	RUN(threads_directive);
	RUN(allow_directive);
	RUN(connect_ports_directive);
	RUN(bool_and_hostname_directives);
	RUN(access_log_and_log_level_directives);
	RUN(duration_directives);
	RUN(busy_poll_directive);
	RUN(count_and_size_directives);
	RUN(max_request_line_is_checked_against_max_header_size);
	RUN(dns_servers_directive);
	RUN(parse_size_edge_cases);
	RUN(parse_duration_edge_cases);
	RUN(parse_addr_forms);
	RUN(parse_cidr_forms);
	RUN(cidr_matching_v4_v6_and_mapped);
	RUN(refcounting);
	RUN(error_truncation_and_null_err);
	RUN(include_relative_glob_and_errors);
	RUN(include_cycles_and_depth);
	RUN(include_from_string_is_relative_to_cwd);
	RUN(include_glob_in_a_directory_with_glob_characters);
	RUN(includes_can_be_disabled);
	RUN(list_replacement_spans_includes);
	RUN(docs_and_example_config);
	return unit_done();
}
