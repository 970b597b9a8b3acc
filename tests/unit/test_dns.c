#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "dns/dns.h"
#include "ev/ev.h"
#include "unit.h"

static struct dns *mk(struct ev_loop *loop)
{
	char err[128];
	struct dns_opts o = {.servers = "127.0.0.1:9", .hosts_path = "", .timeout_ms = 200};
	return dns_new(loop, &o, err, sizeof(err));
}

TEST(hosts_file_parsed_and_families_interleaved)
{
	struct ev_loop *loop = ev_loop_new();
	struct dns *d = mk(loop);
	struct dns_result r;
	struct dns_query *q;
	static const char hosts[] = "# comment\n127.0.0.1 localhost  Local.Test\n"
				    "::1 localhost ip6-localhost\n"
				    "10.0.0.1\tlocal.test # trailing\n"
				    "fe80::1 other\nnot-an-ip foo\n";
	CHECK(d != NULL);
	CHECK_INT(dns_hosts_parse(d, hosts, sizeof(hosts) - 1), 6);
	CHECK_INT(dns_lookup(d, "LOCALHOST", &r, NULL, NULL, &q), 0);
	CHECK(q == NULL);
	CHECK_INT(r.error, DNS_OK);
	CHECK_INT(r.n, 2);
	CHECK_INT(r.addrs[0].family, AF_INET6); /* IPv6 first (RFC 8305 §4) */
	CHECK_INT(r.addrs[1].family, AF_INET);
	CHECK_INT(dns_lookup(d, "local.test", &r, NULL, NULL, &q), 0);
	CHECK_INT(r.n, 2);
	CHECK_INT(dns_lookup(d, "foo", &r, NULL, NULL, &q), 1); /* not in hosts: queried */
	dns_cancel(&q);
	CHECK(q == NULL);
	dns_free(&d);
	ev_loop_free(&loop);
}

TEST(literals_answer_at_once)
{
	struct ev_loop *loop = ev_loop_new();
	struct dns *d = mk(loop);
	struct dns_result r;
	struct dns_query *q;
	struct sockaddr_storage ss;
	CHECK_INT(dns_lookup(d, "192.0.2.7", &r, NULL, NULL, &q), 0);
	CHECK_INT(r.n, 1);
	CHECK_INT(r.addrs[0].family, AF_INET);
	CHECK_INT(dns_addr_to_sockaddr(&r.addrs[0], 81, &ss), sizeof(struct sockaddr_in));
	CHECK_INT(ntohs(((struct sockaddr_in *)&ss)->sin_port), 81);
	CHECK_INT(dns_lookup(d, "2001:db8::1", &r, NULL, NULL, &q), 0);
	CHECK_INT(r.addrs[0].family, AF_INET6);
	CHECK_INT(dns_lookup(d, "", &r, NULL, NULL, &q), 0);
	CHECK_INT(r.error, DNS_BADNAME);
	dns_free(&d);
	ev_loop_free(&loop);
}

static int cb_calls;
static enum dns_error cb_err;
static void on_answer(void *arg, const struct dns_result *res)
{
	cb_calls++;
	cb_err = res->error;
	ev_loop_stop(arg);
}

TEST(unreachable_server_times_out_through_the_loop)
{
	struct ev_loop *loop = ev_loop_new();
	struct dns *d = mk(loop);
	struct dns_result r;
	struct dns_query *q;
	cb_calls = 0;
	CHECK_INT(dns_lookup(d, "nothing.test", &r, on_answer, loop, &q), 1);
	CHECK(q != NULL);
	CHECK_INT(ev_loop_run(loop), 0);
	CHECK_INT(cb_calls, 1);
	CHECK(cb_err == DNS_TIMEOUT || cb_err == DNS_FAIL);
	dns_free(&d);
	ev_loop_free(&loop);
}

/* Ad-blocking hosts files run to megabytes: read whole, looked up by hash;
 * ten addresses of one family do not crowd out the other's. */
TEST(a_large_hosts_file_is_read_whole_and_both_families_kept)
{
	char path[] = "/tmp/sluice-test-hostsXXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	FILE *f = fdopen(fd, "w");
	for (int i = 0; i < 20000; i++) /* ~530 KiB */
		fprintf(f, "0.0.0.0 ads%05d.example\n", i);
	for (int i = 1; i <= 40; i++) /* more of one family than is read */
		fprintf(f, "10.0.0.%d many.test\n", i);
	fprintf(f, "2001:db8::1 many.test\n192.0.2.9 late.test\n");
	fclose(f);

	struct ev_loop *loop = ev_loop_new();
	char err[128];
	struct dns_opts o = {.servers = "127.0.0.1:9", .hosts_path = path, .timeout_ms = 200};
	struct dns *d = dns_new(loop, &o, err, sizeof(err));
	struct dns_result r;
	struct dns_query *q;
	CHECK(d != NULL);
	CHECK_INT(dns_lookup(d, "ads00001.example", &r, NULL, NULL, &q), 0);
	CHECK_INT(dns_lookup(d, "late.test", &r, NULL, NULL, &q), 0);
	CHECK_INT(r.n, 1);
	CHECK_INT(dns_lookup(d, "many.test", &r, NULL, NULL, &q), 0);
	CHECK_INT(r.n, DNS_MAX_ADDRS);
	CHECK_INT(r.addrs[0].family, AF_INET6);
	CHECK_INT(r.addrs[1].family, AF_INET);
	CHECK(r.addrs[1].a[3] == 1 && r.addrs[2].a[3] == 2); /* the file's order */
	dns_free(&d);
	ev_loop_free(&loop);
	unlink(path);
}

int main(void)
{
	dns_cache_init(64);
	RUN(hosts_file_parsed_and_families_interleaved);
	RUN(literals_answer_at_once);
	RUN(unreachable_server_times_out_through_the_loop);
	RUN(a_large_hosts_file_is_read_whole_and_both_families_kept);
	dns_cache_free();
	return unit_done();
}
