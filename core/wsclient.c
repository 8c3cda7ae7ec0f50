/* wsclient: the socket, its timers and the receive buffer belong to the lws thread; other
 * threads touch only the outbound queue (under the lock) and wake the loop with
 * lws_cancel_service, whose EVENT_WAIT_CANCELLED callback asks lws for a writable slot
 * and runs the owner's on_wake. */
#include "wsclient.h"
#include "api.h"
#include "buf.h"
#include "json.h"
#include "xmem.h"
#include <errno.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct outmsg {
	struct outmsg *next;
	size_t len;
	char text[];   /* LWS_PRE bytes of headroom, then the message */
};

struct wsclient {
	struct wsclient_config cfg;
	char host[128], path[128];
	int port;
	struct lws_context *ctx;
	pthread_t thread;
	bool started;   /* owner's thread only */
	atomic_bool quit, kick;
	pthread_mutex_t lock;
	/* Under lock. */
	bool open;
	struct outmsg *out_head, *out_tail;
	/* lws thread only. */
	struct lws *wsi;
	bool ready;
	int attempt;
	unsigned rng;
	int64_t last_rx_ms;
	struct buf rx;
	lws_sorted_usec_list_t sul_reconnect, sul_ping;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int wsclient_backoff_ms(int attempt, double r)
{
	double ms = WSCLIENT_BACKOFF_MIN_MS;
	for (int i = 0; i < attempt && ms < WSCLIENT_BACKOFF_MAX_MS; i++)
		ms *= 2;
	if (ms > WSCLIENT_BACKOFF_MAX_MS)
		ms = WSCLIENT_BACKOFF_MAX_MS;
	return (int)(ms * (0.75 + 0.5 * r));
}

int wsclient_assemble(struct buf *rx, const void *in, size_t len, bool final, size_t max)
{
	if (len > max || rx->len > max - len) {
		buf_free(rx);
		return -EMSGSIZE;
	}
	buf_append(rx, in, len);
	return final ? 1 : 0;
}

/* ---- outbound queue ---- */

/* Caller holds the lock. */
static void drop_out_locked(struct wsclient *ws)
{
	while (ws->out_head) {
		struct outmsg *m = ws->out_head;
		ws->out_head = m->next;
		free(m);
	}
	ws->out_tail = NULL;
}

/* lws thread: opens or closes the queue, emptying it either way (a fresh socket starts
 * with the owner's on_open, not with leftovers of the last one). */
static void set_open(struct wsclient *ws, bool open)
{
	pthread_mutex_lock(&ws->lock);
	ws->open = open;
	drop_out_locked(ws);
	pthread_mutex_unlock(&ws->lock);
}

void wsclient_send(struct wsclient *ws, const char *text)
{
	size_t n = strlen(text);
	struct outmsg *m = xmalloc(sizeof(*m) + LWS_PRE + n + 1);
	m->next = NULL;
	m->len = n;
	memcpy(m->text + LWS_PRE, text, n + 1);
	pthread_mutex_lock(&ws->lock);
	if (!ws->open) {
		pthread_mutex_unlock(&ws->lock);
		free(m);
		return;
	}
	if (ws->out_tail)
		ws->out_tail->next = m;
	else
		ws->out_head = m;
	ws->out_tail = m;
	pthread_mutex_unlock(&ws->lock);
	/* Which thread we are on is not known here, and lws_callback_on_writable belongs to the
	 * lws thread: hand the request over. Once per burst. */
	if (!atomic_exchange(&ws->kick, true))
		lws_cancel_service(ws->ctx);
}

void wsclient_wake(struct wsclient *ws)
{
	lws_cancel_service(ws->ctx);
}

/* lws thread: asks for a writable callback when something was queued since the last ask. */
static void flush_kick(struct wsclient *ws)
{
	if (atomic_exchange(&ws->kick, false) && ws->wsi)
		lws_callback_on_writable(ws->wsi);
}

/* ---- connection (lws thread) ---- */

void wsclient_ready(struct wsclient *ws)
{
	ws->ready = true;
	ws->attempt = 0;
}

void wsclient_schedule(struct wsclient *ws, struct lws_sorted_usec_list *sul,
		       void (*cb)(struct lws_sorted_usec_list *), int ms)
{
	lws_sul_schedule(ws->ctx, 0, sul, cb, (lws_usec_t)ms * 1000);
}

static void connect_now(lws_sorted_usec_list_t *sul);

static void schedule_reconnect(struct wsclient *ws)
{
	if (atomic_load(&ws->quit))
		return;
	ws->rng = ws->rng * 1103515245u + 12345u;
	double r = (double)((ws->rng >> 8) & 0xffff) / 65536.0;
	int ms = wsclient_backoff_ms(ws->attempt++, r);
	lws_sul_schedule(ws->ctx, 0, &ws->sul_reconnect, connect_now, (lws_usec_t)ms * 1000);
}

static void connect_now(lws_sorted_usec_list_t *sul)
{
	struct wsclient *ws = lws_container_of(sul, struct wsclient, sul_reconnect);
	struct lws_client_connect_info ci;
	memset(&ci, 0, sizeof(ci));
	ci.context = ws->ctx;
	ci.address = ws->host;
	ci.port = ws->port;
	ci.path = ws->path;
	ci.host = ws->host;
	ci.origin = ws->host;
	ci.protocol = "encore-v1";
	ci.pwsi = &ws->wsi;
	if (!lws_client_connect_via_info(&ci)) {
		ws->wsi = NULL;
		schedule_reconnect(ws);
	}
}

static void ping_tick(lws_sorted_usec_list_t *sul)
{
	struct wsclient *ws = lws_container_of(sul, struct wsclient, sul_ping);
	if (ws->wsi && ws->ready) {
		if (ws->cfg.dead_ms > 0 && mono_ms() - ws->last_rx_ms > ws->cfg.dead_ms) {
			/* A silent peer (stopped, or the path died): drop it and let CLOSED
			 * schedule the reconnect. */
			lws_set_timeout(ws->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
		} else {
			wsclient_send(ws, "{\"type\":\"ping\"}");
			flush_kick(ws);
		}
	}
	lws_sul_schedule(ws->ctx, 0, &ws->sul_ping, ping_tick, (lws_usec_t)ws->cfg.ping_ms * 1000);
}

static void send_auth(struct wsclient *ws)
{
	unsigned long gen;
	char *tok = api_bearer(ws->cfg.api, &gen);
	struct jw j;
	jw_init(&j);
	jw_obj(&j);
	jw_kstr(&j, "type", "auth");
	jw_kstr(&j, "token", tok ? tok : "");
	jw_obj_end(&j);
	free(tok);
	char *text = jw_finish(&j);
	wsclient_send(ws, text);
	free(text);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	(void)user;
	struct lws_context *ctx = lws_get_context(wsi);
	struct wsclient *ws = ctx ? lws_context_user(ctx) : NULL;
	if (!ws)
		return 0;
	/* lws_context_destroy runs CLOSED on the freeing thread: the owner is told nothing. */
	bool live = !atomic_load(&ws->quit);
	switch (reason) {
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		ws->last_rx_ms = mono_ms();
		buf_free(&ws->rx);
		set_open(ws, true);
		send_auth(ws);
		if (live && ws->cfg.on_open)
			ws->cfg.on_open(ws->cfg.owner);
		flush_kick(ws);
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE: {
		ws->last_rx_ms = mono_ms();
		int r = wsclient_assemble(&ws->rx, in, len, lws_is_final_fragment(wsi), WSCLIENT_MAX_MESSAGE);
		if (r < 0)
			return -1;
		if (r > 0) {
			if (live && ws->cfg.on_text)
				ws->cfg.on_text(ws->cfg.owner, ws->rx.data ? ws->rx.data : "", ws->rx.len);
			buf_free(&ws->rx);
			flush_kick(ws);
		}
		break;
	}
	case LWS_CALLBACK_CLIENT_WRITEABLE: {
		pthread_mutex_lock(&ws->lock);
		struct outmsg *m = ws->out_head;
		if (m) {
			ws->out_head = m->next;
			if (!ws->out_head)
				ws->out_tail = NULL;
		}
		bool more = ws->out_head != NULL;
		pthread_mutex_unlock(&ws->lock);
		if (!m)
			break;
		int n = lws_write(wsi, (unsigned char *)m->text + LWS_PRE, m->len, LWS_WRITE_TEXT);
		bool short_write = n < (int)m->len;
		free(m);
		if (short_write)
			return -1;
		if (more)
			lws_callback_on_writable(wsi);
		break;
	}
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
	case LWS_CALLBACK_CLIENT_CLOSED:
		/* A CLOSED of a socket already replaced is stale; a failed connect may have
		 * cleared wsi through pwsi already. */
		if (wsi == ws->wsi || reason == LWS_CALLBACK_CLIENT_CONNECTION_ERROR) {
			ws->wsi = NULL;
			ws->ready = false;
			set_open(ws, false);
			buf_free(&ws->rx);
			if (live && ws->cfg.on_down)
				ws->cfg.on_down(ws->cfg.owner);
			schedule_reconnect(ws);
		}
		break;
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (live && len >= 2) {
			const unsigned char *p = in;
			if (((p[0] << 8) | p[1]) == 4001) {
				/* The token expired: an authenticated request refreshes it for the retry. */
				struct api_response r;
				api_get(ws->cfg.api, "/v1/me", &r);
				api_response_free(&r);
			}
		}
		break;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		if (live && ws->cfg.on_wake)
			ws->cfg.on_wake(ws->cfg.owner);
		flush_kick(ws);
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
	struct wsclient *ws = arg;
	lws_sul_schedule(ws->ctx, 0, &ws->sul_reconnect, connect_now, 1);
	lws_sul_schedule(ws->ctx, 0, &ws->sul_ping, ping_tick, (lws_usec_t)ws->cfg.ping_ms * 1000);
	while (!atomic_load(&ws->quit))
		if (lws_service(ws->ctx, 0) < 0)
			break;
	return NULL;
}

/* Splits http://host[:port][/...] into host and port. */
static int parse_base(const char *url, char *host, size_t hostlen, int *port)
{
	if (strncmp(url, "http://", 7) != 0)
		return -EINVAL;   /* TLS is not wired up for the socket yet */
	const char *p = url + 7;
	size_t n = strcspn(p, ":/");
	if (n == 0 || n >= hostlen)
		return -EINVAL;
	memcpy(host, p, n);
	host[n] = 0;
	*port = p[n] == ':' ? atoi(p + n + 1) : 80;
	return *port > 0 && *port < 65536 ? 0 : -EINVAL;
}

struct wsclient *wsclient_new(const struct wsclient_config *cfg, char *err, size_t errlen)
{
	struct wsclient *ws = xcalloc(1, sizeof(*ws));
	ws->cfg = *cfg;
	pthread_mutex_init(&ws->lock, NULL);
	/* Two clients in one process (Connect and the playlist push) must not retry in step. */
	ws->rng = (unsigned)time(NULL) ^ ((unsigned)getpid() << 8) ^ (unsigned)(uintptr_t)ws;
	snprintf(ws->path, sizeof(ws->path), "%s", cfg->path ? cfg->path : "/");
	const char *url = api_base_url(cfg->api);
	if (cfg->ping_ms <= 0 || parse_base(url, ws->host, sizeof(ws->host), &ws->port) != 0) {
		snprintf(err, errlen, "cannot use server URL %s for a WebSocket (needs http://host[:port])", url);
		goto fail;
	}
	lws_set_log_level(LLL_ERR, NULL);
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.user = ws;
	info.gid = (gid_t)-1;
	info.uid = (uid_t)-1;
	ws->ctx = lws_create_context(&info);
	if (!ws->ctx) {
		snprintf(err, errlen, "cannot create the WebSocket context");
		goto fail;
	}
	return ws;
fail:
	if (ws->ctx)
		lws_context_destroy(ws->ctx);
	pthread_mutex_destroy(&ws->lock);
	free(ws);
	return NULL;
}

int wsclient_start(struct wsclient *ws)
{
	int rc = pthread_create(&ws->thread, NULL, lws_main, ws);
	ws->started = rc == 0;
	return -rc;
}

void wsclient_free(struct wsclient *ws)
{
	if (!ws)
		return;
	atomic_store(&ws->quit, true);
	lws_cancel_service(ws->ctx);
	if (ws->started)
		pthread_join(ws->thread, NULL);
	lws_context_destroy(ws->ctx);
	pthread_mutex_lock(&ws->lock);
	drop_out_locked(ws);
	pthread_mutex_unlock(&ws->lock);
	buf_free(&ws->rx);
	pthread_mutex_destroy(&ws->lock);
	free(ws);
}
