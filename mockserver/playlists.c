/* playlists: Web API playlist routes over per-playlist CRDT replicas.
 *
 * Positions in a request refer to the list at the request's snapshot_id (the present when
 * absent); they are turned into element ids in that version and the edit is applied to the
 * present, so an edit made against an old snapshot lands where its author saw it.
 * Pages come from the entry's hydrated list (the order at its version, rebuilt by each
 * write, and items rendered once per country and minute), so a write invalidates the order
 * at once and re-renders nothing; metadata lives in the entry with its own longer TTL. */
#include "playlists.h"
#include "db.h"
#include "id.h"
#include "json.h"
#include "plpush.h"
#include "server.h"
#include "catalog.h"
#include "xmem.h"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NBUCKETS 1024
#define SERVER_REPLICA 1
#define MAX_COLLABORATORS 64

struct pl_meta {
	char owner[64];
	char *name, *description, *image;
	bool public_, collaborative;
	long long followers;
	char collabs[MAX_COLLABORATORS][64];
	int ncollabs;
	int64_t loaded_ms;
};

struct pl_entry {
	struct pl_entry *next;
	char id[ID_LEN + 1];
	pthread_mutex_t lock;
	struct seqcrdt *crdt;   /* NULL until loaded (or after a failed write) */
	struct pl_meta meta;
	bool meta_stale;
	/* The hydrated list (see "the hydrated list" below). */
	struct seq_entry *view;  /* visible items at view_version; strings borrowed from crdt */
	size_t nview;
	uint64_t view_version;
	struct pl_render *renders;  /* open addressing by item id, at most half full */
	size_t rcap, rn;
};

struct playlists {
	pthread_mutex_t lock;
	struct pl_entry *buckets[NBUCKETS];
};

static void entry_drop_crdt(struct pl_entry *e);
static void renders_free(struct pl_entry *e);

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct playlists *playlists_new(void)
{
	struct playlists *p = xcalloc(1, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	return p;
}

static void meta_clear(struct pl_meta *m)
{
	free(m->name);
	free(m->description);
	free(m->image);
	memset(m, 0, sizeof(*m));
}

void playlists_free(struct playlists *p)
{
	if (!p)
		return;
	for (int i = 0; i < NBUCKETS; i++)
		for (struct pl_entry *e = p->buckets[i], *n; e; e = n) {
			n = e->next;
			entry_drop_crdt(e);
			renders_free(e);
			meta_clear(&e->meta);
			pthread_mutex_destroy(&e->lock);
			free(e);
		}
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* ---- loading ---- */

static char *col_dup(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	return s ? xstrdup(s) : NULL;
}

static int meta_load(sqlite3 *db, const char *id, struct pl_meta *m)
{
	memset(m, 0, sizeof(*m));
	sqlite3_stmt *st = db_prepare(db, "SELECT owner, name, description, public, collaborative, image_url,"
					  " (SELECT count(*) FROM playlist_members WHERE playlist_id = ?1 AND role = 'follower')"
					  " FROM playlists WHERE id = ?1");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int step = sqlite3_step(st), rc = 0;
	if (step == SQLITE_ROW) {
		snprintf(m->owner, sizeof(m->owner), "%s", (const char *)sqlite3_column_text(st, 0));
		m->name = col_dup(st, 1);
		m->description = col_dup(st, 2);
		m->public_ = sqlite3_column_int(st, 3);
		m->collaborative = sqlite3_column_int(st, 4);
		m->image = col_dup(st, 5);
		m->followers = sqlite3_column_int64(st, 6);
	} else {
		rc = step == SQLITE_DONE ? -ENOENT : -EIO;
	}
	sqlite3_finalize(st);
	if (rc)
		return rc;
	st = db_prepare(db, "SELECT user_id FROM playlist_members WHERE playlist_id = ? AND role = 'collaborator' ORDER BY added_at, user_id");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW && m->ncollabs < MAX_COLLABORATORS)
		snprintf(m->collabs[m->ncollabs++], 64, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	m->loaded_ms = mono_ms();
	return 0;
}

static int crdt_load(sqlite3 *db, const char *id, struct seqcrdt **out)
{
	struct seqcrdt *c = seqcrdt_new(SERVER_REPLICA);
	sqlite3_stmt *st = db_prepare(db, "SELECT kind, counter, replica, item_counter, item_replica, origin_counter, origin_replica,"
					  " uri, added_by, added_at FROM playlist_ops WHERE playlist_id = ? ORDER BY seq");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		struct seq_op op = {
			.kind = (enum seq_kind)sqlite3_column_int(st, 0),
			.id = {(uint64_t)sqlite3_column_int64(st, 1), (uint32_t)sqlite3_column_int64(st, 2)},
			.item = {(uint64_t)sqlite3_column_int64(st, 3), (uint32_t)sqlite3_column_int64(st, 4)},
			.origin = {(uint64_t)sqlite3_column_int64(st, 5), (uint32_t)sqlite3_column_int64(st, 6)},
			.uri = (char *)sqlite3_column_text(st, 7),
			.added_by = (char *)sqlite3_column_text(st, 8),
			.added_at = sqlite3_column_int64(st, 9),
		};
		seqcrdt_apply(c, &op);
	}
	sqlite3_finalize(st);
	if (step != SQLITE_DONE) {
		seqcrdt_free(c);
		return -EIO;
	}
	*out = c;
	return 0;
}

static unsigned bucket_of(const char *id)
{
	unsigned h = 5381;
	for (const char *s = id; *s; s++)
		h = h * 33 + (unsigned char)*s;
	return h % NBUCKETS;
}

static struct pl_entry *bucket_find(struct playlists *p, const char *id, unsigned h)
{
	for (struct pl_entry *e = p->buckets[h]; e; e = e->next)
		if (strcmp(e->id, id) == 0)
			return e;
	return NULL;
}

/* The entry for id, locked, with fresh metadata and a loaded order; NULL with *err
 * (-ENOENT unknown, -EIO database). Unlock with pthread_mutex_unlock(&e->lock). */
static struct pl_entry *entry_get(struct playlists *p, sqlite3 *db, const char *id, int *err)
{
	unsigned h = bucket_of(id);
	pthread_mutex_lock(&p->lock);
	struct pl_entry *e = bucket_find(p, id, h);
	pthread_mutex_unlock(&p->lock);
	if (!e) {
		/* Only ids that exist get an entry, so probing random ids costs no memory. */
		struct pl_meta m;
		*err = meta_load(db, id, &m);
		if (*err)
			return NULL;
		pthread_mutex_lock(&p->lock);
		e = bucket_find(p, id, h);
		if (!e) {
			e = xcalloc(1, sizeof(*e));
			snprintf(e->id, sizeof(e->id), "%s", id);
			pthread_mutex_init(&e->lock, NULL);
			e->meta = m;
			e->next = p->buckets[h];
			p->buckets[h] = e;
		} else {
			meta_clear(&m);
		}
		pthread_mutex_unlock(&p->lock);
	}
	pthread_mutex_lock(&e->lock);
	if (e->meta_stale || mono_ms() - e->meta.loaded_ms > PLAYLISTS_META_TTL_MS) {
		struct pl_meta m;
		*err = meta_load(db, id, &m);
		if (*err) {
			pthread_mutex_unlock(&e->lock);
			return NULL;
		}
		meta_clear(&e->meta);
		e->meta = m;
		e->meta_stale = false;
	}
	if (!e->crdt && (*err = crdt_load(db, id, &e->crdt)) != 0) {
		pthread_mutex_unlock(&e->lock);
		return NULL;
	}
	*err = 0;
	return e;
}

static bool is_collaborator(const struct pl_meta *m, const char *user)
{
	for (int i = 0; i < m->ncollabs; i++)
		if (strcmp(m->collabs[i], user) == 0)
			return true;
	return false;
}

static bool can_read(const struct pl_meta *m, const char *user)
{
	return m->public_ || strcmp(m->owner, user) == 0 || is_collaborator(m, user);
}

static bool can_edit(const struct pl_meta *m, const char *user)
{
	return strcmp(m->owner, user) == 0 || is_collaborator(m, user);
}

int playlists_subscribe_check(struct playlists *p, sqlite3 *db, const char *id, const char *user,
			      char snapshot[SEQ_CURSOR_MAX])
{
	if (!id_valid(id))
		return -ENOENT;
	int err;
	struct pl_entry *e = entry_get(p, db, id, &err);
	if (!e)
		return err;
	int rc = -ENOENT;
	if (can_read(&e->meta, user)) {
		seq_snapshot_encode(seqcrdt_version(e->crdt), snapshot);
		rc = 0;
	}
	pthread_mutex_unlock(&e->lock);
	return rc;
}

/* Opens the playlist named by the route's first parameter for reading (edit: for editing),
 * replying 400/404/403 itself and returning NULL when the caller may not. */
static struct pl_entry *open_playlist(struct call *c, bool edit)
{
	const char *id = c->params[0];
	if (!id_valid(id)) {
		call_error(c, 400, "invalid playlist id");
		return NULL;
	}
	int err;
	struct pl_entry *e = entry_get(c->srv->playlists, c->db, id, &err);
	if (!e) {
		if (err == -ENOENT)
			call_error(c, 404, "playlist not found");
		else
			call_error(c, 503, "database unavailable");
		return NULL;
	}
	if (!can_read(&e->meta, c->user.sub)) {
		pthread_mutex_unlock(&e->lock);
		call_error(c, 404, "playlist not found");  /* private: not even its existence shows */
		return NULL;
	}
	if (edit && !can_edit(&e->meta, c->user.sub)) {
		pthread_mutex_unlock(&e->lock);
		call_error(c, 403, "only the owner and collaborators can change this playlist");
		return NULL;
	}
	return e;
}

/* ---- rendering ---- */

/* ---- the hydrated list: pages without SQLite ----
 *
 * Each entry keeps the visible list at its current version (rebuilt by the write that
 * moves the version: write-through) and every item it has served rendered as the whole
 * playlist track object, keyed by item id. An item's object depends only on the item
 * (added_at, added_by, item_id never change) and its track for the caller's country, so
 * renders survive writes: a write re-renders nothing, and a page is the list slice plus
 * 100 copies. A render lives PLAYLISTS_ITEM_TTL_MS (catalog changes show within that, as
 * the catalog's own track cache allows) and is for one country at a time. */

struct pl_render {
	struct seq_id item;      /* {0,0}: empty slot */
	char *json;              /* the playlist track object */
	size_t len;
	uint64_t hash;           /* of json, for page ETags */
	char country[4];
	int64_t expires_ms;
};

static uint64_t fnv64(const void *p, size_t n, uint64_t h)
{
	const unsigned char *s = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 1099511628211ull;
	return h;
}

static size_t render_slot(const struct pl_entry *e, struct seq_id id)
{
	uint64_t h = (id.counter * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)id.replica * 0xbf58476d1ce4e5b9ull);
	return (size_t)(h ^ (h >> 29)) & (e->rcap - 1);
}

static void renders_free(struct pl_entry *e)
{
	for (size_t i = 0; i < e->rcap; i++)
		free(e->renders[i].json);
	free(e->renders);
	e->renders = NULL;
	e->rcap = e->rn = 0;
}

/* The slot for id (empty if absent); the table has room (see renders_room). */
static struct pl_render *render_find(struct pl_entry *e, struct seq_id id)
{
	size_t i = render_slot(e, id);
	while (e->renders[i].json && seq_id_cmp(e->renders[i].item, id) != 0)
		i = (i + 1) & (e->rcap - 1);
	return &e->renders[i];
}

/* Keeps the table at most half full. When it fills with items no longer in the list
 * (removed ones), it is rebuilt with the visible ones only, so memory follows the list. */
static void renders_room(struct pl_entry *e)
{
	if (e->rcap && (e->rn + 1) * 2 <= e->rcap)
		return;
	struct pl_render *old = e->renders;
	size_t oldcap = e->rcap;
	size_t live = 0;
	for (size_t i = 0; i < oldcap; i++)
		live += old[i].json != NULL;
	size_t cap = 256;
	while (cap < (e->nview + 1) * 2 || cap < (live + 1) * 2)
		cap *= 2;
	e->renders = xcalloc(cap, sizeof(*e->renders));
	e->rcap = cap;
	e->rn = 0;
	bool prune = live > 2 * e->nview + 256;
	for (size_t i = 0; i < oldcap; i++) {
		if (!old[i].json)
			continue;
		struct seq_entry se;
		if (prune && !(e->crdt && seqcrdt_find_item(e->crdt, old[i].item, &se))) {
			free(old[i].json);
			continue;
		}
		*render_find(e, old[i].item) = old[i];
		e->rn++;
	}
	free(old);
}

/* The visible list now, rebuilt when the version moved. */
static void entry_view(struct pl_entry *e)
{
	uint64_t v = seqcrdt_version(e->crdt);
	if (e->view && e->view_version == v)
		return;
	free(e->view);
	e->view = seqcrdt_list(e->crdt, UINT64_MAX, &e->nview);
	e->view_version = v;
}

/* Drops the replica and what borrows from it (after a failed write). */
static void entry_drop_crdt(struct pl_entry *e)
{
	free(e->view);
	e->view = NULL;
	e->nview = 0;
	seqcrdt_free(e->crdt);
	e->crdt = NULL;
}

static void write_iso_time(struct jw *w, int64_t t)
{
	char buf[32];
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	jw_str(w, buf);
}

static void write_user_ref(struct call *c, struct jw *w, const char *user, bool with_name)
{
	jw_obj(w);
	if (with_name)
		jw_kstr(w, "display_name", user);
	jw_key(w, "external_urls");
	jw_obj(w);
	jw_obj_end(w);
	char *s = xasprintf("%s/v1/users/%s", c->srv->base_url, user);
	jw_kstr(w, "href", s);
	free(s);
	jw_kstr(w, "id", user);
	jw_kstr(w, "type", "user");
	s = xasprintf("encore:user:%s", user);
	jw_kstr(w, "uri", s);
	free(s);
	jw_obj_end(w);
}

static bool render_episode(struct call *c, struct jw *w, const char *id)
{
	sqlite3_stmt *st = db_prepare(c->db, "SELECT e.name, e.description, e.duration_ms, e.explicit, e.release_date,"
					     " s.id, s.name, s.publisher FROM episodes e JOIN shows s ON s.id = e.show_id WHERE e.id = ?");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	bool found = sqlite3_step(st) == SQLITE_ROW;
	if (found) {
		jw_obj(w);
		jw_kstr(w, "description", (const char *)sqlite3_column_text(st, 1));
		jw_kint(w, "duration_ms", sqlite3_column_int(st, 2));
		jw_kbool(w, "explicit", sqlite3_column_int(st, 3));
		char *s = xasprintf("%s/v1/episodes/%s", c->srv->base_url, id);
		jw_kstr(w, "href", s);
		free(s);
		jw_kstr(w, "id", id);
		jw_kstr(w, "name", (const char *)sqlite3_column_text(st, 0));
		jw_kstr(w, "release_date", (const char *)sqlite3_column_text(st, 4));
		jw_key(w, "show");
		jw_obj(w);
		jw_kstr(w, "id", (const char *)sqlite3_column_text(st, 5));
		jw_kstr(w, "name", (const char *)sqlite3_column_text(st, 6));
		jw_kstr(w, "publisher", (const char *)sqlite3_column_text(st, 7));
		jw_kstr(w, "type", "show");
		s = xasprintf("encore:show:%s", (const char *)sqlite3_column_text(st, 5));
		jw_kstr(w, "uri", s);
		free(s);
		jw_obj_end(w);
		jw_kstr(w, "type", "episode");
		s = xasprintf("encore:episode:%s", id);
		jw_kstr(w, "uri", s);
		free(s);
		jw_obj_end(w);
	}
	sqlite3_finalize(st);
	return found;
}

/* The Web API playlist track object of se, joined with the track (or episode) it names,
 * for the caller's country: from the entry's renders, rendered now on a miss. */
static const struct pl_render *item_render(struct call *c, struct pl_entry *e, const struct seq_entry *se, int64_t now)
{
	renders_room(e);
	struct pl_render *r = render_find(e, se->item);
	if (r->json && now < r->expires_ms && strcmp(r->country, c->user.country) == 0)
		return r;
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "added_at");
	write_iso_time(&w, se->added_at);
	jw_key(&w, "added_by");
	if (se->added_by)
		write_user_ref(c, &w, se->added_by, false);
	else
		jw_null(&w);
	jw_kbool(&w, "is_local", false);
	char sid[32];
	seq_id_format(se->item, sid);
	jw_kstr(&w, "item_id", sid);
	jw_key(&w, "track");
	char type[16], oid[ID_LEN + 1];
	bool ok = uri_parse(se->uri, type, sizeof(type), oid);
	if (ok && strcmp(type, "track") == 0)
		ok = catalog_write_track(c, &w, oid);
	else if (ok && strcmp(type, "episode") == 0)
		ok = render_episode(c, &w, oid);
	else
		ok = false;
	if (!ok)
		jw_null(&w);  /* removed from the catalog since it was added */
	jw_obj_end(&w);
	if (!r->json)
		e->rn++;
	free(r->json);
	r->item = se->item;
	r->len = w.out.len;
	r->json = jw_finish(&w);
	r->hash = fnv64(r->json, r->len, 14695981039346656037ull);
	snprintf(r->country, sizeof(r->country), "%s", c->user.country);
	r->expires_ms = now + PLAYLISTS_ITEM_TTL_MS;
	return r;
}

static void write_page_url(struct call *c, struct jw *w, const char *id, const char *fmt_tail)
{
	char *h = xasprintf("%s/v1/playlists/%s/tracks%s", c->srv->base_url, id, fmt_tail);
	jw_str(w, h);
	free(h);
}

/* A render good for the caller now, or NULL (memory-only pages give up on one). */
static const struct pl_render *item_rendered(struct call *c, struct pl_entry *e, const struct seq_entry *se, int64_t now)
{
	if (!e->rcap)
		return NULL;
	const struct pl_render *r = render_find(e, se->item);
	return r->json && now < r->expires_ms && strcmp(r->country, c->user.country) == 0 ? r : NULL;
}

enum page_rc { PAGE_OK, PAGE_BAD, PAGE_MISS };

/* Writes a tracks paging object (offset mode, or cursor mode when cursor is non-NULL) into
 * w from the hydrated list, and *etag: a hash of the page's bytes made from the items'
 * hashes, so no pass over the page is needed. The entry stays locked. PAGE_BAD after
 * replying 400. memory_only (the I/O-thread path): nothing is rendered or rebuilt and
 * nothing replied; PAGE_MISS (w holds a partial page to discard) when something would
 * have to be. */
static enum page_rc tracks_page(struct call *c, struct pl_entry *e, int limit, int offset, const char *cursor,
				struct jw *w, uint64_t *etag, bool memory_only)
{
	uint64_t version = seqcrdt_version(e->crdt);
	if (memory_only && (!e->view || e->view_version != version))
		return PAGE_MISS;
	entry_view(e);
	char snap[SEQ_CURSOR_MAX], nextc[SEQ_CURSOR_MAX] = "";
	seq_snapshot_encode(version, snap);
	size_t total = e->nview, n = 0;
	const struct seq_entry *items;
	struct seq_entry *pg = NULL;
	bool more = false;
	if (cursor) {
		struct seq_cursor cur = {.version = version}, next;
		if (*cursor && seq_cursor_decode(cursor, &cur) != 0) {
			if (memory_only)
				return PAGE_MISS;
			call_error(c, 400, "invalid cursor");
			return PAGE_BAD;
		}
		pg = xmalloc((size_t)limit * sizeof(*pg));
		int k = seqcrdt_page(e->crdt, &cur, (size_t)limit, pg, &next, &more);
		if (k < 0) {
			free(pg);
			if (memory_only)
				return PAGE_MISS;
			call_error(c, 400, "invalid cursor");
			return PAGE_BAD;
		}
		n = (size_t)k;
		items = pg;
		if (more)
			seq_cursor_encode(&next, nextc);
	} else {
		size_t from = (size_t)offset < total ? (size_t)offset : total;
		n = total - from < (size_t)limit ? total - from : (size_t)limit;
		items = e->view + from;
	}
	char tail[160];
	jw_obj(w);
	jw_key(w, "href");
	if (cursor)
		snprintf(tail, sizeof(tail), "?cursor=%s&limit=%d", cursor, limit);
	else
		snprintf(tail, sizeof(tail), "?offset=%d&limit=%d", offset, limit);
	write_page_url(c, w, e->id, tail);
	uint64_t h = fnv64(w->out.data, w->out.len, 14695981039346656037ull);
	jw_key(w, "items");
	jw_arr(w);
	int64_t now = mono_ms();
	for (size_t i = 0; i < n; i++) {
		const struct pl_render *r = memory_only ? item_rendered(c, e, &items[i], now) : item_render(c, e, &items[i], now);
		if (!r) {
			free(pg);
			return PAGE_MISS;
		}
		jw_raw(w, r->json);
		h = (h ^ r->hash) * 0x100000001b3ull + i;
	}
	jw_arr_end(w);
	size_t tail_from = w->out.len;
	jw_kint(w, "limit", limit);
	jw_key(w, "next");
	if (cursor) {
		if (more) {
			snprintf(tail, sizeof(tail), "?cursor=%s&limit=%d", nextc, limit);
			write_page_url(c, w, e->id, tail);
		} else {
			jw_null(w);
		}
		jw_key(w, "cursors");
		jw_obj(w);
		jw_key(w, "after");
		if (more)
			jw_str(w, nextc);
		else
			jw_null(w);
		jw_obj_end(w);
	} else {
		if ((size_t)offset + (size_t)limit < total) {
			snprintf(tail, sizeof(tail), "?offset=%d&limit=%d", offset + limit, limit);
			write_page_url(c, w, e->id, tail);
		} else {
			jw_null(w);
		}
		jw_kint(w, "offset", offset);
		jw_key(w, "previous");
		if (offset > 0) {
			snprintf(tail, sizeof(tail), "?offset=%d&limit=%d", offset > limit ? offset - limit : 0, limit);
			write_page_url(c, w, e->id, tail);
		} else {
			jw_null(w);
		}
	}
	jw_kstr(w, "snapshot_id", snap);
	jw_kint(w, "total", (long long)total);
	jw_obj_end(w);
	*etag = fnv64(w->out.data + tail_from, w->out.len - tail_from, h);
	free(pg);
	return PAGE_OK;
}

/* The playlist object; the entry stays locked. tracks_json is a rendered paging object for
 * the full object, NULL for the simplified one ({href, total}). */
static void write_playlist(struct call *c, struct jw *w, struct pl_entry *e, const char *tracks_json)
{
	const struct pl_meta *m = &e->meta;
	jw_obj(w);
	jw_kbool(w, "collaborative", m->collaborative);
	jw_key(w, "collaborators");
	jw_arr(w);
	for (int i = 0; i < m->ncollabs; i++)
		jw_str(w, m->collabs[i]);
	jw_arr_end(w);
	jw_kstr(w, "description", m->description ? m->description : "");
	jw_key(w, "external_urls");
	jw_obj(w);
	jw_obj_end(w);
	jw_key(w, "followers");
	jw_obj(w);
	jw_key(w, "href");
	jw_null(w);
	jw_kint(w, "total", m->followers);
	jw_obj_end(w);
	char *s = xasprintf("%s/v1/playlists/%s", c->srv->base_url, e->id);
	jw_kstr(w, "href", s);
	free(s);
	jw_kstr(w, "id", e->id);
	jw_key(w, "images");
	jw_arr(w);
	if (m->image) {
		jw_obj(w);
		jw_key(w, "height");
		jw_null(w);
		jw_kstr(w, "url", m->image);
		jw_key(w, "width");
		jw_null(w);
		jw_obj_end(w);
	}
	jw_arr_end(w);
	jw_kstr(w, "name", m->name);
	jw_key(w, "owner");
	write_user_ref(c, w, m->owner, true);
	jw_kbool(w, "public", m->public_);
	char snap[SEQ_CURSOR_MAX];
	seq_snapshot_encode(seqcrdt_version(e->crdt), snap);
	jw_kstr(w, "snapshot_id", snap);
	jw_key(w, "tracks");
	if (tracks_json) {
		jw_raw(w, tracks_json);
	} else {
		jw_obj(w);
		s = xasprintf("%s/v1/playlists/%s/tracks", c->srv->base_url, e->id);
		jw_kstr(w, "href", s);
		free(s);
		jw_kint(w, "total", (long long)seqcrdt_len(e->crdt));
		jw_obj_end(w);
	}
	jw_kstr(w, "type", "playlist");
	s = xasprintf("encore:playlist:%s", e->id);
	jw_kstr(w, "uri", s);
	free(s);
	jw_obj_end(w);
}

/* ---- writes ---- */

static void write_op(struct jw *w, const struct seq_op *op)
{
	char a[32];
	jw_obj(w);
	jw_kstr(w, "op", op->kind == SEQ_INSERT ? "insert" : "remove");
	seq_id_format(op->id, a);
	jw_kstr(w, "id", a);
	seq_id_format(op->item, a);
	jw_kstr(w, "item", a);
	if (op->kind == SEQ_INSERT) {
		seq_id_format(op->origin, a);
		jw_kstr(w, "after", a);
		if (op->uri) {
			jw_kstr(w, "uri", op->uri);
			jw_kstr(w, "added_by", op->added_by);
			jw_kint(w, "added_at", op->added_at);
		}
	}
	jw_obj_end(w);
}

/* Display fields of one item for a push (what a client's row shows), or null when it left
 * the catalog: {"name", "uri", "type", "duration_ms", "artists": [{"name"}], "album":
 * {"name"}} for a track, {"name", "uri", "type", "duration_ms", "show": {"name"}} for an
 * episode. */
static void write_item_display(struct call *c, struct jw *w, const char *uri)
{
	char type[16], id[ID_LEN + 1];
	bool track = uri_parse(uri, type, sizeof(type), id) && strcmp(type, "track") == 0;
	bool episode = !track && uri_parse(uri, type, sizeof(type), id) && strcmp(type, "episode") == 0;
	if (!track && !episode) {
		jw_null(w);
		return;
	}
	sqlite3_stmt *st = db_prepare(c->db, track ? "SELECT t.name, t.duration_ms, ar.name, al.name FROM tracks t"
						     " JOIN artists ar ON ar.id = t.artist_id JOIN albums al ON al.id = t.album_id WHERE t.id = ?"
						   : "SELECT e.name, e.duration_ms, NULL, s.name FROM episodes e JOIN shows s ON s.id = e.show_id"
						     " WHERE e.id = ?");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		jw_null(w);
		sqlite3_finalize(st);
		return;
	}
	jw_obj(w);
	if (track) {
		jw_key(w, "album");
		jw_obj(w);
		jw_kstr(w, "name", (const char *)sqlite3_column_text(st, 3));
		jw_obj_end(w);
		jw_key(w, "artists");
		jw_arr(w);
		jw_obj(w);
		jw_kstr(w, "name", (const char *)sqlite3_column_text(st, 2));
		jw_obj_end(w);
		jw_arr_end(w);
	}
	jw_kint(w, "duration_ms", sqlite3_column_int(st, 1));
	jw_kstr(w, "name", (const char *)sqlite3_column_text(st, 0));
	if (episode) {
		jw_key(w, "show");
		jw_obj(w);
		jw_kstr(w, "name", (const char *)sqlite3_column_text(st, 3));
		jw_obj_end(w);
	}
	jw_kstr(w, "type", type);
	jw_kstr(w, "uri", uri);
	jw_obj_end(w);
	sqlite3_finalize(st);
}

static int seq_id_qcmp(const void *a, const void *b)
{
	return seq_id_cmp(*(const struct seq_id *)a, *(const struct seq_id *)b);
}

static bool touched(const struct seq_id *t, size_t n, struct seq_id id)
{
	return bsearch(&id, t, n, sizeof(*t), seq_id_qcmp) != NULL;
}

/* Writes the "change" of a push: the edit as positions in the list at base (rows that
 * leave, removed or moved; then the run of new or moved items and where it lands), so a
 * client holding that list applies it without a CRDT replica or a refetch. Every edit
 * the routes make has this shape (a run lands contiguously because it is one chain); the
 * result is checked against the replica anyway, and when it does not hold, or would be
 * longer than PLAYLISTS_PUSH_CHANGE_MAX entries, nothing is written and clients refetch. */
static void write_change(struct call *c, struct jw *w, struct pl_entry *e, const struct seq_op *ops, int n, uint64_t base)
{
	size_t nb, na = e->nview;
	struct seq_entry *b = seqcrdt_list(e->crdt, base, &nb);
	const struct seq_entry *a = e->view;  /* the list now: commit_ops rebuilt it */
	struct seq_id *t = xmalloc((size_t)n * sizeof(*t));
	for (int i = 0; i < n; i++)
		t[i] = ops[i].item;
	qsort(t, (size_t)n, sizeof(*t), seq_id_qcmp);
	size_t *rm = xmalloc((nb + 1) * sizeof(*rm)), nrm = 0;
	for (size_t i = 0; i < nb; i++)
		if (touched(t, (size_t)n, b[i].item))
			rm[nrm++] = i;
	size_t first = 0, k = 0;
	bool ok = true;
	for (size_t i = 0; i < na && ok; i++)
		if (touched(t, (size_t)n, a[i].item)) {
			if (k == 0)
				first = i;
			ok = i == first + k;
			k++;
		}
	ok = ok && nb - nrm + k == na && nrm + k <= PLAYLISTS_PUSH_CHANGE_MAX;
	/* The list at base without the leaving rows, with the run spliced in at first, must
	 * be the list now. */
	for (size_t i = 0, j = 0, r = 0; ok && i < nb; i++) {
		if (r < nrm && rm[r] == i) {
			r++;
			continue;
		}
		if (j == first && k)
			j += k;
		ok = seq_id_cmp(b[i].item, a[j].item) == 0;
		j++;
	}
	if (ok) {
		jw_key(w, "change");
		jw_obj(w);
		jw_key(w, "remove");
		jw_arr(w);
		for (size_t r = 0; r < nrm; r++)
			jw_int(w, (long long)rm[r]);
		jw_arr_end(w);
		jw_kint(w, "insert_at", (long long)first);
		jw_key(w, "items");
		jw_arr(w);
		for (size_t i = first; i < first + k; i++) {
			char sid[32];
			jw_obj(w);
			seq_id_format(a[i].item, sid);
			jw_kstr(w, "item_id", sid);
			size_t r = 0;
			while (r < nrm && seq_id_cmp(b[rm[r]].item, a[i].item) != 0)
				r++;
			if (r < nrm) {
				jw_kint(w, "from", (long long)rm[r]);
			} else {
				jw_kstr(w, "added_by", a[i].added_by ? a[i].added_by : "");
				jw_kint(w, "added_at", a[i].added_at);
				jw_key(w, "track");
				write_item_display(c, w, a[i].uri);
			}
			jw_obj_end(w);
		}
		jw_arr_end(w);
		jw_kint(w, "total", (long long)na);
		jw_obj_end(w);
	}
	free(rm);
	free(t);
	free(b);
}

/* Appends the operations just applied to the log, pushes them, and replies with the new
 * snapshot. On a database failure the replica is dropped (reloaded from the log on next
 * use) and the reply is 503. Frees ops; the entry stays locked. */
static void commit_ops(struct call *c, struct pl_entry *e, struct seq_op *ops, int n, int status)
{
	uint64_t v = seqcrdt_version(e->crdt);
	char snap[SEQ_CURSOR_MAX];
	seq_snapshot_encode(v, snap);
	if (n > 0) {
		int rc = db_begin(c->db);
		sqlite3_stmt *st = db_prepare(c->db, "INSERT INTO playlist_ops(playlist_id, seq, kind, counter, replica, item_counter,"
						     " item_replica, origin_counter, origin_replica, uri, added_by, added_at)"
						     " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
		for (int i = 0; rc == 0 && i < n; i++) {
			const struct seq_op *op = &ops[i];
			sqlite3_reset(st);
			sqlite3_bind_text(st, 1, e->id, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, (sqlite3_int64)(v - (uint64_t)n + 1 + (uint64_t)i));
			sqlite3_bind_int(st, 3, op->kind);
			sqlite3_bind_int64(st, 4, (sqlite3_int64)op->id.counter);
			sqlite3_bind_int64(st, 5, op->id.replica);
			sqlite3_bind_int64(st, 6, (sqlite3_int64)op->item.counter);
			sqlite3_bind_int64(st, 7, op->item.replica);
			sqlite3_bind_int64(st, 8, (sqlite3_int64)op->origin.counter);
			sqlite3_bind_int64(st, 9, op->origin.replica);
			sqlite3_bind_text(st, 10, op->uri, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 11, op->added_by, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 12, op->added_at);
			if (sqlite3_step(st) != SQLITE_DONE)
				rc = -EIO;
		}
		sqlite3_finalize(st);
		if (rc == 0) {
			st = db_prepare(c->db, "UPDATE playlists SET updated_at = ? WHERE id = ?");
			sqlite3_bind_int64(st, 1, (sqlite3_int64)time(NULL));
			sqlite3_bind_text(st, 2, e->id, -1, SQLITE_STATIC);
			if (sqlite3_step(st) != SQLITE_DONE)
				rc = -EIO;
			sqlite3_finalize(st);
		}
		if (rc == 0)
			rc = db_commit(c->db);
		if (rc != 0) {
			db_rollback(c->db);
			entry_drop_crdt(e);
			seq_ops_free(ops, (size_t)n);
			call_error(c, 503, "database unavailable; the edit was not saved");
			return;
		}
		entry_view(e);  /* write-through: the next page reads the new list as is */
		if (c->srv->plhub) {
			struct jw w;
			jw_init(&w);
			jw_obj(&w);
			jw_kstr(&w, "type", "playlist_changed");
			jw_kstr(&w, "playlist", e->id);
			jw_kstr(&w, "snapshot_id", snap);
			char base[SEQ_CURSOR_MAX];
			seq_snapshot_encode(v - (uint64_t)n, base);
			jw_kstr(&w, "base_snapshot_id", base);
			jw_kint(&w, "version", (long long)v);
			jw_kstr(&w, "by", c->user.sub);
			jw_key(&w, "ops");
			jw_arr(&w);
			for (int i = 0; i < n; i++)
				write_op(&w, &ops[i]);
			jw_arr_end(&w);
			write_change(c, &w, e, ops, n, v - (uint64_t)n);
			jw_obj_end(&w);
			char *json = jw_finish(&w);
			plhub_publish(c->srv->plhub, e->id, json);
			free(json);
		}
	}
	seq_ops_free(ops, n > 0 ? (size_t)n : 0);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "snapshot_id", snap);
	jw_obj_end(&w);
	call_json(c, status, jw_finish(&w));
}

/* The version a request's positions refer to: its snapshot_id, or now. false after 400. */
static bool request_version(struct call *c, struct pl_entry *e, yajl_val body, uint64_t *v)
{
	*v = seqcrdt_version(e->crdt);
	yajl_val s = body ? json_get(body, "snapshot_id") : NULL;
	const char *arg = http_arg(c->req, "snapshot_id");
	if (s && !YAJL_IS_STRING(s) && !YAJL_IS_NULL(s)) {
		call_error(c, 400, "snapshot_id must be a string");
		return false;
	}
	const char *text = s && YAJL_IS_STRING(s) ? s->u.string : arg;
	if (!text)
		return true;
	uint64_t want;
	if (seq_snapshot_decode(text, &want) != 0 || want > *v) {
		call_error(c, 400, "invalid snapshot_id");
		return false;
	}
	*v = want;
	return true;
}

/* Checks one item URI: encore:track:ID or encore:episode:ID that exists. Replies 400. */
static bool check_uri(struct call *c, const char *uri)
{
	char type[16], id[ID_LEN + 1];
	if (!uri || !uri_parse(uri, type, sizeof(type), id) ||
	    (strcmp(type, "track") != 0 && strcmp(type, "episode") != 0)) {
		call_error(c, 400, "invalid URI '%.80s': expected encore:track:ID or encore:episode:ID", uri ? uri : "");
		return false;
	}
	sqlite3_stmt *st = db_prepare(c->db, strcmp(type, "track") == 0 ? "SELECT 1 FROM tracks WHERE id = ?"
									 : "SELECT 1 FROM episodes WHERE id = ?");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	bool found = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	if (!found)
		call_error(c, 400, "unknown %s '%s'", type, uri);
	return found;
}

/* Reads a JSON array of URI strings (at most PLAYLISTS_MAX_ITEMS, at least one) into uris
 * (borrowed from v). Returns the count or -1 after replying 400. */
static int read_uris(struct call *c, yajl_val arr, const char **uris)
{
	if (!arr || !YAJL_IS_ARRAY(arr)) {
		call_error(c, 400, "uris must be an array of URIs");
		return -1;
	}
	size_t n = arr->u.array.len;
	if (n == 0 || n > PLAYLISTS_MAX_ITEMS) {
		call_error(c, 400, "uris must hold 1 to %d URIs, not %zu", PLAYLISTS_MAX_ITEMS, n);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		yajl_val u = arr->u.array.values[i];
		if (!YAJL_IS_STRING(u)) {
			call_error(c, 400, "uris must be an array of strings");
			return -1;
		}
		if (!check_uri(c, u->u.string))
			return -1;
		uris[i] = u->u.string;
	}
	return (int)n;
}

/* Optional non-negative integer member; false after 400. */
static bool opt_index(struct call *c, yajl_val body, const char *key, long long *out, bool *present)
{
	yajl_val v = json_get(body, key);
	*present = v && !YAJL_IS_NULL(v);
	if (!*present)
		return true;
	if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0 || YAJL_GET_INTEGER(v) > 100000000) {
		call_error(c, 400, "%s must be a non-negative integer", key);
		return false;
	}
	*out = YAJL_GET_INTEGER(v);
	return true;
}

/* ---- routes ---- */

/* Replies with the playlist object (full: with its first page of 100) and unlocks e. */
static void reply_playlist(struct call *c, struct pl_entry *e, int status, bool full)
{
	char *tracks = NULL;
	if (full) {
		struct jw t;
		uint64_t etag;
		jw_init(&t);
		tracks_page(c, e, 100, 0, NULL, &t, &etag, false);  /* offset mode cannot fail */
		tracks = jw_finish(&t);
	}
	struct jw w;
	jw_init(&w);
	write_playlist(c, &w, e, tracks);
	pthread_mutex_unlock(&e->lock);
	free(tracks);
	call_json(c, status, jw_finish(&w));
}

static void create_playlist(struct call *c)
{
	yajl_val body = call_body_json(c);
	if (!body)
		return;
	const char *name = json_get_str(body, "name");
	yajl_val d = json_get(body, "description"), pub = json_get(body, "public"), col = json_get(body, "collaborative");
	if (!name || !*name || strlen(name) > 200) {
		call_error(c, 400, "name must be a string of 1 to 200 bytes");
		goto out;
	}
	if ((d && !YAJL_IS_STRING(d) && !YAJL_IS_NULL(d)) || (d && YAJL_IS_STRING(d) && strlen(d->u.string) > 1000)) {
		call_error(c, 400, "description must be a string of at most 1000 bytes");
		goto out;
	}
	if ((pub && !YAJL_IS_TRUE(pub) && !YAJL_IS_FALSE(pub)) || (col && !YAJL_IS_TRUE(col) && !YAJL_IS_FALSE(col))) {
		call_error(c, 400, "public and collaborative must be booleans");
		goto out;
	}
	char id[ID_LEN + 1];
	id_random(id);
	sqlite3_stmt *st = db_prepare(c->db, "INSERT INTO playlists(id, owner, name, description, public, collaborative, created_at, updated_at)"
					     " VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
	int64_t now = (int64_t)time(NULL);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, c->user.sub, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, d && YAJL_IS_STRING(d) ? d->u.string : "", -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, pub ? YAJL_IS_TRUE(pub) : 1);
	sqlite3_bind_int(st, 6, col ? YAJL_IS_TRUE(col) : 0);
	sqlite3_bind_int64(st, 7, now);
	sqlite3_bind_int64(st, 8, now);
	int step = sqlite3_step(st);
	sqlite3_finalize(st);
	if (step != SQLITE_DONE) {
		call_error(c, 503, "database unavailable");
		goto out;
	}
	snprintf(c->params[0], sizeof(c->params[0]), "%s", id);
	int err;
	struct pl_entry *e = entry_get(c->srv->playlists, c->db, id, &err);
	if (!e) {
		call_error(c, 503, "database unavailable");
		goto out;
	}
	reply_playlist(c, e, 201, true);
out:
	yajl_tree_free(body);
}

static void route_create_mine(struct call *c)
{
	create_playlist(c);
}

static void route_create_for_user(struct call *c)
{
	if (strcmp(c->params[0], c->user.sub) != 0) {
		call_error(c, 403, "you can only create playlists for yourself");
		return;
	}
	create_playlist(c);
}

static void route_my_playlists(struct call *c)
{
	int limit, offset;
	if (!call_paging(c, 50, &limit, &offset))
		return;
	const char *where = " FROM playlists p WHERE p.owner = ?1 OR p.id IN"
			    " (SELECT playlist_id FROM playlist_members WHERE user_id = ?1)";
	char *sql = xasprintf("SELECT count(*)%s", where);
	sqlite3_stmt *st = db_prepare(c->db, sql);
	free(sql);
	sqlite3_bind_text(st, 1, c->user.sub, -1, SQLITE_STATIC);
	long long total = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	sql = xasprintf("SELECT p.id%s ORDER BY p.created_at DESC, p.id LIMIT ?2 OFFSET ?3", where);
	st = db_prepare(c->db, sql);
	free(sql);
	sqlite3_bind_text(st, 1, c->user.sub, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, limit);
	sqlite3_bind_int(st, 3, offset);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	call_paging_fields(c, &w, limit, offset, total);
	jw_key(&w, "items");
	jw_arr(&w);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int err;
		struct pl_entry *e = entry_get(c->srv->playlists, c->db, (const char *)sqlite3_column_text(st, 0), &err);
		if (!e)
			continue;
		write_playlist(c, &w, e, NULL);
		pthread_mutex_unlock(&e->lock);
	}
	sqlite3_finalize(st);
	jw_arr_end(&w);
	jw_obj_end(&w);
	call_json(c, 200, jw_finish(&w));
}

static void route_get_playlist(struct call *c)
{
	struct pl_entry *e = open_playlist(c, false);
	if (e)
		reply_playlist(c, e, 200, true);
}

static void route_put_playlist(struct call *c)
{
	struct pl_entry *e = open_playlist(c, false);
	if (!e)
		return;
	if (strcmp(e->meta.owner, c->user.sub) != 0) {
		pthread_mutex_unlock(&e->lock);
		call_error(c, 403, "only the owner can change a playlist's details");
		return;
	}
	pthread_mutex_unlock(&e->lock);
	yajl_val body = call_body_json(c);
	if (!body)
		return;
	yajl_val name = json_get(body, "name"), d = json_get(body, "description"), pub = json_get(body, "public"),
		 col = json_get(body, "collaborative"), img = json_get(body, "image");
	if ((name && (!YAJL_IS_STRING(name) || !*name->u.string || strlen(name->u.string) > 200)) ||
	    (d && (!YAJL_IS_STRING(d) || strlen(d->u.string) > 1000)) ||
	    (img && !YAJL_IS_NULL(img) && (!YAJL_IS_STRING(img) || strlen(img->u.string) > 1000)) ||
	    (pub && !YAJL_IS_TRUE(pub) && !YAJL_IS_FALSE(pub)) || (col && !YAJL_IS_TRUE(col) && !YAJL_IS_FALSE(col))) {
		call_error(c, 400, "name (1-200 bytes), description (string), image (URL or null), public and collaborative (booleans)");
		yajl_tree_free(body);
		return;
	}
	sqlite3_stmt *st = db_prepare(c->db, "UPDATE playlists SET name = coalesce(?2, name), description = coalesce(?3, description),"
					     " public = coalesce(?4, public), collaborative = coalesce(?5, collaborative),"
					     " image_url = CASE WHEN ?6 THEN ?7 ELSE image_url END, updated_at = ?8 WHERE id = ?1");
	sqlite3_bind_text(st, 1, c->params[0], -1, SQLITE_STATIC);
	if (name)
		sqlite3_bind_text(st, 2, name->u.string, -1, SQLITE_STATIC);
	if (d)
		sqlite3_bind_text(st, 3, d->u.string, -1, SQLITE_STATIC);
	if (pub)
		sqlite3_bind_int(st, 4, YAJL_IS_TRUE(pub));
	if (col)
		sqlite3_bind_int(st, 5, YAJL_IS_TRUE(col));
	sqlite3_bind_int(st, 6, img != NULL);
	if (img && YAJL_IS_STRING(img))
		sqlite3_bind_text(st, 7, img->u.string, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)time(NULL));
	int step = sqlite3_step(st);
	sqlite3_finalize(st);
	yajl_tree_free(body);
	if (step != SQLITE_DONE) {
		call_error(c, 503, "database unavailable");
		return;
	}
	int err;
	e = entry_get(c->srv->playlists, c->db, c->params[0], &err);
	if (!e) {
		call_error(c, 503, "database unavailable");
		return;
	}
	e->meta_stale = true;  /* write-through: reload now, not at TTL */
	pthread_mutex_unlock(&e->lock);
	e = entry_get(c->srv->playlists, c->db, c->params[0], &err);
	if (!e) {
		call_error(c, 503, "database unavailable");
		return;
	}
	reply_playlist(c, e, 200, false);
}

/* Replies 200 with the page in w (taking its buffer), or 304 when the client has it. The
 * ETag comes from the items' hashes: the gateway's would hash the whole page. */
static void reply_page(struct call *c, struct jw *w, uint64_t hash)
{
	char tag[24];
	snprintf(tag, sizeof(tag), "\"p%016llx\"", (unsigned long long)hash);
	http_resp_header(c->resp, "ETag", tag);
	const char *inm = c->req->if_none_match;
	if (inm && (strcmp(inm, "*") == 0 || strstr(inm, tag))) {
		jw_free(w);
		c->resp->status = 304;
		buf_reset(&c->resp->body);
		return;
	}
	http_resp_json_buf(c->resp, 200, &w->out);
}

/* The page arguments; false after replying 400. */
static bool page_args(struct call *c, int *limit, int *offset, const char **cursor)
{
	*cursor = http_arg(c->req, "cursor");
	if (!call_paging(c, 100, limit, offset))
		return false;
	if (!http_arg(c->req, "limit"))
		*limit = 100;
	if (*cursor && http_arg(c->req, "offset")) {
		call_error(c, 400, "use either cursor or offset, not both");
		return false;
	}
	return true;
}

static void route_get_tracks(struct call *c)
{
	int limit, offset;
	const char *cursor;
	if (!page_args(c, &limit, &offset, &cursor))
		return;
	struct pl_entry *e = open_playlist(c, false);
	if (!e)
		return;
	struct jw w;
	uint64_t hash;
	jw_init(&w);
	enum page_rc rc = tracks_page(c, e, limit, offset, cursor, &w, &hash, false);
	pthread_mutex_unlock(&e->lock);
	if (rc != PAGE_OK)
		jw_free(&w);
	else
		reply_page(c, &w, hash);
}

bool playlists_fast_tracks(struct call *c)
{
	struct playlists *p = c->srv->playlists;
	const char *id = c->params[0];
	if (!id_valid(id))
		return false;
	int limit, offset;
	const char *cursor;
	if (!page_args(c, &limit, &offset, &cursor))
		return true;  /* answered 400, as the route would before looking anything up */
	pthread_mutex_lock(&p->lock);
	struct pl_entry *e = bucket_find(p, id, bucket_of(id));
	pthread_mutex_unlock(&p->lock);
	/* A writer holds the lock through its commit: never wait for it on an I/O thread. */
	if (!e || pthread_mutex_trylock(&e->lock) != 0)
		return false;
	bool ok = false;
	struct jw w;
	uint64_t hash;
	jw_init(&w);
	if (e->crdt && !e->meta_stale && mono_ms() - e->meta.loaded_ms <= PLAYLISTS_META_TTL_MS &&
	    can_read(&e->meta, c->user.sub))
		ok = tracks_page(c, e, limit, offset, cursor, &w, &hash, true) == PAGE_OK;
	pthread_mutex_unlock(&e->lock);
	if (!ok) {
		jw_free(&w);
		return false;
	}
	reply_page(c, &w, hash);
	return true;
}

static void route_add_tracks(struct call *c)
{
	yajl_val body = NULL;
	const char *uris[PLAYLISTS_MAX_ITEMS];
	int n = 0;
	long long pos = 0;
	bool has_pos = false;
	if (c->req->body.len == 0 && http_arg(c->req, "uris")) {
		/* The Web API also takes ?uris=a,b&position=N. */
		static const int cap = PLAYLISTS_MAX_ITEMS;
		char *list = xstrdup(http_arg(c->req, "uris")), *save = NULL;
		char *copies[PLAYLISTS_MAX_ITEMS + 1];
		int k = 0;
		bool ok = true;
		for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			if (k == cap) {
				call_error(c, 400, "uris must hold 1 to %d URIs", cap);
				ok = false;
				break;
			}
			copies[k++] = t;
		}
		if (ok && k == 0) {
			call_error(c, 400, "uris must hold 1 to %d URIs", cap);
			ok = false;
		}
		for (int i = 0; ok && i < k; i++)
			ok = check_uri(c, copies[i]);
		const char *p = http_arg(c->req, "position");
		if (ok && p) {
			char *end;
			pos = strtoll(p, &end, 10);
			if (!*p || *end || pos < 0) {
				call_error(c, 400, "position must be a non-negative integer");
				ok = false;
			}
			has_pos = true;
		}
		if (!ok) {
			free(list);
			return;
		}
		/* Rebuild as a JSON body so one path handles both forms. */
		struct jw w;
		jw_init(&w);
		jw_obj(&w);
		jw_key(&w, "uris");
		jw_arr(&w);
		for (int i = 0; i < k; i++)
			jw_str(&w, copies[i]);
		jw_arr_end(&w);
		if (has_pos)
			jw_kint(&w, "position", pos);
		jw_obj_end(&w);
		char *text = jw_finish(&w), err[64];
		body = json_parse(text, err, sizeof(err));
		free(text);
		free(list);
	} else {
		body = call_body_json(c);
		if (!body)
			return;
	}
	if ((n = read_uris(c, json_get(body, "uris"), uris)) < 0 || !opt_index(c, body, "position", &pos, &has_pos))
		goto out;
	struct pl_entry *e = open_playlist(c, true);
	if (!e)
		goto out;
	uint64_t v;
	if (!request_version(c, e, body, &v)) {
		pthread_mutex_unlock(&e->lock);
		goto out;
	}
	struct seq_op *ops;
	int k = seqcrdt_insert(e->crdt, v, has_pos ? (size_t)pos : SEQ_END, uris, (size_t)n, c->user.sub,
			       (int64_t)time(NULL), &ops);
	if (k < 0)
		call_error(c, 400, "position %lld is out of range", pos);
	else
		commit_ops(c, e, ops, k, 201);
	pthread_mutex_unlock(&e->lock);
out:
	yajl_tree_free(body);
}

static void route_put_tracks(struct call *c)
{
	yajl_val body = call_body_json(c);
	if (!body)
		return;
	yajl_val uris_v = json_get(body, "uris");
	const char *uris[PLAYLISTS_MAX_ITEMS];
	int n = 0;
	long long start = 0, before = 0, len = 1;
	bool has_start, has_before, has_len;
	if (uris_v) {
		/* Replace: an empty list clears the playlist. */
		if (YAJL_IS_ARRAY(uris_v) && uris_v->u.array.len == 0)
			n = 0;
		else if ((n = read_uris(c, uris_v, uris)) < 0)
			goto out;
	} else {
		if (!opt_index(c, body, "range_start", &start, &has_start) ||
		    !opt_index(c, body, "insert_before", &before, &has_before) ||
		    !opt_index(c, body, "range_length", &len, &has_len))
			goto out;
		if (!has_start || !has_before) {
			call_error(c, 400, "give uris (replace) or range_start and insert_before (reorder)");
			goto out;
		}
		if (has_len && len == 0) {
			call_error(c, 400, "range_length must be at least 1");
			goto out;
		}
	}
	struct pl_entry *e = open_playlist(c, true);
	if (!e)
		goto out;
	uint64_t v;
	if (!request_version(c, e, body, &v)) {
		pthread_mutex_unlock(&e->lock);
		goto out;
	}
	struct seq_op *ops = NULL, *more = NULL;
	int k;
	if (uris_v) {
		size_t cnt;
		struct seq_entry *l = seqcrdt_list(e->crdt, UINT64_MAX, &cnt);
		struct seq_id *items = xmalloc((cnt + 1) * sizeof(*items));
		for (size_t i = 0; i < cnt; i++)
			items[i] = l[i].item;
		free(l);
		k = seqcrdt_remove(e->crdt, items, cnt, &ops);
		free(items);
		int k2 = n ? seqcrdt_insert(e->crdt, seqcrdt_version(e->crdt), SEQ_END, uris, (size_t)n, c->user.sub,
					    (int64_t)time(NULL), &more) : 0;
		ops = xrealloc(ops, ((size_t)k + (size_t)k2 + 1) * sizeof(*ops));
		memcpy(ops + k, more, (size_t)k2 * sizeof(*ops));
		free(more);
		k += k2;
		commit_ops(c, e, ops, k, 200);
	} else {
		k = seqcrdt_move(e->crdt, v, (size_t)start, (size_t)len, (size_t)before, &ops);
		if (k < 0)
			call_error(c, 400, "range_start, range_length or insert_before out of range");
		else
			commit_ops(c, e, ops, k, 200);
	}
	pthread_mutex_unlock(&e->lock);
out:
	yajl_tree_free(body);
}

static void route_delete_tracks(struct call *c)
{
	yajl_val body = call_body_json(c);
	if (!body)
		return;
	yajl_val tracks = json_get(body, "tracks");
	if (!tracks || !YAJL_IS_ARRAY(tracks) || tracks->u.array.len == 0 || tracks->u.array.len > PLAYLISTS_MAX_ITEMS) {
		call_error(c, 400, "tracks must be an array of 1 to %d {\"uri\": ..., \"positions\"?: [...]} objects", PLAYLISTS_MAX_ITEMS);
		goto out;
	}
	size_t positions_total = 0;
	for (size_t i = 0; i < tracks->u.array.len; i++) {
		yajl_val t = tracks->u.array.values[i];
		const char *uri = json_get_str(t, "uri");
		yajl_val ps = json_get(t, "positions");
		char type[16], id[ID_LEN + 1];
		if (!uri || !uri_parse(uri, type, sizeof(type), id) || (strcmp(type, "track") && strcmp(type, "episode"))) {
			call_error(c, 400, "invalid URI in tracks[%zu]", i);
			goto out;
		}
		if (ps && !YAJL_IS_ARRAY(ps)) {
			call_error(c, 400, "positions must be an array of integers");
			goto out;
		}
		for (size_t j = 0; ps && j < ps->u.array.len; j++)
			if (!YAJL_IS_INTEGER(ps->u.array.values[j]) || YAJL_GET_INTEGER(ps->u.array.values[j]) < 0) {
				call_error(c, 400, "positions must be an array of non-negative integers");
				goto out;
			}
		positions_total += ps ? ps->u.array.len : 0;
	}
	if (positions_total > PLAYLISTS_MAX_ITEMS) {
		call_error(c, 400, "at most %d positions per request", PLAYLISTS_MAX_ITEMS);
		goto out;
	}
	struct pl_entry *e = open_playlist(c, true);
	if (!e)
		goto out;
	uint64_t v;
	if (!request_version(c, e, body, &v)) {
		pthread_mutex_unlock(&e->lock);
		goto out;
	}
	size_t cnt;
	struct seq_entry *l = seqcrdt_list(e->crdt, v, &cnt);
	struct seq_id *items = xmalloc((cnt + PLAYLISTS_MAX_ITEMS + 1) * sizeof(*items));
	size_t nitems = 0;
	bool bad = false;
	for (size_t i = 0; i < tracks->u.array.len && !bad; i++) {
		yajl_val t = tracks->u.array.values[i];
		const char *uri = json_get_str(t, "uri");
		yajl_val ps = json_get(t, "positions");
		if (ps && ps->u.array.len > 0) {
			for (size_t j = 0; j < ps->u.array.len; j++) {
				long long p = YAJL_GET_INTEGER(ps->u.array.values[j]);
				if ((size_t)p >= cnt || strcmp(l[p].uri, uri) != 0) {
					call_error(c, 400, "position %lld does not hold %s", p, uri);
					bad = true;
					break;
				}
				items[nitems++] = l[p].item;
			}
		} else {
			for (size_t j = 0; j < cnt && nitems < cnt + PLAYLISTS_MAX_ITEMS; j++)
				if (strcmp(l[j].uri, uri) == 0)
					items[nitems++] = l[j].item;
		}
	}
	free(l);
	if (!bad) {
		struct seq_op *ops;
		int k = seqcrdt_remove(e->crdt, items, nitems, &ops);
		commit_ops(c, e, ops, k, 200);
	}
	free(items);
	pthread_mutex_unlock(&e->lock);
out:
	yajl_tree_free(body);
}

static void route_changes(struct call *c)
{
	struct pl_entry *e = open_playlist(c, false);
	if (!e)
		return;
	uint64_t now = seqcrdt_version(e->crdt), since = 0;
	pthread_mutex_unlock(&e->lock);
	const char *s = http_arg(c->req, "since");
	if (s && (seq_snapshot_decode(s, &since) != 0 || since > now)) {
		call_error(c, 400, "invalid since: expected a snapshot_id of this playlist");
		return;
	}
	sqlite3_stmt *st = db_prepare(c->db, "SELECT kind, counter, replica, item_counter, item_replica, origin_counter, origin_replica,"
					     " uri, added_by, added_at FROM playlist_ops WHERE playlist_id = ? AND seq > ? AND seq <= ? ORDER BY seq");
	sqlite3_bind_text(st, 1, c->params[0], -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)since);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)now);
	char snap[SEQ_CURSOR_MAX];
	seq_snapshot_encode(now, snap);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "playlist", c->params[0]);
	jw_kstr(&w, "snapshot_id", snap);
	jw_kint(&w, "version", (long long)now);
	jw_key(&w, "ops");
	jw_arr(&w);
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct seq_op op = {
			.kind = (enum seq_kind)sqlite3_column_int(st, 0),
			.id = {(uint64_t)sqlite3_column_int64(st, 1), (uint32_t)sqlite3_column_int64(st, 2)},
			.item = {(uint64_t)sqlite3_column_int64(st, 3), (uint32_t)sqlite3_column_int64(st, 4)},
			.origin = {(uint64_t)sqlite3_column_int64(st, 5), (uint32_t)sqlite3_column_int64(st, 6)},
			.uri = (char *)sqlite3_column_text(st, 7),
			.added_by = (char *)sqlite3_column_text(st, 8),
			.added_at = sqlite3_column_int64(st, 9),
		};
		write_op(&w, &op);
	}
	sqlite3_finalize(st);
	jw_arr_end(&w);
	jw_obj_end(&w);
	call_json(c, 200, jw_finish(&w));
}

/* Adds or removes a member row, then refreshes the entry's metadata (write-through). */
static void set_member(struct call *c, const char *user, const char *role, bool add, int status)
{
	sqlite3_stmt *st = db_prepare(c->db, add ? "INSERT OR IGNORE INTO playlist_members(playlist_id, user_id, role, added_at) VALUES (?, ?, ?, ?)"
						 : "DELETE FROM playlist_members WHERE playlist_id = ? AND user_id = ? AND role = ?");
	sqlite3_bind_text(st, 1, c->params[0], -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, user, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, role, -1, SQLITE_STATIC);
	if (add)
		sqlite3_bind_int64(st, 4, (sqlite3_int64)time(NULL));
	int step = sqlite3_step(st);
	sqlite3_finalize(st);
	if (step != SQLITE_DONE) {
		call_error(c, 503, "database unavailable");
		return;
	}
	int err;
	struct pl_entry *e = entry_get(c->srv->playlists, c->db, c->params[0], &err);
	if (!e) {
		call_error(c, 503, "database unavailable");
		return;
	}
	e->meta_stale = true;
	pthread_mutex_unlock(&e->lock);
	e = entry_get(c->srv->playlists, c->db, c->params[0], &err);
	if (!e) {
		call_error(c, 503, "database unavailable");
		return;
	}
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "collaborators");
	jw_arr(&w);
	for (int i = 0; i < e->meta.ncollabs; i++)
		jw_str(&w, e->meta.collabs[i]);
	jw_arr_end(&w);
	jw_key(&w, "followers");
	jw_obj(&w);
	jw_key(&w, "href");
	jw_null(&w);
	jw_kint(&w, "total", e->meta.followers);
	jw_obj_end(&w);
	jw_obj_end(&w);
	pthread_mutex_unlock(&e->lock);
	call_json(c, status, jw_finish(&w));
}

/* Follows or unfollows a playlist the caller can see (a private one is 404 to others). */
static void set_following(struct call *c, bool on)
{
	struct pl_entry *e = open_playlist(c, false);
	if (!e)
		return;
	pthread_mutex_unlock(&e->lock);
	set_member(c, c->user.sub, "follower", on, 200);
}

static void route_follow(struct call *c)
{
	set_following(c, true);
}

static void route_unfollow(struct call *c)
{
	set_following(c, false);
}

static void route_collaborators(struct call *c)
{
	struct pl_entry *e = open_playlist(c, false);
	if (!e)
		return;
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "collaborators");
	jw_arr(&w);
	for (int i = 0; i < e->meta.ncollabs; i++)
		write_user_ref(c, &w, e->meta.collabs[i], true);
	jw_arr_end(&w);
	jw_obj_end(&w);
	pthread_mutex_unlock(&e->lock);
	call_json(c, 200, jw_finish(&w));
}

static void change_collaborator(struct call *c, bool add)
{
	yajl_val body = call_body_json(c);
	if (!body)
		return;
	char user[64];
	const char *u = json_get_str(body, "id");
	if (!u || !*u || strlen(u) >= sizeof(user)) {
		yajl_tree_free(body);
		call_error(c, 400, "body must be {\"id\": USER}");
		return;
	}
	snprintf(user, sizeof(user), "%s", u);
	yajl_tree_free(body);
	struct pl_entry *e = open_playlist(c, false);
	if (!e)
		return;
	bool owner = strcmp(e->meta.owner, c->user.sub) == 0;
	int ncollabs = e->meta.ncollabs;
	pthread_mutex_unlock(&e->lock);
	/* A collaborator may leave; only the owner invites or removes others. */
	if (!owner && !(!add && strcmp(user, c->user.sub) == 0)) {
		call_error(c, 403, "only the owner can change collaborators");
		return;
	}
	sqlite3_stmt *st = db_prepare(c->db, "SELECT 1 FROM users WHERE id = ?");
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	bool exists = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	if (!exists) {
		call_error(c, 404, "no such user");
		return;
	}
	if (add && ncollabs >= MAX_COLLABORATORS) {
		call_error(c, 400, "at most %d collaborators", MAX_COLLABORATORS);
		return;
	}
	set_member(c, user, "collaborator", add, add ? 201 : 200);
}

static void route_add_collaborator(struct call *c)
{
	change_collaborator(c, true);
}

static void route_remove_collaborator(struct call *c)
{
	change_collaborator(c, false);
}

const struct route playlist_routes[] = {
	{"GET", "/v1/me/playlists", route_my_playlists, 0},
	{"POST", "/v1/me/playlists", route_create_mine, 0},
	{"POST", "/v1/users/{id}/playlists", route_create_for_user, 0},
	{"GET", "/v1/playlists/{id}", route_get_playlist, 0},
	{"PUT", "/v1/playlists/{id}", route_put_playlist, 0},
	{"GET", "/v1/playlists/{id}/tracks", route_get_tracks, 0},
	{"POST", "/v1/playlists/{id}/tracks", route_add_tracks, 0},
	{"PUT", "/v1/playlists/{id}/tracks", route_put_tracks, 0},
	{"DELETE", "/v1/playlists/{id}/tracks", route_delete_tracks, 0},
	{"GET", "/v1/playlists/{id}/changes", route_changes, 0},
	{"PUT", "/v1/playlists/{id}/followers", route_follow, 0},
	{"DELETE", "/v1/playlists/{id}/followers", route_unfollow, 0},
	{"GET", "/v1/playlists/{id}/collaborators", route_collaborators, 0},
	{"POST", "/v1/playlists/{id}/collaborators", route_add_collaborator, 0},
	{"DELETE", "/v1/playlists/{id}/collaborators", route_remove_collaborator, 0},
	{NULL, NULL, NULL, 0},
};
