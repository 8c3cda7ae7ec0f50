/* api: libcurl-based client for encored's Web API.
 *
 * Why a share handle rather than one long-lived easy handle: several threads (UI,
 * prefetcher, playback) issue requests concurrently, and an easy handle may only be
 * used by one thread at a time. Giving each request its own easy handle while the
 * CURLSH holds the connection cache keeps keep-alive reuse across all of them. */
#include "api.h"
#include "version.h"
#include "json.h"
#include "xmem.h"
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define TOKEN_PATH "/api/token"

#define API_MAX_SERVERS 8

struct api {
	/* Several servers ("URL1,URL2"): requests go to bases[cur]; a transport failure
	 * moves cur on. The strings never change after api_new, so api_base_url's pointer
	 * stays valid for the api's life whichever server is current. */
	char *bases[API_MAX_SERVERS];
	char *server_list;             /* the bases joined by commas, as a session records them */
	int nbases;
	atomic_int cur;
	atomic_ulong n_failovers;
	long timeout_ms;
	int max_retries;
	long retry_base_ms;
	char *user_agent;

	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];

	pthread_mutex_t tok_lock;      /* guards access/refresh/tok_gen */
	char *access;
	char *refresh;
	unsigned long tok_gen;         /* bumped on every token change, to detect a peer's refresh */
	pthread_mutex_t refresh_lock;  /* one refresh at a time; others wait and reuse its result */
	api_token_fn token_fn;
	void *token_ctx;

	atomic_ulong n_requests, n_connects, n_reused, n_retries, n_refreshes;
	atomic_uint jitter;
};

/* ---------------- pure helpers ---------------- */

void api_form_append(struct buf *b, const char *key, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	if (b->len)
		buf_putc(b, '&');
	for (int part = 0; part < 2; part++) {
		const unsigned char *s = (const unsigned char *)(part == 0 ? key : value);
		for (; s && *s; s++) {
			unsigned char c = *s;
			if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			    c == '-' || c == '.' || c == '_' || c == '*') {
				buf_putc(b, (char)c);
			} else if (c == ' ') {
				buf_putc(b, '+');
			} else {
				char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
				buf_append(b, esc, 3);
			}
		}
		if (part == 0)
			buf_putc(b, '=');
	}
}

int api_parse_token(const char *json, long long now, struct api_token *tok, char *err, size_t errlen)
{
	memset(tok, 0, sizeof(*tok));
	char perr[128];
	yajl_val root = json_parse(json ? json : "", perr, sizeof(perr));
	if (!root) {
		snprintf(err, errlen, "malformed token response: %s", perr);
		return -EPROTO;
	}
	int rc = -EPROTO;
	const char *access = json_get_str(root, "access_token");
	const char *type = json_get_str(root, "token_type");
	long long expires_in = 3600;
	if (!access || !*access) {
		snprintf(err, errlen, "token response has no access_token");
		goto out;
	}
	if (type && strcasecmp(type, "Bearer") != 0) {
		snprintf(err, errlen, "unsupported token_type \"%s\"", type);
		goto out;
	}
	if (json_get(root, "expires_in") && (!json_get_int(root, "expires_in", &expires_in) || expires_in <= 0)) {
		snprintf(err, errlen, "token response has a bad expires_in");
		goto out;
	}
	tok->access_token = xstrdup(access);
	const char *refresh = json_get_str(root, "refresh_token");
	tok->refresh_token = refresh && *refresh ? xstrdup(refresh) : NULL;
	const char *scope = json_get_str(root, "scope");
	tok->scope = scope ? xstrdup(scope) : NULL;
	tok->expires_at = now + expires_in;
	rc = 0;
out:
	yajl_tree_free(root);
	return rc;
}

void api_token_free(struct api_token *tok)
{
	if (!tok)
		return;
	free(tok->access_token);
	free(tok->refresh_token);
	free(tok->scope);
	memset(tok, 0, sizeof(*tok));
}

void api_error_message(const char *json, char *out, size_t outlen)
{
	if (outlen)
		out[0] = 0;
	char perr[64];
	yajl_val root = json ? json_parse(json, perr, sizeof(perr)) : NULL;
	if (!root)
		return;
	yajl_val e = json_get(root, "error");
	const char *msg = NULL;
	if (e && YAJL_IS_OBJECT(e))
		msg = json_get_str(e, "message");
	else if (e && YAJL_IS_STRING(e))
		msg = json_get_str(root, "error_description") ? json_get_str(root, "error_description")
							      : YAJL_GET_STRING(e);
	if (msg)
		snprintf(out, outlen, "%s", msg);
	yajl_tree_free(root);
}

static bool method_idempotent(const char *m)
{
	static const char *const ok[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (strcmp(m, ok[i]) == 0)
			return true;
	return false;
}

static bool transient_curl_error(int code)
{
	switch (code) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
		return true;
	default:
		return false;
	}
}

bool api_should_retry(const char *method, long status, int curl_code)
{
	if (!method || !method_idempotent(method))
		return false;
	if (status == 0)
		return curl_code != CURLE_OK && transient_curl_error(curl_code);
	if (status == 429)
		return true;
	/* 501 and 505 say the server will never do this; repeating cannot help. */
	return status >= 500 && status <= 599 && status != 501 && status != 505;
}

/* A 32-bit integer hash (lowbias32) so the jitter is deterministic per seed and attempt. */
static uint32_t mix32(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352dU;
	x ^= x >> 15;
	x *= 0x846ca68bU;
	x ^= x >> 16;
	return x;
}

long api_retry_delay_ms_base(long base_ms, int attempt, long retry_after, uint32_t jitter_seed)
{
	if (retry_after >= 0)
		return retry_after > API_RETRY_AFTER_MAX_S ? -1 : retry_after * 1000;
	if (base_ms <= 0)
		base_ms = 1;
	long step = base_ms;
	for (int i = 0; i < attempt && step < API_RETRY_MAX_MS; i++)
		step *= 2;
	if (step > API_RETRY_MAX_MS)
		step = API_RETRY_MAX_MS;
	long half = step / 2;
	long span = step - half;
	return half + (long)(mix32(jitter_seed ^ ((uint32_t)attempt * 0x9e3779b9U)) % (uint32_t)span);
}

long api_retry_delay_ms(int attempt, long retry_after, uint32_t jitter_seed)
{
	return api_retry_delay_ms_base(API_RETRY_BASE_MS, attempt, retry_after, jitter_seed);
}

long api_parse_retry_after(const char *value, long long now)
{
	if (!value)
		return -1;
	while (*value == ' ' || *value == '\t')
		value++;
	if (*value >= '0' && *value <= '9') {
		char *end;
		errno = 0;
		long v = strtol(value, &end, 10);
		while (*end == ' ' || *end == '\t')
			end++;
		if (errno || *end)
			return -1;
		return v;
	}
	time_t t = curl_getdate(value, NULL);
	if (t == -1)
		return -1;
	return t > now ? (long)(t - now) : 0;
}

/* ---------------- handle ---------------- */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *userptr)
{
	(void)h;
	(void)access;
	struct api *api = userptr;
	pthread_mutex_lock(&api->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *userptr)
{
	(void)h;
	struct api *api = userptr;
	pthread_mutex_unlock(&api->share_locks[data]);
}

struct api *api_new(const struct api_config *cfg)
{
	if (!cfg || !cfg->base_url || !*cfg->base_url)
		return NULL;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return NULL;
	struct api *api = xcalloc(1, sizeof(*api));
	for (const char *p = cfg->base_url; *p && api->nbases < API_MAX_SERVERS;) {
		size_t n = strcspn(p, ",");
		/* A trailing slash would double up with every path's leading one. */
		size_t m = n;
		while (m > 0 && p[m - 1] == '/')
			m--;
		if (m > 0)
			api->bases[api->nbases++] = xstrndup(p, m);
		p += n;
		if (*p == ',')
			p++;
	}
	if (api->nbases == 0) {
		free(api);
		return NULL;
	}
	struct buf list = BUF_INIT;
	for (int i = 0; i < api->nbases; i++)
		buf_printf(&list, "%s%s", i ? "," : "", api->bases[i]);
	api->server_list = buf_steal(&list);
	api->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : API_DEFAULT_TIMEOUT_MS;
	api->max_retries = cfg->max_retries >= 0 ? cfg->max_retries : API_DEFAULT_MAX_RETRIES;
	api->retry_base_ms = cfg->retry_base_ms > 0 ? cfg->retry_base_ms : API_RETRY_BASE_MS;
	api->user_agent = xstrdup(cfg->user_agent ? cfg->user_agent : "encore/" ENCORE_VERSION);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&api->share_locks[i], NULL);
	pthread_mutex_init(&api->tok_lock, NULL);
	pthread_mutex_init(&api->refresh_lock, NULL);
	atomic_init(&api->jitter, (unsigned)getpid() ^ (unsigned)time(NULL) ^ (unsigned)(uintptr_t)api);

	api->share = curl_share_init();
	if (!api->share)
		goto fail;
	if (curl_share_setopt(api->share, CURLSHOPT_LOCKFUNC, share_lock) ||
	    curl_share_setopt(api->share, CURLSHOPT_UNLOCKFUNC, share_unlock) ||
	    curl_share_setopt(api->share, CURLSHOPT_USERDATA, api) ||
	    curl_share_setopt(api->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) ||
	    curl_share_setopt(api->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) ||
	    curl_share_setopt(api->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION))
		goto fail;
	return api;
fail:
	api_free(api);
	return NULL;
}

void api_free(struct api *api)
{
	if (!api)
		return;
	if (api->share)
		curl_share_cleanup(api->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&api->share_locks[i]);
	pthread_mutex_destroy(&api->tok_lock);
	pthread_mutex_destroy(&api->refresh_lock);
	for (int i = 0; i < api->nbases; i++)
		free(api->bases[i]);
	free(api->server_list);
	free(api->user_agent);
	free(api->access);
	free(api->refresh);
	free(api);
	curl_global_cleanup();
}

const char *api_base_url(const struct api *api)
{
	return api->bases[atomic_load(&((struct api *)api)->cur)];
}

const char *api_server_list(const struct api *api)
{
	return api->server_list;
}

int api_server_count(const struct api *api)
{
	return api->nbases;
}

/* Index of the base url starts with (a whole base: scheme, host and port), or -1. */
static int base_of(const struct api *api, const char *url)
{
	for (int i = 0; i < api->nbases; i++) {
		size_t n = strlen(api->bases[i]);
		if (strncmp(url, api->bases[i], n) == 0 && (url[n] == '/' || url[n] == '?' || url[n] == 0))
			return i;
	}
	return -1;
}

bool api_failover(struct api *api, const char *failed_url)
{
	if (api->nbases < 2 || !failed_url)
		return false;
	int failed = base_of(api, failed_url);
	if (failed < 0)
		return false;
	/* Only the first report of a dead server moves on; the others see cur changed. */
	int expect = failed;
	if (!atomic_compare_exchange_strong(&api->cur, &expect, (failed + 1) % api->nbases))
		return false;
	atomic_fetch_add(&api->n_failovers, 1);
	return true;
}

char *api_rebase_url(const struct api *api, const char *url)
{
	int i = base_of(api, url);
	int cur = atomic_load(&((struct api *)api)->cur);
	if (i < 0 || i == cur)
		return xstrdup(url);
	return xasprintf("%s%s", api->bases[cur], url + strlen(api->bases[i]));
}

void api_set_tokens(struct api *api, const char *access_token, const char *refresh_token)
{
	pthread_mutex_lock(&api->tok_lock);
	free(api->access);
	free(api->refresh);
	api->access = access_token ? xstrdup(access_token) : NULL;
	api->refresh = refresh_token ? xstrdup(refresh_token) : NULL;
	api->tok_gen++;
	pthread_mutex_unlock(&api->tok_lock);
}

void api_set_token_callback(struct api *api, api_token_fn fn, void *ctx)
{
	pthread_mutex_lock(&api->tok_lock);
	api->token_fn = fn;
	api->token_ctx = ctx;
	pthread_mutex_unlock(&api->tok_lock);
}

void api_get_stats(struct api *api, struct api_stats *out)
{
	out->requests = atomic_load(&api->n_requests);
	out->connects = atomic_load(&api->n_connects);
	out->reused = atomic_load(&api->n_reused);
	out->retries = atomic_load(&api->n_retries);
	out->refreshes = atomic_load(&api->n_refreshes);
}

/* ---------------- transfers ---------------- */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	buf_append(ud, p, size * n);
	return size * n;
}

static void reset_headers(struct api_response *r)
{
	free(r->etag);
	free(r->content_type);
	r->etag = r->content_type = NULL;
	r->retry_after = -1;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct api_response *r = ud;
	size_t len = size * n;
	/* A new status line (e.g. after a 100 Continue) starts a new header set. */
	if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		reset_headers(r);
		return len;
	}
	const char *colon = memchr(p, ':', len);
	if (!colon)
		return len;
	size_t nlen = (size_t)(colon - p);
	const char *v = colon + 1, *end = p + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
		end--;
	char *val = xstrndup(v, (size_t)(end - v));
	if (nlen == 4 && strncasecmp(p, "ETag", 4) == 0) {
		free(r->etag);
		r->etag = val;
	} else if (nlen == 12 && strncasecmp(p, "Content-Type", 12) == 0) {
		free(r->content_type);
		r->content_type = val;
	} else if (nlen == 11 && strncasecmp(p, "Retry-After", 11) == 0) {
		r->retry_after = api_parse_retry_after(val, (long long)time(NULL));
		free(val);
	} else {
		free(val);
	}
	return len;
}

/* One HTTP exchange. Fills resp (status 0 on transport failure). */
static void perform(struct api *api, const char *method, const char *url, const char *ctype,
		    const char *body, size_t body_len, const char *bearer, struct api_response *resp)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	buf_reset(&resp->body);
	reset_headers(resp);
	resp->status = 0;
	resp->error[0] = 0;
	resp->attempts++;

	CURL *h = curl_easy_init();
	if (!h) {
		resp->curl_code = CURLE_FAILED_INIT;
		snprintf(resp->error, sizeof(resp->error), "cannot initialise libcurl");
		return;
	}
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	/* Without this curl waits up to a second for 100 Continue on larger bodies. */
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (ctype) {
		char *c = xasprintf("Content-Type: %s", ctype);
		hdrs = curl_slist_append(hdrs, c);
		free(c);
	}
	if (bearer) {
		char *a = xasprintf("Authorization: Bearer %s", bearer);
		hdrs = curl_slist_append(hdrs, a);
		free(a);
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_SHARE, api->share);
	/* Signals would be delivered to whichever thread; timeouts must not use them. */
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)API_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, api->timeout_ms);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_USERAGENT, api->user_agent);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp->body);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
	if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
	}

	CURLcode cc = curl_easy_perform(h);
	resp->curl_code = (int)cc;
	atomic_fetch_add(&api->n_requests, 1);
	long status = 0, nconn = 0, oserr = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &nconn);
	curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &oserr);
	if (nconn > 0)
		atomic_fetch_add(&api->n_connects, 1);
	else if (cc == CURLE_OK || status > 0)
		atomic_fetch_add(&api->n_reused, 1);
	if (cc == CURLE_OK) {
		resp->status = status;
	} else if (cc == CURLE_COULDNT_CONNECT && oserr) {
		snprintf(resp->error, sizeof(resp->error), "%s", strerror((int)oserr));
	} else {
		snprintf(resp->error, sizeof(resp->error), "%s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
	}
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int transport_errno(const struct api_response *r)
{
	switch (r->curl_code) {
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	default:
		return -EIO;
	}
}

static void response_init(struct api_response *r)
{
	memset(r, 0, sizeof(*r));
	r->retry_after = -1;
}

static int try_refresh(struct api *api, unsigned long gen_seen);

/* The request loop: backoff retries for idempotent methods, one refresh on 401. */
static int request(struct api *api, const char *method, const char *path, const char *ctype,
		   const char *body, size_t body_len, bool auth, struct api_response *resp)
{
	response_init(resp);
	bool refreshed = false;
	int retry = 0, failovers = 0;
	char *url = NULL;
	for (;;) {
		free(url);
		url = xasprintf("%s%s", api_base_url(api), path);
		char *bearer = NULL;
		unsigned long gen;
		pthread_mutex_lock(&api->tok_lock);
		if (auth && api->access)
			bearer = xstrdup(api->access);
		gen = api->tok_gen;
		pthread_mutex_unlock(&api->tok_lock);

		perform(api, method, url, ctype, body, body_len, bearer, resp);
		free(bearer);

		/* A server that cannot be reached: try the next one at once. A refused connect
		 * sent nothing, so any method may go again; otherwise only idempotent ones. */
		if (resp->status == 0 && failovers < api->nbases - 1 &&
		    (resp->curl_code == CURLE_COULDNT_CONNECT || api_should_retry(method, 0, resp->curl_code)) &&
		    api_failover(api, url)) {
			failovers++;
			continue;
		}

		if (resp->status == 401 && auth && !refreshed) {
			refreshed = true;
			if (try_refresh(api, gen) == 0)
				continue;
			break;
		}
		if (retry < api->max_retries && api_should_retry(method, resp->status, resp->curl_code)) {
			uint32_t seed = atomic_fetch_add(&api->jitter, 0x9e3779b9U);
			long d = api_retry_delay_ms_base(api->retry_base_ms, retry, resp->retry_after, seed);
			if (d >= 0) {
				sleep_ms(d);
				retry++;
				atomic_fetch_add(&api->n_retries, 1);
				continue;
			}
		}
		break;
	}
	free(url);
	return resp->status ? 0 : transport_errno(resp);
}

int api_request(struct api *api, const char *method, const char *path,
		const char *content_type, const char *body, size_t body_len,
		struct api_response *resp)
{
	return request(api, method, path, content_type, body, body_len, true, resp);
}

int api_get(struct api *api, const char *path, struct api_response *resp)
{
	return request(api, "GET", path, NULL, NULL, 0, true, resp);
}

void api_response_free(struct api_response *resp)
{
	if (!resp)
		return;
	buf_free(&resp->body);
	free(resp->etag);
	free(resp->content_type);
	resp->etag = resp->content_type = NULL;
}

static int token_request(struct api *api, const char *form, struct api_token *tok, char *err, size_t errlen)
{
	struct api_response r;
	memset(tok, 0, sizeof(*tok));
	int rc = request(api, "POST", TOKEN_PATH, "application/x-www-form-urlencoded",
			 form, strlen(form), false, &r);
	if (rc < 0) {
		snprintf(err, errlen, "%s", r.error);
		goto out;
	}
	if (r.status == 200) {
		rc = api_parse_token(r.body.data, (long long)time(NULL), tok, err, errlen);
		goto out;
	}
	char msg[200];
	api_error_message(r.body.data, msg, sizeof(msg));
	if (r.status == 400 || r.status == 401) {
		snprintf(err, errlen, "%s", msg[0] ? msg : "invalid credentials");
		rc = -EACCES;
	} else {
		snprintf(err, errlen, "server answered %ld%s%s", r.status, msg[0] ? ": " : "", msg);
		rc = r.status == 429 ? -EAGAIN : -EPROTO;
	}
out:
	api_response_free(&r);
	return rc;
}

int api_login(struct api *api, const char *user, const char *password,
	      struct api_token *tok, char *err, size_t errlen)
{
	struct buf f = BUF_INIT;
	api_form_append(&f, "grant_type", "password");
	api_form_append(&f, "username", user);
	api_form_append(&f, "password", password);
	int rc = token_request(api, f.data, tok, err, errlen);
	/* The form holds the password; do not leave it in freed heap memory. */
	explicit_bzero(f.data, f.len);
	buf_free(&f);
	return rc;
}

int api_refresh(struct api *api, const char *refresh_token,
		struct api_token *tok, char *err, size_t errlen)
{
	struct buf f = BUF_INIT;
	api_form_append(&f, "grant_type", "refresh_token");
	api_form_append(&f, "refresh_token", refresh_token);
	int rc = token_request(api, f.data, tok, err, errlen);
	explicit_bzero(f.data, f.len);
	buf_free(&f);
	return rc;
}

/* Returns 0 when fresh tokens are installed (by us or by a peer thread that refreshed
 * while our request was in flight), or a negative errno when the caller should give up. */
static int try_refresh(struct api *api, unsigned long gen_seen)
{
	int rc;
	pthread_mutex_lock(&api->refresh_lock);
	pthread_mutex_lock(&api->tok_lock);
	if (api->tok_gen != gen_seen) {
		pthread_mutex_unlock(&api->tok_lock);
		rc = 0;
		goto out;
	}
	char *refresh = api->refresh ? xstrdup(api->refresh) : NULL;
	pthread_mutex_unlock(&api->tok_lock);
	if (!refresh) {
		rc = -EACCES;
		goto out;
	}
	struct api_token tok;
	char err[128];
	rc = api_refresh(api, refresh, &tok, err, sizeof(err));
	if (rc == 0) {
		/* Servers that do not rotate refresh tokens omit them; keep ours. */
		if (!tok.refresh_token)
			tok.refresh_token = xstrdup(refresh);
		api_set_tokens(api, tok.access_token, tok.refresh_token);
		atomic_fetch_add(&api->n_refreshes, 1);
		pthread_mutex_lock(&api->tok_lock);
		api_token_fn fn = api->token_fn;
		void *ctx = api->token_ctx;
		pthread_mutex_unlock(&api->tok_lock);
		if (fn)
			fn(ctx, &tok);
		api_token_free(&tok);
	}
	free(refresh);
out:
	pthread_mutex_unlock(&api->refresh_lock);
	return rc;
}

char *api_bearer(struct api *api, unsigned long *gen)
{
	pthread_mutex_lock(&api->tok_lock);
	char *t = api->access ? xstrdup(api->access) : NULL;
	if (gen)
		*gen = api->tok_gen;
	pthread_mutex_unlock(&api->tok_lock);
	return t;
}

int api_refresh_after_401(struct api *api, unsigned long gen_seen)
{
	return try_refresh(api, gen_seen);
}
