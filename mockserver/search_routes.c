/* search_routes: GET /v1/search and GET /v1/search/suggest in the Web API's shapes.
 *
 * The engine's ranked ids are cached (not the rendered JSON) under a key of the generation,
 * the folded query and every parameter that changes the ranking, so "BeAtls" and "beatls"
 * share an entry while each response still carries its own paging hrefs and the caller's
 * is_playable. Items are rendered by catalog.c's renderers, exactly as /v1/tracks/{id} etc.
 * render them; an id the database no longer has is skipped. */
#include "catalog.h"
#include "db.h"
#include "search.h"
#include "searchsvc.h"
#include "server.h"
#include "textfold.h"
#include "urlenc.h"
#include "xmem.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef bool (*render_fn)(struct call *c, struct jw *w, const char *id);

/* Renderer per type. Playlists: the playlists module sets its simplified-playlist renderer
 * here when it lands; until then playlist hits (there are none indexed) are skipped. */
static const render_fn RENDER[SEARCH_NTYPES] = {
	[SEARCH_TRACK] = catalog_write_track,
	[SEARCH_ARTIST] = catalog_write_artist,
	[SEARCH_ALBUM] = catalog_write_album_simple,
	[SEARCH_PLAYLIST] = NULL,
	[SEARCH_SHOW] = catalog_write_show_simple,
	[SEARCH_EPISODE] = catalog_write_episode_simple,
};

/* Web API keys of the paging objects. */
static const char *const PLURAL[SEARCH_NTYPES] = {"tracks", "artists", "albums", "playlists", "shows", "episodes"};

#define TYPES_HELP "track, artist, album, playlist, show, episode"

/* Parses "track,artist" into a mask. false on an empty item, unknown type or empty list. */
static bool parse_types(const char *arg, unsigned *mask)
{
	*mask = 0;
	if (!arg || !*arg)
		return false;
	for (const char *p = arg;;) {
		size_t n = strcspn(p, ",");
		int found = -1;
		for (int t = 0; t < SEARCH_NTYPES; t++) {
			const char *name = search_type_name((enum search_type)t);
			if (strlen(name) == n && strncmp(p, name, n) == 0)
				found = t;
		}
		if (found < 0)
			return false;
		*mask |= SEARCH_MASK(found);
		if (!p[n])
			return true;
		p += n + 1;
	}
}

static bool parse_int(const char *s, int lo, int hi, int *out)
{
	if (!s || !*s)
		return false;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return false;
	*out = (int)v;
	return true;
}

static bool valid_country(const char *m)
{
	return strlen(m) == 2 && m[0] >= 'A' && m[0] <= 'Z' && m[1] >= 'A' && m[1] <= 'Z';
}

struct params {
	const char *q;
	unsigned types;
	int limit, offset;
	const char *market;      /* as given (for hrefs), or NULL */
	char country[8];         /* market used for ranking: the market, else the caller's country */
	bool market_filter;
	bool debug;
};

/* Validates the arguments shared by search and suggest; replies 400 and returns false on bad input. */
static bool parse_common(struct call *c, struct params *p, bool types_required)
{
	memset(p, 0, sizeof(*p));
	p->q = http_arg(c->req, "q");
	if (!p->q || !*p->q) {
		call_error(c, 400, "q is required: the search text");
		return false;
	}
	if (strlen(p->q) > SEARCH_QUERY_MAX) {
		call_error(c, 400, "q is too long: at most %d bytes", SEARCH_QUERY_MAX);
		return false;
	}
	const char *type = http_arg(c->req, "type");
	if (type || types_required) {
		if (!parse_types(type, &p->types)) {
			call_error(c, 400, "type must be a comma-separated list of: " TYPES_HELP);
			return false;
		}
	} else {
		p->types = SEARCH_ALL_TYPES;
	}
	const char *market = http_arg(c->req, "market");
	snprintf(p->country, sizeof(p->country), "%s", c->user.country);
	if (market) {
		if (strcmp(market, "from_token") == 0) {
			p->market_filter = true;
		} else if (valid_country(market)) {
			snprintf(p->country, sizeof(p->country), "%s", market);
			p->market_filter = true;
		} else {
			call_error(c, 400, "Invalid market code: a two-letter country code (e.g. SE) or from_token");
			return false;
		}
		p->market = market;
	}
	if (!valid_country(p->country))
		p->country[0] = 0;  /* an account without a country ranks without availability */
	return true;
}

/* The cache key: everything that changes the engine's answer. Caller frees. */
static char *cache_key(struct call *c, const char *kind, const struct params *p, uint64_t gen)
{
	char *folded = fold_string(p->q);
	size_t qlen = strlen(p->q);
	char last = p->q[qlen - 1];
	bool prefix = !(last == ' ' || last == '\t' || last == '\n');
	char *k = xasprintf("%s|%llu|%x|%d|%d|%s|%d|%d|%s|%s", kind, (unsigned long long)gen, p->types, p->limit,
			    p->offset, p->country, p->market_filter, prefix,
			    searchsvc_has_taste(c->srv->search) ? c->user.sub : "", folded);
	free(folded);
	return k;
}

/* ---- /v1/search ---- */

/* The cached form of a result: per type "T type total n", then per hit "id score parts...". */
static char *results_serialize(const struct search_results *r)
{
	struct buf b = BUF_INIT;
	for (int t = 0; t < SEARCH_NTYPES; t++) {
		const struct search_page *pg = &r->page[t];
		buf_printf(&b, "T %d %zu %zu\n", t, pg->total, pg->n);
		for (size_t i = 0; i < pg->n; i++) {
			const struct search_hit *h = &pg->hits[i];
			const struct search_parts *x = &h->parts;
			buf_printf(&b, "%s %.17g %.17g %.17g %.17g %.17g %.17g %.17g %d %d\n", h->id, h->score, x->text,
				   x->typo, x->popularity, x->taste, x->market, x->boost, x->matched, x->typos);
		}
	}
	return buf_steal(&b);
}

/* Parses results_serialize's text into r (hits have no names). false if malformed. */
static bool results_parse(const char *s, struct search_results *r)
{
	memset(r, 0, sizeof(*r));
	for (int t = 0; t < SEARCH_NTYPES; t++) {
		int type, used = 0;
		size_t total, n;
		if (sscanf(s, "T %d %zu %zu\n%n", &type, &total, &n, &used) != 3 || type != t || n > SEARCH_LIMIT_MAX)
			return false;
		s += used;
		struct search_page *pg = &r->page[t];
		pg->total = total;
		pg->hits = xcalloc(n ? n : 1, sizeof(*pg->hits));
		for (size_t i = 0; i < n; i++) {
			struct search_hit *h = &pg->hits[i];
			struct search_parts *x = &h->parts;
			h->type = (enum search_type)t;
			if (sscanf(s, "%22s %lf %lf %lf %lf %lf %lf %lf %d %d\n%n", h->id, &h->score, &x->text, &x->typo,
				   &x->popularity, &x->taste, &x->market, &x->boost, &x->matched, &x->typos, &used) != 10)
				return false;
			s += used;
			pg->n++;
		}
	}
	return true;
}

static void write_page_href(struct call *c, struct jw *w, const struct params *p, enum search_type t, long long offset)
{
	struct buf b = BUF_INIT;
	buf_printf(&b, "%s/v1/search?q=", c->srv->base_url);
	url_encode(&b, p->q);
	buf_printf(&b, "&type=%s", search_type_name(t));
	if (p->market)
		buf_printf(&b, "&market=%s", p->market);
	buf_printf(&b, "&offset=%lld&limit=%d", offset, p->limit);
	jw_str(w, b.data);
	buf_free(&b);
}

/* Writes one rendered item; with debug, the score parts are spliced in as "score". */
static bool write_item(struct call *c, struct jw *w, const struct search_hit *h, bool debug)
{
	render_fn fn = RENDER[h->type];
	if (!fn)
		return false;
	if (!debug)
		return fn(c, w, h->id);
	struct jw one;
	jw_init(&one);
	if (!fn(c, &one, h->id)) {
		jw_free(&one);
		return false;
	}
	char *obj = jw_finish(&one);
	size_t n = strlen(obj);
	struct jw sw;
	jw_init(&sw);
	jw_obj(&sw);
	jw_kdouble(&sw, "total", h->score);
	jw_kdouble(&sw, "text", h->parts.text);
	jw_kdouble(&sw, "typo", h->parts.typo);
	jw_kdouble(&sw, "popularity", h->parts.popularity);
	jw_kdouble(&sw, "taste", h->parts.taste);
	jw_kdouble(&sw, "market", h->parts.market);
	jw_kdouble(&sw, "boost", h->parts.boost);
	jw_kint(&sw, "matched", h->parts.matched);
	jw_kint(&sw, "typos", h->parts.typos);
	jw_obj_end(&sw);
	char *score = jw_finish(&sw);
	/* Every renderer writes an object, so the text ends in '}'. */
	char *joined = xasprintf("%.*s%s\"score\":%s}", (int)(n - 1), obj, n > 2 ? "," : "", score);
	jw_raw(w, joined);
	free(joined);
	free(score);
	free(obj);
	return true;
}

static void write_page(struct call *c, struct jw *w, const struct params *p, enum search_type t, const struct search_page *pg)
{
	jw_key(w, PLURAL[t]);
	jw_obj(w);
	jw_key(w, "href");
	write_page_href(c, w, p, t, p->offset);
	jw_key(w, "items");
	jw_arr(w);
	for (size_t i = 0; i < pg->n; i++)
		write_item(c, w, &pg->hits[i], p->debug);
	jw_arr_end(w);
	jw_kint(w, "limit", p->limit);
	jw_key(w, "next");
	if ((size_t)p->offset + (size_t)p->limit < pg->total && p->offset + p->limit <= SEARCH_OFFSET_MAX)
		write_page_href(c, w, p, t, p->offset + p->limit);
	else
		jw_null(w);
	jw_kint(w, "offset", p->offset);
	jw_key(w, "previous");
	if (p->offset > 0)
		write_page_href(c, w, p, t, p->offset > p->limit ? p->offset - p->limit : 0);
	else
		jw_null(w);
	jw_kint(w, "total", (long long)pg->total);
	jw_obj_end(w);
}

/* The search service is down (an injected fault): a plain scan of the catalog's names,
 * without typo tolerance or ranking beyond popularity, so a search still finds what is
 * spelled right. Only tracks, artists and albums; the other kinds come back empty. */
static void fallback_query(struct call *c, const struct params *p, struct search_results *r)
{
	static const char *const SQL[SEARCH_NTYPES] = {
		[SEARCH_TRACK] = "SELECT id, name FROM tracks WHERE state = 'ready' AND (name LIKE ?1 || '%' OR name LIKE '% ' || ?1 || '%')"
				 " ORDER BY popularity DESC, id LIMIT ?2 OFFSET ?3",
		[SEARCH_ARTIST] = "SELECT id, name FROM artists WHERE name LIKE ?1 || '%' OR name LIKE '% ' || ?1 || '%'"
				  " ORDER BY popularity DESC, id LIMIT ?2 OFFSET ?3",
		[SEARCH_ALBUM] = "SELECT id, name FROM albums WHERE name LIKE ?1 || '%' OR name LIKE '% ' || ?1 || '%'"
				 " ORDER BY popularity DESC, id LIMIT ?2 OFFSET ?3",
	};
	memset(r, 0, sizeof(*r));
	for (int t = 0; t < SEARCH_NTYPES; t++) {
		if (!SQL[t] || !(p->types & SEARCH_MASK(t)))
			continue;
		sqlite3_stmt *st = db_prepare(c->db, SQL[t]);
		if (!st)
			continue;
		sqlite3_bind_text(st, 1, p->q, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, p->limit);
		sqlite3_bind_int(st, 3, p->offset);
		struct search_page *pg = &r->page[t];
		pg->hits = xcalloc((size_t)p->limit, sizeof(*pg->hits));
		while (sqlite3_step(st) == SQLITE_ROW && pg->n < (size_t)p->limit) {
			struct search_hit *h = &pg->hits[pg->n++];
			h->type = (enum search_type)t;
			snprintf(h->id, sizeof(h->id), "%s", (const char *)sqlite3_column_text(st, 0));
			h->name = xstrdup((const char *)sqlite3_column_text(st, 1));
		}
		pg->total = (size_t)p->offset + pg->n;
		sqlite3_finalize(st);
	}
}

static void route_search(struct call *c)
{
	struct params p;
	if (!parse_common(c, &p, false))
		return;
	p.limit = 20;
	const char *l = http_arg(c->req, "limit"), *o = http_arg(c->req, "offset"), *d = http_arg(c->req, "debug");
	if (l && !parse_int(l, 1, SEARCH_LIMIT_MAX, &p.limit)) {
		call_error(c, 400, "Invalid limit: must be an integer from 1 to %d", SEARCH_LIMIT_MAX);
		return;
	}
	if (o && !parse_int(o, 0, SEARCH_OFFSET_MAX, &p.offset)) {
		call_error(c, 400, "Invalid offset: must be an integer from 0 to %d", SEARCH_OFFSET_MAX);
		return;
	}
	if (d) {
		if (strcmp(d, "1") == 0 || strcmp(d, "true") == 0)
			p.debug = true;
		else if (strcmp(d, "0") != 0 && strcmp(d, "false") != 0) {
			call_error(c, 400, "debug must be 1 or 0");
			return;
		}
	}
	struct searchsvc *svc = c->srv->search;
	uint64_t gen = searchsvc_generation(svc);
	char *key = cache_key(c, "q", &p, gen);
	char *cached = searchsvc_cache_get(svc, key);
	struct search_results r;
	bool hit = cached && results_parse(cached, &r);
	if (cached && !hit)
		search_results_free(&r);
	free(cached);
	bool down = atomic_load(&c->srv->faults.services) & FAULT_SVC_SEARCH;
	if (down) {
		/* A cached answer is as good as ever; otherwise the catalog scan stands in. */
		atomic_fetch_add(&c->srv->faults_injected, 1);
		http_resp_header(c->resp, "X-Encore-Degraded", hit ? "search: cached answer" : "search: catalog scan");
		if (!hit)
			fallback_query(c, &p, &r);
	} else if (!hit) {
		struct search_taste taste;
		bool has_taste = searchsvc_taste_get(svc, c->db, c->user.sub, &taste);
		struct search_query q = {
			.q = p.q, .types = p.types, .limit = p.limit, .offset = p.offset,
			.market = p.country[0] ? p.country : NULL, .market_filter = p.market_filter,
			.taste = has_taste ? &taste : NULL,
		};
		int rc = search_query(searchsvc_index(svc), &q, &r);
		if (has_taste)
			searchsvc_taste_release(svc, &taste);
		if (rc != 0) {
			/* Only input the engine refuses ("no searchable words"): a client error. */
			call_error(c, 400, "%s", r.error[0] ? r.error : "invalid search");
			search_results_free(&r);
			free(key);
			return;
		}
		char *ser = results_serialize(&r);
		searchsvc_cache_put(svc, key, ser);
		free(ser);
	}
	free(key);
	http_resp_header(c->resp, "X-Search-Cache", hit ? "hit" : "miss");

	/* is_playable answers for the market asked about, as in the Web API; c->user is this
	 * call's own copy, and the metadata cache keys on it too. */
	if (p.market && p.country[0])
		memcpy(c->user.country, p.country, 3);  /* two letters and the NUL */
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	for (int t = 0; t < SEARCH_NTYPES; t++)
		if (p.types & SEARCH_MASK(t))
			write_page(c, &w, &p, (enum search_type)t, &r.page[t]);
	jw_obj_end(&w);
	search_results_free(&r);
	call_json(c, 200, jw_finish(&w));
}

/* ---- /v1/search/suggest ---- */

static void route_suggest(struct call *c)
{
	struct params p;
	if (!parse_common(c, &p, false))
		return;
	struct searchsvc *svc = c->srv->search;
	uint64_t gen = searchsvc_generation(svc);
	char *key = cache_key(c, "s", &p, gen);
	char *cached = searchsvc_cache_get(svc, key);
	http_resp_header(c->resp, "X-Search-Cache", cached ? "hit" : "miss");
	if (!cached && (atomic_load(&c->srv->faults.services) & FAULT_SVC_SEARCH)) {
		/* Autocomplete is a nicety: with the service down it suggests nothing, quietly. */
		atomic_fetch_add(&c->srv->faults_injected, 1);
		http_resp_header(c->resp, "X-Encore-Degraded", "search: no suggestions");
		free(key);
		call_json(c, 200, xstrdup("{\"suggestions\":[]}"));
		return;
	}
	if (!cached) {
		struct search_suggestion s[SEARCH_SUGGEST_MAX];
		size_t n = 0;
		int rc = search_suggest(searchsvc_index(svc), p.q, p.types, p.country[0] ? p.country : NULL, s, &n);
		if (rc != 0) {
			call_error(c, 400, "q has no searchable words");
			free(key);
			return;
		}
		struct jw w;
		jw_init(&w);
		jw_obj(&w);
		jw_key(&w, "suggestions");
		jw_arr(&w);
		for (size_t i = 0; i < n; i++) {
			const char *type = search_type_name(s[i].type);
			char *uri = xasprintf("encore:%s:%s", type, s[i].id);
			jw_obj(&w);
			jw_kstr(&w, "type", type);
			jw_kstr(&w, "uri", uri);
			jw_kstr(&w, "text", s[i].text);
			jw_obj_end(&w);
			free(uri);
		}
		jw_arr_end(&w);
		jw_obj_end(&w);
		search_suggestions_free(s, n);
		cached = jw_finish(&w);
		/* Suggestions carry no per-caller fields, so the rendered answer is what is cached. */
		searchsvc_cache_put(svc, key, cached);
	}
	free(key);
	call_json(c, 200, cached);
}

const struct route search_routes[] = {
	{"GET", "/v1/search", route_search, 0},
	{"GET", "/v1/search/suggest", route_suggest, 0},
	{NULL, NULL, NULL, 0},
};
