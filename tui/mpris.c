/* mpris: the MPRIS player and track-change notifications on the session bus.
 *
 * One thread owns a private libdbus connection and runs a poll loop over a wake-up
 * eventfd (mpris_free), an engine listener and the bus socket (through libdbus's watch
 * functions, so it is polled for writing only when libdbus has something to write).
 * Registration (Hello, RequestName) and notifications are asynchronous calls answered
 * in the same loop, so no bus, however slow, can hold the thread in a blocking call.
 * Incoming method calls are answered from a fresh engine snapshot; engine changes
 * become PropertiesChanged (and Seeked) signals by diffing the snapshot against the last
 * one published. Nothing here waits on the engine, and nothing the engine does waits on
 * the bus. */
#include "mpris.h"
#include "cli.h"
#include "config.h"
#include "engine.h"
#include "xmem.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MPRIS_NO_TRACK "/org/mpris/MediaPlayer2/TrackList/NoTrack"

const char *mpris_playback_status(int engine_state)
{
	switch (engine_state) {
	case ENGINE_PLAYING:
	case ENGINE_LOADING:   /* about to play: a desktop should show it as playing, not flicker */
	case ENGINE_BUFFERING:
		return "Playing";
	case ENGINE_PAUSED:
		return "Paused";
	default:
		return "Stopped";
	}
}

void mpris_track_id(const char *uri, char *out, size_t outlen)
{
	if (outlen == 0)
		return;
	if (!uri || strncmp(uri, "encore:", 7) != 0 || !uri[7]) {
		snprintf(out, outlen, "%s", MPRIS_NO_TRACK);
		return;
	}
	/* "encore:TYPE:ID" -> "/org/encore/TYPE/ID"; an object path element allows only
	 * [A-Za-z0-9_], so anything else (there should be nothing) becomes '_'. */
	size_t n = (size_t)snprintf(out, outlen, "/org/encore/");
	bool elem_empty = true;
	for (const char *p = uri + 7; *p && n + 1 < outlen; p++) {
		char ch = *p;
		if (ch == ':') {
			if (elem_empty)
				continue;
			ch = '/';
			elem_empty = true;
		} else {
			if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')))
				ch = '_';
			elem_empty = false;
		}
		out[n++] = ch;
	}
	if (n > 0 && out[n - 1] == '/')
		n--;
	if (n >= outlen)
		n = outlen - 1;
	out[n] = 0;
}

static bool can_next(const struct engine_snapshot *s)
{
	return s->queue_position >= 0 && (s->queue_position + 1 < s->queue_length || s->repeat == ENGINE_REPEAT_ALL);
}

unsigned mpris_changed(const struct engine_snapshot *a, const struct engine_snapshot *b)
{
	unsigned m = 0;
	if (strcmp(mpris_playback_status(a->state), mpris_playback_status(b->state)) != 0)
		m |= MPRIS_PROP_STATUS;
	if (strcmp(a->uri, b->uri) != 0 || strcmp(a->title, b->title) != 0 || strcmp(a->artist, b->artist) != 0 ||
	    strcmp(a->album, b->album) != 0 || a->duration_ms != b->duration_ms)
		m |= MPRIS_PROP_METADATA;
	if (a->volume != b->volume)
		m |= MPRIS_PROP_VOLUME;
	if (a->shuffle != b->shuffle)
		m |= MPRIS_PROP_SHUFFLE;
	if (a->repeat != b->repeat)
		m |= MPRIS_PROP_LOOP;
	if (can_next(a) != can_next(b))
		m |= MPRIS_PROP_CAN_NEXT;
	if ((a->uri[0] != 0) != (b->uri[0] != 0))
		m |= MPRIS_PROP_CAN_PREV | MPRIS_PROP_CAN_PAUSE;
	if ((a->queue_length > 0) != (b->queue_length > 0))
		m |= MPRIS_PROP_CAN_PLAY;
	if ((a->duration_ms > 0) != (b->duration_ms > 0))
		m |= MPRIS_PROP_CAN_SEEK;
	return m;
}

struct mpris *mpris_new_for_cli(struct cli_ctx *c, struct engine *e)
{
	struct config *conf = config_new();
	char *path = paths_file(c->paths, PATHS_CONFIG, "config");
	/* Problems in the file are the UI's to report; headless play stays quiet about them. */
	config_load(conf, path);
	free(path);
	struct mpris *m = mpris_new_from_config(e, conf);
	config_free(conf);
	return m;
}

#ifndef ENCORE_HAVE_DBUS

struct mpris *mpris_new(struct engine *e, bool notify)
{
	(void)e;
	(void)notify;
	return NULL;
}

struct mpris *mpris_new_from_config(struct engine *e, const struct config *conf)
{
	(void)e;
	(void)conf;
	return NULL;
}

void mpris_free(struct mpris *m)
{
	(void)m;
}

#else

#include "dbusdl.h"
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MPRIS_PATH "/org/mpris/MediaPlayer2"
#define MPRIS_ROOT "org.mpris.MediaPlayer2"
#define MPRIS_PLAYER "org.mpris.MediaPlayer2.Player"
#define MPRIS_NAME "org.mpris.MediaPlayer2.encore"
#define PROPS_IFACE "org.freedesktop.DBus.Properties"
#define NOTIFY_TIMEOUT_MS 5000
#define MAX_WATCHES 8

struct mpris {
	struct engine *e;
	bool notify;
	int wake;                    /* eventfd: mpris_free asks the thread to leave */
	pthread_t thread;

	/* Owned by the thread. */
	struct dbusdl *dbus;         /* libdbus-1, opened once a bus looks present */
	DBusConnection *conn;
	enum { PHASE_HELLO, PHASE_READY, PHASE_FAILED } phase;
	int name_attempt;            /* RequestName calls made: the plain name, then .instancePID */
	DBusWatch *watches[MAX_WATCHES];
	int nwatches;
	struct engine_snapshot pub;  /* what the bus was last told */
	int64_t pub_ms;              /* when pub was taken (CLOCK_MONOTONIC) */
	bool realtime;               /* the sink plays at the audio's pace (positions follow the clock) */
	char notified_uri[64];       /* the track the last notification was about */
	dbus_uint32_t notify_id;     /* the server's id for it, so the next one replaces it */
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The systemd user bus socket's path if there is one (caller frees), else NULL. */
static char *user_bus_socket(void)
{
	const char *rt = getenv("XDG_RUNTIME_DIR");
	if (!rt || !*rt)
		return NULL;
	char *path = xasprintf("%s/bus", rt);
	struct stat st;
	if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		return path;
	free(path);
	return NULL;
}

/* Whether a session bus may be there, decided without libdbus (so a process without one
 * never loads it). */
static bool bus_present(void)
{
	const char *env = getenv("DBUS_SESSION_BUS_ADDRESS");
	if (env && *env)
		return true;
	char *path = user_bus_socket();
	free(path);
	return path != NULL;
}

/* The session bus address, without libdbus's X11 autolaunch (which would spawn a bus
 * nobody asked for): the environment, else the systemd user bus socket. NULL if none. */
static char *bus_address(const struct dbusdl *D)
{
	const char *env = getenv("DBUS_SESSION_BUS_ADDRESS");
	if (env && *env)
		return xstrdup(env);
	char *path = user_bus_socket();
	char *addr = NULL;
	if (path) {
		char *esc = D->dbus_address_escape_value(path);
		if (esc) {
			addr = xasprintf("unix:path=%s", esc);
			D->dbus_free(esc);
		}
	}
	free(path);
	return addr;
}

/* Variant and dict helpers. libdbus only fails these on out-of-memory, which aborts. */

static void oom_check(dbus_bool_t ok)
{
	if (!ok) {
		fputs("encore: out of memory\n", stderr);
		abort();
	}
}

static void append_variant(const struct dbusdl *D, DBusMessageIter *it, int type, const void *value)
{
	char sig[2] = {(char)type, 0};
	DBusMessageIter v;
	oom_check(D->dbus_message_iter_open_container(it, DBUS_TYPE_VARIANT, sig, &v));
	oom_check(D->dbus_message_iter_append_basic(&v, type, value));
	oom_check(D->dbus_message_iter_close_container(it, &v));
}

static void append_variant_strv(const struct dbusdl *D, DBusMessageIter *it, const char *const *strs, int n)
{
	DBusMessageIter v, a;
	oom_check(D->dbus_message_iter_open_container(it, DBUS_TYPE_VARIANT, "as", &v));
	oom_check(D->dbus_message_iter_open_container(&v, DBUS_TYPE_ARRAY, "s", &a));
	for (int i = 0; i < n; i++)
		oom_check(D->dbus_message_iter_append_basic(&a, DBUS_TYPE_STRING, &strs[i]));
	oom_check(D->dbus_message_iter_close_container(&v, &a));
	oom_check(D->dbus_message_iter_close_container(it, &v));
}

static void dict_entry_open(const struct dbusdl *D, DBusMessageIter *dict, DBusMessageIter *ent, const char *key)
{
	oom_check(D->dbus_message_iter_open_container(dict, DBUS_TYPE_DICT_ENTRY, NULL, ent));
	oom_check(D->dbus_message_iter_append_basic(ent, DBUS_TYPE_STRING, &key));
}

static void dict_basic(const struct dbusdl *D, DBusMessageIter *dict, const char *key, int type, const void *value)
{
	DBusMessageIter ent;
	dict_entry_open(D, dict, &ent, key);
	append_variant(D, &ent, type, value);
	oom_check(D->dbus_message_iter_close_container(dict, &ent));
}

static void dict_str(const struct dbusdl *D, DBusMessageIter *dict, const char *key, const char *s)
{
	dict_basic(D, dict, key, DBUS_TYPE_STRING, &s);
}

/* The Metadata map of the current item, as a variant. */
static void append_metadata(const struct dbusdl *D, DBusMessageIter *it, const struct engine_snapshot *s)
{
	DBusMessageIter v, dict;
	char trackid[160];
	mpris_track_id(s->uri, trackid, sizeof(trackid));
	const char *tid = trackid;
	oom_check(D->dbus_message_iter_open_container(it, DBUS_TYPE_VARIANT, "a{sv}", &v));
	oom_check(D->dbus_message_iter_open_container(&v, DBUS_TYPE_ARRAY, "{sv}", &dict));
	dict_basic(D, &dict, "mpris:trackid", DBUS_TYPE_OBJECT_PATH, &tid);
	if (s->uri[0]) {
		if (s->duration_ms > 0) {
			dbus_int64_t len = (dbus_int64_t)s->duration_ms * 1000;
			dict_basic(D, &dict, "mpris:length", DBUS_TYPE_INT64, &len);
		}
		if (s->title[0])
			dict_str(D, &dict, "xesam:title", s->title);
		if (s->artist[0]) {
			DBusMessageIter ent;
			const char *artist = s->artist;
			dict_entry_open(D, &dict, &ent, "xesam:artist");
			append_variant_strv(D, &ent, &artist, 1);
			oom_check(D->dbus_message_iter_close_container(&dict, &ent));
		}
		if (s->album[0])
			dict_str(D, &dict, "xesam:album", s->album);
		dict_str(D, &dict, "xesam:url", s->uri);
	}
	oom_check(D->dbus_message_iter_close_container(&v, &dict));
	oom_check(D->dbus_message_iter_close_container(it, &v));
}

/* Properties: one table per interface, so Get, GetAll and PropertiesChanged share it. */
enum prop_id {
	P_STATUS, P_LOOP, P_RATE, P_SHUFFLE, P_METADATA, P_VOLUME, P_POSITION, P_MIN_RATE, P_MAX_RATE,
	P_CAN_NEXT, P_CAN_PREV, P_CAN_PLAY, P_CAN_PAUSE, P_CAN_SEEK, P_CAN_CONTROL,
	R_CAN_QUIT, R_CAN_RAISE, R_HAS_TRACKLIST, R_IDENTITY, R_URI_SCHEMES, R_MIME_TYPES,
};

struct prop {
	enum prop_id id;
	const char *name;
	const char *sig;
	unsigned changes;   /* enum mpris_prop bit; 0 = never signalled */
};

static const struct prop player_props[] = {
	{P_STATUS, "PlaybackStatus", "s", MPRIS_PROP_STATUS},
	{P_LOOP, "LoopStatus", "s", MPRIS_PROP_LOOP},
	{P_RATE, "Rate", "d", 0},
	{P_SHUFFLE, "Shuffle", "b", MPRIS_PROP_SHUFFLE},
	{P_METADATA, "Metadata", "a{sv}", MPRIS_PROP_METADATA},
	{P_VOLUME, "Volume", "d", MPRIS_PROP_VOLUME},
	{P_POSITION, "Position", "x", 0},
	{P_MIN_RATE, "MinimumRate", "d", 0},
	{P_MAX_RATE, "MaximumRate", "d", 0},
	{P_CAN_NEXT, "CanGoNext", "b", MPRIS_PROP_CAN_NEXT},
	{P_CAN_PREV, "CanGoPrevious", "b", MPRIS_PROP_CAN_PREV},
	{P_CAN_PLAY, "CanPlay", "b", MPRIS_PROP_CAN_PLAY},
	{P_CAN_PAUSE, "CanPause", "b", MPRIS_PROP_CAN_PAUSE},
	{P_CAN_SEEK, "CanSeek", "b", MPRIS_PROP_CAN_SEEK},
	{P_CAN_CONTROL, "CanControl", "b", 0},
};

static const struct prop root_props[] = {
	{R_CAN_QUIT, "CanQuit", "b", 0},
	{R_CAN_RAISE, "CanRaise", "b", 0},
	{R_HAS_TRACKLIST, "HasTrackList", "b", 0},
	{R_IDENTITY, "Identity", "s", 0},
	{R_URI_SCHEMES, "SupportedUriSchemes", "as", 0},
	{R_MIME_TYPES, "SupportedMimeTypes", "as", 0},
};

#define NPROPS(t) (sizeof(t) / sizeof((t)[0]))

static const char *loop_status(enum engine_repeat r)
{
	return r == ENGINE_REPEAT_ONE ? "Track" : r == ENGINE_REPEAT_ALL ? "Playlist" : "None";
}

static void append_bool(const struct dbusdl *D, DBusMessageIter *it, bool b)
{
	dbus_bool_t v = b;
	append_variant(D, it, DBUS_TYPE_BOOLEAN, &v);
}

static void append_prop(const struct dbusdl *D, DBusMessageIter *it, enum prop_id id, const struct engine_snapshot *s)
{
	const char *str;
	double d;
	dbus_int64_t x;
	switch (id) {
	case P_STATUS:
		str = mpris_playback_status(s->state);
		append_variant(D, it, DBUS_TYPE_STRING, &str);
		break;
	case P_LOOP:
		str = loop_status(s->repeat);
		append_variant(D, it, DBUS_TYPE_STRING, &str);
		break;
	case P_RATE:
	case P_MIN_RATE:
	case P_MAX_RATE:
		d = 1.0;
		append_variant(D, it, DBUS_TYPE_DOUBLE, &d);
		break;
	case P_SHUFFLE: append_bool(D, it, s->shuffle); break;
	case P_METADATA: append_metadata(D, it, s); break;
	case P_VOLUME:
		d = s->volume / 100.0;
		append_variant(D, it, DBUS_TYPE_DOUBLE, &d);
		break;
	case P_POSITION:
		x = (dbus_int64_t)s->position_ms * 1000;
		append_variant(D, it, DBUS_TYPE_INT64, &x);
		break;
	case P_CAN_NEXT: append_bool(D, it, can_next(s)); break;
	case P_CAN_PREV: append_bool(D, it, s->uri[0] != 0); break;
	case P_CAN_PLAY: append_bool(D, it, s->queue_length > 0); break;
	case P_CAN_PAUSE: append_bool(D, it, s->uri[0] != 0); break;
	case P_CAN_SEEK: append_bool(D, it, s->duration_ms > 0); break;
	case P_CAN_CONTROL: append_bool(D, it, true); break;
	case R_CAN_QUIT:
	case R_CAN_RAISE:
	case R_HAS_TRACKLIST:
		append_bool(D, it, false);
		break;
	case R_IDENTITY:
		str = "Encore";
		append_variant(D, it, DBUS_TYPE_STRING, &str);
		break;
	case R_URI_SCHEMES:
	case R_MIME_TYPES:
		append_variant_strv(D, it, NULL, 0);
		break;
	}
}

static const struct prop *find_prop(const char *iface, const char *name, bool *found_iface)
{
	const struct prop *t = NULL;
	size_t n = 0;
	if (strcmp(iface, MPRIS_PLAYER) == 0)
		t = player_props, n = NPROPS(player_props);
	else if (strcmp(iface, MPRIS_ROOT) == 0)
		t = root_props, n = NPROPS(root_props);
	*found_iface = t != NULL;
	for (size_t i = 0; i < n; i++)
		if (!name || strcmp(t[i].name, name) == 0)
			return &t[i];
	return NULL;
}

static void append_all(const struct dbusdl *D, DBusMessageIter *it, const struct prop *t, size_t n, unsigned only, const struct engine_snapshot *s)
{
	DBusMessageIter dict;
	oom_check(D->dbus_message_iter_open_container(it, DBUS_TYPE_ARRAY, "{sv}", &dict));
	for (size_t i = 0; i < n; i++) {
		if (only && !(t[i].changes & only))
			continue;
		DBusMessageIter ent;
		dict_entry_open(D, &dict, &ent, t[i].name);
		append_prop(D, &ent, t[i].id, s);
		oom_check(D->dbus_message_iter_close_container(&dict, &ent));
	}
	oom_check(D->dbus_message_iter_close_container(it, &dict));
}

static void send_and_unref(struct mpris *m, DBusMessage *msg)
{
	const struct dbusdl *D = m->dbus;
	if (!msg)
		return;
	D->dbus_connection_send(m->conn, msg, NULL);
	D->dbus_message_unref(msg);
}

static void emit_properties_changed(struct mpris *m, unsigned mask, const struct engine_snapshot *s)
{
	const struct dbusdl *D = m->dbus;
	DBusMessage *sig = D->dbus_message_new_signal(MPRIS_PATH, PROPS_IFACE, "PropertiesChanged");
	DBusMessageIter it, inval;
	const char *iface = MPRIS_PLAYER;
	D->dbus_message_iter_init_append(sig, &it);
	oom_check(D->dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &iface));
	append_all(D, &it, player_props, NPROPS(player_props), mask, s);
	oom_check(D->dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "s", &inval));
	oom_check(D->dbus_message_iter_close_container(&it, &inval));
	send_and_unref(m, sig);
}

static void emit_seeked(struct mpris *m, int position_ms)
{
	const struct dbusdl *D = m->dbus;
	DBusMessage *sig = D->dbus_message_new_signal(MPRIS_PATH, MPRIS_PLAYER, "Seeked");
	dbus_int64_t x = (dbus_int64_t)position_ms * 1000;
	oom_check(D->dbus_message_append_args(sig, DBUS_TYPE_INT64, &x, DBUS_TYPE_INVALID));
	send_and_unref(m, sig);
}

/* Notifications: body text may be markup on some servers, so escape it. */
static void markup_escape(const char *in, char *out, size_t outlen)
{
	size_t n = 0;
	for (; *in && n + 6 < outlen; in++) {
		const char *rep = *in == '&' ? "&amp;" : *in == '<' ? "&lt;" : *in == '>' ? "&gt;" : NULL;
		if (rep) {
			memcpy(out + n, rep, strlen(rep));
			n += strlen(rep);
		} else {
			out[n++] = *in;
		}
	}
	out[n] = 0;
}

static void on_notify_reply(DBusPendingCall *pc, void *data)
{
	struct mpris *m = data;
	const struct dbusdl *D = m->dbus;
	DBusMessage *r = D->dbus_pending_call_steal_reply(pc);
	dbus_uint32_t id = 0;
	/* No notification server answers with an error; then every one is new (id 0). */
	if (r && D->dbus_message_get_type(r) == DBUS_MESSAGE_TYPE_METHOD_RETURN &&
	    D->dbus_message_get_args(r, NULL, DBUS_TYPE_UINT32, &id, DBUS_TYPE_INVALID))
		m->notify_id = id;
	if (r)
		D->dbus_message_unref(r);
}

static void send_notification(struct mpris *m, const struct engine_snapshot *s)
{
	const struct dbusdl *D = m->dbus;
	DBusMessage *msg = D->dbus_message_new_method_call("org.freedesktop.Notifications", "/org/freedesktop/Notifications",
							"org.freedesktop.Notifications", "Notify");
	char body[600], artist[256], album[256];
	markup_escape(s->artist, artist, sizeof(artist));
	markup_escape(s->album, album, sizeof(album));
	snprintf(body, sizeof(body), "%s%s%s", artist, artist[0] && album[0] ? " \xe2\x80\x94 " : "", album);
	const char *app = "Encore", *icon = "audio-x-generic", *summary = s->title, *bodyp = body;
	dbus_int32_t expire = -1;
	DBusMessageIter it, arr, dict;
	D->dbus_message_iter_init_append(msg, &it);
	oom_check(D->dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &app));
	oom_check(D->dbus_message_iter_append_basic(&it, DBUS_TYPE_UINT32, &m->notify_id));
	oom_check(D->dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &icon));
	oom_check(D->dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &summary));
	oom_check(D->dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &bodyp));
	oom_check(D->dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "s", &arr));
	oom_check(D->dbus_message_iter_close_container(&it, &arr));
	oom_check(D->dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{sv}", &dict));
	/* Transient: a track change is news now, not something to keep in a history. */
	dbus_bool_t transient = TRUE;
	dict_basic(D, &dict, "transient", DBUS_TYPE_BOOLEAN, &transient);
	dict_str(D, &dict, "category", "x-encore.track");
	oom_check(D->dbus_message_iter_close_container(&it, &dict));
	oom_check(D->dbus_message_iter_append_basic(&it, DBUS_TYPE_INT32, &expire));
	DBusPendingCall *pc = NULL;
	/* The connection keeps the pending call until its reply (or the connection's end). */
	if (D->dbus_connection_send_with_reply(m->conn, msg, &pc, NOTIFY_TIMEOUT_MS) && pc) {
		D->dbus_pending_call_set_notify(pc, on_notify_reply, m, NULL);
		D->dbus_pending_call_unref(pc);
	}
	D->dbus_message_unref(msg);
}

static const char introspection[] =
	DBUS_INTROSPECT_1_0_XML_DOCTYPE_DECL_NODE
	"<node>\n"
	" <interface name=\"org.freedesktop.DBus.Introspectable\">\n"
	"  <method name=\"Introspect\"><arg name=\"xml\" type=\"s\" direction=\"out\"/></method>\n"
	" </interface>\n"
	" <interface name=\"org.freedesktop.DBus.Properties\">\n"
	"  <method name=\"Get\"><arg name=\"interface\" type=\"s\" direction=\"in\"/>"
	"<arg name=\"name\" type=\"s\" direction=\"in\"/><arg name=\"value\" type=\"v\" direction=\"out\"/></method>\n"
	"  <method name=\"GetAll\"><arg name=\"interface\" type=\"s\" direction=\"in\"/>"
	"<arg name=\"props\" type=\"a{sv}\" direction=\"out\"/></method>\n"
	"  <method name=\"Set\"><arg name=\"interface\" type=\"s\" direction=\"in\"/>"
	"<arg name=\"name\" type=\"s\" direction=\"in\"/><arg name=\"value\" type=\"v\" direction=\"in\"/></method>\n"
	"  <signal name=\"PropertiesChanged\"><arg name=\"interface\" type=\"s\"/>"
	"<arg name=\"changed\" type=\"a{sv}\"/><arg name=\"invalidated\" type=\"as\"/></signal>\n"
	" </interface>\n"
	" <interface name=\"org.mpris.MediaPlayer2\">\n"
	"  <method name=\"Raise\"/>\n"
	"  <method name=\"Quit\"/>\n"
	"  <property name=\"CanQuit\" type=\"b\" access=\"read\"/>\n"
	"  <property name=\"CanRaise\" type=\"b\" access=\"read\"/>\n"
	"  <property name=\"HasTrackList\" type=\"b\" access=\"read\"/>\n"
	"  <property name=\"Identity\" type=\"s\" access=\"read\"/>\n"
	"  <property name=\"SupportedUriSchemes\" type=\"as\" access=\"read\"/>\n"
	"  <property name=\"SupportedMimeTypes\" type=\"as\" access=\"read\"/>\n"
	" </interface>\n"
	" <interface name=\"org.mpris.MediaPlayer2.Player\">\n"
	"  <method name=\"Next\"/>\n"
	"  <method name=\"Previous\"/>\n"
	"  <method name=\"Pause\"/>\n"
	"  <method name=\"PlayPause\"/>\n"
	"  <method name=\"Stop\"/>\n"
	"  <method name=\"Play\"/>\n"
	"  <method name=\"Seek\"><arg name=\"Offset\" type=\"x\" direction=\"in\"/></method>\n"
	"  <method name=\"SetPosition\"><arg name=\"TrackId\" type=\"o\" direction=\"in\"/>"
	"<arg name=\"Position\" type=\"x\" direction=\"in\"/></method>\n"
	"  <method name=\"OpenUri\"><arg name=\"Uri\" type=\"s\" direction=\"in\"/></method>\n"
	"  <signal name=\"Seeked\"><arg name=\"Position\" type=\"x\"/></signal>\n"
	"  <property name=\"PlaybackStatus\" type=\"s\" access=\"read\"/>\n"
	"  <property name=\"LoopStatus\" type=\"s\" access=\"readwrite\"/>\n"
	"  <property name=\"Rate\" type=\"d\" access=\"readwrite\"/>\n"
	"  <property name=\"Shuffle\" type=\"b\" access=\"readwrite\"/>\n"
	"  <property name=\"Metadata\" type=\"a{sv}\" access=\"read\"/>\n"
	"  <property name=\"Volume\" type=\"d\" access=\"readwrite\"/>\n"
	"  <property name=\"Position\" type=\"x\" access=\"read\"/>\n"
	"  <property name=\"MinimumRate\" type=\"d\" access=\"read\"/>\n"
	"  <property name=\"MaximumRate\" type=\"d\" access=\"read\"/>\n"
	"  <property name=\"CanGoNext\" type=\"b\" access=\"read\"/>\n"
	"  <property name=\"CanGoPrevious\" type=\"b\" access=\"read\"/>\n"
	"  <property name=\"CanPlay\" type=\"b\" access=\"read\"/>\n"
	"  <property name=\"CanPause\" type=\"b\" access=\"read\"/>\n"
	"  <property name=\"CanSeek\" type=\"b\" access=\"read\"/>\n"
	"  <property name=\"CanControl\" type=\"b\" access=\"read\"/>\n"
	" </interface>\n"
	"</node>\n";

/* Properties.Set: the writable ones are Volume, Shuffle, LoopStatus and Rate (fixed 1.0). */
static DBusMessage *set_property(struct mpris *m, DBusMessage *msg)
{
	const struct dbusdl *D = m->dbus;
	DBusMessageIter it, v;
	const char *iface = NULL, *name = NULL;
	if (!D->dbus_message_iter_init(msg, &it) || D->dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_STRING)
		goto bad;
	D->dbus_message_iter_get_basic(&it, &iface);
	if (!D->dbus_message_iter_next(&it) || D->dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_STRING)
		goto bad;
	D->dbus_message_iter_get_basic(&it, &name);
	if (!D->dbus_message_iter_next(&it) || D->dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_VARIANT)
		goto bad;
	D->dbus_message_iter_recurse(&it, &v);
	int type = D->dbus_message_iter_get_arg_type(&v);
	bool found_iface;
	const struct prop *p = find_prop(iface, name, &found_iface);
	if (!p)
		return D->dbus_message_new_error_printf(msg, DBUS_ERROR_UNKNOWN_PROPERTY, "no property %s.%s", iface, name);
	if (p->id == P_VOLUME && type == DBUS_TYPE_DOUBLE) {
		double d;
		D->dbus_message_iter_get_basic(&v, &d);
		if (!isfinite(d))
			goto bad;
		int vol = (int)lround((d < 0 ? 0 : d > 1 ? 1 : d) * 100);
		engine_set_volume(m->e, vol, false);
	} else if (p->id == P_SHUFFLE && type == DBUS_TYPE_BOOLEAN) {
		dbus_bool_t b;
		D->dbus_message_iter_get_basic(&v, &b);
		engine_set_shuffle(m->e, b);
	} else if (p->id == P_LOOP && type == DBUS_TYPE_STRING) {
		const char *s;
		D->dbus_message_iter_get_basic(&v, &s);
		if (strcmp(s, "None") == 0)
			engine_set_repeat(m->e, ENGINE_REPEAT_OFF);
		else if (strcmp(s, "Track") == 0)
			engine_set_repeat(m->e, ENGINE_REPEAT_ONE);
		else if (strcmp(s, "Playlist") == 0)
			engine_set_repeat(m->e, ENGINE_REPEAT_ALL);
		else
			goto bad;
	} else if (p->id == P_RATE && type == DBUS_TYPE_DOUBLE) {
		/* Only 1.0 is supported (Minimum = Maximum = 1.0); the spec says ignore others. */
	} else if (p->id == P_VOLUME || p->id == P_SHUFFLE || p->id == P_LOOP || p->id == P_RATE) {
		goto bad;
	} else {
		return D->dbus_message_new_error_printf(msg, DBUS_ERROR_PROPERTY_READ_ONLY, "%s is read-only", name);
	}
	return D->dbus_message_new_method_return(msg);
bad:
	return D->dbus_message_new_error(msg, DBUS_ERROR_INVALID_ARGS, "Set wants (interface, name, value of the property's type)");
}

static DBusMessage *get_property(struct mpris *m, DBusMessage *msg, bool all)
{
	const struct dbusdl *D = m->dbus;
	const char *iface = NULL, *name = NULL;
	DBusError err;
	D->dbus_error_init(&err);
	bool ok = all ? D->dbus_message_get_args(msg, &err, DBUS_TYPE_STRING, &iface, DBUS_TYPE_INVALID)
		      : D->dbus_message_get_args(msg, &err, DBUS_TYPE_STRING, &iface, DBUS_TYPE_STRING, &name, DBUS_TYPE_INVALID);
	if (!ok) {
		DBusMessage *r = D->dbus_message_new_error(msg, DBUS_ERROR_INVALID_ARGS, err.message);
		D->dbus_error_free(&err);
		return r;
	}
	struct engine_snapshot s;
	engine_snapshot(m->e, &s);
	DBusMessage *r;
	DBusMessageIter it;
	bool found_iface;
	if (all) {
		r = D->dbus_message_new_method_return(msg);
		D->dbus_message_iter_init_append(r, &it);
		if (strcmp(iface, MPRIS_PLAYER) == 0)
			append_all(D, &it, player_props, NPROPS(player_props), 0, &s);
		else if (strcmp(iface, MPRIS_ROOT) == 0)
			append_all(D, &it, root_props, NPROPS(root_props), 0, &s);
		else
			append_all(D, &it, NULL, 0, 0, &s);   /* an interface without properties: empty */
		return r;
	}
	const struct prop *p = find_prop(iface, name, &found_iface);
	if (!p)
		return D->dbus_message_new_error_printf(msg, found_iface ? DBUS_ERROR_UNKNOWN_PROPERTY : DBUS_ERROR_UNKNOWN_INTERFACE,
						     "no property %s.%s", iface, name);
	r = D->dbus_message_new_method_return(msg);
	D->dbus_message_iter_init_append(r, &it);
	append_prop(D, &it, p->id, &s);
	return r;
}

static DBusMessage *player_method(struct mpris *m, DBusMessage *msg, const char *member)
{
	const struct dbusdl *D = m->dbus;
	struct engine_snapshot s;
	if (strcmp(member, "Play") == 0) {
		engine_resume(m->e);
	} else if (strcmp(member, "Pause") == 0) {
		engine_pause(m->e);
	} else if (strcmp(member, "PlayPause") == 0) {
		engine_toggle(m->e);
	} else if (strcmp(member, "Stop") == 0) {
		engine_stop(m->e);
	} else if (strcmp(member, "Next") == 0) {
		engine_next(m->e);
	} else if (strcmp(member, "Previous") == 0) {
		engine_prev(m->e);
	} else if (strcmp(member, "Seek") == 0) {
		dbus_int64_t off;
		if (!D->dbus_message_get_args(msg, NULL, DBUS_TYPE_INT64, &off, DBUS_TYPE_INVALID))
			return D->dbus_message_new_error(msg, DBUS_ERROR_INVALID_ARGS, "Seek wants an offset in microseconds (x)");
		engine_snapshot(m->e, &s);
		int64_t target = (int64_t)s.position_ms + off / 1000;
		if (s.duration_ms > 0 && target >= s.duration_ms)
			engine_next(m->e);   /* the spec: seeking past the end acts like Next */
		else
			engine_seek(m->e, (int)(target < 0 ? 0 : target), false);
	} else if (strcmp(member, "SetPosition") == 0) {
		const char *tid;
		dbus_int64_t pos;
		if (!D->dbus_message_get_args(msg, NULL, DBUS_TYPE_OBJECT_PATH, &tid, DBUS_TYPE_INT64, &pos, DBUS_TYPE_INVALID))
			return D->dbus_message_new_error(msg, DBUS_ERROR_INVALID_ARGS, "SetPosition wants (o track id, x position)");
		engine_snapshot(m->e, &s);
		char cur[160];
		mpris_track_id(s.uri, cur, sizeof(cur));
		/* A stale track id or an out-of-range position is ignored, as the spec asks. */
		if (strcmp(tid, cur) == 0 && pos >= 0 && (s.duration_ms <= 0 || pos / 1000 <= s.duration_ms))
			engine_seek(m->e, (int)(pos / 1000), false);
	} else if (strcmp(member, "OpenUri") == 0) {
		const char *uri;
		if (!D->dbus_message_get_args(msg, NULL, DBUS_TYPE_STRING, &uri, DBUS_TYPE_INVALID))
			return D->dbus_message_new_error(msg, DBUS_ERROR_INVALID_ARGS, "OpenUri wants a string");
		if (engine_play(m->e, &uri, 1) != 0)
			return D->dbus_message_new_error(msg, DBUS_ERROR_INVALID_ARGS, "only encore:track: and encore:episode: URIs play");
	} else {
		return NULL;
	}
	return D->dbus_message_new_method_return(msg);
}

static DBusHandlerResult on_message(DBusConnection *conn, DBusMessage *msg, void *data)
{
	struct mpris *m = data;
	const struct dbusdl *D = m->dbus;
	(void)conn;
	if (D->dbus_message_get_type(msg) != DBUS_MESSAGE_TYPE_METHOD_CALL)
		return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
	const char *iface = D->dbus_message_get_interface(msg);
	const char *member = D->dbus_message_get_member(msg);
	DBusMessage *reply = NULL;
	if (!member)
		return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
	if ((!iface || strcmp(iface, "org.freedesktop.DBus.Introspectable") == 0) && strcmp(member, "Introspect") == 0) {
		const char *xml = introspection;
		reply = D->dbus_message_new_method_return(msg);
		oom_check(D->dbus_message_append_args(reply, DBUS_TYPE_STRING, &xml, DBUS_TYPE_INVALID));
	} else if ((!iface || strcmp(iface, PROPS_IFACE) == 0) && strcmp(member, "Get") == 0) {
		reply = get_property(m, msg, false);
	} else if ((!iface || strcmp(iface, PROPS_IFACE) == 0) && strcmp(member, "GetAll") == 0) {
		reply = get_property(m, msg, true);
	} else if ((!iface || strcmp(iface, PROPS_IFACE) == 0) && strcmp(member, "Set") == 0) {
		reply = set_property(m, msg);
	} else if ((!iface || strcmp(iface, MPRIS_ROOT) == 0) && (strcmp(member, "Raise") == 0 || strcmp(member, "Quit") == 0)) {
		/* CanRaise and CanQuit are false: a terminal program has no window to raise and
		 * quitting belongs to the user at the terminal. */
		reply = D->dbus_message_new_method_return(msg);
	} else if (!iface || strcmp(iface, MPRIS_PLAYER) == 0) {
		reply = player_method(m, msg, member);
	}
	if (!reply)
		return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
	send_and_unref(m, reply);
	return DBUS_HANDLER_RESULT_HANDLED;
}

/* Tells the bus what changed since the last snapshot published. */
static void publish(struct mpris *m, const struct engine_snapshot *s)
{
	int64_t now = mono_ms();
	unsigned mask = mpris_changed(&m->pub, s);
	if (mask)
		emit_properties_changed(m, mask, s);
	/* A jump of the position the clock does not explain is a seek (from here, the UI,
	 * `encore remote` or Connect): clients extrapolate Position, so they must hear of it.
	 * Faster-than-real-time sinks move without the clock; only a paused jump counts there. */
	if (strcmp(s->uri, m->pub.uri) == 0 && s->uri[0]) {
		bool was_playing = m->pub.state == ENGINE_PLAYING, playing = s->state == ENGINE_PLAYING;
		int64_t expected = m->pub.position_ms + (was_playing && playing ? now - m->pub_ms : 0);
		int64_t off = s->position_ms - expected;
		bool comparable = (playing && was_playing && m->realtime) || s->state == ENGINE_PAUSED;
		if (comparable && (off > 1500 || off < -1500))
			emit_seeked(m, s->position_ms);
	}
	if (m->notify && s->state == ENGINE_PLAYING && s->uri[0] && s->title[0] && strcmp(s->uri, m->notified_uri) != 0) {
		snprintf(m->notified_uri, sizeof(m->notified_uri), "%s", s->uri);
		send_notification(m, s);
	}
	m->pub = *s;
	m->pub_ms = now;
}

/* Registration runs through the same poll loop as everything else (Hello, then
 * RequestName, as asynchronous calls) rather than libdbus's blocking helpers, so a bus
 * that accepts the connection and then hangs can never hold up mpris_free. */
static void request_name(struct mpris *m);

static void on_name_reply(DBusPendingCall *pc, void *data)
{
	struct mpris *m = data;
	const struct dbusdl *D = m->dbus;
	DBusMessage *r = D->dbus_pending_call_steal_reply(pc);
	dbus_uint32_t res = 0;
	bool ok = r && D->dbus_message_get_type(r) == DBUS_MESSAGE_TYPE_METHOD_RETURN &&
		  D->dbus_message_get_args(r, NULL, DBUS_TYPE_UINT32, &res, DBUS_TYPE_INVALID);
	if (r)
		D->dbus_message_unref(r);
	if (ok && (res == DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER || res == DBUS_REQUEST_NAME_REPLY_ALREADY_OWNER))
		m->phase = PHASE_READY;
	else if (ok && m->name_attempt == 1)
		request_name(m);   /* another player has the name: take the per-instance one */
	else
		m->phase = PHASE_FAILED;
}

/* Asks for the well-known name, or on the second attempt a unique one (the spec's
 * "org.mpris.MediaPlayer2.encore.instancePID"). */
static void request_name(struct mpris *m)
{
	const struct dbusdl *D = m->dbus;
	char name[128];
	if (m->name_attempt++ == 0)
		snprintf(name, sizeof(name), "%s", MPRIS_NAME);
	else
		snprintf(name, sizeof(name), "%s.instance%ld", MPRIS_NAME, (long)getpid());
	const char *np = name;
	dbus_uint32_t flags = DBUS_NAME_FLAG_DO_NOT_QUEUE;
	DBusMessage *msg = D->dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS, DBUS_INTERFACE_DBUS, "RequestName");
	oom_check(D->dbus_message_append_args(msg, DBUS_TYPE_STRING, &np, DBUS_TYPE_UINT32, &flags, DBUS_TYPE_INVALID));
	DBusPendingCall *pc = NULL;
	if (D->dbus_connection_send_with_reply(m->conn, msg, &pc, DBUS_TIMEOUT_USE_DEFAULT) && pc) {
		D->dbus_pending_call_set_notify(pc, on_name_reply, m, NULL);
		D->dbus_pending_call_unref(pc);
	} else {
		m->phase = PHASE_FAILED;
	}
	D->dbus_message_unref(msg);
}

static void on_hello_reply(DBusPendingCall *pc, void *data)
{
	struct mpris *m = data;
	const struct dbusdl *D = m->dbus;
	DBusMessage *r = D->dbus_pending_call_steal_reply(pc);
	const char *unique = NULL;
	if (r && D->dbus_message_get_type(r) == DBUS_MESSAGE_TYPE_METHOD_RETURN &&
	    D->dbus_message_get_args(r, NULL, DBUS_TYPE_STRING, &unique, DBUS_TYPE_INVALID) &&
	    D->dbus_bus_set_unique_name(m->conn, unique))
		request_name(m);
	else
		m->phase = PHASE_FAILED;
	if (r)
		D->dbus_message_unref(r);
}

/* libdbus tells us which fds it wants watched and for what; the poll loop asks. */
static dbus_bool_t add_watch(DBusWatch *w, void *data)
{
	struct mpris *m = data;
	if (m->nwatches == MAX_WATCHES)
		return FALSE;
	m->watches[m->nwatches++] = w;
	return TRUE;
}

static void remove_watch(DBusWatch *w, void *data)
{
	struct mpris *m = data;
	for (int i = 0; i < m->nwatches; i++)
		if (m->watches[i] == w) {
			m->watches[i] = m->watches[--m->nwatches];
			break;
		}
}

static bool has_watch(const struct mpris *m, const DBusWatch *w)
{
	for (int i = 0; i < m->nwatches; i++)
		if (m->watches[i] == w)
			return true;
	return false;
}

/* Opens the connection and starts registration; nothing here waits for the bus. NULL
 * (silently) when there is no session bus to talk to. */
static DBusConnection *bus_connect(struct mpris *m)
{
	const struct dbusdl *D = m->dbus;
	char *addr = bus_address(D);
	if (!addr)
		return NULL;
	DBusError err;
	D->dbus_error_init(&err);
	DBusConnection *conn = D->dbus_connection_open_private(addr, &err);
	free(addr);
	D->dbus_error_free(&err);
	if (!conn)
		return NULL;
	m->conn = conn;
	/* The default would exit the whole program when the bus goes away. */
	D->dbus_connection_set_exit_on_disconnect(conn, FALSE);
	static const DBusObjectPathVTable vtable = {.message_function = on_message};
	DBusMessage *hello = D->dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS, DBUS_INTERFACE_DBUS, "Hello");
	DBusPendingCall *pc = NULL;
	bool ok = D->dbus_connection_set_watch_functions(conn, add_watch, remove_watch, NULL, m, NULL) &&
		  D->dbus_connection_register_object_path(conn, MPRIS_PATH, &vtable, m) &&
		  D->dbus_connection_send_with_reply(conn, hello, &pc, DBUS_TIMEOUT_USE_DEFAULT) && pc;
	D->dbus_message_unref(hello);
	if (ok) {
		D->dbus_pending_call_set_notify(pc, on_hello_reply, m, NULL);
		D->dbus_pending_call_unref(pc);
		return conn;
	}
	if (pc)
		D->dbus_pending_call_unref(pc);
	D->dbus_connection_close(conn);
	D->dbus_connection_unref(conn);
	m->conn = NULL;
	return NULL;
}

static void *mpris_main(void *arg)
{
	struct mpris *m = arg;
	if (!bus_present())
		return NULL;
	char err[200];
	m->dbus = dbusdl_open(err, sizeof(err));
	if (!m->dbus)
		return NULL;   /* no libdbus-1 installed: no desktop integration, silently */
	const struct dbusdl *D = m->dbus;
	if (!bus_connect(m)) {
		dbusdl_close(m->dbus);
		m->dbus = NULL;
		return NULL;
	}
	int listener = engine_add_listener(m->e);
	if (listener < 0)
		goto out;
	engine_snapshot(m->e, &m->pub);
	m->pub_ms = mono_ms();
	m->realtime = strcmp(m->pub.output, "null") != 0 && strncmp(m->pub.output, "wav:", 4) != 0;
	bool announced = false;
	for (;;) {
		while (D->dbus_connection_dispatch(m->conn) == DBUS_DISPATCH_DATA_REMAINS)
			;
		/* The bus went away or refused us: desktop integration ends, playback goes on. */
		if (!D->dbus_connection_get_is_connected(m->conn) || m->phase == PHASE_FAILED)
			break;
		if (m->phase == PHASE_READY && !announced) {
			announced = true;
			struct engine_snapshot s;
			engine_snapshot(m->e, &s);
			publish(m, &s);   /* a track already playing gets its notification too */
		}
		struct pollfd pfd[2 + MAX_WATCHES];
		DBusWatch *polled[MAX_WATCHES];
		int n = 0;
		pfd[n++] = (struct pollfd){.fd = m->wake, .events = POLLIN};
		pfd[n++] = (struct pollfd){.fd = listener, .events = POLLIN};
		int nw = 0;
		for (int i = 0; i < m->nwatches; i++) {
			DBusWatch *w = m->watches[i];
			if (!D->dbus_watch_get_enabled(w))
				continue;
			unsigned fl = D->dbus_watch_get_flags(w);
			polled[nw++] = w;
			pfd[n++] = (struct pollfd){.fd = D->dbus_watch_get_unix_fd(w),
						   .events = (short)((fl & DBUS_WATCH_READABLE ? POLLIN : 0) |
								     (fl & DBUS_WATCH_WRITABLE ? POLLOUT : 0))};
		}
		if (poll(pfd, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[0].revents)
			break;
		if (pfd[1].revents & POLLIN) {
			uint64_t v;
			ssize_t r = read(listener, &v, sizeof(v));
			(void)r;
			struct engine_snapshot s;
			engine_snapshot(m->e, &s);
			if (m->phase == PHASE_READY)
				publish(m, &s);
		}
		for (int i = 0; i < nw; i++) {
			short re = pfd[2 + i].revents;
			/* Handling one watch may remove another; only handle those still there. */
			if (!re || !has_watch(m, polled[i]))
				continue;
			unsigned cond = (re & POLLIN ? DBUS_WATCH_READABLE : 0) | (re & POLLOUT ? DBUS_WATCH_WRITABLE : 0) |
					(re & POLLHUP ? DBUS_WATCH_HANGUP : 0) | (re & (POLLERR | POLLNVAL) ? DBUS_WATCH_ERROR : 0);
			D->dbus_watch_handle(polled[i], cond);
		}
	}
out:
	if (listener >= 0)
		engine_remove_listener(m->e, listener);
	D->dbus_connection_close(m->conn);
	D->dbus_connection_unref(m->conn);
	m->conn = NULL;
	dbusdl_close(m->dbus);
	m->dbus = NULL;
	return NULL;
}

struct mpris *mpris_new(struct engine *e, bool notify)
{
	struct mpris *m = xcalloc(1, sizeof(*m));
	m->e = e;
	m->notify = notify;
	m->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (m->wake < 0)
		goto fail;
	if (pthread_create(&m->thread, NULL, mpris_main, m) != 0)
		goto fail;
	return m;
fail:
	if (m->wake >= 0)
		close(m->wake);
	free(m);
	return NULL;
}

struct mpris *mpris_new_from_config(struct engine *e, const struct config *conf)
{
	if (conf && !conf->mpris)
		return NULL;
	return mpris_new(e, conf && conf->notify);
}

void mpris_free(struct mpris *m)
{
	if (!m)
		return;
	uint64_t one = 1;
	ssize_t w = write(m->wake, &one, sizeof(one));
	(void)w;
	pthread_join(m->thread, NULL);
	close(m->wake);
	free(m);
}

#endif
