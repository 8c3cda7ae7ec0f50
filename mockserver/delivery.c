/* delivery: playback manifests (the one place licensing is decided) and the CDN-like
 * routes that serve signed init parts and segments from the edge cache or the origin.
 *
 * URLs: /cdn/{id}/{kbps}/{init|N}?u=USER&e=EXPIRY&k=KID&s=SIG and the same under /origin/.
 * The signature covers the whole rendition (range "all"), the user, expiry and client IP,
 * so one signed template serves every segment of the rendition and nothing else. */
#include "catalog.h"
#include "db.h"
#include "edge.h"
#include "filecache.h"
#include "ingest.h"
#include "json.h"
#include "keys.h"
#include "manifest.h"
#include "objstore.h"
#include "ratelimit.h"
#include "segment.h"
#include "server.h"
#include "recsvc.h"
#include "urlsign.h"
#include "users.h"
#include "xmem.h"
#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* An episode's segments enter the edge only after this many starts in the window:
 * long, usually streamed once, they would otherwise push out hot music. */
#define EPISODE_ADMIT_STARTS 3
#define FREE_TIER_CAP_KBPS 160
#define DEFAULT_START_KBPS 96
/* How long a manifest request for a never-transcoded item waits for its first segment
 * before answering 503 `transcoding`: well above the ~0.1-0.3 s that takes, well below
 * a client's patience. */
#define ONDEMAND_HOLD_MS 2000

struct cdn_target {
	char id[ID_LEN + 1];
	int kbps;
	int segment;   /* -1 for the init part */
	bool origin;
};

/* ---- signed URL parsing and checks, shared by the fast path and the worker route ---- */

static bool parse_target(const char *path, struct cdn_target *t)
{
	const char *p;
	if (strncmp(path, "/cdn/", 5) == 0) {
		t->origin = false;
		p = path + 5;
	} else if (strncmp(path, "/origin/", 8) == 0) {
		t->origin = true;
		p = path + 8;
	} else {
		return false;
	}
	if (strlen(p) < ID_LEN + 2 || p[ID_LEN] != '/')
		return false;
	memcpy(t->id, p, ID_LEN);
	t->id[ID_LEN] = 0;
	if (!id_valid(t->id))
		return false;
	p += ID_LEN + 1;
	char *end;
	long kbps = strtol(p, &end, 10);
	if (end == p || *end != '/' || kbps <= 0 || kbps > 2000)
		return false;
	t->kbps = (int)kbps;
	p = end + 1;
	if (strcmp(p, "init") == 0) {
		t->segment = -1;
		return true;
	}
	long seg = strtol(p, &end, 10);
	if (end == p || *end || seg < 0 || seg > MANIFEST_MAX_SEGMENTS)
		return false;
	t->segment = (int)seg;
	return true;
}

/* Appends n in decimal at p; returns the end. */
static char *put_int(char *p, int n)
{
	char d[12];
	int k = (int)sizeof(d);
	unsigned u = n < 0 ? 0u : (unsigned)n;
	do {
		d[--k] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	memcpy(p, d + k, sizeof(d) - (size_t)k);
	return p + sizeof(d) - (size_t)k;
}

/* "ID/KBPS/init" or "ID/KBPS/N"; cap must be at least 64. By hand: this runs for every
 * segment request, on an I/O thread. */
static void edge_key(const struct cdn_target *t, char *key, size_t cap)
{
	(void)cap;
	char *p = key;
	memcpy(p, t->id, ID_LEN);
	p += ID_LEN;
	*p++ = '/';
	p = put_int(p, t->kbps);
	*p++ = '/';
	if (t->segment < 0)
		p = stpcpy(p, "init");
	else
		p = put_int(p, t->segment);
	*p = 0;
}

/* Verifies the request's signature. On failure fills resp with 403/404 and returns false. */
static bool check_signature(struct server *s, const struct http_req *req, struct http_resp *resp, struct cdn_target *t)
{
	if (!parse_target(req->path, t)) {
		http_resp_error(resp, 404, "no such segment");
		return false;
	}
	const char *user = http_arg(req, "u"), *exp = http_arg(req, "e"), *kid = http_arg(req, "k"), *sig = http_arg(req, "s");
	enum urlsign_err e = URLSIGN_MALFORMED;
	if (user && exp && kid && sig) {
		char *end;
		long long expires = strtoll(exp, &end, 10);
		if (*end == 0 && end != exp) {
			struct urlsign_claims c = {.content_id = t->id, .bitrate = t->kbps, .range = "all", .user = user,
						   .expires = expires, .ip = req->client_ip};
			pthread_rwlock_rdlock(&s->cdn_keys_lock);
			e = urlsign_verify(s->cdn_keys, &c, kid, sig, (int64_t)time(NULL));
			pthread_rwlock_unlock(&s->cdn_keys_lock);
		}
	}
	if (e != URLSIGN_OK) {
		atomic_fetch_add(&s->sig_failures, 1);
		http_resp_error(resp, 403, urlsign_strerror(e));
		return false;
	}
	return true;
}

/* Rolls the dice for the configured faults; true when the request is answered with 503. */
static bool apply_faults(struct server *s, struct http_resp *resp)
{
	int err_ppm = atomic_load(&s->faults.error_ppm), drop_ppm = atomic_load(&s->faults.drop_ppm);
	if (err_ppm > 0 && (int)randombytes_uniform(1000000) < err_ppm) {
		atomic_fetch_add(&s->faults_injected, 1);
		http_resp_error(resp, 503, "injected fault: edge error");
		return true;
	}
	resp->delay_us = (int64_t)atomic_load(&s->faults.latency_ms) * 1000;
	resp->bandwidth_kbps = atomic_load(&s->faults.bandwidth_kbps);
	if (drop_ppm > 0 && (int)randombytes_uniform(1000000) < drop_ppm) {
		atomic_fetch_add(&s->faults_injected, 1);
		resp->drop_mid_body = true;
	}
	return false;
}

/* Parses "bytes=a-b", "bytes=a-" or "bytes=-n" against len. Returns 1 with [*from, *to], 0 for
 * no usable Range (serve everything), -1 when unsatisfiable. */
static int parse_range(const char *h, size_t len, size_t *from, size_t *to)
{
	if (!h || strncmp(h, "bytes=", 6) != 0 || strchr(h, ','))
		return 0;
	const char *p = h + 6;
	char *end;
	if (*p == '-') {
		unsigned long long n = strtoull(p + 1, &end, 10);
		if (*end || end == p + 1)
			return 0;
		if (n == 0 || len == 0)
			return -1;
		*from = n >= len ? 0 : len - (size_t)n;
		*to = len - 1;
		return 1;
	}
	unsigned long long a = strtoull(p, &end, 10);
	if (end == p || *end != '-')
		return 0;
	p = end + 1;
	unsigned long long b = len ? len - 1 : 0;
	if (*p) {
		b = strtoull(p, &end, 10);
		if (*end)
			return 0;
	}
	if (a >= len || b < a)
		return -1;
	*from = (size_t)a;
	*to = b >= len ? len - 1 : (size_t)b;
	return 1;
}

static void immutable_headers(struct http_resp *resp, const char *etag)
{
	http_resp_header(resp, "Cache-Control", "public, max-age=31536000, immutable");
	http_resp_header(resp, "ETag", etag);
	http_resp_header(resp, "Accept-Ranges", "bytes");
	resp->content_type = "application/vnd.encore.segment";
}

/* Fills a 200, 206, 304 or 416 answer for an object of len bytes; *off and *n select the bytes to send. */
static void answer_object(const struct http_req *req, struct http_resp *resp, const char *etag, size_t len,
			  size_t *off, size_t *n)
{
	immutable_headers(resp, etag);
	*off = 0;
	*n = len;
	if (req->if_none_match && (strcmp(req->if_none_match, "*") == 0 || strstr(req->if_none_match, etag))) {
		resp->status = 304;
		*n = 0;
		return;
	}
	size_t a, b;
	char cr[96];
	switch (parse_range(req->range, len, &a, &b)) {
	case 1:
		resp->status = 206;
		snprintf(cr, sizeof(cr), "bytes %zu-%zu/%zu", a, b, len);
		http_resp_header(resp, "Content-Range", cr);
		*off = a;
		*n = b - a + 1;
		return;
	case -1:
		resp->status = 416;
		snprintf(cr, sizeof(cr), "bytes */%zu", len);
		http_resp_header(resp, "Content-Range", cr);
		*n = 0;
		return;
	default:
		resp->status = 200;
	}
}

/* An /origin request on the I/O thread: answered with sendfile() from the object file when
 * an earlier request (on a worker) opened it and its pages are all in the page cache, so
 * the loop never waits on the disk; anything else goes to a worker, as before. The same
 * per-address rate limit as the worker routes applies. */
static bool origin_fast(struct server *s, struct http_req *req, struct http_resp *resp)
{
	struct cdn_target t;
	if (!s->files || !parse_target(req->path, &t))
		return false;
	char key[64];
	edge_key(&t, key, sizeof(key));
	struct filecache_file *f = filecache_get(s->files, key);
	if (!f)
		return false;
	int retry;
	if (!filecache_resident(f) || !ratelimit_take(s->ip_limits, req->client_ip, http_now_us(), &retry)) {
		filecache_release(f);
		return false;  /* a worker reads it, or answers the 429 with the usual counters */
	}
	atomic_fetch_add(&s->requests, 1);
	req->fast_checked = true;
	if (!check_signature(s, req, resp, &t)) {
		filecache_release(f);
		return true;
	}
	atomic_fetch_add(&s->origin_requests, 1);
	atomic_fetch_add(&s->origin_sendfile, 1);
	size_t off, n;
	answer_object(req, resp, f->etag, f->len, &off, &n);
	resp->ext_file = true;
	resp->ext_fd = f->fd;
	resp->ext_off = off;
	resp->ext_len = n;
	resp->ext_release = filecache_release;
	resp->ext_ctx = f;
	return true;
}

bool delivery_fast(void *ctx, struct http_req *req, struct http_resp *resp)
{
	struct server *s = ctx;
	if (strncmp(req->path, "/origin/", 8) == 0)
		return origin_fast(s, req, resp);
	if (strncmp(req->path, "/cdn/", 5) != 0)
		return false;
	atomic_fetch_add(&s->cdn_requests, 1);
	req->fast_checked = true;
	struct cdn_target t;
	if (!check_signature(s, req, resp, &t))
		return true;
	if (apply_faults(s, resp))
		return true;
	char key[64];
	edge_key(&t, key, sizeof(key));
	struct edge_obj *o = edge_get(s->edge, key);
	if (!o)
		return false;  /* a miss: a worker fetches from the origin store */
	if (t.segment < 0)
		edge_note_start(s->edge, t.id);
	size_t off, n;
	answer_object(req, resp, o->etag, o->len, &off, &n);
	if (o->fd >= 0) {
		/* sendfile() from the memfd: no copy into the socket, which was the largest
		 * single cost of an edge hit (a third of its CPU). */
		resp->ext_file = true;
		resp->ext_fd = o->fd;
		resp->ext_off = off;
	} else {
		resp->ext_data = o->data + off;
	}
	resp->ext_len = n;
	resp->ext_release = edge_release;
	resp->ext_ctx = o;
	return true;
}

/* Looks up the object name and size of a target. 0 or -ENOENT. */
static int resolve(sqlite3 *db, const struct cdn_target *t, char hash[OBJSTORE_HASH_HEX])
{
	sqlite3_stmt *st;
	if (t->segment < 0) {
		st = db_prepare(db, "SELECT init_hash FROM renditions WHERE content_id = ? AND bitrate = ?");
	} else {
		st = db_prepare(db, "SELECT hash FROM segments WHERE content_id = ? AND bitrate = ? AND idx = ?");
		sqlite3_bind_int(st, 3, t->segment);
	}
	sqlite3_bind_text(st, 1, t->id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, t->kbps);
	int rc = -ENOENT;
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(hash, OBJSTORE_HASH_HEX, "%s", (const char *)sqlite3_column_text(st, 0));
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

static bool is_episode(sqlite3 *db, const char *id)
{
	sqlite3_stmt *st = db_prepare(db, "SELECT 1 FROM episodes WHERE id = ?");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	bool yes = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return yes;
}

/* Reads a target from the origin store; admits it to the edge when allowed. */
static int fetch_origin(struct call *c, const struct cdn_target *t, bool admit, uint8_t **data, size_t *len, char etag[72])
{
	char hash[OBJSTORE_HASH_HEX];
	if (resolve(c->db, t, hash) != 0)
		return -ENOENT;
	int rc = objstore_get(c->srv->store, hash, data, len);
	if (rc != 0)
		return rc;
	snprintf(etag, 72, "\"%s\"", hash);
	if (t->origin && c->srv->files) {
		/* Later requests for it are served on the I/O thread (origin_fast). */
		char key[64], *path = objstore_path(c->srv->store, hash);
		edge_key(t, key, sizeof(key));
		if (path)
			filecache_put(c->srv->files, key, path, etag);
		free(path);
	}
	if (admit) {
		bool episode = is_episode(c->db, t->id);
		if (!episode || edge_start_count(c->srv->edge, t->id) >= EPISODE_ADMIT_STARTS) {
			char key[64];
			edge_key(t, key, sizeof(key));
			edge_put(c->srv->edge, key, *data, *len, etag);
		}
	}
	return 0;
}

static bool job_open(sqlite3 *db, const char *id);
static void refuse(struct call *c, int status, const char *reason, const char *msg);

static void route_segment(struct call *c)
{
	struct cdn_target t;
	if (!c->req->fast_checked) {
		if (strncmp(c->req->path, "/cdn/", 5) == 0)
			atomic_fetch_add(&c->srv->cdn_requests, 1);
		if (!check_signature(c->srv, c->req, c->resp, &t))
			return;
		if (!t.origin && apply_faults(c->srv, c->resp))
			return;
	} else if (!parse_target(c->req->path, &t)) {
		call_error(c, 404, "no such segment");
		return;
	}
	if (t.origin)
		atomic_fetch_add(&c->srv->origin_requests, 1);
	else if (t.segment < 0)
		edge_note_start(c->srv->edge, t.id);
	uint8_t *data = NULL;
	size_t len = 0;
	char etag[72];
	int rc = fetch_origin(c, &t, !t.origin, &data, &len, etag);
	if (rc == -ENOENT && job_open(c->db, t.id)) {
		/* Listed as pending in a partial manifest: it will exist in moments. */
		ingest_expedite(c->srv->ingest, c->db, t.id);
		http_resp_header(c->resp, "Retry-After", "1");
		refuse(c, 503, "transcoding", "this segment is being transcoded; retry shortly");
		return;
	}
	if (rc == -ENOENT) {
		call_error(c, 404, "no such segment");
		return;
	}
	if (rc != 0) {
		call_error(c, 500, "origin store read failed");
		return;
	}
	size_t off, n;
	answer_object(c->req, c->resp, etag, len, &off, &n);
	buf_reset(&c->resp->body);
	buf_append(&c->resp->body, data + off, n);
	free(data);
}

/* ---- the manifest ---- */

struct item {
	bool episode;
	char state[16];
	char markets[64];
	bool explicit_;
	int duration_ms;
	double gain_db, lufs, tp;
};

static int load_item(sqlite3 *db, const char *id, struct item *it)
{
	memset(it, 0, sizeof(*it));
	sqlite3_stmt *st = db_prepare(db, "SELECT state, markets, explicit, duration_ms, gain_db, coalesce(loudness_lufs, 0),"
					  " coalesce(true_peak_db, 0) FROM tracks WHERE id = ?");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		st = db_prepare(db, "SELECT state, '', explicit, duration_ms, gain_db, coalesce(loudness_lufs, 0),"
				    " coalesce(true_peak_db, 0) FROM episodes WHERE id = ?");
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		it->episode = true;
	}
	if (rc == SQLITE_ROW) {
		snprintf(it->state, sizeof(it->state), "%s", (const char *)sqlite3_column_text(st, 0));
		snprintf(it->markets, sizeof(it->markets), "%s", (const char *)sqlite3_column_text(st, 1));
		it->explicit_ = sqlite3_column_int(st, 2);
		it->duration_ms = sqlite3_column_int(st, 3);
		it->gain_db = sqlite3_column_double(st, 4);
		it->lufs = sqlite3_column_double(st, 5);
		it->tp = sqlite3_column_double(st, 6);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -ENOENT;
}

static uint32_t segments_recorded(sqlite3 *db, const char *id, int kbps)
{
	sqlite3_stmt *st = db_prepare(db, "SELECT count(*) FROM segments WHERE content_id = ? AND bitrate = ?");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, kbps);
	uint32_t n = sqlite3_step(st) == SQLITE_ROW ? (uint32_t)sqlite3_column_int(st, 0) : 0;
	sqlite3_finalize(st);
	return n;
}

static bool job_open(sqlite3 *db, const char *id)
{
	sqlite3_stmt *st = db_prepare(db, "SELECT 1 FROM ingest_jobs WHERE content_id = ? AND state IN ('queued', 'running')");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	bool yes = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return yes;
}

static void refuse(struct call *c, int status, const char *reason, const char *msg)
{
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "error");
	jw_obj(&w);
	jw_kint(&w, "status", status);
	jw_kstr(&w, "message", msg);
	jw_kstr(&w, "reason", reason);
	jw_obj_end(&w);
	jw_obj_end(&w);
	call_json(c, status, jw_finish(&w));
}

static char *signed_url(struct call *c, const char *prefix, const char *id, int kbps, const char *what,
			const char *user, int64_t exp, const char *kid, const char *sig)
{
	return xasprintf("%s/%s/%s/%d/%s?u=%s&e=%lld&k=%s&s=%s", c->srv->base_url, prefix, id, kbps, what, user,
			 (long long)exp, kid, sig);
}

static int read_object(struct call *c, const char *hash, uint8_t **data, size_t *len)
{
	return objstore_get(c->srv->store, hash, data, len);
}

static void route_playback(struct call *c)
{
	const char *id = c->params[0];
	struct manifest *m = NULL;
	if (!id_valid(id)) {
		call_error(c, 400, "invalid id");
		return;
	}
	struct item it;
	if (load_item(c->db, id, &it) != 0) {
		call_error(c, 404, "non existing id");
		return;
	}
	bool premium = strcmp(c->user.tier, "premium") == 0;
	int cap = premium ? 320 : FREE_TIER_CAP_KBPS;
	const char *q = http_arg(c->req, "quality");
	int want = 0;
	if (q && strcmp(q, "auto") != 0) {
		char *end;
		want = (int)strtol(q, &end, 10);
		if (*end || (want != 24 && want != 96 && want != 160 && want != 320)) {
			call_error(c, 400, "quality must be auto, 24, 96, 160 or 320");
			return;
		}
		if (want > cap) {
			refuse(c, 403, "premium_required", "320 kbps needs a premium account");
			return;
		}
	}
	if (!catalog_playable_in(it.markets, c->user.country)) {
		refuse(c, 403, "not_available_in_market", "this track is not available in your country");
		return;
	}
	if (it.explicit_ && users_explicit_ok(c->db, c->user.sub) == 0) {
		refuse(c, 403, "explicit_content_filtered", "explicit content is filtered on this account");
		return;
	}
	if (strcmp(it.state, "failed") == 0) {
		refuse(c, 410, "transcoding_failed", "this item could not be transcoded");
		return;
	}
	if (strcmp(it.state, "ready") != 0) {
		/* Never transcoded: the listener's request moves the job to the reserved worker
		 * and is held until segment 0 of the lowest rung is published (a few hundred ms),
		 * so the first audio still comes inline with this answer. */
		ingest_expedite(c->srv->ingest, c->db, id);
		if (ingest_wait_playable(c->srv->ingest, c->db, id, ONDEMAND_HOLD_MS) != 0 || load_item(c->db, id, &it) != 0 ||
		    strcmp(it.state, "ready") != 0) {
			http_resp_header(c->resp, "Retry-After", "1");
			refuse(c, 503, "transcoding", "this item is being transcoded; retry shortly");
			return;
		}
	}
	/* Clients that understand pending segments say so; to others a rendition still being
	 * encoded does not exist yet. */
	const char *pa = http_arg(c->req, "partial");
	bool partial_ok = pa && strcmp(pa, "1") == 0;

	m = xcalloc(1, sizeof(*m));
	memcpy(m->id, id, ID_LEN + 1);  /* id_valid() checked the length */
	snprintf(m->type, sizeof(m->type), "%s", it.episode ? "episode" : "track");
	m->duration_ms = it.duration_ms;
	m->segment_seconds = SEGMENT_SECONDS;
	m->gain_db = it.gain_db;
	m->integrated_lufs = it.lufs;
	m->true_peak_dbtp = it.tp;
	m->expires_at = (int64_t)time(NULL) + c->srv->opt.url_ttl_s;
	sqlite3_stmt *js = db_prepare(c->db, "SELECT count(*) FROM ingest_jobs WHERE content_id = ? AND state IN ('queued', 'running')");
	sqlite3_bind_text(js, 1, id, -1, SQLITE_STATIC);
	m->complete = sqlite3_step(js) == SQLITE_ROW && sqlite3_column_int(js, 0) == 0;
	sqlite3_finalize(js);
	if (!m->complete)
		ingest_expedite(c->srv->ingest, c->db, id);  /* a listener is here: the other rungs next */

	sqlite3_stmt *st = db_prepare(c->db, "SELECT bitrate, rate, channels, init_hash, init_size, segment_count FROM renditions"
					     " WHERE content_id = ? AND bitrate <= ? ORDER BY bitrate");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, want ? want : cap);
	char kid[KEYRING_KID_MAX + 1], sig[URLSIGN_SIG_LEN + 1];
	while (sqlite3_step(st) == SQLITE_ROW && m->nrenditions < MANIFEST_MAX_RENDITIONS) {
		struct manifest_rendition *r = &m->renditions[m->nrenditions];
		r->bitrate = sqlite3_column_int(st, 0);
		r->rate = sqlite3_column_int(st, 1);
		r->channels = sqlite3_column_int(st, 2);
		snprintf(r->init_hash, sizeof(r->init_hash), "%s", (const char *)sqlite3_column_text(st, 3));
		r->init_size = (uint32_t)sqlite3_column_int(st, 4);
		uint32_t nseg = (uint32_t)sqlite3_column_int(st, 5);
		if (m->nrenditions > 0 && nseg != m->segment_count)
			continue;  /* renditions always share boundaries; skip a corrupt row rather than mislead */
		uint32_t ready = segments_recorded(c->db, id, r->bitrate);
		if (ready < nseg && (!partial_ok || m->complete || ready == 0))
			continue;  /* still being encoded */
		m->segment_count = nseg;
		struct urlsign_claims cl = {.content_id = id, .bitrate = r->bitrate, .range = "all", .user = c->user.sub,
					    .expires = m->expires_at, .ip = c->req->client_ip};
		pthread_rwlock_rdlock(&c->srv->cdn_keys_lock);
		urlsign_sign(c->srv->cdn_keys, &cl, sig, kid);
		pthread_rwlock_unlock(&c->srv->cdn_keys_lock);
		r->init_url = signed_url(c, "cdn", id, r->bitrate, "init", c->user.sub, m->expires_at, kid, sig);
		r->origin_init_url = signed_url(c, "origin", id, r->bitrate, "init", c->user.sub, m->expires_at, kid, sig);
		r->segment_url_template = signed_url(c, "cdn", id, r->bitrate, "{index}", c->user.sub, m->expires_at, kid, sig);
		r->origin_url_template = signed_url(c, "origin", id, r->bitrate, "{index}", c->user.sub, m->expires_at, kid, sig);
		r->segments = xcalloc(nseg ? nseg : 1, sizeof(*r->segments));
		m->nrenditions++;
	}
	sqlite3_finalize(st);
	if ((m->nrenditions == 0 || m->segment_count == 0) && !m->complete) {
		http_resp_header(c->resp, "Retry-After", "1");
		refuse(c, 503, "transcoding", "this item is being transcoded; retry shortly");
		goto out;
	}
	if (m->nrenditions == 0 || m->segment_count == 0) {
		call_error(c, 500, "no renditions recorded for a ready item");
		goto out;
	}
	st = db_prepare(c->db, "SELECT bitrate, idx, hash, size FROM segments WHERE content_id = ? AND bitrate <= ? ORDER BY bitrate, idx");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, want ? want : cap);
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct manifest_rendition *r = (struct manifest_rendition *)manifest_rendition(m, sqlite3_column_int(st, 0));
		uint32_t k = (uint32_t)sqlite3_column_int(st, 1);
		if (!r || k >= m->segment_count)
			continue;
		snprintf(r->segments[k].hash, sizeof(r->segments[k].hash), "%s", (const char *)sqlite3_column_text(st, 2));
		r->segments[k].size = (uint32_t)sqlite3_column_int(st, 3);
	}
	sqlite3_finalize(st);
	/* Source rate: the top rung keeps it (only the low rung is resampled). */
	m->source_rate = m->renditions[m->nrenditions - 1].rate;
	if (m->renditions[m->nrenditions - 1].bitrate == 24)
		m->source_rate *= 2;

	/* Inline start: the init part and the first segment (or ?start_segment=N for a seek),
	 * at the start bitrate, so the first audio costs no further round trip. */
	const char *inl = http_arg(c->req, "inline");
	if (!inl || strcmp(inl, "0") != 0) {
		const char *sb = http_arg(c->req, "start_bitrate");
		const char *ss = http_arg(c->req, "start_segment");
		int start_kbps = sb ? atoi(sb) : (want ? want : DEFAULT_START_KBPS);
		long seg = ss ? strtol(ss, NULL, 10) : 0;
		const struct manifest_rendition *r = manifest_rendition(m, start_kbps);
		if (seg < 0 || seg >= (long)m->segment_count)
			seg = 0;
		if (!r || !r->segments[seg].size)
			r = &m->renditions[0];  /* not at that rung (yet): the lowest, which is streamed first */
		if (r->segments[seg].size && read_object(c, r->init_hash, &m->inline_init, &m->inline_init_len) == 0 &&
		    read_object(c, r->segments[seg].hash, &m->inline_segment, &m->inline_segment_len) == 0) {
			m->inline_bitrate = r->bitrate;
			m->inline_index = (uint32_t)seg;
		}
	}
	struct jw w;
	jw_init(&w);
	manifest_write(m, &w);
	call_json(c, 200, jw_finish(&w));
	http_resp_header(c->resp, "Cache-Control", "private, no-store");
out:
	manifest_free(m);
}

/* ---- admin: warm, faults, key rotation, stats ---- */

static void route_warm(struct call *c)
{
	yajl_val body = call_body_json(c);
	if (!body)
		return;
	yajl_val ids = json_get(body, "ids");
	if (!ids || !YAJL_IS_ARRAY(ids) || ids->u.array.len == 0 || ids->u.array.len > 1000) {
		call_error(c, 400, "ids must be an array of 1 to 1000 ids");
		yajl_tree_free(body);
		return;
	}
	long long objects = 0, bytes = 0;
	for (size_t i = 0; i < ids->u.array.len; i++) {
		yajl_val v = ids->u.array.values[i];
		if (!YAJL_IS_STRING(v) || !id_valid(YAJL_GET_STRING(v))) {
			call_error(c, 400, "ids[%zu] is not an id", i);
			yajl_tree_free(body);
			return;
		}
	}
	for (size_t i = 0; i < ids->u.array.len; i++) {
		const char *id = YAJL_GET_STRING(ids->u.array.values[i]);
		sqlite3_stmt *st = db_prepare(c->db, "SELECT bitrate, -1 FROM renditions WHERE content_id = ?1"
						     " UNION ALL SELECT bitrate, idx FROM segments WHERE content_id = ?1");
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		while (sqlite3_step(st) == SQLITE_ROW) {
			struct cdn_target t = {.kbps = sqlite3_column_int(st, 0), .segment = sqlite3_column_int(st, 1)};
			snprintf(t.id, sizeof(t.id), "%s", id);
			char hash[OBJSTORE_HASH_HEX], key[64], etag[72];
			uint8_t *data;
			size_t len;
			if (resolve(c->db, &t, hash) != 0 || objstore_get(c->srv->store, hash, &data, &len) != 0)
				continue;
			snprintf(etag, sizeof(etag), "\"%s\"", hash);
			edge_key(&t, key, sizeof(key));
			edge_put(c->srv->edge, key, data, len, etag);
			objects++;
			bytes += (long long)len;
			free(data);
		}
		sqlite3_finalize(st);
	}
	yajl_tree_free(body);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kint(&w, "objects", objects);
	jw_kint(&w, "bytes", bytes);
	jw_obj_end(&w);
	call_json(c, 200, jw_finish(&w));
}

static void write_faults(struct call *c, int status)
{
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kint(&w, "latency_ms", atomic_load(&c->srv->faults.latency_ms));
	jw_kint(&w, "bandwidth_kbps", atomic_load(&c->srv->faults.bandwidth_kbps));
	jw_kdouble(&w, "error_rate", atomic_load(&c->srv->faults.error_ppm) / 1e6);
	jw_kdouble(&w, "drop_rate", atomic_load(&c->srv->faults.drop_ppm) / 1e6);
	jw_key(&w, "services");
	jw_arr(&w);
	unsigned svc = atomic_load(&c->srv->faults.services);
	for (unsigned bit = 1; bit <= FAULT_SVC_METADATA; bit <<= 1)
		if (svc & bit)
			jw_str(&w, faults_service_name(bit));
	jw_arr_end(&w);
	jw_obj_end(&w);
	call_json(c, status, jw_finish(&w));
}

/* "services": ["search", ...] → FAULT_SVC_* bits. false with *bad set on a wrong shape. */
static bool services_arg(yajl_val body, unsigned *out, const char **bad)
{
	yajl_val v = json_get(body, "services");
	if (!v)
		return true;
	*out = 0;
	if (!YAJL_IS_ARRAY(v)) {
		*bad = "services must be an array of names: search, recs, playlists, metadata";
		return false;
	}
	for (size_t i = 0; i < v->u.array.len; i++) {
		const char *name = YAJL_GET_STRING(v->u.array.values[i]);
		unsigned bit;
		if (!name || strchr(name, ',') || faults_parse_services(name, &bit) != 0 || !bit) {
			*bad = "services: unknown service (search, recs, playlists, metadata)";
			return false;
		}
		*out |= bit;
	}
	return true;
}

static void route_get_faults(struct call *c)
{
	write_faults(c, 200);
}

static void route_set_faults(struct call *c)
{
	yajl_val body = call_body_json(c);
	if (!body)
		return;
	long long lat = atomic_load(&c->srv->faults.latency_ms), bw = atomic_load(&c->srv->faults.bandwidth_kbps);
	double er = atomic_load(&c->srv->faults.error_ppm) / 1e6, dr = atomic_load(&c->srv->faults.drop_ppm) / 1e6;
	const char *bad = NULL;
	if (json_get(body, "latency_ms") && (!json_get_int(body, "latency_ms", &lat) || lat < 0 || lat > 60000))
		bad = "latency_ms must be an integer from 0 to 60000";
	else if (json_get(body, "bandwidth_kbps") && (!json_get_int(body, "bandwidth_kbps", &bw) || bw < 0 || bw > 10000000))
		bad = "bandwidth_kbps must be a non-negative integer (0 = unlimited)";
	else if (json_get(body, "error_rate") && (!json_get_double(body, "error_rate", &er) || er < 0 || er > 1))
		bad = "error_rate must be a number from 0 to 1";
	else if (json_get(body, "drop_rate") && (!json_get_double(body, "drop_rate", &dr) || dr < 0 || dr > 1))
		bad = "drop_rate must be a number from 0 to 1";
	unsigned svc = atomic_load(&c->srv->faults.services);
	if (!bad)
		services_arg(body, &svc, &bad);
	yajl_tree_free(body);
	if (bad) {
		call_error(c, 400, "%s", bad);
		return;
	}
	atomic_store(&c->srv->faults.latency_ms, (int)lat);
	atomic_store(&c->srv->faults.bandwidth_kbps, (int)bw);
	atomic_store(&c->srv->faults.error_ppm, (int)lround(er * 1e6));
	atomic_store(&c->srv->faults.drop_ppm, (int)lround(dr * 1e6));
	atomic_store(&c->srv->faults.services, svc);
	if (c->srv->recs)
		recsvc_set_fault(c->srv->recs, svc & FAULT_SVC_RECS);
	write_faults(c, 200);
}

static void route_rotate_keys(struct call *c)
{
	char *path = xasprintf("%s/cdn.keys", c->srv->opt.data_dir);
	char kid[KEYRING_KID_MAX + 1], err[256];
	pthread_rwlock_wrlock(&c->srv->cdn_keys_lock);
	int rc = keys_rotate(path, c->srv->cdn_keys, kid, err, sizeof(err));
	pthread_rwlock_unlock(&c->srv->cdn_keys_lock);
	free(path);
	if (rc != 0) {
		call_error(c, 500, "%s", err);
		return;
	}
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "kid", kid);
	jw_obj_end(&w);
	call_json(c, 200, jw_finish(&w));
}

static void route_stats(struct call *c)
{
	struct edge_stats e = edge_stats(c->srv->edge);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "edge");
	jw_obj(&w);
	jw_kint(&w, "hits", (long long)e.hits);
	jw_kint(&w, "misses", (long long)e.misses);
	jw_kint(&w, "insertions", (long long)e.insertions);
	jw_kint(&w, "evictions", (long long)e.evictions);
	jw_kint(&w, "bytes", (long long)e.bytes);
	jw_kint(&w, "entries", (long long)e.entries);
	jw_kint(&w, "capacity", (long long)e.capacity);
	jw_obj_end(&w);
	jw_kint(&w, "cdn_requests", (long long)atomic_load(&c->srv->cdn_requests));
	jw_kint(&w, "origin_requests", (long long)atomic_load(&c->srv->origin_requests));
	jw_kint(&w, "origin_sendfile", (long long)atomic_load(&c->srv->origin_sendfile));
	jw_kint(&w, "signature_failures", (long long)atomic_load(&c->srv->sig_failures));
	jw_kint(&w, "faults_injected", (long long)atomic_load(&c->srv->faults_injected));
	jw_kint(&w, "rate_limited", (long long)atomic_load(&c->srv->rate_limited));
	jw_kint(&w, "auth_failures", (long long)atomic_load(&c->srv->auth_failures));
	jw_kint(&w, "requests", (long long)atomic_load(&c->srv->requests));
	jw_obj_end(&w);
	call_json(c, 200, jw_finish(&w));
}

const struct route delivery_routes[] = {
	{"GET", "/v1/playback/{id}", route_playback, 0},
	{"GET", "/cdn/{id}/{kbps}/{seg}", route_segment, ROUTE_PUBLIC},
	{"GET", "/origin/{id}/{kbps}/{seg}", route_segment, ROUTE_PUBLIC},
	{"POST", "/v1/admin/warm", route_warm, ROUTE_ADMIN},
	{"GET", "/v1/admin/faults", route_get_faults, ROUTE_ADMIN},
	{"POST", "/v1/admin/faults", route_set_faults, ROUTE_ADMIN},
	{"POST", "/v1/admin/keys/rotate", route_rotate_keys, ROUTE_ADMIN},
	{"GET", "/v1/admin/stats", route_stats, ROUTE_ADMIN},
	{NULL, NULL, NULL, 0},
};
