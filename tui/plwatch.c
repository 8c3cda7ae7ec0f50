/* plwatch: the socket is a wsclient; the subscription lives in its callbacks on the lws
 * thread. The UI thread only sets the wanted playlist and reads the latest snapshot and
 * queued pushes, all under one mutex, and wakes the lws loop with wsclient_wake. */
#include "plwatch.h"
#include "connect.h"
#include "id.h"
#include "json.h"
#include "wsclient.h"
#include "xmem.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct pushmsg {
	struct pushmsg *next;
	char text[];
};

#define PLWATCH_QUEUE_MAX 256   /* pushes the UI has not taken yet; beyond, it refetches */

struct plwatch {
	struct wsclient *ws;
	int efd;
	pthread_mutex_t lock;
	/* Under lock. */
	char want[ID_LEN + 1];      /* "" = none */
	char snapshot[128];         /* of want */
	bool live;
	struct pushmsg *in_head, *in_tail;   /* playlist_changed texts of want, oldest first */
	int nin;
	/* lws thread only. */
	bool authed;
	char subscribed[ID_LEN + 1];
};

static void notify(struct plwatch *w)
{
	uint64_t one = 1;
	ssize_t n = write(w->efd, &one, sizeof(one));
	(void)n;
}

static void send_text(struct plwatch *w, char *json)
{
	wsclient_send(w->ws, json);
	free(json);
}

/* Caller holds the lock. */
static void drop_in(struct plwatch *w)
{
	while (w->in_head) {
		struct pushmsg *m = w->in_head;
		w->in_head = m->next;
		free(m);
	}
	w->in_tail = NULL;
	w->nin = 0;
}

static void send_sub(struct plwatch *w, const char *type, const char *id)
{
	struct jw j;
	jw_init(&j);
	jw_obj(&j);
	jw_kstr(&j, "type", type);
	jw_kstr(&j, "playlist", id);
	jw_obj_end(&j);
	send_text(w, jw_finish(&j));
}

/* Brings the server's subscription in line with the wanted playlist (lws thread). */
static void sync_subscription(struct plwatch *w)
{
	if (!w->authed)
		return;
	char want[ID_LEN + 1];
	pthread_mutex_lock(&w->lock);
	snprintf(want, sizeof(want), "%s", w->want);
	pthread_mutex_unlock(&w->lock);
	if (strcmp(want, w->subscribed) == 0)
		return;
	if (w->subscribed[0])
		send_sub(w, "unsubscribe", w->subscribed);
	if (want[0])
		send_sub(w, "subscribe", want);
	snprintf(w->subscribed, sizeof(w->subscribed), "%s", want);
}

static void on_text(void *owner, const char *text, size_t len)
{
	struct plwatch *w = owner;
	yajl_val v = json_parse(text, NULL, 0);
	const char *type = json_get_str(v, "type");
	if (!type)
		goto out;
	if (strcmp(type, "auth_ok") == 0) {
		w->authed = true;
		wsclient_ready(w->ws);
		w->subscribed[0] = 0;
		sync_subscription(w);
	} else if (strcmp(type, "subscribed") == 0 || strcmp(type, "playlist_changed") == 0 || strcmp(type, "error") == 0) {
		const char *p = json_get_str(v, "playlist"), *snap = json_get_str(v, "snapshot_id");
		pthread_mutex_lock(&w->lock);
		bool mine = p && strcmp(p, w->want) == 0;
		if (mine && type[0] == 'e')
			w->live = false;  /* refused (404): the UI keeps polling */
		else if (mine && snap) {
			snprintf(w->snapshot, sizeof(w->snapshot), "%s", snap);
			w->live = true;
			if (type[0] == 'p' && w->nin < PLWATCH_QUEUE_MAX) {
				/* Kept whole for the UI to apply; when the UI falls this far behind it
				 * sees the latest snapshot ahead of what it applied and refetches. */
				struct pushmsg *m = xmalloc(sizeof(*m) + len + 1);
				m->next = NULL;
				memcpy(m->text, text, len + 1);
				if (w->in_tail)
					w->in_tail->next = m;
				else
					w->in_head = m;
				w->in_tail = m;
				w->nin++;
			}
		}
		pthread_mutex_unlock(&w->lock);
		if (mine)
			notify(w);
	}
out:
	yajl_tree_free(v);
}

static void on_down(void *owner)
{
	struct plwatch *w = owner;
	w->authed = false;
	w->subscribed[0] = 0;
	pthread_mutex_lock(&w->lock);
	bool was = w->live;
	w->live = false;
	pthread_mutex_unlock(&w->lock);
	if (was)
		notify(w);   /* the UI falls back to polling */
}

static void on_wake(void *owner)
{
	sync_subscription(owner);
}

struct plwatch *plwatch_start(struct api *api, char *err, size_t errlen)
{
	struct plwatch *w = xcalloc(1, sizeof(*w));
	pthread_mutex_init(&w->lock, NULL);
	w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->efd < 0) {
		snprintf(err, errlen, "cannot create the playlist push socket");
		goto fail;
	}
	struct wsclient_config wc = {
		.api = api,
		.ping_ms = CONNECT_PING_MS,
		.owner = w,
		.on_text = on_text,
		.on_down = on_down,
		.on_wake = on_wake,
	};
	char werr[256];
	w->ws = wsclient_new(&wc, werr, sizeof(werr));
	if (!w->ws) {
		snprintf(err, errlen, "playlist push: %s", werr);
		goto fail;
	}
	if (wsclient_start(w->ws) != 0) {
		snprintf(err, errlen, "cannot start the playlist push thread");
		goto fail;
	}
	return w;
fail:
	wsclient_free(w->ws);
	if (w->efd >= 0)
		close(w->efd);
	pthread_mutex_destroy(&w->lock);
	free(w);
	return NULL;
}

void plwatch_stop(struct plwatch *w)
{
	if (!w)
		return;
	wsclient_free(w->ws);
	drop_in(w);
	close(w->efd);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

int plwatch_fd(struct plwatch *w)
{
	return w->efd;
}

void plwatch_ack(struct plwatch *w)
{
	uint64_t v;
	ssize_t n = read(w->efd, &v, sizeof(v));
	(void)n;
}

void plwatch_watch(struct plwatch *w, const char *id)
{
	pthread_mutex_lock(&w->lock);
	if (strcmp(w->want, id ? id : "") != 0) {
		snprintf(w->want, sizeof(w->want), "%s", id ? id : "");
		w->snapshot[0] = 0;
		w->live = false;
		drop_in(w);
	}
	pthread_mutex_unlock(&w->lock);
	wsclient_wake(w->ws);
}

bool plwatch_snapshot(struct plwatch *w, char *out, size_t outlen)
{
	pthread_mutex_lock(&w->lock);
	snprintf(out, outlen, "%s", w->snapshot);
	bool live = w->live;
	pthread_mutex_unlock(&w->lock);
	return live;
}

char *plwatch_next(struct plwatch *w)
{
	pthread_mutex_lock(&w->lock);
	struct pushmsg *m = w->in_head;
	if (m) {
		w->in_head = m->next;
		if (!w->in_head)
			w->in_tail = NULL;
		w->nin--;
	}
	pthread_mutex_unlock(&w->lock);
	if (!m)
		return NULL;
	char *text = xstrdup(m->text);
	free(m);
	return text;
}
