/* connect: the Connect hub. Per user it keeps the registered devices, the active one and
 * the authoritative playback state (with a monotonic version), persisted in SQLite so a
 * restart keeps the last state. Devices speak to it over the encore-v1 WebSocket (register,
 * state reports, commands); the Web API player routes (connect_routes) drive it too.
 *
 * It wraps the playlist hub's WebSocket app: messages it does not own (subscribe, ...)
 * are passed on, so one socket carries both. Every entry point takes one mutex; sends only
 * queue through http_ws_send, so nothing blocks under it but the hub's own SQLite writes. */
#ifndef ENCORE_CONNECT_H
#define ENCORE_CONNECT_H
#include "http.h"
#include "keyring.h"
#include <stdbool.h>
#include <stdint.h>

#define CONNECT_MAX_QUEUE 200        /* uris kept in the state's queue */
#define CONNECT_MAX_DEVICES 32       /* per user */
#define CONNECT_RATE 20.0            /* messages per second per connection, sustained */
#define CONNECT_BURST 60.0
#define CONNECT_MAX_DROPPED 200      /* dropped messages before the connection is closed */
#define CONNECT_XFER_TIMEOUT_MS 5000 /* a source that never reports its stop is given up on */
#define CONNECT_PREPARE_TIMEOUT_MS 1000 /* a target that never says "prepared": stop the source anyway */

enum connect_close {
	CONNECT_CLOSE_RATE = 4029,   /* sustained message flood */
};

struct connhub;

/* A hub verifying tokens with jwt_keys, persisting through its own connection to the
 * database in data_dir. NULL on failure. */
struct connhub *connhub_new(const struct keyring *jwt_keys, const char *data_dir);
void connhub_free(struct connhub *h);
/* Binds the hub to the server whose connections it serves (before http_server_run). */
void connhub_attach(struct connhub *h, struct http_server *hs);
/* The callbacks to put in http_config.ws: Connect's messages are handled here, the rest
 * (and auth, which both hubs see) go to inner. */
struct http_ws_app connhub_ws_app(struct connhub *h, struct http_ws_app inner);

/* A player command, from a route or a WebSocket message. */
struct connect_cmd {
	const char *name;          /* play pause seek volume shuffle repeat next previous queue transfer */
	const char *device_id;     /* target device; NULL = the active one */
	long long version;         /* state version it was based on; -1 = none (current) */
	long long position_ms;     /* seek, play */
	int volume;                /* volume */
	bool state;                /* shuffle; transfer's "play" */
	const char *repeat;        /* off | track | context */
	const char *uri;           /* queue */
	const char *const *uris;   /* play: a new queue (may be NULL) */
	int nuris;
};

/* Applies cmd for user. Returns the HTTP status (204 done, 400 bad argument, 404 unknown
 * or unavailable device / nothing active, 409 stale version) with a message in err. */
int connhub_command(struct connhub *h, const char *user, const struct connect_cmd *cmd, char *err, size_t errlen);
/* Appends the player state of user as JSON (GET /v1/me/player shape); returns false
 * when nothing has been played and no device is active (the route answers 204). */
bool connhub_player_json(struct connhub *h, const char *user, struct buf *out);
/* Appends {"devices":[...]} for user (online devices only). */
void connhub_devices_json(struct connhub *h, const char *user, struct buf *out);
/* Appends {"currently_playing":...,"queue":[...]} for user. */
void connhub_queue_json(struct connhub *h, const char *user, struct buf *out);

#endif
