/* library: the listener's saved tracks and albums and followed artists, in the Web API's
 * shapes (GET/PUT/DELETE /v1/me/tracks, /v1/me/albums, /v1/me/following?type=artist). */
#include "catalog.h"
#include "db.h"
#include "json.h"
#include "server.h"
#include "xmem.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LIBRARY_MAX_IDS 50

struct kind {
	const char *name;      /* library.kind */
	const char *table;     /* catalog table the ids must exist in */
	const char *item_key;  /* "track" or "album" in saved-item objects */
	bool (*write)(struct call *c, struct jw *w, const char *id);
};

static const struct kind TRACKS = {"track", "tracks", "track", catalog_write_track};
static const struct kind ALBUMS = {"album", "albums", "album", catalog_write_album_simple};
static const struct kind ARTISTS = {"artist", "artists", NULL, catalog_write_artist};

/* Reads ids from ?ids=a,b or a JSON body {"ids": [...]}. Returns the count, or -1 after replying 400. */
static int read_ids(struct call *c, char ids[][ID_LEN + 1])
{
	const char *arg = http_arg(c->req, "ids");
	int n = 0;
	if (arg) {
		for (const char *p = arg; *p;) {
			const char *comma = strchr(p, ',');
			size_t len = comma ? (size_t)(comma - p) : strlen(p);
			if (n == LIBRARY_MAX_IDS || len != ID_LEN) {
				call_error(c, 400, n == LIBRARY_MAX_IDS ? "at most %d ids" : "invalid id", LIBRARY_MAX_IDS);
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
	} else if (c->req->body.len) {
		yajl_val body = call_body_json(c);
		if (!body)
			return -1;
		yajl_val arr = json_get(body, "ids");
		if (!arr || !YAJL_IS_ARRAY(arr) || arr->u.array.len > LIBRARY_MAX_IDS) {
			yajl_tree_free(body);
			call_error(c, 400, "ids must be an array of at most %d ids", LIBRARY_MAX_IDS);
			return -1;
		}
		for (size_t i = 0; i < arr->u.array.len; i++) {
			const char *id = YAJL_IS_STRING(arr->u.array.values[i]) ? YAJL_GET_STRING(arr->u.array.values[i]) : NULL;
			if (!id || !id_valid(id)) {
				yajl_tree_free(body);
				call_error(c, 400, "ids[%zu] is not an id", i);
				return -1;
			}
			memcpy(ids[n++], id, ID_LEN + 1);
		}
		yajl_tree_free(body);
	}
	if (n == 0) {
		call_error(c, 400, "ids is required");
		return -1;
	}
	return n;
}

static bool exists_in(struct call *c, const char *table, const char *id)
{
	char *sql = xasprintf("SELECT 1 FROM %s WHERE id = ?", table);
	sqlite3_stmt *st = db_prepare(c->db, sql);
	free(sql);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	bool yes = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return yes;
}

static void change(struct call *c, const struct kind *k, bool add)
{
	char ids[LIBRARY_MAX_IDS][ID_LEN + 1];
	int n = read_ids(c, ids);
	if (n < 0)
		return;
	for (int i = 0; i < n; i++)
		if (add && !exists_in(c, k->table, ids[i])) {
			call_error(c, 404, "non existing id %s", ids[i]);
			return;
		}
	db_begin(c->db);
	sqlite3_stmt *st = db_prepare(c->db, add ? "INSERT OR IGNORE INTO library(user_id, kind, item_id, added_at) VALUES (?, ?, ?, ?)"
						 : "DELETE FROM library WHERE user_id = ? AND kind = ? AND item_id = ?");
	for (int i = 0; i < n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, c->user.sub, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, k->name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, ids[i], -1, SQLITE_STATIC);
		if (add)
			sqlite3_bind_int64(st, 4, (sqlite3_int64)time(NULL));
		sqlite3_step(st);
	}
	sqlite3_finalize(st);
	if (db_commit(c->db) != 0) {
		call_error(c, 500, "could not update the library");
		return;
	}
	call_json(c, 200, xstrdup("{}"));
}

static long long count_saved(struct call *c, const struct kind *k)
{
	sqlite3_stmt *st = db_prepare(c->db, "SELECT count(*) FROM library WHERE user_id = ? AND kind = ?");
	sqlite3_bind_text(st, 1, c->user.sub, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, k->name, -1, SQLITE_STATIC);
	long long n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return n;
}

/* Writes up to limit saved items, newest first, as the Web API's saved-item objects
 * ({"added_at", "track": {...}}) or plain objects (artists). */
static void write_items(struct call *c, struct jw *w, const struct kind *k, int limit, int offset)
{
	sqlite3_stmt *st = db_prepare(c->db, "SELECT item_id, added_at FROM library WHERE user_id = ? AND kind = ?"
					     " ORDER BY added_at DESC, item_id LIMIT ? OFFSET ?");
	sqlite3_bind_text(st, 1, c->user.sub, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, k->name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, limit);
	sqlite3_bind_int(st, 4, offset);
	jw_key(w, "items");
	jw_arr(w);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 0);
		if (!k->item_key) {
			k->write(c, w, id);
			continue;
		}
		time_t at = (time_t)sqlite3_column_int64(st, 1);
		char stamp[32];
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", gmtime(&at));
		struct jw one;
		jw_init(&one);
		if (!k->write(c, &one, id)) {
			jw_free(&one);
			continue;  /* removed from the catalog since it was saved */
		}
		char *obj = jw_finish(&one);
		jw_obj(w);
		jw_kstr(w, "added_at", stamp);
		jw_key(w, k->item_key);
		jw_raw(w, obj);
		jw_obj_end(w);
		free(obj);
	}
	sqlite3_finalize(st);
	jw_arr_end(w);
}

static void list_saved(struct call *c, const struct kind *k)
{
	int limit, offset;
	if (!call_paging(c, 50, &limit, &offset))
		return;
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	call_paging_fields(c, &w, limit, offset, count_saved(c, k));
	write_items(c, &w, k, limit, offset);
	jw_obj_end(&w);
	call_json(c, 200, jw_finish(&w));
}

static void contains(struct call *c, const struct kind *k)
{
	char ids[LIBRARY_MAX_IDS][ID_LEN + 1];
	int n = read_ids(c, ids);
	if (n < 0)
		return;
	struct jw w;
	jw_init(&w);
	jw_arr(&w);
	sqlite3_stmt *st = db_prepare(c->db, "SELECT 1 FROM library WHERE user_id = ? AND kind = ? AND item_id = ?");
	for (int i = 0; i < n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, c->user.sub, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, k->name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, ids[i], -1, SQLITE_STATIC);
		jw_bool(&w, sqlite3_step(st) == SQLITE_ROW);
	}
	sqlite3_finalize(st);
	jw_arr_end(&w);
	call_json(c, 200, jw_finish(&w));
}

static bool artist_type(struct call *c)
{
	const char *t = http_arg(c->req, "type");
	if (!t || strcmp(t, "artist") != 0) {
		call_error(c, 400, "type must be artist");
		return false;
	}
	return true;
}

static void route_tracks_get(struct call *c) { list_saved(c, &TRACKS); }
static void route_tracks_put(struct call *c) { change(c, &TRACKS, true); }
static void route_tracks_del(struct call *c) { change(c, &TRACKS, false); }
static void route_tracks_contains(struct call *c) { contains(c, &TRACKS); }
static void route_albums_get(struct call *c) { list_saved(c, &ALBUMS); }
static void route_albums_put(struct call *c) { change(c, &ALBUMS, true); }
static void route_albums_del(struct call *c) { change(c, &ALBUMS, false); }

static void route_following_put(struct call *c)
{
	if (artist_type(c))
		change(c, &ARTISTS, true);
}

static void route_following_del(struct call *c)
{
	if (artist_type(c))
		change(c, &ARTISTS, false);
}

/* The Web API wraps followed artists in a cursor-paged object; offsets serve as cursors. */
static void route_following_get(struct call *c)
{
	int limit, offset = 0;
	if (!artist_type(c) || !call_paging(c, 50, &limit, &offset))
		return;
	const char *after = http_arg(c->req, "after");
	if (after)
		offset = atoi(after);
	long long total = count_saved(c, &ARTISTS);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "artists");
	jw_obj(&w);
	write_items(c, &w, &ARTISTS, limit, offset);
	jw_kint(&w, "limit", limit);
	jw_kint(&w, "total", total);
	jw_key(&w, "cursors");
	jw_obj(&w);
	jw_key(&w, "after");
	if (offset + limit < total) {
		char buf[24];
		snprintf(buf, sizeof(buf), "%d", offset + limit);
		jw_str(&w, buf);
	} else {
		jw_null(&w);
	}
	jw_obj_end(&w);
	jw_obj_end(&w);
	jw_obj_end(&w);
	call_json(c, 200, jw_finish(&w));
}

const struct route library_routes[] = {
	{"GET", "/v1/me/tracks", route_tracks_get, 0},
	{"PUT", "/v1/me/tracks", route_tracks_put, 0},
	{"DELETE", "/v1/me/tracks", route_tracks_del, 0},
	{"GET", "/v1/me/tracks/contains", route_tracks_contains, 0},
	{"GET", "/v1/me/albums", route_albums_get, 0},
	{"PUT", "/v1/me/albums", route_albums_put, 0},
	{"DELETE", "/v1/me/albums", route_albums_del, 0},
	{"GET", "/v1/me/following", route_following_get, 0},
	{"PUT", "/v1/me/following", route_following_put, 0},
	{"DELETE", "/v1/me/following", route_following_del, 0},
	{NULL, NULL, NULL, 0},
};
