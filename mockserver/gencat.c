/* gencat: ids follow catalog_add_track's seeds (artist / artist+album / artist+album+title),
 * so a generated item has the id the catalog would give it. Inserts bypass
 * catalog_add_track (three statement preparations and upserts per track) for speed: the
 * statements are prepared once and the whole load is one transaction. */
#include "gencat.h"
#include "db.h"
#include "demo.h"
#include "id.h"
#include "namegen.h"
#include "xmem.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const MSETS[] = {"US,GB", "SE,DE,FR", "JP", "GB,IN"};

struct writer {
	sqlite3 *db;
	sqlite3_stmt *artist, *album, *track;
	struct gencat_stats st;
	int64_t now;
};

static int step(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

static int put_artist(struct writer *w, const char *name, const char *genre, int pop, char id[ID_LEN + 1])
{
	char *seed = xasprintf("artist\x1f%s", name);
	id_from_seed(seed, id);
	free(seed);
	sqlite3_bind_text(w->artist, 1, id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(w->artist, 2, name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(w->artist, 3, genre, -1, SQLITE_STATIC);
	sqlite3_bind_int(w->artist, 4, pop);
	return step(w->artist);
}

static int put_album(struct writer *w, const char *artist_name, const char *artist_id, const char *name,
		     const char *date, int pop, char id[ID_LEN + 1])
{
	char *seed = xasprintf("album\x1f%s\x1f%s", artist_name, name);
	id_from_seed(seed, id);
	free(seed);
	sqlite3_bind_text(w->album, 1, id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(w->album, 2, name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(w->album, 3, artist_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(w->album, 4, date, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(w->album, 5, pop);
	return step(w->album);
}

static int put_track(struct writer *w, const char *artist_name, const char *artist_id, const char *album_name,
		     const char *album_id, const char *name, int number, int duration_ms, bool explicit_, int pop,
		     const char *markets, const char *genre)
{
	char id[ID_LEN + 1];
	char *seed = xasprintf("track\x1f%s\x1f%s\x1f%s", artist_name, album_name, name);
	id_from_seed(seed, id);
	free(seed);
	sqlite3_stmt *t = w->track;
	sqlite3_bind_text(t, 1, id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(t, 2, name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(t, 3, album_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(t, 4, artist_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(t, 5, number);
	sqlite3_bind_int(t, 6, duration_ms);
	sqlite3_bind_int(t, 7, explicit_);
	sqlite3_bind_int(t, 8, pop);
	sqlite3_bind_text(t, 9, markets ? markets : "", -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(t, 10, genre, -1, SQLITE_STATIC);
	sqlite3_bind_int64(t, 11, w->now);
	return step(t);
}

struct named {
	char *name;
	char id[ID_LEN + 1];
	int artist;   /* albums: index of their artist */
};

static int seed_synthetic(struct writer *w, size_t n, uint64_t seed)
{
	struct namegen *g = namegen_new(seed);
	size_t nart = n / 10 ? n / 10 : 1, nalb = n / 8 ? n / 8 : 1;
	struct named *art = xcalloc(nart, sizeof(*art)), *alb = xcalloc(nalb, sizeof(*alb));
	char name[256], date[16];
	int rc = 0;
	for (size_t i = 0; i < nart && rc == 0; i++) {
		namegen_name(g, name, sizeof(name), 1, 2);
		art[i].name = xstrdup(name);
		const char *genre = namegen_genre(g);
		rc = put_artist(w, name, genre, (int)(100 - namegen_zipf(g, 101)), art[i].id);
	}
	for (size_t i = 0; i < nalb && rc == 0; i++) {
		namegen_name(g, name, sizeof(name), 1, 3);
		alb[i].name = xstrdup(name);
		alb[i].artist = (int)(namegen_rand(g) % nart);
		int y = 1960 + (int)(namegen_rand(g) % 66), mo = 1 + (int)(namegen_rand(g) % 12);
		snprintf(date, sizeof(date), "%04d-%02d-%02d", y, mo, 1 + (int)(namegen_rand(g) % 28));
		rc = put_album(w, art[alb[i].artist].name, art[alb[i].artist].id, name, date,
			       (int)(100 - namegen_zipf(g, 101)), alb[i].id);
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		namegen_name(g, name, sizeof(name), 1, 4);
		const struct named *al = &alb[namegen_rand(g) % nalb];
		const struct named *ar = &art[al->artist];
		const char *markets = namegen_rand(g) % 10 == 0 ? MSETS[namegen_rand(g) % 4] : "";
		int ms = 120000 + (int)(namegen_rand(g) % 180000);
		bool explicit_ = namegen_rand(g) % 20 == 0;
		int pop = (int)(100 - namegen_zipf(g, 101));
		rc = put_track(w, ar->name, ar->id, al->name, al->id, name, 1 + (int)(i % 12), ms, explicit_, pop,
			       markets, namegen_genre(g));
	}
	for (size_t i = 0; i < nart; i++)
		free(art[i].name);
	for (size_t i = 0; i < nalb; i++)
		free(alb[i].name);
	free(art);
	free(alb);
	namegen_free(g);
	return rc;
}

static int seed_demo(struct writer *w, size_t n, uint64_t seed)
{
	struct demo_track *plan = xcalloc(n ? n : 1, sizeof(*plan));
	demo_plan(plan, n, (unsigned)(seed ? seed : 42), 30);
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct demo_track *t = &plan[i];
		char artist_id[ID_LEN + 1], album_id[ID_LEN + 1];
		rc = put_artist(w, t->artist, t->genre, t->popularity, artist_id);
		if (rc == 0)
			rc = put_album(w, t->artist, artist_id, t->album, t->release_date, t->popularity, album_id);
		if (rc == 0)
			rc = put_track(w, t->artist, artist_id, t->album, album_id, t->title, t->track_number,
				       (int)(t->seconds * 1000), t->explicit_, t->popularity, t->markets, t->genre);
	}
	free(plan);
	return rc;
}

/* Rows in tracks, artists, albums: the difference is what a load inserted (upserts that only
 * raise a popularity do not count). */
static void table_counts(sqlite3 *db, size_t n[3])
{
	sqlite3_stmt *st = db_prepare(db, "SELECT (SELECT count(*) FROM tracks), (SELECT count(*) FROM artists),"
					  " (SELECT count(*) FROM albums)");
	n[0] = n[1] = n[2] = 0;
	if (sqlite3_step(st) == SQLITE_ROW)
		for (int i = 0; i < 3; i++)
			n[i] = (size_t)sqlite3_column_int64(st, i);
	sqlite3_finalize(st);
}

int gencat_seed(sqlite3 *db, enum gencat_plan plan, size_t ntracks, uint64_t seed, struct gencat_stats *out,
		char *err, size_t errlen)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct writer w = {.db = db, .now = (int64_t)time(NULL)};
	if (db_begin(db) != 0) {
		snprintf(err, errlen, "cannot begin a transaction: %s", sqlite3_errmsg(db));
		return -EIO;
	}
	/* Popularity of an existing artist or album rises to its best track's, as in the catalog. */
	w.artist = db_prepare(db, "INSERT INTO artists(id, name, genres, popularity) VALUES (?1, ?2, ?3, ?4)"
				  " ON CONFLICT(id) DO UPDATE SET popularity = max(popularity, ?4) WHERE ?4 > popularity");
	w.album = db_prepare(db, "INSERT INTO albums(id, name, artist_id, release_date, popularity) VALUES (?1, ?2, ?3, ?4, ?5)"
				 " ON CONFLICT(id) DO UPDATE SET popularity = max(popularity, ?5) WHERE ?5 > popularity");
	w.track = db_prepare(db, "INSERT OR IGNORE INTO tracks(id, name, album_id, artist_id, track_number, duration_ms,"
				 " explicit, popularity, markets, genre, created_at, state)"
				 " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')");
	size_t before[3];
	table_counts(db, before);
	int rc = plan == GENCAT_DEMO ? seed_demo(&w, ntracks, seed) : seed_synthetic(&w, ntracks, seed);
	if (rc != 0)
		snprintf(err, errlen, "database error: %s", sqlite3_errmsg(db));
	sqlite3_finalize(w.artist);
	sqlite3_finalize(w.album);
	sqlite3_finalize(w.track);
	if (rc == 0 && db_commit(db) != 0) {
		snprintf(err, errlen, "cannot commit: %s", sqlite3_errmsg(db));
		rc = -EIO;
	}
	if (rc != 0) {
		db_rollback(db);
		return rc;
	}
	size_t after[3];
	table_counts(db, after);
	w.st.tracks = after[0] - before[0];
	w.st.artists = after[1] - before[1];
	w.st.albums = after[2] - before[2];
	clock_gettime(CLOCK_MONOTONIC, &t1);
	w.st.seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (out)
		*out = w.st;
	return 0;
}
