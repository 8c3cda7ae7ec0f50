/* searchsvc: the index's lifecycle. Built once from SQLite at start (a restart rebuilds:
 * ~1 s per 150k tracks, so the demo catalog takes milliseconds), then kept current by
 * hooks; nothing is persisted, so the database stays the one source of truth. */
#include "searchsvc.h"
#include "db.h"
#include "ttlcache.h"
#include "xmem.h"
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_LOADERS 8

struct searchsvc {
	struct search_index *idx;
	atomic_ullong generation;
	struct ttlcache *cache;
	struct {
		searchsvc_loader_fn fn;
		void *ctx;
	} loaders[MAX_LOADERS];
	int nloaders;
	struct searchsvc_taste_provider taste;
	bool has_taste;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct searchsvc *searchsvc_new(int64_t cache_ttl_ms, size_t cache_entries)
{
	struct searchsvc *s = xcalloc(1, sizeof(*s));
	s->idx = search_new();
	s->cache = ttlcache_new(cache_ttl_ms, cache_entries);
	atomic_init(&s->generation, 1);
	return s;
}

void searchsvc_free(struct searchsvc *s)
{
	if (!s)
		return;
	search_free(s->idx);
	ttlcache_free(s->cache);
	free(s);
}

void searchsvc_add_loader(struct searchsvc *s, searchsvc_loader_fn fn, void *ctx)
{
	if (s->nloaders >= MAX_LOADERS) {
		fprintf(stderr, "searchsvc: more than %d loaders; ignoring one\n", MAX_LOADERS);
		return;
	}
	s->loaders[s->nloaders].fn = fn;
	s->loaders[s->nloaders].ctx = ctx;
	s->nloaders++;
}

struct search_index *searchsvc_index(struct searchsvc *s)
{
	return s->idx;
}

uint64_t searchsvc_generation(struct searchsvc *s)
{
	return atomic_load(&s->generation);
}

int searchsvc_add(struct searchsvc *s, const struct search_doc *doc)
{
	int rc = search_add(s->idx, doc);
	/* After the add: a reader that saw the old generation may have seen the new document
	 * or not, but its result is filed under the old generation, which no later reader asks for. */
	atomic_fetch_add(&s->generation, 1);
	return rc;
}

int searchsvc_remove(struct searchsvc *s, enum search_type type, const char *id)
{
	int rc = search_remove(s->idx, type, id);
	atomic_fetch_add(&s->generation, 1);
	return rc;
}

static const char *col(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

/* The first genre of a comma-separated list, in buf. */
static const char *first_genre(const char *genres, char *buf, size_t cap)
{
	if (!genres || !*genres)
		return NULL;
	size_t n = strcspn(genres, ",");
	if (n >= cap)
		n = cap - 1;
	memcpy(buf, genres, n);
	buf[n] = 0;
	return buf;
}

/* Each *_SQL selects the columns its add_* reads; the WHERE clause is appended for one item. */
#define TRACK_SQL "SELECT t.id, t.name, ar.name, al.name, t.genre, t.popularity, t.markets, t.explicit" \
	" FROM tracks t JOIN artists ar ON ar.id = t.artist_id JOIN albums al ON al.id = t.album_id"
#define ARTIST_SQL "SELECT id, name, genres, popularity FROM artists"
#define ALBUM_SQL "SELECT al.id, al.name, ar.name, al.popularity, ar.genres" \
	" FROM albums al JOIN artists ar ON ar.id = al.artist_id"
#define SHOW_SQL "SELECT id, name, publisher, explicit FROM shows"
#define EPISODE_SQL "SELECT e.id, e.name, s.name, e.explicit FROM episodes e JOIN shows s ON s.id = e.show_id"

static int add_track(struct searchsvc *s, sqlite3_stmt *st)
{
	const char *artist = col(st, 2);
	struct search_doc d = {
		.type = SEARCH_TRACK, .id = col(st, 0), .name = col(st, 1), .artists = &artist, .nartists = 1,
		.album = col(st, 3), .genre = col(st, 4), .popularity = sqlite3_column_int(st, 5),
		.markets = col(st, 6), .is_explicit = sqlite3_column_int(st, 7),
	};
	if (d.genre && !*d.genre)
		d.genre = NULL;
	return searchsvc_add(s, &d);
}

static int add_artist(struct searchsvc *s, sqlite3_stmt *st)
{
	char g[64];
	struct search_doc d = {
		.type = SEARCH_ARTIST, .id = col(st, 0), .name = col(st, 1),
		.genre = first_genre(col(st, 2), g, sizeof(g)), .popularity = sqlite3_column_int(st, 3),
	};
	return searchsvc_add(s, &d);
}

static int add_album(struct searchsvc *s, sqlite3_stmt *st)
{
	char g[64];
	const char *artist = col(st, 2);
	struct search_doc d = {
		.type = SEARCH_ALBUM, .id = col(st, 0), .name = col(st, 1), .artists = &artist, .nartists = 1,
		.popularity = sqlite3_column_int(st, 3), .genre = first_genre(col(st, 4), g, sizeof(g)),
	};
	return searchsvc_add(s, &d);
}

static int add_show(struct searchsvc *s, sqlite3_stmt *st)
{
	const char *publisher = col(st, 2);
	struct search_doc d = {
		.type = SEARCH_SHOW, .id = col(st, 0), .name = col(st, 1),
		.artists = publisher && *publisher ? &publisher : NULL, .nartists = publisher && *publisher,
		.is_explicit = sqlite3_column_int(st, 3),
	};
	return searchsvc_add(s, &d);
}

static int add_episode(struct searchsvc *s, sqlite3_stmt *st)
{
	struct search_doc d = {
		.type = SEARCH_EPISODE, .id = col(st, 0), .name = col(st, 1), .album = col(st, 2),
		.is_explicit = sqlite3_column_int(st, 3),
	};
	return searchsvc_add(s, &d);
}

typedef int (*add_fn)(struct searchsvc *s, sqlite3_stmt *st);

static const struct {
	enum search_type type;
	const char *sql, *where;
	add_fn add;
} KINDS[] = {
	{SEARCH_TRACK, TRACK_SQL, " WHERE t.id = ?", add_track},
	{SEARCH_ARTIST, ARTIST_SQL, " WHERE id = ?", add_artist},
	{SEARCH_ALBUM, ALBUM_SQL, " WHERE al.id = ?", add_album},
	{SEARCH_SHOW, SHOW_SQL, " WHERE id = ?", add_show},
	{SEARCH_EPISODE, EPISODE_SQL, " WHERE e.id = ?", add_episode},
};
#define NKINDS (sizeof(KINDS) / sizeof(KINDS[0]))

int searchsvc_build(struct searchsvc *s, sqlite3 *db, struct searchsvc_build_stats *out)
{
	struct searchsvc_build_stats st;
	memset(&st, 0, sizeof(st));
	int64_t t0 = mono_ms();
	/* One read transaction: a consistent snapshot, and SQLite skips per-statement locking. */
	if (db_exec(db, "BEGIN") != 0)
		return -EIO;
	for (size_t k = 0; k < NKINDS; k++) {
		sqlite3_stmt *q = db_prepare(db, KINDS[k].sql);
		int step;
		while ((step = sqlite3_step(q)) == SQLITE_ROW)
			if (KINDS[k].add(s, q) == 0)
				st.count[KINDS[k].type]++;
		sqlite3_finalize(q);
		if (step != SQLITE_DONE) {
			fprintf(stderr, "searchsvc: reading the catalog failed: %s\n", sqlite3_errmsg(db));
			db_exec(db, "COMMIT");
			return -EIO;
		}
	}
	db_exec(db, "COMMIT");
	for (int i = 0; i < s->nloaders; i++) {
		long n = s->loaders[i].fn(s->loaders[i].ctx, db, s);
		if (n < 0)
			fprintf(stderr, "searchsvc: loader %d failed: %s\n", i, strerror((int)-n));
		else
			st.count[SEARCH_PLAYLIST] += (size_t)n;
	}
	for (int t = 0; t < SEARCH_NTYPES; t++)
		st.total += st.count[t];
	st.ms = (double)(mono_ms() - t0);
	if (out)
		*out = st;
	return 0;
}

int searchsvc_index_item(struct searchsvc *s, sqlite3 *db, enum search_type type, const char *id)
{
	for (size_t k = 0; k < NKINDS; k++) {
		if (KINDS[k].type != type)
			continue;
		char *sql = xasprintf("%s%s", KINDS[k].sql, KINDS[k].where);
		sqlite3_stmt *q = db_prepare(db, sql);
		free(sql);
		sqlite3_bind_text(q, 1, id, -1, SQLITE_TRANSIENT);
		int rc = sqlite3_step(q) == SQLITE_ROW ? KINDS[k].add(s, q) : -ENOENT;
		sqlite3_finalize(q);
		return rc;
	}
	return -EINVAL;
}

/* Re-indexes the parents (artist, album, show) whose ids sql selects from the item's row. */
static void index_parents(struct searchsvc *s, sqlite3 *db, const char *sql, const char *id,
			  const enum search_type *types, int n)
{
	sqlite3_stmt *q = db_prepare(db, sql);
	sqlite3_bind_text(q, 1, id, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(q) == SQLITE_ROW)
		for (int i = 0; i < n; i++) {
			char pid[SEARCH_ID_LEN + 1];
			snprintf(pid, sizeof(pid), "%s", col(q, i) ? col(q, i) : "");
			searchsvc_index_item(s, db, types[i], pid);
		}
	sqlite3_finalize(q);
}

void searchsvc_ingest_hook(void *ctx, sqlite3 *db, enum ingest_kind kind, const char *content_id)
{
	struct searchsvc *s = ctx;
	int rc;
	if (kind == INGEST_TRACK) {
		/* A new track can create its artist and album, or raise their popularity. */
		static const enum search_type parents[] = {SEARCH_ARTIST, SEARCH_ALBUM};
		rc = searchsvc_index_item(s, db, SEARCH_TRACK, content_id);
		index_parents(s, db, "SELECT artist_id, album_id FROM tracks WHERE id = ?", content_id, parents, 2);
	} else {
		static const enum search_type parents[] = {SEARCH_SHOW};
		rc = searchsvc_index_item(s, db, SEARCH_EPISODE, content_id);
		index_parents(s, db, "SELECT show_id FROM episodes WHERE id = ?", content_id, parents, 1);
	}
	if (rc != 0)
		fprintf(stderr, "searchsvc: cannot index %s %s: %s\n", kind == INGEST_TRACK ? "track" : "episode",
			content_id, strerror(-rc));
}

char *searchsvc_cache_get(struct searchsvc *s, const char *key)
{
	return ttlcache_get(s->cache, key, mono_ms());
}

void searchsvc_cache_put(struct searchsvc *s, const char *key, const char *value)
{
	ttlcache_put(s->cache, key, value, mono_ms());
}

void searchsvc_set_taste_provider(struct searchsvc *s, const struct searchsvc_taste_provider *p)
{
	s->has_taste = p && p->get;
	if (s->has_taste)
		s->taste = *p;
	else
		memset(&s->taste, 0, sizeof(s->taste));
}

bool searchsvc_has_taste(struct searchsvc *s)
{
	return s->has_taste;
}

bool searchsvc_taste_get(struct searchsvc *s, sqlite3 *db, const char *user_id, struct search_taste *out)
{
	memset(out, 0, sizeof(*out));
	return s->has_taste && s->taste.get(s->taste.ctx, db, user_id, out);
}

void searchsvc_taste_release(struct searchsvc *s, struct search_taste *t)
{
	if (s->has_taste && s->taste.release)
		s->taste.release(s->taste.ctx, t);
}
