/* plwatch: the socket, its timers and the subscription live on the lws thread; the UI
 * thread only sets the wanted playlist and reads the latest snapshot, both under one
 * mutex, and wakes the lws loop with lws_cancel_service. */
#include "plwatch.h"
#include "api.h"
#include "connect.h"
#include "id.h"
#include "json.h"
#include "xmem.h"
#include <errno.h>
#include <libwebsockets.h>
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

#define PLWATCH_QUEUE_MAX 256   /* pushes the UI has not taken yet; beyond, it refetches */

struct plwatch {
	struct api *api;
	char host[128];
	int port;
	struct lws_context *ctx;
	pthread_t thread;
	int efd;
	atomic_bool quit;
	pthread_mutex_t lock;
	/* Under lock. */
	char want[ID_LEN + 1];      /* "" = none */
	char snapshot[128];         /* of want */
	bool live;
	struct outmsg *in_head, *in_tail;   /* playlist_changed texts of want, oldest first */
	int nin;
	/* lws thread only. */
	struct lws *wsi;
	bool authed;
	char subscribed[ID_LEN + 1];
	struct outmsg *out_head, *out_tail;
	struct buf rx;
	int attempt;
	unsigned rng;
	lws_sorted_usec_list_t sul_reconnect, sul_ping;
};

static void notify(struct plwatch *w)
{
	uint64_t one = 1;
	ssize_t n = write(w->efd, &one, sizeof(one));
	(void)n;
}

static void send_text(struct plwatch *w, char *json)
{
	size_t n = strlen(json);
	struct outmsg *m = xmalloc(sizeof(*m) + LWS_PRE + n + 1);
	m->next = NULL;
	m->len = n;
	memcpy(m->text + LWS_PRE, json, n + 1);
	free(json);
	if (w->out_tail)
		w->out_tail->next = m;
	else
		w->out_head = m;
	w->out_tail = m;
	if (w->wsi)
		lws_callback_on_writable(w->wsi);
}

/* Caller holds the lock. */
static void drop_in(struct plwatch *w)
{
	while (w->in_head) {
		struct outmsg *m = w->in_head;
		w->in_head = m->next;
		free(m);
	}
	w->in_tail = NULL;
	w->nin = 0;
}

static void drop_out(struct plwatch *w)
{
	while (w->out_head) {
		struct outmsg *m = w->out_head;
		w->out_head = m->next;
		free(m);
	}
	w->out_tail = NULL;
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
	if (!w->wsi || !w->authed)
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

static void on_text(struct plwatch *w, const char *text)
{
	yajl_val v = json_parse(text, NULL, 0);
	const char *type = json_get_str(v, "type");
	if (!type)
		goto out;
	if (strcmp(type, "auth_ok") == 0) {
		w->authed = true;
		w->attempt = 0;
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
				size_t n = strlen(text);
				struct outmsg *m = xmalloc(sizeof(*m) + n + 1);
				m->next = NULL;
				m->len = n;
				memcpy(m->text, text, n + 1);
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

static void connect_now(lws_sorted_usec_list_t *sul);

static void schedule_reconnect(struct plwatch *w)
{
	if (atomic_load(&w->quit))
		return;
	w->rng = w->rng * 1103515245u + 12345u;
	double r = (double)((w->rng >> 8) & 0xffff) / 65536.0;
	int ms = connect_backoff_ms(w->attempt++, r);
	lws_sul_schedule(w->ctx, 0, &w->sul_reconnect, connect_now, (lws_usec_t)ms * 1000);
}

static void connect_now(lws_sorted_usec_list_t *sul)
{
	struct plwatch *w = lws_container_of(sul, struct plwatch, sul_reconnect);
	struct lws_client_connect_info ci;
	memset(&ci, 0, sizeof(ci));
	ci.context = w->ctx;
	ci.address = w->host;
	ci.port = w->port;
	ci.path = "/";
	ci.host = w->host;
	ci.origin = w->host;
	ci.protocol = "encore-v1";
	ci.pwsi = &w->wsi;
	if (!lws_client_connect_via_info(&ci)) {
		w->wsi = NULL;
		schedule_reconnect(w);
	}
}

static void ping_tick(lws_sorted_usec_list_t *sul)
{
	struct plwatch *w = lws_container_of(sul, struct plwatch, sul_ping);
	if (w->wsi && w->authed)
		send_text(w, xstrdup("{\"type\":\"ping\"}"));
	lws_sul_schedule(w->ctx, 0, &w->sul_ping, ping_tick, (lws_usec_t)CONNECT_PING_MS * 1000);
}

static void set_down(struct plwatch *w)
{
	w->wsi = NULL;
	w->authed = false;
	w->subscribed[0] = 0;
	drop_out(w);
	buf_free(&w->rx);
	pthread_mutex_lock(&w->lock);
	bool was = w->live;
	w->live = false;
	pthread_mutex_unlock(&w->lock);
	if (was)
		notify(w);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	(void)user;
	struct lws_context *ctx = lws_get_context(wsi);
	struct plwatch *w = ctx ? lws_context_user(ctx) : NULL;
	if (!w)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_ESTABLISHED: {
		buf_free(&w->rx);
		drop_out(w);
		unsigned long gen;
		char *tok = api_bearer(w->api, &gen);
		struct jw j;
		jw_init(&j);
		jw_obj(&j);
		jw_kstr(&j, "type", "auth");
		jw_kstr(&j, "token", tok ? tok : "");
		jw_obj_end(&j);
		free(tok);
		send_text(w, jw_finish(&j));
		break;
	}
	case LWS_CALLBACK_CLIENT_RECEIVE:
		if (w->rx.len + len > 1 << 20) {
			buf_free(&w->rx);
			return -1;
		}
		buf_append(&w->rx, in, len);
		if (lws_is_final_fragment(wsi)) {
			buf_append(&w->rx, "", 1);
			on_text(w, w->rx.data);
			buf_free(&w->rx);
		}
		break;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		if (w->out_head) {
			struct outmsg *m = w->out_head;
			if (lws_write(wsi, (unsigned char *)m->text + LWS_PRE, m->len, LWS_WRITE_TEXT) < (int)m->len)
				return -1;
			w->out_head = m->next;
			if (!w->out_head)
				w->out_tail = NULL;
			free(m);
			if (w->out_head)
				lws_callback_on_writable(wsi);
		}
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
	case LWS_CALLBACK_CLIENT_CLOSED:
		if (wsi == w->wsi || reason == LWS_CALLBACK_CLIENT_CONNECTION_ERROR) {
			set_down(w);
			schedule_reconnect(w);
		}
		break;
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (len >= 2) {
			const unsigned char *p = in;
			if (((p[0] << 8) | p[1]) == 4001) {
				/* The token expired: an authenticated request refreshes it for the retry. */
				struct api_response r;
				api_get(w->api, "/v1/me", &r);
				api_response_free(&r);
			}
		}
		break;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		sync_subscription(w);
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
	struct plwatch *w = arg;
	lws_sul_schedule(w->ctx, 0, &w->sul_reconnect, connect_now, 1);
	lws_sul_schedule(w->ctx, 0, &w->sul_ping, ping_tick, (lws_usec_t)CONNECT_PING_MS * 1000);
	while (!atomic_load(&w->quit))
		if (lws_service(w->ctx, 0) < 0)
			break;
	return NULL;
}

struct plwatch *plwatch_start(struct api *api, char *err, size_t errlen)
{
	struct plwatch *w = xcalloc(1, sizeof(*w));
	w->api = api;
	w->efd = -1;
	w->rng = (unsigned)time(NULL) ^ ((unsigned)getpid() << 8);
	pthread_mutex_init(&w->lock, NULL);
	const char *url = api_base_url(api), *p = strstr(url, "://");
	size_t n = p ? strcspn(p + 3, ":/") : 0;
	if (!p || strncmp(url, "http://", 7) != 0 || n == 0 || n >= sizeof(w->host)) {
		snprintf(err, errlen, "playlist push needs an http:// server URL");
		goto fail;
	}
	memcpy(w->host, p + 3, n);
	w->host[n] = 0;
	w->port = p[3 + n] == ':' ? atoi(p + 3 + n + 1) : 80;
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.user = w;
	info.gid = (gid_t)-1;
	info.uid = (uid_t)-1;
	w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	w->ctx = w->efd >= 0 ? lws_create_context(&info) : NULL;
	if (!w->ctx) {
		snprintf(err, errlen, "cannot create the playlist push socket");
		goto fail;
	}
	if (pthread_create(&w->thread, NULL, lws_main, w) != 0) {
		snprintf(err, errlen, "cannot start the playlist push thread");
		goto fail;
	}
	return w;
fail:
	if (w->ctx)
		lws_context_destroy(w->ctx);
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
	atomic_store(&w->quit, true);
	lws_cancel_service(w->ctx);
	pthread_join(w->thread, NULL);
	lws_context_destroy(w->ctx);
	drop_out(w);
	drop_in(w);
	buf_free(&w->rx);
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
	lws_cancel_service(w->ctx);
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
	struct outmsg *m = w->in_head;
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
