/* Reverse mode: routes (which backend) and balancing (which server). */
#include <stdlib.h>

#include "proxy/backend.h"
#include "unit.h"

static char err[512];

static struct conf *load(const char *text)
{
	struct conf *c = NULL;
	if (conf_load_string(text, strlen(text), "t.conf", &c, err, sizeof(err)) < 0) {
		printf("    load: %s\n", err);
		return NULL;
	}
	return c;
}

/* The backend name a request to host:port path is routed to, or "404"/"421". */
static const char *route_of(const struct conf *c, const char *host, uint16_t port, const char *path)
{
	int status = 0;
	const struct conf_route *r =
		backend_route(c, sv_from_cstr(host), port, sv_from_cstr(path), &status);
	if (r)
		return c->backends[r->backend].name;
	return status == 404 ? "404" : status == 421 ? "421" : "?";
}

TEST(route_most_specific_wins_host_port_then_host_then_any)
{
	struct conf *c = load("backend a 10.0.0.1:80\nbackend b 10.0.0.2:80\n"
			      "backend c 10.0.0.3:80\nbackend d 10.0.0.4:80\n"
			      "route / a\nroute /img b\nroute Site.example c\n"
			      "route site.example:8080/img d\n");
	CHECK(c != NULL);
	if (!c)
		return;
	CHECK_STR(route_of(c, "other", 80, "/x"), "a");
	CHECK_STR(route_of(c, "other", 80, "/img/1.png"), "b");
	CHECK_STR(route_of(c, "site.example", 80, "/img/1.png"), "c"); /* host beats path */
	CHECK_STR(route_of(c, "SITE.example", 8080, "/img"), "d");
	CHECK_STR(route_of(c, "site.example", 8080, "/imgs"), "c");
	conf_unref(&c);
}

TEST(route_prefix_matches_whole_segments)
{
	struct conf *c = load("backend a 10.0.0.1:80\nbackend b 10.0.0.2:80\n"
			      "route h.example/api a\nroute h.example/files/ b\n");
	CHECK(c != NULL);
	if (!c)
		return;
	CHECK_STR(route_of(c, "h.example", 80, "/api"), "a");
	CHECK_STR(route_of(c, "h.example", 80, "/api/v1"), "a");
	CHECK_STR(route_of(c, "h.example", 80, "/api?x"), "a");
	CHECK_STR(route_of(c, "h.example", 80, "/apis"), "404");
	CHECK_STR(route_of(c, "h.example", 80, "/files/x"), "b");
	CHECK_STR(route_of(c, "h.example", 80, "/filesx"), "404");
	CHECK_STR(route_of(c, "other.example", 80, "/api"), "421");
	CHECK_STR(route_of(c, "h.example", 80, "/api;jsessionid=1"), "a");
	conf_unref(&c);
}

TEST(route_hosts_and_prefixes_in_the_form_requests_are_matched_in)
{
	/* An IPv6 literal with or without a port, in its one text form; a
	 * prefix with its unreserved characters decoded, as request paths. */
	struct conf *c = load("backend a 10.0.0.1:80\nroute [0:0::1] a\n"
			      "route [::0:2]:8080/%61pi a\nroute WWW.Example. a\n");
	CHECK(c != NULL);
	if (!c)
		return;
	CHECK_STR(c->routes[0].host, "::1");
	CHECK_INT(c->routes[0].port, 0);
	CHECK_STR(c->routes[1].host, "::2");
	CHECK_INT(c->routes[1].port, 8080);
	CHECK_STR(c->routes[1].prefix, "/api");
	CHECK_STR(c->routes[2].host, "www.example"); /* its root's dot is no part of it */
	conf_unref(&c);
	struct conf *bad = load("backend a 10.0.0.1:80\nroute /x/../y a\n");
	CHECK(bad == NULL);
	conf_unref(&bad);
	bad = load("backend a 10.0.0.1:80\nroute /{x} a\n"); /* never in a URL path */
	CHECK(bad == NULL);
	conf_unref(&bad);
}

TEST(pick_roundrobin_cycles_and_skips_down_and_tried)
{
	struct conf *c = load("backend a 10.0.0.1:80 10.0.0.2:80 10.0.0.3:80\n");
	CHECK(c != NULL);
	if (!c)
		return;
	struct conf_backend *b = &c->backends[0];
	int n[3] = {0};
	for (int i = 0; i < 30; i++)
		n[backend_pick(b, 0, 0, 1000)]++;
	CHECK_INT(n[0], 10);
	CHECK_INT(n[1], 10);
	CHECK_INT(n[2], 10);
	backend_failed(&b->servers[1], 1000, 5000);
	for (int i = 0; i < 10; i++)
		CHECK(backend_pick(b, 0, 0, 2000) != 1);
	CHECK_INT(backend_pick(b, 1u | 4u, 0, 2000), 1); /* only it is left: tried anyway */
	CHECK_INT(backend_pick(b, 7u, 0, 2000), -1);
	/* Back after its fail time; and an answer makes it healthy at once. */
	int seen1 = 0;
	for (int i = 0; i < 3; i++)
		seen1 += backend_pick(b, 0, 0, 6001) == 1;
	CHECK_INT(seen1, 1);
	backend_failed(&b->servers[1], 7000, 5000);
	backend_ok(&b->servers[1]);
	seen1 = 0;
	for (int i = 0; i < 3; i++)
		seen1 += backend_pick(b, 0, 0, 7001) == 1;
	CHECK_INT(seen1, 1);
	conf_unref(&c);
}

TEST(pick_all_down_takes_the_one_back_soonest)
{
	struct conf *c = load("backend a 10.0.0.1:80 10.0.0.2:80 10.0.0.3:80\n");
	CHECK(c != NULL);
	if (!c)
		return;
	struct conf_backend *b = &c->backends[0];
	backend_failed(&b->servers[0], 1000, 3000);
	backend_failed(&b->servers[1], 1000, 1000);
	backend_failed(&b->servers[2], 1000, 2000);
	CHECK_INT(backend_pick(b, 0, 0, 1500), 1);
	CHECK_INT(backend_pick(b, 2u, 0, 1500), 2);
	conf_unref(&c);
}

TEST(pick_leastconn_prefers_fewest_in_flight)
{
	struct conf *c = load("backend a 10.0.0.1:80 10.0.0.2:80 10.0.0.3:80 balance leastconn\n");
	CHECK(c != NULL);
	if (!c)
		return;
	struct conf_backend *b = &c->backends[0];
	atomic_store(&b->servers[0].active, 3);
	atomic_store(&b->servers[1].active, 1);
	atomic_store(&b->servers[2].active, 2);
	for (int i = 0; i < 5; i++)
		CHECK_INT(backend_pick(b, 0, 0, 1), 1);
	CHECK_INT(backend_pick(b, 2u, 0, 1), 2);
	conf_unref(&c);
}

TEST(pick_hash_is_stable_spread_and_moves_only_a_down_servers_urls)
{
	struct conf *c = load("backend a 10.0.0.1:80 10.0.0.2:80 10.0.0.3:80 balance hash\n");
	CHECK(c != NULL);
	if (!c)
		return;
	struct conf_backend *b = &c->backends[0];
	int home[300], n[3] = {0};
	for (int u = 0; u < 300; u++) {
		uint64_t h = (uint64_t)u * 0x9e3779b97f4a7c15ull;
		home[u] = backend_pick(b, 0, h, 1);
		CHECK_INT(backend_pick(b, 0, h, 1), home[u]);
		n[home[u]]++;
	}
	for (int i = 0; i < 3; i++)
		CHECK(n[i] > 60); /* roughly a third each */
	backend_failed(&b->servers[2], 1, 1000);
	for (int u = 0; u < 300; u++) {
		uint64_t h = (uint64_t)u * 0x9e3779b97f4a7c15ull;
		int now = backend_pick(b, 0, h, 2);
		CHECK(now != 2);
		if (home[u] != 2)
			CHECK_INT(now, home[u]);
	}
	conf_unref(&c);
}

TEST(pick_roundrobin_shares_a_down_servers_turns_evenly)
{
	struct conf *c = load("backend a 10.0.0.1:80 10.0.0.2:80 10.0.0.3:80 10.0.0.4:80\n");
	CHECK(c != NULL);
	if (!c)
		return;
	struct conf_backend *b = &c->backends[0];
	int n[4] = {0};
	backend_failed(&b->servers[1], 1000, 5000);
	for (int i = 0; i < 30; i++)
		n[backend_pick(b, 0, 0, 2000)]++;
	CHECK_INT(n[0], 10);
	CHECK_INT(n[1], 0);
	CHECK_INT(n[2], 10);
	CHECK_INT(n[3], 10);
	conf_unref(&c);
	/* Least connections, all idle: ties go round the servers up too. */
	c = load("backend a 10.0.0.1:80 10.0.0.2:80 10.0.0.3:80 10.0.0.4:80 balance leastconn\n");
	CHECK(c != NULL);
	if (!c)
		return;
	b = &c->backends[0];
	memset(n, 0, sizeof(n));
	backend_failed(&b->servers[1], 1000, 5000);
	for (int i = 0; i < 30; i++)
		n[backend_pick(b, 0, 0, 2000)]++;
	CHECK_INT(n[0], 10);
	CHECK_INT(n[1], 0);
	CHECK_INT(n[2], 10);
	CHECK_INT(n[3], 10);
	conf_unref(&c);
}

TEST(pick_hash_follows_the_server_not_its_place_in_the_list)
{
	/* A reload that drops the first server or reorders the rest keeps
	 * every URL of the servers that remain where it was. */
	struct conf *c = load("backend a 10.0.0.1:80 10.0.0.2:80 10.0.0.3:80 balance hash\n");
	struct conf *d = load("backend a 10.0.0.3:80 10.0.0.2:80 balance hash\n");
	CHECK(c != NULL && d != NULL);
	if (!c || !d)
		return;
	int kept = 0;
	for (int u = 0; u < 300; u++) {
		uint64_t h = (uint64_t)u * 0x9e3779b97f4a7c15ull;
		int before = backend_pick(&c->backends[0], 0, h, 1);
		if (before == 0)
			continue;
		int after = backend_pick(&d->backends[0], 0, h, 1);
		CHECK_STR(d->backends[0].servers[after].text, c->backends[0].servers[before].text);
		kept++;
	}
	CHECK(kept > 150);
	conf_unref(&c);
	conf_unref(&d);
}

TEST(servers_parsed_as_ipv4_bracketed_ipv6_or_name)
{
	struct conf *c = load("backend a 10.0.0.1:80 [::1]:8080 Name.Example:81\n"
			      "route A.Example:81/x a\n");
	CHECK(c != NULL);
	if (!c)
		return;
	struct conf_backend *b = &c->backends[0];
	CHECK_INT(b->nservers, 3);
	CHECK_STR(b->servers[1].host, "::1");
	CHECK_INT(b->servers[1].port, 8080);
	CHECK_STR(b->servers[1].text, "[::1]:8080");
	CHECK_STR(b->servers[2].host, "name.example");
	CHECK_INT(b->balance, BALANCE_ROUNDROBIN);
	CHECK_STR(c->routes[0].host, "a.example");
	CHECK_INT(c->routes[0].port, 81);
	CHECK_STR(c->routes[0].prefix, "/x");
	CHECK(c->forward);
	CHECK_INT(c->backend_fail_timeout_ms, 10000);
	conf_unref(&c);
}

TEST(server_ipv6_literals_have_one_spelling)
{
	struct conf *c = load("backend a [0:0::1]:80 [2001:DB8:0::5]:8080\n");
	CHECK(c != NULL);
	if (!c)
		return;
	CHECK_STR(c->backends[0].servers[0].text, "[::1]:80");
	CHECK_STR(c->backends[0].servers[1].host, "2001:db8::5");
	conf_unref(&c);
	CHECK(load("backend a [::1]:80 [0::1]:80\n") == NULL);
	CHECK(strstr(err, "server [0::1]:80 is given twice") != NULL);
}

int main(void)
{
	RUN(servers_parsed_as_ipv4_bracketed_ipv6_or_name);
	RUN(route_most_specific_wins_host_port_then_host_then_any);
	RUN(route_prefix_matches_whole_segments);
	RUN(route_hosts_and_prefixes_in_the_form_requests_are_matched_in);
	RUN(pick_roundrobin_cycles_and_skips_down_and_tried);
	RUN(pick_all_down_takes_the_one_back_soonest);
	RUN(pick_leastconn_prefers_fewest_in_flight);
	RUN(pick_hash_is_stable_spread_and_moves_only_a_down_servers_urls);
	RUN(pick_roundrobin_shares_a_down_servers_turns_evenly);
	RUN(pick_hash_follows_the_server_not_its_place_in_the_list);
	RUN(server_ipv6_literals_have_one_spelling);
	return unit_done();
}
