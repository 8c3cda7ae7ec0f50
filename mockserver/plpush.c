/* plpush: the subscriber table is shared between the service thread (connections come and
 * go, subscribe) and workers (publish), so it sits under one mutex; publishing only queues
 * through http_ws_send, so the lock is held for microseconds. Subscription checks read
 * SQLite on the service thread through the hub's own connection: a point lookup on a WAL
 * database, which never waits for the writer. */
#include "plpush.h"
#include "db.h"
#include "id.h"
#include "json.h"
#include "jwt.h"
#include "playlists.h"
#include "xmem.h"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct conn {
	uint64_t id;
	bool authed;
	char user[64];
	char subs[PLHUB_MAX_SUBSCRIPTIONS][ID_LEN + 1];
	int nsubs;
};

struct plhub {
	const struct keyring *keys;
	struct playlists *playlists;
	char *data_dir;
	sqlite3 *db;               /* service thread only; opened on first subscribe */
	struct http_server *hs;
	pthread_mutex_t lock;
	struct conn **conns;
	size_t n, cap;
};

struct plhub *plhub_new(const struct keyring *jwt_keys, struct playlists *playlists, const char *data_dir)
{
	struct plhub *h = xcalloc(1, sizeof(*h));
	h->keys = jwt_keys;
	h->playlists = playlists;
	h->data_dir = xstrdup(data_dir);
	pthread_mutex_init(&h->lock, NULL);
	return h;
}

void plhub_free(struct plhub *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n; i++)
		free(h->conns[i]);
	free(h->conns);
	db_close(h->db);
	free(h->data_dir);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

void plhub_attach(struct plhub *h, struct http_server *hs)
{
	h->hs = hs;
}

/* Caller holds the lock. */
static struct conn *find(struct plhub *h, uint64_t id)
{
	for (size_t i = 0; i < h->n; i++)
		if (h->conns[i]->id == id)
			return h->conns[i];
	return NULL;
}

static void send_json(struct plhub *h, uint64_t conn, struct jw *w)
{
	char *s = jw_finish(w);
	http_ws_send(h->hs, conn, s, strlen(s));
	free(s);
}

static void send_error(struct plhub *h, uint64_t conn, const char *playlist, int status, const char *msg)
{
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "type", "error");
	if (playlist)
		jw_kstr(&w, "playlist", playlist);
	jw_kint(&w, "status", status);
	jw_kstr(&w, "message", msg);
	jw_obj_end(&w);
	send_json(h, conn, &w);
}

/* Verifies token; on success marks the connection and answers auth_ok, else closes it. */
static void authenticate(struct plhub *h, uint64_t conn, const char *token)
{
	struct jwt_claims cl;
	enum jwt_err e = token && strlen(token) < JWT_MAX_LEN ? jwt_verify(h->keys, token, (int64_t)time(NULL), &cl) : JWT_MALFORMED;
	if (e != JWT_OK) {
		http_ws_close(h->hs, conn, PLHUB_CLOSE_AUTH, e == JWT_EXPIRED ? "token expired" : "invalid token");
		return;
	}
	pthread_mutex_lock(&h->lock);
	struct conn *c = find(h, conn);
	if (c) {
		c->authed = true;
		snprintf(c->user, sizeof(c->user), "%s", cl.sub);
	}
	pthread_mutex_unlock(&h->lock);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "type", "auth_ok");
	jw_kstr(&w, "user", cl.sub);
	jw_obj_end(&w);
	send_json(h, conn, &w);
}

static void on_open(void *ctx, uint64_t conn, const char *token)
{
	struct plhub *h = ctx;
	struct conn *c = xcalloc(1, sizeof(*c));
	c->id = conn;
	pthread_mutex_lock(&h->lock);
	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 64;
		h->conns = xrealloc(h->conns, h->cap * sizeof(*h->conns));
	}
	h->conns[h->n++] = c;
	pthread_mutex_unlock(&h->lock);
	if (token)
		authenticate(h, conn, token);
}

static void on_close(void *ctx, uint64_t conn)
{
	struct plhub *h = ctx;
	pthread_mutex_lock(&h->lock);
	for (size_t i = 0; i < h->n; i++)
		if (h->conns[i]->id == conn) {
			free(h->conns[i]);
			h->conns[i] = h->conns[--h->n];
			break;
		}
	pthread_mutex_unlock(&h->lock);
}

static void subscribe(struct plhub *h, uint64_t conn, const char *playlist)
{
	char user[64];
	pthread_mutex_lock(&h->lock);
	struct conn *c = find(h, conn);
	if (!c || !c->authed) {
		pthread_mutex_unlock(&h->lock);
		send_error(h, conn, playlist, 401, "authenticate first: {\"type\":\"auth\",\"token\":JWT}");
		return;
	}
	bool already = false;
	for (int i = 0; i < c->nsubs; i++)
		already = already || strcmp(c->subs[i], playlist) == 0;
	if (!already && c->nsubs >= PLHUB_MAX_SUBSCRIPTIONS) {
		pthread_mutex_unlock(&h->lock);
		send_error(h, conn, playlist, 400, "too many subscriptions on one connection");
		return;
	}
	/* Subscribe before reading the snapshot, so no change falls between the two; a push
	 * may then precede "subscribed", and clients skip versions they already have. */
	if (!already)
		snprintf(c->subs[c->nsubs++], ID_LEN + 1, "%s", playlist);
	snprintf(user, sizeof(user), "%s", c->user);
	pthread_mutex_unlock(&h->lock);

	char err[256], snap[SEQ_CURSOR_MAX];
	int rc = -EIO;
	if (!h->db && db_open(h->data_dir, &h->db, err, sizeof(err)) != 0)
		h->db = NULL;
	if (h->db)
		rc = playlists_subscribe_check(h->playlists, h->db, playlist, user, snap);
	if (rc != 0) {
		pthread_mutex_lock(&h->lock);
		c = find(h, conn);
		for (int i = 0; c && i < c->nsubs; i++)
			if (strcmp(c->subs[i], playlist) == 0) {
				memcpy(c->subs[i], c->subs[--c->nsubs], ID_LEN + 1);
				break;
			}
		pthread_mutex_unlock(&h->lock);
		send_error(h, conn, playlist, rc == -ENOENT ? 404 : 503, rc == -ENOENT ? "playlist not found" : "database unavailable");
		return;
	}
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "type", "subscribed");
	jw_kstr(&w, "playlist", playlist);
	jw_kstr(&w, "snapshot_id", snap);
	jw_obj_end(&w);
	send_json(h, conn, &w);
}

static void unsubscribe(struct plhub *h, uint64_t conn, const char *playlist)
{
	pthread_mutex_lock(&h->lock);
	struct conn *c = find(h, conn);
	for (int i = 0; c && i < c->nsubs; i++)
		if (strcmp(c->subs[i], playlist) == 0) {
			memcpy(c->subs[i], c->subs[--c->nsubs], ID_LEN + 1);
			break;
		}
	pthread_mutex_unlock(&h->lock);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "type", "unsubscribed");
	jw_kstr(&w, "playlist", playlist);
	jw_obj_end(&w);
	send_json(h, conn, &w);
}

static void on_message(void *ctx, uint64_t conn, const char *text, size_t len)
{
	struct plhub *h = ctx;
	(void)len;
	char err[128];
	yajl_val v = json_parse(text, err, sizeof(err));
	if (!v || !YAJL_IS_OBJECT(v)) {
		send_error(h, conn, NULL, 400, "messages must be JSON objects");
		goto out;
	}
	const char *type = json_get_str(v, "type");
	if (!type) {
		send_error(h, conn, NULL, 400, "missing \"type\"");
	} else if (strcmp(type, "auth") == 0) {
		authenticate(h, conn, json_get_str(v, "token"));
	} else if (strcmp(type, "subscribe") == 0 || strcmp(type, "unsubscribe") == 0) {
		const char *p = json_get_str(v, "playlist");
		if (!p || !id_valid(p))
			send_error(h, conn, NULL, 400, "\"playlist\" must be a playlist id");
		else if (type[0] == 's')
			subscribe(h, conn, p);
		else
			unsubscribe(h, conn, p);
	} else if (strcmp(type, "ping") == 0) {
		struct jw w;
		jw_init(&w);
		jw_obj(&w);
		jw_kstr(&w, "type", "pong");
		jw_obj_end(&w);
		send_json(h, conn, &w);
	} else {
		send_error(h, conn, NULL, 400, "unknown message type");
	}
out:
	yajl_tree_free(v);
}

struct http_ws_app plhub_ws_app(struct plhub *h)
{
	struct http_ws_app app = {.ctx = h, .open = on_open, .message = on_message, .close = on_close};
	return app;
}

int plhub_publish(struct plhub *h, const char *playlist, const char *json)
{
	if (!h->hs)
		return 0;
	size_t len = strlen(json);
	int n = 0;
	pthread_mutex_lock(&h->lock);
	for (size_t i = 0; i < h->n; i++)
		for (int j = 0; j < h->conns[i]->nsubs; j++)
			if (strcmp(h->conns[i]->subs[j], playlist) == 0) {
				http_ws_send(h->hs, h->conns[i]->id, json, len);
				n++;
				break;
			}
	pthread_mutex_unlock(&h->lock);
	return n;
}

int plhub_subscribers(struct plhub *h, const char *playlist)
{
	int n = 0;
	pthread_mutex_lock(&h->lock);
	for (size_t i = 0; i < h->n; i++)
		for (int j = 0; j < h->conns[i]->nsubs; j++)
			if (strcmp(h->conns[i]->subs[j], playlist) == 0) {
				n++;
				break;
			}
	pthread_mutex_unlock(&h->lock);
	return n;
}
