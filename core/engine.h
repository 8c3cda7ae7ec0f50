/* engine: the playback engine, one per client. It owns the play queue, streams segments
 * (libcurl multi, reused connections, prefetch, adaptive bitrate, retries and origin
 * fallback), decodes them gaplessly, normalises loudness and feeds the audio output.
 *
 * Threads: a network thread runs the state machine and every download; a decoder thread
 * turns segments into PCM; an output thread writes the ring to the sink. The caller's
 * thread (a UI, a CLI, the control socket) only sends commands, which never block on the
 * network or the disk, and reads snapshots. It learns of changes through event_fd, an
 * eventfd that becomes readable whenever the snapshot's version moves. */
#ifndef ENCORE_ENGINE_H
#define ENCORE_ENGINE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct api;
struct offline;

enum engine_state {
	ENGINE_IDLE,       /* nothing queued */
	ENGINE_LOADING,    /* fetching the manifest / first audio */
	ENGINE_BUFFERING,  /* waiting for audio mid-track (an underrun) */
	ENGINE_PLAYING,
	ENGINE_PAUSED,
	ENGINE_ENDED,      /* the queue ran out */
	ENGINE_ERROR,      /* the current item cannot play; see snapshot.error */
};

enum engine_repeat { ENGINE_REPEAT_OFF, ENGINE_REPEAT_ONE, ENGINE_REPEAT_ALL };

struct engine_config {
	struct api *api;            /* logged-in API client; borrowed, must outlive the engine */
	const char *output;         /* sink spec: "alsa", "alsa:DEV", "null", "null:realtime", "wav:FILE" */
	int quality;                /* 0 = auto, else 24, 96, 160 or 320 (a ceiling) */
	bool premium;               /* tier: free listeners are capped at 160 */
	double prefetch_seconds;    /* buffer target ahead of the play position (default 10) */
	bool normalize;             /* loudness normalisation (default on) */
	int volume;                 /* 0..100 */
	const char *cache_path;     /* SQLite cache for metadata and manifests, or NULL */
	bool autoplay;              /* when the queue runs out, continue with similar tracks */
	struct offline *offline;    /* downloaded tracks (offline.h), or NULL; borrowed, used only
	                             * by the network thread, must outlive the engine */
	bool offline_only;          /* play downloaded tracks only; refuse the rest at once */
};

/* Defaults: auto quality, 10 s prefetch, normalisation on, volume 100, autoplay on. */
void engine_config_defaults(struct engine_config *c);

struct engine_snapshot {
	uint64_t version;           /* increases on every change */
	enum engine_state state;
	char uri[64];               /* current item, "" when none */
	char title[256], artist[256], album[256];
	int duration_ms;
	int position_ms;            /* of the audio the listener is hearing now */
	int bitrate_kbps;           /* rendition of the segment playing now */
	double buffer_seconds;      /* audio downloaded or decoded ahead of the position */
	int volume;
	bool shuffle;
	enum engine_repeat repeat;
	bool normalize;
	double gain_db;             /* normalisation gain of the current item */
	int queue_length;
	int queue_position;         /* index of the current item, -1 if none */
	char output[128];           /* sink in use */
	char error[256];            /* last error, one line, "" if none */
	/* Counters since start. */
	uint64_t underruns;
	uint64_t segments_fetched, bytes_fetched;
	uint64_t connections_reused, connections_opened;
	uint64_t bitrate_switches;
	uint64_t tracks_started;
	int64_t first_audio_us;     /* from the last play command to its first frame at the sink */
};

/* Creates and starts the engine. NULL with a one-line reason in err (e.g. no sound card). */
struct engine *engine_new(const struct engine_config *cfg, char *err, size_t errlen);
/* Stops playback, joins the threads, releases everything. */
void engine_free(struct engine *e);
/* A file descriptor that polls readable when the snapshot changed; read it with engine_ack_event. */
int engine_event_fd(struct engine *e);
void engine_ack_event(struct engine *e);
/* More event fds, for other readers (the control socket): each is its own eventfd.
 * Returns the fd or -EMFILE. Remove (and close) with engine_remove_listener. */
int engine_add_listener(struct engine *e);
void engine_remove_listener(struct engine *e, int fd);
/* Copies the current state. Never blocks for long (one mutex). */
void engine_snapshot(struct engine *e, struct engine_snapshot *out);

/* Commands: queued for the network thread; they return at once with 0, or -EINVAL for a
 * malformed argument (a URI that is not encore:track:ID / encore:episode:ID). */
int engine_play(struct engine *e, const char *const *uris, int n);   /* replace the queue and play */
/* The same, starting at uris[index], start_ms into it (one round trip: the seek rides
 * on the manifest request rather than following the start). */
int engine_play_from(struct engine *e, const char *const *uris, int n, int index, int start_ms);
/* The same, but loaded paused: it fetches and buffers, and engine_resume starts it with
 * no round trip (a Connect transfer's "prepare"). -EINVAL on bad arguments. */
int engine_prepare(struct engine *e, const char *const *uris, int n, int index, int start_ms);
int engine_enqueue(struct engine *e, const char *uri, bool play_next);
int engine_pause(struct engine *e);
int engine_resume(struct engine *e);
int engine_toggle(struct engine *e);
int engine_stop(struct engine *e);
int engine_next(struct engine *e);
int engine_prev(struct engine *e);
int engine_seek(struct engine *e, int ms, bool relative);
int engine_set_volume(struct engine *e, int volume, bool relative);
int engine_set_shuffle(struct engine *e, bool on);
int engine_set_repeat(struct engine *e, enum engine_repeat r);
int engine_set_normalize(struct engine *e, bool on);
int engine_queue_move(struct engine *e, int from, int to);
int engine_queue_remove(struct engine *e, int index);
int engine_queue_clear(struct engine *e);

/* The queue as URIs (caller frees each and the array with engine_queue_list_free). */
int engine_queue_list(struct engine *e, char ***uris, int *n, int *current);
void engine_queue_list_free(char **uris, int n);

/* Discrete events, in the order they happened, for scripts (`encore play --json`):
 * snapshots can miss a transition, events cannot (up to ENGINE_MAX_EVENTS unread). */
enum engine_event_type {
	ENGINE_EV_TRACK_STARTED,   /* the first frame of an item reached the sink */
	ENGINE_EV_BITRATE_CHANGED, /* the sink started playing a segment of another rendition */
	ENGINE_EV_UNDERRUN,        /* a real-time sink found no audio while an item was playing */
	ENGINE_EV_PAUSED,
	ENGINE_EV_RESUMED,
	ENGINE_EV_ENDED,           /* the queue ran out and everything has played */
	ENGINE_EV_ERROR,           /* message says what; playback moves on */
};
#define ENGINE_MAX_EVENTS 256

struct engine_event {
	enum engine_event_type type;
	char uri[64];
	int bitrate_kbps;
	int position_ms;
	int64_t first_audio_us;    /* TRACK_STARTED: from its play command (skip, play, seek) to its
	                            * first frame handed to the sink; 0 if it followed on */
	int64_t handover_us;       /* TRACK_STARTED that followed on: from the sink accepting the
	                            * previous item's last frame to this item's first frame being
	                            * handed to it (the gap a gapless hand-over leaves); else -1 */
	char message[256];         /* ERROR */
};

/* Moves up to max pending events into out; returns how many. */
int engine_take_events(struct engine *e, struct engine_event *out, int max);
const char *engine_event_name(enum engine_event_type t);

const char *engine_state_name(enum engine_state s);

#endif
