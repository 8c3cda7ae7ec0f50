/* users: accounts, passwords (argon2id via libsodium) and refresh tokens. */
#ifndef ENCORE_USERS_H
#define ENCORE_USERS_H
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>

struct user {
	char id[64];
	char display_name[128];
	char tier[16];
	char country[4];
	bool admin;
	bool explicit_ok;
};

/* Validates and creates a user. Returns 0, -EEXIST if taken, -EINVAL with a reason in err. */
int users_add(sqlite3 *db, const char *id, const char *password, const char *tier,
	      const char *country, bool admin, char *err, size_t errlen);
/* Loads a user by id. 0 or -ENOENT. */
int users_get(sqlite3 *db, const char *id, struct user *out);
/* Checks a password in constant time per hash; 0 when it matches, -EACCES otherwise (also for unknown users). */
int users_check_password(sqlite3 *db, const char *id, const char *password, struct user *out);
/* Updates tier and/or country (NULL keeps). 0, -ENOENT or -EINVAL. */
int users_update(sqlite3 *db, const char *id, const char *tier, const char *country, char *err, size_t errlen);
/* Issues a refresh token for id (caller frees the returned token). NULL on database error. */
char *users_new_refresh(sqlite3 *db, const char *id, int ttl_s);
/* Consumes a refresh token (one use: rotation) and returns its user id in out. 0 or -EACCES. */
int users_take_refresh(sqlite3 *db, const char *token, char out_id[64]);
bool users_valid_country(const char *c);
/* 1 when the user allows explicit content, 0 when filtered, -ENOENT for an unknown user. */
int users_explicit_ok(sqlite3 *db, const char *id);
/* Sets the explicit-content setting. 0 or -ENOENT. */
int users_set_explicit_ok(sqlite3 *db, const char *id, bool ok);

#endif
