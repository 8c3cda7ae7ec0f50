/* recs_routes: recommendation products over the served model, with a fallback chain.
 *
 * Every route builds a ranked candidate pool, filters it (already played where the product
 * wants new tracks, not playable in the caller's market, excluded ids), optionally re-ranks it
 * by target audio features, then applies the diversity rule (no more than 2 consecutive tracks
 * by one artist) and renders full track objects with catalog_write_track.
 *
 * The pool comes from the first source that yields anything:
 *   personal  the served model (ALS scores or hybrid item-item similarity),
 *   genre     the most popular tracks of the genres the caller (or the seeds) point at,
 *   popular   the most popular tracks overall.
 * A missing, stale or faulted model just skips the first step: these routes answer 200 with
 * "source" saying which step produced the answer, never 500 because of recommendations. */
#include "catalog.h"
#include "db.h"
#include "recmodel.h"
#include "recsvc.h"
#include "server.h"
#include "xmem.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POOL 300
#define MAX_SEEDS 5
#define MAX_FEEDBACK 100   /* skipped/liked ids per radio request */
#define MAX_TASTE 50

struct cand {
	char id[ID_LEN + 1];
	char artist[ID_LEN + 1];
	char genre[RECMODEL_GENRE_MAX];
	float score;
	float energy, valence, danceability, tempo;
};

struct pool {
	struct cand *v;
	int n, cap;
};

static void pool_add(struct pool *p, const struct cand *c)
{
	for (int i = 0; i < p->n; i++)
		if (strcmp(p->v[i].id, c->id) == 0)
			return;
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 64;
		p->v = xrealloc(p->v, (size_t)p->cap * sizeof(*p->v));
	}
	p->v[p->n++] = *c;
}

/* A small set of track/artist ids (linear: request-sized). */
struct idset {
	char (*v)[ID_LEN + 1];
	int n, cap;
};

static void idset_add(struct idset *s, const char *id)
{
	if (!id || strlen(id) != ID_LEN)
		return;
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->v[i], id) == 0)
			return;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 32;
		s->v = xrealloc(s->v, (size_t)s->cap * sizeof(*s->v));
	}
	memcpy(s->v[s->n++], id, ID_LEN + 1);
}

static bool idset_has(const struct idset *s, const char *id)
{
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->v[i], id) == 0)
			return true;
	return false;
}

/* Genre names (lowercase as in the catalog). */
struct strlist {
	char v[MAX_TASTE][RECMODEL_GENRE_MAX];
	int n;
};

static void strlist_add(struct strlist *l, const char *s)
{
	if (!s || !*s || l->n >= MAX_TASTE || strlen(s) >= RECMODEL_GENRE_MAX)
		return;
	for (int i = 0; i < l->n; i++)
		if (strcmp(l->v[i], s) == 0)
			return;
	snprintf(l->v[l->n++], RECMODEL_GENRE_MAX, "%s", s);
}

static const char *TRACK_COLS = "SELECT t.id, t.artist_id, t.genre, t.popularity, coalesce(f.energy, 0.5),"
				" coalesce(f.valence, 0.5), coalesce(f.danceability, 0.5), coalesce(f.tempo, 110)"
				" FROM tracks t LEFT JOIN audio_features f ON f.track_id = t.id";

static void cand_from_row(struct cand *c, sqlite3_stmt *s)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->id, sizeof(c->id), "%s", (const char *)sqlite3_column_text(s, 0));
	snprintf(c->artist, sizeof(c->artist), "%s", (const char *)sqlite3_column_text(s, 1));
	snprintf(c->genre, sizeof(c->genre), "%s", (const char *)sqlite3_column_text(s, 2));
	c->score = (float)sqlite3_column_int(s, 3) / 100.0f;
	c->energy = (float)sqlite3_column_double(s, 4);
	c->valence = (float)sqlite3_column_double(s, 5);
	c->danceability = (float)sqlite3_column_double(s, 6);
	c->tempo = (float)sqlite3_column_double(s, 7);
}

static void cand_from_model(struct cand *c, const struct recmodel *m, int i, float score)
{
	const struct recmodel_item *it = recmodel_item_at(m, i);
	memset(c, 0, sizeof(*c));
	memcpy(c->id, it->id, sizeof(c->id));
	snprintf(c->artist, sizeof(c->artist), "%s", recmodel_artist_id(m, it->artist));
	memcpy(c->genre, it->genre, sizeof(c->genre));
	c->score = score;
	c->energy = it->energy;
	c->valence = it->valence;
	c->danceability = it->danceability;
	c->tempo = it->tempo;
}

/* Tracks the caller has started or finished playing, from the log itself (not the consumer). */
static void load_played(struct call *c, struct idset *out)
{
	sqlite3_stmt *s = db_prepare(c->db, "SELECT DISTINCT substr(uri, 14) FROM event_log WHERE user_id = ?"
					    " AND type IN ('play_start', 'play_end') AND uri LIKE 'encore:track:%'");
	sqlite3_bind_text(s, 1, c->user.sub, -1, SQLITE_STATIC);
	while (sqlite3_step(s) == SQLITE_ROW)
		idset_add(out, (const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
}

/* The caller's genres: picked ones first, then those of their history by weight. */
static void user_genres(struct call *c, struct strlist *out)
{
	sqlite3_stmt *s = db_prepare(c->db, "SELECT value FROM user_taste WHERE user_id = ? AND kind = 'genre' ORDER BY value");
	sqlite3_bind_text(s, 1, c->user.sub, -1, SQLITE_STATIC);
	while (sqlite3_step(s) == SQLITE_ROW)
		strlist_add(out, (const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	s = db_prepare(c->db, "SELECT t.genre FROM tracks t JOIN user_taste u ON u.value = t.artist_id"
			      " WHERE u.user_id = ? AND u.kind = 'artist' GROUP BY t.genre ORDER BY count(*) DESC");
	sqlite3_bind_text(s, 1, c->user.sub, -1, SQLITE_STATIC);
	while (sqlite3_step(s) == SQLITE_ROW)
		strlist_add(out, (const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	s = db_prepare(c->db, "SELECT t.genre FROM event_log e JOIN tracks t ON t.id = substr(e.uri, 14)"
			      " WHERE e.user_id = ? AND e.type IN ('play_end', 'save', 'playlist_add') AND e.uri LIKE 'encore:track:%'"
			      " GROUP BY t.genre ORDER BY sum(CASE WHEN e.type = 'play_end' THEN min(coalesce(e.ms_played, 0), 60000) / 60000.0"
			      " ELSE 2 END) DESC");
	sqlite3_bind_text(s, 1, c->user.sub, -1, SQLITE_STATIC);
	while (sqlite3_step(s) == SQLITE_ROW)
		strlist_add(out, (const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
}

static void user_artists(struct call *c, struct idset *out)
{
	sqlite3_stmt *s = db_prepare(c->db, "SELECT value FROM user_taste WHERE user_id = ? AND kind = 'artist'"
					    " UNION SELECT t.artist_id FROM reco_interactions r JOIN tracks t ON t.id = r.track_id"
					    " WHERE r.user_id = ?1 AND r.weight > 0");
	sqlite3_bind_text(s, 1, c->user.sub, -1, SQLITE_STATIC);
	while (sqlite3_step(s) == SQLITE_ROW)
		idset_add(out, (const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
}

/* Most popular ready tracks, of one genre when genre is non-NULL. */
static void pool_popular(struct call *c, struct pool *p, const char *genre, int limit)
{
	char *sql = xasprintf("%s WHERE t.state = 'ready'%s ORDER BY t.popularity DESC, t.id LIMIT ?1", TRACK_COLS,
			      genre ? " AND t.genre = ?2" : "");
	sqlite3_stmt *s = db_prepare(c->db, sql);
	free(sql);
	sqlite3_bind_int(s, 1, limit);
	if (genre)
		sqlite3_bind_text(s, 2, genre, -1, SQLITE_STATIC);
	struct cand cd;
	while (sqlite3_step(s) == SQLITE_ROW) {
		cand_from_row(&cd, s);
		pool_add(p, &cd);
	}
	sqlite3_finalize(s);
}

/* Genre-based pool: the genres interleaved so the first few tracks already span them. */
static void pool_genres(struct call *c, struct pool *p, const struct strlist *g)
{
	struct pool per[MAX_TASTE] = {{0}};
	int n = g->n < 8 ? g->n : 8;
	for (int k = 0; k < n; k++)
		pool_popular(c, &per[k], g->v[k], POOL / (n ? n : 1) + 1);
	for (int r = 0; r < POOL; r++) {
		bool any = false;
		for (int k = 0; k < n; k++)
			if (r < per[k].n) {
				struct cand cd = per[k].v[r];
				cd.score = 1.0f - (float)r / POOL;
				pool_add(p, &cd);
				any = true;
			}
		if (!any)
			break;
	}
	for (int k = 0; k < n; k++)
		free(per[k].v);
}

/* Drops excluded and unplayable candidates, keeping order. */
static void pool_filter(struct call *c, struct pool *p, const struct idset *exclude, const struct idset *exclude2)
{
	sqlite3_stmt *s = db_prepare(c->db, "SELECT markets FROM tracks WHERE id = ? AND state = 'ready'");
	int w = 0;
	for (int i = 0; i < p->n; i++) {
		if ((exclude && idset_has(exclude, p->v[i].id)) || (exclude2 && idset_has(exclude2, p->v[i].id)))
			continue;
		sqlite3_reset(s);
		sqlite3_bind_text(s, 1, p->v[i].id, -1, SQLITE_STATIC);
		if (sqlite3_step(s) != SQLITE_ROW ||
		    !catalog_playable_in((const char *)sqlite3_column_text(s, 0), c->user.country))
			continue;
		p->v[w++] = p->v[i];
	}
	p->n = w;
	sqlite3_finalize(s);
}

struct targets {
	bool has[4];
	float v[4];   /* energy, valence, danceability, tempo */
};

static int cmp_score(const void *a, const void *b)
{
	float x = ((const struct cand *)a)->score, y = ((const struct cand *)b)->score;
	return x < y ? 1 : x > y ? -1 : strcmp(((const struct cand *)a)->id, ((const struct cand *)b)->id);
}

/* Re-ranks by closeness to the targets: rank position counts for less than a clear miss. */
static void pool_targets(struct pool *p, const struct targets *t)
{
	bool any = t->has[0] || t->has[1] || t->has[2] || t->has[3];
	if (!any || p->n == 0)
		return;
	for (int i = 0; i < p->n; i++) {
		struct cand *c = &p->v[i];
		float f[4] = {c->energy, c->valence, c->danceability, c->tempo / 100.0f};
		float d = 0;
		for (int k = 0; k < 4; k++)
			if (t->has[k])
				d += fabsf(f[k] - (k == 3 ? t->v[k] / 100.0f : t->v[k]));
		c->score = 1.0f - (float)i / (float)p->n - 2.0f * d;
	}
	qsort(p->v, (size_t)p->n, sizeof(*p->v), cmp_score);
}

/* Applies the diversity rule and cuts to limit; order[] holds the indices to render. */
static int pool_diversify(struct pool *p, int limit, int *order)
{
	int *artist = xmalloc((size_t)(p->n ? p->n : 1) * sizeof(int));
	for (int i = 0; i < p->n; i++) {
		artist[i] = i;
		for (int j = 0; j < i; j++)
			if (strcmp(p->v[j].artist, p->v[i].artist) == 0) {
				artist[i] = artist[j];
				break;
			}
	}
	int *all = xmalloc((size_t)(p->n ? p->n : 1) * sizeof(int));
	int n = recmodel_diversify(artist, p->n, 2, all);
	if (n > limit)
		n = limit;
	memcpy(order, all, (size_t)n * sizeof(int));
	free(all);
	free(artist);
	return n;
}

static void write_track_list(struct call *c, struct jw *w, const struct pool *p, const int *order, int n, bool wrapped)
{
	jw_arr(w);
	for (int i = 0; i < n; i++) {
		if (wrapped) {
			jw_obj(w);
			jw_key(w, "added_at");
			jw_null(w);
			jw_key(w, "track");
		}
		if (!catalog_write_track(c, w, p->v[order[i]].id))
			jw_null(w);
		if (wrapped)
			jw_obj_end(w);
	}
	jw_arr_end(w);
}

/* ---- the weekly and daily products: computed once per user and period ----
 *
 * Discover Weekly and Release Radar are cached per user for the ISO week (UTC), Daily
 * Mixes for the UTC day, in reco_cache (so they survive a restart). The first list
 * computed in a period is the one served for the rest of it, even when a newer model
 * version is published meanwhile: the new version shows at the next period. Only
 * personal answers are cached: a fallback (no model yet, the model faulted or stale) is a
 * degraded answer that should not be pinned for a week, so it is recomputed until a
 * personal list can be made. A cached personal list is served even while the model is
 * faulted: it needs no model. PUT /v1/me/taste drops the caller's cached lists. The period
 * follows recsvc_now, which --clock-offset-s shifts for tests. */

enum period_kind { PERIOD_WEEK, PERIOD_DAY };

/* "2026-W48" (ISO 8601 week-numbering year and week) or "2026-11-29", both UTC. */
static void period_name(int64_t now, enum period_kind k, char *out, size_t n)
{
	time_t t = (time_t)now;
	struct tm tm;
	gmtime_r(&t, &tm);
	if (strftime(out, n, k == PERIOD_WEEK ? "%G-W%V" : "%Y-%m-%d", &tm) == 0)
		snprintf(out, n, "?");
}

struct product {
	char period[16];
	char source[16];
	int64_t version, generated_at;
	bool cached;      /* computed by an earlier request of this period */
	yajl_val body;    /* {"tracks":[ids]} or {"mixes":[...]} */
};

static bool cache_get(struct call *c, const char *product, struct product *out)
{
	sqlite3_stmt *s = db_prepare(c->db, "SELECT source, version, generated_at, body FROM reco_cache"
					    " WHERE user_id = ? AND product = ? AND period = ?");
	sqlite3_bind_text(s, 1, c->user.sub, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, product, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, out->period, -1, SQLITE_STATIC);
	bool ok = false;
	if (sqlite3_step(s) == SQLITE_ROW) {
		yajl_val v = json_parse((const char *)sqlite3_column_text(s, 3), NULL, 0);
		if (v && YAJL_IS_OBJECT(v)) {
			snprintf(out->source, sizeof(out->source), "%s", (const char *)sqlite3_column_text(s, 0));
			out->version = sqlite3_column_int64(s, 1);
			out->generated_at = sqlite3_column_int64(s, 2);
			yajl_tree_free(out->body);
			out->body = v;
			ok = true;
		} else {
			yajl_tree_free(v);  /* unreadable: recompute and overwrite */
		}
	}
	sqlite3_finalize(s);
	return ok;
}

/* Stores a computed list unless one is already stored for this period (racing requests:
 * the first stored list of a period is the one everybody sees). */
static void cache_put(struct call *c, const char *product, const struct product *p, const char *body)
{
	sqlite3_stmt *s = db_prepare(c->db, "INSERT INTO reco_cache (user_id, product, period, source, version, generated_at, body)"
					    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (user_id, product) DO UPDATE SET"
					    " period = excluded.period, source = excluded.source, version = excluded.version,"
					    " generated_at = excluded.generated_at, body = excluded.body"
					    " WHERE reco_cache.period <> excluded.period");
	sqlite3_bind_text(s, 1, c->user.sub, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, product, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, p->period, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, p->source, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 5, p->version);
	sqlite3_bind_int64(s, 6, p->generated_at);
	sqlite3_bind_text(s, 7, body, -1, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE)
		fprintf(stderr, "recs: cannot cache %s: %s\n", product, sqlite3_errmsg(c->db));
	sqlite3_finalize(s);
}

/* Computes a product's body (JSON text, caller frees) and the model version behind it. */
typedef enum recsvc_source (*product_fn)(struct call *c, char **body, int64_t *version);

/* The caller's list for the current period: cached, or computed (and cached when personal). */
static void product_get(struct call *c, const char *name, enum period_kind k, product_fn fn, struct product *out)
{
	memset(out, 0, sizeof(*out));
	int64_t now = recsvc_now(c->srv->recs);
	period_name(now, k, out->period, sizeof(out->period));
	if (cache_get(c, name, out)) {
		out->cached = true;
		return;
	}
	char *body = NULL;
	enum recsvc_source src = fn(c, &body, &out->version);
	snprintf(out->source, sizeof(out->source), "%s", recsvc_source_name(src));
	out->generated_at = now;
	if (src == RECSVC_PERSONAL) {
		cache_put(c, name, out, body);
		char mine[16];
		memcpy(mine, out->source, sizeof(mine));
		int64_t at = out->generated_at;
		if (cache_get(c, name, out)) {
			out->cached = out->generated_at != at || strcmp(out->source, mine) != 0;
			free(body);
			return;
		}
	}
	out->body = json_parse(body, NULL, 0);
	free(body);
}

static enum recsvc_source source_of(const char *name)
{
	for (int i = 0; i < RECSVC_NSOURCES; i++)
		if (strcmp(recsvc_source_name((enum recsvc_source)i), name) == 0)
			return (enum recsvc_source)i;
	return RECSVC_POPULAR;
}

static void write_period(struct jw *w, const struct product *p)
{
	jw_kstr(w, "period", p->period);
	jw_kbool(w, "cached", p->cached);
	jw_kint(w, "generated_at", p->generated_at);
	jw_kint(w, "model_version", p->version);
}

/* Track objects for a JSON array of ids, in order (wrapped as playlist items when asked). */
static int write_id_list(struct call *c, struct jw *w, yajl_val ids, bool wrapped)
{
	int n = 0;
	jw_arr(w);
	for (size_t i = 0; ids && YAJL_IS_ARRAY(ids) && i < ids->u.array.len; i++) {
		yajl_val v = ids->u.array.values[i];
		if (!YAJL_IS_STRING(v))
			continue;
		if (wrapped) {
			jw_obj(w);
			jw_key(w, "added_at");
			jw_null(w);
			jw_key(w, "track");
		}
		if (!catalog_write_track(c, w, v->u.string))
			jw_null(w);
		if (wrapped)
			jw_obj_end(w);
		n++;
	}
	jw_arr_end(w);
	return n;
}

/* The diversified first limit ids of a pool as the body {"tracks":[ids]}. */
static char *pool_body(struct pool *p, int limit)
{
	int *order = xmalloc((size_t)(p->n ? p->n : 1) * sizeof(int));
	int n = pool_diversify(p, limit, order);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "tracks");
	jw_arr(&w);
	for (int i = 0; i < n; i++)
		jw_str(&w, p->v[order[i]].id);
	jw_arr_end(&w);
	jw_obj_end(&w);
	free(order);
	return jw_finish(&w);
}

/* The playlist-like object of Discover Weekly and Release Radar. */
static void write_playlist(struct call *c, const char *id, const char *name, const char *desc, const struct product *pr, int limit)
{
	recsvc_count(c->srv->recs, source_of(pr->source));
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kbool(&w, "collaborative", false);
	jw_kstr(&w, "description", desc);
	jw_kstr(&w, "id", id);
	jw_kstr(&w, "name", name);
	jw_key(&w, "owner");
	jw_obj(&w);
	jw_kstr(&w, "display_name", "Encore");
	jw_kstr(&w, "id", "encore");
	jw_kstr(&w, "type", "user");
	jw_obj_end(&w);
	jw_kbool(&w, "public", false);
	char snap[80];
	snprintf(snap, sizeof(snap), "%s-v%lld-%s", pr->source, (long long)pr->version, pr->period);
	jw_kstr(&w, "snapshot_id", snap);
	jw_kstr(&w, "source", pr->source);
	write_period(&w, pr);
	jw_key(&w, "tracks");
	jw_obj(&w);
	jw_key(&w, "items");
	int n = write_id_list(c, &w, json_get(pr->body, "tracks"), true);
	jw_kint(&w, "limit", limit);
	jw_key(&w, "next");
	jw_null(&w);
	jw_kint(&w, "offset", 0);
	jw_key(&w, "previous");
	jw_null(&w);
	jw_kint(&w, "total", n);
	jw_obj_end(&w);
	jw_kstr(&w, "type", "playlist");
	jw_obj_end(&w);
	call_json(c, 200, jw_finish(&w));
}

/* Exclusion mask over model items from id sets. */
static uint8_t *model_mask(const struct recmodel *m, const struct idset *a, const struct idset *b)
{
	uint8_t *mask = xcalloc((size_t)recmodel_items(m), 1);
	const struct idset *sets[2] = {a, b};
	for (int s = 0; s < 2; s++)
		for (int i = 0; sets[s] && i < sets[s]->n; i++) {
			int k = recmodel_item_index(m, sets[s]->v[i]);
			if (k >= 0)
				mask[k] = 1;
		}
	return mask;
}

/* Personal pool from the model: the caller's ALS row, or for a user the model has not seen
 * (cold start) the hybrid similarity to the artists they picked. false when neither applies. */
static bool pool_personal(struct call *c, const struct recmodel *m, struct pool *p, const struct idset *exclude)
{
	int u = recmodel_user_index(m, c->user.sub);
	uint8_t *mask = model_mask(m, exclude, NULL);
	int idx[POOL];
	float sc[POOL];
	int n = 0;
	if (u >= 0) {
		n = recmodel_for_user(m, u, POOL, mask, idx, sc);
	} else {
		struct idset arts = {0};
		user_artists(c, &arts);
		int seeds[256];
		float wts[256];
		int ns = 0;
		for (int i = 0; i < recmodel_items(m) && ns < 256; i++) {
			const char *aid = recmodel_artist_id(m, recmodel_item_at(m, i)->artist);
			if (idset_has(&arts, aid)) {
				seeds[ns] = i;
				wts[ns++] = 1.0f;
			}
		}
		free(arts.v);
		if (ns)
			n = recmodel_similar(m, seeds, wts, ns, POOL, mask, idx, sc);
	}
	free(mask);
	struct cand cd;
	for (int i = 0; i < n; i++) {
		cand_from_model(&cd, m, idx[i], sc[i]);
		pool_add(p, &cd);
	}
	return n > 0;
}

/* Interactions after which a user's list is all personal; below it, the genre list (their
 * picks and listening, by popularity) fills the share personal scores have not earned yet. */
#define BLEND_FULL_AT 20

static void blend_with_genres(struct call *c, struct pool *p, const struct strlist *g, const struct idset *exclude)
{
	sqlite3_stmt *s = db_prepare(c->db, "SELECT count(*) FROM reco_interactions WHERE user_id = ? AND weight > 0");
	sqlite3_bind_text(s, 1, c->user.sub, -1, SQLITE_STATIC);
	int n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int(s, 0) : 0;
	sqlite3_finalize(s);
	if (n >= BLEND_FULL_AT || g->n == 0)
		return;
	struct pool gen = {0}, out = {0};
	pool_genres(c, &gen, g);
	pool_filter(c, &gen, exclude, NULL);
	/* Position i comes from the personal list when the running share of personal picks
	 * would otherwise fall below n / BLEND_FULL_AT (at least a third: the model knows something). */
	double share = (double)n / BLEND_FULL_AT;
	if (share < 1.0 / 3)
		share = 1.0 / 3;
	int a = 0, b = 0;
	for (int i = 0; a < p->n || b < gen.n; i++) {
		bool personal = a < p->n && (b >= gen.n || (double)a < share * (i + 1));
		if (personal)
			pool_add(&out, &p->v[a++]);
		else
			pool_add(&out, &gen.v[b++]);
	}
	free(gen.v);
	free(p->v);
	*p = out;
}

/* Fills p by the chain for a user-level product; returns the source used. */
static enum recsvc_source pool_for_user(struct call *c, struct pool *p, const struct idset *exclude, int64_t *version)
{
	const struct recmodel *m = recsvc_acquire(c->srv->recs);
	*version = m ? recmodel_version(m) : 0;
	struct strlist g = {0};
	user_genres(c, &g);
	if (m) {
		pool_personal(c, m, p, exclude);
		recsvc_release(c->srv->recs, m);
		pool_filter(c, p, exclude, NULL);
		if (p->n > 0) {
			blend_with_genres(c, p, &g, exclude);
			return RECSVC_PERSONAL;
		}
	}
	if (g.n) {
		pool_genres(c, p, &g);
		pool_filter(c, p, exclude, NULL);
		if (p->n > 0)
			return RECSVC_GENRE;
	}
	pool_popular(c, p, NULL, POOL);
	pool_filter(c, p, exclude, NULL);
	return RECSVC_POPULAR;
}

static enum recsvc_source discover_weekly(struct call *c, char **body, int64_t *version)
{
	struct idset played = {0};
	load_played(c, &played);
	struct pool p = {0};
	enum recsvc_source src = pool_for_user(c, &p, &played, version);
	*body = pool_body(&p, 30);
	free(p.v);
	free(played.v);
	return src;
}

static void route_discover_weekly(struct call *c)
{
	struct product pr;
	product_get(c, "discover-weekly", PERIOD_WEEK, discover_weekly, &pr);
	write_playlist(c, "discover-weekly", "Discover Weekly",
		       "Your weekly mixtape of fresh music: tracks you have not played yet.", &pr, 30);
	yajl_tree_free(pr.body);
}

/* ---- ids and lists in query arguments ---- */

/* Splits a comma list of ids into out (at most max). -1 after replying 400. */
static int parse_ids(struct call *c, const char *name, int max, char out[][ID_LEN + 1])
{
	const char *arg = http_arg(c->req, name);
	if (!arg || !*arg)
		return 0;
	int n = 0;
	for (const char *p = arg; *p;) {
		size_t len = strcspn(p, ",");
		if (n >= max) {
			call_error(c, 400, "%s: at most %d ids", name, max);
			return -1;
		}
		/* Accept bare ids and encore:track:ID / encore:artist:ID URIs. */
		const char *colon = memrchr(p, ':', len);
		const char *id = colon ? colon + 1 : p;
		size_t idlen = len - (size_t)(id - p);
		if (idlen != ID_LEN) {
			call_error(c, 400, "%s: invalid id", name);
			return -1;
		}
		memcpy(out[n], id, ID_LEN);
		out[n][ID_LEN] = 0;
		if (!id_valid(out[n])) {
			call_error(c, 400, "%s: invalid id", name);
			return -1;
		}
		n++;
		p += len;
		if (*p == ',')
			p++;
	}
	return n;
}

static bool parse_limit(struct call *c, int def, int max, int *out)
{
	const char *a = http_arg(c->req, "limit");
	*out = def;
	if (!a)
		return true;
	char *end;
	long v = strtol(a, &end, 10);
	if (end == a || *end || v < 1 || v > max) {
		call_error(c, 400, "limit must be an integer from 1 to %d", max);
		return false;
	}
	*out = (int)v;
	return true;
}

static bool parse_targets(struct call *c, struct targets *t)
{
	static const char *const names[4] = {"target_energy", "target_valence", "target_danceability", "target_tempo"};
	memset(t, 0, sizeof(*t));
	for (int k = 0; k < 4; k++) {
		const char *a = http_arg(c->req, names[k]);
		if (!a)
			continue;
		char *end;
		double v = strtod(a, &end);
		if (end == a || *end || !isfinite(v) || v < 0 || (k < 3 && v > 1) || (k == 3 && v > 300)) {
			call_error(c, 400, "%s must be a number in [0, %s]", names[k], k < 3 ? "1" : "300");
			return false;
		}
		t->has[k] = true;
		t->v[k] = (float)v;
	}
	return true;
}

static bool track_exists(struct call *c, const char *id, char *genre, size_t glen, char *artist)
{
	sqlite3_stmt *s = db_prepare(c->db, "SELECT genre, artist_id FROM tracks WHERE id = ?");
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	bool ok = sqlite3_step(s) == SQLITE_ROW;
	if (ok) {
		snprintf(genre, glen, "%s", (const char *)sqlite3_column_text(s, 0));
		if (artist)
			snprintf(artist, ID_LEN + 1, "%s", (const char *)sqlite3_column_text(s, 1));
	}
	sqlite3_finalize(s);
	return ok;
}

/* The artist's first genre tag; false when the artist is unknown. */
static bool artist_exists(struct call *c, const char *id, char *genre, size_t glen)
{
	sqlite3_stmt *s = db_prepare(c->db, "SELECT genres FROM artists WHERE id = ?");
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	bool ok = sqlite3_step(s) == SQLITE_ROW;
	if (ok) {
		const char *g = (const char *)sqlite3_column_text(s, 0);
		size_t n = strcspn(g, ",");
		snprintf(genre, glen, "%.*s", (int)(n < glen ? n : glen - 1), g);
	}
	sqlite3_finalize(s);
	return ok;
}

/* Model items seeded by tracks, artists (all their tracks) and genres, with weights that
 * give each seed the same total pull. */
struct seeds {
	int item[1024];
	float w[1024];
	int n;
};

static void seeds_add(struct seeds *s, int item, float w)
{
	if (item >= 0 && s->n < 1024) {
		s->item[s->n] = item;
		s->w[s->n++] = w;
	}
}

static void seeds_artist(struct seeds *s, const struct recmodel *m, const char *artist_id, float w)
{
	int a = recmodel_artist_index(m, artist_id), cnt = 0;
	if (a < 0)
		return;
	for (int i = 0; i < recmodel_items(m); i++)
		cnt += recmodel_item_at(m, i)->artist == a;
	for (int i = 0; i < recmodel_items(m); i++)
		if (recmodel_item_at(m, i)->artist == a)
			seeds_add(s, i, w / (float)cnt);
}

static void seeds_genre(struct seeds *s, const struct recmodel *m, const char *genre, float w)
{
	int cnt = 0;
	for (int i = 0; i < recmodel_items(m); i++)
		cnt += strcmp(recmodel_item_at(m, i)->genre, genre) == 0;
	for (int i = 0; i < recmodel_items(m) && cnt; i++)
		if (strcmp(recmodel_item_at(m, i)->genre, genre) == 0)
			seeds_add(s, i, w / (float)cnt);
}

static void pool_from_seeds(const struct recmodel *m, struct pool *p, const struct seeds *s, const struct idset *exclude,
			    const struct idset *exclude2)
{
	if (s->n == 0)
		return;
	uint8_t *mask = model_mask(m, exclude, exclude2);
	int idx[POOL];
	float sc[POOL];
	int n = recmodel_similar(m, s->item, s->w, s->n, POOL, mask, idx, sc);
	free(mask);
	struct cand cd;
	for (int i = 0; i < n; i++) {
		cand_from_model(&cd, m, idx[i], sc[i]);
		pool_add(p, &cd);
	}
}

static void route_recommendations(struct call *c)
{
	char tracks[MAX_SEEDS + 1][ID_LEN + 1], artists[MAX_SEEDS + 1][ID_LEN + 1];
	int nt = parse_ids(c, "seed_tracks", MAX_SEEDS, tracks);
	if (nt < 0)
		return;
	int na = parse_ids(c, "seed_artists", MAX_SEEDS, artists);
	if (na < 0)
		return;
	struct strlist genres = {0};
	const char *ga = http_arg(c->req, "seed_genres");
	int ng = 0;
	for (const char *p = ga; p && *p;) {
		size_t len = strcspn(p, ",");
		if (len == 0 || len >= RECMODEL_GENRE_MAX) {
			call_error(c, 400, "seed_genres: empty or overlong genre");
			return;
		}
		char g[RECMODEL_GENRE_MAX];
		snprintf(g, sizeof(g), "%.*s", (int)len, p);
		strlist_add(&genres, g);
		ng++;
		p += len;
		if (*p == ',')
			p++;
	}
	if (nt + na + ng == 0 || nt + na + ng > MAX_SEEDS) {
		call_error(c, 400, "between 1 and %d seeds (seed_tracks, seed_artists, seed_genres) are required", MAX_SEEDS);
		return;
	}
	int limit;
	struct targets tg;
	if (!parse_limit(c, 20, 100, &limit) || !parse_targets(c, &tg))
		return;
	/* Seed genres for the fallback; unknown ids are the caller's mistake. */
	struct strlist fallback = {0};
	struct idset seed_ids = {0};
	char g[RECMODEL_GENRE_MAX];
	for (int i = 0; i < nt; i++) {
		if (!track_exists(c, tracks[i], g, sizeof(g), NULL)) {
			call_error(c, 404, "seed_tracks: no track %s", tracks[i]);
			goto out;
		}
		strlist_add(&fallback, g);
		idset_add(&seed_ids, tracks[i]);
	}
	for (int i = 0; i < na; i++) {
		if (!artist_exists(c, artists[i], g, sizeof(g))) {
			call_error(c, 404, "seed_artists: no artist %s", artists[i]);
			goto out;
		}
		strlist_add(&fallback, g);
	}
	for (int i = 0; i < genres.n; i++)
		strlist_add(&fallback, genres.v[i]);

	struct pool p = {0};
	enum recsvc_source src = RECSVC_PERSONAL;
	const struct recmodel *m = recsvc_acquire(c->srv->recs);
	if (m) {
		struct seeds s = {0};
		for (int i = 0; i < nt; i++)
			seeds_add(&s, recmodel_item_index(m, tracks[i]), 1.0f);
		for (int i = 0; i < na; i++)
			seeds_artist(&s, m, artists[i], 1.0f);
		for (int i = 0; i < genres.n; i++)
			seeds_genre(&s, m, genres.v[i], 1.0f);
		pool_from_seeds(m, &p, &s, &seed_ids, NULL);
		recsvc_release(c->srv->recs, m);
		pool_filter(c, &p, &seed_ids, NULL);
	}
	if (p.n == 0 && fallback.n) {
		src = RECSVC_GENRE;
		pool_genres(c, &p, &fallback);
		pool_filter(c, &p, &seed_ids, NULL);
	}
	if (p.n == 0) {
		src = RECSVC_POPULAR;
		pool_popular(c, &p, NULL, POOL);
		pool_filter(c, &p, &seed_ids, NULL);
	}
	pool_targets(&p, &tg);
	int *order = xmalloc((size_t)(p.n ? p.n : 1) * sizeof(int));
	int n = pool_diversify(&p, limit, order);
	recsvc_count(c->srv->recs, src);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "seeds");
	jw_arr(&w);
	for (int k = 0; k < 3; k++) {
		int cnt = k == 0 ? nt : k == 1 ? na : genres.n;
		for (int i = 0; i < cnt; i++) {
			const char *id = k == 0 ? tracks[i] : k == 1 ? artists[i] : genres.v[i];
			jw_obj(&w);
			jw_kint(&w, "afterFilteringSize", p.n);
			jw_kint(&w, "afterRelinkingSize", p.n);
			if (k < 2) {
				char *href = xasprintf("%s/v1/%s/%s", c->srv->base_url, k == 0 ? "tracks" : "artists", id);
				jw_kstr(&w, "href", href);
				free(href);
			} else {
				jw_key(&w, "href");
				jw_null(&w);
			}
			jw_kstr(&w, "id", id);
			jw_kint(&w, "initialPoolSize", p.n);
			jw_kstr(&w, "type", k == 0 ? "TRACK" : k == 1 ? "ARTIST" : "GENRE");
			jw_obj_end(&w);
		}
	}
	jw_arr_end(&w);
	jw_kstr(&w, "source", recsvc_source_name(src));
	jw_key(&w, "tracks");
	write_track_list(c, &w, &p, order, n, false);
	jw_obj_end(&w);
	call_json(c, 200, jw_finish(&w));
	free(order);
	free(p.v);
out:
	free(seed_ids.v);
}

/* ---- radio ---- */

static void route_radio(struct call *c)
{
	const char *seed = http_arg(c->req, "seed");
	char type[16], id[ID_LEN + 1];
	if (!seed || !uri_parse(seed, type, sizeof(type), id) ||
	    (strcmp(type, "track") != 0 && strcmp(type, "artist") != 0 && strcmp(type, "playlist") != 0)) {
		call_error(c, 400, "seed must be an encore:track:, encore:artist: or encore:playlist: URI");
		return;
	}
	char skipped[MAX_FEEDBACK][ID_LEN + 1], liked[MAX_FEEDBACK][ID_LEN + 1];
	int nsk = parse_ids(c, "skipped", MAX_FEEDBACK, skipped);
	if (nsk < 0)
		return;
	int nli = parse_ids(c, "liked", MAX_FEEDBACK, liked);
	if (nli < 0)
		return;
	int limit;
	if (!parse_limit(c, 30, 50, &limit))
		return;
	struct idset seed_tracks = {0}, feedback = {0}, skip_artists = {0};
	struct strlist genres = {0};
	char g[RECMODEL_GENRE_MAX], art[ID_LEN + 1];
	char seed_artist[ID_LEN + 1] = "";
	if (strcmp(type, "track") == 0) {
		if (!track_exists(c, id, g, sizeof(g), NULL)) {
			call_error(c, 404, "no track %s", id);
			goto out;
		}
		idset_add(&seed_tracks, id);
		strlist_add(&genres, g);
	} else if (strcmp(type, "artist") == 0) {
		if (!artist_exists(c, id, g, sizeof(g))) {
			call_error(c, 404, "no artist %s", id);
			goto out;
		}
		snprintf(seed_artist, sizeof(seed_artist), "%s", id);
		strlist_add(&genres, g);
	} else {
		/* A playlist's current tracks: inserted items no remove op has tombstoned. */
		sqlite3_stmt *s = db_prepare(c->db, "SELECT substr(o.uri, 14) FROM playlist_ops o WHERE o.playlist_id = ?1"
						    " AND o.kind = 1 AND o.uri LIKE 'encore:track:%' AND NOT EXISTS (SELECT 1"
						    " FROM playlist_ops r WHERE r.playlist_id = ?1 AND r.kind = 2"
						    " AND r.item_counter = o.item_counter AND r.item_replica = o.item_replica)"
						    " ORDER BY o.seq LIMIT 200");
		sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
		while (sqlite3_step(s) == SQLITE_ROW)
			idset_add(&seed_tracks, (const char *)sqlite3_column_text(s, 0));
		sqlite3_finalize(s);
		for (int i = 0; i < seed_tracks.n; i++)
			if (track_exists(c, seed_tracks.v[i], g, sizeof(g), NULL))
				strlist_add(&genres, g);
		if (seed_tracks.n == 0) {
			call_error(c, 404, "no playlist %s with tracks", id);
			goto out;
		}
	}
	for (int i = 0; i < nsk; i++) {
		idset_add(&feedback, skipped[i]);
		if (track_exists(c, skipped[i], g, sizeof(g), art))
			idset_add(&skip_artists, art);
	}
	for (int i = 0; i < nli; i++)
		idset_add(&feedback, liked[i]);

	struct pool p = {0};
	enum recsvc_source src = RECSVC_PERSONAL;
	const struct recmodel *m = recsvc_acquire(c->srv->recs);
	if (m) {
		struct seeds s = {0};
		/* The seed keeps half the pull however long the session; feedback shares the rest. */
		for (int i = 0; i < seed_tracks.n; i++)
			seeds_add(&s, recmodel_item_index(m, seed_tracks.v[i]), 1.0f / (float)seed_tracks.n);
		if (*seed_artist)
			seeds_artist(&s, m, seed_artist, 1.0f);
		for (int i = 0; i < nli; i++)
			seeds_add(&s, recmodel_item_index(m, liked[i]), 1.0f / (float)(nli + nsk));
		for (int i = 0; i < nsk; i++)
			seeds_add(&s, recmodel_item_index(m, skipped[i]), -1.0f / (float)(nli + nsk));
		pool_from_seeds(m, &p, &s, &seed_tracks, &feedback);
		recsvc_release(c->srv->recs, m);
		pool_filter(c, &p, &seed_tracks, &feedback);
	}
	if (p.n == 0) {
		src = genres.n ? RECSVC_GENRE : RECSVC_POPULAR;
		if (genres.n)
			pool_genres(c, &p, &genres);
		pool_popular(c, &p, NULL, POOL);
		pool_filter(c, &p, &seed_tracks, &feedback);
	}
	/* Whatever the source: tracks by artists just skipped go to the back of the batch. */
	if (skip_artists.n) {
		for (int i = 0; i < p.n; i++)
			p.v[i].score = (float)(p.n - i) - (idset_has(&skip_artists, p.v[i].artist) ? (float)p.n : 0);
		qsort(p.v, (size_t)p.n, sizeof(*p.v), cmp_score);
	}
	int *order = xmalloc((size_t)(p.n ? p.n : 1) * sizeof(int));
	int n = pool_diversify(&p, limit, order);
	recsvc_count(c->srv->recs, src);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "seed", seed);
	jw_kstr(&w, "source", recsvc_source_name(src));
	jw_key(&w, "tracks");
	write_track_list(c, &w, &p, order, n, false);
	jw_obj_end(&w);
	call_json(c, 200, jw_finish(&w));
	free(order);
	free(p.v);
out:
	free(seed_tracks.v);
	free(feedback.v);
	free(skip_artists.v);
}

/* ---- daily mixes ---- */

#define MIX_MAX 6          /* mixes per user */
#define MIX_TRACKS 50
#define MIX_HISTORY 300    /* most-weighted listened tracks clustered */
#define MIX_MIN_ITEMS 4    /* fewer listened tracks in the model: genre mixes */
#define MIX_MIN_SILHOUETTE 0.15

/* Interleaves one familiar favourite for every two new tracks, drops what the caller may
 * not play, applies the diversity rule; returns the mix in out (order as rendered). */
static void mix_build(struct call *c, struct pool *familiar, struct pool *fresh, struct pool *out)
{
	struct pool mix = {0};
	for (int i = 0, f = 0, n = 0; f < familiar->n || n < fresh->n; i++) {
		if (f < familiar->n && (i % 3 == 0 || n >= fresh->n))
			pool_add(&mix, &familiar->v[f++]);
		else if (n < fresh->n)
			pool_add(&mix, &fresh->v[n++]);
	}
	pool_filter(c, &mix, NULL, NULL);
	int *order = xmalloc((size_t)(mix.n ? mix.n : 1) * sizeof(int));
	int n = pool_diversify(&mix, MIX_TRACKS, order);
	for (int i = 0; i < n; i++)
		pool_add(out, &mix.v[order[i]]);
	free(order);
	free(mix.v);
}

static void mix_write(struct jw *w, int number, const char *genre, const char *desc, const struct pool *tracks)
{
	char idbuf[32], name[32];
	snprintf(idbuf, sizeof(idbuf), "daily-mix-%d", number);
	snprintf(name, sizeof(name), "Daily Mix %d", number);
	jw_kstr(w, "id", idbuf);
	jw_kstr(w, "name", name);
	jw_kstr(w, "genre", genre);
	jw_kstr(w, "description", desc);
	jw_key(w, "tracks");
	jw_arr(w);
	for (int i = 0; i < tracks->n; i++)
		jw_str(w, tracks->v[i].id);
	jw_arr_end(w);
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/* One mix per taste cluster: the caller's most-weighted listened tracks clustered by their
 * model vectors (k-means, k chosen by silhouette, at most MIX_MAX). A mix holds its
 * cluster's favourites and new tracks near its centroid: new tracks nearer another of the
 * caller's centroids belong to that mix instead. Writes the mixes' objects into w and
 * returns how many, or -1 when the caller has too few listened tracks in the model. */
static int mixes_by_cluster(struct call *c, const struct recmodel *m, const struct idset *played, struct jw *w)
{
	sqlite3_stmt *s = db_prepare(c->db, "SELECT track_id, weight FROM reco_interactions WHERE user_id = ? AND weight > 0"
					    " ORDER BY weight DESC, track_id LIMIT ?");
	sqlite3_bind_text(s, 1, c->user.sub, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 2, MIX_HISTORY);
	int items[MIX_HISTORY];
	float weight[MIX_HISTORY];
	int n = 0;
	while (sqlite3_step(s) == SQLITE_ROW && n < MIX_HISTORY) {
		int k = recmodel_item_index(m, (const char *)sqlite3_column_text(s, 0));
		if (k >= 0) {
			items[n] = k;
			weight[n++] = (float)sqlite3_column_double(s, 1);
		}
	}
	sqlite3_finalize(s);
	if (n < MIX_MIN_ITEMS)
		return -1;
	int d = recmodel_dim(m);
	float *x = xmalloc((size_t)n * d * sizeof(float)), *cent = xmalloc((size_t)MIX_MAX * d * sizeof(float));
	for (int i = 0; i < n; i++)
		memcpy(x + (size_t)i * d, recmodel_item_vector(m, items[i]), (size_t)d * sizeof(float));
	int assign[MIX_HISTORY];
	int k = recmodel_taste_clusters(x, n, d, MIX_MAX, MIX_MIN_SILHOUETTE, hash_str(c->user.sub), assign, cent);
	/* Strongest taste first. */
	double mass[MIX_MAX] = {0};
	int rank[MIX_MAX];
	for (int i = 0; i < n; i++)
		mass[assign[i]] += weight[i];
	for (int j = 0; j < k; j++)
		rank[j] = j;
	for (int a = 1; a < k; a++)
		for (int b = a; b > 0 && mass[rank[b]] > mass[rank[b - 1]]; b--) {
			int t = rank[b];
			rank[b] = rank[b - 1];
			rank[b - 1] = t;
		}
	uint8_t *mask = model_mask(m, played, NULL);
	for (int i = 0; i < n; i++)
		mask[items[i]] = 1;
	int written = 0;
	for (int r = 0; r < k; r++) {
		int j = rank[r];
		struct pool familiar = {0}, fresh = {0}, mix = {0};
		int members[MIX_HISTORY];
		float ones[MIX_HISTORY];
		int nm = 0;
		struct cand cd;
		for (int i = 0; i < n; i++)   /* already by weight */
			if (assign[i] == j) {
				members[nm] = items[i];
				ones[nm++] = 1.0f;
				cand_from_model(&cd, m, items[i], weight[i]);
				pool_add(&familiar, &cd);
			}
		int idx[POOL];
		float sc[POOL];
		int got = recmodel_similar(m, members, ones, nm, POOL, mask, idx, sc);
		for (int i = 0; i < got; i++)
			if (recmodel_nearest(recmodel_item_vector(m, idx[i]), cent, k, d, NULL) == j) {
				cand_from_model(&cd, m, idx[i], sc[i]);
				pool_add(&fresh, &cd);
			}
		mix_build(c, &familiar, &fresh, &mix);
		/* Its label: the genre most of its favourites share. */
		const char *genre = familiar.v[0].genre;
		int best = 0;
		for (int a = 0; a < familiar.n; a++) {
			int cnt = 0;
			for (int b = 0; b < familiar.n; b++)
				cnt += strcmp(familiar.v[a].genre, familiar.v[b].genre) == 0;
			if (cnt > best) {
				best = cnt;
				genre = familiar.v[a].genre;
			}
		}
		if (mix.n > 0) {
			/* How tight the mix is: mean distance of its tracks to its centroid and to the
			 * nearest other centroid (reported; the test checks own < other). */
			double own = 0, other = 0;
			for (int i = 0; i < mix.n; i++) {
				const float *v = recmodel_item_vector(m, recmodel_item_index(m, mix.v[i].id));
				float best2 = -1;
				for (int o = 0; o < k; o++) {
					float d2 = 0;
					recmodel_nearest(v, cent + (size_t)o * d, 1, d, &d2);
					if (o == j)
						own += sqrt(d2);
					else if (best2 < 0 || d2 < best2)
						best2 = d2;
				}
				if (best2 >= 0)
					other += sqrt(best2);
			}
			jw_obj(w);
			char *desc = xasprintf("%s and more: %d favourites and new finds", genre, familiar.n);
			mix_write(w, written + 1, genre, desc, &mix);
			free(desc);
			jw_key(w, "cluster");
			jw_obj(w);
			jw_kint(w, "listened", nm);
			jw_kint(w, "clusters", k);
			jw_kdouble(w, "mean_distance_own", own / mix.n);
			jw_key(w, "mean_distance_nearest_other");
			if (k > 1)
				jw_double(w, other / mix.n);
			else
				jw_null(w);
			jw_obj_end(w);
			jw_obj_end(w);
			written++;
		}
		free(familiar.v);
		free(fresh.v);
		free(mix.v);
	}
	free(mask);
	free(x);
	free(cent);
	return written;
}

/* Without a model or enough history: one mix per genre of the caller's picks and history. */
static int mixes_by_genre(struct call *c, const struct pool *personal, const struct idset *played, struct jw *w, bool *any_genre)
{
	struct strlist genres = {0};
	user_genres(c, &genres);
	int nmix = genres.n < MIX_MAX ? genres.n : MIX_MAX;
	*any_genre = nmix > 0;
	int written = 0;
	for (int k = 0; k < (nmix ? nmix : 1); k++) {
		const char *genre = nmix ? genres.v[k] : NULL;
		struct pool fresh = {0}, familiar = {0}, mix = {0}, tmp = {0};
		/* New tracks of the genre in personal order when there is one, else by popularity. */
		for (int i = 0; personal && i < personal->n; i++)
			if (genre && strcmp(personal->v[i].genre, genre) == 0)
				pool_add(&tmp, &personal->v[i]);
		pool_popular(c, &tmp, genre, 100);
		for (int i = 0; i < tmp.n; i++)
			pool_add(idset_has(played, tmp.v[i].id) ? &familiar : &fresh, &tmp.v[i]);
		free(tmp.v);
		mix_build(c, &familiar, &fresh, &mix);
		if (mix.n > 0) {
			jw_obj(w);
			char *desc = genre ? xasprintf("%s favourites and new finds", genre) : xstrdup("Popular right now");
			mix_write(w, written + 1, genre ? genre : "", desc, &mix);
			free(desc);
			jw_obj_end(w);
			written++;
		}
		free(fresh.v);
		free(familiar.v);
		free(mix.v);
	}
	return written;
}

static enum recsvc_source daily_mixes(struct call *c, char **body, int64_t *version)
{
	struct idset played = {0};
	load_played(c, &played);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "mixes");
	jw_arr(&w);
	enum recsvc_source src = RECSVC_GENRE;
	const struct recmodel *m = recsvc_acquire(c->srv->recs);
	*version = m ? recmodel_version(m) : 0;
	int done = m ? mixes_by_cluster(c, m, &played, &w) : -1;
	if (done > 0) {
		src = RECSVC_PERSONAL;
	} else {
		struct pool personal = {0};
		if (m && pool_personal(c, m, &personal, NULL))
			src = RECSVC_PERSONAL;
		bool any_genre;
		mixes_by_genre(c, &personal, &played, &w, &any_genre);
		if (!any_genre)
			src = RECSVC_POPULAR;
		free(personal.v);
	}
	if (m)
		recsvc_release(c->srv->recs, m);
	jw_arr_end(&w);
	jw_obj_end(&w);
	*body = jw_finish(&w);
	free(played.v);
	return src;
}

static void route_daily_mixes(struct call *c)
{
	struct product pr;
	product_get(c, "daily-mixes", PERIOD_DAY, daily_mixes, &pr);
	recsvc_count(c->srv->recs, source_of(pr.source));
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "mixes");
	jw_arr(&w);
	yajl_val mixes = json_get(pr.body, "mixes");
	for (size_t i = 0; mixes && YAJL_IS_ARRAY(mixes) && i < mixes->u.array.len; i++) {
		yajl_val mx = mixes->u.array.values[i];
		const char *fields[] = {"id", "name", "genre", "description"};
		jw_obj(&w);
		for (int f = 0; f < 4; f++)
			jw_kstr(&w, fields[f], json_get_str(mx, fields[f]) ? json_get_str(mx, fields[f]) : "");
		jw_kstr(&w, "type", "playlist");
		yajl_val cl = json_get(mx, "cluster");
		if (cl && YAJL_IS_OBJECT(cl)) {
			long long listened = 0, k = 0;
			double own = 0, other = 0;
			json_get_int(cl, "listened", &listened);
			json_get_int(cl, "clusters", &k);
			json_get_double(cl, "mean_distance_own", &own);
			jw_key(&w, "cluster");
			jw_obj(&w);
			jw_kint(&w, "listened", listened);
			jw_kint(&w, "clusters", k);
			jw_kdouble(&w, "mean_distance_own", own);
			jw_key(&w, "mean_distance_nearest_other");
			if (json_get_double(cl, "mean_distance_nearest_other", &other))
				jw_double(&w, other);
			else
				jw_null(&w);
			jw_obj_end(&w);
		}
		jw_key(&w, "tracks");
		jw_obj(&w);
		jw_key(&w, "items");
		int n = write_id_list(c, &w, json_get(mx, "tracks"), true);
		jw_kint(&w, "total", n);
		jw_obj_end(&w);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_kstr(&w, "source", pr.source);
	write_period(&w, &pr);
	jw_obj_end(&w);
	call_json(c, 200, jw_finish(&w));
	yajl_tree_free(pr.body);
}

/* ---- release radar ---- */

static enum recsvc_source release_radar(struct call *c, char **body, int64_t *out_version)
{
	struct idset artists = {0};
	user_artists(c, &artists);
	enum recsvc_source src = RECSVC_GENRE;
	int64_t version = 0;
	/* Artists like the followed ones: those of the tracks most similar to theirs. */
	const struct recmodel *m = recsvc_acquire(c->srv->recs);
	if (m) {
		version = recmodel_version(m);
		struct seeds s = {0};
		int base = artists.n;
		for (int i = 0; i < base; i++)
			seeds_artist(&s, m, artists.v[i], 1.0f);
		struct pool sim = {0};
		pool_from_seeds(m, &sim, &s, NULL, NULL);
		for (int i = 0; i < sim.n && artists.n < base + 10; i++)
			idset_add(&artists, sim.v[i].artist);
		free(sim.v);
		recsvc_release(c->srv->recs, m);
		if (s.n)
			src = RECSVC_PERSONAL;
	}
	struct pool p = {0};
	char *sql = xasprintf("%s JOIN albums al ON al.id = t.album_id WHERE t.state = 'ready' AND t.artist_id = ?"
			      " ORDER BY al.release_date DESC, t.track_number LIMIT 10", TRACK_COLS);
	sqlite3_stmt *s = db_prepare(c->db, sql);
	free(sql);
	for (int i = 0; i < artists.n; i++) {
		sqlite3_reset(s);
		sqlite3_bind_text(s, 1, artists.v[i], -1, SQLITE_STATIC);
		struct cand cd;
		while (sqlite3_step(s) == SQLITE_ROW) {
			cand_from_row(&cd, s);
			pool_add(&p, &cd);
		}
	}
	sqlite3_finalize(s);
	if (p.n == 0) {
		/* Nobody followed yet: the newest releases overall. */
		src = RECSVC_POPULAR;
		sql = xasprintf("%s JOIN albums al ON al.id = t.album_id WHERE t.state = 'ready'"
				" ORDER BY al.release_date DESC, t.popularity DESC LIMIT ?", TRACK_COLS);
		s = db_prepare(c->db, sql);
		free(sql);
		sqlite3_bind_int(s, 1, POOL);
		struct cand cd;
		while (sqlite3_step(s) == SQLITE_ROW) {
			cand_from_row(&cd, s);
			pool_add(&p, &cd);
		}
		sqlite3_finalize(s);
	} else {
		/* Newest first across all the artists. */
		sqlite3_stmt *d = db_prepare(c->db, "SELECT al.release_date FROM tracks t JOIN albums al ON al.id = t.album_id WHERE t.id = ?");
		for (int i = 0; i < p.n; i++) {
			sqlite3_reset(d);
			sqlite3_bind_text(d, 1, p.v[i].id, -1, SQLITE_STATIC);
			int y = 0, mo = 0, dd = 0;
			if (sqlite3_step(d) == SQLITE_ROW)
				sscanf((const char *)sqlite3_column_text(d, 0), "%d-%d-%d", &y, &mo, &dd);
			p.v[i].score = (float)(y * 400 + mo * 31 + dd);
		}
		sqlite3_finalize(d);
		qsort(p.v, (size_t)p.n, sizeof(*p.v), cmp_score);
	}
	pool_filter(c, &p, NULL, NULL);
	*body = pool_body(&p, 30);
	*out_version = version;
	free(p.v);
	free(artists.v);
	return src;
}

static void route_release_radar(struct call *c)
{
	struct product pr;
	product_get(c, "release-radar", PERIOD_WEEK, release_radar, &pr);
	write_playlist(c, "release-radar", "Release Radar", "New releases from artists you follow and artists like them.", &pr, 30);
	yajl_tree_free(pr.body);
}

/* ---- taste (cold start) ---- */

static void write_taste(struct call *c)
{
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	const char *kinds[2] = {"genre", "artist"};
	for (int k = 0; k < 2; k++) {
		jw_key(&w, k == 0 ? "genres" : "artists");
		jw_arr(&w);
		sqlite3_stmt *s = db_prepare(c->db, "SELECT value FROM user_taste WHERE user_id = ? AND kind = ? ORDER BY value");
		sqlite3_bind_text(s, 1, c->user.sub, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, kinds[k], -1, SQLITE_STATIC);
		while (sqlite3_step(s) == SQLITE_ROW)
			jw_str(&w, (const char *)sqlite3_column_text(s, 0));
		sqlite3_finalize(s);
		jw_arr_end(&w);
	}
	jw_obj_end(&w);
	call_json(c, 200, jw_finish(&w));
}

static void route_get_taste(struct call *c)
{
	write_taste(c);
}

static void route_put_taste(struct call *c)
{
	yajl_val body = call_body_json(c);
	if (!body)
		return;
	yajl_val g = json_get(body, "genres"), a = json_get(body, "artists");
	if ((g && !YAJL_IS_ARRAY(g)) || (a && !YAJL_IS_ARRAY(a)) || (!g && !a)) {
		call_error(c, 400, "body must have \"genres\" and/or \"artists\" arrays");
		goto out;
	}
	if ((g && g->u.array.len > MAX_TASTE) || (a && a->u.array.len > MAX_TASTE)) {
		call_error(c, 400, "at most %d genres and %d artists", MAX_TASTE, MAX_TASTE);
		goto out;
	}
	char tmp[RECMODEL_GENRE_MAX];
	for (size_t i = 0; g && i < g->u.array.len; i++) {
		yajl_val v = g->u.array.values[i];
		if (!YAJL_IS_STRING(v) || !*v->u.string || strlen(v->u.string) >= RECMODEL_GENRE_MAX) {
			call_error(c, 400, "genres[%zu]: a non-empty string under %d bytes", i, RECMODEL_GENRE_MAX);
			goto out;
		}
	}
	for (size_t i = 0; a && i < a->u.array.len; i++) {
		yajl_val v = a->u.array.values[i];
		const char *s = YAJL_IS_STRING(v) ? v->u.string : NULL;
		char idbuf[ID_LEN + 1] = "", tp[16];
		if (s && strncmp(s, "encore:", 7) == 0)
			uri_parse(s, tp, sizeof(tp), idbuf);
		else if (s)
			snprintf(idbuf, sizeof(idbuf), "%s", s);
		if (!s || !id_valid(idbuf)) {
			call_error(c, 400, "artists[%zu]: an artist id", i);
			goto out;
		}
		if (!artist_exists(c, idbuf, tmp, sizeof(tmp))) {
			call_error(c, 404, "artists[%zu]: no artist %s", i, idbuf);
			goto out;
		}
	}
	if (db_begin(c->db) != 0) {
		call_error(c, 503, "database busy");
		goto out;
	}
	sqlite3_stmt *del = db_prepare(c->db, "DELETE FROM user_taste WHERE user_id = ? AND kind = ?");
	sqlite3_stmt *ins = db_prepare(c->db, "INSERT OR IGNORE INTO user_taste(user_id, kind, value) VALUES (?, ?, ?)");
	bool ok = true;
	for (int k = 0; k < 2; k++) {
		yajl_val arr = k == 0 ? g : a;
		if (!arr)
			continue;   /* a list left out keeps its old value */
		const char *kind = k == 0 ? "genre" : "artist";
		sqlite3_reset(del);
		sqlite3_bind_text(del, 1, c->user.sub, -1, SQLITE_STATIC);
		sqlite3_bind_text(del, 2, kind, -1, SQLITE_STATIC);
		ok = ok && sqlite3_step(del) == SQLITE_DONE;
		for (size_t i = 0; i < arr->u.array.len; i++) {
			const char *s = arr->u.array.values[i]->u.string;
			char val[64], tp[16], idbuf[ID_LEN + 1];
			if (k == 1 && strncmp(s, "encore:", 7) == 0 && uri_parse(s, tp, sizeof(tp), idbuf))
				s = idbuf;
			snprintf(val, sizeof(val), "%s", s);
			if (k == 0)
				for (char *p = val; *p; p++)
					*p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
			sqlite3_reset(ins);
			sqlite3_bind_text(ins, 1, c->user.sub, -1, SQLITE_STATIC);
			sqlite3_bind_text(ins, 2, kind, -1, SQLITE_STATIC);
			sqlite3_bind_text(ins, 3, val, -1, SQLITE_TRANSIENT);
			ok = ok && sqlite3_step(ins) == SQLITE_DONE;
		}
	}
	sqlite3_finalize(del);
	sqlite3_finalize(ins);
	/* New picks should show at once, not next week: drop the caller's cached lists. */
	sqlite3_stmt *inv = db_prepare(c->db, "DELETE FROM reco_cache WHERE user_id = ?");
	sqlite3_bind_text(inv, 1, c->user.sub, -1, SQLITE_STATIC);
	ok = ok && sqlite3_step(inv) == SQLITE_DONE;
	sqlite3_finalize(inv);
	if (!ok || db_commit(c->db) != 0) {
		db_rollback(c->db);
		call_error(c, 503, "could not store the taste");
		goto out;
	}
	write_taste(c);
out:
	yajl_tree_free(body);
}

/* ---- admin ---- */

static void route_admin_status(struct call *c)
{
	struct recsvc_status st;
	recsvc_status(c->srv->recs, &st);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kint(&w, "version", st.version);
	jw_kint(&w, "created_at", st.created_at);
	jw_kbool(&w, "fault", st.fault);
	jw_kbool(&w, "stale", st.stale);
	jw_kint(&w, "reloads", (long long)st.reloads);
	jw_kint(&w, "trainings", (long long)st.trainings);
	jw_kint(&w, "train_failures", (long long)st.train_failures);
	jw_key(&w, "served");
	jw_obj(&w);
	for (int i = 0; i < RECSVC_NSOURCES; i++)
		jw_kint(&w, recsvc_source_name((enum recsvc_source)i), (long long)st.served[i]);
	jw_obj_end(&w);
	jw_obj_end(&w);
	call_json(c, 200, jw_finish(&w));
}

static void route_admin_fault(struct call *c)
{
	yajl_val body = call_body_json(c);
	if (!body)
		return;
	bool on;
	if (!json_get_bool(body, "error", &on)) {
		call_error(c, 400, "body must be {\"error\": true|false}");
		yajl_tree_free(body);
		return;
	}
	recsvc_set_fault(c->srv->recs, on);
	if (on)
		atomic_fetch_or(&c->srv->faults.services, FAULT_SVC_RECS);
	else
		atomic_fetch_and(&c->srv->faults.services, ~(unsigned)FAULT_SVC_RECS);
	yajl_tree_free(body);
	route_admin_status(c);
}

const struct route recs_routes[] = {
	{"GET", "/v1/recommendations", route_recommendations, 0},
	{"GET", "/v1/me/discover-weekly", route_discover_weekly, 0},
	{"GET", "/v1/me/daily-mixes", route_daily_mixes, 0},
	{"GET", "/v1/me/release-radar", route_release_radar, 0},
	{"GET", "/v1/radio", route_radio, 0},
	{"GET", "/v1/me/taste", route_get_taste, 0},
	{"PUT", "/v1/me/taste", route_put_taste, 0},
	{"GET", "/v1/admin/recs", route_admin_status, ROUTE_ADMIN},
	{"POST", "/v1/admin/recs/fault", route_admin_fault, ROUTE_ADMIN},
	{NULL, NULL, NULL, 0},
};
