/* plpush: live playlist updates over WebSockets (subprotocol encore-v1 on the HTTP port).
 *
 * A connection authenticates ({"type":"auth","token":JWT} first, or ?token= in the URL),
 * subscribes to playlists it may read, and then receives every change as
 * {"type":"playlist_changed", ...} in version order. Messages arrive on the service thread;
 * pushes are queued from worker threads through http_ws_send. */
#ifndef ENCORE_PLPUSH_H
#define ENCORE_PLPUSH_H
#include "http.h"
#include "keyring.h"
#include <stdint.h>

#define PLHUB_MAX_SUBSCRIPTIONS 64   /* per connection */

/* Close codes sent to clients (besides the RFC 6455 ones the http layer uses). */
enum plhub_close {
	PLHUB_CLOSE_AUTH = 4001,         /* missing, malformed or expired token */
};

struct plhub;
struct playlists;

/* A hub verifying tokens with jwt_keys and checking reads through playlists; it opens its
 * own database connection in data_dir (used on the service thread only). NULL on failure. */
struct plhub *plhub_new(const struct keyring *jwt_keys, struct playlists *playlists, const char *data_dir);
void plhub_free(struct plhub *h);
/* Binds the hub to the server whose connections it serves (before http_server_run). */
void plhub_attach(struct plhub *h, struct http_server *hs);
/* The callbacks to put in http_config.ws. */
struct http_ws_app plhub_ws_app(struct plhub *h);
/* Queues json to every subscriber of playlist; any thread. Returns the number queued. */
int plhub_publish(struct plhub *h, const char *playlist, const char *json);
/* Subscribers of playlist right now; any thread. */
int plhub_subscribers(struct plhub *h, const char *playlist);

#endif
