/* bench/search_http: search and suggest latency over HTTP against a running encored, the
 * way a client sees it (keep-alive connection, token, JSON rendering of full objects).
 * Queries are drawn from the server's own catalog (its database, read-only): a third
 * exact, a third with one typo in the last long word, a third typed prefixes; suggest gets
 * per-keystroke prefixes, one in four with a typo (the same recipe as bench/search.c).
 * Every query is distinct, so the result cache does not flatter the figures; hits are
 * counted and reported anyway.
 * Usage: bench_search_http URL DATA_DIR [QUERIES]
 * Prints "http search p50 p99" and "http suggest p50 p99" lines for bench/search_http.sh. */
#include "buf.h"
#include "textfold.h"
#include "urlenc.h"
#include "xmem.h"
#include <curl/curl.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static uint64_t rng(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct resp {
	struct buf body;
	bool cache_hit;
};

static size_t on_body(char *p, size_t sz, size_t n, void *ctx)
{
	buf_append(&((struct resp *)ctx)->body, p, sz * n);
	return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ctx)
{
	if (sz * n >= 19 && strncasecmp(p, "x-search-cache: hit", 19) == 0)
		((struct resp *)ctx)->cache_hit = true;
	return sz * n;
}

static void edit_once(uint64_t *r, char *w)
{
	size_t n = strlen(w);
	size_t p = 1 + rng(r) % (n - 1);
	switch (rng(r) % 4) {
	case 0: w[p] = (char)('a' + rng(r) % 26); break;
	case 1: memmove(w + p, w + p + 1, n - p); break;
	case 2: memmove(w + p + 1, w + p, n - p + 1); w[p] = (char)('a' + rng(r) % 26); break;
	default:
		if (p + 1 < n) {
			char t = w[p];
			w[p] = w[p + 1];
			w[p + 1] = t;
		}
	}
}

/* kind 0 exact, 1 one typo in the last word (if 5+ ASCII letters), 2 typed prefix. */
static char *make_query(uint64_t *r, const char *name, int kind, bool suggest)
{
	char *f = fold_string(name);
	char *words[8];
	int n = 0;
	for (char *s = strtok(f, " "); s && n < 8; s = strtok(NULL, " "))
		words[n++] = s;
	struct buf b = BUF_INIT;
	int upto = n > 3 ? 3 : n;
	for (int i = 0; i < upto; i++) {
		char w[128];
		snprintf(w, sizeof(w), "%s", words[i]);
		bool ascii = true;
		for (char *c = w; *c; c++)
			if ((unsigned char)*c >= 0x80)
				ascii = false;
		if (kind == 1 && ascii && strlen(w) >= 5 && i == upto - 1)
			edit_once(r, w);
		if ((kind == 2 || suggest) && i == upto - 1 && ascii) {
			size_t keep = 2 + rng(r) % 5;
			if (keep < strlen(w))
				w[keep] = 0;
		}
		if (i)
			buf_putc(&b, ' ');
		buf_puts(&b, w);
	}
	free(f);
	if (!b.len)
		buf_puts(&b, "love");
	return buf_steal(&b);
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* GET url; returns the HTTP status, latency in *secs. */
static long get(CURL *h, const char *url, struct resp *rs, double *secs)
{
	buf_reset(&rs->body);
	rs->cache_hit = false;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	double a = now();
	CURLcode rc = curl_easy_perform(h);
	*secs = now() - a;
	long status = 0;
	if (rc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	return status;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 3) {
		fprintf(stderr, "usage: bench_search_http URL DATA_DIR [QUERIES]\n");
		return 2;
	}
	const char *url = argv[1];
	size_t nq = argc > 3 ? strtoul(argv[3], NULL, 10) : 2000;
	char *dbpath = xasprintf("file:%s/encore.db?mode=ro", argv[2]);
	sqlite3 *db;
	if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL) != SQLITE_OK) {
		fprintf(stderr, "cannot open %s\n", dbpath);
		return 1;
	}
	free(dbpath);
	/* Targets: random tracks, artists and albums in proportion to the catalog, biased to the
	 * popular ones as real traffic is. */
	sqlite3_stmt *st;
	sqlite3_prepare_v2(db, "SELECT name FROM (SELECT name, popularity FROM tracks ORDER BY random() LIMIT ?1 * 4)"
			       " WHERE popularity >= 30 OR abs(random()) % 3 = 0 LIMIT ?1", -1, &st, NULL);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)nq);
	char **names = xcalloc(nq, sizeof(*names));
	size_t nn = 0;
	while (nn < nq && sqlite3_step(st) == SQLITE_ROW)
		names[nn++] = xstrdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	if (nn == 0) {
		fprintf(stderr, "no tracks in the catalog\n");
		return 1;
	}
	nq = nn;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	CURL *h = curl_easy_init();
	struct resp rs = {.body = BUF_INIT};
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &rs);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &rs);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	char *tok_url = xasprintf("%s/api/token", url);
	curl_easy_setopt(h, CURLOPT_URL, tok_url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, "grant_type=password&username=alice&password=demo");
	if (curl_easy_perform(h) != CURLE_OK || !strstr(rs.body.data ? rs.body.data : "", "access_token")) {
		fprintf(stderr, "login failed: %s\n", rs.body.data ? rs.body.data : "(no answer)");
		return 1;
	}
	free(tok_url);
	char *t = strstr(rs.body.data, "\"access_token\":\"") + 16;
	char *auth = xasprintf("Authorization: Bearer %.*s", (int)strcspn(t, "\""), t);
	struct curl_slist *hdrs = curl_slist_append(NULL, auth);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);

	uint64_t r = 0x5EED5EED12345ull;
	double *lat = xcalloc(nq, sizeof(*lat));
	const char *what[2] = {"search", "suggest"};
	for (int pass = 0; pass < 2; pass++) {
		size_t hits = 0, errors = 0, bytes = 0;
		for (size_t i = 0; i < nq; i++) {
			char *q = pass == 0 ? make_query(&r, names[i], (int)(i % 3), false)
					    : make_query(&r, names[i], i % 4 == 0 ? 1 : 0, true);
			struct buf u = BUF_INIT;
			buf_printf(&u, "%s/v1/search%s?q=", url, pass ? "/suggest" : "");
			url_encode(&u, q);
			if (!pass)
				buf_puts(&u, "&type=track,artist,album&limit=10");
			long status = get(h, u.data, &rs, &lat[i]);
			if (status != 200)
				errors++;
			hits += rs.cache_hit;
			bytes += rs.body.len;
			buf_free(&u);
			free(q);
		}
		qsort(lat, nq, sizeof(*lat), cmpd);
		printf("http %s p50 %.3f p99 %.3f ms (%zu queries, %zu cache hits, %zu errors, %.1f KiB/answer)\n", what[pass],
		       lat[nq / 2] * 1e3, lat[(size_t)((double)nq * 0.99)] * 1e3, nq, hits, errors,
		       (double)bytes / (double)nq / 1024.0);
	}
	curl_slist_free_all(hdrs);
	free(auth);
	buf_free(&rs.body);
	curl_easy_cleanup(h);
	curl_global_cleanup();
	for (size_t i = 0; i < nn; i++)
		free(names[i]);
	free(names);
	free(lat);
	return 0;
}
