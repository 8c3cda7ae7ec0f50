/* http: the service threads never block: they parse, queue, and write.
 *
 * There are N libwebsockets contexts ("svc"), one per I/O thread (Debian's libwebsockets
 * is built with LWS_MAX_SMP 1, so one context cannot have several service threads). Each
 * svc has its own listening socket on the same port with SO_REUSEPORT, so the kernel
 * spreads connections over them; lws 4.1 cannot share a port itself, so we open the
 * sockets, watch each as a raw descriptor in its context, and hand every accepted
 * connection to lws_adopt_socket_vhost() as if lws had accepted it. A connection lives on one svc for its whole life; everything about it (its
 * pss, its job while written, its WebSocket outbox) is touched only by that svc's thread.
 * The worker pool is shared; a job remembers its svc and comes back on that svc's done
 * list, and that svc alone is woken with lws_cancel_service.
 *
 * Ownership of a request: the connection's per-session data (pss) points to its job while
 * the job is being read or written. Once dispatched, the job belongs to the worker pool
 * until it appears on the done list. If the connection closes meanwhile, the pss drops
 * its pointer and marks the job orphaned; the svc thread frees orphaned jobs when they
 * come back. Both the close and the drain run on the same svc thread, so that flag needs
 * no lock; only the queues do.
 *
 * Responses are written straight to the socket with sendmsg(): the header block lws
 * formats and the body (an edge-cache buffer or the handler's buf) go out as one iovec,
 * so an edge hit costs no copy in user space and usually one system call. libwebsockets
 * never holds buffered output for an HTTP connection, which keeps its state simple. */
#include "http.h"
#include "json.h"
#include "xmem.h"
#include <errno.h>
#include <libwebsockets.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* How long a stopping server waits for in-flight requests. */
#define HTTP_DRAIN_SECONDS 10
/* An I/O thread writes its access-log lines once this much is pending, or once the oldest
 * has waited HTTP_LOG_FLUSH_US (when idle, within a second), whichever comes first, as
 * nginx's buffer= and flush= do: a write() per pass over the ready connections was a
 * syscall per few segment requests. */
#define HTTP_LOG_FLUSH_BYTES 32768
#define HTTP_LOG_FLUSH_US 100000
/* Header block of one response (common headers, request id, up to HTTP_MAX_RESP_HEADERS). */
#define HTTP_HEADER_MAX 4096
#define JWT_TOKEN_ARG_MAX 4200   /* a ?token= JWT and its name */
/* WebSocket connection ids carry their svc in the low bits, so a message queued from any
 * thread reaches the context that owns the connection. */
#define HTTP_SVC_BITS 8
#define HTTP_MAX_IO_THREADS 64

struct svc;

struct job {
	struct job *next;
	struct svc *svc;        /* the context that owns the connection */
	struct lws *wsi;        /* meaningless once orphaned; svc thread only */
	bool orphaned;
	bool in_pool;           /* queued, running or on the done list */
	struct http_req req;
	struct http_resp resp;
};

struct pss {
	struct job *job;
	size_t body_limit;
	bool dispatched;
	bool headers_built;
	size_t hdr_len, hdr_off;  /* header block, and how much of it is on the socket */
	size_t sent;              /* body bytes on the socket */
	int64_t next_send_us;     /* bandwidth shaping: earliest time for the next slice */
	bool corked;              /* TCP_CORK is on for this response (a file body) */
	unsigned char hdr[HTTP_HEADER_MAX];
};

/* An outgoing WebSocket message (or close, when close_code is set). */
struct ws_msg {
	struct ws_msg *next;
	uint64_t conn;
	int close_code;
	size_t len;
	unsigned char data[];   /* LWS_PRE bytes of headroom, then the payload */
};

/* Per WebSocket connection; its svc thread only. */
struct wss {
	uint64_t id;
	struct lws *wsi;
	struct buf in;           /* message being reassembled from fragments */
	struct ws_msg *out_head, *out_tail;
};

struct direct;

struct sock_info {
	/* The client's address, filled on the first request: libwebsockets gives each
	 * request fresh per-session data, and a getpeername() per request showed. */
	char peer[64];
	struct direct *direct;   /* while the direct path owns the connection */
	/* Set when the direct path hands a connection to libwebsockets after the
	 * application's fast() already saw its first request: that request must not be
	 * counted twice, and keeps fast()'s verdict. */
	bool carry;
	bool carry_fast_checked;
};

/* One libwebsockets context and the thread that services it. */
struct svc {
	struct http_server *s;
	int index;
	struct lws_context *lws;
	struct lws_vhost *vh;
	int listen_fd;           /* -1 when none */
	bool listen_fd_adopted;  /* then lws closes it with the context */
	pthread_t thread;
	bool thread_started;
	int inflight;            /* this svc thread only */
	uint64_t rid_state;      /* request-id generator; this svc thread only */
	struct buf log;          /* access-log lines not yet written; this svc thread only */
	int64_t log_since_us;    /* when the loop first saw them (0: none pending) */
	/* Per accepted socket, indexed by descriptor and reset when one is accepted. This
	 * svc only (a connection never changes svc). */
	struct sock_info *socks;
	size_t nsocks;
	int epfd;                /* the direct connections (see "direct" below); -1 when none */
	bool epfd_adopted;
	int direct_busy;         /* direct connections with a response being written */
	lws_sorted_usec_list_t sweep;  /* closes idle direct connections, flushes an idle log */

	/* Filled by workers and by http_ws_send from any thread; drained by the svc thread. */
	pthread_mutex_t lock;
	struct job *done_head, *done_tail;
	struct ws_msg *wsq_head, *wsq_tail;

	/* This svc thread only. */
	struct wss **ws_conns;
	size_t nws, wscap;
	uint64_t next_ws_seq;
};

struct http_server {
	struct http_config cfg;
	struct svc *svcs;
	int nsvc;
	int port;
	atomic_int stopping;

	pthread_mutex_t lock;    /* the work queue */
	pthread_cond_t work_cv;
	struct job *work_head, *work_tail;
	bool workers_quit;
	pthread_t *threads;
	int nthreads;
	atomic_int next_worker_index;

	/* The WebSocket application (connect and playlist hubs) was written for one service
	 * thread; its callbacks are serialised across svcs so that stays true. They are short
	 * (a JWT check, a point lookup), so the lock costs nothing on the HTTP path. */
	pthread_mutex_t ws_cb_lock;
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
	/* By hand, not snprintf: a segment response sets three of these. */
	size_t i = 0;
	for (; name[i] && i < sizeof(h->name) - 2; i++)
		h->name[i] = name[i] >= 'A' && name[i] <= 'Z' ? (char)(name[i] - 'A' + 'a') : name[i];
	h->name[i] = ':';
	h->name[i + 1] = 0;
	size_t n = strlen(value);
	if (n > sizeof(h->value) - 1)
		n = sizeof(h->value) - 1;
	memcpy(h->value, value, n);
	h->value[n] = 0;
}

void http_resp_json(struct http_resp *resp, int status, char *json)
{
	resp->status = status;
	resp->content_type = "application/json";
	buf_reset(&resp->body);
	buf_puts(&resp->body, json);
	free(json);
}

void http_resp_json_buf(struct http_resp *resp, int status, struct buf *body)
{
	resp->status = status;
	resp->content_type = "application/json";
	buf_free(&resp->body);
	resp->body = *body;
	*body = (struct buf)BUF_INIT;
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

static void respond(struct lws *wsi, struct pss *pss)
{
	pss->headers_built = false;
	pss->hdr_len = pss->hdr_off = 0;
	pss->sent = 0;
	lws_callback_on_writable(wsi);
}

static void dispatch(struct svc *v, struct lws *wsi, struct pss *pss)
{
	struct http_server *s = v->s;
	pss->dispatched = true;
	pss->job->in_pool = true;
	v->inflight++;
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

/* Answers on the svc thread without a worker (413, early errors). */
static void respond_now(struct svc *v, struct lws *wsi, struct pss *pss, int status, const char *msg, bool close)
{
	http_resp_error(&pss->job->resp, status, msg);
	pss->job->resp.close = close;
	pss->dispatched = true;
	v->inflight++;
	respond(wsi, pss);
}

static void drain_done(struct svc *v)
{
	pthread_mutex_lock(&v->lock);
	struct job *j = v->done_head;
	v->done_head = v->done_tail = NULL;
	pthread_mutex_unlock(&v->lock);
	while (j) {
		struct job *next = j->next;
		j->next = NULL;
		j->in_pool = false;
		if (j->orphaned) {
			v->inflight--;
			job_free(j);
		} else {
			respond(j->wsi, lws_wsi_user(j->wsi));
		}
		j = next;
	}
}

/* Writes the svc's pending access-log lines: one write() of whole lines, so lines from
 * several threads never interleave mid-line. A log that cannot be written is dropped
 * rather than allowed to stall the loop. */
static void log_flush(struct svc *v)
{
	size_t off = 0;
	while (off < v->log.len) {
		ssize_t w = write(STDERR_FILENO, v->log.data + off, v->log.len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	buf_reset(&v->log);
	v->log_since_us = 0;
}

/* After a pass of the loop: writes the pending lines when there are enough of them or the
 * oldest has waited long enough. An idle loop's lines go out with the once-a-second sweep:
 * a 100 ms timer of its own would cost more than it saves, since lws rounds a timer's
 * last millisecond down to a zero poll() timeout and spins through it. */
static void log_pass_done(struct svc *v)
{
	if (!v->log.len)
		return;
	int64_t now = http_now_us();
	if (!v->log_since_us)
		v->log_since_us = now;
	if (v->log.len >= HTTP_LOG_FLUSH_BYTES || now - v->log_since_us >= HTTP_LOG_FLUSH_US)
		log_flush(v);
}

static void finish_job(struct svc *v, struct pss *pss)
{
	struct http_server *s = v->s;
	struct job *j = pss->job;
	if (s->cfg.app.log) {
		s->cfg.app.log(s->cfg.app.ctx, &j->req, &j->resp, http_now_us() - j->req.start_us, &v->log);
		if (v->log.len >= HTTP_LOG_FLUSH_BYTES)
			log_flush(v);
	}
	job_free(j);
	pss->job = NULL;
	pss->dispatched = false;
	v->inflight--;
}

/* splitmix64: request ids only need to be distinct in a log, not secret, and a system call
 * for randomness on every request showed up in the CDN profile. Seeded randomly per svc. */
static uint64_t next_rid(struct svc *v)
{
	uint64_t z = (v->rid_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static struct job *job_new(struct svc *v, struct lws *wsi)
{
	struct job *j = xcalloc(1, sizeof(*j));
	j->svc = v;
	j->wsi = wsi;
	j->resp.status = 200;
	j->resp.content_type = "application/json";
	j->resp.ext_fd = -1;
	j->req.start_us = http_now_us();
	uint64_t rid = next_rid(v);
	for (int i = 15; i >= 0; i--, rid >>= 4)
		j->req.request_id[i] = "0123456789abcdef"[rid & 15];
	j->req.request_id[16] = 0;
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

static int write_response(struct svc *v, struct lws *wsi, struct pss *pss);

/* Starts a request. Returns 1 when a body is expected before dispatching, 0 when the
 * request is queued or answered, -1 to close the connection. */
static int begin_request(struct svc *v, struct lws *wsi, struct pss *pss)
{
	struct http_server *s = v->s;
	job_free(pss->job);
	pss->job = job_new(v, wsi);
	pss->dispatched = false;
	struct http_req *req = &pss->job->req;

	char *uri = NULL;
	int urilen = 0;
	const char *m = method_name(lws_http_get_uri_and_method(wsi, &uri, &urilen));
	req->path = uri && urilen > 0 ? xstrndup(uri, (size_t)urilen) : xstrdup("/");
	int sfd = lws_get_socket_fd(wsi);
	struct sock_info *si = sfd >= 0 && (size_t)sfd < v->nsocks ? &v->socks[sfd] : NULL;
	if (si) {
		if (!si->peer[0])
			lws_get_peer_simple(wsi, si->peer, sizeof(si->peer));
		memcpy(req->client_ip, si->peer, sizeof(req->client_ip));
	} else {
		lws_get_peer_simple(wsi, req->client_ip, sizeof(req->client_ip));
	}
	bool carried = si && si->carry;
	if (carried) {
		si->carry = false;
		req->fast_checked = si->carry_fast_checked;
	}
	if (!m) {
		snprintf(req->method, sizeof(req->method), "?");
		respond_now(v, wsi, pss, 405, "method not allowed", true);
		return 0;
	}
	snprintf(req->method, sizeof(req->method), "%s", m);
	read_args(wsi, req);
	req->authorization = copy_header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
	req->if_none_match = copy_header(wsi, WSI_TOKEN_HTTP_IF_NONE_MATCH);
	req->content_type = copy_header(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE);
	req->range = copy_header(wsi, WSI_TOKEN_HTTP_RANGE);

	if (atomic_load(&s->stopping)) {
		respond_now(v, wsi, pss, 503, "server is shutting down", true);
		return 0;
	}
	char *cl = copy_header(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
	long long len = cl ? strtoll(cl, NULL, 10) : 0;
	free(cl);
	pss->body_limit = s->cfg.body_limit ? s->cfg.body_limit(s->cfg.app.ctx, m, req->path, s->cfg.max_body) : s->cfg.max_body;
	if (len < 0 || (size_t)len > pss->body_limit) {
		char msg[96];
		snprintf(msg, sizeof(msg), "request body too large (limit %zu bytes)", pss->body_limit);
		respond_now(v, wsi, pss, 413, msg, true);
		return 0;
	}
	if (len > 0 && strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0)
		return 1;
	struct timespec c0, c1;
	int64_t f0 = http_now_us();
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
	if (s->cfg.app.fast && !carried && strcmp(m, "GET") == 0 && s->cfg.app.fast(s->cfg.app.ctx, req, &pss->job->resp)) {
		req->fast_answered = true;
		req->handle_start_us = f0;
		req->handle_end_us = http_now_us();
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
		req->handle_cpu_us = (int64_t)(c1.tv_sec - c0.tv_sec) * 1000000 + (c1.tv_nsec - c0.tv_nsec) / 1000;
		pss->dispatched = true;
		v->inflight++;
		pss->headers_built = false;
		pss->hdr_len = pss->hdr_off = 0;
		pss->sent = 0;
		/* Write now rather than on the next POLLOUT: the socket of a keep-alive
		 * connection whose last response went out is writable, and this saves a trip
		 * through poll() per edge hit. What does not fit waits for POLLOUT as usual. */
		return write_response(v, wsi, pss);
	}
	dispatch(v, wsi, pss);
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

/* Formats the status line and headers into pss->hdr. 0 or -1 (they do not fit). */
static int build_headers(struct lws *wsi, struct pss *pss, const struct job *j, size_t body_len)
{
	const struct http_resp *r = &j->resp;
	unsigned char *p = pss->hdr, *end = pss->hdr + sizeof(pss->hdr) - 1;
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
	if (lws_finalize_http_header(wsi, &p, end))
		return -1;
	pss->hdr_len = (size_t)(p - pss->hdr);
	pss->hdr_off = 0;
	return 0;
}

/* Writes as much of the response as the socket takes now. 0 to keep the connection, -1 to
 * close it (error, injected drop, or Connection: close). */
static int write_response(struct svc *v, struct lws *wsi, struct pss *pss)
{
	struct job *j = pss->job;
	if (!j || !pss->dispatched)
		return 0;
	struct http_resp *r = &j->resp;
	const uint8_t *body = r->ext_data ? r->ext_data : (const uint8_t *)r->body.data;
	size_t body_len = r->ext_data || r->ext_file ? r->ext_len : r->body.len;
	if (!pss->headers_built) {
		if (r->delay_us > 0) {
			int64_t due = j->req.start_us + r->delay_us, now = http_now_us();
			if (now < due) {
				lws_set_timer_usecs(wsi, due - now);
				return 0;
			}
		}
		if (build_headers(wsi, pss, j, body_len))
			return -1;
		pss->headers_built = true;
		pss->sent = 0;
		pss->next_send_us = 0;
	}
	int fd = lws_get_socket_fd(wsi);
	for (;;) {
		size_t hleft = pss->hdr_len - pss->hdr_off;
		if (r->ext_file && hleft && !pss->corked && !r->bandwidth_kbps) {
			/* Header and file body go out in two calls, and sendfile() pushes a frame
			 * per pipe-full: corked, TCP sends full frames and pushes once at the end
			 * (nginx's tcp_nopush). Measured: 26 us of CPU per 77 KB segment corked,
			 * 45 us not. A shaped response is not corked: it is meant to trickle. */
			int one = 1;
			pss->corked = setsockopt(fd, IPPROTO_TCP, TCP_CORK, &one, sizeof(one)) == 0;
		}
		if (r->ext_file && hleft) {
			struct iovec iov = {.iov_base = pss->hdr + pss->hdr_off, .iov_len = hleft};
			struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
			ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT | (body_len > pss->sent ? MSG_MORE : 0));
			if (w < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
					lws_callback_on_writable(wsi);
					return 0;
				}
				return -1;
			}
			pss->hdr_off += (size_t)w;
			if ((size_t)w < hleft) {
				lws_callback_on_writable(wsi);
				return 0;
			}
			continue;
		}
		size_t n = body_len - pss->sent;
		if (r->drop_mid_body) {
			size_t half = body_len / 2;
			if (!hleft && pss->sent >= half)
				return -1;  /* injected fault: reset mid-body */
			if (pss->sent + n > half)
				n = half - pss->sent;
		}
		if (n > 0)
			n = shaped_allowance(wsi, pss, r, n);
		if (!hleft && !n) {
			if (pss->sent == body_len)
				break;
			return 0;  /* shaped: the timer set by shaped_allowance resumes us */
		}
		ssize_t w;
		if (r->ext_file) {
			/* The body from the file's pages, without a copy (as nginx serves). */
			off_t at = (off_t)(r->ext_off + pss->sent);
			w = sendfile(fd, r->ext_fd, &at, n);
			if (w == 0)
				return -1;  /* the file is shorter than promised: cannot finish */
		} else {
			struct iovec iov[2];
			int cnt = 0;
			if (hleft)
				iov[cnt++] = (struct iovec){.iov_base = pss->hdr + pss->hdr_off, .iov_len = hleft};
			if (n)
				iov[cnt++] = (struct iovec){.iov_base = (void *)(body + pss->sent), .iov_len = n};
			struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
			w = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		}
		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
				lws_callback_on_writable(wsi);
				return 0;
			}
			return -1;
		}
		size_t took = (size_t)w, h = took < hleft ? took : hleft;
		pss->hdr_off += h;
		pss->sent += took - h;
		if (took < hleft + n) {
			/* The socket buffer is full: wait for POLLOUT. */
			lws_callback_on_writable(wsi);
			return 0;
		}
	}
	if (pss->corked) {
		int zero = 0;
		setsockopt(fd, IPPROTO_TCP, TCP_CORK, &zero, sizeof(zero));  /* push the last frame now */
		pss->corked = false;
	}
	bool close = r->close;
	finish_job(v, pss);
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
	struct svc *v = ctx ? lws_context_user(ctx) : NULL;

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		return begin_request(v, wsi, pss) < 0 ? -1 : 0;
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return 1;  /* a WebSocket upgrade that did not ask for HTTP_WS_PROTOCOL */
	case LWS_CALLBACK_HTTP_BODY:
		if (!pss->job || pss->dispatched)
			return 0;
		if (pss->job->req.body.len + len > pss->body_limit) {
			respond_now(v, wsi, pss, 413, "request body too large", true);
			return 0;
		}
		buf_append(&pss->job->req.body, in, len);
		return 0;
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		if (pss->job && !pss->dispatched)
			dispatch(v, wsi, pss);
		return 0;
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return write_response(v, wsi, pss);
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
					v->inflight--;
				job_free(pss->job);
			}
			pss->job = NULL;
		}
		return 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		if (v)
			drain_done(v);
		return 0;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static void ws_enqueue(struct http_server *s, uint64_t conn, int close_code, const char *text, size_t len)
{
	uint64_t idx = conn & ((1u << HTTP_SVC_BITS) - 1);
	if (idx >= (uint64_t)s->nsvc)
		return;  /* not an id we handed out */
	struct svc *v = &s->svcs[idx];
	struct ws_msg *m = xmalloc(sizeof(*m) + LWS_PRE + len + 1);
	m->next = NULL;
	m->conn = conn;
	m->close_code = close_code;
	m->len = len;
	memcpy(m->data + LWS_PRE, text, len);
	m->data[LWS_PRE + len] = 0;
	pthread_mutex_lock(&v->lock);
	if (v->wsq_tail)
		v->wsq_tail->next = m;
	else
		v->wsq_head = m;
	v->wsq_tail = m;
	pthread_mutex_unlock(&v->lock);
	lws_cancel_service(v->lws);
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

static struct wss *ws_find(struct svc *v, uint64_t id)
{
	for (size_t i = 0; i < v->nws; i++)
		if (v->ws_conns[i]->id == id)
			return v->ws_conns[i];
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

/* Moves queued messages onto their connections' outboxes (svc thread). */
static void ws_drain(struct svc *v)
{
	pthread_mutex_lock(&v->lock);
	struct ws_msg *m = v->wsq_head;
	v->wsq_head = v->wsq_tail = NULL;
	pthread_mutex_unlock(&v->lock);
	while (m) {
		struct ws_msg *next = m->next;
		m->next = NULL;
		struct wss *w = ws_find(v, m->conn);
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

/* Closes from the svc thread with a code the client can read. */
static int ws_refuse(struct lws *wsi, enum lws_close_status code, const char *reason)
{
	lws_close_reason(wsi, code, (unsigned char *)reason, strlen(reason));
	return -1;
}

static int callback_ws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct wss *w = user;
	struct lws_context *ctx = lws_get_context(wsi);
	struct svc *v = ctx ? lws_context_user(ctx) : NULL;
	struct http_server *s = v ? v->s : NULL;

	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return s && s->cfg.ws.message && !atomic_load(&s->stopping) ? 0 : 1;
	case LWS_CALLBACK_ESTABLISHED: {
		memset(w, 0, sizeof(*w));
		w->id = (++v->next_ws_seq << HTTP_SVC_BITS) | (uint64_t)v->index;
		w->wsi = wsi;
		if (v->nws == v->wscap) {
			v->wscap = v->wscap ? v->wscap * 2 : 64;
			v->ws_conns = xrealloc(v->ws_conns, v->wscap * sizeof(*v->ws_conns));
		}
		v->ws_conns[v->nws++] = w;
		char tok[JWT_TOKEN_ARG_MAX];
		const char *t = lws_get_urlarg_by_name(wsi, "token=", tok, (int)sizeof(tok));
		if (s->cfg.ws.open) {
			pthread_mutex_lock(&s->ws_cb_lock);
			s->cfg.ws.open(s->cfg.ws.ctx, w->id, t);
			pthread_mutex_unlock(&s->ws_cb_lock);
		}
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
			pthread_mutex_lock(&s->ws_cb_lock);
			s->cfg.ws.message(s->cfg.ws.ctx, w->id, text, n);
			pthread_mutex_unlock(&s->ws_cb_lock);
			free(text);
		}
		return 0;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return ws_write_one(w);
	case LWS_CALLBACK_CLOSED:
		for (size_t i = 0; i < v->nws; i++)
			if (v->ws_conns[i] == w) {
				v->ws_conns[i] = v->ws_conns[--v->nws];
				break;
			}
		if (s->cfg.ws.close) {
			pthread_mutex_lock(&s->ws_cb_lock);
			s->cfg.ws.close(s->cfg.ws.ctx, w->id);
			pthread_mutex_unlock(&s->ws_cb_lock);
		}
		buf_free(&w->in);
		ws_msgs_free(w->out_head);
		w->out_head = w->out_tail = NULL;
		return 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		if (v)
			ws_drain(v);
		return 0;
	default:
		return 0;
	}
}

/* ---- direct: segment GETs answered without libwebsockets' HTTP machinery ----
 *
 * A new connection starts here, watched through the svc's epoll descriptor (itself watched
 * by lws as a raw descriptor). Requests that are plain HTTP/1.1 GETs of /cdn/ or /origin/
 * (no body, no upgrade, no percent-encoding, nothing lws would rewrite) are parsed here
 * and given to the application's fast() exactly as the lws path gives them; the answer
 * is written with the same headers. Anything else (another route, another method or
 * version, a header block that does not fit, a request fast() cannot answer, or any
 * request while faults are injected or the server stops) hands the connection, with the
 * bytes read so far, to lws for the rest of its life: lws then parses that request as if
 * it had read it. Keep-alive, pipelining, Range and If-None-Match work the same on both
 * paths; a segment client's connection simply never needs lws. Why: lws's per-request
 * parsing, timers and per-session allocations were most of a segment hit's CPU. */
#define DIRECT_IN_MAX 2048        /* longer request heads go to lws */
#define DIRECT_IDLE_US (30 * 1000000LL)   /* as lws's keepalive_timeout */
#define DIRECT_TARGET_MAX 1024
/* With a peek offset, answered requests are taken off the socket in batches of this many
 * bytes (one recv() per ~60 requests instead of one each), and always before the
 * connection closes or goes to lws. */
#define DIRECT_CONSUME_BATCH 16384

struct direct {
	int fd;
	int64_t deadline_us;
	/* in[off, inlen) is peeked and not yet answered. With a peek offset (SO_PEEK_OFF), a
	 * peek returns only bytes not peeked before, so in[] keeps them; without one, every
	 * peek starts at the head of the socket's queue, and in[] is refilled each time. */
	size_t inlen, off;
	size_t unconsumed;        /* answered bytes still in the socket's receive queue */
	bool peek_off;            /* SO_PEEK_OFF is on (Linux 6.10 and later for TCP) */
	bool busy;                /* a response is being written */
	bool close_after;
	bool corked;
	bool want_out;            /* epoll waits for POLLOUT, not POLLIN */
	size_t hdr_len, hdr_off, sent, body_len;
	const uint8_t *body;
	struct http_req req;
	struct http_resp resp;
	char target[DIRECT_TARGET_MAX];   /* path and query, split in place into req */
	char range[128], inm[256];
	char hdr[HTTP_HEADER_MAX];
	char in[DIRECT_IN_MAX];
};

static const char *status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 206: return "Partial Content";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 416: return "Requested Range Not Satisfiable";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "";
	}
}

static bool lower_eq(const char *a, size_t n, const char *lower)
{
	if (strlen(lower) != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = a[i] >= 'A' && a[i] <= 'Z' ? (char)(a[i] - 'A' + 'a') : a[i];
		if (c != lower[i])
			return false;
	}
	return true;
}

static bool lower_contains(const char *a, size_t n, const char *lower)
{
	size_t m = strlen(lower);
	for (size_t i = 0; i + m <= n; i++)
		if (lower_eq(a + i, m, lower))
			return true;
	return false;
}

/* Parses the request head head[0, len) into d->req. 0, or -1 when the request is not one
 * the direct path takes (then lws will parse it). */
static int direct_parse(struct svc *v, struct direct *d, const char *head, size_t len)
{
	const char *p = head, *end = head + len - 2;   /* the final empty line's CRLF */
	if (len < 16 || memcmp(p, "GET ", 4) != 0)
		return -1;
	p += 4;
	const char *sp = memchr(p, ' ', (size_t)(end - p));
	if (!sp || (size_t)(sp - p) >= sizeof(d->target) || end - sp < 11 || memcmp(sp, " HTTP/1.1\r\n", 11) != 0)
		return -1;
	size_t tlen = (size_t)(sp - p);
	if (!((tlen > 5 && memcmp(p, "/cdn/", 5) == 0) || (tlen > 8 && memcmp(p, "/origin/", 8) == 0)))
		return -1;
	/* Nothing lws would decode or normalise: then both paths see the same request. A table,
	 * not a chain of tests: this loop was the largest part of parsing a segment request. */
	static const unsigned char refused[256] = {
		[0 ... 0x20] = 1, [0x7f ... 0xff] = 1, ['%'] = 1, ['+'] = 1, ['#'] = 1, ['\\'] = 1, ['/'] = 2,
	};
	for (size_t i = 0; i < tlen; i++) {
		unsigned char r = refused[(unsigned char)p[i]];
		if (r == 1 || (r == 2 && i + 1 < tlen && (p[i + 1] == '/' || p[i + 1] == '.')))
			return -1;
	}
	memcpy(d->target, p, tlen);
	d->target[tlen] = 0;

	struct http_req *req = &d->req;
	memset(req, 0, sizeof(*req));
	snprintf(req->method, sizeof(req->method), "GET");
	char *q = strchr(d->target, '?');
	if (q) {
		*q++ = 0;
		while (*q) {
			if (req->nargs >= HTTP_MAX_ARGS)
				return -1;
			char *amp = strchr(q, '&');
			if (amp)
				*amp = 0;
			if (!*q)
				return -1;  /* an empty argument: leave such corner cases to lws */
			char *eq = strchr(q, '=');
			struct http_arg *a = &req->args[req->nargs++];
			a->name = q;
			a->value = eq ? (*eq = 0, eq + 1) : q + strlen(q);
			if (!amp)
				break;
			q = amp + 1;
		}
	}
	req->path = d->target;

	d->range[0] = d->inm[0] = 0;
	d->close_after = false;
	p = sp + 11;
	while (p < end) {
		const char *eol = memchr(p, '\r', (size_t)(end - p) + 2);
		if (!eol || eol[1] != '\n')
			return -1;
		if (*p == ' ' || *p == '\t')
			return -1;  /* obsolete line folding */
		const char *colon = memchr(p, ':', (size_t)(eol - p));
		if (!colon || colon == p)
			return -1;
		size_t nlen = (size_t)(colon - p);
		const char *val = colon + 1;
		while (val < eol && (*val == ' ' || *val == '\t'))
			val++;
		const char *vend = eol;
		while (vend > val && (vend[-1] == ' ' || vend[-1] == '\t'))
			vend--;
		size_t vlen = (size_t)(vend - val);
		char *dst = NULL;
		size_t cap = 0;
		if (lower_eq(p, nlen, "range")) {
			dst = d->range;
			cap = sizeof(d->range);
		} else if (lower_eq(p, nlen, "if-none-match")) {
			dst = d->inm;
			cap = sizeof(d->inm);
		} else if (lower_eq(p, nlen, "connection")) {
			if (lower_contains(val, vlen, "upgrade"))
				return -1;
			if (lower_contains(val, vlen, "close"))
				d->close_after = true;
		} else if (lower_eq(p, nlen, "content-length")) {
			if (vlen != 1 || *val != '0')
				return -1;
		} else if (lower_eq(p, nlen, "transfer-encoding") || lower_eq(p, nlen, "upgrade") ||
			   lower_eq(p, nlen, "expect")) {
			return -1;
		}
		if (dst) {
			if (dst[0] || vlen >= cap)
				return -1;  /* repeated or oversized: lws's rules apply */
			memcpy(dst, val, vlen);
			dst[vlen] = 0;
		}
		p = eol + 2;
	}
	req->range = d->range[0] ? d->range : NULL;
	req->if_none_match = d->inm[0] ? d->inm : NULL;
	memcpy(req->client_ip, v->socks[d->fd].peer, sizeof(req->client_ip));
	req->start_us = http_now_us();
	uint64_t rid = next_rid(v);
	for (int i = 15; i >= 0; i--, rid >>= 4)
		req->request_id[i] = "0123456789abcdef"[rid & 15];
	req->request_id[16] = 0;
	return 0;
}

/* Empties d->resp for the next request. Field by field, not memset: the header array is
 * 2.4 KB, and only the first nheaders entries are ever read. */
static void direct_resp_reset(struct direct *d)
{
	struct http_resp *r = &d->resp;
	if (r->ext_release)
		r->ext_release(r->ext_ctx);
	buf_free(&r->body);
	r->status = 200;
	r->content_type = "application/json";
	r->nheaders = 0;
	r->close = false;
	r->ext_data = NULL;
	r->ext_len = 0;
	r->ext_file = false;
	r->ext_fd = -1;
	r->ext_off = 0;
	r->ext_release = NULL;
	r->ext_ctx = NULL;
	r->delay_us = 0;
	r->bandwidth_kbps = 0;
	r->drop_mid_body = false;
}

/* Takes the answered bytes off the socket's receive queue, without copying them
 * (MSG_TRUNC on TCP discards). 0 or -1. */
static int direct_consume(struct direct *d)
{
	char junk[DIRECT_IN_MAX];
	while (d->unconsumed > 0) {
		size_t n = d->unconsumed < sizeof(junk) ? d->unconsumed : sizeof(junk);
		ssize_t r = recv(d->fd, junk, n, MSG_DONTWAIT | MSG_TRUNC);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;  /* they were there a moment ago */
		d->unconsumed -= (size_t)r;
	}
	return 0;
}

static void direct_free(struct svc *v, struct direct *d, bool close_fd)
{
	if (d->busy)
		v->direct_busy--;
	direct_resp_reset(d);
	v->socks[d->fd].direct = NULL;
	if (close_fd) {
		/* Answered bytes left unread would make close() reset the connection, dropping
		 * a response still in the send queue. */
		direct_consume(d);
		close(d->fd);  /* also leaves the epoll set */
	}
	free(d);
}

/* Gives the connection to libwebsockets, which reads the unanswered bytes from the socket
 * itself (the direct path only peeks at requests it does not answer). */
static void direct_handover(struct svc *v, struct direct *d, bool carry, bool fast_checked)
{
	int fd = d->fd;
	if (direct_consume(d) != 0) {
		direct_free(v, d, true);
		return;
	}
	if (d->peek_off) {
		int off = -1;   /* lws reads plainly; a peek offset is no business of its */
		setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off));
	}
	epoll_ctl(v->epfd, EPOLL_CTL_DEL, fd, NULL);
	v->socks[fd].carry = carry;
	v->socks[fd].carry_fast_checked = fast_checked;
	direct_free(v, d, false);
	lws_adopt_socket_vhost(v->vh, fd);  /* closes fd itself on failure */
}

static void set_interest(struct svc *v, struct direct *d, bool out)
{
	if (d->want_out == out)
		return;
	struct epoll_event ev = {.events = (out ? EPOLLOUT : EPOLLIN) | EPOLLET, .data.ptr = d};
	epoll_ctl(v->epfd, EPOLL_CTL_MOD, d->fd, &ev);
	d->want_out = out;
}

/* Writes what the socket takes. 1 when the response is complete, 0 when waiting for
 * POLLOUT, -1 when the connection must close. */
static int direct_write(struct svc *v, struct direct *d)
{
	struct http_resp *r = &d->resp;
	for (;;) {
		size_t hleft = d->hdr_len - d->hdr_off, n = d->body_len - d->sent;
		if (!hleft && !n)
			break;
		ssize_t w;
		if (r->ext_file && hleft) {
			if (!d->corked) {
				int one = 1;  /* see write_response */
				d->corked = setsockopt(d->fd, IPPROTO_TCP, TCP_CORK, &one, sizeof(one)) == 0;
			}
			struct iovec iov = {.iov_base = d->hdr + d->hdr_off, .iov_len = hleft};
			struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
			w = sendmsg(d->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT | (n ? MSG_MORE : 0));
			if (w >= 0) {
				d->hdr_off += (size_t)w;
				continue;
			}
		} else if (r->ext_file) {
			off_t at = (off_t)(r->ext_off + d->sent);
			w = sendfile(d->fd, r->ext_fd, &at, n);
			if (w == 0)
				return -1;
			if (w > 0) {
				d->sent += (size_t)w;
				continue;
			}
		} else {
			struct iovec iov[2];
			int cnt = 0;
			if (hleft)
				iov[cnt++] = (struct iovec){.iov_base = d->hdr + d->hdr_off, .iov_len = hleft};
			if (n)
				iov[cnt++] = (struct iovec){.iov_base = (void *)(d->body + d->sent), .iov_len = n};
			struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
			w = sendmsg(d->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w >= 0) {
				size_t took = (size_t)w, h = took < hleft ? took : hleft;
				d->hdr_off += h;
				d->sent += took - h;
				continue;
			}
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			set_interest(v, d, true);
			return 0;
		}
		return -1;
	}
	if (d->corked) {
		int zero = 0;
		setsockopt(d->fd, IPPROTO_TCP, TCP_CORK, &zero, sizeof(zero));
		d->corked = false;
	}
	set_interest(v, d, false);
	struct http_server *s = v->s;
	if (s->cfg.app.log) {
		s->cfg.app.log(s->cfg.app.ctx, &d->req, r, http_now_us() - d->req.start_us, &v->log);
		if (v->log.len >= HTTP_LOG_FLUSH_BYTES)
			log_flush(v);
	}
	direct_resp_reset(d);
	d->busy = false;
	v->direct_busy--;
	d->deadline_us = http_now_us() + DIRECT_IDLE_US;
	return d->close_after ? -1 : 1;
}

/* Formats the status line and headers as the lws path does (build_headers). */
static int direct_headers(struct direct *d)
{
	const struct http_resp *r = &d->resp;
	char *p = d->hdr, *e = d->hdr + sizeof(d->hdr);
	/* By hand: snprintf's machinery showed in the profile. The fixed part fits easily. */
	char num[24];
	int k = (int)sizeof(num);
	size_t cl = d->body_len;
	do {
		num[--k] = (char)('0' + cl % 10);
		cl /= 10;
	} while (cl);
	const char *ct = r->content_type ? r->content_type : "application/octet-stream", *st = status_text(r->status);
	int status = r->status > 0 && r->status < 1000 ? r->status : 500;
	if (strlen(ct) + strlen(st) + 128 > sizeof(d->hdr))
		return -1;
	memcpy(p, "HTTP/1.1 ", 9);
	p += 9;
	*p++ = (char)('0' + status / 100);
	*p++ = (char)('0' + status / 10 % 10);
	*p++ = (char)('0' + status % 10);
	*p++ = ' ';
	p = stpcpy(p, st);
	p = stpcpy(p, "\r\ncontent-type: ");
	p = stpcpy(p, ct);
	p = stpcpy(p, "\r\ncontent-length: ");
	memcpy(p, num + k, sizeof(num) - (size_t)k);
	p += sizeof(num) - (size_t)k;
	p = stpcpy(p, "\r\nx-request-id: ");
	p = stpcpy(p, d->req.request_id);
	p = stpcpy(p, "\r\n");
	for (int i = 0; i < r->nheaders; i++) {
		size_t a = strnlen(r->headers[i].name, sizeof(r->headers[i].name)),
		       c = strnlen(r->headers[i].value, sizeof(r->headers[i].value));
		if ((size_t)(e - p) < a + c + 4)
			return -1;
		memcpy(p, r->headers[i].name, a);
		p += a;
		*p++ = ' ';
		memcpy(p, r->headers[i].value, c);
		p += c;
		*p++ = '\r';
		*p++ = '\n';
	}
	const char *tail = d->close_after ? "connection: close\r\n\r\n" : "\r\n";
	size_t t = strlen(tail);
	if ((size_t)(e - p) < t)
		return -1;
	memcpy(p, tail, t);
	p += t;
	d->hdr_len = (size_t)(p - d->hdr);
	d->hdr_off = 0;
	return 0;
}

/* Peeks at what the client sent and answers the complete requests it can; the first one
 * it cannot answer hands the connection to lws with that request still unread (answered
 * bytes are taken off the socket first). Edge-triggered: bytes of a partial request stay
 * queued until more arrive.
 * Why peek and not read: lws 4.1 can be given bytes already read
 * (lws_adopt_socket_vhost_readbuf), but loops forever on a request with a body handed over
 * that way, and a segment client may well POST on the same connection. A peek offset
 * (SO_PEEK_OFF) makes the peek cost what a read would: each peek returns new bytes, and
 * answered ones are discarded in batches, so a request costs one recv(), not two. */
static void direct_read(struct svc *v, struct direct *d)
{
	struct http_server *s = v->s;
	bool more = true;   /* the socket may hold bytes not yet peeked */
	for (;;) {
		while (!d->busy && d->off < d->inlen) {
			char *head = d->in + d->off, *hend = memmem(head, d->inlen - d->off, "\r\n\r\n", 4);
			if (!hend)
				break;  /* the rest of this request has not arrived */
			size_t len = (size_t)(hend + 4 - head);
			if (atomic_load(&s->stopping) || (s->cfg.app.direct_ok && !s->cfg.app.direct_ok(s->cfg.app.ctx)) ||
			    direct_parse(v, d, head, len) != 0) {
				direct_handover(v, d, false, false);
				return;
			}
			direct_resp_reset(d);
			if (!s->cfg.app.fast(s->cfg.app.ctx, &d->req, &d->resp)) {
				direct_resp_reset(d);
				direct_handover(v, d, true, d->req.fast_checked);
				return;
			}
			d->off += len;
			d->unconsumed += len;
			/* Without a peek offset, off the socket before anything is written (the next
			 * peek starts at the queue's head); with one, in batches. */
			if ((!d->peek_off || d->unconsumed >= DIRECT_CONSUME_BATCH) && direct_consume(d) != 0) {
				direct_free(v, d, true);
				return;
			}
			struct http_resp *r = &d->resp;
			d->body = r->ext_data ? r->ext_data : (const uint8_t *)r->body.data;
			d->body_len = r->ext_data || r->ext_file ? r->ext_len : r->body.len;
			d->sent = 0;
			if (r->close)
				d->close_after = true;
			if (direct_headers(d) != 0) {
				direct_free(v, d, true);
				return;
			}
			d->busy = true;
			v->direct_busy++;
			if (direct_write(v, d) < 0) {
				direct_free(v, d, true);
				return;
			}
		}
		if (d->busy)
			return;  /* POLLOUT resumes; what is peeked and unanswered stays in d->in */
		if (!d->peek_off) {
			d->inlen = d->off = 0;  /* the next peek sees the unanswered bytes again */
		} else if (d->off > 0) {
			/* d->req points into d->target, not d->in: moving the rest is safe. */
			memmove(d->in, d->in + d->off, d->inlen - d->off);
			d->inlen -= d->off;
			d->off = 0;
		}
		if (d->inlen == sizeof(d->in)) {
			direct_handover(v, d, false, false);  /* a head this long: lws's limits apply */
			return;
		}
		if (!more)
			return;
		size_t room = sizeof(d->in) - d->inlen;
		ssize_t got = recv(d->fd, d->in + d->inlen, room, MSG_PEEK | MSG_DONTWAIT);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (got <= 0) {
			direct_free(v, d, true);  /* closed by the peer, or reset */
			return;
		}
		d->inlen += (size_t)got;
		d->deadline_us = http_now_us() + DIRECT_IDLE_US;
		/* Edge-triggered: a short peek saw everything queued, and the next arrival is a
		 * new event. */
		more = (size_t)got == room;
	}
}

/* Takes a newly accepted connection onto the direct path. 0, or -1 (then lws takes it). */
static int direct_adopt(struct svc *v, int fd)
{
	if (v->epfd < 0 || !v->s->cfg.app.fast)
		return -1;
	struct sockaddr_storage sa;
	socklen_t sl = sizeof(sa);
	struct sock_info *si = &v->socks[fd];
	if (getpeername(fd, (struct sockaddr *)&sa, &sl) != 0)
		return -1;
	if (sa.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, si->peer, sizeof(si->peer));
	else if (sa.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, si->peer, sizeof(si->peer));
	else
		return -1;
	struct direct *d = xcalloc(1, sizeof(*d));
	d->fd = fd;
	d->deadline_us = http_now_us() + DIRECT_IDLE_US;
	int zero = 0;
	d->peek_off = setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero)) == 0;
	d->resp.ext_fd = -1;
	struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = d};
	if (epoll_ctl(v->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		free(d);
		si->peer[0] = 0;
		return -1;
	}
	si->direct = d;
	return 0;
}

/* The epoll descriptor is readable: serve every ready direct connection. */
static void direct_service(struct svc *v)
{
	struct epoll_event evs[64];
	int n;
	do {
		n = epoll_wait(v->epfd, evs, 64, 0);
		for (int i = 0; i < n; i++) {
			struct direct *d = evs[i].data.ptr;
			if (d->want_out) {
				if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
					direct_free(v, d, true);
					continue;
				}
				int rc = direct_write(v, d);
				if (rc < 0)
					direct_free(v, d, true);
				else if (rc > 0)
					direct_read(v, d);  /* requests that arrived meanwhile */
			} else {
				direct_read(v, d);
			}
		}
	} while (n == 64);
}

/* Once a second: closes direct connections idle (or stuck) past the keep-alive timeout, and
 * writes the access-log lines of a loop that has gone idle. */
static void svc_sweep(lws_sorted_usec_list_t *sul)
{
	struct svc *v = lws_container_of(sul, struct svc, sweep);
	int64_t now = http_now_us();
	for (size_t fd = 0; fd < v->nsocks; fd++) {
		struct direct *d = v->socks[fd].direct;
		if (d && now > d->deadline_us)
			direct_free(v, d, true);
	}
	log_flush(v);
	lws_sul_schedule(v->lws, 0, &v->sweep, svc_sweep, 1000000);
}

/* Closes every direct connection (the server stops). */
static void direct_close_all(struct svc *v)
{
	for (size_t fd = 0; fd < v->nsocks; fd++)
		if (v->socks[fd].direct)
			direct_free(v, v->socks[fd].direct, true);
}

static int callback_direct(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	(void)user;
	(void)in;
	(void)len;
	struct lws_context *ctx = lws_get_context(wsi);
	struct svc *v = ctx ? lws_context_user(ctx) : NULL;
	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return 1;
	case LWS_CALLBACK_RAW_RX_FILE:
		direct_service(v);
		return 0;
	default:
		return 0;
	}
}

/* The listening socket, watched as a raw descriptor: accepts and hands over to lws. */
static int callback_listen(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	(void)user;
	(void)in;
	(void)len;
	struct lws_context *ctx = lws_get_context(wsi);
	struct svc *v = ctx ? lws_context_user(ctx) : NULL;
	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return 1;  /* not a WebSocket subprotocol */
	case LWS_CALLBACK_RAW_RX_FILE:
		/* A few per wake-up: other svcs' sockets have their own queues, and this loop
		 * still has requests to serve. */
		for (int i = 0; i < 16; i++) {
			int fd = accept4(v->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (fd < 0)
				break;  /* EAGAIN, or a transient error (EMFILE, ECONNABORTED): poll again */
			if ((size_t)fd >= v->nsocks) {
				size_t n = v->nsocks ? v->nsocks : 256;
				while (n <= (size_t)fd)
					n *= 2;
				v->socks = xrealloc(v->socks, n * sizeof(*v->socks));
				memset(v->socks + v->nsocks, 0, (n - v->nsocks) * sizeof(*v->socks));
				v->nsocks = n;
			}
			memset(&v->socks[fd], 0, sizeof(v->socks[fd]));  /* a new client on a recycled descriptor */
			if (direct_adopt(v, fd) != 0)
				lws_adopt_socket_vhost(v->vh, fd);  /* closes fd itself on failure */
		}
		return 0;
	default:
		return 0;
	}
}

#define HTTP_LISTEN_PROTOCOL "encore-listen"
#define HTTP_DIRECT_PROTOCOL "encore-direct"

static const struct lws_protocols protocols[] = {
	/* First: lws binds adopted HTTP connections to protocols[0]. */
	{"http", callback_http, sizeof(struct pss), 0, 0, NULL, 0},
	{HTTP_WS_PROTOCOL, callback_ws, sizeof(struct wss), 4096, 0, NULL, 0},
	{HTTP_LISTEN_PROTOCOL, callback_listen, 0, 0, 0, NULL, 0},
	{HTTP_DIRECT_PROTOCOL, callback_direct, 0, 0, 0, NULL, 0},
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

		/* Wall and CPU time of the handler alone, for the access log: on a loaded machine
		 * the whole latency also holds the waits for a worker and for the I/O thread. */
		struct timespec c0, c1;
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
		j->req.handle_start_us = http_now_us();
		s->cfg.app.handle(s->cfg.app.ctx, local, &j->req, &j->resp);
		j->req.handle_end_us = http_now_us();
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
		j->req.handle_cpu_us = (int64_t)(c1.tv_sec - c0.tv_sec) * 1000000 + (c1.tv_nsec - c0.tv_nsec) / 1000;

		/* Back to the context that owns the connection, and wake only that one. */
		struct svc *v = j->svc;
		pthread_mutex_lock(&v->lock);
		j->next = NULL;
		if (v->done_tail)
			v->done_tail->next = j;
		else
			v->done_head = j;
		v->done_tail = j;
		pthread_mutex_unlock(&v->lock);
		lws_cancel_service(v->lws);
	}
	if (s->cfg.app.worker_fini)
		s->cfg.app.worker_fini(s->cfg.app.ctx, local);
	return NULL;
}

static void lws_log_to_stderr(int level, const char *line)
{
	(void)level;
	fprintf(stderr, "lws: %s", line);
}

static int cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

/* Binds host:port for one svc; SO_REUSEPORT lets every svc bind the same port. Returns
 * the non-blocking listening fd, or -errno. */
static int open_listener(const char *host, int port, bool reuseport)
{
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	if (getaddrinfo(host, ps, &hints, &ai) != 0 || !ai)
		return -EADDRNOTAVAIL;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1, rc = 0;
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
		rc = -errno;
		close(fd);
		goto out;
	}
	rc = fd;
out:
	freeaddrinfo(ai);
	return rc;
}

static int bound_port(int fd)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	if (getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
		return -1;
	return ntohs(sa.sin_port);
}

struct http_server *http_server_new(const struct http_config *cfg, char *err, size_t errlen)
{
	struct http_server *s = xcalloc(1, sizeof(*s));
	s->cfg = *cfg;
	if (s->cfg.workers <= 0)
		s->cfg.workers = cpu_count() * 2;
	int nsvc = cfg->io_threads > 0 ? cfg->io_threads : cpu_count();
	if (nsvc > HTTP_MAX_IO_THREADS)
		nsvc = HTTP_MAX_IO_THREADS;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->work_cv, NULL);
	pthread_mutex_init(&s->ws_cb_lock, NULL);
	s->svcs = xcalloc((size_t)nsvc, sizeof(*s->svcs));
	s->nsvc = nsvc;
	uint64_t seed;
	randombytes_buf(&seed, sizeof(seed));
	for (int i = 0; i < nsvc; i++) {
		struct svc *v = &s->svcs[i];
		v->s = s;
		v->index = i;
		v->rid_state = seed + (uint64_t)i * 0x632be59bd9b4e019ull;
		v->listen_fd = -1;
		v->epfd = -1;
		pthread_mutex_init(&v->lock, NULL);
	}

	lws_set_log_level(LLL_ERR, lws_log_to_stderr);
	if (cfg->port != 0 && nsvc > 1) {
		/* SO_REUSEPORT would also let us join another server already on this port and
		 * steal half its connections: make sure the port is free first. */
		int probe = open_listener(cfg->host, cfg->port, false);
		if (probe < 0) {
			snprintf(err, errlen, "cannot listen on %s:%d: %s", cfg->host, cfg->port, strerror(-probe));
			goto fail;
		}
		close(probe);
	}
	for (int i = 0; i < nsvc; i++) {
		struct svc *v = &s->svcs[i];
		/* The first socket picks the port (maybe 0 = any); the others share it. */
		int port = i == 0 ? cfg->port : s->port;
		v->listen_fd = open_listener(cfg->host, port, nsvc > 1);
		if (v->listen_fd < 0) {
			snprintf(err, errlen, "cannot listen on %s:%d: %s", cfg->host, port, strerror(-v->listen_fd));
			goto fail;
		}
		if (i == 0)
			s->port = bound_port(v->listen_fd);
		struct lws_context_creation_info info;
		memset(&info, 0, sizeof(info));
		info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
		info.protocols = protocols;
		info.user = v;
		info.options = LWS_SERVER_OPTION_DISABLE_IPV6 | LWS_SERVER_OPTION_VALIDATE_UTF8;
		info.max_http_header_data = 16384;
		info.keepalive_timeout = 30;
		info.timeout_secs = 30;
		v->lws = lws_create_context(&info);
		v->vh = v->lws ? lws_get_vhost_by_name(v->lws, "default") : NULL;
		if (!v->vh) {
			snprintf(err, errlen, "cannot create the libwebsockets context");
			goto fail;
		}
		lws_sock_file_fd_type d = {.filefd = v->listen_fd};
		if (!lws_adopt_descriptor_vhost(v->vh, LWS_ADOPT_RAW_FILE_DESC, d, HTTP_LISTEN_PROTOCOL, NULL)) {
			snprintf(err, errlen, "cannot watch the listening socket");
			goto fail;
		}
		v->listen_fd_adopted = true;
		if (cfg->app.fast) {
			v->epfd = epoll_create1(EPOLL_CLOEXEC);
			lws_sock_file_fd_type e = {.filefd = v->epfd};
			if (v->epfd < 0 || !lws_adopt_descriptor_vhost(v->vh, LWS_ADOPT_RAW_FILE_DESC, e, HTTP_DIRECT_PROTOCOL, NULL)) {
				snprintf(err, errlen, "cannot watch the direct connections");
				goto fail;
			}
			v->epfd_adopted = true;
		}
		lws_sul_schedule(v->lws, 0, &v->sweep, svc_sweep, 1000000);
	}

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

int http_server_io_threads(const struct http_server *s)
{
	return s->nsvc;
}

/* One svc's loop: serve until stopped, then until its accepted requests are answered. */
static void *svc_main(void *arg)
{
	struct svc *v = arg;
	struct http_server *s = v->s;
	/* lws_service() is one poll() and a pass over what is ready: the log lines of that
	 * pass are written after it, or batched with later passes' (log_pass_done). */
	while (!atomic_load(&s->stopping)) {
		int rc = lws_service(v->lws, 0);
		log_pass_done(v);
		if (rc < 0)
			break;
	}
	int64_t deadline = http_now_us() + (int64_t)HTTP_DRAIN_SECONDS * 1000000;
	while ((v->inflight > 0 || v->direct_busy > 0) && http_now_us() < deadline) {
		int rc = lws_service(v->lws, 0);
		log_flush(v);
		if (rc < 0)
			break;
	}
	direct_close_all(v);
	log_flush(v);
	return NULL;
}

int http_server_run(struct http_server *s)
{
	/* Signals (SIGINT/SIGTERM) should land on the calling thread, which runs svc 0. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int rc = 0;
	for (int i = 1; i < s->nsvc; i++) {
		s->svcs[i].thread_started = pthread_create(&s->svcs[i].thread, NULL, svc_main, &s->svcs[i]) == 0;
		if (!s->svcs[i].thread_started) {
			/* Its listener would take connections nobody serves: stop instead. */
			fprintf(stderr, "http: cannot start I/O thread %d\n", i);
			http_server_stop(s);
			rc = -1;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	svc_main(&s->svcs[0]);
	for (int i = 1; i < s->nsvc; i++)
		if (s->svcs[i].thread_started) {
			pthread_join(s->svcs[i].thread, NULL);
			s->svcs[i].thread_started = false;
		}
	return rc;
}

void http_server_stop(struct http_server *s)
{
	atomic_store(&s->stopping, 1);
	for (int i = 0; i < s->nsvc; i++)
		if (s->svcs[i].lws)
			lws_cancel_service(s->svcs[i].lws);
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
	for (int i = 0; i < s->nsvc; i++) {
		direct_close_all(&s->svcs[i]);
		if (s->svcs[i].epfd >= 0 && !s->svcs[i].epfd_adopted)
			close(s->svcs[i].epfd);
		if (s->svcs[i].lws)
			lws_context_destroy(s->svcs[i].lws);
		if (s->svcs[i].listen_fd >= 0 && !s->svcs[i].listen_fd_adopted)
			close(s->svcs[i].listen_fd);
	}
	/* Anything still queued belonged to connections lws has now closed. */
	for (struct job *j = s->work_head, *n; j; j = n) { n = j->next; job_free(j); }
	for (int i = 0; i < s->nsvc; i++) {
		struct svc *v = &s->svcs[i];
		for (struct job *j = v->done_head, *n; j; j = n) { n = j->next; job_free(j); }
		ws_msgs_free(v->wsq_head);
		free(v->ws_conns);
		log_flush(v);
		buf_free(&v->log);
		free(v->socks);
		pthread_mutex_destroy(&v->lock);
	}
	free(s->svcs);
	free(s->threads);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->work_cv);
	pthread_mutex_destroy(&s->ws_cb_lock);
	free(s);
}
