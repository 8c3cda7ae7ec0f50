/* connect: the client side of Connect. One thread owns a libwebsockets client context and
 * a persistent "encore-v1" socket to encored: it authenticates with the session's token,
 * registers this device, reports the engine's state when it changes (play/pause, track,
 * seek, volume, shuffle, repeat) and runs the commands the hub sends (prepare — answered
 * with "prepared" once audio is buffered — start, stop,
 * pause, resume, seek, next, previous, volume, shuffle, repeat, enqueue) on the engine.
 * The socket is a wsclient (core/wsclient.h): it pings every CONNECT_PING_MS, drops a
 * peer silent for CONNECT_DEAD_MS and reconnects with exponential backoff and jitter. */
#ifndef ENCORE_CORE_CONNECT_H
#define ENCORE_CORE_CONNECT_H
#include <stdbool.h>
#include <stddef.h>

#define CONNECT_PING_MS 5000
#define CONNECT_DEAD_MS 15000         /* no message for this long: reconnect */
#define CONNECT_START_SLACK_MS 20     /* a prepared start this close to the stop point is not re-seeked */
#define CONNECT_PREP_POLL_MS 10       /* how often a preparing target looks at its buffer */

struct api;
struct engine;

struct connect_client_config {
	struct api *api;          /* borrowed; its base URL names the server, its bearer authenticates */
	struct engine *engine;    /* borrowed; must outlive the client */
	const char *device_id;    /* stable id ([A-Za-z0-9_-]{1,63}); copied */
	const char *name;         /* shown in device lists; copied */
	const char *type;         /* "computer" when NULL */
};

struct connect_client;

/* Starts the client thread (it connects in the background). NULL with err on failure. */
struct connect_client *connect_client_start(const struct connect_client_config *cfg, char *err, size_t errlen);
/* Closes the socket and joins the thread. NULL is a no-op. */
void connect_client_stop(struct connect_client *c);

/* Reads the device id stored at path, or creates one (22 base62 chars) there.
 * Returns 0 or -errno. */
int connect_device_id(const char *path, char out[64]);

#endif
