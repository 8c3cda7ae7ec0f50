/* session: the stored login (server, user, tokens), kept in DATA_DIR/session.json.
 * It lives in the data dir rather than the config dir because it is machine-written
 * state holding secrets, and config dirs are commonly versioned in dotfile repos.
 * Writes are atomic (temp file + rename) and the file is always mode 0600. */
#ifndef ENCORE_SESSION_H
#define ENCORE_SESSION_H
#include "api.h"

#define SESSION_FILE "session.json"

struct session;

/* A session with copies of the given fields (refresh may be NULL). Never NULL. */
struct session *session_new(const char *server, const char *username, const char *access_token,
			    const char *refresh_token, long long expires_at);
void session_free(struct session *s);

/* Reads path. Returns NULL with *err = -ENOENT when there is no session file, -EINVAL
 * when it is malformed or lacks a field, or another -errno from open/read. */
struct session *session_load(const char *path, int *err);
/* Writes s to path atomically with mode 0600 (the directory must exist).
 * Readers see either the old or the new file, never a torn one. Returns 0 or -errno. */
int session_save(struct session *s, const char *path);
/* Deletes the file at path. Returns 0, or -ENOENT when there was none, or -errno. */
int session_remove(const char *path);
/* The JSON text session_save writes (caller frees). */
char *session_to_json(struct session *s);

/* Accessors: borrowed strings valid until the next change to s. */
const char *session_server(const struct session *s);
const char *session_username(const struct session *s);
const char *session_access_token(const struct session *s);
const char *session_refresh_token(const struct session *s);  /* may be NULL */
long long session_expires_at(const struct session *s);

/* Logs in with the password grant on api. Returns 0 and a new session in *out (caller
 * frees), -EACCES for bad credentials, or another -errno; err explains failures. The
 * api's tokens are installed on success. Nothing is written to disk. */
int session_login(struct api *api, const char *user, const char *password,
		  struct session **out, char *err, size_t errlen);

/* Installs s's tokens on api and, when path is non-NULL, makes api persist refreshed
 * tokens to path through s. s must outlive api's use of it. Thread-safe with respect
 * to concurrent refreshes. */
void session_attach(struct session *s, struct api *api, const char *path);

#endif
