/* cache: one table; expired rows are ignored on read and swept on open. A cache is only a
 * cache: every failure here degrades to a miss. */
#include "cache.h"
#include "xmem.h"
#include <errno.h>
#include <stdbool.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct cache {
	sqlite3 *db;
};

static struct cache *open_db(const char *path, bool durable, char *err, size_t errlen)
{
	struct cache *c = xcalloc(1, sizeof(*c));
	if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot open cache %s: %s", path, c->db ? sqlite3_errmsg(c->db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(c->db, 2000);
	/* A handful of small statements: the per-connection lookaside heap (about 120 KB)
	 * buys nothing here. */
	if (!durable)
		sqlite3_db_config(c->db, SQLITE_DBCONFIG_LOOKASIDE, NULL, 0, 0);
	char *msg = NULL;
	/* synchronous comes first: it also governs the syncs of creating the file and the WAL. */
	if (sqlite3_exec(c->db, durable ? "PRAGMA synchronous=NORMAL;" : "PRAGMA synchronous=OFF; PRAGMA cache_size=-256;",
			 NULL, NULL, &msg) != SQLITE_OK ||
	    sqlite3_exec(c->db, "PRAGMA journal_mode=WAL;"
				"CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at INTEGER NOT NULL);"
				"CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY, method TEXT NOT NULL, path TEXT NOT NULL,"
				" body TEXT, created_at INTEGER NOT NULL);",
			 NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "cannot set up cache %s: %s", path, msg ? msg : "?");
		sqlite3_free(msg);
		goto fail;
	}
	char *sweep = xasprintf("DELETE FROM kv WHERE expires_at < %lld", (long long)time(NULL));
	sqlite3_exec(c->db, sweep, NULL, NULL, NULL);
	free(sweep);
	return c;
fail:
	cache_close(c);
	return NULL;
}

struct cache *cache_open(const char *path, char *err, size_t errlen)
{
	return open_db(path, true, err, errlen);
}

struct cache *cache_open_volatile(const char *path, char *err, size_t errlen)
{
	return open_db(path, false, err, errlen);
}

void cache_close(struct cache *c)
{
	if (!c)
		return;
	sqlite3_close(c->db);
	free(c);
}

int cache_put(struct cache *c, const char *key, const char *value, int64_t expires_at)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(c->db, "INSERT OR REPLACE INTO kv(key, value, expires_at) VALUES (?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, expires_at);
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
	sqlite3_finalize(st);
	return rc;
}

char *cache_get(struct cache *c, const char *key, int64_t now)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(c->db, "SELECT value FROM kv WHERE key = ? AND expires_at > ?", -1, &st, NULL) != SQLITE_OK)
		return NULL;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now);
	char *v = NULL;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = xstrdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return v;
}

int cache_outbox_add(struct cache *c, const char *method, const char *path, const char *body)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(c->db, "INSERT INTO outbox(method, path, body, created_at) VALUES (?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, method, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, body, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)time(NULL));
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
	sqlite3_finalize(st);
	return rc;
}

size_t cache_outbox_list(struct cache *c, struct cache_outbox_entry *out, size_t max)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(c->db, "SELECT id, method, path, body FROM outbox ORDER BY id LIMIT ?", -1, &st, NULL) != SQLITE_OK)
		return 0;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)max);
	size_t n = 0;
	while (n < max && sqlite3_step(st) == SQLITE_ROW) {
		const char *body = (const char *)sqlite3_column_text(st, 3);
		out[n].id = sqlite3_column_int64(st, 0);
		out[n].method = xstrdup((const char *)sqlite3_column_text(st, 1));
		out[n].path = xstrdup((const char *)sqlite3_column_text(st, 2));
		out[n].body = body ? xstrdup(body) : NULL;
		n++;
	}
	sqlite3_finalize(st);
	return n;
}

int cache_outbox_remove(struct cache *c, int64_t id)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(c->db, "DELETE FROM outbox WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
	sqlite3_finalize(st);
	return rc;
}

void cache_outbox_entry_free(struct cache_outbox_entry *e)
{
	free(e->method);
	free(e->path);
	free(e->body);
	memset(e, 0, sizeof(*e));
}
