/* tui_int: what tui.c shares with the view files (tui_home.c, tui_playlists.c,
 * tui_devices.c, tui_downloads.c): the UI's state, and the helpers for lists, drawing and
 * the status line. Internal to the encore binary; all of it runs on the UI thread. */
#ifndef ENCORE_TUI_INT_H
#define ENCORE_TUI_INT_H
#ifndef NCURSES_WIDECHAR
#define NCURSES_WIDECHAR 1
#endif
#include "cli.h"
#include "config.h"
#include "connect.h"
#include "downloader.h"
#include "engine.h"
#include "fetcher.h"
#include "items.h"
#include "keymap.h"
#include "offline.h"
#include "plwatch.h"
#include <curses.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct jw;

/* Views in sidebar order (the number keys 1-8 follow it); a view stays out of the
 * sidebar while `available` is false. */
enum view {
	VIEW_SEARCH, VIEW_LIBRARY, VIEW_QUEUE, VIEW_NOW,
	VIEW_HOME, VIEW_PLAYLISTS, VIEW_DEVICES, VIEW_DOWNLOADS, VIEW_HELP,
	VIEW_COUNT
};


/* What a fetch result is for; slots supersede unstarted requests of the same kind. */
enum fetch_kind {
	F_SUGGEST, F_SEARCH, F_LIB_TRACKS, F_LIB_ARTISTS, F_LIB_ALBUMS, F_META, F_FEATURES,
	F_CONTEXT_ALBUM, F_CONTEXT_ARTIST, F_SAVE,
	F_HOME_DISCOVER, F_HOME_MIXES, F_HOME_RADAR, F_HOME_TRENDING,
	F_PL_LIST, F_PL_OPEN, F_PL_POLL, F_PL_EDIT, F_PL_ADD,
	F_DEVICES, F_TRANSFER,
};

#define HOME_PARTS 4
/* An open playlist follows other clients' edits through WebSocket push (plwatch.c);
 * while the push subscription is not live (socket down, refused) its snapshot is polled
 * this often instead (cheap: an empty `changes?since=` answer). The Devices view re-reads
 * the device list likewise. */
#define PL_POLL_MS 1500
/* Rows of an open playlist the view holds: GET /v1/playlists/{id} carries the first 100. */
#define PL_WINDOW 100
#define DEVICES_POLL_MS 3000

#define SEARCH_DEBOUNCE_MS 150
#define TICK_MS 250
#define NOTICE_MS 5000
#define SIDEBAR_W 16
#define SEEK_STEP_MS 5000
#define VOLUME_STEP 5

struct listview {
	struct items items;
	int sel, top;
};

struct meta {
	char uri[64];
	char *title, *sub;
	int duration_ms;
};

struct tui {
	struct cli_ctx *cli;
	struct api *api;
	char me[64];                 /* the signed-in user */
	struct engine *engine;
	struct mpris *mpris;         /* desktop integration; NULL when off */
	struct ctlsock *ctl;         /* `encore remote` and scripts; NULL if another client holds it */
	struct fetcher *fetcher;
	struct keymap *keymap;
	struct config *config;
	struct engine_snapshot snap;
	char cfg_path[512];

	enum view view;
	bool focus_sidebar;
	int sidebar_sel;
	bool quit, dirty, color;

	/* Search */
	char query[256];
	bool typing;
	struct items suggestions, results;
	struct listview search;
	uint64_t gen_suggest, gen_search;
	bool search_loading;
	char search_error[512];

	/* Library */
	struct listview library;
	struct items lib_parts[3];
	int lib_pending;
	bool lib_loaded;
	char lib_note[400];

	/* Queue */
	struct listview queue;
	char **queue_uris;
	int queue_n, queue_cur;
	struct meta *meta;
	int nmeta, capmeta;
	char **meta_pending;
	int npending;

	/* Now Playing */
	char features_uri[64];
	char *features_json;
	bool features_missing;
	struct listview help;
	int now_scroll;

	/* Home: shelves from four routes, listed as shelf rows and trending tracks. */
	struct listview home;
	struct shelves home_parts[HOME_PARTS];
	int home_pending;
	char home_note[400];

	/* Playlists: the list, or one open playlist. */
	struct listview pl_list, pl_open;
	bool pl_is_open, pl_list_loading, pl_open_loading;
	struct playlist_info pl;
	char pl_uri[64];           /* the open (or opening) playlist */
	uint64_t gen_pl_open;
	bool pl_edit_busy;         /* an edit is sent and its refetched list not yet shown */
	bool pl_edit_answered;     /* ... and its answer has come (the next list includes it) */
	int pl_follow;             /* the row the cursor goes to when that list arrives, or -1 */
	long long pl_next_poll;
	char pl_note[400];
	struct plwatch *plw;       /* push for the open playlist, or NULL (then polling only) */
	char add_uri[64], add_title[256];  /* a track waiting for the user to pick a playlist */
	enum view add_return;
	bool add_was_open;         /* the playlist open before the pick, reopened after it */

	/* Devices */
	struct listview devices;
	long long dev_next_poll;
	bool dev_loading;
	char dev_note[400];
	struct connect_client *connect;
	char device_name[64], device_id[64];
	char active_elsewhere[64]; /* the active device's name when it is not this one, else "" */

	/* Downloads */
	struct listview downloads;
	struct downloader *dl;
	struct dl_state dls;
	uint64_t dl_finished_seen;
	struct offline *offline;   /* the engine's store (playback of downloads), or NULL */

	/* Command line */
	bool cmd_active;
	char cmd[256];

	/* Status line */
	char status[300];
	bool status_error;
	struct timespec status_at;
	int spinner;

	/* Layout, for mouse hits. */
	int rows, cols, content_y, content_x, content_h, content_w, bar_y, bar_x, bar_w;
	bool mouse;
};

/* ---- helpers in tui.c ---- */

/* CLOCK_MONOTONIC in ms. */
long long now_ms(void);
/* Sets the status line (one line; an error stays until replaced, a notice fades). */
void status_set(struct tui *t, bool error, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The id after the last ':' of an encore URI (the whole string if none). */
const char *uri_id(const char *uri);
/* True when uri is encore:TYPE:... */
bool uri_is(const char *uri, const char *type);
/* The attributes of a theme slot (colour or, under NO_COLOR, a mono attribute). */
attr_t theme(struct tui *t, enum config_theme e);
/* Draws s fitted to cols columns at (y, x). */
void put(int y, int x, const char *s, int cols, bool pad, attr_t a);
/* The metadata cache of track rows seen (titles for the queue); NULL when unknown. */
struct meta *meta_find(struct tui *t, const char *uri);
void meta_put(struct tui *t, const struct item *it);
void meta_put_all(struct tui *t, const struct items *l);
/* The selected row if selectable, else NULL. */
struct item *list_current(struct listview *lv);
/* The list of the current view, NULL for views without one. */
struct listview *current_list(struct tui *t);
/* A bar of width cells, frac filled, in out (UTF-8 block characters). */
void bar_string(char *out, size_t n, int width, double frac);
/* Draws the visible rows of lv (clamping its cursor); mark_current marks the queue's current entry. */
void draw_list(struct tui *t, struct listview *lv, int y, int x, int h, int w, bool mark_current);
/* Draws a title line and dim lines under it. */
void draw_center_text(struct tui *t, int y, int x, int w, const char *const *lines, int n);
/* "⠋ Loading WHAT…" in dim. */
void draw_loading(struct tui *t, int y, int x, int w, const char *what);
extern const char *const spinner_frames[10];
/* Switches the view, loading what it shows. */
void switch_view(struct tui *t, enum view v);
/* Plays the track rows of l as a new queue; what names it in the status line. */
void play_items(struct tui *t, const struct items *l, const char *what);

/* ---- tui_home.c ---- */

/* Asks the four shelf routes again (the shelves on screen stay until answered). */
void home_load(struct tui *t);
/* The shelf a "shelf:P:N" row stands for, or NULL. */
struct shelf *home_shelf(struct tui *t, const char *uri);
void home_on_result(struct tui *t, const struct fetch_result *r, bool ok, const char *why);
void draw_home(struct tui *t, int y, int x, int h, int w);

/* ---- tui_playlists.c ---- */

void pl_list_load(struct tui *t);
/* Fetches the open playlist (t->pl_uri) again. */
void pl_open_load(struct tui *t);
/* Opens the playlist of row it, subscribing to its pushes. */
void pl_open(struct tui *t, const struct item *it);
/* Back to the list; the push subscription is dropped. */
void pl_close(struct tui *t);
/* A push arrived (plwatch_fd readable): refetch if the snapshot moved. */
void pl_pushed(struct tui *t);
/* J/K/d in an open playlist: a reorder or a removal against the snapshot on screen. */
void pl_action(struct tui *t, enum keymap_action a);
/* 'P': remember the selected track and open the playlist picker. */
void add_to_playlist_begin(struct tui *t);
/* Enter in the picker: add the remembered track to playlist row pl, return to the view. */
void add_to_playlist_finish(struct tui *t, const struct item *pl);
void playlists_on_result(struct tui *t, const struct fetch_result *r, bool ok, const char *why);
/* Runs the snapshot poll when due (only while the push is not live); ms until the next, or -1. */
long long playlists_timer(struct tui *t, long long now);
void draw_playlists(struct tui *t, int y, int x, int h, int w);

/* ---- tui_devices.c ---- */

void devices_load(struct tui *t);
/* Enter: transfer playback to the selected device. */
void devices_transfer(struct tui *t);
void devices_on_result(struct tui *t, const struct fetch_result *r, bool ok, const char *why);
/* Re-reads the device list when due while the view is shown; ms until the next, or -1. */
long long devices_timer(struct tui *t, long long now);
void draw_devices(struct tui *t, int y, int x, int h, int w);

/* ---- tui_downloads.c ---- */

/* Writes a byte count as "816 kB" / "1.2 MB". */
void fmt_bytes(uint64_t b, char *out, size_t n);
/* Copies the downloader's state into the view's rows; reports a finished request. */
void downloads_rebuild(struct tui *t);
/* 'd' (outside lists with removal) and 'D': queue the selection for download. */
void download_selected(struct tui *t);
void draw_downloads(struct tui *t, int y, int x, int h, int w);

#endif
