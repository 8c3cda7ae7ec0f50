/* connect: the socket is a wsclient; everything network-side runs in its callbacks on the
 * lws thread (commands, reports, the prepare timer), so its state needs no lock. A second
 * small thread only waits on the engine's listener fd and wakes the lws loop
 * (wsclient_wake), which then diffs a snapshot
 * against the last report: the engine fires on every position tick, the hub wants only
 * discrete changes (it extrapolates positions itself).
 *
 * While a transfer's "prepare" is pending the engine is loaded but paused, and nothing is
 * reported, so the half-started target never looks like a device taking over. */
#include "connect.h"
#include "engine.h"
#include "id.h"
#include "json.h"
#include "wsclient.h"
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

struct connect_client {
	struct engine *engine;
	char device_id[64], name[64], type[24];
	struct wsclient *ws;
	pthread_t watcher;
	int listener_fd, stop_fd;
	atomic_bool dirty;
	/* lws thread only: */
	bool registered, ever_registered;
	lws_sorted_usec_list_t sul_prep;
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
	wsclient_send(c->ws, json);
	free(json);
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

/* After wsclient's auth: register this device. */
static void on_open(void *owner)
{
	struct connect_client *c = owner;
	struct engine_snapshot s;
	engine_snapshot(c->engine, &s);
	struct jw w;
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
	if (c->registered && strcmp(s.uri, c->prep_uri) == 0 && s.buffer_seconds > 0) {
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
	wsclient_schedule(c->ws, &c->sul_prep, prep_tick, CONNECT_PREP_POLL_MS);
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
		wsclient_schedule(c->ws, &c->sul_prep, prep_tick, CONNECT_PREP_POLL_MS);
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

static void on_text(void *owner, const char *text, size_t len)
{
	(void)len;
	struct connect_client *c = owner;
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
		wsclient_ready(c->ws);
		c->reported = false;
		maybe_report(c, true);
	} else if (strcmp(type, "command") == 0) {
		run_command(c, v);
	}
out:
	yajl_tree_free(v);
}

/* ---- connection (lws thread) ---- */

static void on_down(void *owner)
{
	struct connect_client *c = owner;
	c->registered = false;
}

static void on_wake(void *owner)
{
	struct connect_client *c = owner;
	if (atomic_exchange(&c->dirty, false))
		maybe_report(c, false);
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
			wsclient_wake(c->ws);
		}
	}
	return NULL;
}

struct connect_client *connect_client_start(const struct connect_client_config *cfg, char *err, size_t errlen)
{
	struct connect_client *c = xcalloc(1, sizeof(*c));
	c->engine = cfg->engine;
	c->listener_fd = c->stop_fd = -1;
	snprintf(c->device_id, sizeof(c->device_id), "%s", cfg->device_id);
	snprintf(c->name, sizeof(c->name), "%s", cfg->name);
	snprintf(c->type, sizeof(c->type), "%s", cfg->type ? cfg->type : "computer");
	struct wsclient_config wc = {
		.api = cfg->api,
		.ping_ms = CONNECT_PING_MS,
		.dead_ms = CONNECT_DEAD_MS,
		.owner = c,
		.on_open = on_open,
		.on_text = on_text,
		.on_down = on_down,
		.on_wake = on_wake,
	};
	char werr[256];
	c->ws = wsclient_new(&wc, werr, sizeof(werr));
	if (!c->ws) {
		snprintf(err, errlen, "connect: %s", werr);
		goto fail;
	}
	c->listener_fd = engine_add_listener(c->engine);
	c->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->listener_fd < 0 || c->stop_fd < 0) {
		snprintf(err, errlen, "connect: no event fds");
		goto fail;
	}
	if (wsclient_start(c->ws) != 0) {
		snprintf(err, errlen, "connect: cannot start thread");
		goto fail;
	}
	if (pthread_create(&c->watcher, NULL, watch_main, c) != 0) {
		snprintf(err, errlen, "connect: cannot start thread");
		goto fail;
	}
	return c;
fail:
	wsclient_free(c->ws);
	if (c->listener_fd >= 0)
		engine_remove_listener(c->engine, c->listener_fd);
	if (c->stop_fd >= 0)
		close(c->stop_fd);
	free(c);
	return NULL;
}

void connect_client_stop(struct connect_client *c)
{
	if (!c)
		return;
	uint64_t one = 1;
	if (write(c->stop_fd, &one, sizeof(one)) < 0)
		perror("connect: stop");
	pthread_join(c->watcher, NULL);
	wsclient_free(c->ws);
	engine_remove_listener(c->engine, c->listener_fd);
	close(c->stop_fd);
	free(c);
}
