/* catalog: rendering follows the Web API's object shapes field for field, so existing
 * Web API clients can parse encored's answers. Rendered objects are cached per caller
 * country (is_playable depends on it) for the metadata TTL. */
#include "catalog.h"
#include "db.h"
#include "json.h"
#include "server.h"
#include "xmem.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The markets Encore serves; a track with no restriction is available in all of them. */
static const char *const MARKETS[] = {"SE", "US", "JP", "GB", "DE", "FR", "BR", "IN", NULL};

bool catalog_playable_in(const char *markets, const char *country)
{
	if (!markets || !*markets)
		return true;
	size_t n = strlen(country);
	for (const char *p = markets; *p;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (len == n && memcmp(p, country, n) == 0)
			return true;
		p = comma ? comma + 1 : p + len;
	}
	return false;
}

static bool valid_markets(const char *m)
{
	for (const char *p = m; *p;) {
		if (!(p[0] >= 'A' && p[0] <= 'Z' && p[1] >= 'A' && p[1] <= 'Z'))
			return false;
		p += 2;
		if (*p == ',')
			p++;
		else if (*p)
			return false;
	}
	return true;
}

static bool valid_date(const char *d)
{
	int y, mo, da;
	char tail;
	return d && sscanf(d, "%4d-%2d-%2d%c", &y, &mo, &da, &tail) == 3 && strlen(d) == 10 &&
	       y >= 1900 && y <= 2100 && mo >= 1 && mo <= 12 && da >= 1 && da <= 31;
}

int catalog_add_track(sqlite3 *db, const struct catalog_track *t, char track_id[ID_LEN + 1], char *err, size_t errlen)
{
	const char *markets = t->markets ? t->markets : "";
	const char *date = t->release_date ? t->release_date : "2024-01-01";
	if (!t->name || !*t->name || !t->artist_name || !*t->artist_name || !t->album_name || !*t->album_name) {
		snprintf(err, errlen, "title, artist and album must not be empty");
		return -EINVAL;
	}
	if (!valid_markets(markets)) {
		snprintf(err, errlen, "markets must be comma-separated two-letter codes, e.g. SE,US");
		return -EINVAL;
	}
	if (!valid_date(date)) {
		snprintf(err, errlen, "release date must be YYYY-MM-DD");
		return -EINVAL;
	}
	char artist_id[ID_LEN + 1], album_id[ID_LEN + 1];
	char *seed = xasprintf("artist\x1f%s", t->artist_name);
	id_from_seed(seed, artist_id);
	free(seed);
	seed = xasprintf("album\x1f%s\x1f%s", t->artist_name, t->album_name);
	id_from_seed(seed, album_id);
	free(seed);
	seed = xasprintf("track\x1f%s\x1f%s\x1f%s", t->artist_name, t->album_name, t->name);
	id_from_seed(seed, track_id);
	free(seed);

	const char *genre = t->genre ? t->genre : "";
	const char *label = t->label ? t->label : "";
	int rc = -EIO;
	sqlite3_stmt *st = db_prepare(db, "INSERT INTO artists(id, name, genres, label, popularity) VALUES (?1, ?2, ?3, ?4, ?5)"
					  " ON CONFLICT(id) DO UPDATE SET"
					  "  genres = CASE WHEN ?3 = '' OR instr(',' || genres || ',', ',' || ?3 || ',') > 0 THEN genres"
					  "           WHEN genres = '' THEN ?3 ELSE genres || ',' || ?3 END,"
					  "  popularity = max(popularity, ?5)");
	sqlite3_bind_text(st, 1, artist_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, t->artist_name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, genre, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, label, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, t->popularity);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto db_error;
	sqlite3_finalize(st);

	st = db_prepare(db, "INSERT INTO albums(id, name, artist_id, release_date, label, popularity) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
			    " ON CONFLICT(id) DO UPDATE SET popularity = max(popularity, ?6)");
	sqlite3_bind_text(st, 1, album_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, t->album_name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, artist_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, date, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, label, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 6, t->popularity);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto db_error;
	sqlite3_finalize(st);

	st = db_prepare(db, "INSERT INTO tracks(id, name, album_id, artist_id, track_number, duration_ms, explicit,"
			    " popularity, markets, genre, created_at, state, source_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
	sqlite3_bind_text(st, 1, track_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, t->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, album_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, artist_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, t->track_number > 0 ? t->track_number : 1);
	sqlite3_bind_int(st, 6, t->duration_ms);
	sqlite3_bind_int(st, 7, t->explicit_);
	sqlite3_bind_int(st, 8, t->popularity);
	sqlite3_bind_text(st, 9, markets, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 10, genre, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 11, (sqlite3_int64)time(NULL));
	sqlite3_bind_text(st, 12, t->state ? t->state : "ready", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 13, t->source_hash, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	if (step == SQLITE_CONSTRAINT) {
		snprintf(err, errlen, "track '%s' by '%s' on '%s' already exists", t->name, t->artist_name, t->album_name);
		rc = -EEXIST;
		goto out;
	}
	if (step != SQLITE_DONE)
		goto db_error;
	rc = 0;
	goto out;
db_error:
	snprintf(err, errlen, "database error: %s", sqlite3_errmsg(db));
out:
	sqlite3_finalize(st);
	return rc;
}

int catalog_add_episode(sqlite3 *db, const struct catalog_episode *e, char episode_id[ID_LEN + 1], char *err, size_t errlen)
{
	const char *date = e->release_date ? e->release_date : "2024-01-01";
	if (!e->show_name || !*e->show_name || !e->name || !*e->name) {
		snprintf(err, errlen, "show and episode names must not be empty");
		return -EINVAL;
	}
	if (!valid_date(date)) {
		snprintf(err, errlen, "release date must be YYYY-MM-DD");
		return -EINVAL;
	}
	char show_id[ID_LEN + 1];
	char *seed = xasprintf("show\x1f%s", e->show_name);
	id_from_seed(seed, show_id);
	free(seed);
	seed = xasprintf("episode\x1f%s\x1f%s", e->show_name, e->name);
	id_from_seed(seed, episode_id);
	free(seed);
	int rc = -EIO;
	sqlite3_stmt *st = db_prepare(db, "INSERT INTO shows(id, name, publisher, description, explicit) VALUES (?, ?, ?, ?, ?)"
					  " ON CONFLICT(id) DO NOTHING");
	sqlite3_bind_text(st, 1, show_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, e->show_name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, e->publisher ? e->publisher : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, e->show_description ? e->show_description : "", -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, e->explicit_);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto db_error;
	sqlite3_finalize(st);
	st = db_prepare(db, "INSERT INTO episodes(id, show_id, name, description, episode_number, duration_ms, release_date,"
			    " explicit, source_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
	sqlite3_bind_text(st, 1, episode_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, show_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, e->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, e->description ? e->description : "", -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, e->episode_number);
	sqlite3_bind_int(st, 6, e->duration_ms);
	sqlite3_bind_text(st, 7, date, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 8, e->explicit_);
	sqlite3_bind_text(st, 9, e->source_hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 10, (sqlite3_int64)time(NULL));
	int step = sqlite3_step(st);
	if (step == SQLITE_CONSTRAINT) {
		snprintf(err, errlen, "episode '%s' of '%s' already exists", e->name, e->show_name);
		rc = -EEXIST;
		goto out;
	}
	if (step != SQLITE_DONE)
		goto db_error;
	rc = 0;
	goto out;
db_error:
	snprintf(err, errlen, "database error: %s", sqlite3_errmsg(db));
out:
	sqlite3_finalize(st);
	return rc;
}

/* ---- rendering ---- */

static void write_href(struct call *c, struct jw *w, const char *kind, const char *id)
{
	char *h = xasprintf("%s/v1/%s/%s", c->srv->base_url, kind, id);
	jw_kstr(w, "href", h);
	free(h);
}

static void write_uri(struct jw *w, const char *type, const char *id)
{
	char *u = xasprintf("encore:%s:%s", type, id);
	jw_kstr(w, "uri", u);
	free(u);
}

static void write_empty_obj(struct jw *w, const char *key)
{
	jw_key(w, key);
	jw_obj(w);
	jw_obj_end(w);
}

static void write_markets(struct jw *w, const char *markets)
{
	jw_key(w, "available_markets");
	jw_arr(w);
	for (const char *const *m = MARKETS; *m; m++)
		if (catalog_playable_in(markets, *m))
			jw_str(w, *m);
	jw_arr_end(w);
}

static void write_artist_simple(struct call *c, struct jw *w, const char *id, const char *name)
{
	jw_obj(w);
	write_empty_obj(w, "external_urls");
	write_href(c, w, "artists", id);
	jw_kstr(w, "id", id);
	jw_kstr(w, "name", name);
	jw_kstr(w, "type", "artist");
	write_uri(w, "artist", id);
	jw_obj_end(w);
}

/* Columns: 0 id, 1 name, 2 release_date, 3 artist_id, 4 artist_name, 5 total_tracks, 6 album_type */
#define ALBUM_COLS "al.id, al.name, al.release_date, ar.id, ar.name," \
	" (SELECT count(*) FROM tracks t2 WHERE t2.album_id = al.id), al.album_type"

/* The simplified album's fields, without braces, so the full album can extend them. */
static void write_album_fields(struct call *c, struct jw *w, sqlite3_stmt *st, int col)
{
	const char *id = (const char *)sqlite3_column_text(st, col);
	jw_kstr(w, "album_type", (const char *)sqlite3_column_text(st, col + 6));
	jw_key(w, "artists");
	jw_arr(w);
	write_artist_simple(c, w, (const char *)sqlite3_column_text(st, col + 3), (const char *)sqlite3_column_text(st, col + 4));
	jw_arr_end(w);
	write_markets(w, "");
	write_empty_obj(w, "external_urls");
	write_href(c, w, "albums", id);
	jw_kstr(w, "id", id);
	jw_key(w, "images");
	jw_arr(w);
	jw_arr_end(w);
	jw_kstr(w, "name", (const char *)sqlite3_column_text(st, col + 1));
	jw_kstr(w, "release_date", (const char *)sqlite3_column_text(st, col + 2));
	jw_kstr(w, "release_date_precision", "day");
	jw_kint(w, "total_tracks", sqlite3_column_int(st, col + 5));
	jw_kstr(w, "type", "album");
	write_uri(w, "album", id);
}

static void write_album_simple(struct call *c, struct jw *w, sqlite3_stmt *st, int col)
{
	jw_obj(w);
	write_album_fields(c, w, st, col);
	jw_obj_end(w);
}

/* Columns: 0 id, 1 name, 2 track_number, 3 disc_number, 4 duration_ms, 5 explicit, 6 popularity,
 * 7 markets, 8 artist_id, 9 artist_name, then ALBUM_COLS from 10. */
#define TRACK_SELECT "SELECT t.id, t.name, t.track_number, t.disc_number, t.duration_ms, t.explicit," \
	" t.popularity, t.markets, ar.id, ar.name, " ALBUM_COLS \
	" FROM tracks t JOIN albums al ON al.id = t.album_id JOIN artists ar ON ar.id = t.artist_id"

static void write_track(struct call *c, struct jw *w, sqlite3_stmt *st, bool with_album)
{
	const char *id = (const char *)sqlite3_column_text(st, 0);
	const char *markets = (const char *)sqlite3_column_text(st, 7);
	jw_obj(w);
	if (with_album) {
		jw_key(w, "album");
		write_album_simple(c, w, st, 10);
	}
	jw_key(w, "artists");
	jw_arr(w);
	write_artist_simple(c, w, (const char *)sqlite3_column_text(st, 8), (const char *)sqlite3_column_text(st, 9));
	jw_arr_end(w);
	write_markets(w, markets);
	jw_kint(w, "disc_number", sqlite3_column_int(st, 3));
	jw_kint(w, "duration_ms", sqlite3_column_int(st, 4));
	jw_kbool(w, "explicit", sqlite3_column_int(st, 5));
	if (with_album)
		write_empty_obj(w, "external_ids");
	write_empty_obj(w, "external_urls");
	write_href(c, w, "tracks", id);
	jw_kstr(w, "id", id);
	jw_kbool(w, "is_local", false);
	jw_kbool(w, "is_playable", catalog_playable_in(markets, c->user.country));
	jw_kstr(w, "name", (const char *)sqlite3_column_text(st, 1));
	if (with_album)
		jw_kint(w, "popularity", sqlite3_column_int(st, 6));
	jw_key(w, "preview_url");
	jw_null(w);
	jw_kint(w, "track_number", sqlite3_column_int(st, 2));
	jw_kstr(w, "type", "track");
	write_uri(w, "track", id);
	jw_obj_end(w);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool catalog_write_track(struct call *c, struct jw *w, const char *id)
{
	char key[64];
	snprintf(key, sizeof(key), "track:%s:%s", id, c->user.country);
	char *cached = ttlcache_get(c->srv->meta_cache, key, now_ms());
	if (cached) {
		jw_raw(w, cached);
		free(cached);
		return true;
	}
	sqlite3_stmt *st = db_prepare(c->db, TRACK_SELECT " WHERE t.id = ?");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	bool found = sqlite3_step(st) == SQLITE_ROW;
	if (found) {
		struct jw one;
		jw_init(&one);
		write_track(c, &one, st, true);
		char *json = jw_finish(&one);
		ttlcache_put(c->srv->meta_cache, key, json, now_ms());
		jw_raw(w, json);
		free(json);
	}
	sqlite3_finalize(st);
	return found;
}


static bool check_id(struct call *c, const char *id)
{
	if (!id_valid(id)) {
		call_error(c, 400, "invalid id");
		return false;
	}
	return true;
}

/* Answers a GET /v1/TYPE/{id} with the object write renders, or 400/404. */
static void reply_object(struct call *c, bool (*write)(struct call *, struct jw *, const char *))
{
	if (!check_id(c, c->params[0]))
		return;
	struct jw w;
	jw_init(&w);
	if (!write(c, &w, c->params[0])) {
		jw_free(&w);
		call_error(c, 404, "non existing id");
		return;
	}
	call_json(c, 200, jw_finish(&w));
}

static void route_track(struct call *c)
{
	reply_object(c, catalog_write_track);
}

/* Splits a comma-separated ids argument; validates each. Returns count or -1 after replying 400. */
static int split_ids(struct call *c, const char *arg, int max, char ids[][ID_LEN + 1])
{
	if (!arg || !*arg) {
		call_error(c, 400, "ids is required");
		return -1;
	}
	int n = 0;
	for (const char *p = arg; *p;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (n >= max) {
			call_error(c, 400, "too many ids requested (at most %d)", max);
			return -1;
		}
		if (len != ID_LEN) {
			call_error(c, 400, "invalid id");
			return -1;
		}
		memcpy(ids[n], p, ID_LEN);
		ids[n][ID_LEN] = 0;
		if (!id_valid(ids[n])) {
			call_error(c, 400, "invalid id");
			return -1;
		}
		n++;
		p = comma ? comma + 1 : p + len;
	}
	return n;
}

static void route_tracks(struct call *c)
{
	char ids[50][ID_LEN + 1];
	int n = split_ids(c, http_arg(c->req, "ids"), 50, ids);
	if (n < 0)
		return;
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "tracks");
	jw_arr(&w);
	for (int i = 0; i < n; i++)
		if (!catalog_write_track(c, &w, ids[i]))
			jw_null(&w);
	jw_arr_end(&w);
	jw_obj_end(&w);
	call_json(c, 200, jw_finish(&w));
}

static long long count_rows(struct call *c, const char *sql, const char *id)
{
	sqlite3_stmt *st = db_prepare(c->db, sql);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	long long n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return n;
}

static void write_album_tracks_page(struct call *c, struct jw *w, const char *album_id, int limit, int offset)
{
	long long total = count_rows(c, "SELECT count(*) FROM tracks WHERE album_id = ?", album_id);
	jw_obj(w);
	call_paging_fields(c, w, limit, offset, total);
	jw_key(w, "items");
	jw_arr(w);
	sqlite3_stmt *st = db_prepare(c->db, TRACK_SELECT " WHERE t.album_id = ? ORDER BY t.disc_number, t.track_number, t.id LIMIT ? OFFSET ?");
	sqlite3_bind_text(st, 1, album_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, limit);
	sqlite3_bind_int(st, 3, offset);
	while (sqlite3_step(st) == SQLITE_ROW)
		write_track(c, w, st, false);
	sqlite3_finalize(st);
	jw_arr_end(w);
	jw_obj_end(w);
}

static void route_album(struct call *c)
{
	if (!check_id(c, c->params[0]))
		return;
	sqlite3_stmt *st = db_prepare(c->db, "SELECT " ALBUM_COLS ", al.label, al.popularity FROM albums al"
					     " JOIN artists ar ON ar.id = al.artist_id WHERE al.id = ?");
	sqlite3_bind_text(st, 1, c->params[0], -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		call_error(c, 404, "non existing id");
		return;
	}
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	write_album_fields(c, &w, st, 0);
	jw_key(&w, "copyrights");
	jw_arr(&w);
	jw_arr_end(&w);
	jw_key(&w, "genres");
	jw_arr(&w);
	jw_arr_end(&w);
	jw_kstr(&w, "label", (const char *)sqlite3_column_text(st, 7));
	jw_kint(&w, "popularity", sqlite3_column_int(st, 8));
	jw_key(&w, "tracks");
	write_album_tracks_page(c, &w, c->params[0], 50, 0);
	jw_obj_end(&w);
	sqlite3_finalize(st);
	call_json(c, 200, jw_finish(&w));
}

static bool exists(struct call *c, const char *table, const char *id)
{
	char *sql = xasprintf("SELECT 1 FROM %s WHERE id = ?", table);
	long long n = count_rows(c, sql, id);
	free(sql);
	return n > 0;
}

static void route_album_tracks(struct call *c)
{
	int limit, offset;
	if (!check_id(c, c->params[0]) || !call_paging(c, 50, &limit, &offset))
		return;
	if (!exists(c, "albums", c->params[0])) {
		call_error(c, 404, "non existing id");
		return;
	}
	struct jw w;
	jw_init(&w);
	write_album_tracks_page(c, &w, c->params[0], limit, offset);
	call_json(c, 200, jw_finish(&w));
}

static void write_artist_full(struct call *c, struct jw *w, sqlite3_stmt *st)
{
	const char *id = (const char *)sqlite3_column_text(st, 0);
	jw_obj(w);
	write_empty_obj(w, "external_urls");
	jw_key(w, "followers");
	jw_obj(w);
	jw_key(w, "href");
	jw_null(w);
	jw_kint(w, "total", sqlite3_column_int(st, 4));
	jw_obj_end(w);
	jw_key(w, "genres");
	jw_arr(w);
	const char *g = (const char *)sqlite3_column_text(st, 2);
	while (g && *g) {
		const char *comma = strchr(g, ',');
		size_t len = comma ? (size_t)(comma - g) : strlen(g);
		jw_strn(w, g, len);
		g = comma ? comma + 1 : g + len;
	}
	jw_arr_end(w);
	write_href(c, w, "artists", id);
	jw_kstr(w, "id", id);
	jw_key(w, "images");
	jw_arr(w);
	jw_arr_end(w);
	jw_kstr(w, "name", (const char *)sqlite3_column_text(st, 1));
	jw_kint(w, "popularity", sqlite3_column_int(st, 3));
	jw_kstr(w, "type", "artist");
	write_uri(w, "artist", id);
	jw_obj_end(w);
}

bool catalog_write_artist(struct call *c, struct jw *w, const char *id)
{
	sqlite3_stmt *st = db_prepare(c->db, "SELECT id, name, genres, popularity, followers FROM artists WHERE id = ?");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	bool found = sqlite3_step(st) == SQLITE_ROW;
	if (found)
		write_artist_full(c, w, st);
	sqlite3_finalize(st);
	return found;
}

static void route_artist(struct call *c)
{
	reply_object(c, catalog_write_artist);
}

bool catalog_write_album_simple(struct call *c, struct jw *w, const char *id)
{
	sqlite3_stmt *st = db_prepare(c->db, "SELECT " ALBUM_COLS " FROM albums al JOIN artists ar ON ar.id = al.artist_id"
					     " WHERE al.id = ?");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	bool found = sqlite3_step(st) == SQLITE_ROW;
	if (found)
		write_album_simple(c, w, st, 0);
	sqlite3_finalize(st);
	return found;
}

static void route_artist_albums(struct call *c)
{
	int limit, offset;
	if (!check_id(c, c->params[0]) || !call_paging(c, 50, &limit, &offset))
		return;
	if (!exists(c, "artists", c->params[0])) {
		call_error(c, 404, "non existing id");
		return;
	}
	long long total = count_rows(c, "SELECT count(*) FROM albums WHERE artist_id = ?", c->params[0]);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	call_paging_fields(c, &w, limit, offset, total);
	jw_key(&w, "items");
	jw_arr(&w);
	sqlite3_stmt *st = db_prepare(c->db, "SELECT " ALBUM_COLS " FROM albums al JOIN artists ar ON ar.id = al.artist_id"
					     " WHERE al.artist_id = ? ORDER BY al.release_date DESC, al.id LIMIT ? OFFSET ?");
	sqlite3_bind_text(st, 1, c->params[0], -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, limit);
	sqlite3_bind_int(st, 3, offset);
	while (sqlite3_step(st) == SQLITE_ROW)
		write_album_simple(c, &w, st, 0);
	sqlite3_finalize(st);
	jw_arr_end(&w);
	jw_obj_end(&w);
	call_json(c, 200, jw_finish(&w));
}

static void route_artist_top_tracks(struct call *c)
{
	if (!check_id(c, c->params[0]))
		return;
	const char *market = http_arg(c->req, "market");
	if (market && !(strlen(market) == 2 && market[0] >= 'A' && market[0] <= 'Z' && market[1] >= 'A' && market[1] <= 'Z')) {
		call_error(c, 400, "Invalid market code");
		return;
	}
	if (!exists(c, "artists", c->params[0])) {
		call_error(c, 404, "non existing id");
		return;
	}
	const char *country = market ? market : c->user.country;
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "tracks");
	jw_arr(&w);
	sqlite3_stmt *st = db_prepare(c->db, TRACK_SELECT " WHERE t.artist_id = ? ORDER BY t.popularity DESC, t.id LIMIT 50");
	sqlite3_bind_text(st, 1, c->params[0], -1, SQLITE_STATIC);
	int n = 0;
	while (n < 10 && sqlite3_step(st) == SQLITE_ROW) {
		if (!catalog_playable_in((const char *)sqlite3_column_text(st, 7), country))
			continue;
		write_track(c, &w, st, true);
		n++;
	}
	sqlite3_finalize(st);
	jw_arr_end(&w);
	jw_obj_end(&w);
	call_json(c, 200, jw_finish(&w));
}

static void route_audio_features(struct call *c)
{
	if (!check_id(c, c->params[0]))
		return;
	sqlite3_stmt *st = db_prepare(c->db, "SELECT f.acousticness, f.danceability, t.duration_ms, f.energy, f.instrumentalness,"
					     " f.key, f.liveness, f.loudness, f.mode, f.speechiness, f.tempo, f.time_signature, f.valence"
					     " FROM audio_features f JOIN tracks t ON t.id = f.track_id WHERE f.track_id = ?");
	sqlite3_bind_text(st, 1, c->params[0], -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		call_error(c, 404, "non existing id");
		return;
	}
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kdouble(&w, "acousticness", sqlite3_column_double(st, 0));
	char *u = xasprintf("%s/v1/audio-analysis/%s", c->srv->base_url, c->params[0]);
	jw_kstr(&w, "analysis_url", u);
	free(u);
	jw_kdouble(&w, "danceability", sqlite3_column_double(st, 1));
	jw_kint(&w, "duration_ms", sqlite3_column_int(st, 2));
	jw_kdouble(&w, "energy", sqlite3_column_double(st, 3));
	jw_kstr(&w, "id", c->params[0]);
	jw_kdouble(&w, "instrumentalness", sqlite3_column_double(st, 4));
	jw_kint(&w, "key", sqlite3_column_int(st, 5));
	jw_kdouble(&w, "liveness", sqlite3_column_double(st, 6));
	jw_kdouble(&w, "loudness", sqlite3_column_double(st, 7));
	jw_kint(&w, "mode", sqlite3_column_int(st, 8));
	jw_kdouble(&w, "speechiness", sqlite3_column_double(st, 9));
	jw_kdouble(&w, "tempo", sqlite3_column_double(st, 10));
	jw_kint(&w, "time_signature", sqlite3_column_int(st, 11));
	u = xasprintf("%s/v1/tracks/%s", c->srv->base_url, c->params[0]);
	jw_kstr(&w, "track_href", u);
	free(u);
	jw_kstr(&w, "type", "audio_features");
	write_uri(&w, "track", c->params[0]);
	jw_kdouble(&w, "valence", sqlite3_column_double(st, 12));
	jw_obj_end(&w);
	sqlite3_finalize(st);
	call_json(c, 200, jw_finish(&w));
}

/* ---- podcasts: shows and episodes ---- */

/* Columns: 0 id, 1 name, 2 publisher, 3 description, 4 explicit, 5 total_episodes */
#define SHOW_SELECT "SELECT s.id, s.name, s.publisher, s.description, s.explicit," \
	" (SELECT count(*) FROM episodes e2 WHERE e2.show_id = s.id) FROM shows s"

/* The simplified show's fields, without braces, so the full show can extend them. */
static void write_show_fields(struct call *c, struct jw *w, sqlite3_stmt *st, int col)
{
	const char *id = (const char *)sqlite3_column_text(st, col);
	const char *desc = (const char *)sqlite3_column_text(st, col + 3);
	write_markets(w, "");
	jw_key(w, "copyrights");
	jw_arr(w);
	jw_arr_end(w);
	jw_kstr(w, "description", desc);
	jw_kstr(w, "html_description", desc);
	jw_kbool(w, "explicit", sqlite3_column_int(st, col + 4));
	write_empty_obj(w, "external_urls");
	write_href(c, w, "shows", id);
	jw_kstr(w, "id", id);
	jw_key(w, "images");
	jw_arr(w);
	jw_arr_end(w);
	jw_kbool(w, "is_externally_hosted", false);
	jw_key(w, "languages");
	jw_arr(w);
	jw_str(w, "en");
	jw_arr_end(w);
	jw_kstr(w, "media_type", "audio");
	jw_kstr(w, "name", (const char *)sqlite3_column_text(st, col + 1));
	jw_kstr(w, "publisher", (const char *)sqlite3_column_text(st, col + 2));
	jw_kint(w, "total_episodes", sqlite3_column_int(st, col + 5));
	jw_kstr(w, "type", "show");
	write_uri(w, "show", id);
}

/* Columns: 0 id, 1 name, 2 description, 3 duration_ms, 4 explicit, 5 release_date,
 * then SHOW_SELECT's columns from 6. */
#define EPISODE_SELECT "SELECT e.id, e.name, e.description, e.duration_ms, e.explicit, e.release_date," \
	" s.id, s.name, s.publisher, s.description, s.explicit," \
	" (SELECT count(*) FROM episodes e2 WHERE e2.show_id = s.id)" \
	" FROM episodes e JOIN shows s ON s.id = e.show_id"

static void write_episode(struct call *c, struct jw *w, sqlite3_stmt *st, bool with_show)
{
	const char *id = (const char *)sqlite3_column_text(st, 0);
	const char *desc = (const char *)sqlite3_column_text(st, 2);
	jw_obj(w);
	jw_key(w, "audio_preview_url");
	jw_null(w);
	jw_kstr(w, "description", desc);
	jw_kstr(w, "html_description", desc);
	jw_kint(w, "duration_ms", sqlite3_column_int(st, 3));
	jw_kbool(w, "explicit", sqlite3_column_int(st, 4));
	write_empty_obj(w, "external_urls");
	write_href(c, w, "episodes", id);
	jw_kstr(w, "id", id);
	jw_key(w, "images");
	jw_arr(w);
	jw_arr_end(w);
	jw_kbool(w, "is_externally_hosted", false);
	jw_kbool(w, "is_playable", true);  /* podcasts carry no market restrictions */
	jw_kstr(w, "language", "en");
	jw_key(w, "languages");
	jw_arr(w);
	jw_str(w, "en");
	jw_arr_end(w);
	jw_kstr(w, "name", (const char *)sqlite3_column_text(st, 1));
	jw_kstr(w, "release_date", (const char *)sqlite3_column_text(st, 5));
	jw_kstr(w, "release_date_precision", "day");
	if (with_show) {
		jw_key(w, "show");
		jw_obj(w);
		write_show_fields(c, w, st, 6);
		jw_obj_end(w);
	}
	jw_kstr(w, "type", "episode");
	write_uri(w, "episode", id);
	jw_obj_end(w);
}

bool catalog_write_show_simple(struct call *c, struct jw *w, const char *id)
{
	sqlite3_stmt *st = db_prepare(c->db, SHOW_SELECT " WHERE s.id = ?");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	bool found = sqlite3_step(st) == SQLITE_ROW;
	if (found) {
		jw_obj(w);
		write_show_fields(c, w, st, 0);
		jw_obj_end(w);
	}
	sqlite3_finalize(st);
	return found;
}

static bool write_episode_by_id(struct call *c, struct jw *w, const char *id, bool with_show)
{
	sqlite3_stmt *st = db_prepare(c->db, EPISODE_SELECT " WHERE e.id = ?");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	bool found = sqlite3_step(st) == SQLITE_ROW;
	if (found)
		write_episode(c, w, st, with_show);
	sqlite3_finalize(st);
	return found;
}

bool catalog_write_episode_simple(struct call *c, struct jw *w, const char *id)
{
	return write_episode_by_id(c, w, id, false);
}

static void write_show_episodes_page(struct call *c, struct jw *w, const char *show_id, int limit, int offset)
{
	long long total = count_rows(c, "SELECT count(*) FROM episodes WHERE show_id = ?", show_id);
	jw_obj(w);
	call_paging_fields(c, w, limit, offset, total);
	jw_key(w, "items");
	jw_arr(w);
	sqlite3_stmt *st = db_prepare(c->db, EPISODE_SELECT " WHERE e.show_id = ?"
					     " ORDER BY e.release_date DESC, e.episode_number DESC, e.id LIMIT ? OFFSET ?");
	sqlite3_bind_text(st, 1, show_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, limit);
	sqlite3_bind_int(st, 3, offset);
	while (sqlite3_step(st) == SQLITE_ROW)
		write_episode(c, w, st, false);
	sqlite3_finalize(st);
	jw_arr_end(w);
	jw_obj_end(w);
}

static void route_show(struct call *c)
{
	if (!check_id(c, c->params[0]))
		return;
	sqlite3_stmt *st = db_prepare(c->db, SHOW_SELECT " WHERE s.id = ?");
	sqlite3_bind_text(st, 1, c->params[0], -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		call_error(c, 404, "non existing id");
		return;
	}
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	write_show_fields(c, &w, st, 0);
	sqlite3_finalize(st);
	jw_key(&w, "episodes");
	write_show_episodes_page(c, &w, c->params[0], 50, 0);
	jw_obj_end(&w);
	call_json(c, 200, jw_finish(&w));
}

static void route_show_episodes(struct call *c)
{
	int limit, offset;
	if (!check_id(c, c->params[0]) || !call_paging(c, 50, &limit, &offset))
		return;
	if (!exists(c, "shows", c->params[0])) {
		call_error(c, 404, "non existing id");
		return;
	}
	struct jw w;
	jw_init(&w);
	write_show_episodes_page(c, &w, c->params[0], limit, offset);
	call_json(c, 200, jw_finish(&w));
}

static bool write_episode_full(struct call *c, struct jw *w, const char *id)
{
	return write_episode_by_id(c, w, id, true);
}

static void route_episode(struct call *c)
{
	reply_object(c, write_episode_full);
}

const struct route catalog_routes[] = {
	{"GET", "/v1/tracks/{id}", route_track, 0},
	{"GET", "/v1/tracks", route_tracks, 0},
	{"GET", "/v1/albums/{id}", route_album, 0},
	{"GET", "/v1/albums/{id}/tracks", route_album_tracks, 0},
	{"GET", "/v1/artists/{id}", route_artist, 0},
	{"GET", "/v1/artists/{id}/albums", route_artist_albums, 0},
	{"GET", "/v1/artists/{id}/top-tracks", route_artist_top_tracks, 0},
	{"GET", "/v1/audio-features/{id}", route_audio_features, 0},
	{"GET", "/v1/shows/{id}", route_show, 0},
	{"GET", "/v1/shows/{id}/episodes", route_show_episodes, 0},
	{"GET", "/v1/episodes/{id}", route_episode, 0},
	{NULL, NULL, NULL, 0},
};
