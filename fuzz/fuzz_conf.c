/* fuzz_conf.c - libFuzzer target for the config grammar.
 *
 * Any input must either load (and then free cleanly) or fail with a message
 * of the form "fuzz:LINE: ..."; `include` is disabled so that input cannot
 * make the fuzzer read files. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf/limits.h"
#include "conf/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_err(const char *err, const uint8_t *data, size_t size)
{
	size_t i = 5;

	if (strncmp(err, "fuzz:", 5) == 0 && err[i] >= '1' && err[i] <= '9') {
		while (err[i] >= '0' && err[i] <= '9')
			i++;
		if (err[i] == ':' && err[i + 1] == ' ' && err[i + 2] != '\0')
			return;
	}
	fprintf(stderr, "bad error message for %zu-byte input: \"%s\"\n", size, err);
	(void)data;
	abort();
}

/* What any loaded config must satisfy, whatever the input was. */
static void check_conf(const struct conf *c)
{
	if (c->magic != CONF_MAGIC || c->nlisten == 0 || c->nlisten > CONF_MAX_LISTEN ||
	    c->nallow > CONF_MAX_CIDRS || c->nconnect_ports > CONF_MAX_PORT_RANGES ||
	    c->max_request_line > c->max_header_size || c->max_header_size < 1024 ||
	    c->threads > 256 || c->connect_timeout_ms == 0 || c->visible_hostname == NULL)
		abort();
	for (size_t i = 0; i < c->nconnect_ports; i++)
		if (c->connect_ports[i].lo == 0 || c->connect_ports[i].lo > c->connect_ports[i].hi)
			abort();
	for (size_t i = 0; i < c->nallow; i++)
		if ((c->allow[i].family == AF_INET && c->allow[i].prefix > 32) ||
		    c->allow[i].prefix > 128)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf *c = NULL;
	char err[512];

	conf_set_includes_allowed(false);
	if (conf_load_string((const char *)data, size, "fuzz", &c, err, sizeof(err)) == 0) {
		check_conf(c);
		conf_unref(&c);
	} else {
		if (c != NULL)
			abort();
		check_err(err, data, size);
	}
	return 0;
}
