/* http: the service thread never blocks: it parses, queues, and writes.
 *
 * Ownership of a request: the connection's per-session data (pss) points to its job while
 * the job is being read or written. Once dispatched, the job belongs to the worker pool
 * until it appears on the done list. If the connection closes meanwhile, the pss drops
 * its pointer and marks the job orphaned; the service thread frees orphaned jobs when
 * they come back. Both the close and the drain run on the service thread, so that flag
 * needs no lock; only the two queues do. */
#include "http.h"
#include "json.h"
#include "xmem.h"
#include <errno.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* How long a stopping server waits for in-flight requests. */
#define HTTP_DRAIN_SECONDS 10
/* Bytes per response write, and the protocol's tx_packet_size: left at 0, lws caps every
 * send() at its 4 KiB service buffer and queues the rest, which cost about 20 send()
 * calls per segment and 2.5-4x in segment throughput (measured with bench/cdn.sh). */
#define HTTP_WRITE_CHUNK 65536
#define JWT_TOKEN_ARG_MAX 4200   /* a ?token= JWT and its name */

struct job {
	struct job *next;
	struct lws *wsi;        /* meaningless once orphaned; service thread only */
	bool orphaned;
	bool in_pool;           /* queued, running or on the done list */
	struct http_req req;
	struct http_resp resp;
};

struct pss {
	struct job *job;
	size_t body_limit;
	bool dispatched;
	bool headers_sent;
	size_t sent;
	int64_t next_send_us;    /* bandwidth shaping: earliest time for the next slice */
	bool flushing;           /* all written; waiting for libwebsockets to send its buffer */
};

/* An outgoing WebSocket message (or close, when close_code is set). */
struct ws_msg {
	struct ws_msg *next;
	uint64_t conn;
	int close_code;
	size_t len;
	unsigned char data[];   /* LWS_PRE bytes of headroom, then the payload */
};

/* Per WebSocket connection; service thread only. */
struct wss {
	uint64_t id;
	struct lws *wsi;
	struct buf in;           /* message being reassembled from fragments */
	struct ws_msg *out_head, *out_tail;
};

struct http_server {
	struct http_config cfg;
	struct lws_context *lws;
	int port;
	atomic_int stopping;
	int inflight;            /* service thread only */

	pthread_mutex_t lock;
	pthread_cond_t work_cv;
	struct job *work_head, *work_tail;
	struct job *done_head, *done_tail;
	bool workers_quit;
	pthread_t *threads;
	int nthreads;
	atomic_int next_worker_index;

	/* WebSocket: the outgoing queue is filled by any thread under lock; the connection
	 * table belongs to the service thread. */
	struct ws_msg *wsq_head, *wsq_tail;
	struct wss **ws_conns;
	size_t nws, wscap;
	uint64_t next_ws_id;
};

int64_t http_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

const char *http_arg(const struct http_req *req, const char *name)
{
	for (int i = 0; i < req->nargs; i++)
		if (strcmp(req->args[i].name, name) == 0)
			return req->args[i].value;
	return NULL;
}

void http_resp_header(struct http_resp *resp, const char *name, const char *value)
{
	if (resp->nheaders >= HTTP_MAX_RESP_HEADERS)
		return;
	struct http_resp_header *h = &resp->headers[resp->nheaders++];
	snprintf(h->name, sizeof(h->name), "%s:", name);
	for (char *c = h->name; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	snprintf(h->value, sizeof(h->value), "%s", value);
}

void http_resp_json(struct http_resp *resp, int status, char *json)
{
	resp->status = status;
	resp->content_type = "application/json";
	buf_reset(&resp->body);
	buf_puts(&resp->body, json);
	free(json);
}

void http_resp_error(struct http_resp *resp, int status, const char *message)
{
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "error");
	jw_obj(&w);
	jw_kint(&w, "status", status);
	jw_kstr(&w, "message", message);
	jw_obj_end(&w);
	jw_obj_end(&w);
	http_resp_json(resp, status, jw_finish(&w));
}

static void job_free(struct job *j)
{
	if (!j)
		return;
	free(j->req.path);
	for (int i = 0; i < j->req.nargs; i++) {
		free(j->req.args[i].name);
		free(j->req.args[i].value);
	}
	buf_free(&j->req.body);
	free(j->req.authorization);
	free(j->req.if_none_match);
	free(j->req.content_type);
	free(j->req.range);
	if (j->resp.ext_release)
		j->resp.ext_release(j->resp.ext_ctx);
	free(j->req.app_data);
	buf_free(&j->resp.body);
	free(j);
}

static char *copy_header(struct lws *wsi, enum lws_token_indexes tok)
{
	int len = lws_hdr_total_length(wsi, tok);
	if (len <= 0)
		return NULL;
	char *s = xmalloc((size_t)len + 1);
	if (lws_hdr_copy(wsi, s, len + 1, tok) < 0) {
		free(s);
		return NULL;
	}
	return s;
}

static void read_args(struct lws *wsi, struct http_req *req)
{
	for (int i = 0; req->nargs < HTTP_MAX_ARGS; i++) {
		/* Sized per argument: a long search query must arrive whole (the route then refuses
		 * it with a clear message) rather than vanish with every argument after it. */
		int len = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i);
		if (len < 0)
			break;
		char *frag = xmalloc((size_t)len + 1);
		int n = lws_hdr_copy_fragment(wsi, frag, len + 1, WSI_TOKEN_HTTP_URI_ARGS, i);
		if (n < 0) {
			free(frag);
			break;
		}
		char *eq = strchr(frag, '=');
		struct http_arg *a = &req->args[req->nargs++];
		if (eq) {
			a->name = xstrndup(frag, (size_t)(eq - frag));
			a->value = xstrdup(eq + 1);
		} else {
			a->name = xstrdup(frag);
			a->value = xstrdup("");
		}
		free(frag);
	}
}

static void *worker_main(void *arg);

static void respond(struct http_server *s, struct lws *wsi, struct pss *pss)
{
	(void)s;
	pss->headers_sent = false;
	pss->sent = 0;
	lws_callback_on_writable(wsi);
}

static void dispatch(struct http_server *s, struct lws *wsi, struct pss *pss)
{
	pss->dispatched = true;
	pss->job->in_pool = true;
	s->inflight++;
	/* The handler may take a while (a transcode, a big query): don't let lws time us out. */
	lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
	pthread_mutex_lock(&s->lock);
	struct job *j = pss->job;
	j->next = NULL;
	if (s->work_tail)
		s->work_tail->next = j;
	else
		s->work_head = j;
	s->work_tail = j;
	pthread_cond_signal(&s->work_cv);
	pthread_mutex_unlock(&s->lock);
}

/* Answers on the service thread without a worker (413, early errors). */
static void respond_now(struct http_server *s, struct lws *wsi, struct pss *pss, int status, const char *msg, bool close)
{
	http_resp_error(&pss->job->resp, status, msg);
	pss->job->resp.close = close;
	pss->dispatched = true;
	s->inflight++;
	respond(s, wsi, pss);
}

static void drain_done(struct http_server *s)
{
	pthread_mutex_lock(&s->lock);
	struct job *j = s->done_head;
	s->done_head = s->done_tail = NULL;
	pthread_mutex_unlock(&s->lock);
	while (j) {
		struct job *next = j->next;
		j->next = NULL;
		j->in_pool = false;
		if (j->orphaned) {
			s->inflight--;
			job_free(j);
		} else {
			struct pss *pss = lws_wsi_user(j->wsi);
			respond(s, j->wsi, pss);
		}
		j = next;
	}
}

static void finish_job(struct http_server *s, struct pss *pss)
{
	struct job *j = pss->job;
	if (s->cfg.app.log)
		s->cfg.app.log(s->cfg.app.ctx, &j->req, &j->resp, http_now_us() - j->req.start_us);
	job_free(j);
	pss->job = NULL;
	pss->dispatched = false;
	s->inflight--;
}

static struct job *job_new(struct lws *wsi)
{
	struct job *j = xcalloc(1, sizeof(*j));
	j->wsi = wsi;
	j->resp.status = 200;
	j->resp.content_type = "application/json";
	j->req.start_us = http_now_us();
	unsigned char rnd[8];
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(j->req.request_id, sizeof(j->req.request_id), rnd, sizeof(rnd));
	return j;
}

static const char *method_name(int m)
{
	switch (m) {
	case LWSHUMETH_GET: return "GET";
	case LWSHUMETH_POST: return "POST";
	case LWSHUMETH_PUT: return "PUT";
	case LWSHUMETH_PATCH: return "PATCH";
	case LWSHUMETH_DELETE: return "DELETE";
	case LWSHUMETH_OPTIONS: return "OPTIONS";
	case LWSHUMETH_HEAD: return "HEAD";
	default: return NULL;
	}
}

/* Starts a request: returns true when a body is expected before dispatching. */
static int begin_request(struct http_server *s, struct lws *wsi, struct pss *pss)
{
	job_free(pss->job);
	pss->job = job_new(wsi);
	pss->dispatched = false;
	struct http_req *req = &pss->job->req;

	char *uri = NULL;
	int urilen = 0;
	const char *m = method_name(lws_http_get_uri_and_method(wsi, &uri, &urilen));
	req->path = uri && urilen > 0 ? xstrndup(uri, (size_t)urilen) : xstrdup("/");
	lws_get_peer_simple(wsi, req->client_ip, sizeof(req->client_ip));
	if (!m) {
		snprintf(req->method, sizeof(req->method), "?");
		respond_now(s, wsi, pss, 405, "method not allowed", true);
		return 0;
	}
	snprintf(req->method, sizeof(req->method), "%s", m);
	read_args(wsi, req);
	req->authorization = copy_header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
	req->if_none_match = copy_header(wsi, WSI_TOKEN_HTTP_IF_NONE_MATCH);
	req->content_type = copy_header(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE);
	req->range = copy_header(wsi, WSI_TOKEN_HTTP_RANGE);

	if (atomic_load(&s->stopping)) {
		respond_now(s, wsi, pss, 503, "server is shutting down", true);
		return 0;
	}
	char *cl = copy_header(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
	long long len = cl ? strtoll(cl, NULL, 10) : 0;
	free(cl);
	pss->body_limit = s->cfg.body_limit ? s->cfg.body_limit(s->cfg.app.ctx, m, req->path, s->cfg.max_body) : s->cfg.max_body;
	if (len < 0 || (size_t)len > pss->body_limit) {
		char msg[96];
		snprintf(msg, sizeof(msg), "request body too large (limit %zu bytes)", pss->body_limit);
		respond_now(s, wsi, pss, 413, msg, true);
		return 0;
	}
	if (len > 0 && strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0)
		return 1;
	if (s->cfg.app.fast && strcmp(m, "GET") == 0 && s->cfg.app.fast(s->cfg.app.ctx, req, &pss->job->resp)) {
		pss->dispatched = true;
		s->inflight++;
		respond(s, wsi, pss);
		return 0;
	}
	dispatch(s, wsi, pss);
	return 0;
}

/* Bytes the shaped connection may send now, scheduling a timer for the rest. */
static size_t shaped_allowance(struct lws *wsi, struct pss *pss, const struct http_resp *r, size_t want)
{
	if (r->bandwidth_kbps <= 0)
		return want;
	/* Send in 50 ms slices: small enough to look like a slow link to a client's throughput
	 * estimate, large enough not to spin the loop. */
	size_t slice = (size_t)r->bandwidth_kbps * 1000 / 8 / 20;
	if (slice < 256)
		slice = 256;
	int64_t now = http_now_us();
	if (now < pss->next_send_us) {
		lws_set_timer_usecs(wsi, pss->next_send_us - now);
		return 0;
	}
	pss->next_send_us = now + 50000;
	return want < slice ? want : slice;
}

static int write_response(struct http_server *s, struct lws *wsi, struct pss *pss)
{
	struct job *j = pss->job;
	if (!j || !pss->dispatched)
		return 0;
	struct http_resp *r = &j->resp;
	const uint8_t *body = r->ext_data ? r->ext_data : (const uint8_t *)r->body.data;
	size_t body_len = r->ext_data ? r->ext_len : r->body.len;
	if (pss->flushing) {
		/* The body is written but libwebsockets still holds part of it: the response is not
		 * finished (and a draining server must not exit) until the socket took it all. */
		if (lws_partial_buffered(wsi)) {
			lws_callback_on_writable(wsi);
			return 0;
		}
		goto done;
	}
	if (!pss->headers_sent) {
		if (r->delay_us > 0) {
			int64_t due = j->req.start_us + r->delay_us, now = http_now_us();
			if (now < due) {
				lws_set_timer_usecs(wsi, due - now);
				return 0;
			}
		}
		unsigned char hbuf[LWS_PRE + 4096];
		unsigned char *start = hbuf + LWS_PRE, *p = start, *end = hbuf + sizeof(hbuf) - 1;
		if (lws_add_http_common_headers(wsi, (unsigned)r->status, r->content_type, (lws_filepos_t)body_len, &p, end))
			return -1;
		if (lws_add_http_header_by_name(wsi, (const unsigned char *)"x-request-id:",
						(const unsigned char *)j->req.request_id, (int)strlen(j->req.request_id), &p, end))
			return -1;
		for (int i = 0; i < r->nheaders; i++)
			if (lws_add_http_header_by_name(wsi, (const unsigned char *)r->headers[i].name,
							(const unsigned char *)r->headers[i].value,
							(int)strlen(r->headers[i].value), &p, end))
				return -1;
		if (r->close && lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)"close", 5, &p, end))
			return -1;
		if (lws_finalize_write_http_header(wsi, start, &p, end))
			return -1;
		pss->headers_sent = true;
		pss->next_send_us = 0;
		if (body_len > 0) {
			lws_callback_on_writable(wsi);
			return 0;
		}
	} else {
		unsigned char chunk[LWS_PRE + HTTP_WRITE_CHUNK];
		size_t n = body_len - pss->sent;
		if (n > HTTP_WRITE_CHUNK)
			n = HTTP_WRITE_CHUNK;
		if (r->drop_mid_body && pss->sent >= body_len / 2)
			return -1;  /* injected fault: reset mid-body */
		if (r->drop_mid_body && pss->sent + n > body_len / 2)
			n = body_len / 2 - pss->sent;
		n = shaped_allowance(wsi, pss, r, n);
		if (n == 0)
			return 0;
		memcpy(chunk + LWS_PRE, body + pss->sent, n);
		bool final = pss->sent + n == body_len;
		if (lws_write(wsi, chunk + LWS_PRE, n, final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
			return -1;
		pss->sent += n;
		if (!final) {
			if (r->bandwidth_kbps > 0)
				lws_set_timer_usecs(wsi, pss->next_send_us > http_now_us() ? pss->next_send_us - http_now_us() : 1);
			else
				lws_callback_on_writable(wsi);
			return 0;
		}
		if (lws_partial_buffered(wsi)) {
			pss->flushing = true;
			lws_callback_on_writable(wsi);
			return 0;
		}
	}
done:
	pss->flushing = false;
	bool close = r->close;
	finish_job(s, pss);
	if (close)
		return -1;
	if (lws_http_transaction_completed(wsi))
		return -1;
	return 0;
}

static int callback_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct pss *pss = user;
	struct lws_context *ctx = lws_get_context(wsi);
	struct http_server *s = ctx ? lws_context_user(ctx) : NULL;

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		return begin_request(s, wsi, pss) < 0 ? -1 : 0;
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return 1;  /* a WebSocket upgrade that did not ask for HTTP_WS_PROTOCOL */
	case LWS_CALLBACK_HTTP_BODY:
		if (!pss->job || pss->dispatched)
			return 0;
		if (pss->job->req.body.len + len > pss->body_limit) {
			respond_now(s, wsi, pss, 413, "request body too large", true);
			return 0;
		}
		buf_append(&pss->job->req.body, in, len);
		return 0;
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		if (pss->job && !pss->dispatched)
			dispatch(s, wsi, pss);
		return 0;
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return write_response(s, wsi, pss);
	case LWS_CALLBACK_TIMER:
		lws_callback_on_writable(wsi);
		return 0;
	case LWS_CALLBACK_CLOSED_HTTP:
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		if (pss && pss->job) {
			if (pss->job->in_pool) {
				pss->job->orphaned = true;
			} else {
				if (pss->dispatched)
					s->inflight--;
				job_free(pss->job);
			}
			pss->job = NULL;
		}
		return 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		if (s)
			drain_done(s);
		return 0;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static void ws_enqueue(struct http_server *s, uint64_t conn, int close_code, const char *text, size_t len)
{
	struct ws_msg *m = xmalloc(sizeof(*m) + LWS_PRE + len + 1);
	m->next = NULL;
	m->conn = conn;
	m->close_code = close_code;
	m->len = len;
	memcpy(m->data + LWS_PRE, text, len);
	m->data[LWS_PRE + len] = 0;
	pthread_mutex_lock(&s->lock);
	if (s->wsq_tail)
		s->wsq_tail->next = m;
	else
		s->wsq_head = m;
	s->wsq_tail = m;
	pthread_mutex_unlock(&s->lock);
	lws_cancel_service(s->lws);
}

void http_ws_send(struct http_server *s, uint64_t conn, const char *text, size_t len)
{
	ws_enqueue(s, conn, 0, text, len);
}

void http_ws_close(struct http_server *s, uint64_t conn, int code, const char *reason)
{
	size_t n = strlen(reason);
	ws_enqueue(s, conn, code, reason, n > 120 ? 120 : n);
}

static struct wss *ws_find(struct http_server *s, uint64_t id)
{
	for (size_t i = 0; i < s->nws; i++)
		if (s->ws_conns[i]->id == id)
			return s->ws_conns[i];
	return NULL;
}

static void ws_msgs_free(struct ws_msg *m)
{
	while (m) {
		struct ws_msg *n = m->next;
		free(m);
		m = n;
	}
}

/* Moves queued messages onto their connections' outboxes (service thread). */
static void ws_drain(struct http_server *s)
{
	pthread_mutex_lock(&s->lock);
	struct ws_msg *m = s->wsq_head;
	s->wsq_head = s->wsq_tail = NULL;
	pthread_mutex_unlock(&s->lock);
	while (m) {
		struct ws_msg *next = m->next;
		m->next = NULL;
		struct wss *w = ws_find(s, m->conn);
		if (!w) {
			free(m);
		} else {
			if (w->out_tail)
				w->out_tail->next = m;
			else
				w->out_head = m;
			w->out_tail = m;
			lws_callback_on_writable(w->wsi);
		}
		m = next;
	}
}

static int ws_write_one(struct wss *w)
{
	struct ws_msg *m = w->out_head;
	if (!m)
		return 0;
	w->out_head = m->next;
	if (!w->out_head)
		w->out_tail = NULL;
	if (m->close_code) {
		lws_close_reason(w->wsi, (enum lws_close_status)m->close_code, m->data + LWS_PRE, m->len);
		free(m);
		return -1;
	}
	int n = lws_write(w->wsi, m->data + LWS_PRE, m->len, LWS_WRITE_TEXT);
	free(m);
	if (n < 0)
		return -1;
	if (w->out_head)
		lws_callback_on_writable(w->wsi);
	return 0;
}

/* Closes from the service thread with a code the client can read. */
static int ws_refuse(struct lws *wsi, enum lws_close_status code, const char *reason)
{
	lws_close_reason(wsi, code, (unsigned char *)reason, strlen(reason));
	return -1;
}

static int callback_ws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct wss *w = user;
	struct lws_context *ctx = lws_get_context(wsi);
	struct http_server *s = ctx ? lws_context_user(ctx) : NULL;

	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return s && s->cfg.ws.message && !atomic_load(&s->stopping) ? 0 : 1;
	case LWS_CALLBACK_ESTABLISHED: {
		memset(w, 0, sizeof(*w));
		w->id = ++s->next_ws_id;
		w->wsi = wsi;
		if (s->nws == s->wscap) {
			s->wscap = s->wscap ? s->wscap * 2 : 64;
			s->ws_conns = xrealloc(s->ws_conns, s->wscap * sizeof(*s->ws_conns));
		}
		s->ws_conns[s->nws++] = w;
		char tok[JWT_TOKEN_ARG_MAX];
		const char *t = lws_get_urlarg_by_name(wsi, "token=", tok, (int)sizeof(tok));
		if (s->cfg.ws.open)
			s->cfg.ws.open(s->cfg.ws.ctx, w->id, t);
		return 0;
	}
	case LWS_CALLBACK_RECEIVE:
		if (lws_frame_is_binary(wsi))
			return ws_refuse(wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, "text messages only");
		if (w->in.len + len > HTTP_WS_MAX_MESSAGE)
			return ws_refuse(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too large");
		buf_append(&w->in, in, len);
		if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) {
			size_t n = w->in.len;
			char *text = buf_steal(&w->in);
			if (strlen(text) != n) {
				free(text);
				return ws_refuse(wsi, LWS_CLOSE_STATUS_INVALID_PAYLOAD, "NUL in message");
			}
			s->cfg.ws.message(s->cfg.ws.ctx, w->id, text, n);
			free(text);
		}
		return 0;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return ws_write_one(w);
	case LWS_CALLBACK_CLOSED:
		for (size_t i = 0; i < s->nws; i++)
			if (s->ws_conns[i] == w) {
				s->ws_conns[i] = s->ws_conns[--s->nws];
				break;
			}
		if (s->cfg.ws.close)
			s->cfg.ws.close(s->cfg.ws.ctx, w->id);
		buf_free(&w->in);
		ws_msgs_free(w->out_head);
		w->out_head = w->out_tail = NULL;
		return 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		if (s)
			ws_drain(s);
		return 0;
	default:
		return 0;
	}
}

static const struct lws_protocols protocols[] = {
	{"http", callback_http, sizeof(struct pss), 0, 0, NULL, HTTP_WRITE_CHUNK},
	{HTTP_WS_PROTOCOL, callback_ws, sizeof(struct wss), 4096, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

static void *worker_main(void *arg)
{
	struct http_server *s = arg;
	int index = atomic_fetch_add(&s->next_worker_index, 1);
	void *local = s->cfg.app.worker_init ? s->cfg.app.worker_init(s->cfg.app.ctx, index) : NULL;
	for (;;) {
		pthread_mutex_lock(&s->lock);
		while (!s->work_head && !s->workers_quit)
			pthread_cond_wait(&s->work_cv, &s->lock);
		if (!s->work_head) {
			pthread_mutex_unlock(&s->lock);
			break;
		}
		struct job *j = s->work_head;
		s->work_head = j->next;
		if (!s->work_head)
			s->work_tail = NULL;
		pthread_mutex_unlock(&s->lock);

		s->cfg.app.handle(s->cfg.app.ctx, local, &j->req, &j->resp);

		pthread_mutex_lock(&s->lock);
		j->next = NULL;
		if (s->done_tail)
			s->done_tail->next = j;
		else
			s->done_head = j;
		s->done_tail = j;
		pthread_mutex_unlock(&s->lock);
		lws_cancel_service(s->lws);
	}
	if (s->cfg.app.worker_fini)
		s->cfg.app.worker_fini(s->cfg.app.ctx, local);
	return NULL;
}

static void lws_log_to_stderr(int level, const char *line)
{
	fprintf(stderr, "lws: %s", line);
}

struct http_server *http_server_new(const struct http_config *cfg, char *err, size_t errlen)
{
	struct http_server *s = xcalloc(1, sizeof(*s));
	s->cfg = *cfg;
	if (s->cfg.workers <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		s->cfg.workers = n > 0 ? (int)n * 2 : 4;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->work_cv, NULL);

	lws_set_log_level(LLL_ERR, lws_log_to_stderr);
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.port = cfg->port;
	info.iface = cfg->host;
	info.protocols = protocols;
	info.user = s;
	info.options = LWS_SERVER_OPTION_DISABLE_IPV6 | LWS_SERVER_OPTION_VALIDATE_UTF8;
	info.max_http_header_data = 16384;
	info.keepalive_timeout = 30;
	info.timeout_secs = 30;
	s->lws = lws_create_context(&info);
	if (!s->lws) {
		snprintf(err, errlen, "cannot listen on %s:%d", cfg->host, cfg->port);
		goto fail;
	}
	struct lws_vhost *vh = lws_get_vhost_by_name(s->lws, "default");
	s->port = vh ? lws_get_vhost_listen_port(vh) : cfg->port;

	s->threads = xcalloc((size_t)s->cfg.workers, sizeof(pthread_t));
	for (int i = 0; i < s->cfg.workers; i++) {
		if (pthread_create(&s->threads[i], NULL, worker_main, s) != 0) {
			snprintf(err, errlen, "cannot start worker threads");
			goto fail;
		}
		s->nthreads++;
	}
	return s;
fail:
	http_server_free(s);
	return NULL;
}

int http_server_port(const struct http_server *s)
{
	return s->port;
}

int http_server_run(struct http_server *s)
{
	while (!atomic_load(&s->stopping))
		if (lws_service(s->lws, 0) < 0)
			break;
	/* Drain: keep serving until every accepted request has been answered. */
	int64_t deadline = http_now_us() + (int64_t)HTTP_DRAIN_SECONDS * 1000000;
	while (s->inflight > 0 && http_now_us() < deadline)
		if (lws_service(s->lws, 0) < 0)
			break;
	return 0;
}

void http_server_stop(struct http_server *s)
{
	atomic_store(&s->stopping, 1);
	if (s->lws)
		lws_cancel_service(s->lws);
}

void http_server_free(struct http_server *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->workers_quit = true;
	pthread_cond_broadcast(&s->work_cv);
	pthread_mutex_unlock(&s->lock);
	for (int i = 0; i < s->nthreads; i++)
		pthread_join(s->threads[i], NULL);
	if (s->lws)
		lws_context_destroy(s->lws);
	/* Anything still queued belonged to connections lws has now closed. */
	for (struct job *j = s->work_head, *n; j; j = n) { n = j->next; job_free(j); }
	for (struct job *j = s->done_head, *n; j; j = n) { n = j->next; job_free(j); }
	ws_msgs_free(s->wsq_head);
	free(s->ws_conns);
	free(s->threads);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->work_cv);
	free(s);
}
