/* db: migrations are an ordered array; schema_version records how many have run.
 * Each runs in its own transaction, so a crash mid-migration leaves the previous version. */
#include "db.h"
#include "buf.h"
#include "xmem.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const MIGRATIONS[] = {
	/* 1: accounts and the catalog. */
	"CREATE TABLE users ("
	"  id TEXT PRIMARY KEY,"
	"  display_name TEXT NOT NULL,"
	"  password_hash TEXT NOT NULL,"
	"  tier TEXT NOT NULL CHECK (tier IN ('free','premium')),"
	"  country TEXT NOT NULL,"
	"  is_admin INTEGER NOT NULL DEFAULT 0,"
	"  explicit_ok INTEGER NOT NULL DEFAULT 1,"
	"  created_at INTEGER NOT NULL);"
	"CREATE TABLE refresh_tokens ("
	"  token_hash TEXT PRIMARY KEY,"
	"  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	"  expires_at INTEGER NOT NULL);"
	"CREATE TABLE artists ("
	"  id TEXT PRIMARY KEY,"
	"  name TEXT NOT NULL,"
	"  genres TEXT NOT NULL DEFAULT '',"
	"  label TEXT NOT NULL DEFAULT '',"
	"  description TEXT NOT NULL DEFAULT '',"
	"  popularity INTEGER NOT NULL DEFAULT 0,"
	"  followers INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE albums ("
	"  id TEXT PRIMARY KEY,"
	"  name TEXT NOT NULL,"
	"  artist_id TEXT NOT NULL REFERENCES artists(id),"
	"  album_type TEXT NOT NULL DEFAULT 'album',"
	"  release_date TEXT NOT NULL DEFAULT '1970-01-01',"
	"  label TEXT NOT NULL DEFAULT '',"
	"  popularity INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX albums_by_artist ON albums(artist_id, release_date);"
	"CREATE TABLE tracks ("
	"  id TEXT PRIMARY KEY,"
	"  name TEXT NOT NULL,"
	"  album_id TEXT NOT NULL REFERENCES albums(id),"
	"  artist_id TEXT NOT NULL REFERENCES artists(id),"
	"  track_number INTEGER NOT NULL DEFAULT 1,"
	"  disc_number INTEGER NOT NULL DEFAULT 1,"
	"  duration_ms INTEGER NOT NULL DEFAULT 0,"
	"  explicit INTEGER NOT NULL DEFAULT 0,"
	"  popularity INTEGER NOT NULL DEFAULT 0,"
	"  markets TEXT NOT NULL DEFAULT '',"   /* '' = everywhere, else 'SE,US' */
	"  genre TEXT NOT NULL DEFAULT '',"
	"  loudness_lufs REAL,"
	"  true_peak_db REAL,"
	"  gain_db REAL NOT NULL DEFAULT 0,"
	"  state TEXT NOT NULL DEFAULT 'ready',"
	"  created_at INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX tracks_by_album ON tracks(album_id, disc_number, track_number);"
	"CREATE INDEX tracks_by_artist ON tracks(artist_id, popularity);"
	"CREATE TABLE audio_features ("
	"  track_id TEXT PRIMARY KEY REFERENCES tracks(id) ON DELETE CASCADE,"
	"  tempo REAL, key INTEGER, mode INTEGER, time_signature INTEGER, loudness REAL,"
	"  energy REAL, danceability REAL, acousticness REAL, instrumentalness REAL,"
	"  speechiness REAL, valence REAL, liveness REAL);",

	/* 2: the ingest pipeline: persisted jobs, renditions and their segments, podcasts. */
	"CREATE TABLE ingest_jobs ("
	"  id INTEGER PRIMARY KEY,"
	"  content_id TEXT NOT NULL,"
	"  kind TEXT NOT NULL CHECK (kind IN ('track','episode')),"
	"  source_hash TEXT NOT NULL,"
	"  state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued','running','done','failed')),"
	"  progress REAL NOT NULL DEFAULT 0,"
	"  error TEXT,"
	"  owner TEXT,"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  priority INTEGER NOT NULL DEFAULT 0,"
	"  created_at INTEGER NOT NULL,"
	"  started_at INTEGER,"
	"  finished_at INTEGER);"
	"CREATE INDEX ingest_jobs_by_state ON ingest_jobs(state, priority DESC, id);"
	"CREATE TABLE renditions ("
	"  content_id TEXT NOT NULL,"
	"  bitrate INTEGER NOT NULL,"        /* ladder rung, kbps */
	"  rate INTEGER NOT NULL,"
	"  channels INTEGER NOT NULL,"
	"  init_hash TEXT NOT NULL,"
	"  init_size INTEGER NOT NULL,"
	"  segment_count INTEGER NOT NULL,"
	"  total_samples INTEGER NOT NULL,"
	"  bytes INTEGER NOT NULL,"          /* init + all segments */
	"  PRIMARY KEY (content_id, bitrate)) WITHOUT ROWID;"
	"CREATE TABLE segments ("
	"  content_id TEXT NOT NULL,"
	"  bitrate INTEGER NOT NULL,"
	"  idx INTEGER NOT NULL,"
	"  hash TEXT NOT NULL,"
	"  size INTEGER NOT NULL,"
	"  PRIMARY KEY (content_id, bitrate, idx)) WITHOUT ROWID;"
	"ALTER TABLE tracks ADD COLUMN source_hash TEXT;"
	"CREATE TABLE shows ("
	"  id TEXT PRIMARY KEY,"
	"  name TEXT NOT NULL,"
	"  publisher TEXT NOT NULL DEFAULT '',"
	"  description TEXT NOT NULL DEFAULT '',"
	"  explicit INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE episodes ("
	"  id TEXT PRIMARY KEY,"
	"  show_id TEXT NOT NULL REFERENCES shows(id),"
	"  name TEXT NOT NULL,"
	"  description TEXT NOT NULL DEFAULT '',"
	"  episode_number INTEGER NOT NULL DEFAULT 1,"
	"  duration_ms INTEGER NOT NULL DEFAULT 0,"
	"  release_date TEXT NOT NULL DEFAULT '1970-01-01',"
	"  explicit INTEGER NOT NULL DEFAULT 0,"
	"  loudness_lufs REAL,"
	"  true_peak_db REAL,"
	"  gain_db REAL NOT NULL DEFAULT 0,"
	"  state TEXT NOT NULL DEFAULT 'pending',"
	"  source_hash TEXT,"
	"  created_at INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX episodes_by_show ON episodes(show_id, episode_number);",

	/* 3: playlists: metadata apart from the order, which is the log of CRDT operations
	 * (replayed into memory on first use); collaborators and followers as members. */
	"CREATE TABLE playlists ("
	"  id TEXT PRIMARY KEY,"
	"  owner TEXT NOT NULL REFERENCES users(id),"
	"  name TEXT NOT NULL,"
	"  description TEXT NOT NULL DEFAULT '',"
	"  public INTEGER NOT NULL DEFAULT 1,"
	"  collaborative INTEGER NOT NULL DEFAULT 0,"
	"  image_url TEXT,"
	"  created_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL);"
	"CREATE INDEX playlists_by_owner ON playlists(owner, created_at);"
	"CREATE TABLE playlist_ops ("
	"  playlist_id TEXT NOT NULL REFERENCES playlists(id) ON DELETE CASCADE,"
	"  seq INTEGER NOT NULL,"                 /* the replica's version after this op */
	"  kind INTEGER NOT NULL,"                /* 1 insert, 2 remove */
	"  counter INTEGER NOT NULL, replica INTEGER NOT NULL,"
	"  item_counter INTEGER NOT NULL, item_replica INTEGER NOT NULL,"
	"  origin_counter INTEGER NOT NULL DEFAULT 0, origin_replica INTEGER NOT NULL DEFAULT 0,"
	"  uri TEXT, added_by TEXT, added_at INTEGER NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (playlist_id, seq)) WITHOUT ROWID;"
	"CREATE TABLE playlist_members ("
	"  playlist_id TEXT NOT NULL REFERENCES playlists(id) ON DELETE CASCADE,"
	"  user_id TEXT NOT NULL REFERENCES users(id),"
	"  role TEXT NOT NULL CHECK (role IN ('collaborator','follower')),"
	"  added_at INTEGER NOT NULL,"
	"  PRIMARY KEY (playlist_id, user_id, role)) WITHOUT ROWID;"
	"CREATE INDEX playlist_members_by_user ON playlist_members(user_id, role);",
	/* 4: events: the append-only event log (seq is the offset consumers commit; event_id
	 * makes ingest idempotent), consumer offsets, and the consumers' derived tables. */
	"CREATE TABLE event_log ("
	"  seq INTEGER PRIMARY KEY,"
	"  event_id TEXT NOT NULL UNIQUE,"
	"  user_id TEXT NOT NULL,"
	"  country TEXT NOT NULL,"
	"  type TEXT NOT NULL,"
	"  ts INTEGER NOT NULL,"              /* device clock, ms */
	"  received_at INTEGER NOT NULL,"     /* server clock, ms */
	"  uri TEXT NOT NULL,"
	"  ms_played INTEGER,"
	"  bitrate INTEGER,"
	"  position_ms INTEGER,"
	"  context TEXT,"
	"  reason TEXT);"
	"CREATE INDEX event_log_by_user ON event_log(user_id, type, ts);"
	"CREATE TABLE consumer_offsets ("
	"  consumer TEXT PRIMARY KEY,"
	"  committed INTEGER NOT NULL DEFAULT 0,"
	"  updated_at INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE royalty_streams ("
	"  event_seq INTEGER PRIMARY KEY,"
	"  event_id TEXT NOT NULL,"
	"  day TEXT NOT NULL,"
	"  track_id TEXT NOT NULL,"
	"  rights_holder TEXT NOT NULL,"
	"  country TEXT NOT NULL,"
	"  user_id TEXT NOT NULL,"
	"  ms_played INTEGER NOT NULL);"
	"CREATE INDEX royalty_streams_by_day ON royalty_streams(day, track_id, country);"
	"CREATE TABLE rt_minute_plays ("
	"  track_id TEXT NOT NULL,"
	"  minute INTEGER NOT NULL,"          /* unix minute of the play */
	"  plays INTEGER NOT NULL,"
	"  PRIMARY KEY (minute, track_id)) WITHOUT ROWID;"
	"CREATE TABLE rt_listeners ("
	"  country TEXT NOT NULL,"
	"  hour INTEGER NOT NULL,"            /* unix hour */
	"  user_id TEXT NOT NULL,"
	"  PRIMARY KEY (hour, country, user_id)) WITHOUT ROWID;"
	"CREATE TABLE rt_track_stats ("
	"  track_id TEXT PRIMARY KEY,"
	"  plays INTEGER NOT NULL DEFAULT 0,"
	"  skips INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
	"CREATE TABLE reco_interactions ("
	"  user_id TEXT NOT NULL,"
	"  track_id TEXT NOT NULL,"
	"  weight REAL NOT NULL DEFAULT 0,"
	"  events INTEGER NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (user_id, track_id)) WITHOUT ROWID;",

	/* 5: the listener's library: saved tracks and albums, followed artists. */
	"CREATE TABLE library ("
	"  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	"  kind TEXT NOT NULL CHECK (kind IN ('track','album','artist')),"
	"  item_id TEXT NOT NULL,"
	"  added_at INTEGER NOT NULL,"
	"  PRIMARY KEY (user_id, kind, item_id)) WITHOUT ROWID;"
	"CREATE INDEX library_by_time ON library(user_id, kind, added_at);",

	/* 6: offline downloads: devices registered for offline playback (an X25519 public
	 * key each, so licence keys can be sealed to them) and the licences issued to them. */
	"CREATE TABLE offline_devices ("
	"  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	"  device_id TEXT NOT NULL,"
	"  public_key BLOB NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  PRIMARY KEY (user_id, device_id)) WITHOUT ROWID;"
	"CREATE TABLE offline_licenses ("
	"  user_id TEXT NOT NULL,"
	"  device_id TEXT NOT NULL,"
	"  track_id TEXT NOT NULL,"
	"  license_key BLOB NOT NULL,"          /* 32 random bytes; leaves the server only sealed */
	"  issued_at INTEGER NOT NULL,"
	"  expires_at INTEGER NOT NULL,"
	"  PRIMARY KEY (user_id, device_id, track_id),"
	"  FOREIGN KEY (user_id, device_id) REFERENCES offline_devices(user_id, device_id) ON DELETE CASCADE) WITHOUT ROWID;",

	/* 7: recommendations: published model versions (files under DATA/models/) and the
	 * cold-start tastes users pick (PUT /v1/me/taste). */
	"CREATE TABLE reco_models ("
	"  version INTEGER PRIMARY KEY,"
	"  path TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  users INTEGER NOT NULL, items INTEGER NOT NULL, nnz INTEGER NOT NULL,"
	"  factors INTEGER NOT NULL, train_ms REAL NOT NULL, loss REAL);"
	"CREATE TABLE user_taste ("
	"  user_id TEXT NOT NULL,"
	"  kind TEXT NOT NULL CHECK (kind IN ('genre','artist')),"
	"  value TEXT NOT NULL,"
	"  PRIMARY KEY (user_id, kind, value)) WITHOUT ROWID;",

	/* 8: connect: registered devices and each user's last playback state (connect.c). */
	"CREATE TABLE IF NOT EXISTS connect_devices ("
	"  user_id TEXT NOT NULL,"
	"  device_id TEXT NOT NULL,"
	"  name TEXT NOT NULL,"
	"  type TEXT NOT NULL,"
	"  volume INTEGER NOT NULL,"
	"  capabilities TEXT NOT NULL DEFAULT '',"
	"  last_seen INTEGER NOT NULL,"
	"  PRIMARY KEY (user_id, device_id)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS connect_state ("
	"  user_id TEXT PRIMARY KEY,"
	"  active_device TEXT NOT NULL,"
	"  context_uri TEXT NOT NULL,"
	"  track_uri TEXT NOT NULL,"
	"  queue TEXT NOT NULL,"               /* JSON array of URIs */
	"  queue_index INTEGER NOT NULL,"
	"  position_ms INTEGER NOT NULL,"
	"  duration_ms INTEGER NOT NULL,"
	"  is_playing INTEGER NOT NULL,"
	"  shuffle INTEGER NOT NULL,"
	"  repeat TEXT NOT NULL,"
	"  volume INTEGER NOT NULL,"
	"  version INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL) WITHOUT ROWID;",

	/* 9: recommendations: the caller's Discover Weekly and Release Radar for the ISO week
	 * and Daily Mixes for the day (recs_routes.c); one row per user and product, replaced
	 * when the period changes. body is the JSON of the ordered track ids (mixes for Daily Mix). */
	"CREATE TABLE IF NOT EXISTS reco_cache ("
	"  user_id TEXT NOT NULL,"
	"  product TEXT NOT NULL,"
	"  period TEXT NOT NULL,"              /* 2026-W48 or 2026-11-29 (UTC, recsvc clock) */
	"  source TEXT NOT NULL,"
	"  version INTEGER NOT NULL,"          /* the model version that produced it */
	"  generated_at INTEGER NOT NULL,"
	"  body TEXT NOT NULL,"
	"  PRIMARY KEY (user_id, product)) WITHOUT ROWID;",
	/* 10: on-demand transcoding: how a job became playable. playable_segments is the
	 * number of first-rung segments recorded when the item turned ready (1 when streamed
	 * segment by segment); playable_ms the time from claiming the job to that commit;
	 * timing the phases up to it, for bench/ondemand.sh. */
	"ALTER TABLE ingest_jobs ADD COLUMN playable_segments INTEGER;"
	"ALTER TABLE ingest_jobs ADD COLUMN playable_ms REAL;"
	"ALTER TABLE ingest_jobs ADD COLUMN timing TEXT;",
	/* 11: the event consumers' derived tables and offsets moved to their own files (STORES
	 * below), so a consumer never takes the log's write lock. Dropped here; each consumer
	 * rebuilds its store from the log (its offset starts at 0 in a new store). */
	"DROP TABLE IF EXISTS royalty_streams;"
	"DROP TABLE IF EXISTS rt_minute_plays;"
	"DROP TABLE IF EXISTS rt_listeners;"
	"DROP TABLE IF EXISTS rt_track_stats;"
	"DROP TABLE IF EXISTS reco_interactions;"
	"DROP TABLE IF EXISTS consumer_offsets;",
};

/* The consumer stores: each consumer of the event log keeps its derived tables and its
 * committed offset in a file of its own, attached to every connection under the
 * consumer's name. SQLite has one writer per file: with the stores apart, ingest (the
 * log in encore.db) never waits for a consumer's transaction, a consumer never waits for
 * ingest or another consumer, and a consumer's page cache stays valid between its steps
 * (SQLite drops a connection's cached pages of a file whenever another connection wrote
 * it). The offset lives beside the rows it covers, so they still commit together. */
/* A store's schema version (its user_version). A store of another version is dropped
 * and created anew: it is derived data, and its consumer rebuilds it from the log. */
#define STORE_VERSION 2

static const struct store {
	const char *schema, *file, *tables, *ddl;   /* tables: the derived ones, comma-separated */
} STORES[] = {
	{"royalties", "consumer-royalties.db", "royalty_streams",
	 "CREATE TABLE IF NOT EXISTS royalties.royalty_streams ("
	 "  event_seq INTEGER PRIMARY KEY,"
	 "  event_id TEXT NOT NULL,"
	 "  day TEXT NOT NULL,"
	 "  track_id TEXT NOT NULL,"
	 "  rights_holder TEXT NOT NULL,"
	 "  country TEXT NOT NULL,"
	 "  user_id TEXT NOT NULL,"
	 "  ms_played INTEGER NOT NULL);"
	 "CREATE INDEX IF NOT EXISTS royalties.royalty_streams_by_day ON royalty_streams(day, track_id, country);"},
	{"realtime", "consumer-realtime.db", "rt_minute_plays,rt_listeners,rt_track_stats",
	 "CREATE TABLE IF NOT EXISTS realtime.rt_minute_plays ("
	 "  track_id TEXT NOT NULL,"
	 "  minute INTEGER NOT NULL,"          /* unix minute of the play */
	 "  plays INTEGER NOT NULL,"
	 "  PRIMARY KEY (minute, track_id)) WITHOUT ROWID;"
	 "CREATE TABLE IF NOT EXISTS realtime.rt_listeners ("
	 "  country TEXT NOT NULL,"
	 "  hour INTEGER NOT NULL,"            /* unix hour */
	 "  user_id TEXT NOT NULL,"
	 "  PRIMARY KEY (hour, country, user_id)) WITHOUT ROWID;"
	 "CREATE TABLE IF NOT EXISTS realtime.rt_track_stats ("
	 "  track_id TEXT PRIMARY KEY,"
	 "  plays INTEGER NOT NULL DEFAULT 0,"
	 "  skips INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"},
	{"recommendations", "consumer-recommendations.db", "reco_interactions",
	 "CREATE TABLE IF NOT EXISTS recommendations.reco_interactions ("
	 "  user_id TEXT NOT NULL,"
	 "  track_id TEXT NOT NULL,"
	 "  weight REAL NOT NULL DEFAULT 0,"
	 "  events INTEGER NOT NULL DEFAULT 0,"
	 "  PRIMARY KEY (user_id, track_id)) WITHOUT ROWID;"},
};

#define N_MIGRATIONS ((int)(sizeof(MIGRATIONS) / sizeof(MIGRATIONS[0])))

int db_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		fprintf(stderr, "db: %s\n", msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -EIO;
	}
	return 0;
}

sqlite3_stmt *db_prepare(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "db: cannot prepare \"%s\": %s\n", sql, sqlite3_errmsg(db));
		abort();
	}
	return st;
}

int db_begin(sqlite3 *db)
{
	return db_exec(db, "BEGIN IMMEDIATE");
}

int db_commit(sqlite3 *db)
{
	return db_exec(db, "COMMIT");
}

void db_rollback(sqlite3 *db)
{
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

int db_schema_version(sqlite3 *db)
{
	int v = 0;
	sqlite3_stmt *st = db_prepare(db, "PRAGMA user_version");
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

bool db_integrity_ok(sqlite3 *db)
{
	bool ok = false;
	sqlite3_stmt *st = db_prepare(db, "PRAGMA integrity_check");
	if (sqlite3_step(st) == SQLITE_ROW)
		ok = strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
	sqlite3_finalize(st);
	return ok;
}

static int migrate(sqlite3 *db, char *err, size_t errlen)
{
	for (int v = db_schema_version(db); v < N_MIGRATIONS; v++) {
		if (db_begin(db) != 0)
			goto fail;
		/* Re-read inside the write lock: another process may have migrated meanwhile. */
		if (db_schema_version(db) > v) {
			db_commit(db);
			continue;
		}
		char pragma[64];
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v + 1);
		if (db_exec(db, MIGRATIONS[v]) != 0 || db_exec(db, pragma) != 0) {
			db_rollback(db);
			goto fail;
		}
		if (db_commit(db) != 0)
			goto fail;
		continue;
fail:
		snprintf(err, errlen, "migration %d failed: %s", v + 1, sqlite3_errmsg(db));
		return -EIO;
	}
	return 0;
}

/* SQLite's own busy handler sleeps 1, 2, 5, 10... ms between tries: with several writers
 * (request workers, the event consumers, ingest) the lock is usually free again within
 * tens of microseconds, so the default leaves the cores idle. Poll finely at first, then
 * back off, and give up after about 10 s like busy_timeout(10000) did. */
static int busy_wait(void *ctx, int tries)
{
	(void)ctx;
	long us = tries < 200 ? 50 : tries < 400 ? 500 : 5000;
	long spent = tries < 200 ? tries * 50L : tries < 400 ? 10000L + (tries - 200) * 500L
							    : 110000L + (tries - 400) * 5000L;
	if (spent >= 10000000L)
		return 0;
	struct timespec ts = {0, us * 1000};
	nanosleep(&ts, NULL);
	return 1;
}

/* The user_version a "PRAGMA NAME.user_version" statement reads, or -1. */
static int store_version(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = db_prepare(db, sql);
	int v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
	sqlite3_finalize(st);
	return v;
}

/* Attaches and configures one consumer store, creating its tables (dropping those of
 * another STORE_VERSION) when needed. */
static int attach_store(sqlite3 *db, const char *data_dir, const struct store *s, char *err, size_t errlen)
{
	char *path = xasprintf("%s/%s", data_dir, s->file);
	char *sql = xasprintf("ATTACH DATABASE ?1 AS %s", s->schema);
	sqlite3_stmt *st = db_prepare(db, sql);
	free(sql);
	sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
	sqlite3_finalize(st);
	sql = xasprintf("PRAGMA %1$s.journal_mode=WAL; PRAGMA %1$s.synchronous=NORMAL; PRAGMA %1$s.cache_size=-8192;", s->schema);
	if (rc == 0)
		rc = db_exec(db, sql);
	free(sql);
	sql = xasprintf("PRAGMA %s.user_version", s->schema);
	struct buf ddl = BUF_INIT;
	buf_printf(&ddl, "PRAGMA %s.user_version = %d;", s->schema, STORE_VERSION);
	char *tables = xasprintf("%s,consumer_offsets", s->tables);
	for (char *save = NULL, *t = strtok_r(tables, ",", &save); t; t = strtok_r(NULL, ",", &save))
		buf_printf(&ddl, "DROP TABLE IF EXISTS %s.%s;", s->schema, t);
	free(tables);
	buf_printf(&ddl, "%sCREATE TABLE %s.consumer_offsets ("
			 "  consumer TEXT PRIMARY KEY,"
			 "  committed INTEGER NOT NULL DEFAULT 0,"
			 "  updated_at INTEGER NOT NULL DEFAULT 0,"
			 "  event_id TEXT);",        /* the log's event at committed (eventlog.c) */
		   s->ddl, s->schema);
	/* Rare (a new store, or one of another version), so the write lock of every file
	 * attached so far is acceptable; the version is re-read under it, so of two
	 * connections opening a new store at once only the first creates it and the second
	 * never drops what the first (and its consumer) wrote meanwhile. */
	for (int tries = 0; rc == 0; tries++) {
		int v = store_version(db, sql);
		if (v == STORE_VERSION)
			break;
		if (v < 0 || tries == 5) {
			rc = -EIO;
			break;
		}
		if (db_begin(db) != 0)
			continue;
		v = store_version(db, sql);
		if (v != STORE_VERSION && (v < 0 || db_exec(db, ddl.data) != 0)) {
			db_rollback(db);
			continue;
		}
		if (db_commit(db) != 0)
			db_rollback(db);
	}
	buf_free(&ddl);
	free(sql);
	if (rc != 0)
		snprintf(err, errlen, "cannot open %s: %s", path, sqlite3_errmsg(db));
	free(path);
	return rc;
}

static int open_db(const char *data_dir, bool stores, sqlite3 **ppdb, char *err, size_t errlen)
{
	char *path = xasprintf("%s/encore.db", data_dir);
	sqlite3 *db = NULL;
	int rc = -EIO;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
		goto out;
	}
	sqlite3_busy_handler(db, busy_wait, NULL);
	/* synchronous=NORMAL in WAL mode survives process crashes (kill -9) without losing commits;
	 * only a power loss can roll back the last transactions. */
	if (db_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;") != 0) {
		snprintf(err, errlen, "cannot configure %s: %s", path, sqlite3_errmsg(db));
		goto out;
	}
	/* Migrations run before the stores are attached, so their unqualified names can
	 * only mean encore.db's tables. */
	if (migrate(db, err, errlen) != 0)
		goto out;
	for (size_t i = 0; stores && i < sizeof(STORES) / sizeof(STORES[0]); i++)
		if (attach_store(db, data_dir, &STORES[i], err, errlen) != 0)
			goto out;
	*ppdb = db;
	db = NULL;
	rc = 0;
out:
	if (db)
		sqlite3_close(db);
	free(path);
	return rc;
}

int db_store_clear(sqlite3 *db, const char *schema)
{
	for (size_t i = 0; i < sizeof(STORES) / sizeof(STORES[0]); i++) {
		if (strcmp(STORES[i].schema, schema) != 0)
			continue;
		char *tables = xasprintf("%s,consumer_offsets", STORES[i].tables);
		int rc = 0;
		for (char *save = NULL, *t = strtok_r(tables, ",", &save); t && rc == 0; t = strtok_r(NULL, ",", &save)) {
			char *sql = xasprintf("DELETE FROM %s.%s", schema, t);
			rc = db_exec(db, sql);
			free(sql);
		}
		free(tables);
		return rc;
	}
	return -EINVAL;
}

int db_open(const char *data_dir, sqlite3 **ppdb, char *err, size_t errlen)
{
	return open_db(data_dir, true, ppdb, err, errlen);
}

int db_open_log(const char *data_dir, sqlite3 **ppdb, char *err, size_t errlen)
{
	return open_db(data_dir, false, ppdb, err, errlen);
}

void db_close(sqlite3 *db)
{
	if (db)
		sqlite3_close(db);
}
