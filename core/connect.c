/* connect: everything network-side runs on the lws thread (socket, timers, commands,
 * reports), so its state needs no lock. A second small thread only waits on the engine's
 * listener fd and wakes the lws loop (lws_cancel_service), which then diffs a snapshot
 * against the last report: the engine fires on every position tick, the hub wants only
 * discrete changes (it extrapolates positions itself).
 *
 * While a transfer's "prepare" is pending the engine is loaded but paused, and nothing is
 * reported, so the half-started target never looks like a device taking over. */
#include "connect.h"
#include "api.h"
#include "engine.h"
#include "id.h"
#include "json.h"
#include "xmem.h"
#include <errno.h>
#include <fcntl.h>
#include <libwebsockets.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct outmsg {
	struct outmsg *next;
	size_t len;
	char text[];
};

struct connect_client {
	struct api *api;
	struct engine *engine;
	char device_id[64], name[64], type[24];
	char host[128], path[8];
	int port;
	struct lws_context *ctx;
	struct lws *wsi;
	pthread_t thread, watcher;
	int listener_fd, stop_fd;
	atomic_bool quit, dirty;
	/* lws thread only: */
	struct outmsg *out_head, *out_tail;
	struct buf rx;
	bool registered, ever_registered;
	int attempt;
	int64_t last_rx_ms;
	lws_sorted_usec_list_t sul_reconnect, sul_ping, sul_prep;
	unsigned rng;
	bool preparing, starting, standing_down, prep_acked;
	char prep_uri[64];
	long long prep_pos;
	/* the last report */
	bool reported;
	bool rep_playing, rep_shuffle;
	char rep_uri[64];
	int rep_volume, rep_repeat, rep_qlen;
	long long rep_pos;
	int64_t rep_ms;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int connect_backoff_ms(int attempt, double r)
{
	double ms = CONNECT_BACKOFF_MIN_MS;
	for (int i = 0; i < attempt && ms < CONNECT_BACKOFF_MAX_MS; i++)
		ms *= 2;
	if (ms > CONNECT_BACKOFF_MAX_MS)
		ms = CONNECT_BACKOFF_MAX_MS;
	return (int)(ms * (0.75 + 0.5 * r));
}

int connect_device_id(const char *path, char out[64])
{
	FILE *f = fopen(path, "r");
	if (f) {
		char line[80] = "";
		bool ok = fgets(line, sizeof(line), f) != NULL;
		fclose(f);
		line[strcspn(line, "\r\n")] = 0;
		if (ok && id_valid(line)) {
			snprintf(out, 64, "%s", line);
			return 0;
		}
	}
	char id[ID_LEN + 1];
	id_random(id);
	char *tmp = xasprintf("%s.tmp", path);
	f = fopen(tmp, "w");
	int rc = 0;
	if (!f || fprintf(f, "%s\n", id) < 0 || fclose(f) != 0 || rename(tmp, path) != 0)
		rc = -errno ? -errno : -EIO;
	free(tmp);
	snprintf(out, 64, "%s", id);
	return rc;
}

/* ---- outgoing (lws thread) ---- */

static void queue_text(struct connect_client *c, char *json)
{
	size_t n = strlen(json);
	struct outmsg *m = xmalloc(sizeof(*m) + LWS_PRE + n + 1);
	m->next = NULL;
	m->len = n;
	memcpy(m->text + LWS_PRE, json, n + 1);
	free(json);
	if (c->out_tail)
		c->out_tail->next = m;
	else
		c->out_head = m;
	c->out_tail = m;
	if (c->wsi)
		lws_callback_on_writable(c->wsi);
}

static void drop_outbox(struct connect_client *c)
{
	while (c->out_head) {
		struct outmsg *m = c->out_head;
		c->out_head = m->next;
		free(m);
	}
	c->out_tail = NULL;
}

static const char *repeat_name(enum engine_repeat r)
{
	return r == ENGINE_REPEAT_ONE ? "track" : r == ENGINE_REPEAT_ALL ? "context" : "off";
}

/* Sends a state report when the engine changed in a way the hub cares about. */
static void maybe_report(struct connect_client *c, bool force)
{
	if (!c->registered || c->preparing)
		return;
	struct engine_snapshot s;
	engine_snapshot(c->engine, &s);
	if (s.state == ENGINE_LOADING || s.state == ENGINE_BUFFERING)
		return;   /* settle first: a load is neither playing nor paused yet */
	if (c->starting && s.state == ENGINE_PAUSED)
		return;
	c->starting = false;
	/* The same after standing down on reconnect: a stale "playing" from a device that is
	 * not active would look like it started on its own, and take over. */
	if (c->standing_down && s.state == ENGINE_PLAYING)
		return;
	c->standing_down = false;
	bool playing = s.state == ENGINE_PLAYING;
	int64_t now = mono_ms();
	long long expect = c->rep_pos + (c->rep_playing ? now - c->rep_ms : 0);
	bool jumped = llabs((long long)s.position_ms - expect) > 1500;
	if (!force && c->reported && playing == c->rep_playing && strcmp(s.uri, c->rep_uri) == 0 && s.volume == c->rep_volume &&
	    s.shuffle == c->rep_shuffle && (int)s.repeat == c->rep_repeat && s.queue_length == c->rep_qlen && !jumped)
		return;
	c->reported = true;
	c->rep_playing = playing;
	c->rep_shuffle = s.shuffle;
	snprintf(c->rep_uri, sizeof(c->rep_uri), "%s", s.uri);
	c->rep_volume = s.volume;
	c->rep_repeat = (int)s.repeat;
	c->rep_qlen = s.queue_length;
	c->rep_pos = s.position_ms;
	c->rep_ms = now;
	char **uris = NULL;
	int n = 0, cur = -1;
	engine_queue_list(c->engine, &uris, &n, &cur);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "type", "state");
	jw_key(&w, "state");
	jw_obj(&w);
	jw_kstr(&w, "uri", s.uri);
	jw_key(&w, "queue");
	jw_arr(&w);
	for (int i = 0; i < n; i++)
		jw_str(&w, uris[i]);
	jw_arr_end(&w);
	jw_kint(&w, "queue_index", cur);
	jw_kint(&w, "position_ms", s.position_ms);
	jw_kint(&w, "duration_ms", s.duration_ms);
	jw_kbool(&w, "is_playing", playing);
	jw_kbool(&w, "shuffle", s.shuffle);
	jw_kstr(&w, "repeat", repeat_name(s.repeat));
	jw_kint(&w, "volume", s.volume);
	jw_obj_end(&w);
	jw_obj_end(&w);
	engine_queue_list_free(uris, n);
	queue_text(c, jw_finish(&w));
}

static void send_hello(struct connect_client *c)
{
	unsigned long gen;
	char *tok = api_bearer(c->api, &gen);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "type", "auth");
	jw_kstr(&w, "token", tok ? tok : "");
	jw_obj_end(&w);
	free(tok);
	queue_text(c, jw_finish(&w));
	struct engine_snapshot s;
	engine_snapshot(c->engine, &s);
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "type", "register");
	jw_key(&w, "device");
	jw_obj(&w);
	jw_kstr(&w, "id", c->device_id);
	jw_kstr(&w, "name", c->name);
	jw_kstr(&w, "type", c->type);
	jw_kint(&w, "volume", s.volume);
	jw_key(&w, "capabilities");
	jw_arr(&w);
	jw_str(&w, "play");
	jw_str(&w, "seek");
	jw_str(&w, "volume");
	jw_str(&w, "queue");
	jw_str(&w, "transfer");
	jw_str(&w, "prepare_ack");
	jw_arr_end(&w);
	jw_obj_end(&w);
	jw_obj_end(&w);
	queue_text(c, jw_finish(&w));
}

/* ---- incoming (lws thread) ---- */

static int queue_uris(yajl_val q, const char **out, int max)
{
	int n = 0;
	for (size_t i = 0; q && YAJL_IS_ARRAY(q) && i < q->u.array.len && n < max; i++) {
		const char *s = YAJL_GET_STRING(q->u.array.values[i]);
		if (s)
			out[n++] = s;
	}
	return n;
}

static void load_at(struct connect_client *c, yajl_val msg, long long pos, bool paused)
{
	const char *uris[256];
	int n = queue_uris(json_get(msg, "queue"), uris, 256);
	long long idx = 0;
	json_get_int(msg, "queue_index", &idx);
	const char *uri = json_get_str(msg, "uri");
	if (n == 0 && uri && *uri) {
		uris[0] = uri;
		n = 1;
		idx = 0;
	}
	if (n == 0)
		return;
	if (idx < 0 || idx >= n)
		idx = 0;
	if (paused)
		engine_prepare(c->engine, uris, n, (int)idx, (int)pos);
	else
		engine_play_from(c->engine, uris, n, (int)idx, (int)pos);
}

/* While a prepare is pending: once the engine holds audio of the prepared item, say so,
 * and the hub stops the source (the engine does not signal buffer changes: poll). */
static void prep_tick(lws_sorted_usec_list_t *sul)
{
	struct connect_client *c = lws_container_of(sul, struct connect_client, sul_prep);
	if (!c->preparing || c->prep_acked)
		return;
	struct engine_snapshot s;
	engine_snapshot(c->engine, &s);
	if (c->wsi && c->registered && strcmp(s.uri, c->prep_uri) == 0 && s.buffer_seconds > 0) {
		struct jw w;
		jw_init(&w);
		jw_obj(&w);
		jw_kstr(&w, "type", "prepared");
		jw_kstr(&w, "uri", c->prep_uri);
		jw_obj_end(&w);
		queue_text(c, jw_finish(&w));
		c->prep_acked = true;
		return;
	}
	lws_sul_schedule(c->ctx, 0, &c->sul_prep, prep_tick, (lws_usec_t)CONNECT_PREP_POLL_MS * 1000);
}

static void run_command(struct connect_client *c, yajl_val msg)
{
	const char *cmd = json_get_str(msg, "cmd");
	long long pos = 0, v = 0;
	bool b = false;
	if (!cmd)
		return;
	json_get_int(msg, "position_ms", &pos);
	if (strcmp(cmd, "prepare") == 0) {
		const char *uri = json_get_str(msg, "uri");
		if (!uri || !*uri)
			return;
		/* Load and buffer at the position, held paused until "start". */
		c->preparing = true;
		snprintf(c->prep_uri, sizeof(c->prep_uri), "%s", uri);
		c->prep_pos = pos;
		c->prep_acked = false;
		load_at(c, msg, pos, true);
		lws_sul_schedule(c->ctx, 0, &c->sul_prep, prep_tick, (lws_usec_t)CONNECT_PREP_POLL_MS * 1000);
	} else if (strcmp(cmd, "start") == 0) {
		bool play = true;
		json_get_bool(msg, "play", &play);
		const char *uri = json_get_str(msg, "uri");
		if (c->preparing && uri && strcmp(uri, c->prep_uri) == 0) {
			/* The source stopped later than the position prepared at (it played on while
			 * the stop travelled): move the start there. The engine takes the seek even
			 * if the manifest has not arrived yet. */
			if (llabs(pos - c->prep_pos) > CONNECT_START_SLACK_MS)
				engine_seek(c->engine, (int)pos, false);
			if (play)
				engine_resume(c->engine);
		} else {
			load_at(c, msg, pos, !play);
		}
		if (!play)
			engine_pause(c->engine);
		c->preparing = false;
		/* Until the engine has taken the start, its snapshot still says paused: a report
		 * of that would tell the hub the new active device is not playing. */
		c->starting = play;
		c->reported = false;
	} else if (strcmp(cmd, "stop") == 0 || strcmp(cmd, "pause") == 0) {
		c->preparing = false;
		c->starting = false;
		engine_pause(c->engine);
	} else if (strcmp(cmd, "resume") == 0) {
		engine_resume(c->engine);
	} else if (strcmp(cmd, "seek") == 0) {
		engine_seek(c->engine, (int)pos, false);
	} else if (strcmp(cmd, "next") == 0) {
		engine_next(c->engine);
	} else if (strcmp(cmd, "previous") == 0) {
		engine_prev(c->engine);
	} else if (strcmp(cmd, "volume") == 0 && json_get_int(msg, "volume", &v)) {
		engine_set_volume(c->engine, (int)v, false);
	} else if (strcmp(cmd, "shuffle") == 0 && json_get_bool(msg, "state", &b)) {
		engine_set_shuffle(c->engine, b);
	} else if (strcmp(cmd, "repeat") == 0) {
		const char *r = json_get_str(msg, "state");
		if (r)
			engine_set_repeat(c->engine, strcmp(r, "track") == 0 ? ENGINE_REPEAT_ONE
						     : strcmp(r, "context") == 0 ? ENGINE_REPEAT_ALL : ENGINE_REPEAT_OFF);
	} else if (strcmp(cmd, "enqueue") == 0) {
		const char *u = json_get_str(msg, "uri");
		if (u)
			engine_enqueue(c->engine, u, false);
	}
}

static void on_text(struct connect_client *c, const char *text)
{
	yajl_val v = json_parse(text, NULL, 0);
	const char *type = v ? json_get_str(v, "type") : NULL;
	if (!type)
		goto out;
	if (strcmp(type, "registered") == 0) {
		bool active = false;
		json_get_bool(v, "active", &active);
		yajl_val st = json_get(v, "state");
		const char *act = st ? json_get_str(st, "active_device_id") : NULL;
		/* Back after being offline while another device took over: stand down. */
		if (c->ever_registered && !active && act && *act) {
			engine_pause(c->engine);
			c->preparing = c->starting = false;
			c->standing_down = true;
		}
		c->registered = c->ever_registered = true;
		c->attempt = 0;
		c->reported = false;
		maybe_report(c, true);
	} else if (strcmp(type, "command") == 0) {
		run_command(c, v);
	}
out:
	yajl_tree_free(v);
}

/* ---- connection management (lws thread) ---- */

static void connect_now(lws_sorted_usec_list_t *sul);

static void schedule_reconnect(struct connect_client *c)
{
	if (atomic_load(&c->quit))
		return;
	c->rng = c->rng * 1103515245u + 12345u;
	double r = (double)((c->rng >> 8) & 0xffff) / 65536.0;
	int ms = connect_backoff_ms(c->attempt++, r);
	lws_sul_schedule(c->ctx, 0, &c->sul_reconnect, connect_now, (lws_usec_t)ms * 1000);
}

static void connect_now(lws_sorted_usec_list_t *sul)
{
	struct connect_client *c = lws_container_of(sul, struct connect_client, sul_reconnect);
	struct lws_client_connect_info ci;
	memset(&ci, 0, sizeof(ci));
	ci.context = c->ctx;
	ci.address = c->host;
	ci.port = c->port;
	ci.path = "/";
	ci.host = c->host;
	ci.origin = c->host;
	ci.protocol = "encore-v1";
	ci.pwsi = &c->wsi;
	ci.userdata = c;
	if (!lws_client_connect_via_info(&ci)) {
		c->wsi = NULL;
		schedule_reconnect(c);
	}
}

static void ping_tick(lws_sorted_usec_list_t *sul)
{
	struct connect_client *c = lws_container_of(sul, struct connect_client, sul_ping);
	if (c->wsi && c->registered) {
		if (mono_ms() - c->last_rx_ms > CONNECT_DEAD_MS) {
			/* A silent peer: drop it and let CLOSED schedule the reconnect. */
			lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
		} else {
			queue_text(c, xstrdup("{\"type\":\"ping\"}"));
		}
	}
	lws_sul_schedule(c->ctx, 0, &c->sul_ping, ping_tick, (lws_usec_t)CONNECT_PING_MS * 1000);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	(void)user;
	struct lws_context *ctx = lws_get_context(wsi);
	struct connect_client *c = ctx ? lws_context_user(ctx) : NULL;
	if (!c)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		c->last_rx_ms = mono_ms();
		buf_free(&c->rx);
		drop_outbox(c);
		send_hello(c);
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		c->last_rx_ms = mono_ms();
		if (c->rx.len + len > 1 << 20) {
			buf_free(&c->rx);
			return -1;
		}
		buf_append(&c->rx, in, len);
		if (lws_is_final_fragment(wsi)) {
			buf_append(&c->rx, "", 1);
			on_text(c, c->rx.data);
			buf_free(&c->rx);
		}
		break;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		if (c->out_head) {
			struct outmsg *m = c->out_head;
			if (lws_write(wsi, (unsigned char *)m->text + LWS_PRE, m->len, LWS_WRITE_TEXT) < (int)m->len)
				return -1;
			c->out_head = m->next;
			if (!c->out_head)
				c->out_tail = NULL;
			free(m);
			if (c->out_head)
				lws_callback_on_writable(wsi);
		}
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
	case LWS_CALLBACK_CLIENT_CLOSED:
		if (wsi == c->wsi || reason == LWS_CALLBACK_CLIENT_CONNECTION_ERROR) {
			c->wsi = NULL;
			c->registered = false;
			drop_outbox(c);
			schedule_reconnect(c);
		}
		break;
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (len >= 2) {
			const unsigned char *p = in;
			if (((p[0] << 8) | p[1]) == 4001) {
				/* The token expired: a cheap authenticated request refreshes it. */
				struct api_response r;
				api_get(c->api, "/v1/me", &r);
				api_response_free(&r);
			}
		}
		break;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		if (atomic_exchange(&c->dirty, false))
			maybe_report(c, false);
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols protocols[] = {
	{"encore-v1", callback, 0, 1 << 16, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

static void *lws_main(void *arg)
{
	struct connect_client *c = arg;
	lws_sul_schedule(c->ctx, 0, &c->sul_reconnect, connect_now, 1);
	lws_sul_schedule(c->ctx, 0, &c->sul_ping, ping_tick, (lws_usec_t)CONNECT_PING_MS * 1000);
	while (!atomic_load(&c->quit))
		if (lws_service(c->ctx, 0) < 0)
			break;
	return NULL;
}

static void *watch_main(void *arg)
{
	struct connect_client *c = arg;
	for (;;) {
		struct pollfd p[2] = {{.fd = c->listener_fd, .events = POLLIN}, {.fd = c->stop_fd, .events = POLLIN}};
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (p[0].revents & POLLIN) {
			uint64_t n;
			if (read(c->listener_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
				break;
			atomic_store(&c->dirty, true);
			lws_cancel_service(c->ctx);
		}
	}
	return NULL;
}

/* Splits http://host:port into host and port. */
static int parse_base(const char *url, char *host, size_t hostlen, int *port)
{
	const char *p = strstr(url, "://");
	if (!p || strncmp(url, "http://", 7) != 0)
		return -EINVAL;   /* TLS is not wired up for the socket yet */
	p += 3;
	size_t n = strcspn(p, ":/");
	if (n == 0 || n >= hostlen)
		return -EINVAL;
	memcpy(host, p, n);
	host[n] = 0;
	*port = 80;
	if (p[n] == ':')
		*port = atoi(p + n + 1);
	return *port > 0 && *port < 65536 ? 0 : -EINVAL;
}

struct connect_client *connect_client_start(const struct connect_client_config *cfg, char *err, size_t errlen)
{
	struct connect_client *c = xcalloc(1, sizeof(*c));
	c->api = cfg->api;
	c->engine = cfg->engine;
	c->listener_fd = c->stop_fd = -1;
	snprintf(c->device_id, sizeof(c->device_id), "%s", cfg->device_id);
	snprintf(c->name, sizeof(c->name), "%s", cfg->name);
	snprintf(c->type, sizeof(c->type), "%s", cfg->type ? cfg->type : "computer");
	c->rng = (unsigned)time(NULL) ^ (unsigned)getpid();
	if (parse_base(api_base_url(cfg->api), c->host, sizeof(c->host), &c->port) != 0) {
		snprintf(err, errlen, "connect: cannot use server URL %s", api_base_url(cfg->api));
		goto fail;
	}
	lws_set_log_level(LLL_ERR, NULL);
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.user = c;
	info.gid = (gid_t)-1;
	info.uid = (uid_t)-1;
	c->ctx = lws_create_context(&info);
	if (!c->ctx) {
		snprintf(err, errlen, "connect: cannot create the WebSocket context");
		goto fail;
	}
	c->listener_fd = engine_add_listener(c->engine);
	c->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->listener_fd < 0 || c->stop_fd < 0) {
		snprintf(err, errlen, "connect: no event fds");
		goto fail;
	}
	if (pthread_create(&c->thread, NULL, lws_main, c) != 0) {
		snprintf(err, errlen, "connect: cannot start thread");
		goto fail;
	}
	if (pthread_create(&c->watcher, NULL, watch_main, c) != 0) {
		atomic_store(&c->quit, true);
		lws_cancel_service(c->ctx);
		pthread_join(c->thread, NULL);
		snprintf(err, errlen, "connect: cannot start thread");
		goto fail;
	}
	return c;
fail:
	if (c->listener_fd >= 0)
		engine_remove_listener(c->engine, c->listener_fd);
	if (c->stop_fd >= 0)
		close(c->stop_fd);
	if (c->ctx)
		lws_context_destroy(c->ctx);
	free(c);
	return NULL;
}

void connect_client_stop(struct connect_client *c)
{
	if (!c)
		return;
	uint64_t one = 1;
	atomic_store(&c->quit, true);
	if (write(c->stop_fd, &one, sizeof(one)) < 0)
		perror("connect: stop");
	pthread_join(c->watcher, NULL);
	lws_cancel_service(c->ctx);
	pthread_join(c->thread, NULL);
	lws_context_destroy(c->ctx);
	drop_outbox(c);
	buf_free(&c->rx);
	engine_remove_listener(c->engine, c->listener_fd);
	close(c->stop_fd);
	free(c);
}
