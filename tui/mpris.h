/* mpris: desktop integration over the D-Bus session bus. Publishes the engine as an MPRIS
 * player (org.mpris.MediaPlayer2.encore, so media keys, playerctl and desktop applets
 * see and steer it) and, if asked, shows a desktop notification on each track change.
 *
 * It runs on its own thread with its own bus connection: connecting, every bus call and
 * every reply happen there, never on the caller's (UI) thread nor the audio threads. The
 * thread learns of engine changes through an engine listener (engine_add_listener) and
 * reads snapshots; it steers the engine only through engine commands, which never block.
 * Without a session bus (DBUS_SESSION_BUS_ADDRESS unset and no $XDG_RUNTIME_DIR/bus, or
 * an address nobody answers) the thread ends quietly: nothing is printed, nothing fails. */
#ifndef ENCORE_MPRIS_H
#define ENCORE_MPRIS_H
#include <stdbool.h>
#include <stddef.h>

struct engine;
struct engine_snapshot;
struct config;
struct mpris;

/* Starts the bus thread for e, which must outlive the handle. notify: a desktop
 * notification (org.freedesktop.Notifications) when a new track starts. Returns NULL
 * only when the build has no D-Bus support or a thread cannot start; whether a bus was
 * found is not reported (desktop integration is best effort and silent). */
struct mpris *mpris_new(struct engine *e, bool notify);
/* As mpris_new with the user's settings (config keys `mpris` and `notify`); NULL when
 * `mpris` is off. conf is only read during the call. */
struct mpris *mpris_new_from_config(struct engine *e, const struct config *conf);
struct cli_ctx;
/* As mpris_new_from_config with the user's config file (for commands that do not load
 * it otherwise, like `encore play`). An unreadable or bad file leaves the defaults. */
struct mpris *mpris_new_for_cli(struct cli_ctx *c, struct engine *e);
/* Leaves the bus (releasing the name), joins the thread, frees m. NULL is a no-op. */
void mpris_free(struct mpris *m);

/* Pure helpers, exposed for tests. */

/* The MPRIS PlaybackStatus for an engine state: "Playing", "Paused" or "Stopped". */
const char *mpris_playback_status(int engine_state);
/* The mpris:trackid object path for an item URI ("encore:track:ID" ->
 * "/org/encore/track/ID"; "" -> the spec's NoTrack path). Always a valid object path. */
void mpris_track_id(const char *uri, char *out, size_t outlen);

/* Properties of org.mpris.MediaPlayer2.Player that a snapshot change can move. */
enum mpris_prop {
	MPRIS_PROP_STATUS = 1 << 0,
	MPRIS_PROP_METADATA = 1 << 1,
	MPRIS_PROP_VOLUME = 1 << 2,
	MPRIS_PROP_SHUFFLE = 1 << 3,
	MPRIS_PROP_LOOP = 1 << 4,
	MPRIS_PROP_CAN_NEXT = 1 << 5,
	MPRIS_PROP_CAN_PREV = 1 << 6,
	MPRIS_PROP_CAN_PLAY = 1 << 7,
	MPRIS_PROP_CAN_PAUSE = 1 << 8,
	MPRIS_PROP_CAN_SEEK = 1 << 9,
};
/* Which properties differ between two snapshots (a bitmask of enum mpris_prop). Position
 * is not among them: the spec has clients extrapolate it and signals jumps with Seeked. */
unsigned mpris_changed(const struct engine_snapshot *before, const struct engine_snapshot *after);

#endif
