/* server: encored's application layer. The gateway (request ids, rate limits, JWT checks,
 * ETags) wraps every route; routes are plain functions of a call. */
#ifndef ENCORE_SERVER_H
#define ENCORE_SERVER_H
#include "http.h"
#include "json.h"
#include "eventlog.h"
#include "metrics.h"
#include "jwt.h"
#include "keyring.h"
#include "ratelimit.h"
#include "loginguard.h"
#include "router.h"
#include "ttlcache.h"
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>

struct server_options {
	const char *data_dir;
	const char *host;
	int port;
	int workers;
	size_t max_body;
	int token_ttl_s;          /* access token lifetime */
	double user_rate, user_burst;
	double ip_rate, ip_burst;
	int64_t metadata_ttl_ms;
	int ingest_workers;       /* 0 = one per core */
	int url_ttl_s;            /* lifetime of signed CDN URLs */
	size_t edge_bytes;        /* edge cache capacity */
	/* Initial fault injection on the CDN routes. */
	int fault_latency_ms, fault_bandwidth_kbps;
	double fault_error_rate, fault_drop_rate;
	size_t max_upload;        /* body limit for POST /v1/admin/ingest */
	/* Login throttling (loginguard.h): failures before a lock, per account and per client
	 * address; first and longest lock in seconds. */
	int login_max_account, login_max_ip, login_base_s, login_cap_s;
	int offline_license_days; /* lifetime of an offline licence (default 30) */
};

void server_options_defaults(struct server_options *o);

/* Faults on the CDN routes, changeable at run time (POST /v1/admin/faults). Rates are
 * stored in parts per million so they fit an atomic int. */
struct faults {
	atomic_int latency_ms, bandwidth_kbps, error_ppm, drop_ppm;
	atomic_uint services;   /* FAULT_SVC_* bits: internal services made to fail */
};

/* Internal service boundaries that fault injection can break (--fault-service,
 * POST /v1/admin/faults "services"). Each degrades as docs/PROTOCOL.md promises:
 * search answers from its cache or a plain catalog scan, recommendations fall back to
 * genre and popular picks, playlists and metadata answer 503 and clients use their
 * caches and edit queues. */
enum {
	FAULT_SVC_SEARCH = 1u << 0,
	FAULT_SVC_RECS = 1u << 1,
	FAULT_SVC_PLAYLISTS = 1u << 2,
	FAULT_SVC_METADATA = 1u << 3,
};
/* Parses "search,recs" (or "none") into FAULT_SVC_* bits; -EINVAL on an unknown name. */
int faults_parse_services(const char *list, unsigned *out);
/* Name of one FAULT_SVC_* bit. */
const char *faults_service_name(unsigned bit);

struct server {
	struct server_options opt;
	struct keyring *jwt_keys;
	struct keyring *cdn_keys;
	pthread_rwlock_t cdn_keys_lock;   /* rotation writes while routes verify */
	struct edge *edge;
	struct filecache *files;          /* origin objects by CDN target; may be NULL */
	struct objstore *store;
	struct faults faults;
	atomic_ullong sig_failures, cdn_requests, origin_requests, faults_injected;
	atomic_ullong origin_sendfile;    /* origin requests sent from the open file on an I/O thread */
	struct ratelimit *user_limits;
	struct ratelimit *ip_limits;
	struct loginguard *login_accounts;  /* password-grant failures per username */
	struct loginguard *login_ips;       /* and per client address */
	struct ttlcache *meta_cache;
	struct ingest *ingest;
	struct searchsvc *search;     /* the search index and its result cache (searchsvc.h) */
	struct playlists *playlists;  /* in-memory playlist replicas and caches */
	struct plhub *plhub;          /* WebSocket subscribers for live playlist pushes */
	struct connhub *connect;      /* Connect: devices and playback state (connect.h) */
	char base_url[128];           /* http://host:port, for href fields */
	atomic_ullong requests, rate_limited, auth_failures;
	struct metrics *metrics;      /* per-route request counters and latency histograms */
	struct eventlog_runner *events; /* the event log's consumers (NULL in tools and tests) */
	atomic_ullong events_accepted, events_duplicate;
	struct recsvc *recs;          /* the served recommendation model (recsvc.h); NULL in tools */
};

/* Per worker thread. */
struct worker {
	struct server *srv;
	sqlite3 *db;
};

struct call {
	struct server *srv;
	struct worker *w;
	sqlite3 *db;
	struct http_req *req;
	struct http_resp *resp;
	struct jwt_claims user;       /* valid when the route needs auth */
	char params[ROUTE_MAX_PARAMS][ROUTE_PARAM_MAX];
	int nparams;
};

enum route_flags {
	ROUTE_PUBLIC = 1,   /* no token needed */
	ROUTE_ADMIN = 2,    /* token must carry admin */
};

typedef void (*route_fn)(struct call *c);

struct route {
	const char *method;
	const char *pattern;
	route_fn fn;
	unsigned flags;
};

/* Loads or creates the signing keys (0600 file in the data dir). 0 or -errno with err. */
int server_load_keys(struct server *s, char *err, size_t errlen);
/* The http_app that plugs this server into the http layer. */
struct http_app server_http_app(struct server *s);

/* Reply helpers for routes. */
void call_error(struct call *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void call_json(struct call *c, int status, char *json);
/* Parses the request body as a JSON object; on failure replies 400 and returns NULL. Free with yajl_tree_free. */
yajl_val call_body_json(struct call *c);
/* Reads limit/offset query args with Web API bounds; on bad input replies 400 and returns false. */
bool call_paging(struct call *c, int max_limit, int *limit, int *offset);
/* Writes a paging object's envelope fields (href, limit, next, offset, previous, total)
 * for the route's own path; items must be written by the caller under "items". */
void call_paging_fields(struct call *c, struct jw *w, int limit, int offset, long long total);

/* Route tables of each module. */
extern const struct route auth_routes[];
extern const struct route catalog_routes[];
extern const struct route ingest_routes[];
extern const struct route delivery_routes[];
extern const struct route events_routes[];

/* The pattern of the route that path belongs to (any method), or "unmatched". Static string. */
const char *server_route_pattern(const char *path);
extern const struct route search_routes[];
extern const struct route playlist_routes[];
extern const struct route library_routes[];
extern const struct route offline_routes[];
extern const struct route recs_routes[];
extern const struct route connect_routes[];


/* The CDN fast path: answers edge-cache hits on the service thread (http_app.fast). */
bool delivery_fast(void *ctx, struct http_req *req, struct http_resp *resp);

/* Body limit per request: uploads get max_upload, everything else max_body. */
size_t server_body_limit(void *ctx, const char *method, const char *path, size_t max_body);

#endif
