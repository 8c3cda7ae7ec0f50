/* wsclient: one persistent "encore-v1" WebSocket to encored, the transport shared by
 * Connect (core/connect.c) and the TUI's playlist push (tui/plwatch.c). It owns a
 * libwebsockets client context and the thread that services it, authenticates every new
 * socket with the api's bearer token ({"type":"auth"}, and refreshes an expired token
 * when the server closes with 4001), reconnects with exponential backoff and jitter,
 * pings once the owner says the server accepted it, drops a ready socket that has been
 * silent for dead_ms, queues outbound text from any thread and reassembles fragmented
 * messages. The owner's protocol runs in its callbacks, all on the lws thread. */
#ifndef ENCORE_CORE_WSCLIENT_H
#define ENCORE_CORE_WSCLIENT_H
#include <stdbool.h>
#include <stddef.h>

#define WSCLIENT_BACKOFF_MIN_MS 250
#define WSCLIENT_BACKOFF_MAX_MS 8000
#define WSCLIENT_MAX_MESSAGE (1 << 20)   /* a longer incoming message drops the socket */

struct api;
struct buf;
struct lws_sorted_usec_list;
struct wsclient;

struct wsclient_config {
	struct api *api;        /* borrowed, must outlive the client: its base URL (http:// only) names the server, its bearer authenticates */
	const char *path;       /* "/" when NULL; copied */
	int ping_ms;            /* interval of {"type":"ping"} while ready; required (> 0) */
	int dead_ms;            /* a ready socket silent this long is dropped; 0: never */
	void *owner;            /* passed to every callback */
	/* All callbacks run on the lws thread and may call wsclient_send and wsclient_ready.
	 * None starts once wsclient_free has begun, and wsclient_free returns only after a
	 * running one has returned. Each may be NULL. */
	void (*on_open)(void *owner);                                  /* socket up, auth queued */
	void (*on_text)(void *owner, const char *text, size_t len);   /* one whole message, NUL-terminated */
	void (*on_down)(void *owner);                                  /* a socket closed or a connect failed; a retry is scheduled */
	void (*on_wake)(void *owner);                                  /* after wsclient_wake (and spuriously) */
};

/* Creates the client without connecting, so the owner can store the pointer before any
 * callback runs. NULL with a message in err when the URL is not http://host[:port] or the
 * lws context cannot be created. */
struct wsclient *wsclient_new(const struct wsclient_config *cfg, char *err, size_t errlen);
/* Starts the lws thread, which connects in the background. 0, or -errno (then only
 * wsclient_free is allowed). Call once. */
int wsclient_start(struct wsclient *ws);
/* Closes the socket, joins the thread (if started) and frees queued messages. NULL is a no-op. */
void wsclient_free(struct wsclient *ws);

/* Any thread: queues text (copied) for the open socket. A message sent while no socket is
 * open is dropped, as are those still queued when it closes: the owner resends its state
 * from on_open. */
void wsclient_send(struct wsclient *ws, const char *text);
/* Any thread: runs on_wake on the lws thread soon (coalescing with other wakes). */
void wsclient_wake(struct wsclient *ws);
/* lws thread: the server accepted this socket (auth_ok, registered): resets the backoff
 * and starts pings until the socket closes. */
void wsclient_ready(struct wsclient *ws);
/* lws thread: runs cb on the lws thread after ms; re-arming sul moves it. sul must live
 * until wsclient_free. */
void wsclient_schedule(struct wsclient *ws, struct lws_sorted_usec_list *sul,
		       void (*cb)(struct lws_sorted_usec_list *), int ms);

/* Pure: the backoff before reconnect attempt n (0-based) for a jitter draw r in [0,1):
 * min(MAX, MIN * 2^n) scaled by 0.75..1.25. */
int wsclient_backoff_ms(int attempt, double r);
/* Pure: adds one fragment to rx. Returns 1 when final completed a message (rx then holds
 * its rx->len bytes, NUL-terminated, data NULL when empty; the caller frees or resets rx),
 * 0 when more fragments are due, -EMSGSIZE (rx emptied) when it would exceed max bytes. */
int wsclient_assemble(struct buf *rx, const void *in, size_t len, bool final, size_t max);

#endif
