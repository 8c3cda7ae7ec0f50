/* cmd_play: `encore play`, headless playback for scripts: resolves what to play, runs the
 * engine until the queue ends (or --duration), reports progress on stderr and, with
 * --json, one event object per line on stdout. It also listens on the control socket,
 * so `encore remote` can steer it. */
#include "api.h"
#include "b64.h"
#include "cli.h"
#include "offline.h"
#include "ctlsock.h"
#include "connect.h"
#include "engine.h"
#include "config.h"
#include "mpris.h"
#include "id.h"
#include "json.h"
#include "outbox.h"
#include "urlenc.h"
#include "xmem.h"
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The tier from the access token's claims, read locally: the cold start must not spend a
 * round trip on /v1/me. The server enforces the tier anyway; this only picks the ladder. */
static bool token_is_premium(struct api *api)
{
	char *tok = api_bearer(api, NULL);
	bool premium = false;
	const char *d1 = tok ? strchr(tok, '.') : NULL;
	const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	if (d2) {
		size_t n;
		unsigned char *p = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &n);
		if (p) {
			yajl_val v = json_parse((char *)p, NULL, 0);
			const char *tier = json_get_str(v, "tier");
			premium = tier && strcmp(tier, "premium") == 0;
			yajl_tree_free(v);
			free(p);
		}
	}
	free(tok);
	return premium;
}

struct uri_list {
	char **v;
	int n, cap;
};

static void add_uri(struct uri_list *l, const char *uri)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = xrealloc(l->v, (size_t)l->cap * sizeof(char *));
	}
	l->v[l->n++] = xstrdup(uri);
}

/* Appends the "uri" of each element of arr (tracks) to l. */
static void add_track_uris(struct uri_list *l, yajl_val arr)
{
	for (size_t i = 0; arr && YAJL_IS_ARRAY(arr) && i < arr->u.array.len; i++) {
		const char *u = json_get_str(arr->u.array.values[i], "uri");
		if (u)
			add_uri(l, u);
	}
}

/* Turns arguments (URIs of tracks, episodes, albums, artists, or a search query) into track URIs. */
/* A search result played from the command line, recorded once the outbox is open. */
struct search_click {
	char *uri, *query;
};

static int resolve(struct cli_ctx *c, struct api *api, char **args, int nargs, struct uri_list *out,
		   struct search_click *click)
{
	struct buf query = BUF_INIT;
	int code = EXIT_OK;
	for (int i = 0; i < nargs && code == EXIT_OK; i++) {
		char type[16], id[ID_LEN + 1];
		if (!uri_parse(args[i], type, sizeof(type), id)) {
			if (strncmp(args[i], "encore:", 7) == 0) {
				cli_error(c, "play: '%s' is not a valid encore URI", args[i]);
				code = EXIT_USAGE;
			}
			if (query.len)
				buf_putc(&query, ' ');
			buf_puts(&query, args[i]);
			continue;
		}
		if (strcmp(type, "track") == 0 || strcmp(type, "episode") == 0) {
			add_uri(out, args[i]);
			continue;
		}
		char *path = NULL;
		if (strcmp(type, "album") == 0)
			path = xasprintf("/v1/albums/%s/tracks?limit=50", id);
		else if (strcmp(type, "artist") == 0)
			path = xasprintf("/v1/artists/%s/top-tracks", id);
		else {
			cli_error(c, "play: cannot play a %s", type);
			code = EXIT_USAGE;
			break;
		}
		struct api_response r;
		int rc = api_get(api, path, &r);
		free(path);
		code = cli_check_response(c, api, rc, &r, args[i]);
		if (code == EXIT_OK) {
			yajl_val v = json_parse(r.body.data ? r.body.data : "", NULL, 0);
			add_track_uris(out, json_get(v, strcmp(type, "album") == 0 ? "items" : "tracks"));
			yajl_tree_free(v);
		}
		api_response_free(&r);
	}
	if (code == EXIT_OK && query.len) {
		struct buf path = BUF_INIT;
		buf_puts(&path, "/v1/search?type=track&limit=1&q=");
		url_encode(&path, query.data);
		struct api_response r;
		int rc = api_get(api, path.data, &r);
		code = cli_check_response(c, api, rc, &r, NULL);
		if (code == EXIT_OK) {
			yajl_val v = json_parse(r.body.data ? r.body.data : "", NULL, 0);
			int before = out->n;
			add_track_uris(out, json_get(json_get(v, "tracks"), "items"));
			yajl_tree_free(v);
			if (out->n == before) {
				cli_error(c, "play: nothing found for '%s'", query.data);
				code = EXIT_NOTFOUND;
			} else {
				/* Playing the top result of a query is a click on that search result. */
				click->uri = xstrdup(out->v[before]);
				click->query = xstrdup(query.data);
			}
		}
		api_response_free(&r);
		buf_free(&path);
	}
	buf_free(&query);
	return code;
}

static void emit(bool json, const struct engine_event *ev, const struct engine_snapshot *s, int64_t t0)
{
	if (!json)
		return;
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "event", ev->type == ENGINE_EV_TRACK_STARTED && ev->first_audio_us == 0 ? "track_changed"
									 : engine_event_name(ev->type));
	jw_kdouble(&w, "t", (double)(mono_ms() - t0) / 1000.0);
	jw_key(&w, "uri");
	jw_str(&w, ev->uri[0] ? ev->uri : NULL);
	jw_kint(&w, "position_ms", ev->position_ms);
	jw_kint(&w, "bitrate_kbps", ev->bitrate_kbps);
	if (ev->type == ENGINE_EV_TRACK_STARTED) {
		if (ev->first_audio_us)
			jw_kdouble(&w, "first_audio_ms", (double)ev->first_audio_us / 1000.0);
		if (ev->handover_us >= 0)
			jw_kdouble(&w, "handover_ms", (double)ev->handover_us / 1000.0);
		if (strcmp(ev->uri, s->uri) == 0) {
			jw_kstr(&w, "title", s->title);
			jw_kstr(&w, "artist", s->artist);
			jw_kint(&w, "duration_ms", s->duration_ms);
		}
	}
	if (ev->type == ENGINE_EV_UNDERRUN)
		jw_kint(&w, "underruns", (long long)s->underruns);
	if (ev->type == ENGINE_EV_ERROR)
		jw_kstr(&w, "message", ev->message);
	if (ev->type == ENGINE_EV_ENDED) {
		jw_kint(&w, "segments_fetched", (long long)s->segments_fetched);
		jw_kint(&w, "connections_reused", (long long)s->connections_reused);
		jw_kint(&w, "connections_opened", (long long)s->connections_opened);
		jw_kint(&w, "bitrate_switches", (long long)s->bitrate_switches);
		jw_kint(&w, "underruns", (long long)s->underruns);
		jw_kint(&w, "tracks_started", (long long)s->tracks_started);
	}
	jw_obj_end(&w);
	char *line = jw_finish(&w);
	printf("%s\n", line);
	fflush(stdout);
	free(line);
}

static void progress(const struct engine_snapshot *s, bool tty)
{
	fprintf(stderr, "%s%s %d:%02d/%d:%02d  %d kbps  buffer %.1f s  %s%s%s%s",
		tty ? "\r\033[K" : "", s->state == ENGINE_PAUSED ? "paused" : "playing",
		s->position_ms / 60000, s->position_ms / 1000 % 60, s->duration_ms / 60000, s->duration_ms / 1000 % 60,
		s->bitrate_kbps, s->buffer_seconds, s->title, s->artist[0] ? " - " : "", s->artist, tty ? "" : "\n");
}

/* Turns engine events and snapshots into outbox events. The engine reports starts,
 * pauses and the queue's end; a track's end is the next one's start. Listening time is
 * the sum of forward position steps; a step backwards, or (on a real-time sink) forwards
 * faster than the clock, is a seek and does not count. */
struct play_tracker {
	struct outbox *ob;
	bool realtime;              /* the sink plays at the audio's pace */
	bool active;
	char uri[64];
	int bitrate, duration_ms, last_pos;
	int64_t ms_played, last_wall, last_checkpoint;
};

static void tracker_add(struct play_tracker *t, const char *type, int64_t ms_played, int64_t position, const char *reason)
{
	struct outbox_fields f = OUTBOX_FIELDS_INIT;
	f.uri = t->uri;
	f.ms_played = ms_played;
	f.bitrate = t->bitrate > 0 ? t->bitrate : -1;
	f.position_ms = position;
	f.reason = reason;
	if (outbox_add(t->ob, type, &f, 0, NULL) != 0)
		fprintf(stderr, "encore: cannot record a %s event\n", type);
}

static void tracker_observe(struct play_tracker *t, const struct engine_snapshot *s)
{
	if (!t->ob || !t->active || strcmp(s->uri, t->uri) != 0 ||
	    (s->state != ENGINE_PLAYING && s->state != ENGINE_PAUSED && s->state != ENGINE_BUFFERING))
		return;
	int64_t now = mono_ms();
	int delta = s->position_ms - t->last_pos;
	int64_t wall = now - t->last_wall;
	if (s->duration_ms > 0)
		t->duration_ms = s->duration_ms;
	if (s->bitrate_kbps > 0)
		t->bitrate = s->bitrate_kbps;
	if (delta < -1000 || (t->realtime && delta > wall + 2000))
		tracker_add(t, "seek", -1, s->position_ms, NULL);
	else if (delta > 0)
		t->ms_played += delta;
	t->last_pos = s->position_ms;
	t->last_wall = now;
	if (t->ms_played - t->last_checkpoint >= 1000) {
		outbox_note_play(t->ob, t->uri, t->bitrate, t->ms_played);
		t->last_checkpoint = t->ms_played;
	}
}

/* How a play ended: the queue ran out (everything played, by the engine's word), the
 * next item started (a natural end or a skip), or the user stopped the program. */
enum play_end_how { END_RAN_OUT, END_NEXT_STARTED, END_STOPPED };

/* Ends the current play. On a natural end the tail after the last observation counts too. */
static void tracker_finish(struct play_tracker *t, enum play_end_how how, const char *reason)
{
	if (!t->ob || !t->active)
		return;
	/* On a faster-than-real-time sink positions jump, so only the real-time case can tell a skip. */
	bool near_end = t->duration_ms > 0 && t->last_pos >= t->duration_ms - 1500;
	bool natural = how == END_RAN_OUT || (how == END_NEXT_STARTED && (near_end || !t->realtime));
	if (natural && t->duration_ms > t->last_pos)
		t->ms_played += t->duration_ms - t->last_pos;
	else if (how == END_NEXT_STARTED && !natural) {
		/* Moved on well before the end on a real-time sink: someone skipped (encore remote next). */
		tracker_add(t, "skip", -1, t->last_pos, NULL);
		reason = "skip";
	}
	tracker_add(t, "play_end", t->ms_played, t->last_pos, reason);
	t->active = false;
}

static void tracker_event(struct play_tracker *t, const struct engine_event *ev, const struct engine_snapshot *s)
{
	if (!t->ob)
		return;
	switch (ev->type) {
	case ENGINE_EV_TRACK_STARTED:
		if (t->active && strcmp(t->uri, ev->uri) != 0)
			tracker_finish(t, END_NEXT_STARTED, "trackdone");
		if (t->active)
			break;
		memset(t->uri, 0, sizeof(t->uri));
		snprintf(t->uri, sizeof(t->uri), "%s", ev->uri);
		t->active = true;
		t->bitrate = ev->bitrate_kbps;
		t->last_pos = ev->position_ms;
		t->ms_played = t->last_checkpoint = 0;
		t->duration_ms = strcmp(s->uri, ev->uri) == 0 ? s->duration_ms : 0;
		t->last_wall = mono_ms();
		tracker_add(t, "play_start", -1, ev->position_ms, NULL);
		break;
	case ENGINE_EV_BITRATE_CHANGED:
		if (t->active && strcmp(t->uri, ev->uri) == 0)
			t->bitrate = ev->bitrate_kbps;
		break;
	case ENGINE_EV_PAUSED:
	case ENGINE_EV_RESUMED:
		if (t->active)
			tracker_add(t, ev->type == ENGINE_EV_PAUSED ? "pause" : "resume", -1, ev->position_ms, NULL);
		break;
	case ENGINE_EV_ENDED:
		tracker_finish(t, END_RAN_OUT, "trackdone");
		break;
	default:
		break;
	}
}

/* Listening events go through the durable outbox; playback works without it. Opened at
 * the first audio: its open and every event sync to disk, which would otherwise compete
 * with the first track's start (the engine keeps events until they are read). */
static void open_outbox(struct cli_ctx *c, struct api *api, struct play_tracker *tracker, const struct search_click *click)
{
	tracker->ob = cli_open_outbox(c);
	if (!tracker->ob)
		return;
	if (click->uri) {
		struct outbox_fields f = OUTBOX_FIELDS_INIT;
		f.uri = click->uri;
		f.position_ms = 0;
		f.context = click->query;
		outbox_add(tracker->ob, "search_click", &f, 0, NULL);
	}
	/* ENCORE_OUTBOX_LINGER_MS: how long events wait to travel in a batch (tests raise it). */
	const char *lg = getenv("ENCORE_OUTBOX_LINGER_MS");
	outbox_start(tracker->ob, api, lg ? atoi(lg) : 2000);
}

/* Connect: this player becomes a device others can see and control; without the
 * server's socket it still plays. Started after the first audio (or the first error):
 * its WebSocket and threads would otherwise compete with the first track for the link
 * and the CPU. */
static struct connect_client *start_connect(struct cli_ctx *c, struct api *api, struct engine *e, const char *device_name)
{
	if (paths_ensure(c->paths, PATHS_DATA) != 0)
		return NULL;
	/* The WebSocket library sizes two zeroed descriptor tables by the soft limit (16 bytes
	 * a descriptor: 320 KB at a limit of 20000). A player holds a few dozen; 1024, the
	 * usual default, leaves plenty. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > 1024) {
		rl.rlim_cur = 1024;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	char *idpath = paths_file(c->paths, PATHS_DATA, "device_id");
	char devid[64], host[64] = "encore", err[256];
	connect_device_id(idpath, devid);
	free(idpath);
	gethostname(host, sizeof(host) - 1);
	struct connect_client_config ccfg = {.api = api, .engine = e, .device_id = devid,
					     .name = device_name ? device_name : host, .type = "computer"};
	struct connect_client *cc = connect_client_start(&ccfg, err, sizeof(err));
	if (!cc)
		fprintf(stderr, "%s: connect unavailable: %s\n", c->prog, err);
	return cc;
}

static void usage(void)
{
	fprintf(stderr, "usage: encore play [QUERY|URI...] [--quality auto|24|96|160|320] [--output alsa[:DEV]|null|null:realtime|wav:FILE]\n"
			"                   [--seek SEC] [--duration SEC] [--prefetch SEC] [--volume N] [--no-normalize]\n"
			"                   [--autoplay] [--no-control] [--offline] [--json] [--device-name NAME] [--no-connect]\n");
}

int cmd_play(struct cli_ctx *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"quality", required_argument, 0, 'q'},
		{"output", required_argument, 0, 'o'},
		{"seek", required_argument, 0, 's'},
		{"duration", required_argument, 0, 'd'},
		{"prefetch", required_argument, 0, 'p'},
		{"volume", required_argument, 0, 'v'},
		{"no-normalize", no_argument, 0, 'N'},
		{"autoplay", no_argument, 0, 'a'},
		{"no-control", no_argument, 0, 'C'},
		{"offline", no_argument, 0, 'F'},
		{"json", no_argument, 0, 'j'},
		{"device-name", required_argument, 0, 'D'},
		{"no-connect", no_argument, 0, 'X'},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	int64_t t0 = mono_ms();
	struct engine_config cfg;
	engine_config_defaults(&cfg);
	cfg.autoplay = false;
	double seek = 0, duration = 0;
	bool json = false, control = true, connect = true;
	const char *device_name = NULL;
	int opt;
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *end = NULL;
		switch (opt) {
		case 'q':
			if (strcmp(optarg, "auto") == 0)
				cfg.quality = 0;
			else {
				cfg.quality = (int)strtol(optarg, &end, 10);
				if (*end || (cfg.quality != 24 && cfg.quality != 96 && cfg.quality != 160 && cfg.quality != 320)) {
					cli_error(c, "play: --quality must be auto, 24, 96, 160 or 320");
					return EXIT_USAGE;
				}
			}
			break;
		case 'o': cfg.output = optarg; break;
		case 's': seek = strtod(optarg, &end); if (*end || seek < 0) { cli_error(c, "play: bad --seek"); return EXIT_USAGE; } break;
		case 'd': duration = strtod(optarg, &end); if (*end || duration <= 0) { cli_error(c, "play: bad --duration"); return EXIT_USAGE; } break;
		case 'p': cfg.prefetch_seconds = strtod(optarg, &end); if (*end || cfg.prefetch_seconds <= 0) { cli_error(c, "play: bad --prefetch"); return EXIT_USAGE; } break;
		case 'v': cfg.volume = (int)strtol(optarg, &end, 10); if (*end || cfg.volume < 0 || cfg.volume > 100) { cli_error(c, "play: --volume wants 0-100"); return EXIT_USAGE; } break;
		case 'N': cfg.normalize = false; break;
		case 'a': cfg.autoplay = true; break;
		case 'C': control = false; break;
		case 'F': cfg.offline_only = true; break;
		case 'j': json = true; break;
		case 'D': device_name = optarg; break;
		case 'X': connect = false; break;
		case 'h': usage(); return EXIT_OK;
		default:
			cli_error(c, "play: unknown option '%s'", argv[optind - 1]);
			usage();
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		cli_error(c, "play: nothing to play (give URIs or a search query)");
		usage();
		return EXIT_USAGE;
	}
	struct session *s = NULL;
	struct api *api = NULL;
	struct engine *e = NULL;
	struct offline *off = NULL;
	struct ctlsock *ctl = NULL;
	struct connect_client *cc = NULL;
	struct mpris *mpris = NULL;
	struct uri_list uris = {0};
	struct play_tracker tracker = {0};
	struct search_click click = {0};
	int code = cli_open_session(c, &s, &api);
	if (code != EXIT_OK)
		return code;
	code = resolve(c, api, argv + optind, argc - optind, &uris, &click);
	if (code != EXIT_OK)
		goto out;
	/* Block the signals before any thread starts, so they all inherit the mask and the
	 * signalfd below is the only place SIGINT/SIGTERM arrive. */
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	cfg.api = api;
	cfg.premium = token_is_premium(api);
	tracker.realtime = !cfg.output || strncmp(cfg.output, "alsa", 4) == 0 || strcmp(cfg.output, "null:realtime") == 0;
	/* The engine opens its cache on its own thread, once the first request is on the wire. */
	char *cache = paths_ensure(c->paths, PATHS_CACHE) == 0 ? paths_file(c->paths, PATHS_CACHE, "cache.db") : NULL;
	cfg.cache_path = cache;
	/* Downloaded tracks play from the offline store (only opened if something was downloaded). */
	off = cli_open_offline(c, false);
	cfg.offline = off;
	char err[256];
	e = engine_new(&cfg, err, sizeof(err));
	free(cache);
	if (!e) {
		cli_error(c, "%s", err);
		code = EXIT_ERR;
		goto out;
	}
	/* Play first: the control socket, and after the first audio the outbox's durable
	 * writes and Connect's WebSocket, come while the audio is on its way or after it. */
	engine_play_from(e, (const char *const *)uris.v, uris.n, 0, (int)(seek * 1000));
	if (control && paths_ensure(c->paths, PATHS_RUNTIME) == 0) {
		char *sock = paths_file(c->paths, PATHS_RUNTIME, "socket");
		ctl = ctlsock_start(e, sock, err, sizeof(err));
		if (!ctl)
			fprintf(stderr, "%s: remote control unavailable: %s\n", c->prog, err);
		free(sock);
	}
	mpris = mpris_new_for_cli(c, e);   /* desktop integration, silent without a session bus */
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	bool tty = isatty(2);
	struct engine_snapshot cur;
	bool started = false, interrupted = false, ended = false, outbox_tried = false;
	int64_t last_progress = 0, deadline = 0;
	int failures = 0;
	struct engine_event evs[32];
	while (!ended) {
		struct pollfd pfd[2] = {{.fd = engine_event_fd(e), .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
		int timeout = 1000;
		if (deadline) {
			int64_t left = deadline - mono_ms();
			if (left <= 0)
				break;
			if (left < timeout)
				timeout = (int)left;
		}
		poll(pfd, 2, timeout);
		/* Stopped by a signal: report what already happened, then stop. */
		if (pfd[1].revents & POLLIN)
			interrupted = true;
		if (pfd[0].revents & POLLIN)
			engine_ack_event(e);
		engine_snapshot(e, &cur);
		tracker_observe(&tracker, &cur);
		int nev;
		while ((nev = engine_take_events(e, evs, 32)) > 0) {
			for (int i = 0; i < nev; i++) {
				const struct engine_event *ev = &evs[i];
				/* The outbox is ready by the time `started` is printed. */
				if (ev->type == ENGINE_EV_TRACK_STARTED && !outbox_tried) {
					outbox_tried = true;
					open_outbox(c, api, &tracker, &click);
				}
				emit(json, ev, &cur, t0);
				tracker_event(&tracker, ev, &cur);
				switch (ev->type) {
				case ENGINE_EV_TRACK_STARTED:
					if (connect && !interrupted) {
						connect = false;
						cc = start_connect(c, api, e, device_name);
					}
					if (!started && duration > 0)
						deadline = mono_ms() + (int64_t)(duration * 1000);
					started = true;
					break;
				case ENGINE_EV_ERROR:
					if (connect && !interrupted) {
						connect = false;
						cc = start_connect(c, api, e, device_name);
					}
					failures++;
					if (!json)
						fprintf(stderr, "%s%s: %s\n", tty ? "\r\033[K" : "", c->prog, ev->message);
					break;
				case ENGINE_EV_ENDED:
					ended = true;
					break;
				default:
					break;
				}
			}
		}
		if (interrupted)
			break;
		if (!json && started && (cur.state == ENGINE_PLAYING || cur.state == ENGINE_PAUSED) &&
		    mono_ms() - last_progress >= (tty ? 1000 : 5000)) {
			progress(&cur, tty);
			last_progress = mono_ms();
		}
	}
	if (tty && !json)
		fputc('\n', stderr);
	if (!ended && !interrupted) {
		/* --duration ran out: report the end like a natural one. */
		struct engine_event ev = {.type = ENGINE_EV_ENDED};
		engine_snapshot(e, &cur);
		snprintf(ev.uri, sizeof(ev.uri), "%s", cur.uri);
		ev.position_ms = cur.position_ms;
		ev.bitrate_kbps = cur.bitrate_kbps;
		emit(json, &ev, &cur, t0);
	}
	close(sfd);
	if (!outbox_tried && click.uri)
		open_outbox(c, api, &tracker, &click);  /* nothing played; the search click still counts */
	engine_snapshot(e, &cur);
	tracker_observe(&tracker, &cur);
	tracker_finish(&tracker, END_STOPPED, interrupted ? "interrupted" : "endplay");
	if (failures > 0 && failures >= uris.n)
		code = EXIT_ERR;
	else if (!started && !interrupted)
		code = EXIT_ERR;
out:
	mpris_free(mpris);
	connect_client_stop(cc);
	ctlsock_stop(ctl);
	engine_free(e);
	offline_free(off);
	outbox_stop(tracker.ob);
	outbox_close(tracker.ob);
	for (int i = 0; i < uris.n; i++)
		free(uris.v[i]);
	free(uris.v);
	free(click.uri);
	free(click.query);
	api_free(api);
	session_free(s);
	return code;
}
