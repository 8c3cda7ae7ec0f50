/* connect: the hub's state lives in memory, loaded per user on first touch from SQLite and
 * written back on every change, so a restarted server answers with the last state and
 * devices simply re-register. Versions only move forward: every accepted command and every
 * state report bumps it, and a command based on an older version is refused (409) rather
 * than applied over a change its sender had not seen.
 *
 * Transfer is two-phase: the target gets "prepare" (load and buffer at the current
 * position, stay paused); once it answers "prepared" (or after CONNECT_PREPARE_TIMEOUT_MS,
 * or at once for a device without the prepare_ack capability) the source gets "stop"; the
 * source's stop report carries the exact position it stopped at, and only then is the
 * target told to "start" there. The source plays on while the target buffers. */
#include "connect.h"
#include "db.h"
#include "json.h"
#include "jwt.h"
#include "server.h"
#include "xmem.h"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct cdev {
	char id[64], name[64], type[24], caps[160];
	int volume;
	uint64_t conn;            /* 0 when offline */
};

struct cstate {
	char context[128], uri[64], repeat[8];
	char (*queue)[64];
	int nqueue, queue_index;
	long long position_ms, duration_ms;
	bool playing, shuffle;
	int volume;
	uint64_t version;
	int64_t updated_ms;       /* wall clock of position_ms */
};

struct cuser {
	char user[64];
	struct cdev devs[CONNECT_MAX_DEVICES];
	int ndev;
	char active[64];
	struct cstate st;
	char xfer_target[64];     /* pending transfer, "" when none */
	bool xfer_play;
	bool xfer_stopping;       /* the source was told to stop (else: waiting for "prepared") */
	int64_t xfer_at;          /* when the current phase began */
};

struct cconn {
	uint64_t id;
	bool authed;
	char user[64];
	char device[64];
	double tokens;
	int64_t last_ms;
	int dropped;
	bool warned;
};

struct connhub {
	const struct keyring *keys;
	char *data_dir;
	sqlite3 *db;
	struct http_server *hs;
	struct http_ws_app inner;
	pthread_mutex_t lock;
	struct cuser **users;
	size_t nusers, capusers;
	struct cconn **conns;
	size_t nconns, capconns;
};

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct connhub *connhub_new(const struct keyring *jwt_keys, const char *data_dir)
{
	struct connhub *h = xcalloc(1, sizeof(*h));
	h->keys = jwt_keys;
	h->data_dir = xstrdup(data_dir);
	pthread_mutex_init(&h->lock, NULL);
	return h;
}

void connhub_free(struct connhub *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->nusers; i++) {
		free(h->users[i]->st.queue);
		free(h->users[i]);
	}
	free(h->users);
	for (size_t i = 0; i < h->nconns; i++)
		free(h->conns[i]);
	free(h->conns);
	db_close(h->db);
	free(h->data_dir);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

void connhub_attach(struct connhub *h, struct http_server *hs)
{
	h->hs = hs;
}

/* ---- persistence (caller holds the lock) ---- */

static sqlite3 *hub_db(struct connhub *h)
{
	char err[256];
	if (!h->db && db_open(h->data_dir, &h->db, err, sizeof(err)) != 0) {
		fprintf(stderr, "connect: %s\n", err);
		h->db = NULL;
	}
	return h->db;
}

static void queue_to_json(const struct cstate *st, struct buf *b)
{
	struct jw w;
	jw_init(&w);
	jw_arr(&w);
	for (int i = 0; i < st->nqueue; i++)
		jw_str(&w, st->queue[i]);
	jw_arr_end(&w);
	char *s = jw_finish(&w);
	buf_printf(b, "%s", s);
	free(s);
}

static void save_state(struct connhub *h, struct cuser *u)
{
	sqlite3 *db = hub_db(h);
	if (!db)
		return;
	struct buf q = BUF_INIT;
	queue_to_json(&u->st, &q);
	sqlite3_stmt *st = db_prepare(db,
		"INSERT OR REPLACE INTO connect_state (user_id, active_device, context_uri, track_uri, queue, queue_index,"
		" position_ms, duration_ms, is_playing, shuffle, repeat, volume, version, updated_at)"
		" VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
	sqlite3_bind_text(st, 1, u->user, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, u->active, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, u->st.context, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, u->st.uri, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, q.data ? q.data : "[]", -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 6, u->st.queue_index);
	sqlite3_bind_int64(st, 7, u->st.position_ms);
	sqlite3_bind_int64(st, 8, u->st.duration_ms);
	sqlite3_bind_int(st, 9, u->st.playing);
	sqlite3_bind_int(st, 10, u->st.shuffle);
	sqlite3_bind_text(st, 11, u->st.repeat, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 12, u->st.volume);
	sqlite3_bind_int64(st, 13, (sqlite3_int64)u->st.version);
	sqlite3_bind_int64(st, 14, u->st.updated_ms);
	if (sqlite3_step(st) != SQLITE_DONE)
		fprintf(stderr, "connect: saving state: %s\n", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	buf_free(&q);
}

static void save_device(struct connhub *h, struct cuser *u, const struct cdev *d)
{
	sqlite3 *db = hub_db(h);
	if (!db)
		return;
	sqlite3_stmt *st = db_prepare(db, "INSERT OR REPLACE INTO connect_devices (user_id, device_id, name, type, volume,"
					  " capabilities, last_seen) VALUES (?,?,?,?,?,?,?)");
	sqlite3_bind_text(st, 1, u->user, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, d->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, d->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, d->type, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, d->volume);
	sqlite3_bind_text(st, 6, d->caps, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, wall_ms());
	if (sqlite3_step(st) != SQLITE_DONE)
		fprintf(stderr, "connect: saving device: %s\n", sqlite3_errmsg(db));
	sqlite3_finalize(st);
}

static void set_queue(struct cstate *st, yajl_val arr)
{
	st->nqueue = 0;
	if (!arr || !YAJL_IS_ARRAY(arr))
		return;
	if (!st->queue)
		st->queue = xcalloc(CONNECT_MAX_QUEUE, sizeof(*st->queue));
	for (size_t i = 0; i < arr->u.array.len && st->nqueue < CONNECT_MAX_QUEUE; i++) {
		const char *s = YAJL_GET_STRING(arr->u.array.values[i]);
		if (s && strlen(s) < 64)
			snprintf(st->queue[st->nqueue++], 64, "%s", s);
	}
}

static void copy_text(char *dst, size_t n, const unsigned char *src)
{
	snprintf(dst, n, "%s", src ? (const char *)src : "");
}

static void load_user(struct connhub *h, struct cuser *u)
{
	sqlite3 *db = hub_db(h);
	if (!db)
		return;
	sqlite3_stmt *st = db_prepare(db, "SELECT device_id, name, type, volume, capabilities FROM connect_devices"
					  " WHERE user_id = ? ORDER BY last_seen DESC LIMIT 32");
	sqlite3_bind_text(st, 1, u->user, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW && u->ndev < CONNECT_MAX_DEVICES) {
		struct cdev *d = &u->devs[u->ndev++];
		copy_text(d->id, sizeof(d->id), sqlite3_column_text(st, 0));
		copy_text(d->name, sizeof(d->name), sqlite3_column_text(st, 1));
		copy_text(d->type, sizeof(d->type), sqlite3_column_text(st, 2));
		d->volume = sqlite3_column_int(st, 3);
		copy_text(d->caps, sizeof(d->caps), sqlite3_column_text(st, 4));
	}
	sqlite3_finalize(st);
	st = db_prepare(db, "SELECT active_device, context_uri, track_uri, queue, queue_index, position_ms, duration_ms,"
			    " is_playing, shuffle, repeat, volume, version, updated_at FROM connect_state WHERE user_id = ?");
	sqlite3_bind_text(st, 1, u->user, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		copy_text(u->active, sizeof(u->active), sqlite3_column_text(st, 0));
		copy_text(u->st.context, sizeof(u->st.context), sqlite3_column_text(st, 1));
		copy_text(u->st.uri, sizeof(u->st.uri), sqlite3_column_text(st, 2));
		const unsigned char *q = sqlite3_column_text(st, 3);
		yajl_val qv = q ? json_parse((const char *)q, NULL, 0) : NULL;
		set_queue(&u->st, qv);
		yajl_tree_free(qv);
		u->st.queue_index = sqlite3_column_int(st, 4);
		u->st.position_ms = sqlite3_column_int64(st, 5);
		u->st.duration_ms = sqlite3_column_int64(st, 6);
		u->st.playing = sqlite3_column_int(st, 7);
		u->st.shuffle = sqlite3_column_int(st, 8);
		copy_text(u->st.repeat, sizeof(u->st.repeat), sqlite3_column_text(st, 9));
		u->st.volume = sqlite3_column_int(st, 10);
		u->st.version = (uint64_t)sqlite3_column_int64(st, 11);
		u->st.updated_ms = sqlite3_column_int64(st, 12);
	}
	sqlite3_finalize(st);
}

/* ---- in-memory lookups (caller holds the lock) ---- */

static struct cuser *get_user(struct connhub *h, const char *user)
{
	for (size_t i = 0; i < h->nusers; i++)
		if (strcmp(h->users[i]->user, user) == 0)
			return h->users[i];
	struct cuser *u = xcalloc(1, sizeof(*u));
	snprintf(u->user, sizeof(u->user), "%s", user);
	snprintf(u->st.repeat, sizeof(u->st.repeat), "off");
	u->st.volume = 100;
	u->st.queue_index = -1;
	load_user(h, u);
	if (h->nusers == h->capusers) {
		h->capusers = h->capusers ? h->capusers * 2 : 16;
		h->users = xrealloc(h->users, h->capusers * sizeof(*h->users));
	}
	h->users[h->nusers++] = u;
	return u;
}

static struct cdev *find_dev(struct cuser *u, const char *id)
{
	for (int i = 0; id && i < u->ndev; i++)
		if (strcmp(u->devs[i].id, id) == 0)
			return &u->devs[i];
	return NULL;
}

static struct cconn *find_conn(struct connhub *h, uint64_t id)
{
	for (size_t i = 0; i < h->nconns; i++)
		if (h->conns[i]->id == id)
			return h->conns[i];
	return NULL;
}

static long long position_now(const struct cstate *st, int64_t now)
{
	long long p = st->position_ms;
	if (st->playing && st->updated_ms > 0 && now > st->updated_ms)
		p += now - st->updated_ms;
	if (st->duration_ms > 0 && p > st->duration_ms)
		p = st->duration_ms;
	return p;
}

/* ---- messages ---- */

static void send_w(struct connhub *h, uint64_t conn, struct jw *w)
{
	char *s = jw_finish(w);
	if (h->hs && conn)
		http_ws_send(h->hs, conn, s, strlen(s));
	free(s);
}

static void send_error(struct connhub *h, uint64_t conn, int status, const char *msg)
{
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "type", "error");
	jw_kint(&w, "status", status);
	jw_kstr(&w, "message", msg);
	jw_obj_end(&w);
	send_w(h, conn, &w);
}

static void write_state(struct jw *w, const struct cuser *u, int64_t now)
{
	const struct cstate *st = &u->st;
	jw_obj(w);
	jw_kint(w, "version", (long long)st->version);
	if (u->active[0])
		jw_kstr(w, "active_device_id", u->active);
	else {
		jw_key(w, "active_device_id");
		jw_null(w);
	}
	jw_kstr(w, "context_uri", st->context);
	jw_kstr(w, "uri", st->uri);
	jw_key(w, "queue");
	jw_arr(w);
	for (int i = 0; i < st->nqueue; i++)
		jw_str(w, st->queue[i]);
	jw_arr_end(w);
	jw_kint(w, "queue_index", st->queue_index);
	jw_kint(w, "position_ms", position_now(st, now));
	jw_kint(w, "duration_ms", st->duration_ms);
	jw_kbool(w, "is_playing", st->playing);
	jw_kbool(w, "shuffle", st->shuffle);
	jw_kstr(w, "repeat", st->repeat);
	jw_kint(w, "volume", st->volume);
	jw_kint(w, "timestamp", now);
	jw_obj_end(w);
}

/* Tells every online device of u the new state. */
static void broadcast_state(struct connhub *h, struct cuser *u)
{
	int64_t now = wall_ms();
	for (int i = 0; i < u->ndev; i++) {
		if (!u->devs[i].conn)
			continue;
		struct jw w;
		jw_init(&w);
		jw_obj(&w);
		jw_kstr(&w, "type", "state");
		jw_key(&w, "state");
		write_state(&w, u, now);
		jw_obj_end(&w);
		send_w(h, u->devs[i].conn, &w);
	}
}

/* Starts a device command message; the caller adds arguments and calls end_cmd. */
static void begin_cmd(struct jw *w, const struct cuser *u, const char *cmd)
{
	jw_init(w);
	jw_obj(w);
	jw_kstr(w, "type", "command");
	jw_kstr(w, "cmd", cmd);
	jw_kint(w, "version", (long long)u->st.version);
}

static void end_cmd(struct connhub *h, struct jw *w, const struct cdev *d)
{
	jw_obj_end(w);
	send_w(h, d ? d->conn : 0, w);
}

static void write_queue_args(struct jw *w, const struct cstate *st, long long pos)
{
	jw_kstr(w, "uri", st->uri);
	jw_key(w, "queue");
	jw_arr(w);
	for (int i = 0; i < st->nqueue; i++)
		jw_str(w, st->queue[i]);
	jw_arr_end(w);
	jw_kint(w, "queue_index", st->queue_index);
	jw_kint(w, "position_ms", pos);
}

static void changed(struct connhub *h, struct cuser *u)
{
	u->st.version++;
	save_state(h, u);
	broadcast_state(h, u);
}

/* The second half of a transfer: the source has stopped at position (or is gone). */
static void finish_transfer(struct connhub *h, struct cuser *u, long long position, int64_t now)
{
	struct cdev *t = find_dev(u, u->xfer_target);
	snprintf(u->active, sizeof(u->active), "%s", u->xfer_target);
	u->xfer_target[0] = 0;
	u->st.position_ms = position;
	u->st.updated_ms = now;
	u->st.playing = u->xfer_play;
	u->st.version++;
	struct jw w;
	begin_cmd(&w, u, "start");
	write_queue_args(&w, &u->st, position);
	jw_kbool(&w, "play", u->xfer_play);
	end_cmd(h, &w, t);
	save_state(h, u);
	broadcast_state(h, u);
}

/* The transfer's second phase: the source is told to stop, and its stop report finishes
 * the transfer; a source that is offline or not playing hands over at once. */
static void stop_source(struct connhub *h, struct cuser *u, int64_t now)
{
	struct cdev *src = find_dev(u, u->active);
	u->xfer_stopping = true;
	u->xfer_at = now;
	if (src && src->conn) {
		struct jw w;
		begin_cmd(&w, u, "stop");
		jw_kstr(&w, "reason", "transfer");
		end_cmd(h, &w, src);
	}
	if (!src || !src->conn || !u->st.playing)
		finish_transfer(h, u, position_now(&u->st, now), now);
}

/* A target that never said "prepared" stops the source anyway; a transfer whose source
 * never confirmed its stop completes at the extrapolated position. */
static void check_transfer(struct connhub *h, struct cuser *u, int64_t now)
{
	if (!u->xfer_target[0])
		return;
	if (!u->xfer_stopping && now - u->xfer_at > CONNECT_PREPARE_TIMEOUT_MS)
		stop_source(h, u, now);
	else if (u->xfer_stopping && now - u->xfer_at > CONNECT_XFER_TIMEOUT_MS)
		finish_transfer(h, u, position_now(&u->st, now), now);
}

static bool has_cap(const struct cdev *d, const char *cap)
{
	size_t n = strlen(cap);
	for (const char *p = d->caps; (p = strstr(p, cap)); p += n)
		if ((p == d->caps || p[-1] == ',') && (p[n] == 0 || p[n] == ','))
			return true;
	return false;
}

static int transfer(struct connhub *h, struct cuser *u, struct cdev *target, bool play, int64_t now, char *err, size_t errlen)
{
	struct cdev *src = find_dev(u, u->active);
	if (src == target) {
		if (play && !u->st.playing) {
			struct jw w;
			u->st.playing = true;
			u->st.updated_ms = now;
			changed(h, u);
			begin_cmd(&w, u, "resume");
			end_cmd(h, &w, target);
		}
		return 204;
	}
	if (u->xfer_target[0]) {
		snprintf(err, errlen, "a transfer is already in progress");
		return 409;
	}
	long long pos = position_now(&u->st, now);
	snprintf(u->xfer_target, sizeof(u->xfer_target), "%s", target->id);
	u->xfer_play = play || u->st.playing;
	if (!play && u->st.playing)
		u->xfer_play = true;   /* Spotify: play=false keeps the current playing state */
	if (play)
		u->xfer_play = true;
	u->xfer_at = now;
	u->xfer_stopping = false;
	struct jw w;
	if (u->st.uri[0]) {
		begin_cmd(&w, u, "prepare");
		write_queue_args(&w, &u->st, pos);
		end_cmd(h, &w, target);
		/* Playing on a device that is online: it keeps playing until the target is ready. */
		if (src && src->conn && u->st.playing && has_cap(target, "prepare_ack"))
			return 204;
	}
	stop_source(h, u, now);
	return 204;
}

static bool valid_repeat(const char *r)
{
	return r && (strcmp(r, "off") == 0 || strcmp(r, "track") == 0 || strcmp(r, "context") == 0);
}

int connhub_command(struct connhub *h, const char *user, const struct connect_cmd *cmd, char *err, size_t errlen)
{
	int status = 204;
	int64_t now = wall_ms();
	pthread_mutex_lock(&h->lock);
	struct cuser *u = get_user(h, user);
	check_transfer(h, u, now);
	snprintf(err, errlen, "ok");
	if (cmd->version >= 0 && (uint64_t)cmd->version != u->st.version) {
		snprintf(err, errlen, "stale version %lld: the state is at version %llu", cmd->version,
			 (unsigned long long)u->st.version);
		status = 409;
		goto out;
	}
	struct cdev *target = NULL;
	if (cmd->device_id) {
		target = find_dev(u, cmd->device_id);
		if (!target || !target->conn) {
			snprintf(err, errlen, target ? "device is not available" : "device not found");
			status = 404;
			goto out;
		}
	}
	if (strcmp(cmd->name, "transfer") == 0) {
		status = target ? transfer(h, u, target, cmd->state, now, err, errlen) : 400;
		if (!target)
			snprintf(err, errlen, "device_ids must name one device");
		goto out;
	}
	struct cdev *active = find_dev(u, u->active);
	if (target && target != active && strcmp(cmd->name, "play") == 0 && cmd->nuris == 0) {
		status = transfer(h, u, target, true, now, err, errlen);
		goto out;
	}
	if (!active || !active->conn) {
		snprintf(err, errlen, "no active device");
		status = 404;
		goto out;
	}
	if (target && target != active) {
		snprintf(err, errlen, "device is not the active device; transfer playback first");
		status = 404;
		goto out;
	}
	struct jw w;
	const char *n = cmd->name;
	if (strcmp(n, "play") == 0) {
		if (cmd->nuris > 0) {
			if (!u->st.queue)
				u->st.queue = xcalloc(CONNECT_MAX_QUEUE, sizeof(*u->st.queue));
			u->st.nqueue = 0;
			for (int i = 0; i < cmd->nuris && u->st.nqueue < CONNECT_MAX_QUEUE; i++)
				snprintf(u->st.queue[u->st.nqueue++], 64, "%s", cmd->uris[i]);
			u->st.queue_index = 0;
			snprintf(u->st.uri, sizeof(u->st.uri), "%s", u->st.queue[0]);
			u->st.position_ms = cmd->position_ms > 0 ? cmd->position_ms : 0;
			u->st.playing = true;
			u->st.updated_ms = now;
			changed(h, u);
			begin_cmd(&w, u, "start");
			write_queue_args(&w, &u->st, u->st.position_ms);
			jw_kbool(&w, "play", true);
		} else {
			u->st.position_ms = position_now(&u->st, now);
			u->st.playing = true;
			u->st.updated_ms = now;
			changed(h, u);
			begin_cmd(&w, u, "resume");
		}
	} else if (strcmp(n, "pause") == 0) {
		u->st.position_ms = position_now(&u->st, now);
		u->st.playing = false;
		u->st.updated_ms = now;
		changed(h, u);
		begin_cmd(&w, u, "pause");
	} else if (strcmp(n, "seek") == 0) {
		if (cmd->position_ms < 0) {
			snprintf(err, errlen, "position_ms must be a non-negative integer");
			status = 400;
			goto out;
		}
		u->st.position_ms = cmd->position_ms;
		u->st.updated_ms = now;
		changed(h, u);
		begin_cmd(&w, u, "seek");
		jw_kint(&w, "position_ms", cmd->position_ms);
	} else if (strcmp(n, "volume") == 0) {
		if (cmd->volume < 0 || cmd->volume > 100) {
			snprintf(err, errlen, "volume_percent must be 0-100");
			status = 400;
			goto out;
		}
		u->st.volume = cmd->volume;
		active->volume = cmd->volume;
		changed(h, u);
		begin_cmd(&w, u, "volume");
		jw_kint(&w, "volume", cmd->volume);
	} else if (strcmp(n, "shuffle") == 0) {
		u->st.shuffle = cmd->state;
		changed(h, u);
		begin_cmd(&w, u, "shuffle");
		jw_kbool(&w, "state", cmd->state);
	} else if (strcmp(n, "repeat") == 0) {
		if (!valid_repeat(cmd->repeat)) {
			snprintf(err, errlen, "state must be off, track or context");
			status = 400;
			goto out;
		}
		snprintf(u->st.repeat, sizeof(u->st.repeat), "%s", cmd->repeat);
		changed(h, u);
		begin_cmd(&w, u, "repeat");
		jw_kstr(&w, "state", cmd->repeat);
	} else if (strcmp(n, "next") == 0 || strcmp(n, "previous") == 0) {
		changed(h, u);
		begin_cmd(&w, u, n);
	} else if (strcmp(n, "queue") == 0) {
		if (!cmd->uri || strlen(cmd->uri) >= 64 || (strncmp(cmd->uri, "encore:track:", 13) != 0 &&
							    strncmp(cmd->uri, "encore:episode:", 15) != 0)) {
			snprintf(err, errlen, "uri must be an encore:track: or encore:episode: URI");
			status = 400;
			goto out;
		}
		changed(h, u);
		begin_cmd(&w, u, "enqueue");
		jw_kstr(&w, "uri", cmd->uri);
	} else {
		snprintf(err, errlen, "unknown command");
		status = 400;
		goto out;
	}
	end_cmd(h, &w, active);
out:
	pthread_mutex_unlock(&h->lock);
	return status;
}

/* ---- device reports ---- */

static bool valid_name(const char *s, size_t max, bool id)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n >= max)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch == 0x7f)
			return false;
		if (id && !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '-' || ch == '_'))
			return false;
	}
	return true;
}

static void on_register(struct connhub *h, struct cconn *c, yajl_val msg, int64_t now)
{
	yajl_val dv = json_get(msg, "device");
	const char *id = dv ? json_get_str(dv, "id") : NULL;
	const char *name = dv ? json_get_str(dv, "name") : NULL;
	const char *type = dv ? json_get_str(dv, "type") : NULL;
	long long vol = 100;
	if (!dv || !YAJL_IS_OBJECT(dv) || !valid_name(id, 64, true) || !valid_name(name, 64, false) ||
	    (type && !valid_name(type, 24, true)) || (json_get(dv, "volume") && (!json_get_int(dv, "volume", &vol) || vol < 0 || vol > 100))) {
		send_error(h, c->id, 400, "register wants {\"device\":{\"id\":[A-Za-z0-9_-]{1,63},\"name\":TEXT,\"type\":WORD,\"volume\":0-100}}");
		return;
	}
	struct cuser *u = get_user(h, c->user);
	check_transfer(h, u, now);
	struct cdev *d = find_dev(u, id);
	if (!d) {
		if (u->ndev == CONNECT_MAX_DEVICES) {
			/* Forget the oldest offline device that is not active. */
			int victim = -1;
			for (int i = u->ndev - 1; i >= 0 && victim < 0; i--)
				if (!u->devs[i].conn && strcmp(u->devs[i].id, u->active) != 0)
					victim = i;
			if (victim < 0) {
				send_error(h, c->id, 429, "too many devices online");
				return;
			}
			u->devs[victim] = u->devs[--u->ndev];
		}
		d = &u->devs[u->ndev++];
		memset(d, 0, sizeof(*d));
		snprintf(d->id, sizeof(d->id), "%s", id);
	}
	if (d->conn && d->conn != c->id) {
		/* The same device on a new connection: the old one is a ghost. */
		struct cconn *old = find_conn(h, d->conn);
		if (old)
			old->device[0] = 0;
		http_ws_close(h->hs, d->conn, 4000, "device registered on another connection");
	}
	snprintf(d->name, sizeof(d->name), "%s", name);
	snprintf(d->type, sizeof(d->type), "%s", type ? type : "computer");
	d->volume = (int)vol;
	d->caps[0] = 0;
	yajl_val caps = json_get(dv, "capabilities");
	for (size_t i = 0; caps && YAJL_IS_ARRAY(caps) && i < caps->u.array.len; i++) {
		const char *cs = YAJL_GET_STRING(caps->u.array.values[i]);
		if (cs && valid_name(cs, 32, true) && strlen(d->caps) + strlen(cs) + 2 < sizeof(d->caps))
			snprintf(d->caps + strlen(d->caps), sizeof(d->caps) - strlen(d->caps), "%s%s", d->caps[0] ? "," : "", cs);
	}
	d->conn = c->id;
	snprintf(c->device, sizeof(c->device), "%s", d->id);
	save_device(h, u, d);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "type", "registered");
	jw_kstr(&w, "device_id", d->id);
	jw_kbool(&w, "active", strcmp(u->active, d->id) == 0);
	jw_key(&w, "state");
	write_state(&w, u, now);
	jw_obj_end(&w);
	send_w(h, c->id, &w);
}

static void on_state(struct connhub *h, struct cconn *c, yajl_val msg, int64_t now)
{
	yajl_val sv = json_get(msg, "state");
	if (!c->device[0]) {
		send_error(h, c->id, 409, "register the device first");
		return;
	}
	long long pos = 0, dur = 0, vol = -1, qi = -1;
	bool playing = false, shuffle = false;
	const char *uri = sv ? json_get_str(sv, "uri") : NULL;
	const char *repeat = sv ? json_get_str(sv, "repeat") : NULL;
	const char *ctx = sv ? json_get_str(sv, "context_uri") : NULL;
	if (!sv || !YAJL_IS_OBJECT(sv) || !json_get_int(sv, "position_ms", &pos) || pos < 0 ||
	    !json_get_bool(sv, "is_playing", &playing) || (uri && strlen(uri) >= 64) ||
	    (repeat && !valid_repeat(repeat)) || (ctx && strlen(ctx) >= 128)) {
		send_error(h, c->id, 400, "state wants {\"state\":{\"uri\":URI,\"position_ms\":N,\"is_playing\":BOOL,...}}");
		return;
	}
	json_get_int(sv, "duration_ms", &dur);
	json_get_int(sv, "volume", &vol);
	json_get_int(sv, "queue_index", &qi);
	json_get_bool(sv, "shuffle", &shuffle);
	struct cuser *u = get_user(h, c->user);
	struct cdev *d = find_dev(u, c->device);
	if (!d) {
		check_transfer(h, u, now);
		return;
	}
	if (vol >= 0 && vol <= 100)
		d->volume = (int)vol;
	bool is_active = strcmp(u->active, d->id) == 0;
	if (is_active && u->xfer_target[0] && !playing) {
		/* The source stopped for a transfer: hand over at exactly this position, even if
		 * the report is late (a slow machine) — the real stop beats any extrapolation. */
		finish_transfer(h, u, pos, now);
		return;
	}
	check_transfer(h, u, now);
	if (!is_active) {
		/* A non-active device only takes over when it starts playing on its own. */
		if (!playing || u->xfer_target[0])
			return;
		struct cdev *old = find_dev(u, u->active);
		if (old && old->conn) {
			struct jw w;
			begin_cmd(&w, u, "stop");
			jw_kstr(&w, "reason", "another device started playing");
			end_cmd(h, &w, old);
		}
		snprintf(u->active, sizeof(u->active), "%s", d->id);
	}
	struct cstate *st = &u->st;
	snprintf(st->uri, sizeof(st->uri), "%s", uri ? uri : "");
	if (ctx)
		snprintf(st->context, sizeof(st->context), "%s", ctx);
	if (json_get(sv, "queue"))
		set_queue(st, json_get(sv, "queue"));
	st->queue_index = (int)qi;
	st->position_ms = pos;
	st->duration_ms = dur;
	st->playing = playing;
	st->shuffle = shuffle;
	if (repeat)
		snprintf(st->repeat, sizeof(st->repeat), "%s", repeat);
	if (vol >= 0 && vol <= 100)
		st->volume = (int)vol;
	st->updated_ms = now;
	changed(h, u);
}

/* The target of a transfer has buffered at the position: now the source may stop. A
 * "prepared" from any other device, or late, is ignored. */
static void on_prepared(struct connhub *h, struct cconn *c, int64_t now)
{
	if (!c->device[0]) {
		send_error(h, c->id, 409, "register the device first");
		return;
	}
	struct cuser *u = get_user(h, c->user);
	if (strcmp(u->xfer_target, c->device) == 0 && !u->xfer_stopping)
		stop_source(h, u, now);
	else
		check_transfer(h, u, now);
}

static void ws_command(struct connhub *h, struct cconn *c, yajl_val msg)
{
	struct connect_cmd cmd = {.version = -1, .position_ms = -1, .volume = -1};
	cmd.name = json_get_str(msg, "cmd");
	cmd.device_id = json_get_str(msg, "device_id");
	json_get_int(msg, "version", &cmd.version);
	json_get_int(msg, "position_ms", &cmd.position_ms);
	long long v = -1;
	if (json_get_int(msg, "volume_percent", &v))
		cmd.volume = v < -1 || v > 1000 ? -1 : (int)v;
	json_get_bool(msg, "state", &cmd.state);
	json_get_bool(msg, "play", &cmd.state);
	cmd.repeat = json_get_str(msg, "state");
	cmd.uri = json_get_str(msg, "uri");
	char user[64], err[160];
	snprintf(user, sizeof(user), "%s", c->user);
	uint64_t conn = c->id;
	if (!cmd.name) {
		send_error(h, conn, 400, "command wants \"cmd\"");
		return;
	}
	/* connhub_command takes the lock itself. */
	pthread_mutex_unlock(&h->lock);
	int st = connhub_command(h, user, &cmd, err, sizeof(err));
	pthread_mutex_lock(&h->lock);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "type", st < 300 ? "command_ok" : "error");
	jw_kstr(&w, "cmd", cmd.name);
	jw_kint(&w, "status", st);
	if (st >= 300)
		jw_kstr(&w, "message", err);
	jw_obj_end(&w);
	send_w(h, conn, &w);
}

/* Token bucket per connection: true when this message may be handled. */
static bool admit(struct connhub *h, struct cconn *c, int64_t now)
{
	if (c->last_ms == 0) {
		c->tokens = CONNECT_BURST;
		c->last_ms = now;
	}
	c->tokens += (double)(now - c->last_ms) * CONNECT_RATE / 1000.0;
	if (c->tokens > CONNECT_BURST)
		c->tokens = CONNECT_BURST;
	c->last_ms = now;
	if (c->tokens >= 1) {
		c->tokens -= 1;
		c->warned = false;
		return true;
	}
	if (++c->dropped > CONNECT_MAX_DROPPED) {
		http_ws_close(h->hs, c->id, CONNECT_CLOSE_RATE, "rate limit exceeded");
		return false;
	}
	if (!c->warned)
		send_error(h, c->id, 429, "rate limited: message dropped");
	c->warned = true;
	return false;
}

static void on_open(void *ctx, uint64_t conn, const char *token)
{
	struct connhub *h = ctx;
	struct cconn *c = xcalloc(1, sizeof(*c));
	c->id = conn;
	struct jwt_claims cl;
	if (token && strlen(token) < JWT_MAX_LEN && jwt_verify(h->keys, token, (int64_t)time(NULL), &cl) == JWT_OK) {
		c->authed = true;
		snprintf(c->user, sizeof(c->user), "%s", cl.sub);
	}
	pthread_mutex_lock(&h->lock);
	if (h->nconns == h->capconns) {
		h->capconns = h->capconns ? h->capconns * 2 : 64;
		h->conns = xrealloc(h->conns, h->capconns * sizeof(*h->conns));
	}
	h->conns[h->nconns++] = c;
	pthread_mutex_unlock(&h->lock);
	if (h->inner.open)
		h->inner.open(h->inner.ctx, conn, token);
}

static void on_close(void *ctx, uint64_t conn)
{
	struct connhub *h = ctx;
	pthread_mutex_lock(&h->lock);
	for (size_t i = 0; i < h->nconns; i++) {
		struct cconn *c = h->conns[i];
		if (c->id != conn)
			continue;
		if (c->device[0]) {
			struct cuser *u = get_user(h, c->user);
			struct cdev *d = find_dev(u, c->device);
			if (d && d->conn == conn)
				d->conn = 0;
		}
		free(c);
		h->conns[i] = h->conns[--h->nconns];
		break;
	}
	pthread_mutex_unlock(&h->lock);
	if (h->inner.close)
		h->inner.close(h->inner.ctx, conn);
}

static void on_message(void *ctx, uint64_t conn, const char *text, size_t len)
{
	struct connhub *h = ctx;
	int64_t now = wall_ms();
	pthread_mutex_lock(&h->lock);
	struct cconn *c = find_conn(h, conn);
	if (!c || !admit(h, c, now)) {
		pthread_mutex_unlock(&h->lock);
		return;
	}
	yajl_val v = json_parse(text, NULL, 0);
	const char *type = v && YAJL_IS_OBJECT(v) ? json_get_str(v, "type") : NULL;
	bool mine = type && (strcmp(type, "register") == 0 || strcmp(type, "state") == 0 || strcmp(type, "command") == 0 ||
			     strcmp(type, "prepared") == 0);
	if (type && strcmp(type, "auth") == 0) {
		const char *token = json_get_str(v, "token");
		struct jwt_claims cl;
		if (token && strlen(token) < JWT_MAX_LEN && jwt_verify(h->keys, token, (int64_t)time(NULL), &cl) == JWT_OK) {
			c->authed = true;
			snprintf(c->user, sizeof(c->user), "%s", cl.sub);
		}
	} else if (mine && !c->authed) {
		send_error(h, conn, 401, "authenticate first: {\"type\":\"auth\",\"token\":JWT}");
	} else if (mine && strcmp(type, "register") == 0) {
		on_register(h, c, v, now);
	} else if (mine && strcmp(type, "state") == 0) {
		on_state(h, c, v, now);
	} else if (mine && strcmp(type, "prepared") == 0) {
		on_prepared(h, c, now);
	} else if (mine) {
		ws_command(h, c, v);   /* it drops the lock: c may be gone after it */
	} else if (c->device[0]) {
		/* The hub has no timer: a device's pings drive its user's transfer timeouts. */
		check_transfer(h, get_user(h, c->user), now);
	}
	pthread_mutex_unlock(&h->lock);
	yajl_tree_free(v);
	if (!mine && h->inner.message)
		h->inner.message(h->inner.ctx, conn, text, len);
}

struct http_ws_app connhub_ws_app(struct connhub *h, struct http_ws_app inner)
{
	h->inner = inner;
	struct http_ws_app app = {.ctx = h, .open = on_open, .message = on_message, .close = on_close};
	return app;
}

/* ---- JSON views for the routes ---- */

static void write_device(struct jw *w, const struct cuser *u, const struct cdev *d)
{
	jw_obj(w);
	jw_kstr(w, "id", d->id);
	jw_kstr(w, "name", d->name);
	jw_kstr(w, "type", d->type);
	jw_kint(w, "volume_percent", d->volume);
	jw_kbool(w, "is_active", strcmp(u->active, d->id) == 0);
	jw_kbool(w, "is_online", d->conn != 0);
	jw_key(w, "capabilities");
	jw_arr(w);
	const char *p = d->caps;
	while (*p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		jw_strn(w, p, n);
		p += n + (e ? 1 : 0);
	}
	jw_arr_end(w);
	jw_obj_end(w);
}

bool connhub_player_json(struct connhub *h, const char *user, struct buf *out)
{
	int64_t now = wall_ms();
	pthread_mutex_lock(&h->lock);
	struct cuser *u = get_user(h, user);
	check_transfer(h, u, now);
	bool any = u->active[0] || u->st.uri[0];
	if (any) {
		struct jw w;
		jw_init(&w);
		jw_obj(&w);
		struct cdev *d = find_dev(u, u->active);
		jw_key(&w, "device");
		if (d)
			write_device(&w, u, d);
		else
			jw_null(&w);
		jw_kint(&w, "version", (long long)u->st.version);
		jw_kint(&w, "timestamp", now);
		jw_kint(&w, "progress_ms", position_now(&u->st, now));
		jw_kbool(&w, "is_playing", u->st.playing);
		jw_kbool(&w, "shuffle_state", u->st.shuffle);
		jw_kstr(&w, "repeat_state", u->st.repeat);
		jw_key(&w, "context");
		if (u->st.context[0]) {
			jw_obj(&w);
			jw_kstr(&w, "uri", u->st.context);
			jw_obj_end(&w);
		} else
			jw_null(&w);
		jw_key(&w, "item");
		if (u->st.uri[0]) {
			jw_obj(&w);
			jw_kstr(&w, "uri", u->st.uri);
			jw_kint(&w, "duration_ms", u->st.duration_ms);
			jw_obj_end(&w);
		} else
			jw_null(&w);
		jw_kint(&w, "volume_percent", u->st.volume);
		jw_kbool(&w, "transfer_pending", u->xfer_target[0] != 0);
		jw_key(&w, "state");
		write_state(&w, u, now);
		jw_obj_end(&w);
		char *s = jw_finish(&w);
		buf_printf(out, "%s", s);
		free(s);
	}
	pthread_mutex_unlock(&h->lock);
	return any;
}

void connhub_devices_json(struct connhub *h, const char *user, struct buf *out)
{
	pthread_mutex_lock(&h->lock);
	struct cuser *u = get_user(h, user);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "devices");
	jw_arr(&w);
	for (int i = 0; i < u->ndev; i++)
		if (u->devs[i].conn)
			write_device(&w, u, &u->devs[i]);
	jw_arr_end(&w);
	jw_obj_end(&w);
	char *s = jw_finish(&w);
	buf_printf(out, "%s", s);
	free(s);
	pthread_mutex_unlock(&h->lock);
}

void connhub_queue_json(struct connhub *h, const char *user, struct buf *out)
{
	pthread_mutex_lock(&h->lock);
	struct cuser *u = get_user(h, user);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "currently_playing");
	if (u->st.uri[0]) {
		jw_obj(&w);
		jw_kstr(&w, "uri", u->st.uri);
		jw_obj_end(&w);
	} else
		jw_null(&w);
	jw_key(&w, "queue");
	jw_arr(&w);
	for (int i = u->st.queue_index + 1; i >= 0 && i < u->st.nqueue; i++) {
		jw_obj(&w);
		jw_kstr(&w, "uri", u->st.queue[i]);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_kint(&w, "version", (long long)u->st.version);
	jw_obj_end(&w);
	char *s = jw_finish(&w);
	buf_printf(out, "%s", s);
	free(s);
	pthread_mutex_unlock(&h->lock);
}

/* ---- Web API routes ---- */

static bool parse_ll(const char *s, long long *out)
{
	char *end;
	if (!s || !*s)
		return false;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (*end || errno)
		return false;
	*out = v;
	return true;
}

static void run(struct call *c, struct connect_cmd *cmd)
{
	const char *ver = http_arg(c->req, "version");
	if (!cmd->device_id)
		cmd->device_id = http_arg(c->req, "device_id");
	if (ver && (!parse_ll(ver, &cmd->version) || cmd->version < 0)) {
		call_error(c, 400, "version must be a non-negative integer");
		return;
	}
	char err[160];
	int st = connhub_command(c->srv->connect, c->user.sub, cmd, err, sizeof(err));
	if (st >= 300) {
		call_error(c, st, "%s", err);
		return;
	}
	c->resp->status = 204;
}

static void route_player(struct call *c)
{
	struct buf b = BUF_INIT;
	if (!connhub_player_json(c->srv->connect, c->user.sub, &b)) {
		buf_free(&b);
		c->resp->status = 204;
		return;
	}
	call_json(c, 200, b.data);
}

static void route_devices(struct call *c)
{
	struct buf b = BUF_INIT;
	connhub_devices_json(c->srv->connect, c->user.sub, &b);
	call_json(c, 200, b.data);
}

static void route_transfer(struct call *c)
{
	yajl_val body = call_body_json(c);
	if (!body)
		return;
	yajl_val ids = json_get(body, "device_ids");
	bool play = false;
	yajl_val pv = json_get(body, "play");
	if (!ids || !YAJL_IS_ARRAY(ids) || ids->u.array.len != 1 || !YAJL_IS_STRING(ids->u.array.values[0]) ||
	    (pv && !YAJL_IS_TRUE(pv) && !YAJL_IS_FALSE(pv))) {
		call_error(c, 400, "body wants {\"device_ids\":[ONE_ID],\"play\":BOOL}");
		yajl_tree_free(body);
		return;
	}
	play = pv && YAJL_IS_TRUE(pv);
	struct connect_cmd cmd = {.name = "transfer", .version = -1, .state = play,
				  .device_id = YAJL_GET_STRING(ids->u.array.values[0])};
	run(c, &cmd);
	yajl_tree_free(body);
}

static void route_play(struct call *c)
{
	struct connect_cmd cmd = {.name = "play", .version = -1, .position_ms = 0};
	yajl_val body = NULL;
	const char *uris[CONNECT_MAX_QUEUE];
	if (c->req->body.len > 0) {
		body = call_body_json(c);
		if (!body)
			return;
		yajl_val u = json_get(body, "uris");
		if (u && (!YAJL_IS_ARRAY(u) || u->u.array.len > CONNECT_MAX_QUEUE || u->u.array.len == 0)) {
			call_error(c, 400, "uris must be an array of 1-%d URIs", CONNECT_MAX_QUEUE);
			goto out;
		}
		for (size_t i = 0; u && i < u->u.array.len; i++) {
			const char *s = YAJL_GET_STRING(u->u.array.values[i]);
			if (!s || strlen(s) >= 64 || strncmp(s, "encore:", 7) != 0) {
				call_error(c, 400, "uris[%zu] is not an encore: URI", i);
				goto out;
			}
			uris[cmd.nuris++] = s;
		}
		cmd.uris = uris;
		if (json_get(body, "position_ms") && (!json_get_int(body, "position_ms", &cmd.position_ms) || cmd.position_ms < 0)) {
			call_error(c, 400, "position_ms must be a non-negative integer");
			goto out;
		}
	}
	run(c, &cmd);
out:
	yajl_tree_free(body);
}

static void simple(struct call *c, const char *name)
{
	struct connect_cmd cmd = {.name = name, .version = -1};
	run(c, &cmd);
}

static void route_pause(struct call *c) { simple(c, "pause"); }
static void route_next(struct call *c) { simple(c, "next"); }
static void route_previous(struct call *c) { simple(c, "previous"); }

static void route_seek(struct call *c)
{
	struct connect_cmd cmd = {.name = "seek", .version = -1};
	if (!parse_ll(http_arg(c->req, "position_ms"), &cmd.position_ms) || cmd.position_ms < 0) {
		call_error(c, 400, "position_ms must be a non-negative integer");
		return;
	}
	run(c, &cmd);
}

static void route_volume(struct call *c)
{
	long long v;
	if (!parse_ll(http_arg(c->req, "volume_percent"), &v) || v < 0 || v > 100) {
		call_error(c, 400, "volume_percent must be 0-100");
		return;
	}
	struct connect_cmd cmd = {.name = "volume", .version = -1, .volume = (int)v};
	run(c, &cmd);
}

static void route_shuffle(struct call *c)
{
	const char *s = http_arg(c->req, "state");
	if (!s || (strcmp(s, "true") != 0 && strcmp(s, "false") != 0)) {
		call_error(c, 400, "state must be true or false");
		return;
	}
	struct connect_cmd cmd = {.name = "shuffle", .version = -1, .state = strcmp(s, "true") == 0};
	run(c, &cmd);
}

static void route_repeat(struct call *c)
{
	const char *s = http_arg(c->req, "state");
	if (!valid_repeat(s)) {
		call_error(c, 400, "state must be off, track or context");
		return;
	}
	struct connect_cmd cmd = {.name = "repeat", .version = -1, .repeat = s};
	run(c, &cmd);
}

static void route_get_queue(struct call *c)
{
	struct buf b = BUF_INIT;
	connhub_queue_json(c->srv->connect, c->user.sub, &b);
	call_json(c, 200, b.data);
}

static void route_add_queue(struct call *c)
{
	struct connect_cmd cmd = {.name = "queue", .version = -1, .uri = http_arg(c->req, "uri")};
	run(c, &cmd);
}

const struct route connect_routes[] = {
	{"GET", "/v1/me/player", route_player, 0},
	{"PUT", "/v1/me/player", route_transfer, 0},
	{"GET", "/v1/me/player/devices", route_devices, 0},
	{"PUT", "/v1/me/player/play", route_play, 0},
	{"PUT", "/v1/me/player/pause", route_pause, 0},
	{"PUT", "/v1/me/player/seek", route_seek, 0},
	{"PUT", "/v1/me/player/volume", route_volume, 0},
	{"PUT", "/v1/me/player/shuffle", route_shuffle, 0},
	{"PUT", "/v1/me/player/repeat", route_repeat, 0},
	{"POST", "/v1/me/player/next", route_next, 0},
	{"POST", "/v1/me/player/previous", route_previous, 0},
	{"GET", "/v1/me/player/queue", route_get_queue, 0},
	{"POST", "/v1/me/player/queue", route_add_queue, 0},
	{NULL, NULL, NULL, 0},
};
