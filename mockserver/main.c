/* encored: the Encore server. Subcommands: serve, seed-demo, user add. */
#include "config.h"
#include "catalog.h"
#include "db.h"
#include "demo.h"
#include "http.h"
#include "server.h"
#include "users.h"
#include "xmem.h"
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXIT_USAGE 2

/* The one process-wide pointer: a signal handler has no other way to reach the server. */
static struct http_server *signal_target;

static void on_signal(int sig)
{
	(void)sig;
	if (signal_target)
		http_server_stop(signal_target);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: encored serve --data DIR [--listen HOST:PORT] [options]\n"
		"       encored seed-demo --data DIR [--tracks N]\n"
		"       encored user add --data DIR [--admin] [--tier free|premium] [--country CC] NAME PASSWORD\n"
		"       encored --help | --version\n");
}

static int ensure_dir(const char *dir)
{
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "encored: cannot create %s: %s\n", dir, strerror(errno));
		return -1;
	}
	return 0;
}

static int parse_rate(const char *s, double *rate, double *burst)
{
	char *end;
	*rate = strtod(s, &end);
	if (end == s || *rate < 0)
		return -1;
	*burst = *rate * 2;
	if (*end == ':') {
		*burst = strtod(end + 1, &end);
		if (*burst < 1)
			return -1;
	}
	return *end ? -1 : 0;
}

static int cmd_serve(int argc, char **argv)
{
	struct server_options o;
	server_options_defaults(&o);
	static const struct option opts[] = {
		{"data", required_argument, 0, 'd'},
		{"listen", required_argument, 0, 'l'},
		{"workers", required_argument, 0, 'w'},
		{"token-ttl", required_argument, 0, 't'},
		{"rate-limit-user", required_argument, 0, 'u'},
		{"rate-limit-ip", required_argument, 0, 'i'},
		{"max-body", required_argument, 0, 'b'},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	char *host = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd': o.data_dir = optarg; break;
		case 'l': {
			const char *colon = strrchr(optarg, ':');
			if (!colon) {
				fprintf(stderr, "encored: --listen wants HOST:PORT\n");
				return EXIT_USAGE;
			}
			free(host);
			host = xstrndup(optarg, (size_t)(colon - optarg));
			o.host = host;
			o.port = atoi(colon + 1);
			break;
		}
		case 'w': o.workers = atoi(optarg); break;
		case 't': o.token_ttl_s = atoi(optarg); break;
		case 'u':
			if (parse_rate(optarg, &o.user_rate, &o.user_burst) != 0) {
				fprintf(stderr, "encored: --rate-limit-user wants RATE[:BURST]\n");
				return EXIT_USAGE;
			}
			break;
		case 'i':
			if (parse_rate(optarg, &o.ip_rate, &o.ip_burst) != 0) {
				fprintf(stderr, "encored: --rate-limit-ip wants RATE[:BURST]\n");
				return EXIT_USAGE;
			}
			break;
		case 'b': o.max_body = (size_t)strtoull(optarg, NULL, 10); break;
		case 'h':
			printf("usage: encored serve --data DIR [--listen HOST:PORT] [--workers N] [--token-ttl SECONDS]\n"
			       "                     [--rate-limit-user RATE[:BURST]] [--rate-limit-ip RATE[:BURST]] [--max-body BYTES]\n");
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (!o.data_dir) {
		fprintf(stderr, "encored: serve needs --data DIR\n");
		return EXIT_USAGE;
	}
	if (o.port < 0 || o.port > 65535 || o.token_ttl_s <= 0) {
		fprintf(stderr, "encored: bad --listen port or --token-ttl\n");
		return EXIT_USAGE;
	}
	if (ensure_dir(o.data_dir) != 0)
		return 1;

	int rc = 1;
	char err[512];
	sqlite3 *db = NULL;
	struct http_server *hs = NULL;
	struct server s;
	memset(&s, 0, sizeof(s));
	s.opt = o;
	s.jwt_keys = keyring_new();
	s.user_limits = ratelimit_new(o.user_rate, o.user_burst);
	s.ip_limits = ratelimit_new(o.ip_rate, o.ip_burst);
	s.meta_cache = ttlcache_new(o.metadata_ttl_ms, 100000);

	/* Migrate once here so workers never race on the schema. */
	if (db_open(o.data_dir, &db, err, sizeof(err)) != 0) {
		fprintf(stderr, "encored: %s\n", err);
		goto out;
	}
	if (server_load_keys(&s, err, sizeof(err)) != 0) {
		fprintf(stderr, "encored: %s\n", err);
		goto out;
	}
	struct http_config hc = {
		.host = o.host,
		.port = o.port,
		.workers = o.workers,
		.max_body = o.max_body,
		.app = server_http_app(&s),
	};
	hs = http_server_new(&hc, err, sizeof(err));
	if (!hs) {
		fprintf(stderr, "encored: %s\n", err);
		goto out;
	}
	snprintf(s.base_url, sizeof(s.base_url), "http://%s:%d", o.host, http_server_port(hs));
	printf("listening on %s\n", s.base_url);
	fflush(stdout);

	signal_target = hs;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	http_server_run(hs);
	fprintf(stderr, "encored: shutting down\n");
	rc = 0;
out:
	signal_target = NULL;
	http_server_free(hs);
	db_close(db);
	keyring_free(s.jwt_keys);
	ratelimit_free(s.user_limits);
	ratelimit_free(s.ip_limits);
	ttlcache_free(s.meta_cache);
	free(host);
	return rc;
}

static const struct {
	const char *name, *tier, *country;
	bool admin;
} DEMO_USERS[] = {
	{"alice", "premium", "SE", false},
	{"bob", "free", "US", false},
	{"chen", "premium", "JP", false},
	{"admin", "premium", "SE", true},
};

static int cmd_seed_demo(int argc, char **argv)
{
	const char *data = NULL;
	int ntracks = 60;
	static const struct option opts[] = {
		{"data", required_argument, 0, 'd'},
		{"tracks", required_argument, 0, 'n'},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd': data = optarg; break;
		case 'n': ntracks = atoi(optarg); break;
		case 'h':
			printf("usage: encored seed-demo --data DIR [--tracks N]\n");
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (!data || ntracks < 1 || ntracks > 100000) {
		fprintf(stderr, "encored: seed-demo needs --data DIR and 1 <= --tracks <= 100000\n");
		return EXIT_USAGE;
	}
	if (ensure_dir(data) != 0)
		return 1;
	char err[512];
	sqlite3 *db;
	if (db_open(data, &db, err, sizeof(err)) != 0) {
		fprintf(stderr, "encored: %s\n", err);
		return 1;
	}
	int rc = 1;
	for (size_t i = 0; i < sizeof(DEMO_USERS) / sizeof(DEMO_USERS[0]); i++) {
		int r = users_add(db, DEMO_USERS[i].name, "demo", DEMO_USERS[i].tier, DEMO_USERS[i].country,
				  DEMO_USERS[i].admin, err, sizeof(err));
		if (r != 0 && r != -EEXIST) {
			fprintf(stderr, "encored: %s\n", err);
			goto out;
		}
	}
	struct demo_track *plan = xcalloc((size_t)ntracks, sizeof(*plan));
	demo_plan(plan, (size_t)ntracks, 42, 30.0);
	db_begin(db);
	int added = 0;
	for (int i = 0; i < ntracks; i++) {
		const struct demo_track *t = &plan[i];
		struct catalog_track ct = {
			.name = t->title, .artist_name = t->artist, .album_name = t->album, .genre = t->genre,
			.label = t->label, .release_date = t->release_date, .markets = t->markets,
			.track_number = t->track_number, .duration_ms = (int)(t->seconds * 1000),
			.popularity = t->popularity, .explicit_ = t->explicit_,
		};
		char id[ID_LEN + 1];
		int r = catalog_add_track(db, &ct, id, err, sizeof(err));
		if (r == 0)
			added++;
		else if (r != -EEXIST) {
			fprintf(stderr, "encored: %s\n", err);
			db_rollback(db);
			free(plan);
			goto out;
		}
	}
	db_commit(db);
	free(plan);
	printf("seeded %d users and %d tracks in %s\n", (int)(sizeof(DEMO_USERS) / sizeof(DEMO_USERS[0])), added, data);
	rc = 0;
out:
	db_close(db);
	return rc;
}

static int cmd_user(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "add") != 0) {
		fprintf(stderr, "usage: encored user add --data DIR [--admin] [--tier free|premium] [--country CC] NAME PASSWORD\n");
		return EXIT_USAGE;
	}
	const char *data = NULL, *tier = "free", *country = "US";
	bool admin = false;
	static const struct option opts[] = {
		{"data", required_argument, 0, 'd'},
		{"admin", no_argument, 0, 'a'},
		{"tier", required_argument, 0, 't'},
		{"country", required_argument, 0, 'c'},
		{0, 0, 0, 0},
	};
	int c;
	optind = 2;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd': data = optarg; break;
		case 'a': admin = true; break;
		case 't': tier = optarg; break;
		case 'c': country = optarg; break;
		default:
			return EXIT_USAGE;
		}
	}
	if (!data || argc - optind != 2) {
		fprintf(stderr, "usage: encored user add --data DIR [--admin] [--tier free|premium] [--country CC] NAME PASSWORD\n");
		return EXIT_USAGE;
	}
	if (ensure_dir(data) != 0)
		return 1;
	char err[512];
	sqlite3 *db;
	if (db_open(data, &db, err, sizeof(err)) != 0) {
		fprintf(stderr, "encored: %s\n", err);
		return 1;
	}
	int r = users_add(db, argv[optind], argv[optind + 1], tier, country, admin, err, sizeof(err));
	db_close(db);
	if (r != 0) {
		fprintf(stderr, "encored: %s\n", err);
		return 1;
	}
	printf("added user %s (%s, %s%s)\n", argv[optind], tier, country, admin ? ", admin" : "");
	return 0;
}

int main(int argc, char **argv)
{
	if (sodium_init() < 0) {
		fprintf(stderr, "encored: libsodium failed to initialise\n");
		return 1;
	}
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "--version") == 0) {
		printf("encored %s\n", ENCORE_VERSION);
		return 0;
	}
	if (strcmp(cmd, "serve") == 0)
		return cmd_serve(argc - 1, argv + 1);
	if (strcmp(cmd, "seed-demo") == 0)
		return cmd_seed_demo(argc - 1, argv + 1);
	if (strcmp(cmd, "user") == 0)
		return cmd_user(argc - 1, argv + 1);
	fprintf(stderr, "encored: unknown command '%s'\n", cmd);
	usage(stderr);
	return EXIT_USAGE;
}
