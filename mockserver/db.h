/* db: opening encored's SQLite database and bringing its schema up to date.
 * Each thread opens its own connection; WAL lets readers run beside the one writer. */
#ifndef ENCORE_DB_H
#define ENCORE_DB_H
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Opens (creating if needed) DIR/encore.db in WAL mode with a busy timeout and runs
 * pending migrations, then attaches the event consumers' stores (DIR/consumer-NAME.db as
 * schema NAME: royalties, realtime, recommendations; see eventlog.h), creating them if
 * needed. BEGIN IMMEDIATE (db_begin) write-locks every attached file: a transaction that
 * should lock one store only starts with "BEGIN" and a write to that store. Returns 0 or
 * -EIO with a message in err. Close with db_close. */
int db_open(const char *data_dir, sqlite3 **ppdb, char *err, size_t errlen);
/* As db_open without the consumer stores: for the event appender, whose BEGIN IMMEDIATE
 * must lock encore.db alone. */
int db_open_log(const char *data_dir, sqlite3 **ppdb, char *err, size_t errlen);
void db_close(sqlite3 *db);
/* Deletes every row of consumer store schema (its derived tables and its offsets), inside
 * the caller's transaction. 0, -EIO, or -EINVAL for an unknown store. */
int db_store_clear(sqlite3 *db, const char *schema);
/* The schema version after migrations. */
int db_schema_version(sqlite3 *db);
/* Runs PRAGMA integrity_check; true when it answers "ok". */
bool db_integrity_ok(sqlite3 *db);
/* Executes sql with no result rows; returns 0 or -EIO (message logged to stderr). */
int db_exec(sqlite3 *db, const char *sql);
/* Prepares sql or aborts: statements are compile-time constants, so failure is a bug. */
sqlite3_stmt *db_prepare(sqlite3 *db, const char *sql);
/* Runs BEGIN IMMEDIATE, retried while the database is busy. 0 or -EIO. */
int db_begin(sqlite3 *db);
int db_commit(sqlite3 *db);
void db_rollback(sqlite3 *db);

#endif
