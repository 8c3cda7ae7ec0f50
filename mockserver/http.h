/* http: encored's HTTP front end on libwebsockets. A few I/O threads (one libwebsockets
 * context each, sharing the listening port) own the sockets; requests are parsed there and
 * handed to a pool of worker threads, which run the application's handler (which may block
 * on SQLite) and hand the response back to the I/O thread that owns the connection. */
#ifndef ENCORE_HTTP_H
#define ENCORE_HTTP_H
#include "buf.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_ARGS 32
#define HTTP_MAX_RESP_HEADERS 8

struct http_arg {
	char *name;   /* decoded */
	char *value;  /* decoded */
};

struct http_req {
	char method[8];
	char *path;                 /* decoded by libwebsockets, always starts with '/' */
	struct http_arg args[HTTP_MAX_ARGS];
	int nargs;
	struct buf body;
	char *authorization;        /* NULL when absent */
	char *if_none_match;
	char *content_type;
	char *range;                /* Range header, or NULL */
	char client_ip[64];
	char request_id[17];
	int64_t start_us;           /* monotonic, for latency */
	int64_t handle_start_us;    /* when a worker (or the I/O thread's fast path) took it */
	int64_t handle_end_us;      /* when the worker's handler returned */
	int64_t handle_cpu_us;      /* the worker thread's CPU time in the handler */
	bool fast_checked;          /* the fast path saw this request before the workers */
	bool fast_answered;         /* ... and answered it on the I/O thread */
	/* Filled by the application while routing; freed with the request. */
	void *app_data;
};

struct http_resp_header {
	char name[40];    /* lowercase, with the trailing ':' libwebsockets wants */
	char value[256];
};

/* A field added here must also be reset in http.c's direct_resp_reset. */
struct http_resp {
	int status;
	const char *content_type;   /* static string */
	struct buf body;
	struct http_resp_header headers[HTTP_MAX_RESP_HEADERS];
	int nheaders;
	bool close;                 /* close the connection after this response */
	/* Zero-copy body: when ext_data is set it is sent instead of body, and ext_release(ext_ctx)
	 * is called once the response is done with it. When ext_file is set, the body is instead
	 * ext_len bytes of the open file ext_fd from offset ext_off, sent with sendfile() (the
	 * file's pages go to the socket without a copy; the file must be in the page cache, since
	 * this runs on an I/O thread); ext_release keeps the descriptor open until then. */
	const uint8_t *ext_data;
	size_t ext_len;
	bool ext_file;
	int ext_fd;
	uint64_t ext_off;
	void (*ext_release)(void *ext_ctx);
	void *ext_ctx;
	/* Shaping, for fault injection: wait before the headers, cap the send rate, or close
	 * the connection halfway through the body. */
	int64_t delay_us;
	int bandwidth_kbps;
	bool drop_mid_body;
};

struct http_server;

/* The application's side: called on worker threads. worker_init returns per-worker state
 * (for example a database connection) passed to every handle() call on that worker. */
struct http_app {
	void *ctx;
	void *(*worker_init)(void *ctx, int worker_index);
	void (*worker_fini)(void *ctx, void *worker);
	void (*handle)(void *ctx, void *worker, struct http_req *req, struct http_resp *resp);
	/* Optional, called on an I/O thread before dispatch: answers from memory without a
	 * worker hop (edge-cache hits). Returns true when resp is complete. Must not block, and
	 * runs on several I/O threads at once. */
	bool (*fast)(void *ctx, struct http_req *req, struct http_resp *resp);
	/* Optional, called on an I/O thread: whether plain segment GETs (/cdn/, /origin/) may
	 * be answered by the http layer's direct path now, without libwebsockets' request
	 * machinery. False sends them the general way (where fault shaping lives). */
	bool (*direct_ok)(void *ctx);
	/* Called on the connection's I/O thread once per finished request (several I/O threads
	 * at once), for access logs and metrics. Appends the request's log line (with its '\n')
	 * to out, a per-thread buffer the http layer writes to stderr in batches: whole lines
	 * per write(), at the latest when the I/O thread's pass over ready connections ends, so
	 * a line never waits on an idle server. */
	void (*log)(void *ctx, const struct http_req *req, const struct http_resp *resp, int64_t latency_us,
		    struct buf *out);
};

/* The WebSocket side: connections that ask for subprotocol HTTP_WS_PROTOCOL on the same
 * port. Callbacks run on the connection's I/O thread but never two at once (the server
 * serialises them), one connection id each (never reused, never 0). */
#define HTTP_WS_PROTOCOL "encore-v1"
#define HTTP_WS_MAX_MESSAGE 8192   /* a bigger incoming message closes with 1009 */

struct http_ws_app {
	void *ctx;
	/* A connection opened; query_token is its ?token= argument, or NULL. */
	void (*open)(void *ctx, uint64_t conn, const char *query_token);
	/* One complete text message, NUL-terminated (len excludes the NUL). */
	void (*message)(void *ctx, uint64_t conn, const char *text, size_t len);
	void (*close)(void *ctx, uint64_t conn);
};

struct http_config {
	const char *host;      /* address to bind, e.g. "127.0.0.1" */
	int port;              /* 0 picks a free port */
	int workers;           /* worker threads; 0 means two per core */
	int io_threads;        /* I/O threads (libwebsockets contexts); 0 means one per core */
	size_t max_body;       /* bigger bodies get 413 */
	/* Optional: a larger limit for some paths (uploads). Returns the limit for this request. */
	size_t (*body_limit)(void *ctx, const char *method, const char *path, size_t max_body);
	struct http_app app;
	struct http_ws_app ws;  /* optional: all NULL means WebSocket upgrades are refused */
};

/* Creates the listening server and starts its workers. NULL on failure with err filled. */
struct http_server *http_server_new(const struct http_config *cfg, char *err, size_t errlen);
/* The port actually bound (useful with port 0). */
int http_server_port(const struct http_server *s);
/* The number of I/O threads serving. */
int http_server_io_threads(const struct http_server *s);
/* Serves on the calling thread (I/O thread 0) and starts the others; returns once
 * http_server_stop() was called and in-flight requests finished (up to a deadline).
 * Returns 0, or -1 when an I/O thread could not start (the server then stops). */
int http_server_run(struct http_server *s);
/* Asks the service loop to stop. Safe from a signal handler and from any thread. */
void http_server_stop(struct http_server *s);
/* Joins the workers and releases everything. */
void http_server_free(struct http_server *s);

/* Queues a text message to a WebSocket connection; callable from any thread. Messages to
 * one connection go out in the order queued; a closed connection drops them. */
void http_ws_send(struct http_server *s, uint64_t conn, const char *text, size_t len);
/* Queues a close frame (status code, short reason) after the messages already queued. */
void http_ws_close(struct http_server *s, uint64_t conn, int code, const char *reason);

/* Query argument value, or NULL. */
const char *http_arg(const struct http_req *req, const char *name);
/* Adds a response header; name without the colon. Silently drops beyond the limit. */
void http_resp_header(struct http_resp *resp, const char *name, const char *value);
/* Sets status and a JSON body {"error":{"status":N,"message":M}} (the Web API's error object). */
void http_resp_error(struct http_resp *resp, int status, const char *message);
/* Sets status and takes ownership of a JSON text. */
void http_resp_json(struct http_resp *resp, int status, char *json);
/* Sets status and takes body's storage as the JSON body, leaving body empty. */
void http_resp_json_buf(struct http_resp *resp, int status, struct buf *body);

int64_t http_now_us(void);

#endif
