/* users: refresh tokens are stored only as hashes, so a stolen database copy cannot
 * mint sessions; passwords as argon2id strings with libsodium's interactive limits. */
#include "users.h"
#include "b64.h"
#include "db.h"
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A hash of a password nobody has, checked for unknown users so both paths cost the same.
 * Padded to crypto_pwhash_STRBYTES because libsodium reads that many bytes. */
static const char DUMMY_HASH[crypto_pwhash_STRBYTES] =
	"$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$"
	"Rbm6CRMsTPj5Cn6tQnqxdSKX0r9o5Ew0wAqkTp7OeNA";

bool users_valid_country(const char *c)
{
	return c && strlen(c) == 2 && c[0] >= 'A' && c[0] <= 'Z' && c[1] >= 'A' && c[1] <= 'Z';
}

static bool valid_id(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > 32)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = id[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.'))
			return false;
	}
	return true;
}

static bool valid_tier(const char *t)
{
	return t && (strcmp(t, "free") == 0 || strcmp(t, "premium") == 0);
}

int users_add(sqlite3 *db, const char *id, const char *password, const char *tier,
	      const char *country, bool admin, char *err, size_t errlen)
{
	if (!id || !valid_id(id)) {
		snprintf(err, errlen, "user name must be 1-32 characters of a-z, 0-9, '_', '-', '.'");
		return -EINVAL;
	}
	if (!password || strlen(password) < 4 || strlen(password) > 256) {
		snprintf(err, errlen, "password must be 4 to 256 characters");
		return -EINVAL;
	}
	if (!valid_tier(tier)) {
		snprintf(err, errlen, "tier must be 'free' or 'premium'");
		return -EINVAL;
	}
	if (!users_valid_country(country)) {
		snprintf(err, errlen, "country must be a two-letter ISO code such as SE");
		return -EINVAL;
	}
	char hash[crypto_pwhash_STRBYTES];
	if (crypto_pwhash_str(hash, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
			      crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
		snprintf(err, errlen, "out of memory hashing the password");
		return -ENOMEM;
	}
	sqlite3_stmt *st = db_prepare(db, "INSERT INTO users(id, display_name, password_hash, tier, country, is_admin, created_at)"
					  " VALUES (?, ?, ?, ?, ?, ?, ?)");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, tier, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, country, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 6, admin);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)time(NULL));
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_CONSTRAINT) {
		snprintf(err, errlen, "user '%s' already exists", id);
		return -EEXIST;
	}
	if (rc != SQLITE_DONE) {
		snprintf(err, errlen, "database error: %s", sqlite3_errmsg(db));
		return -EIO;
	}
	return 0;
}

static void row_to_user(sqlite3_stmt *st, struct user *u)
{
	memset(u, 0, sizeof(*u));
	snprintf(u->id, sizeof(u->id), "%s", (const char *)sqlite3_column_text(st, 0));
	snprintf(u->display_name, sizeof(u->display_name), "%s", (const char *)sqlite3_column_text(st, 1));
	snprintf(u->tier, sizeof(u->tier), "%s", (const char *)sqlite3_column_text(st, 2));
	snprintf(u->country, sizeof(u->country), "%s", (const char *)sqlite3_column_text(st, 3));
	u->admin = sqlite3_column_int(st, 4);
	u->explicit_ok = sqlite3_column_int(st, 5);
}

int users_get(sqlite3 *db, const char *id, struct user *out)
{
	sqlite3_stmt *st = db_prepare(db, "SELECT id, display_name, tier, country, is_admin, explicit_ok FROM users WHERE id = ?");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int rc = -ENOENT;
	if (sqlite3_step(st) == SQLITE_ROW) {
		row_to_user(st, out);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

int users_check_password(sqlite3 *db, const char *id, const char *password, struct user *out)
{
	sqlite3_stmt *st = db_prepare(db, "SELECT id, display_name, tier, country, is_admin, explicit_ok, password_hash FROM users WHERE id = ?");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int rc = -EACCES;
	if (sqlite3_step(st) == SQLITE_ROW) {
		row_to_user(st, out);
		/* libsodium may read a full crypto_pwhash_STRBYTES; SQLite's copy can be shorter. */
		char hash[crypto_pwhash_STRBYTES] = {0};
		snprintf(hash, sizeof(hash), "%s", (const char *)sqlite3_column_text(st, 6));
		if (crypto_pwhash_str_verify(hash, password, strlen(password)) == 0)
			rc = 0;
	} else {
		if (crypto_pwhash_str_verify(DUMMY_HASH, password, strlen(password)) == 0)
			rc = -EACCES; /* unreachable in practice; keeps the call's cost */
	}
	sqlite3_finalize(st);
	return rc;
}

int users_update(sqlite3 *db, const char *id, const char *tier, const char *country, char *err, size_t errlen)
{
	if (tier && !valid_tier(tier)) {
		snprintf(err, errlen, "tier must be 'free' or 'premium'");
		return -EINVAL;
	}
	if (country && !users_valid_country(country)) {
		snprintf(err, errlen, "country must be a two-letter ISO code such as SE");
		return -EINVAL;
	}
	sqlite3_stmt *st = db_prepare(db, "UPDATE users SET tier = coalesce(?, tier), country = coalesce(?, country) WHERE id = ?");
	sqlite3_bind_text(st, 1, tier, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, country, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		snprintf(err, errlen, "database error: %s", sqlite3_errmsg(db));
		return -EIO;
	}
	if (sqlite3_changes(db) == 0) {
		snprintf(err, errlen, "no user '%s'", id);
		return -ENOENT;
	}
	return 0;
}

static void token_hash(const char *token, char hex[65])
{
	unsigned char h[32];
	crypto_generichash(h, sizeof(h), (const unsigned char *)token, strlen(token), NULL, 0);
	sodium_bin2hex(hex, 65, h, sizeof(h));
}

char *users_new_refresh(sqlite3 *db, const char *id, int ttl_s)
{
	unsigned char raw[32];
	randombytes_buf(raw, sizeof(raw));
	char *token = b64url_encode(raw, sizeof(raw));
	char hex[65];
	token_hash(token, hex);
	sqlite3_stmt *st = db_prepare(db, "INSERT INTO refresh_tokens(token_hash, user_id, expires_at) VALUES (?, ?, ?)");
	sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL) + ttl_s);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(token);
		return NULL;
	}
	return token;
}

int users_take_refresh(sqlite3 *db, const char *token, char out_id[64])
{
	char hex[65];
	token_hash(token, hex);
	/* DELETE ... RETURNING makes the token single-use even under concurrent refreshes. */
	sqlite3_stmt *st = db_prepare(db, "DELETE FROM refresh_tokens WHERE token_hash = ? RETURNING user_id, expires_at");
	sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
	int rc = -EACCES;
	if (sqlite3_step(st) == SQLITE_ROW) {
		if (sqlite3_column_int64(st, 1) > (sqlite3_int64)time(NULL)) {
			snprintf(out_id, 64, "%s", (const char *)sqlite3_column_text(st, 0));
			rc = 0;
		}
	}
	sqlite3_finalize(st);
	return rc;
}

int users_explicit_ok(sqlite3 *db, const char *id)
{
	sqlite3_stmt *st = db_prepare(db, "SELECT explicit_ok FROM users WHERE id = ?");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) != 0 : -ENOENT;
	sqlite3_finalize(st);
	return rc;
}

int users_set_explicit_ok(sqlite3 *db, const char *id, bool ok)
{
	sqlite3_stmt *st = db_prepare(db, "UPDATE users SET explicit_ok = ? WHERE id = ?");
	sqlite3_bind_int(st, 1, ok);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	sqlite3_step(st);
	sqlite3_finalize(st);
	return sqlite3_changes(db) ? 0 : -ENOENT;
}
