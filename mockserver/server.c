/* server: the gateway. Order per request: IP rate limit, route lookup, token check,
 * per-user rate limit, handler, then ETag/If-None-Match for successful GETs. */
#include "server.h"
#include "buf.h"
#include "db.h"
#include "json.h"
#include "keys.h"
#include "playlists.h"
#include "xmem.h"
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const struct route *const ROUTE_TABLES[] = {auth_routes, catalog_routes, ingest_routes, delivery_routes,
							   events_routes, search_routes, playlist_routes, library_routes, offline_routes, recs_routes, connect_routes};
/* The internal service behind each table whose routes the gateway itself turns away when
 * that service is faulted. Search and recommendations degrade inside their routes instead. */
static const unsigned ROUTE_TABLE_SERVICE[] = {0, FAULT_SVC_METADATA, 0, 0, 0, 0, FAULT_SVC_PLAYLISTS, 0, 0, 0, 0};
_Static_assert(sizeof(ROUTE_TABLE_SERVICE) / sizeof(ROUTE_TABLE_SERVICE[0]) == sizeof(ROUTE_TABLES) / sizeof(ROUTE_TABLES[0]),
	       "one service entry per route table");

static const char *const SERVICE_NAMES[] = {"search", "recs", "playlists", "metadata"};

const char *faults_service_name(unsigned bit)
{
	for (unsigned i = 0; i < sizeof(SERVICE_NAMES) / sizeof(SERVICE_NAMES[0]); i++)
		if (bit == 1u << i)
			return SERVICE_NAMES[i];
	return "?";
}

int faults_parse_services(const char *list, unsigned *out)
{
	*out = 0;
	if (!list || strcmp(list, "none") == 0 || !*list)
		return 0;
	const char *p = list;
	while (*p) {
		size_t n = strcspn(p, ",");
		unsigned i;
		for (i = 0; i < sizeof(SERVICE_NAMES) / sizeof(SERVICE_NAMES[0]); i++)
			if (strlen(SERVICE_NAMES[i]) == n && strncmp(p, SERVICE_NAMES[i], n) == 0)
				break;
		if (i == sizeof(SERVICE_NAMES) / sizeof(SERVICE_NAMES[0]))
			return -EINVAL;
		*out |= 1u << i;
		p += n;
		if (*p == ',')
			p++;
	}
	return 0;
}

const char *server_route_pattern(const char *path)
{
	char params[ROUTE_MAX_PARAMS][ROUTE_PARAM_MAX];
	int n;
	/* Segment requests outnumber everything else by far (this runs for every access-log
	 * line): their table first. Prefixes are disjoint across tables, so the answer is the same. */
	if (strncmp(path, "/cdn/", 5) == 0 || strncmp(path, "/origin/", 8) == 0)
		for (const struct route *r = delivery_routes; r->pattern; r++)
			if (route_match(r->pattern, path, params, &n))
				return r->pattern;
	for (size_t t = 0; t < sizeof(ROUTE_TABLES) / sizeof(ROUTE_TABLES[0]); t++)
		for (const struct route *r = ROUTE_TABLES[t]; r->pattern; r++)
			if (route_match(r->pattern, path, params, &n))
				return r->pattern;
	return "unmatched";
}

void server_options_defaults(struct server_options *o)
{
	memset(o, 0, sizeof(*o));
	o->host = "127.0.0.1";
	o->port = 8080;
	o->max_body = 1 << 20;
	o->token_ttl_s = 3600;
	o->user_rate = 100;
	o->user_burst = 200;
	o->ip_rate = 200;
	o->ip_burst = 400;
	o->metadata_ttl_ms = 60000;
	o->max_upload = (size_t)512 << 20;
	o->url_ttl_s = 3600;
	o->edge_bytes = (size_t)256 << 20;
	/* Ten wrong passwords lock an account for 1 s, then 2, 4, ... up to 15 minutes; an
	 * address gets fifty (several users may share a NAT). */
	o->login_max_account = 10;
	o->login_max_ip = 50;
	o->login_base_s = 1;
	o->login_cap_s = 900;
	o->offline_license_days = 30;
}

size_t server_body_limit(void *ctx, const char *method, const char *path, size_t max_body)
{
	struct server *s = ctx;
	if (strcmp(method, "POST") == 0 && strcmp(path, "/v1/admin/ingest") == 0)
		return s->opt.max_upload;
	return max_body;
}

int server_load_keys(struct server *s, char *err, size_t errlen)
{
	char *jwt = xasprintf("%s/jwt.keys", s->opt.data_dir);
	char *cdn = xasprintf("%s/cdn.keys", s->opt.data_dir);
	int rc = keys_load_or_create(jwt, s->jwt_keys, err, errlen);
	if (rc == 0)
		rc = keys_load_or_create(cdn, s->cdn_keys, err, errlen);
	free(jwt);
	free(cdn);
	return rc;
}

void call_json(struct call *c, int status, char *json)
{
	http_resp_json(c->resp, status, json);
}

void call_error(struct call *c, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	http_resp_error(c->resp, status, msg);
}

yajl_val call_body_json(struct call *c)
{
	char err[256];
	if (c->req->body.len == 0) {
		call_error(c, 400, "request body must be a JSON object");
		return NULL;
	}
	if (strlen(c->req->body.data) != c->req->body.len) {
		call_error(c, 400, "malformed JSON: NUL byte in body");
		return NULL;
	}
	yajl_val v = json_parse(c->req->body.data, err, sizeof(err));
	if (!v) {
		call_error(c, 400, "malformed JSON: %s", err);
		return NULL;
	}
	if (!YAJL_IS_OBJECT(v)) {
		yajl_tree_free(v);
		call_error(c, 400, "request body must be a JSON object");
		return NULL;
	}
	return v;
}

static bool parse_int_arg(const char *s, long long lo, long long hi, long long *out)
{
	if (!s || !*s)
		return false;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

bool call_paging(struct call *c, int max_limit, int *limit, int *offset)
{
	long long v;
	const char *l = http_arg(c->req, "limit"), *o = http_arg(c->req, "offset");
	*limit = 20;
	*offset = 0;
	if (l) {
		if (!parse_int_arg(l, 1, max_limit, &v)) {
			call_error(c, 400, "Invalid limit: must be an integer from 1 to %d", max_limit);
			return false;
		}
		*limit = (int)v;
	}
	if (o) {
		if (!parse_int_arg(o, 0, 100000000, &v)) {
			call_error(c, 400, "Invalid offset: must be a non-negative integer");
			return false;
		}
		*offset = (int)v;
	}
	return true;
}

static void page_href(struct call *c, struct jw *w, int limit, long long offset)
{
	char *h = xasprintf("%s%s?offset=%lld&limit=%d", c->srv->base_url, c->req->path, offset, limit);
	jw_str(w, h);
	free(h);
}

void call_paging_fields(struct call *c, struct jw *w, int limit, int offset, long long total)
{
	jw_key(w, "href");
	page_href(c, w, limit, offset);
	jw_kint(w, "limit", limit);
	jw_key(w, "next");
	if (offset + limit < total)
		page_href(c, w, limit, offset + limit);
	else
		jw_null(w);
	jw_kint(w, "offset", offset);
	jw_key(w, "previous");
	if (offset > 0)
		page_href(c, w, limit, offset - limit > 0 ? offset - limit : 0);
	else
		jw_null(w);
	jw_kint(w, "total", total);
}

static void *worker_init(void *ctx, int index)
{
	struct server *s = ctx;
	struct worker *w = xcalloc(1, sizeof(*w));
	w->srv = s;
	char err[256];
	if (db_open(s->opt.data_dir, &w->db, err, sizeof(err)) != 0) {
		/* The main thread opened the same database moments ago, so this is unexpected;
		 * the worker stays up and answers 503 rather than taking the server down. */
		fprintf(stderr, "encored: worker %d: %s\n", index, err);
		w->db = NULL;
	}
	return w;
}

static void worker_fini(void *ctx, void *worker)
{
	struct worker *w = worker;
	db_close(w->db);
	free(w);
}

static bool authenticate(struct call *c)
{
	const char *a = c->req->authorization;
	if (!a || strncasecmp(a, "Bearer ", 7) != 0) {
		http_resp_header(c->resp, "WWW-Authenticate", "Bearer");
		call_error(c, 401, "No token provided");
		return false;
	}
	const char *tok = a + 7;
	while (*tok == ' ')
		tok++;
	enum jwt_err e = jwt_verify(c->srv->jwt_keys, tok, (int64_t)time(NULL), &c->user);
	if (e != JWT_OK) {
		atomic_fetch_add(&c->srv->auth_failures, 1);
		http_resp_header(c->resp, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
		call_error(c, 401, "%s", e == JWT_EXPIRED ? "The access token expired" : "Invalid access token");
		return false;
	}
	return true;
}

static void set_etag(struct call *c)
{
	for (int i = 0; i < c->resp->nheaders; i++)
		if (strcmp(c->resp->headers[i].name, "etag:") == 0)
			return;  /* the route set its own (the CDN's content hash) */
	unsigned char h[16];
	crypto_generichash(h, sizeof(h), (const unsigned char *)c->resp->body.data, c->resp->body.len, NULL, 0);
	char hex[33], tag[40];
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	snprintf(tag, sizeof(tag), "\"%s\"", hex);
	http_resp_header(c->resp, "ETag", tag);
	const char *inm = c->req->if_none_match;
	if (inm && (strcmp(inm, "*") == 0 || strstr(inm, tag))) {
		c->resp->status = 304;
		buf_reset(&c->resp->body);
	}
}

static void handle(void *ctx, void *worker, struct http_req *req, struct http_resp *resp)
{
	struct server *s = ctx;
	struct worker *w = worker;
	struct call c = {.srv = s, .w = w, .db = w->db, .req = req, .resp = resp};
	atomic_fetch_add(&s->requests, 1);
	int retry;
	char rbuf[16];
	if (!ratelimit_take(s->ip_limits, req->client_ip, http_now_us(), &retry)) {
		atomic_fetch_add(&s->rate_limited, 1);
		snprintf(rbuf, sizeof(rbuf), "%d", retry);
		http_resp_header(resp, "Retry-After", rbuf);
		call_error(&c, 429, "API rate limit exceeded");
		return;
	}
	if (!w->db) {
		call_error(&c, 503, "database unavailable");
		return;
	}

	const struct route *match = NULL;
	bool path_known = false;
	unsigned service = 0;
	for (size_t t = 0; t < sizeof(ROUTE_TABLES) / sizeof(ROUTE_TABLES[0]) && !match; t++) {
		for (const struct route *r = ROUTE_TABLES[t]; r->pattern; r++) {
			if (!route_match(r->pattern, req->path, c.params, &c.nparams))
				continue;
			path_known = true;
			if (strcmp(r->method, req->method) == 0) {
				match = r;
				service = ROUTE_TABLE_SERVICE[t];
				break;
			}
		}
	}
	if (!match) {
		if (path_known)
			call_error(&c, 405, "method %s not allowed on %s", req->method, req->path);
		else
			call_error(&c, 404, "Service not found");
		return;
	}
	if (!(match->flags & ROUTE_PUBLIC)) {
		if (!authenticate(&c))
			return;
		if ((match->flags & ROUTE_ADMIN) && !c.user.admin) {
			call_error(&c, 403, "this route needs an administrator");
			return;
		}
		if (!ratelimit_take(s->user_limits, c.user.sub, http_now_us(), &retry)) {
			atomic_fetch_add(&s->rate_limited, 1);
			snprintf(rbuf, sizeof(rbuf), "%d", retry);
			http_resp_header(resp, "Retry-After", rbuf);
			call_error(&c, 429, "API rate limit exceeded");
			return;
		}
	}
	if (service && (atomic_load(&s->faults.services) & service)) {
		/* An injected outage of the service behind this route: nothing is applied, so a
		 * client may retry or queue the request, and answer reads from its cache. */
		atomic_fetch_add(&s->faults_injected, 1);
		http_resp_header(resp, "Retry-After", "5");
		call_error(&c, 503, "%s service unavailable (injected fault)", faults_service_name(service));
		return;
	}
	match->fn(&c);
	if (strcmp(req->method, "GET") == 0 && resp->status == 200)
		set_etag(&c);
}

/* The I/O-thread path: CDN edge hits, and playlist track pages served from the hydrated
 * list in memory (a 10,000-item playlist's pages are the hot read). Either answers only
 * what needs no SQLite and no waiting; everything else goes to a worker as usual. Skipping
 * the two thread hand-offs (to a worker and back) is what keeps a page's tail latency low
 * on a loaded machine: each hand-off waits for the woken thread to be scheduled. The
 * gateway's checks run here as in handle(): a token that does not verify, or an injected
 * playlists fault, goes to a worker, which answers (and counts) it. */
static bool fast(void *ctx, struct http_req *req, struct http_resp *resp)
{
	if (delivery_fast(ctx, req, resp))
		return true;
	struct server *s = ctx;
	struct call c = {.srv = s, .req = req, .resp = resp};
	if (req->fast_checked || !route_match("/v1/playlists/{id}/tracks", req->path, c.params, &c.nparams) ||
	    (atomic_load(&s->faults.services) & FAULT_SVC_PLAYLISTS))
		return false;
	const char *a = req->authorization;
	if (!a || strncasecmp(a, "Bearer ", 7) != 0)
		return false;
	for (a += 7; *a == ' '; a++)
		;
	if (jwt_verify(s->jwt_keys, a, (int64_t)time(NULL), &c.user) != JWT_OK || !playlists_fast_tracks(&c))
		return false;
	/* Answered: the rate limits apply to it as to any request (a limited one gets the
	 * 429 instead, as handle() would give it). */
	atomic_fetch_add(&s->requests, 1);
	int retry;
	if (!ratelimit_take(s->ip_limits, req->client_ip, http_now_us(), &retry) ||
	    !ratelimit_take(s->user_limits, c.user.sub, http_now_us(), &retry)) {
		atomic_fetch_add(&s->rate_limited, 1);
		char rbuf[16];
		snprintf(rbuf, sizeof(rbuf), "%d", retry);
		resp->nheaders = 0;
		http_resp_header(resp, "Retry-After", rbuf);
		call_error(&c, 429, "API rate limit exceeded");
	}
	return true;
}

/* Appends v in decimal: the access log formats a few integers per request, and printf's
 * machinery was a visible share of a segment request's CPU. */
static void put_u64(struct buf *b, unsigned long long v)
{
	char d[24];
	int i = (int)sizeof(d);
	do {
		d[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	buf_append(b, d + i, sizeof(d) - (size_t)i);
}

/* Appends microseconds as milliseconds with three decimals (negative counts as 0). */
static void put_ms(struct buf *b, int64_t us)
{
	if (us < 0)
		us = 0;
	put_u64(b, (unsigned long long)us / 1000);
	char frac[5] = {'.', (char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10), (char)('0' + us % 10), 0};
	buf_puts(b, frac);
}

/* A JSON string: copied whole when nothing needs escaping (the usual path), else escaped. */
static void put_str(struct buf *b, const char *s)
{
	size_t n = strlen(s);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') {
			json_escape(b, s, n);
			return;
		}
	}
	buf_putc(b, '"');
	buf_append(b, s, n);
	buf_putc(b, '"');
}

/* One JSON line per request, appended to the I/O thread's batch. Paths only: query
 * strings can carry signatures. */
static void access_log(void *ctx, const struct http_req *req, const struct http_resp *resp, int64_t latency_us,
		       struct buf *out)
{
	if (latency_us < 0)
		latency_us = 0;
	buf_puts(out, "{\"ts\":");
	put_u64(out, (unsigned long long)time(NULL));
	buf_puts(out, ",\"rid\":");
	put_str(out, req->request_id);
	buf_puts(out, ",\"ip\":");
	put_str(out, req->client_ip);
	buf_puts(out, ",\"method\":");
	put_str(out, req->method);
	buf_puts(out, ",\"path\":");
	put_str(out, req->path);
	buf_puts(out, ",\"status\":");
	put_u64(out, (unsigned long long)(resp->status > 0 ? resp->status : 0));
	buf_puts(out, ",\"ms\":");
	put_ms(out, latency_us);
	if (req->handle_start_us) {
		/* Where a request's time went: queued for a worker, in the handler, on the CPU. */
		buf_puts(out, ",\"wait_ms\":");
		put_ms(out, req->handle_start_us - req->start_us);
		buf_puts(out, ",\"handle_ms\":");
		put_ms(out, req->handle_end_us - req->handle_start_us);
		buf_puts(out, ",\"cpu_ms\":");
		put_ms(out, req->handle_cpu_us);
		if (req->fast_answered)
			buf_puts(out, ",\"io_thread\":true");
	}
	buf_puts(out, "}\n");
	struct server *s = ctx;
	if (s->metrics)
		metrics_observe(s->metrics, server_route_pattern(req->path), req->method, resp->status, latency_us);
}

/* Segment GETs may skip libwebsockets unless CDN faults are injected: delays, bandwidth
 * caps and mid-body drops are implemented on the general path only. */
static bool direct_ok(void *ctx)
{
	struct server *s = ctx;
	return !atomic_load(&s->faults.latency_ms) && !atomic_load(&s->faults.bandwidth_kbps) &&
	       !atomic_load(&s->faults.error_ppm) && !atomic_load(&s->faults.drop_ppm);
}

struct http_app server_http_app(struct server *s)
{
	struct http_app app = {
		.ctx = s,
		.worker_init = worker_init,
		.worker_fini = worker_fini,
		.handle = handle,
		.fast = fast,
		.direct_ok = direct_ok,
		.log = access_log,
	};
	return app;
}
