/* engine: three threads around two queues.
 *
 *   network thread ──(decode jobs, in play order)──▶ decoder thread ──(PCM ring + markers)──▶ output thread
 *        ▲ commands (curl_multi_wakeup)                                                         │
 *        └──────────────────────────── playing item / position (atomics, wake-up) ◀────────────┘
 *
 * The network thread owns the queue, the items and every transfer (one curl multi handle,
 * so connections are reused across segments and tracks). It pushes segments to the decoder
 * strictly in play order. The decoder thread turns them into PCM and writes the ring,
 * tagging stream positions with markers (which item, which position, which gain). The
 * output thread reads the ring, applies gain and volume, writes the sink, and is the one
 * that knows what the listener hears. A flush (seek, skip) bumps the ring's generation, so
 * audio decoded for the old position can never play after it.
 *
 * Lock order: e->lock (snapshot, markers, decode queue) is a leaf; no other lock is taken
 * while holding it. */
#include "engine.h"
#include "abr.h"
#include "api.h"
#include "b64.h"
#include "cache.h"
#include "version.h"
#include "decoder.h"
#include "gain.h"
#include "id.h"
#include "json.h"
#include "manifest.h"
#include "offline.h"
#include "queue.h"
#include "ring.h"
#include "segment.h"
#include "sink.h"
#include "xmem.h"
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define OUT_RATE 44100
#define OUT_CH 2
#define RING_FRAMES (OUT_RATE)          /* decoded audio ahead of the sink: 1 s (the decoder streams) */
#define OUT_CHUNK 2048                  /* frames per sink write (46 ms) */
#define MAX_MARKERS 64
 /* Memory bound on the prefetch window: compressed audio held ahead of the decoder. The
 * window (abr_buffer_target, up to 30 s) is in seconds; at 320 kbps this caps it near
 * 13 s, at 160 kbps near 26 s; below that the seconds bound is the one that applies. */
#define AHEAD_MAX_BYTES (512 * 1024)
#define PRIME_FRAMES 4096               /* the next item's first audio decoded ahead: 93 ms */
/* Segment downloads at once per item: one, so each download's rate is the link's rate
 * (parallel downloads would split it and the estimator would see half). */
#define MAX_INFLIGHT 1
#define RETRY_BASE_MS 250
#define RETRY_MAX_MS 2000
/* A partial manifest's pending segments are usually published within a few hundred ms. */
#define PENDING_RECHECK_MS 200
#define META_TTL_S (24 * 3600)
#define ENGINE_MAX_LISTENERS 8

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---------------------------------------------------------------- types */

enum cmd_type {
	CMD_PLAY, CMD_ENQUEUE, CMD_PAUSE, CMD_RESUME, CMD_TOGGLE, CMD_STOP, CMD_NEXT, CMD_PREV,
	CMD_SEEK, CMD_VOLUME, CMD_SHUFFLE, CMD_REPEAT, CMD_NORMALIZE, CMD_QMOVE, CMD_QREMOVE, CMD_QCLEAR,
	CMD_QUIT,
};

struct cmd {
	struct cmd *next;
	enum cmd_type type;
	int a, b;
	bool flag;
	int64_t issued_us;
	char **uris;
	int nuris;
};

enum seg_state { SEG_NONE, SEG_FETCHING, SEG_DONE };

/* A downloaded segment's bytes, shared by its item's slot (kept until the output has
 * played past it, so a seek within what is buffered needs no download) and a decode job
 * (until decoded): the decoder reads them in place instead of a copy of each. */
struct segbytes {
	atomic_int refs;
	size_t len;
	uint8_t *data;
};

/* Takes ownership of data (malloc'd); one reference. */
static struct segbytes *segbytes_adopt(uint8_t *data, size_t len)
{
	struct segbytes *b = xmalloc(sizeof(*b));
	atomic_init(&b->refs, 1);
	b->len = len;
	b->data = data;
	return b;
}

/* Another reference to b (any thread). */
static struct segbytes *segbytes_ref(struct segbytes *b)
{
	atomic_fetch_add(&b->refs, 1);
	return b;
}

/* Drops a reference; the last frees. NULL is a no-op. */
static void segbytes_unref(struct segbytes *b)
{
	if (b && atomic_fetch_sub(&b->refs, 1) == 1) {
		free(b->data);
		free(b);
	}
}

struct seg_slot {
	enum seg_state st;
	int kbps;
	struct segbytes *bytes;    /* SEG_DONE: the segment */
	int tries;
	int64_t retry_at_us;
};

struct item {
	uint64_t seq;              /* unique per engine, in play order */
	uint64_t entry_id;         /* queue entry it plays */
	char uri[64];
	char id[ID_LEN + 1];
	bool episode;
	char title[256], artist[256], album[256];
	char artist_id[ID_LEN + 1];
	int duration_ms;
	bool meta_requested;
	struct manifest *m;
	bool manifest_requested;
	struct offline_track *off;   /* set when the item plays from the offline store */
	char *off_err;               /* downloaded but unplayable (expired, other device): why */
	bool off_failed;             /* a stored file failed authentication */
	int manifest_tries;
	int64_t manifest_retry_at_us;
	struct seg_slot *segs;
	uint8_t *init[MANIFEST_MAX_RENDITIONS];
	size_t init_len[MANIFEST_MAX_RENDITIONS];
	bool init_fetching[MANIFEST_MAX_RENDITIONS];
	uint32_t start_seg;        /* first segment to play (after a seek) */
	int64_t start_trim;        /* frames of start_seg to drop (seek inside a segment) */
	uint32_t next_push;        /* next segment to hand to the decoder */
	bool pushed_all;
	int kbps;                  /* rendition chosen for the next segment */
	bool use_origin;           /* the edge failed repeatedly: fetch from the origin */
	bool renew_manifest;       /* signed URLs were refused: fetch fresh ones, keep the audio */
	bool failed;
	int64_t play_cmd_us;       /* when the play command for it was issued, for first-audio timing */
	bool prime_requested;      /* its first audio went to the decoder to be primed */
	size_t prime_skip;         /* frames of start_seg a skip already played from the prime */
};

struct xfer {
	enum { X_MANIFEST, X_META, X_INIT, X_SEGMENT, X_AUTOPLAY } kind;
	uint64_t item_seq;
	uint32_t index;
	int rindex;
	int kbps;
	struct buf body;
	CURL *easy;
	struct curl_slist *headers;
	int64_t start_us;
	unsigned long tok_gen;
	struct xfer *next;
};

struct djob {
	struct djob *next;
	char uri[64];
	uint64_t item_seq;
	unsigned gen;
	uint32_t index;
	int kbps;
	uint8_t *init;             /* set when the rendition changes (or first segment) */
	size_t init_len;
	struct segbytes *seg;      /* a reference, dropped once decoded */
	double gain_db;
	int64_t trim;              /* frames to drop at the start */
	bool last;                 /* last segment of the item */
	int64_t play_cmd_us;
};

struct marker {
	int kbps;
	char uri[64];
	unsigned gen;
	uint64_t stream_pos;       /* frame index in the generation's stream */
	uint64_t item_seq;
	uint64_t item_pos;         /* frame within the item at stream_pos */
	double gain_db;
	bool end;                  /* the item ends here */
	int64_t play_cmd_us;
};

struct engine {
	struct engine_config cfg;
	struct api *api;
	struct cache *cache;       /* opened by the network thread once the first request is out */
	char *cache_path;          /* NULL: no cache, or already opened (or failed) */
	int64_t started_us;

	pthread_mutex_t lock;
	pthread_cond_t cond;       /* decode queue and pause changes */
	struct engine_snapshot snap;
	int event_fd;
	int listeners[ENGINE_MAX_LISTENERS];
	int nlisteners;

	/* commands */
	struct cmd *cmd_head, *cmd_tail;

	/* decode queue */
	struct djob *dq_head, *dq_tail;
	size_t dq_len;

	/* markers (guarded by lock) */
	struct marker markers[MAX_MARKERS];
	int nmarkers;

	/* A skip's fast path (guarded by lock): the next item's first PRIME_FRAMES frames,
	 * decoded ahead by the decoder thread between its real work (prime_job), so that on
	 * a skip the output thread plays them at once (prime_go, for the generation the
	 * skip's flush started) while the decoder catches up behind them. */
	struct djob *prime_job;
	struct marker prime_mk;               /* item_seq 0: nothing primed */
	float *prime_pcm;
	size_t prime_frames;
	uint64_t prime_go;                    /* item to play the prime of, 0 = none */
	unsigned prime_go_gen;

	/* shared with the output thread */
	struct ring *ring;
	struct sink *sink;
	struct gain *gain;
	atomic_bool paused;
	atomic_bool out_writing;   /* the output thread holds a chunk it will write (see set_paused) */
	atomic_bool quit;
	atomic_uint_fast64_t playing_seq;     /* item the output is playing, 0 = none */
	atomic_uint_fast64_t playing_pos;     /* frames into it */
	atomic_bool output_idle;              /* ring empty and nothing to play */
	atomic_bool decoder_busy;             /* a job is between the decode queue and the ring */
	atomic_int volume;
	atomic_bool normalize;
	atomic_uint_fast64_t underruns;
	atomic_int_fast64_t first_audio_us;

	/* network thread only */
	CURLM *multi;
	struct queue *q;
	struct item *play_item;               /* item the output plays (or will play first) */
	struct item *fetch_item;              /* item being fetched and pushed (== play_item or the next) */
	uint64_t next_seq;
	struct xfer *xfers;
	struct abr_estimator est;
	int fast_streak;                      /* consecutive downloads far above the estimate */
	double streak_bytes, streak_secs;
	struct abr_params abr;
	bool stopped;                         /* nothing should play */
	bool ended;
	bool autoplay_requested;
	char last_artist_id[ID_LEN + 1];          /* for autoplay when the queue runs out */
	bool autoplay_exhausted;                  /* autoplay found nothing new: the end is the end */
	int64_t autoplay_cmd_us;
	uint64_t segments_fetched, bytes_fetched, reused, opened, switches, tracks_started;
	int last_kbps;
	char error[256];

	/* pending events (guarded by lock) */
	struct engine_event events[ENGINE_MAX_EVENTS];
	int ev_head, ev_count;
	bool realtime_sink;                   /* underruns mean something only in real time */

	/* the queue as published for engine_queue_list (guarded by lock) */
	char **qcopy_uris;
	int qcopy_n, qcopy_current;

	pthread_t net_thread, dec_thread, out_thread;
	bool threads_started;
};

/* ---------------------------------------------------------------- small helpers */

void engine_config_defaults(struct engine_config *c)
{
	memset(c, 0, sizeof(*c));
	c->output = "alsa";
	c->prefetch_seconds = 10;
	c->normalize = true;
	c->volume = 100;
	c->autoplay = true;
}

const char *engine_state_name(enum engine_state s)
{
	static const char *const names[] = {"idle", "loading", "buffering", "playing", "paused", "ended", "error"};
	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

static void notify(struct engine *e)
{
	uint64_t one = 1;
	ssize_t n = write(e->event_fd, &one, sizeof(one));
	pthread_mutex_lock(&e->lock);
	for (int i = 0; i < e->nlisteners; i++)
		n = write(e->listeners[i], &one, sizeof(one));
	pthread_mutex_unlock(&e->lock);
	(void)n;
}

int engine_add_listener(struct engine *e)
{
	int fd = -1;
	pthread_mutex_lock(&e->lock);
	if (e->nlisteners < ENGINE_MAX_LISTENERS) {
		fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (fd >= 0)
			e->listeners[e->nlisteners++] = fd;
	}
	pthread_mutex_unlock(&e->lock);
	return fd < 0 ? -EMFILE : fd;
}

void engine_remove_listener(struct engine *e, int fd)
{
	pthread_mutex_lock(&e->lock);
	for (int i = 0; i < e->nlisteners; i++)
		if (e->listeners[i] == fd) {
			e->listeners[i] = e->listeners[--e->nlisteners];
			close(fd);
			break;
		}
	pthread_mutex_unlock(&e->lock);
}

static void post_event_ev(struct engine *e, const struct engine_event *ev);

static void post_event(struct engine *e, enum engine_event_type t, const char *uri, int kbps, int pos_ms,
		       int64_t first_audio_us, const char *msg)
{
	struct engine_event ev = {.type = t, .bitrate_kbps = kbps, .position_ms = pos_ms, .first_audio_us = first_audio_us,
				  .handover_us = -1};
	snprintf(ev.uri, sizeof(ev.uri), "%s", uri ? uri : "");
	snprintf(ev.message, sizeof(ev.message), "%s", msg ? msg : "");
	post_event_ev(e, &ev);
}

static void post_event_ev(struct engine *e, const struct engine_event *evp)
{
	const struct engine_event ev = *evp;
	pthread_mutex_lock(&e->lock);
	if (e->ev_count == ENGINE_MAX_EVENTS) {
		e->ev_head = (e->ev_head + 1) % ENGINE_MAX_EVENTS;
		e->ev_count--;
	}
	e->events[(e->ev_head + e->ev_count) % ENGINE_MAX_EVENTS] = ev;
	e->ev_count++;
	pthread_mutex_unlock(&e->lock);
	notify(e);
}

int engine_take_events(struct engine *e, struct engine_event *out, int max)
{
	pthread_mutex_lock(&e->lock);
	int n = 0;
	while (n < max && e->ev_count > 0) {
		out[n++] = e->events[e->ev_head];
		e->ev_head = (e->ev_head + 1) % ENGINE_MAX_EVENTS;
		e->ev_count--;
	}
	pthread_mutex_unlock(&e->lock);
	return n;
}

const char *engine_event_name(enum engine_event_type t)
{
	static const char *const names[] = {"started", "bitrate_changed", "underrun", "paused", "resumed", "ended", "error"};
	return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "unknown";
}

int engine_event_fd(struct engine *e)
{
	return e->event_fd;
}

void engine_ack_event(struct engine *e)
{
	uint64_t v;
	ssize_t n = read(e->event_fd, &v, sizeof(v));
	(void)n;
}

void engine_snapshot(struct engine *e, struct engine_snapshot *out)
{
	pthread_mutex_lock(&e->lock);
	*out = e->snap;
	pthread_mutex_unlock(&e->lock);
	out->underruns = atomic_load(&e->underruns);
	out->volume = atomic_load(&e->volume);
	out->normalize = atomic_load(&e->normalize);
	out->first_audio_us = atomic_load(&e->first_audio_us);
}

static bool valid_uri(const char *uri)
{
	char type[16], id[ID_LEN + 1];
	return uri && uri_parse(uri, type, sizeof(type), id) && (strcmp(type, "track") == 0 || strcmp(type, "episode") == 0);
}

static int push_cmd(struct engine *e, struct cmd *c)
{
	c->issued_us = now_us();
	pthread_mutex_lock(&e->lock);
	c->next = NULL;
	if (e->cmd_tail)
		e->cmd_tail->next = c;
	else
		e->cmd_head = c;
	e->cmd_tail = c;
	pthread_mutex_unlock(&e->lock);
	curl_multi_wakeup(e->multi);
	return 0;
}

static int simple_cmd(struct engine *e, enum cmd_type t, int a, int b, bool flag)
{
	struct cmd *c = xcalloc(1, sizeof(*c));
	c->type = t;
	c->a = a;
	c->b = b;
	c->flag = flag;
	return push_cmd(e, c);
}

static void cmd_free(struct cmd *c)
{
	for (int i = 0; i < c->nuris; i++)
		free(c->uris[i]);
	free(c->uris);
	free(c);
}

int engine_play(struct engine *e, const char *const *uris, int n)
{
	return engine_play_from(e, uris, n, 0, 0);
}

static int load_cmd(struct engine *e, const char *const *uris, int n, int index, int start_ms, bool paused);

int engine_play_from(struct engine *e, const char *const *uris, int n, int index, int start_ms)
{
	return load_cmd(e, uris, n, index, start_ms, false);
}

int engine_prepare(struct engine *e, const char *const *uris, int n, int index, int start_ms)
{
	return load_cmd(e, uris, n, index, start_ms, true);
}

/* One command, so "paused" takes effect with the load: a separate pause after it could
 * let the output start the new item in between. */
static int load_cmd(struct engine *e, const char *const *uris, int n, int index, int start_ms, bool paused)
{
	if (n < 0 || (n > 0 && !uris) || index < 0 || (n > 0 && index >= n) || start_ms < 0)
		return -EINVAL;
	for (int i = 0; i < n; i++)
		if (!valid_uri(uris[i]))
			return -EINVAL;
	struct cmd *c = xcalloc(1, sizeof(*c));
	c->type = CMD_PLAY;
	c->a = index;
	c->b = start_ms;
	c->flag = paused;
	c->uris = xcalloc((size_t)(n ? n : 1), sizeof(char *));
	for (int i = 0; i < n; i++)
		c->uris[i] = xstrdup(uris[i]);
	c->nuris = n;
	return push_cmd(e, c);
}

int engine_enqueue(struct engine *e, const char *uri, bool play_next)
{
	if (!valid_uri(uri))
		return -EINVAL;
	struct cmd *c = xcalloc(1, sizeof(*c));
	c->type = CMD_ENQUEUE;
	c->flag = play_next;
	c->uris = xcalloc(1, sizeof(char *));
	c->uris[0] = xstrdup(uri);
	c->nuris = 1;
	return push_cmd(e, c);
}

int engine_pause(struct engine *e) { return simple_cmd(e, CMD_PAUSE, 0, 0, false); }
int engine_resume(struct engine *e) { return simple_cmd(e, CMD_RESUME, 0, 0, false); }
int engine_toggle(struct engine *e) { return simple_cmd(e, CMD_TOGGLE, 0, 0, false); }
int engine_stop(struct engine *e) { return simple_cmd(e, CMD_STOP, 0, 0, false); }
int engine_next(struct engine *e) { return simple_cmd(e, CMD_NEXT, 0, 0, false); }
int engine_prev(struct engine *e) { return simple_cmd(e, CMD_PREV, 0, 0, false); }
int engine_seek(struct engine *e, int ms, bool relative) { return simple_cmd(e, CMD_SEEK, ms, 0, relative); }

int engine_set_volume(struct engine *e, int volume, bool relative)
{
	if (!relative && (volume < 0 || volume > 100))
		return -EINVAL;
	return simple_cmd(e, CMD_VOLUME, volume, 0, relative);
}

int engine_set_shuffle(struct engine *e, bool on) { return simple_cmd(e, CMD_SHUFFLE, 0, 0, on); }

int engine_set_repeat(struct engine *e, enum engine_repeat r)
{
	if (r != ENGINE_REPEAT_OFF && r != ENGINE_REPEAT_ONE && r != ENGINE_REPEAT_ALL)
		return -EINVAL;
	return simple_cmd(e, CMD_REPEAT, (int)r, 0, false);
}

int engine_set_normalize(struct engine *e, bool on) { return simple_cmd(e, CMD_NORMALIZE, 0, 0, on); }

int engine_queue_move(struct engine *e, int from, int to)
{
	if (from < 0 || to < 0)
		return -EINVAL;
	return simple_cmd(e, CMD_QMOVE, from, to, false);
}

int engine_queue_remove(struct engine *e, int index)
{
	if (index < 0)
		return -EINVAL;
	return simple_cmd(e, CMD_QREMOVE, index, 0, false);
}

int engine_queue_clear(struct engine *e) { return simple_cmd(e, CMD_QCLEAR, 0, 0, false); }

/* ---------------------------------------------------------------- output thread */

/* Finds the marker that governs stream position pos in generation gen. Caller holds lock. */
static const struct marker *_marker_at(struct engine *e, unsigned gen, uint64_t pos)
{
	const struct marker *best = NULL;
	for (int i = 0; i < e->nmarkers; i++) {
		const struct marker *m = &e->markers[i];
		if (m->gen == gen && m->stream_pos <= pos && (!best || m->stream_pos >= best->stream_pos))
			best = m;
	}
	return best;
}

/* Drops markers that lie wholly before pos (keeping the one governing pos). Caller holds lock. */
static void _prune_markers(struct engine *e, unsigned gen, uint64_t pos)
{
	const struct marker *cur = _marker_at(e, gen, pos);
	int w = 0;
	for (int i = 0; i < e->nmarkers; i++) {
		struct marker *m = &e->markers[i];
		if (m->gen != gen)
			continue;
		if (m->stream_pos < pos && m != cur)
			continue;
		e->markers[w++] = *m;
	}
	e->nmarkers = w;
}

static void post_started(struct engine *e, const struct marker *m, int64_t first_audio_us, int64_t handover_us)
{
	struct engine_event ev = {.type = ENGINE_EV_TRACK_STARTED, .bitrate_kbps = m->kbps,
				  .position_ms = (int)(m->item_pos * 1000 / OUT_RATE), .first_audio_us = first_audio_us,
				  .handover_us = handover_us};
	snprintf(ev.uri, sizeof(ev.uri), "%s", m->uri);
	post_event_ev(e, &ev);
}

/* Output thread, after a write of generation gen: records what is now playing, unless a
 * flush (seek, skip, stop) came while the write slept. A realtime sink's write returns
 * early on that flush (sink_drop), so without the check the audio from before a seek would
 * overwrite flush_audio's reset and the engine would report (and seek relative to) the old
 * position until new audio played: a paused seek looked like it did nothing. */
static void publish_played(struct engine *e, unsigned gen, uint64_t item_seq, uint64_t item_pos)
{
	pthread_mutex_lock(&e->lock);
	if (ring_generation(e->ring) == gen) {
		atomic_store(&e->playing_seq, item_seq);
		atomic_store(&e->playing_pos, item_pos);
		atomic_store(&e->output_idle, false);
	}
	pthread_mutex_unlock(&e->lock);
}

static void *output_main(void *arg)
{
	struct engine *e = arg;
	float *buf = xmalloc(sizeof(float) * OUT_CHUNK * OUT_CH);
	unsigned gen = ring_generation(e->ring);
	uint64_t stream_pos = 0;
	uint64_t cur_seq = 0;
	int cur_kbps = 0;
	bool starving = false;
	int64_t last_write_end = 0;   /* when the sink accepted the last frame, 0 after a flush */
	while (!atomic_load(&e->quit)) {
		if (atomic_load(&e->paused)) {
			pthread_mutex_lock(&e->lock);
			while (atomic_load(&e->paused) && !atomic_load(&e->quit))
				pthread_cond_wait(&e->cond, &e->lock);
			pthread_mutex_unlock(&e->lock);
			continue;
		}
		unsigned g = ring_generation(e->ring);
		if (g != gen) {
			gen = g;
			stream_pos = 0;
			cur_seq = 0;
			last_write_end = 0;
		}
		/* A skip to a primed item: its first audio is here already; the decoder
		 * continues behind it. Checked before any audio of the new generation is read. */
		pthread_mutex_lock(&e->lock);
		float *prime = NULL;
		size_t pn = 0;
		struct marker pm = e->prime_mk;
		if (e->prime_go && e->prime_go_gen == gen && pm.item_seq == e->prime_go && e->prime_pcm) {
			prime = e->prime_pcm;
			pn = e->prime_frames;
			e->prime_pcm = NULL;
			e->prime_frames = 0;
			e->prime_mk.item_seq = 0;
			e->prime_go = 0;
		}
		pthread_mutex_unlock(&e->lock);
		if (prime) {
			cur_seq = pm.item_seq;
			cur_kbps = pm.kbps;
			int64_t fa = pm.play_cmd_us ? now_us() - pm.play_cmd_us : 0;
			if (fa)
				atomic_store(&e->first_audio_us, fa);
			post_started(e, &pm, fa, -1);
			curl_multi_wakeup(e->multi);
			gain_set_normalization(e->gain, atomic_load(&e->normalize), pm.gain_db);
			gain_set_volume(e->gain, atomic_load(&e->volume));
			gain_process(e->gain, prime, pn);
			sink_write(e->sink, prime, pn);
			last_write_end = now_us();
			free(prime);
			publish_played(e, gen, pm.item_seq, pm.item_pos + pn);
			continue;
		}
		int w = ring_wait_readable(e->ring, 1, 100);
		if (w == -ECANCELED)
			break;
		if (w == -EINTR)
			continue;  /* ring_wake: something to look at (a prime to play), not an underrun */
		if (ring_generation(e->ring) != gen)
			continue;
		/* Markers are added before their audio, so once audio is readable its marker is
		 * here. Read no further than the next marker: a chunk never spans two items. */
		pthread_mutex_lock(&e->lock);
		const struct marker *m = _marker_at(e, gen, stream_pos);
		struct marker cur = m ? *m : (struct marker){0};
		uint64_t next_boundary = UINT64_MAX;
		for (int i = 0; i < e->nmarkers; i++)
			if (e->markers[i].gen == gen && e->markers[i].stream_pos > stream_pos &&
			    e->markers[i].stream_pos < next_boundary)
				next_boundary = e->markers[i].stream_pos;
		_prune_markers(e, gen, stream_pos);
		pthread_mutex_unlock(&e->lock);

		if (m && cur.end && ring_readable(e->ring) == 0) {
			/* Everything decoded has played and the last item ended here. */
			if (atomic_load(&e->playing_seq) != 0 || !atomic_load(&e->output_idle)) {
				atomic_store(&e->playing_seq, 0);
				atomic_store(&e->output_idle, true);
				sink_drain(e->sink);
				curl_multi_wakeup(e->multi);
				notify(e);
			}
		}
		size_t want = OUT_CHUNK;
		if (next_boundary != UINT64_MAX && next_boundary - stream_pos < want)
			want = (size_t)(next_boundary - stream_pos);
		/* Announce the write before taking audio, then look at the pause flag again:
		 * set_paused stores the flag before it looks at this one, so either this
		 * thread sees the pause or the pause waits for this chunk (seq_cst). */
		atomic_store(&e->out_writing, true);
		if (atomic_load(&e->paused)) {
			atomic_store(&e->out_writing, false);
			continue;
		}
		size_t n = w == 0 ? ring_read(e->ring, buf, want) : 0;
		if (n == 0) {
			atomic_store(&e->out_writing, false);
			/* An empty ring while an item is playing and not finished: an underrun (not
			 * if a flush has just emptied it: that audio was dropped, not late). */
			if (e->realtime_sink && m && !cur.end && atomic_load(&e->playing_seq) == cur.item_seq && !starving &&
			    ring_generation(e->ring) == gen) {
				starving = true;
				atomic_fetch_add(&e->underruns, 1);
				post_event(e, ENGINE_EV_UNDERRUN, cur.uri, cur.kbps,
					   (int)(atomic_load(&e->playing_pos) * 1000 / OUT_RATE), 0, NULL);
				curl_multi_wakeup(e->multi);
			}
			continue;
		}
		starving = false;
		if (m && !cur.end) {
			if (cur.item_seq != cur_seq) {
				cur_seq = cur.item_seq;
				cur_kbps = cur.kbps;
				int64_t now = now_us();
				int64_t fa = cur.play_cmd_us ? now - cur.play_cmd_us : 0;
				if (fa)
					atomic_store(&e->first_audio_us, fa);
				post_started(e, &cur, fa, !fa && last_write_end ? now - last_write_end : -1);
				curl_multi_wakeup(e->multi);
			} else if (cur.kbps != cur_kbps) {
				cur_kbps = cur.kbps;
				post_event(e, ENGINE_EV_BITRATE_CHANGED, cur.uri, cur.kbps, (int)(cur.item_pos * 1000 / OUT_RATE), 0, NULL);
			}
			gain_set_normalization(e->gain, atomic_load(&e->normalize), cur.gain_db);
			gain_set_volume(e->gain, atomic_load(&e->volume));
			gain_process(e->gain, buf, n);
			sink_write(e->sink, buf, n);
			last_write_end = now_us();
			publish_played(e, gen, cur.item_seq, cur.item_pos + (stream_pos - cur.stream_pos) + n);
		}
		stream_pos += n;
		atomic_store(&e->out_writing, false);
	}
	free(buf);
	return NULL;
}

/* ---------------------------------------------------------------- decoder thread */

static void add_marker(struct engine *e, const struct marker *m)
{
	pthread_mutex_lock(&e->lock);
	if (e->nmarkers == MAX_MARKERS) {
		/* Markers are pruned as the output passes them; a full array means old ones of a
		 * flushed generation linger, which can be dropped. */
		memmove(&e->markers[0], &e->markers[1], sizeof(struct marker) * (MAX_MARKERS - 1));
		e->nmarkers--;
	}
	e->markers[e->nmarkers++] = *m;
	pthread_mutex_unlock(&e->lock);
}

/* Where the decoder's pieces of one segment go: the ring, after dropping the first skip
 * frames (a seek inside the segment). */
struct feed {
	struct engine *e;
	unsigned gen;
	size_t skip;
	uint64_t stream_pos;
};

static void do_prime_job(struct engine *e);

static int feed_ring(void *ud, const float *p, size_t n)
{
	struct feed *f = ud;
	size_t drop = f->skip < n ? f->skip : n;
	f->skip -= drop;
	p += drop * OUT_CH;
	n -= drop;
	while (n > 0) {
		if (atomic_load(&f->e->quit))
			return -ECANCELED;
		ssize_t wr = ring_write(f->e->ring, p, n, f->gen);
		if (wr < 0)
			return -ESTALE;
		p += (size_t)wr * OUT_CH;
		n -= (size_t)wr;
		f->stream_pos += (uint64_t)wr;
		if (n == 0)
			break;
		/* Full: the output is paused or slow. Prime the next item meanwhile, then wait,
		 * unless flushed. */
		do_prime_job(f->e);
		int r = ring_wait_writable(f->e->ring, n < 1024 ? n : 1024, f->gen, 200);
		if (r == -ESTALE || r == -ECANCELED)
			return r;
	}
	return 0;
}

struct prime_fill {
	float *buf;
	size_t n, skip;
};

static int prime_emit(void *ud, const float *p, size_t n)
{
	struct prime_fill *pf = ud;
	size_t drop = pf->skip < n ? pf->skip : n;
	pf->skip -= drop;
	p += drop * OUT_CH;
	n -= drop;
	size_t take = PRIME_FRAMES - pf->n < n ? PRIME_FRAMES - pf->n : n;
	memcpy(pf->buf + pf->n * OUT_CH, p, take * OUT_CH * sizeof(float));
	pf->n += take;
	return pf->n == PRIME_FRAMES;  /* enough: stop decoding */
}

/* Decoder thread: if the network thread asked for one, decodes the next item's first
 * PRIME_FRAMES frames with a decoder of its own and publishes them as the prime. */
static void do_prime_job(struct engine *e)
{
	pthread_mutex_lock(&e->lock);
	struct djob *j = e->prime_job;
	e->prime_job = NULL;
	pthread_mutex_unlock(&e->lock);
	if (!j)
		return;
	struct decoder *d = decoder_new(OUT_RATE);
	struct prime_fill pf = {.buf = xmalloc(sizeof(float) * PRIME_FRAMES * OUT_CH), .skip = (size_t)j->trim};
	uint64_t start = 0;
	size_t count = 0;
	int r = -EINVAL;
	if (decoder_set_init(d, j->init, j->init_len) == 0 && decoder_segment_range(d, j->index, &start, &count) == 0)
		r = decoder_decode_stream(d, j->seg->data, j->seg->len, prime_emit, &pf);
	decoder_free(d);
	if ((r == 0 || r == 1) && pf.n > 0) {
		struct marker mk = {.kbps = j->kbps, .item_seq = j->item_seq, .item_pos = start + (uint64_t)j->trim,
				    .gain_db = j->gain_db};
		snprintf(mk.uri, sizeof(mk.uri), "%s", j->uri);
		pthread_mutex_lock(&e->lock);
		free(e->prime_pcm);
		e->prime_pcm = pf.buf;
		e->prime_frames = pf.n;
		e->prime_mk = mk;
		pf.buf = NULL;
		pthread_mutex_unlock(&e->lock);
	}
	free(pf.buf);
	free(j->init);
	segbytes_unref(j->seg);
	free(j);
}

static void *decoder_main(void *arg)
{
	struct engine *e = arg;
	struct decoder *dec = NULL;
	uint64_t dec_seq = 0;
	unsigned gen = ring_generation(e->ring);
	uint64_t stream_pos = 0;
	for (;;) {
		pthread_mutex_lock(&e->lock);
		while (!e->dq_head && !e->prime_job && !atomic_load(&e->quit))
			pthread_cond_wait(&e->cond, &e->lock);
		if (atomic_load(&e->quit)) {
			pthread_mutex_unlock(&e->lock);
			break;
		}
		if (!e->dq_head) {
			pthread_mutex_unlock(&e->lock);
			do_prime_job(e);
			continue;
		}
		struct djob *j = e->dq_head;
		e->dq_head = j->next;
		if (!e->dq_head)
			e->dq_tail = NULL;
		e->dq_len--;
		atomic_store(&e->decoder_busy, true);
		pthread_mutex_unlock(&e->lock);

		if (j->gen != ring_generation(e->ring))
			goto done;  /* flushed while queued */
		if (j->gen != gen) {
			gen = j->gen;
			stream_pos = 0;
		}
		if (!dec || j->item_seq != dec_seq) {
			decoder_free(dec);
			dec = decoder_new(OUT_RATE);
			dec_seq = j->item_seq;
		}
		if (j->init && decoder_set_init(dec, j->init, j->init_len) != 0) {
			fprintf(stderr, "encore: cannot decode the init part of a rendition\n");
			goto done;
		}
		uint64_t seg_start = 0;
		size_t seg_count = 0;
		if (decoder_segment_range(dec, j->index, &seg_start, &seg_count) != 0) {
			fprintf(stderr, "encore: segment %u is outside the track; skipped\n", j->index);
			goto done;
		}
		size_t skip = j->trim > 0 ? (size_t)j->trim : 0;
		if (skip > seg_count)
			skip = seg_count;
		/* The marker goes in before any of its audio: the output thread must find it. */
		struct marker mk = {.gen = gen, .stream_pos = stream_pos, .item_seq = j->item_seq, .kbps = j->kbps,
				    .item_pos = seg_start + skip, .gain_db = j->gain_db, .play_cmd_us = j->play_cmd_us};
		snprintf(mk.uri, sizeof(mk.uri), "%s", j->uri);
		add_marker(e, &mk);
		struct feed f = {.e = e, .gen = gen, .skip = skip, .stream_pos = stream_pos};
		int dr = decoder_decode_stream(dec, j->seg->data, j->seg->len, feed_ring, &f);
		stream_pos = f.stream_pos;
		if (dr == -ESTALE || dr == -ECANCELED)
			goto done;  /* flushed or shutting down: the rest belongs to an old position */
		if (dr != 0)
			/* A corrupt segment: skip (the rest of) its audio rather than stop the track. */
			fprintf(stderr, "encore: segment %u failed to decode; skipped\n", j->index);
		if (j->last) {
			struct marker end = {.gen = gen, .stream_pos = stream_pos, .item_seq = j->item_seq, .end = true};
			add_marker(e, &end);
		}
done:
		free(j->init);
		segbytes_unref(j->seg);
		free(j);
		atomic_store(&e->decoder_busy, false);
		curl_multi_wakeup(e->multi);  /* room in the decode queue: push more */
	}
	decoder_free(dec);
	return NULL;
}

/* ---------------------------------------------------------------- network thread: items */

static struct item *item_new(struct engine *e, const struct queue_entry *qe, int64_t cmd_us)
{
	struct item *it = xcalloc(1, sizeof(*it));
	it->seq = ++e->next_seq;
	it->entry_id = qe->id;
	snprintf(it->uri, sizeof(it->uri), "%s", qe->uri);
	char type[16];
	uri_parse(qe->uri, type, sizeof(type), it->id);
	it->episode = strcmp(type, "episode") == 0;
	it->play_cmd_us = cmd_us;
	return it;
}

static void item_free(struct item *it)
{
	if (!it)
		return;
	if (it->m) {
		for (uint32_t k = 0; k < it->m->segment_count; k++)
			segbytes_unref(it->segs[k].bytes);
		for (int r = 0; r < it->m->nrenditions; r++)
			free(it->init[r]);
	}
	free(it->segs);
	manifest_free(it->m);
	offline_track_free(it->off);
	free(it->off_err);
	free(it);
}

static struct item *item_by_seq(struct engine *e, uint64_t seq)
{
	if (e->play_item && e->play_item->seq == seq)
		return e->play_item;
	if (e->fetch_item && e->fetch_item->seq == seq)
		return e->fetch_item;
	return NULL;
}

static int rindex_of(const struct item *it, int kbps)
{
	for (int r = 0; r < it->m->nrenditions; r++)
		if (it->m->renditions[r].bitrate == kbps)
			return r;
	return -1;
}

/* ---------------------------------------------------------------- transfers */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	curl_off_t cl = -1;
	if (!x->body.data && curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK &&
	    cl > 0 && cl < (64 << 20)) {
		/* Sized once from Content-Length (a manifest with inline audio is a few hundred
		 * KB): no doubling series, no half-empty buffer. */
		x->body.data = xmalloc((size_t)cl + 1);
		x->body.data[0] = 0;
		x->body.cap = (size_t)cl + 1;
	}
	buf_append(&x->body, p, size * n);
	return size * n;
}

static void start_xfer(struct engine *e, int kind, struct item *it, const char *url, uint32_t index, int rindex, bool auth)
{
	struct xfer *x = xcalloc(1, sizeof(*x));
	x->kind = kind;
	x->item_seq = it ? it->seq : 0;
	x->index = index;
	x->rindex = rindex;
	x->easy = curl_easy_init();
	x->start_us = now_us();
	if ((kind == X_SEGMENT || kind == X_INIT) && it && it->m) {
		/* The manifest says how big it is: one exact allocation, not a doubling series
		 * that leaves up to half of each buffered segment unused. */
		const struct manifest_rendition *mr = &it->m->renditions[rindex];
		size_t size = kind == X_INIT ? mr->init_size : mr->segments[index].size;
		x->body.data = xmalloc(size + 1);
		x->body.data[0] = 0;
		x->body.cap = size + 1;
	}
	/* Manifests name the server that signed them; after a failover the same path and
	 * signature are asked of the server now current (they share the data and keys). */
	char *real = api_rebase_url(e->api, url);
	curl_easy_setopt(x->easy, CURLOPT_URL, real);
	free(real);
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	/* A stalled transfer (server gone mid-body) is abandoned after 10 s below 1 KB/s. */
	curl_easy_setopt(x->easy, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(x->easy, CURLOPT_LOW_SPEED_TIME, 10L);
	curl_easy_setopt(x->easy, CURLOPT_USERAGENT, "encore/" ENCORE_VERSION);
	if (auth) {
		char *tok = api_bearer(e->api, &x->tok_gen);
		if (tok) {
			char *h = xasprintf("Authorization: Bearer %s", tok);
			x->headers = curl_slist_append(x->headers, h);
			free(h);
			free(tok);
		}
		curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers);
	}
	x->next = e->xfers;
	e->xfers = x;
	curl_multi_add_handle(e->multi, x->easy);
}

/* Takes x off the transfer list and the multi handle (idempotent). */
static void xfer_detach(struct engine *e, struct xfer *x)
{
	for (struct xfer **pp = &e->xfers; *pp; pp = &(*pp)->next)
		if (*pp == x) {
			*pp = x->next;
			curl_multi_remove_handle(e->multi, x->easy);
			break;
		}
}

static void xfer_free(struct engine *e, struct xfer *x)
{
	xfer_detach(e, x);
	curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->headers);
	buf_free(&x->body);
	free(x);
}

/* Cancels every transfer of an item at once: a skipped track downloads nothing more. */
static void cancel_item(struct engine *e, uint64_t seq)
{
	struct xfer *x = e->xfers;
	while (x) {
		struct xfer *next = x->next;
		if (x->item_seq == seq && x->kind != X_META)
			xfer_free(e, x);
		x = next;
	}
}

static bool inflight_manifest(struct engine *e, uint64_t seq)
{
	for (struct xfer *x = e->xfers; x; x = x->next)
		if (x->item_seq == seq && x->kind == X_MANIFEST)
			return true;
	return false;
}

static int inflight_segments(struct engine *e, uint64_t seq)
{
	int n = 0;
	for (struct xfer *x = e->xfers; x; x = x->next)
		if (x->item_seq == seq && (x->kind == X_SEGMENT || x->kind == X_INIT || x->kind == X_MANIFEST))
			n++;
	return n;
}

/* ---------------------------------------------------------------- playback control */

static void clear_decode_queue(struct engine *e)
{
	pthread_mutex_lock(&e->lock);
	struct djob *j = e->dq_head;
	e->dq_head = e->dq_tail = NULL;
	e->dq_len = 0;
	e->nmarkers = 0;
	pthread_mutex_unlock(&e->lock);
	while (j) {
		struct djob *n = j->next;
		free(j->init);
		segbytes_unref(j->seg);
		free(j);
		j = n;
	}
}

/* Drops all audio between the network and the speaker (seek, skip, stop). */
static void flush_audio(struct engine *e)
{
	clear_decode_queue(e);
	ring_flush(e->ring);
	/* A realtime output may be sleeping through the old audio's last chunk: cut it short. */
	sink_drop(e->sink);
	/* Under the lock, after the generation moved on: an output thread just released from
	 * its write publishes its old position only if it gets there first (publish_played),
	 * so this reset is never overwritten by audio from before the flush. */
	pthread_mutex_lock(&e->lock);
	atomic_store(&e->playing_seq, 0);
	atomic_store(&e->playing_pos, 0);
	atomic_store(&e->output_idle, true);
	pthread_mutex_unlock(&e->lock);
}

static void rewind_item(struct item *it, uint32_t seg, int64_t trim)
{
	it->start_seg = seg;
	it->start_trim = trim;
	it->next_push = seg;
	it->pushed_all = false;
	it->kbps = 0;
	it->prime_skip = 0;
}

static void drop_prime(struct engine *e);
static void use_prime(struct engine *e, struct item *it, int64_t cmd_us);

static void drop_items(struct engine *e)
{
	drop_prime(e);
	if (e->play_item) {
		cancel_item(e, e->play_item->seq);
		if (e->fetch_item == e->play_item)
			e->fetch_item = NULL;
		item_free(e->play_item);
		e->play_item = NULL;
	}
	if (e->fetch_item) {
		cancel_item(e, e->fetch_item->seq);
		item_free(e->fetch_item);
		e->fetch_item = NULL;
	}
}

/* Starts playing queue entry qe from scratch (or stops if NULL). */
static void start_entry(struct engine *e, const struct queue_entry *qe, int64_t cmd_us)
{
	flush_audio(e);
	drop_items(e);
	e->error[0] = 0;
	e->ended = false;
	e->autoplay_requested = false;
	if (!qe) {
		e->ended = true;
		if (!e->cfg.autoplay || !e->last_artist_id[0] || e->autoplay_exhausted)
			post_event(e, ENGINE_EV_ENDED, NULL, 0, 0, 0, NULL);
		return;
	}
	e->play_item = e->fetch_item = item_new(e, qe, cmd_us);
	e->tracks_started++;
}

static int position_ms(struct engine *e);

static void set_paused(struct engine *e, bool p)
{
	bool was = atomic_exchange(&e->paused, p);
	pthread_mutex_lock(&e->lock);
	pthread_cond_broadcast(&e->cond);
	pthread_mutex_unlock(&e->lock);
	if (p && !was) {
		/* Let the chunk being written finish, so the position published and reported
		 * for the pause is where the audio really stopped (a Connect transfer resumes
		 * the target there). Bounded: a stuck device must not stall commands. */
		for (int i = 0; i < 500 && atomic_load(&e->out_writing); i++) {
			struct timespec ts = {0, 1000000};
			nanosleep(&ts, NULL);
		}
	}
	if (was != p && e->play_item)
		post_event(e, p ? ENGINE_EV_PAUSED : ENGINE_EV_RESUMED, e->play_item->uri, e->last_kbps, position_ms(e), 0, NULL);
}

/* Where an item that is not on the output yet will start: its start segment (the format
 * fixes the segment length; a manifest may say otherwise) plus the trim into it. */
static int start_position_ms(const struct item *it)
{
	int seg_ms = (it->m && it->m->segment_seconds > 0 ? it->m->segment_seconds : SEGMENT_SECONDS) * 1000;
	/* Rounded: the trim is the seek's milliseconds in frames, rounded down, so truncating
	 * back would report a seek to X ms as X - 1. */
	return (int)((int64_t)it->start_seg * seg_ms + (it->start_trim * 1000 + OUT_RATE / 2) / OUT_RATE);
}

static int position_ms(struct engine *e)
{
	if (!e->play_item || atomic_load(&e->playing_seq) != e->play_item->seq)
		return e->play_item ? start_position_ms(e->play_item) : 0;
	return (int)(atomic_load(&e->playing_pos) * 1000 / OUT_RATE);
}

static void do_seek(struct engine *e, int ms)
{
	struct item *it = e->play_item;
	if (!it)
		return;
	if (ms < 0)
		ms = 0;
	if (!it->m) {
		/* No manifest yet (a seek right after a play, e.g. a Connect "start" after
		 * "prepare"): the segment length is fixed by the format, so the start point can
		 * move now; the manifest's inline segment, if it is another one, is just kept. */
		if (it->duration_ms > 1000 && ms >= it->duration_ms)
			ms = it->duration_ms - 1000;
		uint32_t seg = (uint32_t)(ms / (SEGMENT_SECONDS * 1000));
		flush_audio(e);
		rewind_item(it, seg, (int64_t)(ms - (int)seg * SEGMENT_SECONDS * 1000) * OUT_RATE / 1000);
		it->play_cmd_us = now_us();
		return;
	}
	if (ms >= it->m->duration_ms)
		ms = it->m->duration_ms > 1000 ? it->m->duration_ms - 1000 : 0;
	uint32_t seg = (uint32_t)(ms / (it->m->segment_seconds * 1000));
	if (seg >= it->m->segment_count)
		seg = it->m->segment_count - 1;
	int64_t trim = (int64_t)(ms - (int)seg * it->m->segment_seconds * 1000) * OUT_RATE / 1000;
	flush_audio(e);
	/* Segments before the target will not be heard: free them; keep later ones. */
	for (uint32_t k = 0; k < seg && k < it->m->segment_count; k++) {
		if (it->segs[k].st == SEG_DONE) {
			segbytes_unref(it->segs[k].bytes);
			it->segs[k].bytes = NULL;
			it->segs[k].st = SEG_NONE;
		}
	}
	rewind_item(it, seg, trim);
	if (e->fetch_item && e->fetch_item != it)
		rewind_item(e->fetch_item, e->fetch_item->start_seg, 0);
	it->play_cmd_us = now_us();
}

static void publish_queue(struct engine *e);

static void run_command(struct engine *e, struct cmd *c)
{
	const struct queue_entry *qe;
	switch (c->type) {
	case CMD_PLAY:
		e->autoplay_exhausted = false;
		queue_clear(e->q);
		for (int i = 0; i < c->nuris; i++)
			queue_add(e->q, c->uris[i], NULL);
		e->stopped = false;
		set_paused(e, c->flag);
		if (c->nuris > 0 && queue_play_at(e->q, (size_t)c->a) == 0) {
			start_entry(e, queue_current(e->q), c->issued_us);
			if (c->b > 0 && e->play_item) {
				/* Segment length is fixed by the format, so the target segment is known
				 * before the manifest: the first request already asks for it. */
				uint32_t seg = (uint32_t)(c->b / (SEGMENT_SECONDS * 1000));
				rewind_item(e->play_item, seg, (int64_t)(c->b - (int)seg * SEGMENT_SECONDS * 1000) * OUT_RATE / 1000);
			}
		} else {
			start_entry(e, NULL, 0);
		}
		break;
	case CMD_ENQUEUE:
		if (c->flag)
			queue_play_next(e->q, c->uris[0], NULL);
		else
			queue_add(e->q, c->uris[0], NULL);
		if (!e->play_item && !e->stopped) {
			/* Idle or ended: the new entry plays now. */
			long idx = (long)queue_len(e->q) - 1;
			if (c->flag && queue_position(e->q) >= 0)
				idx = queue_position(e->q) + 1;
			if (queue_play_at(e->q, (size_t)idx) == 0)
				start_entry(e, queue_current(e->q), c->issued_us);
		} else if (e->fetch_item && e->fetch_item != e->play_item && c->flag) {
			/* The prefetched item is no longer next: fetch the new next one instead. */
			cancel_item(e, e->fetch_item->seq);
			item_free(e->fetch_item);
			e->fetch_item = e->play_item;
			long pos = queue_index_of(e->q, e->play_item->entry_id);
			if (pos >= 0)
				queue_play_at(e->q, (size_t)pos);
			e->play_item->pushed_all = e->play_item->next_push >= (e->play_item->m ? e->play_item->m->segment_count : UINT32_MAX);
		}
		break;
	case CMD_PAUSE:
		set_paused(e, true);
		break;
	case CMD_RESUME:
		set_paused(e, false);
		break;
	case CMD_TOGGLE:
		set_paused(e, !atomic_load(&e->paused));
		break;
	case CMD_STOP:
		e->stopped = true;
		flush_audio(e);
		drop_items(e);
		set_paused(e, false);
		post_event(e, ENGINE_EV_ENDED, NULL, 0, 0, 0, NULL);
		break;
	case CMD_NEXT:
		set_paused(e, false);
		if (e->fetch_item && e->fetch_item != e->play_item) {
			/* The next item is already fetched: it starts at once. */
			struct item *nx = e->fetch_item;
			flush_audio(e);
			cancel_item(e, e->play_item->seq);
			item_free(e->play_item);
			e->play_item = nx;
			rewind_item(nx, nx->start_seg, nx->start_trim);
			nx->play_cmd_us = c->issued_us;
			e->tracks_started++;
			use_prime(e, nx, c->issued_us);
		} else {
			qe = queue_skip(e->q);
			start_entry(e, qe, c->issued_us);  /* NULL: ended, and autoplay may continue */
		}
		break;
	case CMD_PREV:
		set_paused(e, false);
		if (position_ms(e) > 3000) {
			do_seek(e, 0);
			break;
		}
		if (e->play_item) {
			long pos = queue_index_of(e->q, e->play_item->entry_id);
			if (pos >= 0)
				queue_play_at(e->q, (size_t)pos);
		}
		qe = queue_previous(e->q);
		if (qe)
			start_entry(e, qe, c->issued_us);
		else if (e->play_item)
			do_seek(e, 0);
		break;
	case CMD_SEEK:
		do_seek(e, c->flag ? position_ms(e) + c->a : c->a);
		break;
	case CMD_VOLUME: {
		int v = c->flag ? atomic_load(&e->volume) + c->a : c->a;
		atomic_store(&e->volume, v < 0 ? 0 : v > 100 ? 100 : v);
		break;
	}
	case CMD_SHUFFLE:
		queue_set_shuffle(e->q, c->flag);
		break;
	case CMD_REPEAT:
		queue_set_repeat(e->q, c->a == ENGINE_REPEAT_ONE ? QUEUE_REPEAT_ONE : c->a == ENGINE_REPEAT_ALL ? QUEUE_REPEAT_ALL : QUEUE_REPEAT_OFF);
		break;
	case CMD_NORMALIZE:
		atomic_store(&e->normalize, c->flag);
		break;
	case CMD_QMOVE:
		queue_move(e->q, (size_t)c->a, (size_t)c->b);
		break;
	case CMD_QREMOVE: {
		const struct queue_entry *victim = queue_at(e->q, (size_t)c->a);
		bool playing = victim && e->play_item && victim->id == e->play_item->entry_id;
		if (victim && e->fetch_item && e->fetch_item != e->play_item && victim->id == e->fetch_item->entry_id) {
			cancel_item(e, e->fetch_item->seq);
			item_free(e->fetch_item);
			e->fetch_item = e->play_item;
		}
		if (playing) {
			qe = queue_skip(e->q);
			uint64_t id = victim->id;
			queue_remove_id(e->q, id);
			start_entry(e, qe ? queue_current(e->q) : NULL, c->issued_us);
		} else {
			queue_remove_at(e->q, (size_t)c->a);
		}
		break;
	}
	case CMD_QCLEAR:
		queue_clear(e->q);
		e->stopped = true;
		flush_audio(e);
		drop_items(e);
		break;
	case CMD_QUIT:
		break;
	}
	publish_queue(e);
}

/* ---------------------------------------------------------------- network thread: scheduling */

/* Seconds of audio ahead of the play head: what the decoder was handed (in the ring, in
 * its queue or being decoded), counted from where the output is, or will start, to the end
 * of the last segment handed over; plus downloaded segments not handed over yet. Counting
 * only the ring (1 s) would call a just-started or just-seeked item's buffer empty while
 * the rest of its start segment sits in the decoder, and ABR's fetch guard would then take
 * the next segment (or a re-fetched start segment) from the lowest rung. */
static double seconds_buffered(struct engine *e)
{
	double ahead = 0;
	struct item *its[2] = {e->play_item, e->fetch_item != e->play_item ? e->fetch_item : NULL};
	for (int i = 0; i < 2; i++) {
		struct item *it = its[i];
		if (!it || !it->m)
			continue;
		double seg_s = it->m->segment_seconds > 0 ? it->m->segment_seconds : SEGMENT_SECONDS;
		if (it->next_push > it->start_seg) {
			double end = it->next_push * seg_s;
			if (it->m->duration_ms > 0 && end > it->m->duration_ms / 1000.0)
				end = it->m->duration_ms / 1000.0;
			double from = atomic_load(&e->playing_seq) == it->seq
					      ? (double)atomic_load(&e->playing_pos) / OUT_RATE
					      : it->start_seg * seg_s + (double)it->start_trim / OUT_RATE;
			if (end > from)
				ahead += end - from;
		}
		/* Downloaded segments not yet handed to the decoder. */
		for (uint32_t k = it->next_push; k < it->m->segment_count && it->segs[k].st == SEG_DONE; k++)
			ahead += seg_s;
	}
	return ahead;
}

/* Bytes of downloaded audio not yet handed to the decoder, with what is on its way. */
static size_t bytes_buffered(struct engine *e)
{
	size_t n = 0;
	struct item *its[2] = {e->play_item, e->fetch_item != e->play_item ? e->fetch_item : NULL};
	for (int i = 0; i < 2; i++) {
		struct item *it = its[i];
		for (uint32_t k = it && it->m ? it->next_push : 0; it && it->m && k < it->m->segment_count; k++)
			if (it->segs[k].st == SEG_DONE)
				n += it->segs[k].bytes->len;
			else if (it->segs[k].st == SEG_FETCHING)
				n += it->m->renditions[0].segments[k].size;  /* a lower bound is enough here */
	}
	return n;
}

static const char *cdn_template(const struct item *it, int r)
{
	const struct manifest_rendition *mr = &it->m->renditions[r];
	return it->use_origin ? mr->origin_url_template : mr->segment_url_template;
}

/* Picks the bitrate for the item's next segment download (the ABR decision point). */
static int choose_kbps(struct engine *e, struct item *it)
{
	struct abr_input in = {
		.tier = e->cfg.premium ? ABR_TIER_PREMIUM : ABR_TIER_FREE,
		.quality = e->cfg.quality == 24 ? ABR_QUALITY_LOW : e->cfg.quality == 96 ? ABR_QUALITY_NORMAL
			 : e->cfg.quality == 160 ? ABR_QUALITY_HIGH : e->cfg.quality == 320 ? ABR_QUALITY_VERY_HIGH
			 : ABR_QUALITY_AUTO,
		.throughput_bps = abr_estimator_bps(&e->est),
		.worst_bps = abr_estimator_min_bps(&e->est),
		.buffer_s = seconds_buffered(e),
		.current_kbps = e->last_kbps,
	};
	int kbps = abr_choose(&e->abr, &in);
	/* Nothing measured yet (the first audio came inline with the manifest): on auto, the
	 * first CDN download is the cheapest rung and measures the link for the next decision;
	 * a listener who chose a quality gets it until the link proves it cannot carry it. */
	if (in.throughput_bps <= 0)
		kbps = e->cfg.quality ? e->cfg.quality : it->m->renditions[0].bitrate;
	/* The manifest lists what this account may use; take the best rung at or below. */
	int best = it->m->renditions[0].bitrate;
	for (int r = 0; r < it->m->nrenditions; r++)
		if (it->m->renditions[r].bitrate <= kbps)
			best = it->m->renditions[r].bitrate;
	return best;
}

/* Offline hook: puts segment k (and the init part, once) of an offline item in place,
 * decrypted in memory only. False when a stored file fails authentication (tampered,
 * truncated, another device's); the caller fails the item. */
static bool offline_fill(struct engine *e, struct item *it, uint32_t k)
{
	struct seg_slot *sl = &it->segs[k];
	if (!it->init[0] && offline_track_read(it->off, -1, &it->init[0], &it->init_len[0]) != 0)
		return false;
	uint8_t *data;
	size_t len;
	if (offline_track_read(it->off, (int)k, &data, &len) != 0)
		return false;
	sl->bytes = segbytes_adopt(data, len);
	sl->st = SEG_DONE;
	sl->kbps = it->m->renditions[0].bitrate;
	e->last_kbps = sl->kbps;
	return true;
}

static void fetch_segments(struct engine *e, struct item *it, double target_s)
{
	if (!it->m || it->failed)
		return;
	int64_t now = now_us();
	for (uint32_t k = it->next_push; k < it->m->segment_count; k++) {
		if (inflight_segments(e, it->seq) >= MAX_INFLIGHT)
			return;
		struct seg_slot *sl = &it->segs[k];
		if (sl->st == SEG_FETCHING)
			continue;
		if (sl->st == SEG_DONE)
			continue;
		if ((seconds_buffered(e) >= target_s || bytes_buffered(e) >= AHEAD_MAX_BYTES) && k > it->next_push)
			return;
		if (sl->retry_at_us > now)
			return;
		if (it->off) {
			/* Offline hook: decrypt the segment from the store instead of fetching it. */
			if (!offline_fill(e, it, k)) {
				it->off_failed = true;
				return;
			}
			continue;
		}
		int kbps = sl->tries >= 3 ? it->m->renditions[0].bitrate : choose_kbps(e, it);
		int r = rindex_of(it, kbps);
		/* A partial manifest (on-demand transcoding still running): take the best rung
		 * that has this segment; if none has it yet, ask for a fresh manifest shortly. */
		while (r > 0 && !it->m->renditions[r].segments[k].size)
			r--;
		if (!it->m->renditions[r].segments[k].size) {
			if (!it->renew_manifest) {
				it->renew_manifest = true;
				it->manifest_retry_at_us = now + PENDING_RECHECK_MS * 1000;
			}
			return;
		}
		kbps = it->m->renditions[r].bitrate;
		if (!it->init[r] && !it->init_fetching[r]) {
			it->init_fetching[r] = true;
			const struct manifest_rendition *mr = &it->m->renditions[r];
			start_xfer(e, X_INIT, it, it->use_origin ? mr->origin_init_url : mr->init_url, 0, r, false);
		}
		char *url = manifest_expand(cdn_template(it, r), k);
		sl->st = SEG_FETCHING;
		sl->kbps = kbps;
		start_xfer(e, X_SEGMENT, it, url, k, r, false);
		free(url);
	}
}

/* Forgets the prime and any pending request for one (network thread). */
static void drop_prime(struct engine *e)
{
	pthread_mutex_lock(&e->lock);
	struct djob *j = e->prime_job;
	e->prime_job = NULL;
	free(e->prime_pcm);
	e->prime_pcm = NULL;
	e->prime_frames = 0;
	e->prime_mk.item_seq = 0;
	e->prime_go = 0;
	pthread_mutex_unlock(&e->lock);
	if (j) {
		free(j->init);
		segbytes_unref(j->seg);
		free(j);
	}
}

/* Asks the decoder thread to prime the next item once its first segment and init are here. */
static void request_prime(struct engine *e, struct item *it)
{
	if (it->prime_requested || !it->m || it->start_seg >= it->m->segment_count)
		return;
	struct seg_slot *sl = &it->segs[it->start_seg];
	int r = sl->st == SEG_DONE && sl->bytes ? rindex_of(it, sl->kbps) : -1;
	if (r < 0 || !it->init[r])
		return;
	it->prime_requested = true;
	struct djob *j = xcalloc(1, sizeof(*j));
	j->item_seq = it->seq;
	snprintf(j->uri, sizeof(j->uri), "%s", it->uri);
	j->index = it->start_seg;
	j->kbps = sl->kbps;
	j->init = xmalloc(it->init_len[r]);
	memcpy(j->init, it->init[r], it->init_len[r]);
	j->init_len = it->init_len[r];
	j->seg = segbytes_ref(sl->bytes);
	j->gain_db = it->m->gain_db;
	j->trim = it->start_trim;
	drop_prime(e);
	pthread_mutex_lock(&e->lock);
	e->prime_job = j;
	pthread_cond_broadcast(&e->cond);
	pthread_mutex_unlock(&e->lock);
	ring_wake(e->ring);  /* the decoder may be waiting for room in the ring */
}

/* A skip to it: if its prime is ready, the output plays it first and the decoder starts
 * after it. Call after the skip's flush. */
static void use_prime(struct engine *e, struct item *it, int64_t cmd_us)
{
	pthread_mutex_lock(&e->lock);
	if (e->prime_pcm && e->prime_mk.item_seq == it->seq && it->start_trim == 0 &&
	    e->prime_mk.item_pos == (uint64_t)it->start_seg * SEGMENT_SECONDS * OUT_RATE) {
		e->prime_go = it->seq;
		e->prime_go_gen = ring_generation(e->ring);
		e->prime_mk.play_cmd_us = cmd_us;
		it->prime_skip = e->prime_frames;
	}
	pthread_mutex_unlock(&e->lock);
	ring_wake(e->ring);
}

/* Frees the kept copies of the play item's segments the output has played past (see
 * push_item). Network thread. */
static void release_played(struct engine *e)
{
	struct item *it = e->play_item;
	if (!it || !it->m || atomic_load(&e->playing_seq) != it->seq)
		return;
	uint64_t seg_frames = (uint64_t)(it->m->segment_seconds > 0 ? it->m->segment_seconds : SEGMENT_SECONDS) * OUT_RATE;
	uint64_t cur = atomic_load(&e->playing_pos) / seg_frames;
	for (uint32_t k = 0; k < cur && k < it->next_push && k < it->m->segment_count; k++)
		if (it->segs[k].st == SEG_DONE) {
			segbytes_unref(it->segs[k].bytes);
			it->segs[k].bytes = NULL;
			it->segs[k].st = SEG_NONE;
		}
}

/* Hands downloaded segments to the decoder strictly in play order. */
static void push_item(struct engine *e, struct item *it)
{
	while (!it->pushed_all && it->m && it->next_push < it->m->segment_count) {
		pthread_mutex_lock(&e->lock);
		size_t qlen = e->dq_len;
		pthread_mutex_unlock(&e->lock);
		if (qlen >= 1)
			return;  /* hand over one segment at a time: what is not yet decoded can still
			          * be replaced, seeked past or skipped cheaply */
		uint32_t k = it->next_push;
		struct seg_slot *sl = &it->segs[k];
		if (sl->st != SEG_DONE)
			return;
		int r = rindex_of(it, sl->kbps);
		if (!it->init[r])
			return;
		struct djob *j = xcalloc(1, sizeof(*j));
		j->item_seq = it->seq;
		snprintf(j->uri, sizeof(j->uri), "%s", it->uri);
		j->gen = ring_generation(e->ring);
		j->index = k;
		j->kbps = sl->kbps;
		if (sl->kbps != it->kbps || k == it->start_seg) {
			j->init = xmalloc(it->init_len[r]);
			memcpy(j->init, it->init[r], it->init_len[r]);
			j->init_len = it->init_len[r];
			if (it->kbps && sl->kbps != it->kbps)
				e->switches++;
			it->kbps = sl->kbps;
		}
		/* Shared, not handed over: the slot keeps its segment until the output has
		 * played past it (release_played), so a seek within what is buffered, such as
		 * a Connect "start" a little past the prepared position, decodes the same
		 * rendition again instead of re-fetching it with an empty buffer, which ABR
		 * answers with the lowest rung. A skip to the next item likewise starts
		 * without a download. The bytes exist once (segbytes). */
		j->seg = segbytes_ref(sl->bytes);
		j->gain_db = it->m->gain_db;
		j->trim = k == it->start_seg ? it->start_trim + (int64_t)it->prime_skip : 0;
		j->last = k + 1 == it->m->segment_count;
		j->play_cmd_us = k == it->start_seg ? it->play_cmd_us : 0;
		if (k == it->start_seg)
			it->play_cmd_us = 0;
		pthread_mutex_lock(&e->lock);
		if (e->dq_tail)
			e->dq_tail->next = j;
		else
			e->dq_head = j;
		e->dq_tail = j;
		e->dq_len++;
		pthread_cond_broadcast(&e->cond);
		pthread_mutex_unlock(&e->lock);
		it->next_push++;
		if (it->next_push == it->m->segment_count)
			it->pushed_all = true;
	}
}

static void request_manifest(struct engine *e, struct item *it)
{
	it->manifest_requested = true;
	if (e->cfg.offline_only && !e->cfg.offline) {
		it->off_err = xasprintf("cannot play %s: not downloaded (offline mode)", it->uri);
		return;
	}
	if (e->cfg.offline) {
		/* Offline hook: a downloaded track plays from the encrypted store, no network.
		 * Not downloaded: stream as usual. Downloaded but unusable: refuse, saying why. */
		struct manifest *m = NULL;
		char err[256];
		int rc = offline_track_open(e->cfg.offline, it->id, (int64_t)time(NULL), &it->off, &m, err, sizeof(err));
		if (rc == 0) {
			it->m = m;
			it->segs = xcalloc(m->segment_count, sizeof(*it->segs));
			if (!it->duration_ms)
				it->duration_ms = m->duration_ms;
			return;
		}
		if (rc != -ENOENT || e->cfg.offline_only) {
			it->off_err = rc == -ENOENT ? xasprintf("cannot play %s: not downloaded (offline mode)", it->uri) : xstrdup(err);
			return;  /* schedule() fails the item: it may free it */
		}
	}
	char key[96];
	snprintf(key, sizeof(key), "manifest:%s:%d", it->id, e->cfg.quality);
	/* The cached manifest's inline audio is not stored, so a cold start from the cache
	 * needs the init and first segment from the CDN: worth it only for a later start. */
	char *cached = e->cache && it->start_seg == 0 && !it->play_cmd_us ? cache_get(e->cache, key, (int64_t)time(NULL) + 60) : NULL;
	if (cached) {
		struct manifest *m;
		char err[128];
		if (manifest_parse(cached, &m, err, sizeof(err)) == 0) {
			free(cached);
			it->m = m;
			it->segs = xcalloc(m->segment_count, sizeof(*it->segs));
			it->duration_ms = m->duration_ms;
			return;
		}
		free(cached);
	}
	char *url = xasprintf("%s/v1/playback/%s?partial=1&start_segment=%u%s%s", api_base_url(e->api), it->id, it->start_seg,
			      e->cfg.quality ? "&quality=" : "", e->cfg.quality ? (e->cfg.quality == 24 ? "24" : e->cfg.quality == 96 ? "96" : e->cfg.quality == 160 ? "160" : "320") : "");
	start_xfer(e, X_MANIFEST, it, url, 0, 0, true);
	free(url);
}

static void request_meta(struct engine *e, struct item *it)
{
	it->meta_requested = true;
	if (it->episode) {
		snprintf(it->title, sizeof(it->title), "Episode %s", it->id);
		return;
	}
	char key[64];
	snprintf(key, sizeof(key), "track:%s", it->id);
	char *cached = e->cache ? cache_get(e->cache, key, (int64_t)time(NULL)) : NULL;
	if (!cached && e->cfg.offline)
		cached = offline_meta(e->cfg.offline, it->id);  /* offline hook: metadata stored with the download */
	if (cached) {
		struct xfer fake = {.kind = X_META, .item_seq = it->seq};
		buf_puts(&fake.body, cached);
		free(cached);
		extern void engine_apply_meta(struct item *it, const char *json);
		engine_apply_meta(it, fake.body.data);
		buf_free(&fake.body);
		return;
	}
	if (e->cfg.offline_only)
		return;
	char *url = xasprintf("%s/v1/tracks/%s", api_base_url(e->api), it->id);
	start_xfer(e, X_META, it, url, 0, 0, true);
	free(url);
}

void engine_apply_meta(struct item *it, const char *json)
{
	yajl_val v = json_parse(json, NULL, 0);
	if (!v)
		return;
	const char *name = json_get_str(v, "name");
	if (name)
		snprintf(it->title, sizeof(it->title), "%s", name);
	yajl_val artists = json_get(v, "artists");
	if (artists && YAJL_IS_ARRAY(artists) && artists->u.array.len > 0) {
		const char *a = json_get_str(artists->u.array.values[0], "name");
		const char *aid = json_get_str(artists->u.array.values[0], "id");
		if (a)
			snprintf(it->artist, sizeof(it->artist), "%s", a);
		if (aid && id_valid(aid))
			memcpy(it->artist_id, aid, ID_LEN + 1);
	}
	const char *album = json_get_str(json_get(v, "album"), "name");
	if (album)
		snprintf(it->album, sizeof(it->album), "%s", album);
	long long d;
	if (json_get_int(v, "duration_ms", &d))
		it->duration_ms = (int)d;
	yajl_tree_free(v);
}

static void item_error(struct engine *e, struct item *it, const char *msg);

/* Offline hook: fails an item whose download cannot be played, saying why. */
static void offline_refuse(struct engine *e, struct item *it)
{
	char msg[300];
	if (it->off_err)
		snprintf(msg, sizeof(msg), "%s", it->off_err);
	else
		snprintf(msg, sizeof(msg), "cannot play %s offline: a downloaded file failed authentication (tampered, "
			 "truncated or from another device); download it again", it->uri);
	item_error(e, it, msg);  /* may free it */
}

/* Decides what to do next: items to start, manifests and segments to fetch, the next
 * track to prefetch, segments to push. Runs after every event. */
static void schedule(struct engine *e)
{
	if (e->stopped)
		return;
	/* The output moved on to the prefetched item: it is now the playing one. */
	uint64_t pseq = atomic_load(&e->playing_seq);
	if (e->fetch_item && e->fetch_item != e->play_item && pseq == e->fetch_item->seq) {
		cancel_item(e, e->play_item->seq);
		item_free(e->play_item);
		e->play_item = e->fetch_item;
		e->tracks_started++;
		drop_prime(e);
	}
	release_played(e);
	if (!e->play_item) {
		if (e->ended && e->cfg.autoplay && !e->autoplay_requested && e->last_artist_id[0]) {
			e->autoplay_requested = true;
			/* Autoplay is Radio seeded by the last artist (docs/PROTOCOL.md, "Recommendations"):
			 * same {"tracks": [TRACK...]} shape as top-tracks, and it falls back to genre and
			 * popular tracks on the server, so it works with or without a trained model. */
			char *url = xasprintf("%s/v1/radio?seed=encore:artist:%s", api_base_url(e->api), e->last_artist_id);
			start_xfer(e, X_AUTOPLAY, NULL, url, 0, 0, true);
			free(url);
		}
		return;
	}
	struct item *items[2] = {e->play_item, e->fetch_item != e->play_item ? e->fetch_item : NULL};
	for (int i = 0; i < 2; i++) {
		struct item *it = items[i];
		if (!it)
			continue;
		/* The manifest (with the first audio inline) goes out first; the metadata waits
		 * until the cache is open, which happens while that request is on the wire. */
		if (!it->m && !it->manifest_requested && now_us() >= it->manifest_retry_at_us)
			request_manifest(e, it);
		if (!it->meta_requested && !e->cache_path)
			request_meta(e, it);
		if (it->off_err || it->off_failed) {
			offline_refuse(e, it);
			schedule(e);  /* the queue moved on: start over with the new items */
			return;
		}
		if (it->m && it->renew_manifest && !inflight_manifest(e, it->seq) && now_us() >= it->manifest_retry_at_us) {
			char *url = xasprintf("%s/v1/playback/%s?inline=0&partial=1", api_base_url(e->api), it->id);
			start_xfer(e, X_MANIFEST, it, url, 0, 0, true);
			free(url);
		}
	}
	double target = e->cfg.prefetch_seconds;
	if (abr_estimator_bps(&e->est) > 0 && e->last_kbps > 0)
		target = abr_buffer_target(&e->abr, abr_estimator_max_bps(&e->est), abr_estimator_min_bps(&e->est), e->last_kbps);
	if (target < e->cfg.prefetch_seconds * 0.5)
		target = e->cfg.prefetch_seconds * 0.5;
	/* Fetch the playing item; once all of it is here, prefetch the next one. */
	fetch_segments(e, e->play_item, target);
	if (e->play_item->off_failed) {
		offline_refuse(e, e->play_item);
		schedule(e);
		return;
	}
	bool play_fetched = e->play_item->m;
	if (play_fetched)
		for (uint32_t k = 0; k < e->play_item->m->segment_count; k++)
			if (e->play_item->segs[k].st != SEG_DONE && k >= e->play_item->next_push) {
				play_fetched = false;
				break;
			}
	if (play_fetched && e->fetch_item == e->play_item && e->play_item->pushed_all) {
		if (e->play_item->artist_id[0])
			memcpy(e->last_artist_id, e->play_item->artist_id, ID_LEN + 1);
		const struct queue_entry *qe = queue_next(e->q);
		if (qe) {
			e->fetch_item = item_new(e, qe, 0);
			publish_queue(e);
		} else if (e->cfg.autoplay && !e->autoplay_requested && e->last_artist_id[0]) {
			e->autoplay_requested = true;
			/* Autoplay is Radio seeded by the last artist (docs/PROTOCOL.md, "Recommendations"):
			 * same {"tracks": [TRACK...]} shape as top-tracks, and it falls back to genre and
			 * popular tracks on the server, so it works with or without a trained model. */
			char *url = xasprintf("%s/v1/radio?seed=encore:artist:%s", api_base_url(e->api), e->last_artist_id);
			start_xfer(e, X_AUTOPLAY, NULL, url, 0, 0, true);
			free(url);
		}
	}
	if (e->fetch_item != e->play_item && e->fetch_item) {
		fetch_segments(e, e->fetch_item, target + 8);
		request_prime(e, e->fetch_item);
	}
	if (e->fetch_item && e->fetch_item->off_failed) {
		offline_refuse(e, e->fetch_item);
		schedule(e);
		return;
	}
	push_item(e, e->play_item);
	if (e->play_item->pushed_all && e->fetch_item != e->play_item && e->fetch_item)
		push_item(e, e->fetch_item);
	/* Everything played and nothing follows: the queue has ended. */
	if (e->fetch_item == e->play_item && e->play_item->pushed_all && atomic_load(&e->output_idle) &&
	    atomic_load(&e->playing_seq) == 0 && ring_readable(e->ring) == 0) {
		pthread_mutex_lock(&e->lock);
		bool drained = e->dq_head == NULL && !atomic_load(&e->decoder_busy);
		pthread_mutex_unlock(&e->lock);
		if (drained && play_fetched) {
			if (e->play_item->artist_id[0])
				memcpy(e->last_artist_id, e->play_item->artist_id, ID_LEN + 1);
			cancel_item(e, e->play_item->seq);
			item_free(e->play_item);
			e->play_item = e->fetch_item = NULL;
			e->ended = true;
			if (!e->cfg.autoplay || !e->last_artist_id[0] || e->autoplay_exhausted)
				post_event(e, ENGINE_EV_ENDED, NULL, 0, 0, 0, NULL);
		}
	}
}

/* ---------------------------------------------------------------- network thread: completions */

/* Feeds the ABR estimator. The harmonic mean is deliberately slow to trust a faster link,
 * but two downloads in a row at several times the estimate mean the link has changed
 * (a cap lifted, Wi-Fi regained): start the average afresh from them, so the climb takes
 * two segments instead of a whole window. */
static void note_throughput(struct engine *e, double bytes, double secs)
{
	double before = abr_estimator_bps(&e->est);
	double rate = secs > 0 ? bytes * 8 / secs : 0;
	if (before > 0 && rate > 4 * before && e->fast_streak >= 1) {
		abr_estimator_init(&e->est, 5);
		abr_estimator_add_sample(&e->est, e->streak_bytes, e->streak_secs);
		e->fast_streak = 0;
	} else if (before > 0 && rate > 4 * before) {
		e->fast_streak = 1;
		e->streak_bytes = bytes;
		e->streak_secs = secs;
	} else {
		e->fast_streak = 0;
	}
	abr_estimator_add_sample(&e->est, bytes, secs);
}

static void retry_later(struct seg_slot *sl)
{
	sl->st = SEG_NONE;
	sl->tries++;
	int64_t d = (int64_t)RETRY_BASE_MS << (sl->tries > 4 ? 4 : sl->tries - 1);
	if (d > RETRY_MAX_MS)
		d = RETRY_MAX_MS;
	sl->retry_at_us = now_us() + d * 1000 + (int64_t)randombytes_uniform((uint32_t)(d * 500));
}

static void item_error(struct engine *e, struct item *it, const char *msg)
{
	snprintf(e->error, sizeof(e->error), "%s", msg);
	it->failed = true;
	post_event(e, ENGINE_EV_ERROR, it->uri, 0, 0, 0, msg);
	/* Move on: the queue continues with the next item. */
	if (it == e->play_item) {
		const struct queue_entry *qe = queue_skip(e->q);
		char keep[256];
		snprintf(keep, sizeof(keep), "%s", e->error);
		start_entry(e, qe, now_us());
		snprintf(e->error, sizeof(e->error), "%s", keep);
	} else if (it == e->fetch_item) {
		cancel_item(e, it->seq);
		item_free(it);
		e->fetch_item = e->play_item;
		const struct queue_entry *qe = queue_next(e->q);
		if (qe)
			e->fetch_item = item_new(e, qe, 0);
	}
}

static void on_manifest(struct engine *e, struct item *it, struct xfer *x, long status)
{
	if (status == 200) {
		struct manifest *m;
		char err[160];
		if (manifest_parse(x->body.data ? x->body.data : "", &m, err, sizeof(err)) != 0) {
			item_error(e, it, err);
			return;
		}
		if (it->m) {
			/* A renewal: same audio, fresh signed URLs, and while on-demand transcoding runs,
			 * more segments and rungs. Rungs are published lowest first, so the ones we
			 * hold keep their index and fetched parts stay valid. */
			bool same = m->segment_count == it->m->segment_count && m->nrenditions >= it->m->nrenditions;
			for (int r = 0; same && r < it->m->nrenditions; r++)
				same = m->renditions[r].bitrate == it->m->renditions[r].bitrate;
			if (same) {
				manifest_free(it->m);
				it->m = m;
			} else {
				manifest_free(m);
			}
			it->renew_manifest = false;
			e->error[0] = 0;
			return;
		}
		it->m = m;
		it->segs = xcalloc(m->segment_count, sizeof(*it->segs));
		if (!it->duration_ms)
			it->duration_ms = m->duration_ms;
		/* The inline start: init and first segment arrive with the manifest (one round trip). */
		if (m->inline_bitrate > 0) {
			int r = rindex_of(it, m->inline_bitrate);
			if (r >= 0 && m->inline_index < m->segment_count) {
				it->init[r] = m->inline_init;
				it->init_len[r] = m->inline_init_len;
				m->inline_init = NULL;
				struct seg_slot *sl = &it->segs[m->inline_index];
				sl->st = SEG_DONE;
				sl->kbps = m->inline_bitrate;
				sl->bytes = segbytes_adopt(m->inline_segment, m->inline_segment_len);
				m->inline_segment = NULL;
				e->segments_fetched++;
				e->bytes_fetched += sl->bytes->len;
				e->last_kbps = e->last_kbps ? e->last_kbps : m->inline_bitrate;
			}
		}
		if (e->cache && m->complete) {
			/* Cache without the inline audio: signed URLs stay valid until expires_at.
			 * A manifest of an item still being transcoded lacks rungs: not worth keeping. */
			struct manifest copy = *m;
			copy.inline_bitrate = 0;
			struct jw w;
			jw_init(&w);
			manifest_write(&copy, &w);
			char *json = jw_finish(&w);
			char key[96];
			snprintf(key, sizeof(key), "manifest:%s:%d", it->id, e->cfg.quality);
			cache_put(e->cache, key, json, m->expires_at);
			free(json);
		}
		return;
	}
	char msg[256] = "";
	if (x->body.data)
		api_error_message(x->body.data, msg, sizeof(msg));
	if (status == 401 && it->manifest_tries++ < 1 && api_refresh_after_401(e->api, x->tok_gen) == 0) {
		it->manifest_requested = false;
		return;
	}
	if (status == 0 || status >= 500 || status == 429) {
		/* Server unreachable or busy: try again shortly, without giving up on the track. */
		it->manifest_requested = false;
		int tries = ++it->manifest_tries;
		int64_t d = (int64_t)RETRY_BASE_MS << (tries > 4 ? 4 : tries - 1);
		it->manifest_retry_at_us = now_us() + (d > RETRY_MAX_MS ? RETRY_MAX_MS : d) * 1000;
		snprintf(e->error, sizeof(e->error), "cannot reach the server (retrying): %s", msg[0] ? msg : "no answer");
		return;
	}
	char full[300];
	snprintf(full, sizeof(full), "cannot play %s: %s", it->uri, msg[0] ? msg : "refused by the server");
	item_error(e, it, full);
}

static void on_autoplay(struct engine *e, struct xfer *x, long status)
{
	if (status != 200 || !x->body.data) {
		e->autoplay_exhausted = true;
		if (!e->play_item)
			post_event(e, ENGINE_EV_ENDED, NULL, 0, 0, 0, NULL);
		return;
	}
	yajl_val v = json_parse(x->body.data, NULL, 0);
	yajl_val tracks = json_get(v, "tracks");
	int added = 0;
	long first = -1;
	for (size_t i = 0; tracks && YAJL_IS_ARRAY(tracks) && i < tracks->u.array.len; i++) {
		const char *uri = json_get_str(tracks->u.array.values[i], "uri");
		bool playable = true;
		json_get_bool(tracks->u.array.values[i], "is_playable", &playable);
		if (!uri || !playable || !valid_uri(uri))
			continue;
		bool seen = false;
		for (size_t k = 0; k < queue_len(e->q); k++)
			if (strcmp(queue_at(e->q, k)->uri, uri) == 0)
				seen = true;
		if (seen)
			continue;
		if (queue_add(e->q, uri, NULL) == 0) {
			if (first < 0)
				first = (long)queue_len(e->q) - 1;
			added++;
		}
	}
	yajl_tree_free(v);
	if (added && !e->play_item && first >= 0 && queue_play_at(e->q, (size_t)first) == 0)
		start_entry(e, queue_current(e->q), now_us());
	if (added) {
		e->autoplay_requested = false;
	} else {
		e->autoplay_exhausted = true;
		if (!e->play_item)
			post_event(e, ENGINE_EV_ENDED, NULL, 0, 0, 0, NULL);  /* nothing more to play */
	}
	publish_queue(e);
}

static void on_done(struct engine *e, CURLMsg *msg)
{
	struct xfer *x = NULL;
	curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
	long status = 0, connects = 0;
	curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(msg->easy_handle, CURLINFO_NUM_CONNECTS, &connects);
	if (msg->data.result != CURLE_OK)
		status = 0;
	if (connects > 0)
		e->opened++;
	else if (msg->data.result == CURLE_OK)
		e->reused++;
	if (status == 0 && api_server_count(e->api) > 1) {
		/* The server did not answer at all: the next request goes to the next server. */
		char *eff = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_EFFECTIVE_URL, &eff);
		api_failover(e->api, eff);
	}
	/* Detach first: handling it may cancel the item's transfers, this one included. */
	xfer_detach(e, x);
	struct item *it = item_by_seq(e, x->item_seq);
	double secs = (double)(now_us() - x->start_us) / 1e6;
	switch (x->kind) {
	case X_MANIFEST:
		if (it)
			on_manifest(e, it, x, status);
		break;
	case X_META:
		if (status == 200 && x->body.data) {
			if (it)
				engine_apply_meta(it, x->body.data);
			if (e->cache && it) {
				char key[64];
				snprintf(key, sizeof(key), "track:%s", it->id);
				cache_put(e->cache, key, x->body.data, (int64_t)time(NULL) + META_TTL_S);
			}
		}
		break;
	case X_INIT:
		if (!it || !it->m)
			break;
		it->init_fetching[x->rindex] = false;
		if (status == 200 && x->body.len == it->m->renditions[x->rindex].init_size) {
			it->init_len[x->rindex] = x->body.len;
			it->init[x->rindex] = (uint8_t *)buf_steal(&x->body);
		} else if (status == 0 || status >= 500) {
			it->use_origin = true;  /* the edge is failing: the origin serves the same bytes */
		} else if (status == 403) {
			it->renew_manifest = true;
		}
		break;
	case X_SEGMENT: {
		if (!it || !it->m || x->index >= it->m->segment_count)
			break;
		struct seg_slot *sl = &it->segs[x->index];
		const struct manifest_segment *ms = &it->m->renditions[x->rindex].segments[x->index];
		if (status == 200 && x->body.len == ms->size) {
			char hex[65];
			unsigned char h[32];
			crypto_generichash(h, sizeof(h), (const unsigned char *)x->body.data, x->body.len, NULL, 0);
			sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
			if (strcmp(hex, ms->hash) != 0) {
				retry_later(sl);  /* corrupted in transit: fetch it again */
				break;
			}
			sl->st = SEG_DONE;
			size_t got = x->body.len;
			sl->bytes = segbytes_adopt((uint8_t *)buf_steal(&x->body), got);
			sl->tries = 0;
			e->segments_fetched++;
			e->bytes_fetched += sl->bytes->len;
			note_throughput(e, (double)sl->bytes->len, secs);
			e->last_kbps = sl->kbps;
			if (e->error[0] && strncmp(e->error, "cannot reach", 12) == 0)
				e->error[0] = 0;
		} else {
			if (status == 0 || status >= 500) {
				/* Throughput fell to nothing for this attempt: count it, so ABR backs off. */
				abr_estimator_add_sample(&e->est, (double)(x->body.len + 1), secs > 0.05 ? secs : 0.05);
				if (sl->tries >= 1)
					it->use_origin = true;
			}
			if (status == 403)
				it->renew_manifest = true;  /* URLs expired: fetch fresh ones, keep the audio */
			retry_later(sl);
			if (status == 0)
				snprintf(e->error, sizeof(e->error), "cannot reach the server; playing from the buffer");
		}
		break;
	}
	case X_AUTOPLAY:
		on_autoplay(e, x, status);
		break;
	}
	xfer_free(e, x);
}

/* ---------------------------------------------------------------- network thread: loop */

/* Publishes the queue for engine_queue_list. Network thread; takes the lock. */
static void publish_queue(struct engine *e)
{
	int n = (int)queue_len(e->q);
	char **uris = xcalloc((size_t)(n ? n : 1), sizeof(char *));
	for (int i = 0; i < n; i++)
		uris[i] = xstrdup(queue_at(e->q, (size_t)i)->uri);
	int cur = -1;
	if (e->play_item) {
		long p = queue_index_of(e->q, e->play_item->entry_id);
		cur = (int)p;
	}
	pthread_mutex_lock(&e->lock);
	char **old = e->qcopy_uris;
	int oldn = e->qcopy_n;
	e->qcopy_uris = uris;
	e->qcopy_n = n;
	e->qcopy_current = cur;
	pthread_mutex_unlock(&e->lock);
	engine_queue_list_free(old, oldn);
}

int engine_queue_list(struct engine *e, char ***uris, int *n, int *current)
{
	pthread_mutex_lock(&e->lock);
	*n = e->qcopy_n;
	*current = e->qcopy_current;
	*uris = xcalloc((size_t)(*n ? *n : 1), sizeof(char *));
	for (int i = 0; i < *n; i++)
		(*uris)[i] = xstrdup(e->qcopy_uris[i]);
	pthread_mutex_unlock(&e->lock);
	return 0;
}

void engine_queue_list_free(char **uris, int n)
{
	if (!uris)
		return;
	for (int i = 0; i < n; i++)
		free(uris[i]);
	free(uris);
}

static void publish(struct engine *e)
{
	struct engine_snapshot s;
	pthread_mutex_lock(&e->lock);
	s = e->snap;
	pthread_mutex_unlock(&e->lock);
	struct engine_snapshot n = s;
	struct item *it = e->play_item;
	uint64_t pseq = atomic_load(&e->playing_seq);
	if (it && pseq && pseq != it->seq && e->fetch_item && pseq == e->fetch_item->seq)
		it = e->fetch_item;
	n.uri[0] = n.title[0] = n.artist[0] = n.album[0] = 0;
	n.duration_ms = n.position_ms = 0;
	n.gain_db = 0;
	if (it) {
		snprintf(n.uri, sizeof(n.uri), "%s", it->uri);
		snprintf(n.title, sizeof(n.title), "%s", it->title);
		snprintf(n.artist, sizeof(n.artist), "%s", it->artist);
		snprintf(n.album, sizeof(n.album), "%s", it->album);
		n.duration_ms = it->m ? it->m->duration_ms : it->duration_ms;
		n.gain_db = it->m ? it->m->gain_db : 0;
		n.position_ms = pseq == it->seq ? (int)(atomic_load(&e->playing_pos) * 1000 / OUT_RATE)
						: start_position_ms(it);
		n.bitrate_kbps = it->kbps ? it->kbps : e->last_kbps;
	}
	if (e->stopped || (!it && !e->ended))
		n.state = ENGINE_IDLE;
	else if (!it && e->ended)
		n.state = e->error[0] ? ENGINE_ERROR : ENGINE_ENDED;
	else if (atomic_load(&e->paused))
		n.state = ENGINE_PAUSED;
	else if (pseq != it->seq)
		n.state = ENGINE_LOADING;
	else if (ring_readable(e->ring) == 0 && !it->pushed_all)
		n.state = ENGINE_BUFFERING;
	else
		n.state = ENGINE_PLAYING;
	n.buffer_seconds = seconds_buffered(e);
	n.shuffle = queue_shuffle(e->q);
	enum queue_repeat r = queue_repeat(e->q);
	n.repeat = r == QUEUE_REPEAT_ONE ? ENGINE_REPEAT_ONE : r == QUEUE_REPEAT_ALL ? ENGINE_REPEAT_ALL : ENGINE_REPEAT_OFF;
	n.queue_length = (int)queue_len(e->q);
	n.queue_position = it ? (int)queue_index_of(e->q, it->entry_id) : -1;
	snprintf(n.output, sizeof(n.output), "%s", e->cfg.output ? e->cfg.output : "alsa");
	snprintf(n.error, sizeof(n.error), "%s", e->error);
	n.segments_fetched = e->segments_fetched;
	n.bytes_fetched = e->bytes_fetched;
	n.connections_reused = e->reused;
	n.connections_opened = e->opened;
	n.bitrate_switches = e->switches;
	n.tracks_started = e->tracks_started;
	n.underruns = atomic_load(&e->underruns);
	n.volume = atomic_load(&e->volume);
	n.normalize = atomic_load(&e->normalize);
	n.first_audio_us = atomic_load(&e->first_audio_us);
	/* Bump the version only when something a listener could notice changed. */
	n.version = s.version;
	struct engine_snapshot a = s, b = n;
	a.version = b.version = 0;
	a.buffer_seconds = b.buffer_seconds = 0;
	if (memcmp(&a, &b, sizeof(a)) != 0) {
		n.version = s.version + 1;
		pthread_mutex_lock(&e->lock);
		e->snap = n;
		pthread_mutex_unlock(&e->lock);
		notify(e);
	} else {
		pthread_mutex_lock(&e->lock);
		e->snap.buffer_seconds = n.buffer_seconds;
		pthread_mutex_unlock(&e->lock);
	}
}

/* Whether opening the cache now would delay no first audio: the playing item's manifest
 * request has left (or it needs none), or nothing was asked to play for a while. */
static bool cache_may_open(struct engine *e)
{
	struct item *it = e->play_item;
	if (!it)
		return now_us() - e->started_us > 200000;
	if (!it->manifest_requested && !it->m)
		return false;
	for (struct xfer *x = e->xfers; x; x = x->next) {
		curl_off_t pre = 0;
		if (x->item_seq == it->seq && x->kind == X_MANIFEST &&
		    (curl_easy_getinfo(x->easy, CURLINFO_PRETRANSFER_TIME_T, &pre) != CURLE_OK || pre == 0))
			return false;  /* not sent yet */
	}
	return true;
}

static void *net_main(void *arg)
{
	struct engine *e = arg;
	while (!atomic_load(&e->quit)) {
		/* Commands first: they may cancel transfers the multi handle would otherwise finish. */
		pthread_mutex_lock(&e->lock);
		struct cmd *c = e->cmd_head;
		e->cmd_head = e->cmd_tail = NULL;
		pthread_mutex_unlock(&e->lock);
		while (c) {
			struct cmd *next = c->next;
			if (c->type == CMD_QUIT)
				atomic_store(&e->quit, true);
			else
				run_command(e, c);
			cmd_free(c);
			c = next;
		}
		if (atomic_load(&e->quit))
			break;
		int running = 0;
		curl_multi_perform(e->multi, &running);
		if (e->cache_path && cache_may_open(e)) {
			/* Off the path to the first audio: its request is already out (and SQLite's
			 * open and sweep never delay a command on the caller's thread). */
			char cerr[256];
			e->cache = cache_open_volatile(e->cache_path, cerr, sizeof(cerr));
			if (!e->cache)
				fprintf(stderr, "encore: %s (continuing without a cache)\n", cerr);
			free(e->cache_path);
			e->cache_path = NULL;
		}
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(e->multi, &left)))
			if (msg->msg == CURLMSG_DONE)
				on_done(e, msg);
		schedule(e);
		publish(e);
		/* Wake for sockets, commands (curl_multi_wakeup), the output thread, or retries. */
		curl_multi_poll(e->multi, NULL, 0, 200, NULL);
	}
	return NULL;
}

struct engine *engine_new(const struct engine_config *cfg, char *err, size_t errlen)
{
	struct engine *e = xcalloc(1, sizeof(*e));
	e->cfg = *cfg;
	e->api = cfg->api;
	if (!e->api) {
		snprintf(err, errlen, "engine needs an API client");
		goto fail;
	}
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->cond, NULL);
	e->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	e->ring = ring_new(RING_FRAMES, OUT_CH);
	e->gain = gain_new(OUT_RATE, OUT_CH);
	e->q = queue_new((uint64_t)time(NULL) ^ (uint64_t)getpid());
	abr_params_default(&e->abr);
	/* seconds_buffered() counts what the decoder holds as well as what is downloaded, so
	 * the policy's own margin to step up (two segments) applies as documented. */
	abr_estimator_init(&e->est, 5);
	atomic_store(&e->volume, cfg->volume);
	atomic_store(&e->normalize, cfg->normalize);
	atomic_store(&e->output_idle, true);
	if (e->cfg.prefetch_seconds <= 0)
		e->cfg.prefetch_seconds = 10;
	e->sink = sink_new(cfg->output ? cfg->output : "alsa", OUT_RATE, OUT_CH, err, errlen);
	if (!e->sink)
		goto fail;
	const char *spec = cfg->output ? cfg->output : "alsa";
	size_t speclen = strlen(spec);
	e->realtime_sink = strncmp(spec, "alsa", 4) == 0 || strcmp(spec, "null:realtime") == 0 ||
			   (strncmp(spec, "wav:", 4) == 0 && speclen > 13 && strcmp(spec + speclen - 9, ":realtime") == 0);
	e->cache_path = cfg->cache_path ? xstrdup(cfg->cache_path) : NULL;
	e->started_us = now_us();
	e->cfg.cache_path = NULL;  /* borrowed: the copy above is what the network thread opens */
	e->multi = curl_multi_init();
	/* One connection per host is plenty for sequential segments, and keeps every segment
	 * of every track on the same warm connection. */
	curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 4L);
	e->snap.volume = cfg->volume;
	snprintf(e->snap.output, sizeof(e->snap.output), "%s", spec);
	publish_queue(e);
	pthread_create(&e->out_thread, NULL, output_main, e);
	pthread_create(&e->dec_thread, NULL, decoder_main, e);
	pthread_create(&e->net_thread, NULL, net_main, e);
	e->threads_started = true;
	return e;
fail:
	engine_free(e);
	return NULL;
}

void engine_free(struct engine *e)
{
	if (!e)
		return;
	if (e->threads_started) {
		simple_cmd(e, CMD_QUIT, 0, 0, false);
		pthread_join(e->net_thread, NULL);
		atomic_store(&e->quit, true);
		ring_abort(e->ring);
		pthread_mutex_lock(&e->lock);
		pthread_cond_broadcast(&e->cond);
		pthread_mutex_unlock(&e->lock);
		pthread_join(e->dec_thread, NULL);
		pthread_join(e->out_thread, NULL);
	}
	if (e->multi) {
		while (e->xfers)
			xfer_free(e, e->xfers);
		drop_items(e);
		curl_multi_cleanup(e->multi);
	}
	pthread_mutex_lock(&e->lock);
	struct cmd *c = e->cmd_head;
	e->cmd_head = NULL;
	pthread_mutex_unlock(&e->lock);
	while (c) {
		struct cmd *n = c->next;
		cmd_free(c);
		c = n;
	}
	if (e->ring) {
		clear_decode_queue(e);
		drop_prime(e);
	}
	if (e->sink) {
		sink_drain(e->sink);
		sink_free(e->sink);
	}
	engine_queue_list_free(e->qcopy_uris, e->qcopy_n);
	cache_close(e->cache);
	free(e->cache_path);
	queue_free(e->q);
	gain_free(e->gain);
	ring_free(e->ring);
	if (e->event_fd > 0)
		close(e->event_fd);
	for (int i = 0; i < e->nlisteners; i++)
		close(e->listeners[i]);
	pthread_mutex_destroy(&e->lock);
	pthread_cond_destroy(&e->cond);
	free(e);
}
