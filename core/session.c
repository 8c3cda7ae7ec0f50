/* session: stored login tokens. */
#include "session.h"
#include "json.h"
#include "xmem.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SESSION_MAX_BYTES (64 * 1024)

struct session {
	pthread_mutex_t lock;  /* refresh callbacks may run on any request thread */
	char *server;
	char *username;
	char *access;
	char *refresh;
	long long expires_at;
	char *path;            /* where refreshed tokens are persisted; NULL for none */
};

struct session *session_new(const char *server, const char *username, const char *access_token,
			    const char *refresh_token, long long expires_at)
{
	struct session *s = xcalloc(1, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->server = xstrdup(server ? server : "");
	s->username = xstrdup(username ? username : "");
	s->access = xstrdup(access_token ? access_token : "");
	s->refresh = refresh_token ? xstrdup(refresh_token) : NULL;
	s->expires_at = expires_at;
	return s;
}

static void free_secret(char *p)
{
	if (p) {
		explicit_bzero(p, strlen(p));
		free(p);
	}
}

void session_free(struct session *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s->server);
	free(s->username);
	free_secret(s->access);
	free_secret(s->refresh);
	free(s->path);
	free(s);
}

const char *session_server(const struct session *s) { return s->server; }
const char *session_username(const struct session *s) { return s->username; }
const char *session_access_token(const struct session *s) { return s->access; }
const char *session_refresh_token(const struct session *s) { return s->refresh; }
long long session_expires_at(const struct session *s) { return s->expires_at; }

static char *to_json_locked(const struct session *s)
{
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kint(&w, "version", 1);
	jw_kstr(&w, "server", s->server);
	jw_kstr(&w, "username", s->username);
	jw_kstr(&w, "access_token", s->access);
	jw_kstr(&w, "refresh_token", s->refresh);
	jw_kint(&w, "expires_at", s->expires_at);
	jw_obj_end(&w);
	char *out = jw_finish(&w);
	jw_free(&w);
	return out;
}

char *session_to_json(struct session *s)
{
	pthread_mutex_lock(&s->lock);
	char *j = to_json_locked(s);
	pthread_mutex_unlock(&s->lock);
	return j;
}

static int read_file(const char *path, char **out)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct buf b = BUF_INIT;
	char tmp[4096];
	int rc = 0;
	for (;;) {
		ssize_t n = read(fd, tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		buf_append(&b, tmp, (size_t)n);
		if (b.len > SESSION_MAX_BYTES) {
			rc = -EFBIG;
			break;
		}
	}
	close(fd);
	if (rc < 0) {
		buf_free(&b);
		return rc;
	}
	*out = buf_steal(&b);
	return 0;
}

struct session *session_load(const char *path, int *err)
{
	int dummy;
	if (!err)
		err = &dummy;
	char *text = NULL;
	int rc = read_file(path, &text);
	if (rc < 0) {
		*err = rc;
		return NULL;
	}
	char perr[128];
	yajl_val root = json_parse(text, perr, sizeof(perr));
	free_secret(text);
	struct session *s = NULL;
	long long exp = 0;
	const char *server = json_get_str(root, "server");
	const char *user = json_get_str(root, "username");
	const char *access = json_get_str(root, "access_token");
	const char *refresh = json_get_str(root, "refresh_token");
	if (!root || !server || !user || !access || !*access || !json_get_int(root, "expires_at", &exp)) {
		*err = -EINVAL;
		goto out;
	}
	s = session_new(server, user, access, refresh, exp);
	*err = 0;
out:
	yajl_tree_free(root);
	return s;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Atomic replace: a crash at any point leaves either the old file or the new one. */
static int save_text(const char *path, const char *text)
{
	char *tmp = xasprintf("%s.tmp.XXXXXX", path);
	char *dircopy = xstrdup(path);
	int rc = 0;
	/* mkstemp creates 0600 regardless of umask, so the secret is never world-readable. */
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	if (fchmod(fd, 0600) != 0 || (rc = write_all(fd, text, strlen(text))) < 0 || fsync(fd) != 0) {
		if (!rc)
			rc = -errno;
		close(fd);
		unlink(tmp);
		goto out;
	}
	if (close(fd) != 0) {
		rc = -errno;
		unlink(tmp);
		goto out;
	}
	if (rename(tmp, path) != 0) {
		rc = -errno;
		unlink(tmp);
		goto out;
	}
	/* Make the rename itself durable. */
	int dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
out:
	free(tmp);
	free(dircopy);
	return rc;
}

int session_save(struct session *s, const char *path)
{
	pthread_mutex_lock(&s->lock);
	char *text = to_json_locked(s);
	int rc = save_text(path, text);
	pthread_mutex_unlock(&s->lock);
	free_secret(text);
	return rc;
}

int session_remove(const char *path)
{
	return unlink(path) == 0 ? 0 : -errno;
}

int session_login(struct api *api, const char *user, const char *password,
		  struct session **out, char *err, size_t errlen)
{
	struct api_token tok;
	*out = NULL;
	int rc = api_login(api, user, password, &tok, err, errlen);
	if (rc < 0)
		return rc;
	*out = session_new(api_server_list(api), user, tok.access_token, tok.refresh_token, tok.expires_at);
	api_set_tokens(api, tok.access_token, tok.refresh_token);
	api_token_free(&tok);
	return 0;
}

static void on_refreshed(void *ctx, const struct api_token *tok)
{
	struct session *s = ctx;
	pthread_mutex_lock(&s->lock);
	free_secret(s->access);
	s->access = xstrdup(tok->access_token);
	if (tok->refresh_token) {
		free_secret(s->refresh);
		s->refresh = xstrdup(tok->refresh_token);
	}
	s->expires_at = tok->expires_at;
	char *path = s->path ? xstrdup(s->path) : NULL;
	pthread_mutex_unlock(&s->lock);
	/* Persisting is best effort: the in-memory tokens still work for this run. */
	if (path)
		session_save(s, path);
	free(path);
}

void session_attach(struct session *s, struct api *api, const char *path)
{
	pthread_mutex_lock(&s->lock);
	free(s->path);
	s->path = path ? xstrdup(path) : NULL;
	api_set_tokens(api, s->access, s->refresh);
	pthread_mutex_unlock(&s->lock);
	api_set_token_callback(api, on_refreshed, s);
}
