/* encored: the Encore server. Subcommands: serve, seed-demo, user add. */
#include "version.h"
#include "catalog.h"
#include "db.h"
#include "demo.h"
#include "audiofile.h"
#include "ingest.h"
#include "edge.h"
#include "filecache.h"
#include "objstore.h"
#include "synth.h"
#include "http.h"
#include "playlists.h"
#include "plpush.h"
#include "connect.h"
#include "server.h"
#include "eventlog.h"
#include "metrics.h"
#include "json.h"
#include <time.h>
#include "searchsvc.h"
#include "gencat.h"
#include "users.h"
#include "recmodel.h"
#include "recsvc.h"
#include "xmem.h"
#include "buf.h"
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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
		"       encored seed-demo --data DIR [--tracks N] [--seconds S] [--episodes N]\n"
		"       encored seed-catalog --data DIR --tracks N [--plan synthetic|demo] [--seed S]\n"
		"       encored ingest --data DIR FILE --title T --artist A --album B [options]\n"
		"       encored user add --data DIR [--admin] [--tier free|premium] [--country CC] NAME PASSWORD\n"
		"       encored train --data DIR [--factors N] [--iterations N] [--threads N] [--alpha A] [--reg R]\n"
		"       encored report royalties --data DIR --from YYYY-MM-DD --to YYYY-MM-DD [--format csv|json] [--audit]\n"
		"       encored --help | --version\n"
		"       encored COMMAND --help\n");
}

/* Each command's --help; main() answers --help and --version for every command before
 * it parses anything, and unknown options print the usage line (the first line). */
static const struct {
	const char *name;
	const char *text;
} command_help[] = {
	{"serve", "usage: encored serve --data DIR [--listen HOST:PORT] [options]\n"
		  "\n"
		  "Serves the Web API, WebSocket push and CDN segments on one port until SIGINT or SIGTERM.\n"
		  "\n"
		  "  --data DIR                 data directory (encore.db, objects/, jwt.keys, cdn.keys)\n"
		  "  --listen HOST:PORT         address to listen on (default 127.0.0.1:8080; port 0 picks one)\n"
		  "  --workers N                HTTP worker threads (default: two per core)\n"
		  "  --io-threads N             HTTP I/O threads, sharing the port (default: one per core)\n"
		  "  --token-ttl SECONDS        access token lifetime (default 3600)\n"
		  "  --rate-limit-user RATE[:BURST]  requests per second per user (default 100:200)\n"
		  "  --rate-limit-ip RATE[:BURST]    requests per second per client address (default 200:400)\n"
		  "  --max-body BYTES           largest request body except uploads (default 1048576)\n"
		  "  --ingest-workers N         transcoding threads (default: one per core)\n"
		  "  --url-ttl SECONDS          lifetime of signed segment URLs (default 3600)\n"
		  "  --edge-mb MB               in-memory edge cache size (default 256)\n"
		  "  --fault-latency-ms N       fault injection: add N ms before every response\n"
		  "  --fault-bandwidth-kbps N   fault injection: throttle segment bodies to N kbit/s\n"
		  "  --fault-error-rate P       fault injection: answer 503 with probability P (0..1)\n"
		  "  --fault-drop-rate P        fault injection: drop the connection with probability P (0..1)\n"
		  "  --offline-license-days N   lifetime of offline licences (default 30)\n"
		  "  --train-interval SECONDS   retrain the recommendation model this often (default: never)\n"
		  "  --fault-recs-error         fault injection: the recommendation model fails (fallbacks answer)\n"
		  "  --fault-service LIST       fault injection: internal services that fail, from\n"
		  "                             search,recs,playlists,metadata (degraded answers follow)\n"
		  "  --recs-check-ms MS         how often to look for a newer model (default 1000)\n"
		  "  --recs-max-age SECONDS     treat an older model as stale and fall back\n"
		  "  --clock-offset-s SECONDS   testing only: shift the clock that decides the week of Discover\n"
		  "                             Weekly/Release Radar and the day of Daily Mixes (may be negative)\n"
		  "  --login-throttle A:I:BASE:CAP  lock an account after A failed logins and an address after I;\n"
		  "                             the lock starts at BASE seconds and doubles up to CAP (default 10:50:1:900)\n"},
	{"seed-demo", "usage: encored seed-demo --data DIR [--tracks N] [--seconds S] [--episodes N]\n"
		      "                         [--episode-seconds S] [--eager N | --lazy | --no-wait]\n"
		      "\n"
		      "Creates the demo users (alice, bob, chen, admin; password demo) and a synthetic catalog.\n"
		      "\n"
		      "  --data DIR                 data directory\n"
		      "  --tracks N                 synthetic tracks to generate (default 60)\n"
		      "  --seconds S                length of each track (default 30)\n"
		      "  --episodes N               podcast episodes to generate (default 3)\n"
		      "  --episode-seconds S        length of each episode (default 90)\n"
		      "  --eager N                  return once the N most popular tracks are transcoded\n"
		      "  --lazy                     return at once; tracks are transcoded in the background\n"
		      "  --no-wait                  do not wait for transcoding to finish\n"},
	{"seed-catalog", "usage: encored seed-catalog --data DIR --tracks N [--plan synthetic|demo] [--seed S]\n"
			 "\n"
			 "Fills the catalog with N generated tracks (metadata only) for search and load tests.\n"
			 "\n"
			 "  --data DIR                 data directory\n"
			 "  --tracks N                 tracks to generate (up to 20000000)\n"
			 "  --plan synthetic|demo      naming plan (default synthetic)\n"
			 "  --seed S                   random seed (default 0)\n"},
	{"ingest", "usage: encored ingest --data DIR FILE --title T --artist A --album B [options]\n"
		   "\n"
		   "Transcodes FILE (WAV, FLAC or Ogg) to the bitrate ladder and adds it to the catalog.\n"
		   "\n"
		   "  --data DIR                 data directory\n"
		   "  --title T                  track title\n"
		   "  --artist A                 artist name (created if new)\n"
		   "  --album B                  album name (created if new)\n"
		   "  --markets CC,...           countries where it is available (default: everywhere)\n"
		   "  --explicit                 mark the track explicit\n"
		   "  --genre G                  artist genre\n"
		   "  --label L                  album label\n"
		   "  --release-date YYYY-MM-DD  album release date\n"
		   "  --popularity N             initial popularity 0..100\n"
		   "  --no-wait                  queue the job and return without waiting\n"},
	{"user", "usage: encored user add --data DIR [--admin] [--tier free|premium] [--country CC] NAME PASSWORD\n"
		 "\n"
		 "  --data DIR                 data directory\n"
		 "  --admin                    grant administrator rights\n"
		 "  --tier free|premium        subscription tier (default free)\n"
		 "  --country CC               ISO country code (default US)\n"},
	{"report", "usage: encored report royalties --data DIR --from YYYY-MM-DD --to YYYY-MM-DD [--format csv|json] [--audit]\n"
		   "\n"
		   "Counts streams per day, track, rights holder and country from the event log.\n"
		   "\n"
		   "  --data DIR                 data directory\n"
		   "  --from YYYY-MM-DD          first day (UTC, inclusive)\n"
		   "  --to YYYY-MM-DD            last day (UTC, inclusive)\n"
		   "  --format csv|json          output format (default csv)\n"
		   "  --audit                    list the event ids behind each count\n"},
	{"train", "usage: encored train --data DIR [--factors N] [--iterations N] [--threads N] [--alpha A] [--reg R]\n"
		  "\n"
		  "Trains the recommendation model (implicit ALS) on the event log and publishes a new\n"
		  "version; a running server switches to it atomically.\n"
		  "\n"
		  "  --data DIR                 data directory\n"
		  "  --factors N                latent factors (default 64)\n"
		  "  --iterations N             ALS iterations (default 15)\n"
		  "  --threads N                solver threads (default: one per core)\n"
		  "  --alpha A                  confidence scale, 1 + A * r (default 40)\n"
		  "  --reg R                    regularisation (default 0.01)\n"},
};

/* Prints NAME's help (whole, or its usage line only) to f; false if NAME is unknown. */
static bool command_usage(const char *name, FILE *f, bool whole)
{
	for (size_t i = 0; i < sizeof(command_help) / sizeof(command_help[0]); i++) {
		if (strcmp(command_help[i].name, name) != 0)
			continue;
		const char *t = command_help[i].text;
		if (whole) {
			fputs(t, f);
		} else {
			const char *nl = strstr(t, "\n\n");
			fprintf(f, "%.*s\n", (int)(nl ? nl - t : (ptrdiff_t)strlen(t)), t);
		}
		return true;
	}
	return false;
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

/* Rendered track objects carry popularity; drop them when listening moved it. */
static void on_popularity_change(void *ctx)
{
	struct server *s = ctx;
	ttlcache_clear(s->meta_cache);
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
		{"ingest-workers", required_argument, 0, 'I'},
		{"url-ttl", required_argument, 0, 'U'},
		{"offline-license-days", required_argument, 0, 'O'},
		{"edge-mb", required_argument, 0, 'E'},
		{"fault-latency-ms", required_argument, 0, 'L'},
		{"fault-bandwidth-kbps", required_argument, 0, 'B'},
		{"fault-error-rate", required_argument, 0, 'R'},
		{"fault-drop-rate", required_argument, 0, 'D'},
		{"login-throttle", required_argument, 0, 'T'},
		{"train-interval", required_argument, 0, 1001},
		{"fault-recs-error", no_argument, 0, 1002},
		{"recs-check-ms", required_argument, 0, 1003},
		{"recs-max-age", required_argument, 0, 1004},
		{"fault-service", required_argument, 0, 1005},
		{"clock-offset-s", required_argument, 0, 1006},
		{"io-threads", required_argument, 0, 1007},
		{0, 0, 0, 0},
	};
	char host[256] = "";   /* on the stack: the usage errors below return early */
	int c, io_threads = 0;
	unsigned fault_services = 0;
	struct recsvc_options ro;
	recsvc_options_defaults(&ro);
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd': o.data_dir = optarg; break;
		case 1001: ro.train_interval_s = atoi(optarg); break;
		case 1002: ro.fault = true; break;
		case 1003: ro.check_interval_ms = atoi(optarg); break;
		case 1004: ro.max_age_s = atoi(optarg); break;
		case 1005: {
			unsigned bits;
			if (faults_parse_services(optarg, &bits) != 0) {
				fprintf(stderr, "encored: --fault-service wants names from search,recs,playlists,metadata\n");
				return EXIT_USAGE;
			}
			fault_services |= bits;
			break;
		}
		case 1006: ro.clock_offset_s = strtoll(optarg, NULL, 10); break;
		case 'l': {
			const char *colon = strrchr(optarg, ':');
			if (!colon) {
				fprintf(stderr, "encored: --listen wants HOST:PORT\n");
				return EXIT_USAGE;
			}
			snprintf(host, sizeof(host), "%.*s", (int)(colon - optarg), optarg);
			o.host = host;
			o.port = atoi(colon + 1);
			break;
		}
		case 'w': o.workers = atoi(optarg); break;
		case 1007: io_threads = atoi(optarg); break;
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
		case 'I': o.ingest_workers = atoi(optarg); break;
		case 'U': o.url_ttl_s = atoi(optarg); break;
		case 'O': o.offline_license_days = atoi(optarg); break;
		case 'E': o.edge_bytes = (size_t)strtoull(optarg, NULL, 10) << 20; break;
		case 'L': o.fault_latency_ms = atoi(optarg); break;
		case 'B': o.fault_bandwidth_kbps = atoi(optarg); break;
		case 'R': o.fault_error_rate = atof(optarg); break;
		case 'D': o.fault_drop_rate = atof(optarg); break;
		case 'T':
			if (sscanf(optarg, "%d:%d:%d:%d", &o.login_max_account, &o.login_max_ip, &o.login_base_s,
				   &o.login_cap_s) != 4 || o.login_max_account < 0 || o.login_max_ip < 0 ||
			    o.login_base_s < 1 || o.login_cap_s < o.login_base_s) {
				fprintf(stderr, "encored: --login-throttle wants ACCOUNT_FAILURES:IP_FAILURES:BASE_S:CAP_S\n");
				return EXIT_USAGE;
			}
			break;
		default:
			command_usage("serve", stderr, false);
			return EXIT_USAGE;
		}
	}
	if (!o.data_dir) {
		fprintf(stderr, "encored: serve needs --data DIR\n");
		return EXIT_USAGE;
	}
	if (o.port < 0 || o.port > 65535 || o.token_ttl_s <= 0 || o.url_ttl_s <= 0 || o.offline_license_days <= 0) {
		fprintf(stderr, "encored: bad --listen port, --token-ttl or --url-ttl\n");
		return EXIT_USAGE;
	}
	if (o.fault_latency_ms < 0 || o.fault_bandwidth_kbps < 0 || o.fault_error_rate < 0 || o.fault_error_rate > 1 ||
	    o.fault_drop_rate < 0 || o.fault_drop_rate > 1) {
		fprintf(stderr, "encored: fault rates must be in [0, 1] and latency/bandwidth non-negative\n");
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
	s.cdn_keys = keyring_new();
	pthread_rwlock_init(&s.cdn_keys_lock, NULL);
	/* Edge memfds and open origin files hold descriptors: a quarter and an eighth of the
	 * limit, the rest stays for connections. (The limit is not raised: libwebsockets
	 * sizes its tables by it.) */
	struct rlimit nofile;
	size_t fd_budget = 1024;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY)
		fd_budget = (size_t)nofile.rlim_cur;
	s.edge = edge_new(o.edge_bytes, fd_budget / 4 < 4096 ? fd_budget / 4 : 4096);
	s.files = filecache_new(fd_budget / 8 < 1024 ? fd_budget / 8 : 1024);
	atomic_store(&s.faults.latency_ms, o.fault_latency_ms);
	atomic_store(&s.faults.bandwidth_kbps, o.fault_bandwidth_kbps);
	atomic_store(&s.faults.error_ppm, (int)(o.fault_error_rate * 1e6));
	if (ro.fault)
		fault_services |= FAULT_SVC_RECS;   /* --fault-recs-error is the older spelling */
	ro.fault = fault_services & FAULT_SVC_RECS;
	atomic_store(&s.faults.services, fault_services);
	atomic_store(&s.faults.drop_ppm, (int)(o.fault_drop_rate * 1e6));
	s.user_limits = ratelimit_new(o.user_rate, o.user_burst);
	s.ip_limits = ratelimit_new(o.ip_rate, o.ip_burst);
	/* Failures are remembered for the longest lock, so a slow guesser gains nothing. */
	s.login_accounts = loginguard_new(o.login_max_account, o.login_base_s, o.login_cap_s, o.login_cap_s);
	s.login_ips = loginguard_new(o.login_max_ip, o.login_base_s, o.login_cap_s, o.login_cap_s);
	s.meta_cache = ttlcache_new(o.metadata_ttl_ms, 100000);
	s.metrics = metrics_new();
	s.playlists = playlists_new();
	s.plhub = plhub_new(s.jwt_keys, s.playlists, o.data_dir);
	s.connect = connhub_new(s.jwt_keys, o.data_dir);

	/* Migrate once here so workers never race on the schema. */
	if (db_open(o.data_dir, &db, err, sizeof(err)) != 0) {
		fprintf(stderr, "encored: %s\n", err);
		goto out;
	}
	if (server_load_keys(&s, err, sizeof(err)) != 0) {
		fprintf(stderr, "encored: %s\n", err);
		goto out;
	}
	s.store = objstore_open(o.data_dir, err, sizeof(err));
	if (!s.store) {
		fprintf(stderr, "encored: %s\n", err);
		goto out;
	}
	/* Search: built from the database before serving; ingest keeps it current. */
	s.search = searchsvc_new(o.metadata_ttl_ms, 4096);
	struct searchsvc_build_stats bs;
	if (searchsvc_build(s.search, db, &bs) != 0) {
		fprintf(stderr, "encored: cannot build the search index\n");
		goto out;
	}
	fprintf(stderr, "encored: search index: %zu objects (%zu tracks, %zu artists, %zu albums, %zu shows, %zu episodes, %zu playlists) in %.0f ms\n",
		bs.total, bs.count[SEARCH_TRACK], bs.count[SEARCH_ARTIST], bs.count[SEARCH_ALBUM], bs.count[SEARCH_SHOW],
		bs.count[SEARCH_EPISODE], bs.count[SEARCH_PLAYLIST], bs.ms);
	s.ingest = ingest_new(o.data_dir, o.ingest_workers, err, sizeof(err));
	if (!s.ingest) {
		fprintf(stderr, "encored: %s\n", err);
		goto out;
	}
	/* Consumers start after migrations and ingest recovery, on their own threads and connections. */
	s.events = eventlog_runner_new(o.data_dir, on_popularity_change, &s, err, sizeof(err));
	if (!s.events) {
		fprintf(stderr, "encored: %s\n", err);
		goto out;
	}
	/* Recommendations: the newest model if any (serving falls back without one), polled for
	 * new versions every --recs-check-ms, retrained every --train-interval seconds when set. */
	ro.data_dir = o.data_dir;
	s.recs = recsvc_new(&ro, err, sizeof(err));
	if (!s.recs) {
		fprintf(stderr, "encored: %s\n", err);
		goto out;
	}
	ingest_set_hook(s.ingest, searchsvc_ingest_hook, s.search);
	struct http_config hc = {
		.host = o.host,
		.port = o.port,
		.workers = o.workers,
		.io_threads = io_threads,
		.max_body = o.max_body,
		.body_limit = server_body_limit,
		.app = server_http_app(&s),
		.ws = connhub_ws_app(s.connect, plhub_ws_app(s.plhub)),
	};
	hs = http_server_new(&hc, err, sizeof(err));
	if (!hs) {
		fprintf(stderr, "encored: %s\n", err);
		goto out;
	}
	plhub_attach(s.plhub, hs);
	connhub_attach(s.connect, hs);
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
	recsvc_free(s.recs);
	eventlog_runner_free(s.events);
	ingest_free(s.ingest);
	searchsvc_free(s.search);
	db_close(db);
	keyring_free(s.jwt_keys);
	keyring_free(s.cdn_keys);
	pthread_rwlock_destroy(&s.cdn_keys_lock);
	edge_free(s.edge);
	filecache_free(s.files);
	objstore_free(s.store);
	ratelimit_free(s.user_limits);
	ratelimit_free(s.ip_limits);
	loginguard_free(s.login_accounts);
	loginguard_free(s.login_ips);
	ttlcache_free(s.meta_cache);
	metrics_free(s.metrics);
	connhub_free(s.connect);
	plhub_free(s.plhub);
	playlists_free(s.playlists);
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

struct progress_bar {
	bool tty;
	int last_shown;
	const char *what;
};

/* A progress bar on a terminal, a line per 10% otherwise (logs stay short). */
static void show_progress(void *ctx, int done, int total)
{
	struct progress_bar *pb = ctx;
	if (total <= 0)
		return;
	if (pb->tty) {
		int width = 30, filled = done * width / total;
		fprintf(stderr, "\r%s [%.*s%*s] %d/%d", pb->what, filled, "##############################",
			width - filled, "", done, total);
		if (done == total)
			fputc('\n', stderr);
	} else if (done * 10 / total != pb->last_shown * 10 / total || done == total) {
		if (done != pb->last_shown)
			fprintf(stderr, "%s: %d/%d\n", pb->what, done, total);
	}
	pb->last_shown = done;
}

/* Renders, encodes to WAV and submits one synthesized item through the ingest pipeline. */
static int submit_pcm(struct ingest *ig, sqlite3 *db, struct pcm *pcm, const struct ingest_meta *m, char *err, size_t errlen)
{
	uint8_t *wav = NULL;
	size_t wlen = 0;
	int rc = audiofile_wav_mem(pcm, &wav, &wlen);
	if (rc != 0) {
		snprintf(err, errlen, "cannot encode WAV");
		return rc;
	}
	int64_t job;
	char id[ID_LEN + 1];
	rc = ingest_submit(ig, db, wav, wlen, m, &job, id, err, errlen);
	free(wav);
	return rc;
}

static int cmd_seed_demo(int argc, char **argv)
{
	const char *data = NULL;
	int ntracks = 60, nepisodes = 3;
	double seconds = 30, episode_seconds = 90;
	bool wait = true;
	int eager = -1;
	static const struct option opts[] = {
		{"data", required_argument, 0, 'd'},
		{"tracks", required_argument, 0, 'n'},
		{"eager", required_argument, 0, 'g'},
		{"lazy", no_argument, 0, 'z'},
		{"seconds", required_argument, 0, 's'},
		{"episodes", required_argument, 0, 'e'},
		{"episode-seconds", required_argument, 0, 'E'},
		{"no-wait", no_argument, 0, 'W'},
		{0, 0, 0, 0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd': data = optarg; break;
		case 'n': ntracks = atoi(optarg); break;
		case 's': seconds = atof(optarg); break;
		case 'e': nepisodes = atoi(optarg); break;
		case 'E': episode_seconds = atof(optarg); break;
		case 'W': wait = false; break;
		case 'g': eager = atoi(optarg); break;
		case 'z': eager = 0; break;
		default:
			command_usage("seed-demo", stderr, false);
			return EXIT_USAGE;
		}
	}
	if (!data || ntracks < 0 || ntracks > 100000 || seconds < 3 || seconds > 600 || nepisodes < 0 ||
	    nepisodes > 100 || episode_seconds < 3 || episode_seconds > 3600) {
		fprintf(stderr, "encored: seed-demo needs --data DIR, 0 <= --tracks <= 100000, 3 <= --seconds <= 600\n");
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
	struct ingest *ig = NULL;
	struct demo_track *plan = NULL;
	for (size_t i = 0; i < sizeof(DEMO_USERS) / sizeof(DEMO_USERS[0]); i++) {
		int r = users_add(db, DEMO_USERS[i].name, "demo", DEMO_USERS[i].tier, DEMO_USERS[i].country,
				  DEMO_USERS[i].admin, err, sizeof(err));
		if (r != 0 && r != -EEXIST) {
			fprintf(stderr, "encored: %s\n", err);
			goto out;
		}
	}
	if (eager == 0)
		wait = false;
	ig = ingest_new(data, wait ? 0 : -1, err, sizeof(err));
	if (!ig) {
		fprintf(stderr, "encored: %s\n", err);
		goto out;
	}
	plan = xcalloc((size_t)(ntracks ? ntracks : 1), sizeof(*plan));
	demo_plan(plan, (size_t)ntracks, 42, seconds);
	struct progress_bar pb = {.tty = isatty(2), .what = "synthesizing"};
	int added = 0;
	for (int i = 0; i < ntracks; i++) {
		const struct demo_track *t = &plan[i];
		struct synth_params sp;
		int g = synth_genre_from_name(strcmp(t->genre, "classical") == 0 ? "piano" : t->genre);
		synth_params_preset(&sp, g < 0 ? SYNTH_TECHNO : (enum synth_genre)g, t->seed);
		sp.tempo = t->tempo;
		sp.key = t->key;
		sp.mode = t->mode ? SYNTH_MAJOR : SYNTH_MINOR;
		sp.energy = t->energy;
		sp.danceability = t->danceability;
		sp.duration = t->seconds;
		sp.rate = 44100;
		struct pcm *pcm = synth_render(&sp);
		if (!pcm) {
			fprintf(stderr, "encored: synthesizer refused track %d\n", i);
			goto out;
		}
		struct ingest_meta m = {
			.kind = INGEST_TRACK, .title = t->title, .artist = t->artist, .album = t->album,
			.genre = t->genre, .label = t->label, .release_date = t->release_date, .markets = t->markets,
			.track_number = t->track_number, .popularity = t->popularity, .explicit_ = t->explicit_,
			/* Popular tracks are transcoded first so the demo can start before the tail is done. */
			.priority = t->popularity,
		};
		int r = submit_pcm(ig, db, pcm, &m, err, sizeof(err));
		pcm_free(pcm);
		if (r == 0)
			added++;
		else if (r != -EEXIST) {
			fprintf(stderr, "encored: %s\n", err);
			goto out;
		}
		show_progress(&pb, i + 1, ntracks);
	}
	static const char *const TOPICS[] = {
		"How a stream starts in one round trip", "Why segments are four seconds long",
		"Loudness, true peak and the minus fourteen target", "Collaborative playlists that converge",
		"Taste profiles from implicit feedback",
	};
	int added_eps = 0;
	for (int i = 0; i < nepisodes; i++) {
		struct pcm *pcm = synth_speech(1000 + (uint64_t)i, episode_seconds, 44100);
		if (!pcm) {
			fprintf(stderr, "encored: speech synthesizer refused episode %d\n", i);
			goto out;
		}
		char title[128], desc[256], date[16];
		snprintf(title, sizeof(title), "Episode %d: %s", i + 1, TOPICS[i % 5]);
		snprintf(desc, sizeof(desc), "The Encore team talks through %s.", TOPICS[i % 5]);
		snprintf(date, sizeof(date), "2026-%02d-01", 1 + i % 12);
		struct ingest_meta m = {
			.kind = INGEST_EPISODE, .show = "Under the Hood", .publisher = "Encore Radio",
			.show_description = "How a music streaming service works, one part at a time.",
			.title = title, .description = desc, .release_date = date, .episode_number = i + 1,
		};
		int r = submit_pcm(ig, db, pcm, &m, err, sizeof(err));
		pcm_free(pcm);
		if (r == 0)
			added_eps++;
		else if (r != -EEXIST) {
			fprintf(stderr, "encored: %s\n", err);
			goto out;
		}
	}
	if (wait) {
		struct progress_bar tb = {.tty = isatty(2), .what = "transcoding"};
		int failed = ingest_wait_some(ig, eager, show_progress, &tb);
		if (failed > 0) {
			fprintf(stderr, "encored: %d ingest job%s failed (see above)\n", failed, failed == 1 ? "" : "s");
			goto out;
		}
	}
	printf("seeded %d users, %d tracks and %d episodes in %s\n",
	       (int)(sizeof(DEMO_USERS) / sizeof(DEMO_USERS[0])), added, added_eps, data);
	rc = 0;
out:
	ingest_free(ig);
	free(plan);
	db_close(db);
	return rc;
}

/* A generated metadata-only catalog (gencat.h) plus the demo users, for benchmarks and
 * search tests at sizes the audio pipeline could not reach. */
static int cmd_seed_catalog(int argc, char **argv)
{
	const char *data = NULL, *plan = "synthetic";
	long long ntracks = -1;
	unsigned long long seed = 0;
	static const struct option opts[] = {
		{"data", required_argument, 0, 'd'},
		{"tracks", required_argument, 0, 'n'},
		{"plan", required_argument, 0, 'p'},
		{"seed", required_argument, 0, 's'},
		{0, 0, 0, 0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd': data = optarg; break;
		case 'n': ntracks = atoll(optarg); break;
		case 'p': plan = optarg; break;
		case 's': seed = strtoull(optarg, NULL, 10); break;
		default:
			command_usage("seed-catalog", stderr, false);
			return EXIT_USAGE;
		}
	}
	bool synthetic = strcmp(plan, "synthetic") == 0;
	if (!data || ntracks < 0 || ntracks > 20000000 || (!synthetic && strcmp(plan, "demo") != 0)) {
		fprintf(stderr, "encored: seed-catalog needs --data DIR, 0 <= --tracks <= 20000000, --plan synthetic|demo\n");
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
	struct gencat_stats st;
	if (gencat_seed(db, synthetic ? GENCAT_SYNTHETIC : GENCAT_DEMO, (size_t)ntracks, seed, &st, err, sizeof(err)) != 0) {
		fprintf(stderr, "encored: %s\n", err);
		goto out;
	}
	printf("seeded %zu tracks, %zu artists and %zu albums (%s, metadata only) in %s in %.1f s\n", st.tracks,
	       st.artists, st.albums, plan, data, st.seconds);
	rc = 0;
out:
	db_close(db);
	return rc;
}

static int cmd_ingest(int argc, char **argv)
{
	const char *data = NULL;
	struct ingest_meta m = {.kind = INGEST_TRACK};
	bool wait = true;
	static const struct option opts[] = {
		{"data", required_argument, 0, 'd'},
		{"title", required_argument, 0, 't'},
		{"artist", required_argument, 0, 'a'},
		{"album", required_argument, 0, 'A'},
		{"markets", required_argument, 0, 'm'},
		{"explicit", no_argument, 0, 'x'},
		{"genre", required_argument, 0, 'g'},
		{"label", required_argument, 0, 'l'},
		{"release-date", required_argument, 0, 'r'},
		{"popularity", required_argument, 0, 'p'},
		{"no-wait", no_argument, 0, 'W'},
		{0, 0, 0, 0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd': data = optarg; break;
		case 't': m.title = optarg; break;
		case 'a': m.artist = optarg; break;
		case 'A': m.album = optarg; break;
		case 'm': m.markets = optarg; break;
		case 'x': m.explicit_ = true; break;
		case 'g': m.genre = optarg; break;
		case 'l': m.label = optarg; break;
		case 'r': m.release_date = optarg; break;
		case 'p': m.popularity = atoi(optarg); break;
		case 'W': wait = false; break;
		default:
			command_usage("ingest", stderr, false);
			return EXIT_USAGE;
		}
	}
	if (!data || argc - optind != 1) {
		fprintf(stderr, "usage: encored ingest --data DIR FILE --title T --artist A --album B [options]\n");
		return EXIT_USAGE;
	}
	const char *file = argv[optind];
	if (ensure_dir(data) != 0)
		return 1;
	char err[512];
	int rc = 1;
	uint8_t *bytes = NULL;
	size_t len = 0;
	sqlite3 *db = NULL;
	struct ingest *ig = NULL;
	FILE *f = fopen(file, "rb");
	if (!f) {
		fprintf(stderr, "encored: cannot open %s: %s\n", file, strerror(errno));
		return 1;
	}
	struct buf b = BUF_INIT;
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	bool read_error = ferror(f);
	fclose(f);
	if (read_error) {
		fprintf(stderr, "encored: cannot read %s\n", file);
		buf_free(&b);
		return 1;
	}
	len = b.len;
	bytes = (uint8_t *)buf_steal(&b);
	if (db_open(data, &db, err, sizeof(err)) != 0) {
		fprintf(stderr, "encored: %s\n", err);
		goto out;
	}
	ig = ingest_new(data, wait ? 1 : -1, err, sizeof(err));
	if (!ig) {
		fprintf(stderr, "encored: %s\n", err);
		goto out;
	}
	int64_t job;
	char id[ID_LEN + 1];
	if (ingest_submit(ig, db, bytes, len, &m, &job, id, err, sizeof(err)) != 0) {
		fprintf(stderr, "encored: %s: %s\n", file, err);
		goto out;
	}
	printf("queued job %lld for encore:track:%s\n", (long long)job, id);
	fflush(stdout);
	if (wait) {
		ingest_wait_idle(ig, NULL, NULL);
		struct ingest_job j;
		if (ingest_job_get(db, job, &j) != 0 || strcmp(j.state, "done") != 0) {
			fprintf(stderr, "encored: ingest of %s failed: %s\n", file, j.error);
			goto out;
		}
		printf("ingested encore:track:%s\n", id);
	}
	rc = 0;
out:
	ingest_free(ig);
	db_close(db);
	free(bytes);
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
			command_usage("user", stderr, false);
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

static bool valid_day(const char *d)
{
	int y, m, dd;
	char tail;
	return strlen(d) == 10 && sscanf(d, "%4d-%2d-%2d%c", &y, &m, &dd, &tail) == 3 && m >= 1 && m <= 12 && dd >= 1 &&
	       dd <= 31;
}

/* encored report royalties: the royalties consumer is caught up first (safe beside a
 * running server: consumption is transactional), then streams are counted per day,
 * track, rights holder and country, each count with its event ids under --audit. */
static int cmd_report(int argc, char **argv)
{
	const char *data = NULL, *from = NULL, *to = NULL, *format = "csv";
	bool audit = false;
	static const struct option opts[] = {
		{"data", required_argument, 0, 'd'},
		{"from", required_argument, 0, 'f'},
		{"to", required_argument, 0, 't'},
		{"format", required_argument, 0, 'F'},
		{"audit", no_argument, 0, 'a'},
		{0, 0, 0, 0},
	};
	const char *use = "usage: encored report royalties --data DIR --from YYYY-MM-DD --to YYYY-MM-DD [--format csv|json] [--audit]\n";
	if (argc < 2 || strcmp(argv[1], "royalties") != 0) {
		fputs(use, stderr);
		return EXIT_USAGE;
	}
	int c;
	optind = 2;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd': data = optarg; break;
		case 'f': from = optarg; break;
		case 't': to = optarg; break;
		case 'F': format = optarg; break;
		case 'a': audit = true; break;
		default:
			fputs(use, stderr);
			return EXIT_USAGE;
		}
	}
	if (!data || !from || !to || optind != argc || !valid_day(from) || !valid_day(to) ||
	    (strcmp(format, "csv") != 0 && strcmp(format, "json") != 0)) {
		fputs(use, stderr);
		return EXIT_USAGE;
	}
	char err[512];
	sqlite3 *db;
	if (db_open(data, &db, err, sizeof(err)) != 0) {
		fprintf(stderr, "encored: %s\n", err);
		return 1;
	}
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	if (eventlog_catch_up(db, CONSUMER_ROYALTIES, (int64_t)now.tv_sec * 1000) < 0) {
		fprintf(stderr, "encored: the royalties consumer failed\n");
		db_close(db);
		return 1;
	}
	sqlite3_stmt *st = db_prepare(db,
		"SELECT day, track_id, rights_holder, country, count(*), group_concat(event_id, ' ') FROM"
		" (SELECT * FROM royalty_streams WHERE day >= ?1 AND day <= ?2 ORDER BY event_seq)"
		" GROUP BY day, track_id, rights_holder, country ORDER BY day, track_id, country");
	sqlite3_bind_text(st, 1, from, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, to, -1, SQLITE_STATIC);
	bool json = strcmp(format, "json") == 0;
	struct jw w;
	if (json) {
		jw_init(&w);
		jw_obj(&w);
		jw_kstr(&w, "from", from);
		jw_kstr(&w, "to", to);
		jw_kstr(&w, "rule", "play_end with ms_played >= 30000 on a track");
		jw_key(&w, "rows");
		jw_arr(&w);
	} else {
		printf("day,track_uri,rights_holder,country,streams%s\n", audit ? ",event_ids" : "");
	}
	long long total = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *day = (const char *)sqlite3_column_text(st, 0);
		const char *track = (const char *)sqlite3_column_text(st, 1);
		const char *holder = (const char *)sqlite3_column_text(st, 2);
		const char *country = (const char *)sqlite3_column_text(st, 3);
		long long n = sqlite3_column_int64(st, 4);
		const char *ids = (const char *)sqlite3_column_text(st, 5);
		total += n;
		char uri[64];
		snprintf(uri, sizeof(uri), "encore:track:%s", track);
		if (json) {
			jw_obj(&w);
			jw_kstr(&w, "day", day);
			jw_kstr(&w, "track_uri", uri);
			jw_kstr(&w, "rights_holder", holder);
			jw_kstr(&w, "country", country);
			jw_kint(&w, "streams", n);
			if (audit) {
				jw_key(&w, "event_ids");
				jw_arr(&w);
				for (const char *p = ids; p && *p;) {
					const char *sp = strchr(p, ' ');
					size_t len = sp ? (size_t)(sp - p) : strlen(p);
					jw_strn(&w, p, len);
					p += len + (sp ? 1 : 0);
				}
				jw_arr_end(&w);
			}
			jw_obj_end(&w);
		} else {
			/* Labels may hold commas or quotes: quote the field CSV-style. */
			struct buf q = BUF_INIT;
			buf_putc(&q, '"');
			for (const char *p = holder; *p; p++) {
				if (*p == '"')
					buf_putc(&q, '"');
				buf_putc(&q, *p);
			}
			buf_putc(&q, '"');
			printf("%s,%s,%s,%s,%lld%s%s\n", day, uri, q.data, country, n, audit ? "," : "", audit ? ids : "");
			buf_free(&q);
		}
	}
	sqlite3_finalize(st);
	if (json) {
		jw_arr_end(&w);
		jw_kint(&w, "total_streams", total);
		jw_obj_end(&w);
		char *out = jw_finish(&w);
		printf("%s\n", out);
		free(out);
	}
	db_close(db);
	return 0;
}

static int cmd_train(int argc, char **argv)
{
	struct recmodel_train_opts o;
	recmodel_train_opts_defaults(&o);
	const char *data = NULL;
	static const struct option opts[] = {
		{"data", required_argument, 0, 'd'},
		{"factors", required_argument, 0, 'f'},
		{"iterations", required_argument, 0, 'i'},
		{"threads", required_argument, 0, 't'},
		{"alpha", required_argument, 0, 'a'},
		{"reg", required_argument, 0, 'r'},
		{0, 0, 0, 0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd': data = optarg; break;
		case 'f': o.factors = atoi(optarg); break;
		case 'i': o.iterations = atoi(optarg); break;
		case 't': o.threads = atoi(optarg); break;
		case 'a': o.alpha = (float)atof(optarg); break;
		case 'r': o.reg = (float)atof(optarg); break;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (!data || o.factors < 1 || o.factors > 1024 || o.iterations < 0 || o.threads < 1 || !(o.alpha > 0) || !(o.reg >= 0)) {
		fprintf(stderr, "encored: train needs --data DIR; factors 1-1024, iterations >= 0, threads >= 1, alpha > 0, reg >= 0\n");
		return EXIT_USAGE;
	}
	char err[512];
	struct recmodel_train_stats st;
	if (recmodel_train(data, &o, &st, err, sizeof(err)) != 0) {
		fprintf(stderr, "encored: train: %s\n", err);
		return 1;
	}
	printf("model version %lld: %d users, %d items, %lld interactions, %d factors, loss %.4g, %.0f ms -> %s\n",
	       (long long)st.version, st.users, st.items, (long long)st.nnz, o.factors, st.loss, st.train_ms, st.path);
	return 0;
}

int main(int argc, char **argv)
{
	/* SQLite's memory statistics put one process-wide mutex around every allocation it
	 * makes; with a dozen threads in SQLite (workers, the event appender and consumers)
	 * that lock was a measurable share of ingest. Nothing here reads the statistics. */
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
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
	if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
		printf("encored %s\n", ENCORE_VERSION);
		return 0;
	}
	if (cmd[0] == '-') {
		fprintf(stderr, "encored: unknown option '%s'\n", cmd);
		usage(stderr);
		return EXIT_USAGE;
	}
	for (int i = 2; i < argc && strcmp(argv[i], "--") != 0; i++) {
		bool h = strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0;
		bool v = strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0;
		if (h && command_usage(cmd, stdout, true))
			return 0;
		if (v) {
			printf("encored %s\n", ENCORE_VERSION);
			return 0;
		}
	}
	if (strcmp(cmd, "serve") == 0)
		return cmd_serve(argc - 1, argv + 1);
	if (strcmp(cmd, "seed-demo") == 0)
		return cmd_seed_demo(argc - 1, argv + 1);
	if (strcmp(cmd, "seed-catalog") == 0)
		return cmd_seed_catalog(argc - 1, argv + 1);
	if (strcmp(cmd, "ingest") == 0)
		return cmd_ingest(argc - 1, argv + 1);
	if (strcmp(cmd, "user") == 0)
		return cmd_user(argc - 1, argv + 1);
	if (strcmp(cmd, "report") == 0)
		return cmd_report(argc - 1, argv + 1);
	if (strcmp(cmd, "train") == 0)
		return cmd_train(argc - 1, argv + 1);
	fprintf(stderr, "encored: unknown command '%s'\n", cmd);
	usage(stderr);
	return EXIT_USAGE;
}
