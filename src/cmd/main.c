/* main.c - command line, signals, config reload, workers.
 *
 * The main thread owns signals (signalfd), loads and reloads the config,
 * binds every listening socket and starts and stops the workers. */
#include <ares.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "conf/conf.h"
#include "dns/dns.h"
#include "net/net.h"
#include "obs/alog.h"
#include "cache/disk.h"
#include "cache/mem.h"
#include "proxy/relay.h"
#include "proxy/worker.h"

#define SLUICE_VERSION "0.1.0"
#define LISTEN_BACKLOG 4096

static void usage(FILE *f)
{
	fprintf(f, "usage: sluice [-c FILE] [-t] [-v] [--help] [--version]\n"
		   "  -c FILE    read the configuration from FILE (default: built-in defaults)\n"
		   "  -t         check the configuration and exit (0: valid, 1: invalid)\n"
		   "  -v         verbose: log at debug level\n"
		   "  --help     this text\n"
		   "  --version  print the version\n"
		   "Signals: SIGHUP reloads the configuration, SIGTERM/SIGINT stop gracefully,\n"
		   "SIGUSR1 reopens the access log.\n");
}

static unsigned thread_count(const struct conf *c)
{
	long n;
	if (c->threads > 0)
		return c->threads;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)SL_MIN(n, 256) : 1;
}

static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("cannot raise the descriptor limit: %s", strerror(errno));
	}
}

/* Bind one socket per worker for every address of c that is not in old
 * (NULL: all). fds[w][i] for worker w, listen entry i; -1 where kept.
 * Returns 0, or -1 with a message logged (everything bound so far closed). */
static int bind_listeners(const struct conf *c, const struct conf *old, unsigned nw, int **fds)
{
	for (unsigned w = 0; w < nw; w++) {
		fds[w] = sl_malloc(c->nlisten * sizeof(int));
		for (size_t i = 0; i < c->nlisten; i++)
			fds[w][i] = -1;
	}
	for (size_t i = 0; i < c->nlisten; i++) {
		const struct conf_addr *a = &c->listen[i];
		bool kept = false;
		for (size_t j = 0; old && j < old->nlisten; j++)
			if (strcmp(old->listen[j].text, a->text) == 0)
				kept = true;
		if (kept)
			continue;
		for (unsigned w = 0; w < nw; w++) {
			int fd = net_listen((const struct sockaddr *)&a->ss, a->len, LISTEN_BACKLOG,
					    true);
			if (fd < 0) {
				log_error("cannot listen on %s: %s", a->text, strerror(-fd));
				for (unsigned x = 0; x < nw; x++) {
					for (size_t k = 0; k < c->nlisten; k++)
						if (fds[x][k] >= 0)
							close(fds[x][k]);
					free(fds[x]);
					fds[x] = NULL;
				}
				return -1;
			}
			fds[w][i] = fd;
		}
	}
	return 0;
}

static struct worker_post *make_post(struct conf *c, int *fds)
{
	struct worker_post *p = sl_calloc(1, sizeof(*p));
	p->conf = conf_ref(c);
	p->fds = fds;
	p->nfds = c->nlisten;
	return p;
}

static int apply_logging(const struct conf *c)
{
	int rc;
	log_set_level(c->log_level);
	rc = alog_configure(c->access_log, c->access_log_format);
	if (rc < 0)
		log_error("access_log %s: %s", c->access_log, strerror(-rc));
	return rc;
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* Say which of next's settings a reload cannot apply: those sized or
 * opened at start (boot is the config the process started with). */
static void warn_start_only(const struct conf *boot, const struct conf *next, unsigned nw)
{
	if (thread_count(next) != nw)
		log_warn("reload: 'threads' changes only at restart (running %u)", nw);
	if (next->cache_mem != boot->cache_mem)
		log_warn("reload: 'cache_mem' changes only at restart (running %" PRIu64 " bytes)",
			 boot->cache_mem);
	if (!str_eq(next->cache_dir, boot->cache_dir) ||
	    (next->cache_dir && next->cache_dir_size != boot->cache_dir_size))
		log_warn("reload: 'cache_dir' changes only at restart (running %s)",
			 boot->cache_dir ? boot->cache_dir : "none");
	if (next->dns_cache_size != boot->dns_cache_size)
		log_warn("reload: 'dns_cache_size' changes only at restart (running %u)",
			 (unsigned)boot->dns_cache_size);
}

static void reload(struct conf **cur, const struct conf *boot, const char *path, struct worker **ws,
		   unsigned nw)
{
	char err[512];
	struct conf *next = NULL;
	int *fds[256];

	if (path == NULL) {
		log_info("reload: no config file (built-in defaults); nothing to do");
		return;
	}
	if (conf_load_file(path, &next, err, sizeof(err)) < 0) {
		log_error("reload failed, keeping the running config: %s", err);
		return;
	}
	warn_start_only(boot, next, nw);
	if (bind_listeners(next, *cur, nw, fds) < 0) {
		log_error("reload failed, keeping the running config");
		conf_unref(&next);
		return;
	}
	if (apply_logging(next) < 0)
		log_warn("reload: access log unchanged");
	for (unsigned w = 0; w < nw; w++)
		worker_post(ws[w], make_post(next, fds[w]));
	conf_unref(cur);
	*cur = next;
	log_info("reloaded %s", path);
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	bool test_only = false, verbose = false;
	struct conf *conf = NULL, *boot = NULL;
	char err[512];
	struct worker *ws[256];
	int *fds[256];
	unsigned nw;
	sigset_t mask;
	int sfd, rc, exit_code = 0;
	struct mem_store *cache = NULL;
	struct disk_store *disk = NULL;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			path = argv[++i];
		} else if (strcmp(argv[i], "-t") == 0) {
			test_only = true;
		} else if (strcmp(argv[i], "-v") == 0) {
			verbose = true;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("sluice %s\n", SLUICE_VERSION);
			return 0;
		} else {
			fprintf(stderr, "sluice: unknown argument \"%s\"\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}

	if (path) {
		if (conf_load_file(path, &conf, err, sizeof(err)) < 0) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
	} else {
		conf = conf_defaults();
	}
	if (test_only) {
		printf("%s: configuration ok\n", path ? path : "(built-in defaults)");
		conf_unref(&conf);
		return 0;
	}
	if (verbose)
		conf->log_level = LOG_DEBUG;
	boot = conf_ref(conf);
	log_set_level(conf->log_level);

	rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc != ARES_SUCCESS) {
		log_error("c-ares: %s", ares_strerror(rc));
		return 1;
	}
	raise_nofile();
	dns_cache_init(conf->dns_cache_size);
	relay_init();
	/* One memory cache for the process, sized at start. */
	cache = conf->cache_mem > 0 ? mem_store_new(conf->cache_mem) : NULL;
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGUSR1);
	/* Blocked before any thread starts, so workers inherit the mask and
	 * every signal reaches the signalfd. */
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0) {
		log_error("signalfd: %s", strerror(errno));
		return 1;
	}
	if (apply_logging(conf) < 0)
		return 1;
	/* The disk tier, beneath the memory one (after the signal mask: its
	 * I/O threads inherit it). One that cannot be used is logged and
	 * left out; the memory cache goes on alone. */
	if (conf->cache_dir && cache) {
		disk = disk_open(conf->cache_dir, conf->cache_dir_size, 0, err, sizeof(err));
		if (disk == NULL)
			log_error("cache_dir %s: %s; continuing with the memory cache only",
				  conf->cache_dir, err);
		else
			disk_rebuild(disk); /* in the background: serving starts now */
	} else if (conf->cache_dir) {
		log_warn("cache_dir %s: not used without a memory cache (cache_mem 0)",
			 conf->cache_dir);
	}

	nw = thread_count(conf);
	if (bind_listeners(conf, NULL, nw, fds) < 0)
		return 1;
	for (unsigned i = 0; i < nw; i++) {
		ws[i] = worker_new(i, conf, err, sizeof(err));
		if (ws[i] == NULL) {
			log_error("worker %u: %s", i, err);
			return 1;
		}
		ws[i]->cache = cache;
		ws[i]->disk = disk;
	}
	for (unsigned i = 0; i < nw; i++) {
		rc = worker_start(ws[i], make_post(conf, fds[i]));
		if (rc < 0) {
			log_error("cannot start worker %u: %s", i, strerror(-rc));
			return 1;
		}
	}
	{
		char list[512] = "";
		size_t off = 0;
		for (size_t i = 0; i < conf->nlisten && off < sizeof(list); i++)
			off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s",
						i ? " " : "", conf->listen[i].text);
		log_info("sluice %s listening on %s (%u thread%s)", SLUICE_VERSION, list, nw,
			 nw == 1 ? "" : "s");
	}

	for (;;) {
		struct signalfd_siginfo si;
		ssize_t n = read(sfd, &si, sizeof(si));
		if (n != (ssize_t)sizeof(si)) {
			if (n < 0 && errno == EINTR)
				continue;
			log_error("signalfd read: %s", strerror(errno));
			exit_code = 1;
			break;
		}
		if (si.ssi_signo == SIGHUP) {
			reload(&conf, boot, path, ws, nw);
		} else if (si.ssi_signo == SIGUSR1) {
			rc = alog_reopen();
			if (rc < 0)
				log_error("reopen access log: %s", strerror(-rc));
			else
				log_info("access log reopened");
		} else {
			log_info("%s: stopping (in-flight requests get %u ms)",
				 si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM",
				 conf->shutdown_timeout_ms);
			break;
		}
	}

	/* Graceful stop: workers stop accepting and finish what is in flight;
	 * after shutdown_timeout (or a second signal) they are told to close
	 * everything. */
	for (unsigned i = 0; i < nw; i++)
		worker_stop(ws[i], false);
	{
		uint64_t deadline = clock_mono_ms() + conf->shutdown_timeout_ms;
		bool forced = false;
		for (;;) {
			bool all = true;
			for (unsigned i = 0; i < nw; i++)
				all = all && atomic_load(&ws[i]->stopped);
			if (all)
				break;
			uint64_t now = clock_mono_ms();
			struct pollfd pfd = {.fd = sfd, .events = POLLIN};
			int wait =
				forced ? 50 : (int)SL_MIN(50, deadline > now ? deadline - now : 0);
			if (poll(&pfd, 1, wait) > 0) {
				struct signalfd_siginfo si;
				if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si) &&
				    (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT))
					now = deadline;
			}
			if (!forced && now >= deadline) {
				log_info("shutdown timeout: closing remaining connections");
				for (unsigned i = 0; i < nw; i++)
					worker_stop(ws[i], true);
				forced = true;
			}
		}
	}
	for (unsigned i = 0; i < nw; i++)
		worker_join_free(&ws[i]);
	log_info("stopped");
	alog_shutdown();
	conf_unref(&conf);
	conf_unref(&boot);
	close(sfd);
	dns_cache_free();
	disk_close(&disk); /* writes still queued finish first */
	mem_store_free(&cache);
	ares_library_cleanup();
	return exit_code;
}
