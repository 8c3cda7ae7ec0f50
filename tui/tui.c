/* tui: the full-screen client. One thread draws and reads keys; it sleeps in one poll()
 * over the terminal, the engine's event fd, the fetcher's fd, the downloader's and the
 * playlist watcher's fds and a signalfd (SIGWINCH, SIGINT, SIGTERM), with a 250 ms
 * timeout only while something moves (playback, a spinner) or a view timer is due.
 * Playback work is the engine's, API calls the fetcher's, downloads the downloader's:
 * nothing here waits on the network or the disk, so a slow server never freezes the
 * screen. This file holds the frame, input, Search, Library, Queue, Now Playing and Help;
 * the Home, Playlists, Devices and Downloads views are in tui_*.c (tui_int.h). */
#define NCURSES_WIDECHAR 1
#include "tui.h"
#include "tui_int.h"
#include "b64.h"
#include "buf.h"
#include "config.h"
#include "connect.h"
#include "downloader.h"
#include "engine.h"
#include "fetcher.h"
#include "offline.h"
#include "plwatch.h"
#include "items.h"
#include "json.h"
#include "keymap.h"
#include "mpris.h"
#include "ctlsock.h"
#include "remote.h"
#include "textw.h"
#include "urlenc.h"
#include "xmem.h"
#include <curses.h>
#include <errno.h>
#include <locale.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

static const struct {
	const char *name;
	bool available;
} view_info[VIEW_COUNT] = {
	[VIEW_SEARCH] = {"Search", true},
	[VIEW_LIBRARY] = {"Library", true},
	[VIEW_QUEUE] = {"Queue", true},
	[VIEW_NOW] = {"Now Playing", true},
	[VIEW_HELP] = {"Help", true},
	[VIEW_HOME] = {"Home", true},
	[VIEW_PLAYLISTS] = {"Playlists", true},
	[VIEW_DEVICES] = {"Devices", true},
	[VIEW_DOWNLOADS] = {"Downloads", true},
};

/* ---------------------------------------------------------------- helpers */

long long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

void status_set(struct tui *t, bool error, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(t->status, sizeof(t->status), fmt, ap);
	va_end(ap);
	/* One line: a server message with a newline must not break the layout. */
	for (char *p = t->status; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	t->status_error = error;
	clock_gettime(CLOCK_MONOTONIC, &t->status_at);
	t->dirty = true;
}

static void fmt_time(int ms, char *out, size_t n)
{
	if (ms < 0)
		ms = 0;
	int s = ms / 1000;
	if (s >= 3600)
		snprintf(out, n, "%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60);
	else
		snprintf(out, n, "%d:%02d", s / 60, s % 60);
}

const char *uri_id(const char *uri)
{
	const char *c = strrchr(uri, ':');
	return c ? c + 1 : uri;
}

bool uri_is(const char *uri, const char *type)
{
	size_t n = strlen(type);
	return strncmp(uri, "encore:", 7) == 0 && strncmp(uri + 7, type, n) == 0 && uri[7 + n] == ':';
}

/* ---------------------------------------------------------------- colours */

static const struct {
	short fg, bg;
	bool bold;
	attr_t mono;
} theme_defaults[CONFIG_THEME_COUNT] = {
	[CONFIG_THEME_NORMAL] = {-1, -1, false, A_NORMAL},
	[CONFIG_THEME_ACCENT] = {COLOR_CYAN, -1, true, A_BOLD},
	[CONFIG_THEME_SELECTED] = {COLOR_BLACK, COLOR_CYAN, false, A_REVERSE},
	[CONFIG_THEME_BAR] = {-1, -1, true, A_BOLD},
	[CONFIG_THEME_PROGRESS] = {COLOR_GREEN, -1, true, A_BOLD},
	[CONFIG_THEME_DIM] = {-1, -1, false, A_DIM},
	[CONFIG_THEME_ERROR] = {COLOR_RED, -1, true, A_BOLD},
};

static void colors_init(struct tui *t)
{
	const char *nc = getenv("NO_COLOR");
	t->color = !(nc && *nc) && has_colors();
	if (!t->color)
		return;
	start_color();
	use_default_colors();
	for (int i = 0; i < CONFIG_THEME_COUNT; i++) {
		struct config_color c = t->config->theme[i];
		short fg = c.set ? c.fg : theme_defaults[i].fg, bg = c.set ? c.bg : theme_defaults[i].bg;
		if (!c.set && i == CONFIG_THEME_DIM && COLORS >= 16)
			fg = 8;
		if (fg >= COLORS)
			fg = -1;
		if (bg >= COLORS)
			bg = -1;
		init_pair((short)(i + 1), fg, bg);
	}
}

attr_t theme(struct tui *t, enum config_theme e)
{
	if (!t->color)
		return theme_defaults[e].mono;
	bool bold = t->config->theme[e].set ? t->config->theme[e].bold : theme_defaults[e].bold;
	attr_t a = COLOR_PAIR(e + 1) | (bold ? A_BOLD : 0);
	if (e == CONFIG_THEME_DIM && !t->config->theme[e].set && COLORS < 16)
		a |= A_DIM;
	return a;
}

/* Draws s fitted to cols columns at (y, x). */
void put(int y, int x, const char *s, int cols, bool pad, attr_t a)
{
	if (cols <= 0)
		return;
	char out[1024];
	textw_fit(s, cols, pad, out, sizeof(out));
	attron(a);
	mvaddstr(y, x, out);
	attroff(a);
}

/* ---------------------------------------------------------------- metadata cache */

struct meta *meta_find(struct tui *t, const char *uri)
{
	for (int i = 0; i < t->nmeta; i++)
		if (strcmp(t->meta[i].uri, uri) == 0)
			return &t->meta[i];
	return NULL;
}

void meta_put(struct tui *t, const struct item *it)
{
	if (it->type != ITEM_TRACK || meta_find(t, it->uri))
		return;
	if (t->nmeta == t->capmeta) {
		t->capmeta = t->capmeta ? t->capmeta * 2 : 64;
		t->meta = xrealloc(t->meta, (size_t)t->capmeta * sizeof(*t->meta));
	}
	struct meta *m = &t->meta[t->nmeta++];
	snprintf(m->uri, sizeof(m->uri), "%s", it->uri);
	m->title = xstrdup(it->title);
	m->sub = xstrdup(it->sub);
	m->duration_ms = it->duration_ms;
}

void meta_put_all(struct tui *t, const struct items *l)
{
	for (int i = 0; i < l->n; i++)
		meta_put(t, &l->v[i]);
}

static bool meta_is_pending(struct tui *t, const char *uri)
{
	for (int i = 0; i < t->npending; i++)
		if (strcmp(t->meta_pending[i], uri) == 0)
			return true;
	return false;
}

/* Asks for the titles of queued tracks we have not seen, 50 per request. */
static void meta_request_missing(struct tui *t)
{
	struct buf ids = BUF_INIT;
	int n = 0;
	for (int i = 0; i < t->queue_n; i++) {
		const char *u = t->queue_uris[i];
		if (!uri_is(u, "track") || meta_find(t, u) || meta_is_pending(t, u))
			continue;
		t->meta_pending = xrealloc(t->meta_pending, (size_t)(t->npending + 1) * sizeof(char *));
		t->meta_pending[t->npending++] = xstrdup(u);
		buf_printf(&ids, "%s%s", n ? "," : "", uri_id(u));
		if (++n == 50 || i == t->queue_n - 1) {
			char *path = xasprintf("/v1/tracks?ids=%s", ids.data);
			fetcher_submit(t->fetcher, F_META, -1, "GET", path, NULL, NULL, 0);
			free(path);
			buf_reset(&ids);
			n = 0;
		}
	}
	if (n) {
		char *path = xasprintf("/v1/tracks?ids=%s", ids.data);
		fetcher_submit(t->fetcher, F_META, -1, "GET", path, NULL, NULL, 0);
		free(path);
	}
	buf_free(&ids);
}

/* ---------------------------------------------------------------- lists */

static void list_clamp(struct listview *lv, int height)
{
	struct items *l = &lv->items;
	if (lv->sel >= l->n)
		lv->sel = l->n - 1;
	if (lv->sel < 0)
		lv->sel = 0;
	/* Rest on a selectable row, searching down then up. */
	if (l->n && !items_selectable(&l->v[lv->sel])) {
		int s = lv->sel;
		while (s < l->n && !items_selectable(&l->v[s]))
			s++;
		if (s == l->n) {
			s = lv->sel;
			while (s > 0 && !items_selectable(&l->v[s]))
				s--;
		}
		lv->sel = s;
	}
	if (height < 1)
		height = 1;
	if (lv->sel < lv->top)
		lv->top = lv->sel;
	/* Keep a group's header visible above its first row. */
	if (lv->sel > 0 && lv->top == lv->sel && !items_selectable(&l->v[lv->sel - 1]))
		lv->top = lv->sel - 1;
	if (lv->sel >= lv->top + height)
		lv->top = lv->sel - height + 1;
	if (lv->top < 0)
		lv->top = 0;
}

static void list_move(struct listview *lv, int delta)
{
	struct items *l = &lv->items;
	int s = lv->sel;
	int step = delta > 0 ? 1 : -1;
	for (int moved = 0; moved < abs(delta);) {
		int n = s + step;
		while (n >= 0 && n < l->n && !items_selectable(&l->v[n]))
			n += step;
		if (n < 0 || n >= l->n)
			break;
		s = n;
		moved++;
	}
	lv->sel = s;
}

struct item *list_current(struct listview *lv)
{
	if (lv->sel < 0 || lv->sel >= lv->items.n || !items_selectable(&lv->items.v[lv->sel]))
		return NULL;
	return &lv->items.v[lv->sel];
}

struct listview *current_list(struct tui *t)
{
	switch (t->view) {
	case VIEW_SEARCH: return &t->search;
	case VIEW_LIBRARY: return &t->library;
	case VIEW_QUEUE: return &t->queue;
	case VIEW_HOME: return &t->home;
	case VIEW_PLAYLISTS: return t->pl_is_open ? &t->pl_open : &t->pl_list;
	case VIEW_DEVICES: return &t->devices;
	case VIEW_DOWNLOADS: return &t->downloads;
	default: return NULL;
	}
}

/* Rows drawn above a view's list (for mouse hits). */
static int list_offset(struct tui *t)
{
	switch (t->view) {
	case VIEW_SEARCH: return 2;
	case VIEW_QUEUE: return 1;
	case VIEW_PLAYLISTS: return t->pl_is_open ? 3 : 1;
	case VIEW_DEVICES: return 1;
	case VIEW_DOWNLOADS: return 2;
	default: return 0;
	}
}

/* ---------------------------------------------------------------- search */

static void search_rebuild(struct tui *t)
{
	char keep[64] = "";
	struct item *cur = list_current(&t->search);
	if (cur)
		snprintf(keep, sizeof(keep), "%s", cur->uri);
	items_clear(&t->search.items);
	if (t->suggestions.n) {
		items_add(&t->search.items, ITEM_HEADER, NULL, "Suggestions", NULL, 0);
		for (int i = 0; i < t->suggestions.n; i++) {
			struct item *s = &t->suggestions.v[i];
			items_add(&t->search.items, s->type, s->uri, s->title, s->sub, s->duration_ms);
		}
	}
	for (int i = 0; i < t->results.n; i++) {
		struct item *s = &t->results.v[i];
		items_add(&t->search.items, s->type, s->uri, s->title, s->sub, s->duration_ms);
	}
	/* Results arriving while the user moves must not yank the cursor. */
	t->search.sel = 0;
	if (keep[0])
		for (int i = 0; i < t->search.items.n; i++)
			if (strcmp(t->search.items.v[i].uri, keep) == 0) {
				t->search.sel = i;
				break;
			}
	/* The first track is what Enter in the query means, so prefer it over suggestions. */
	if (!keep[0])
		for (int i = 0; i < t->search.items.n; i++)
			if (t->search.items.v[i].type == ITEM_TRACK) {
				t->search.sel = i;
				break;
			}
	t->search.top = 0;
	t->dirty = true;
}

static void search_changed(struct tui *t)
{
	t->search_error[0] = 0;
	if (!t->query[0]) {
		items_clear(&t->suggestions);
		items_clear(&t->results);
		/* Late answers to the old query must be dropped too. */
		t->gen_suggest = t->gen_search = 0; /* gens start at 1: nothing matches */
		t->search_loading = false;
		search_rebuild(t);
		return;
	}
	struct buf q = BUF_INIT;
	url_encode(&q, t->query);
	char *sp = xasprintf("/v1/search/suggest?q=%s", q.data);
	char *rp = xasprintf("/v1/search?q=%s&type=track,artist,album&limit=20", q.data);
	t->gen_suggest = fetcher_submit(t->fetcher, F_SUGGEST, F_SUGGEST, "GET", sp, NULL, NULL, SEARCH_DEBOUNCE_MS);
	t->gen_search = fetcher_submit(t->fetcher, F_SEARCH, F_SEARCH, "GET", rp, NULL, NULL, SEARCH_DEBOUNCE_MS);
	t->search_loading = true;
	free(sp);
	free(rp);
	buf_free(&q);
	t->dirty = true;
}

/* ---------------------------------------------------------------- library */

static void library_rebuild(struct tui *t)
{
	static const char *const heads[3] = {"Saved tracks", "Followed artists", "Albums"};
	items_clear(&t->library.items);
	for (int p = 0; p < 3; p++) {
		if (!t->lib_parts[p].n)
			continue;
		items_add(&t->library.items, ITEM_HEADER, NULL, heads[p], NULL, 0);
		for (int i = 0; i < t->lib_parts[p].n; i++) {
			struct item *s = &t->lib_parts[p].v[i];
			items_add(&t->library.items, s->type, s->uri, s->title, s->sub, s->duration_ms);
		}
	}
	t->dirty = true;
}

static void library_load(struct tui *t)
{
	for (int p = 0; p < 3; p++)
		items_clear(&t->lib_parts[p]);
	t->lib_note[0] = 0;
	fetcher_submit(t->fetcher, F_LIB_TRACKS, F_LIB_TRACKS, "GET", "/v1/me/tracks?limit=50", NULL, NULL, 0);
	fetcher_submit(t->fetcher, F_LIB_ARTISTS, F_LIB_ARTISTS, "GET", "/v1/me/following?type=artist&limit=50", NULL, NULL, 0);
	fetcher_submit(t->fetcher, F_LIB_ALBUMS, F_LIB_ALBUMS, "GET", "/v1/me/albums?limit=50", NULL, NULL, 0);
	t->lib_pending = 3;
	t->lib_loaded = true;
}

/* ---------------------------------------------------------------- queue */

static void queue_refresh(struct tui *t)
{
	engine_queue_list_free(t->queue_uris, t->queue_n);
	t->queue_uris = NULL;
	t->queue_n = 0;
	if (engine_queue_list(t->engine, &t->queue_uris, &t->queue_n, &t->queue_cur) < 0) {
		t->queue_uris = NULL;
		t->queue_n = 0;
	}
	items_clear(&t->queue.items);
	for (int i = 0; i < t->queue_n; i++) {
		struct meta *m = meta_find(t, t->queue_uris[i]);
		items_add(&t->queue.items, ITEM_TRACK, t->queue_uris[i], m ? m->title : t->queue_uris[i], m ? m->sub : "",
			  m ? m->duration_ms : 0);
	}
	meta_request_missing(t);
	t->dirty = true;
}

void play_items(struct tui *t, const struct items *l, const char *what)
{
	const char **uris = xcalloc((size_t)l->n + 1, sizeof(*uris));
	int n = 0;
	for (int i = 0; i < l->n; i++)
		if (l->v[i].type == ITEM_TRACK)
			uris[n++] = l->v[i].uri;
	if (n == 0 || engine_play(t->engine, uris, n) < 0)
		status_set(t, true, "cannot play %s", what);
	else
		status_set(t, false, "Playing %s", what);
	free(uris);
	meta_put_all(t, l);
}

/* Runs the timers of the views that refresh themselves; ms until the next, or -1. */
static int timers_run(struct tui *t)
{
	long long now = now_ms(), next = -1;
	long long a = playlists_timer(t, now), b = devices_timer(t, now);
	if (a >= 0)
		next = a;
	if (b >= 0 && (next < 0 || b < next))
		next = b;
	if (next < 0)
		return -1;
	return next < 50 ? 50 : (int)next;
}

/* ---------------------------------------------------------------- actions */

static void play_from_list(struct tui *t, struct listview *lv)
{
	struct item *it = list_current(lv);
	if (!it)
		return;
	if (it->type == ITEM_SUGGESTION && !uri_is(it->uri, "track")) {
		/* An artist or album suggestion completes the query. */
		snprintf(t->query, sizeof(t->query), "%s", it->title);
		search_changed(t);
		return;
	}
	if (it->type == ITEM_SHELF) {
		struct shelf *sh = home_shelf(t, it->uri);
		if (sh)
			play_items(t, &sh->tracks, it->title);
		return;
	}
	if (it->type == ITEM_PLAYLIST || it->type == ITEM_DEVICE)
		return;
	if (it->type == ITEM_TRACK || it->type == ITEM_SUGGESTION || it->type == ITEM_DOWNLOAD) {
		/* Play the chosen track, then the tracks listed after it, as Spotify plays a list. */
		const char **uris = xcalloc((size_t)lv->items.n, sizeof(*uris));
		int n = 0;
		uris[n++] = it->uri;
		if (it->type != ITEM_SUGGESTION)
			for (int i = lv->sel + 1; i < lv->items.n && lv->items.v[i].type == it->type; i++)
				uris[n++] = lv->items.v[i].uri;
		int rc = engine_play(t->engine, uris, n);
		free(uris);
		if (rc < 0)
			status_set(t, true, "cannot play %s", it->uri);
		else
			status_set(t, false, "Playing %s", it->title);
		return;
	}
	char *path;
	if (it->type == ITEM_ALBUM) {
		path = xasprintf("/v1/albums/%s/tracks?limit=50", uri_id(it->uri));
		fetcher_submit(t->fetcher, F_CONTEXT_ALBUM, F_CONTEXT_ALBUM, "GET", path, NULL, it->title, 0);
	} else {
		path = xasprintf("/v1/artists/%s/top-tracks", uri_id(it->uri));
		fetcher_submit(t->fetcher, F_CONTEXT_ARTIST, F_CONTEXT_ALBUM, "GET", path, NULL, it->title, 0);
	}
	free(path);
	status_set(t, false, "Loading %s…", it->title);
}

static void enqueue_selected(struct tui *t, bool next)
{
	struct listview *lv = current_list(t);
	struct item *it = lv ? list_current(lv) : NULL;
	if (!it || !uri_is(it->uri, "track")) {
		status_set(t, true, "select a track to queue");
		return;
	}
	if (engine_enqueue(t->engine, it->uri, next) < 0) {
		status_set(t, true, "cannot queue %s", it->uri);
		return;
	}
	meta_put(t, it);
	status_set(t, false, next ? "Playing next: %s" : "Queued: %s", it->title);
}

/* Saves the selected track to the library (PUT /v1/me/tracks) through the fetcher. */
static void save_selected(struct tui *t)
{
	struct listview *lv = current_list(t);
	struct item *it = lv ? list_current(lv) : NULL;
	if (!it || !uri_is(it->uri, "track")) {
		status_set(t, true, "select a track to save");
		return;
	}
	char *path = xasprintf("/v1/me/tracks?ids=%s", uri_id(it->uri));
	fetcher_submit(t->fetcher, F_SAVE, -1, "PUT", path, NULL, it->title, 0);
	free(path);
}

void switch_view(struct tui *t, enum view v)
{
	if (!view_info[v].available)
		return;
	t->view = v;
	t->sidebar_sel = v;
	if (v == VIEW_LIBRARY && !t->lib_loaded)
		library_load(t);
	if (v == VIEW_QUEUE)
		queue_refresh(t);
	if (v == VIEW_HOME)
		home_load(t);  /* trending moves by the minute: fresh on every visit */
	if (v == VIEW_PLAYLISTS) {
		if (t->pl_is_open)
			pl_open_load(t);
		else
			pl_list_load(t);
	}
	if (v == VIEW_DEVICES)
		devices_load(t);
	if (v == VIEW_DOWNLOADS)
		downloader_refresh(t->dl);
	t->dirty = true;
}

static void queue_action(struct tui *t, enum keymap_action a)
{
	if (t->view == VIEW_PLAYLISTS && t->pl_is_open) {
		pl_action(t, a);
		return;
	}
	if (a == ACT_REMOVE && t->view == VIEW_DOWNLOADS) {
		struct item *it = list_current(&t->downloads);
		if (it && downloader_remove(t->dl, it->uri, it->title) == 0)
			status_set(t, false, "Removing the download of %s…", it->title);
		return;
	}
	if (a == ACT_REMOVE && t->view != VIEW_QUEUE) {
		/* Nothing to remove here: 'd' downloads, as the key map has it. */
		download_selected(t);
		return;
	}
	int sel = t->queue.sel;
	if (t->view != VIEW_QUEUE || sel < 0 || sel >= t->queue_n) {
		if (t->view != VIEW_QUEUE)
			status_set(t, true, "'%s' works in the Queue view (3) and an open playlist (6)", keymap_action_name(a));
		return;
	}
	if (a == ACT_MOVE_DOWN && sel + 1 < t->queue_n) {
		if (engine_queue_move(t->engine, sel, sel + 1) == 0)
			t->queue.sel = sel + 1;
	} else if (a == ACT_MOVE_UP && sel > 0) {
		if (engine_queue_move(t->engine, sel, sel - 1) == 0)
			t->queue.sel = sel - 1;
	} else if (a == ACT_REMOVE) {
		engine_queue_remove(t->engine, sel);
	}
}

/* Enter in the Queue: bring the entry next to the current one and skip to it, so the
 * queue's order (and history) survives. */
static void queue_play_selected(struct tui *t)
{
	int sel = t->queue.sel, cur = t->queue_cur;
	if (sel < 0 || sel >= t->queue_n || sel == cur)
		return;
	if (cur < 0) {
		engine_play(t->engine, (const char *const *)t->queue_uris + sel, t->queue_n - sel);
		return;
	}
	int to = sel > cur ? cur + 1 : cur;
	engine_queue_move(t->engine, sel, to);
	engine_next(t->engine);
}

static void run_command(struct tui *t, const char *line)
{
	while (*line == ' ')
		line++;
	if (!*line)
		return;
	if (strcmp(line, "q") == 0 || strcmp(line, "quit") == 0) {
		t->quit = true;
		return;
	}
	if (strcmp(line, "help") == 0) {
		switch_view(t, VIEW_HELP);
		return;
	}
	struct buf reply = BUF_INIT;
	int rc = remote_exec(t->engine, line, &reply);
	status_set(t, rc < 0, "%s", reply.data ? reply.data : (rc < 0 ? "error" : "ok"));
	buf_free(&reply);
}

static void do_action(struct tui *t, enum keymap_action a)
{
	struct listview *lv = current_list(t);
	int page = t->content_h > 2 ? t->content_h - 2 : 1;
	switch (a) {
	case ACT_NONE: return;
	case ACT_QUIT: t->quit = true; return;
	case ACT_HELP: switch_view(t, t->view == VIEW_HELP ? VIEW_SEARCH : VIEW_HELP); return;
	case ACT_SEARCH:
		switch_view(t, VIEW_SEARCH);
		t->focus_sidebar = false;
		t->typing = true;
		return;
	case ACT_COMMAND: t->cmd_active = true; t->cmd[0] = 0; t->dirty = true; return;
	case ACT_REDRAW: clearok(curscr, TRUE); t->dirty = true; return;
	case ACT_UP: case ACT_DOWN: case ACT_TOP: case ACT_BOTTOM: case ACT_PAGE_UP: case ACT_PAGE_DOWN: {
		int d = a == ACT_UP ? -1 : a == ACT_DOWN ? 1 : a == ACT_PAGE_UP ? -page : a == ACT_PAGE_DOWN ? page
			: a == ACT_TOP ? -1000000 : 1000000;
		if (t->focus_sidebar) {
			int s = t->sidebar_sel + (d > 0 ? 1 : -1);
			while (s >= 0 && s < VIEW_COUNT && !view_info[s].available)
				s += d > 0 ? 1 : -1;
			if (s >= 0 && s < VIEW_COUNT)
				switch_view(t, (enum view)s);
		} else if (lv) {
			list_move(lv, d);
		} else if (t->view == VIEW_HELP) {
			t->help.top += d;
		} else if (t->view == VIEW_NOW) {
			t->now_scroll += d;
		}
		t->dirty = true;
		return;
	}
	case ACT_PANE_NEXT: t->focus_sidebar = !t->focus_sidebar; t->dirty = true; return;
	case ACT_PANE_LEFT: t->focus_sidebar = true; t->dirty = true; return;
	case ACT_PANE_RIGHT: t->focus_sidebar = false; t->dirty = true; return;
	case ACT_PLAY:
		if (t->focus_sidebar) {
			t->focus_sidebar = false;
			t->dirty = true;
		} else if (t->view == VIEW_QUEUE) {
			queue_play_selected(t);
		} else if (t->view == VIEW_PLAYLISTS && !t->pl_is_open) {
			struct item *it = list_current(&t->pl_list);
			if (it && t->add_uri[0])
				add_to_playlist_finish(t, it);
			else if (it)
				pl_open(t, it);
		} else if (t->view == VIEW_DEVICES) {
			devices_transfer(t);
		} else if (lv) {
			play_from_list(t, lv);
		}
		return;
	case ACT_TOGGLE: engine_toggle(t->engine); return;
	case ACT_NEXT: engine_next(t->engine); return;
	case ACT_PREV: engine_prev(t->engine); return;
	case ACT_SEEK_FWD: engine_seek(t->engine, SEEK_STEP_MS, true); return;
	case ACT_SEEK_BACK: engine_seek(t->engine, -SEEK_STEP_MS, true); return;
	case ACT_VOL_UP: engine_set_volume(t->engine, VOLUME_STEP, true); return;
	case ACT_VOL_DOWN: engine_set_volume(t->engine, -VOLUME_STEP, true); return;
	case ACT_SHUFFLE: engine_set_shuffle(t->engine, !t->snap.shuffle); return;
	case ACT_REPEAT:
		engine_set_repeat(t->engine, t->snap.repeat == ENGINE_REPEAT_OFF ? ENGINE_REPEAT_ALL
					     : t->snap.repeat == ENGINE_REPEAT_ALL ? ENGINE_REPEAT_ONE
										   : ENGINE_REPEAT_OFF);
		return;
	case ACT_ENQUEUE: enqueue_selected(t, false); return;
	case ACT_PLAY_NEXT: enqueue_selected(t, true); return;
	case ACT_SAVE: save_selected(t); return;
	case ACT_MOVE_DOWN: case ACT_MOVE_UP: case ACT_REMOVE: queue_action(t, a); return;
	case ACT_VIEW_SEARCH: switch_view(t, VIEW_SEARCH); return;
	case ACT_VIEW_LIBRARY: switch_view(t, VIEW_LIBRARY); return;
	case ACT_VIEW_QUEUE: switch_view(t, VIEW_QUEUE); return;
	case ACT_VIEW_NOW: switch_view(t, VIEW_NOW); return;
	case ACT_VIEW_HOME: switch_view(t, VIEW_HOME); return;
	case ACT_VIEW_PLAYLISTS:
		if (t->view == VIEW_PLAYLISTS && t->pl_is_open)
			pl_close(t);  /* 6 again: back to the list */
		switch_view(t, VIEW_PLAYLISTS);
		return;
	case ACT_VIEW_DEVICES: switch_view(t, VIEW_DEVICES); return;
	case ACT_VIEW_DOWNLOADS: switch_view(t, VIEW_DOWNLOADS); return;
	case ACT_BACK:
		if (t->view == VIEW_PLAYLISTS && t->add_uri[0] && !t->pl_is_open) {
			t->add_uri[0] = 0;
			t->pl_is_open = t->add_was_open;
			status_set(t, false, "Not added");
			switch_view(t, t->add_return);
		} else if (t->view == VIEW_PLAYLISTS && t->pl_is_open) {
			pl_close(t);
			pl_list_load(t);
		}
		t->dirty = true;
		return;
	case ACT_DOWNLOAD: download_selected(t); return;
	case ACT_ADD_TO_PLAYLIST: add_to_playlist_begin(t); return;
	case ACT_COUNT: return;
	}
}

/* ---------------------------------------------------------------- input */

static void append_wchar(char *s, size_t cap, wint_t wc)
{
	char mb[8];
	mbstate_t st;
	memset(&st, 0, sizeof(st));
	size_t n = wcrtomb(mb, (wchar_t)wc, &st);
	if (n == (size_t)-1 || strlen(s) + n + 1 > cap)
		return;
	mb[n] = 0;
	strcat(s, mb);
}

/* A line editor shared by the query and the ':' prompt. Returns 1 on Enter, -1 on Esc,
 * 2 when the text changed, 0 otherwise. */
static int edit_line(char *s, size_t cap, int ret, wint_t ch)
{
	if (ret == KEY_CODE_YES) {
		if (ch == KEY_BACKSPACE) {
			textw_pop_char(s);
			return 2;
		}
		if (ch == KEY_ENTER)
			return 1;
		return 0;
	}
	if (ch == '\n' || ch == '\r')
		return 1;
	if (ch == 27)
		return -1;
	if (ch == 127 || ch == 8) {
		textw_pop_char(s);
		return 2;
	}
	if (ch == 21) { /* C-u */
		s[0] = 0;
		return 2;
	}
	if (ch == 23) { /* C-w: drop the last word */
		size_t n = strlen(s);
		while (n > 0 && s[n - 1] == ' ')
			n--;
		while (n > 0 && s[n - 1] != ' ')
			n--;
		s[n] = 0;
		return 2;
	}
	if (ch < 0x20)
		return 0;
	append_wchar(s, cap, ch);
	return 2;
}

static void handle_mouse(struct tui *t)
{
	MEVENT ev;
	if (getmouse(&ev) != OK)
		return;
	if (!(ev.bstate & (BUTTON1_CLICKED | BUTTON1_PRESSED | BUTTON1_DOUBLE_CLICKED)))
		return;
	if (ev.y == t->bar_y && ev.x >= t->bar_x && ev.x < t->bar_x + t->bar_w && t->snap.duration_ms > 0) {
		int ms = (int)((long long)(ev.x - t->bar_x) * t->snap.duration_ms / t->bar_w);
		engine_seek(t->engine, ms, false);
		return;
	}
	if (ev.y >= t->content_y && ev.y < t->content_y + t->content_h) {
		if (ev.x < t->content_x) {
			int row = ev.y - t->content_y, k = 0;
			for (int v = 0; v < VIEW_COUNT; v++) {
				if (!view_info[v].available)
					continue;
				if (k++ == row) {
					switch_view(t, (enum view)v);
					t->focus_sidebar = true;
				}
			}
			return;
		}
		struct listview *lv = current_list(t);
		int off = list_offset(t);
		if (!lv)
			return;
		int idx = lv->top + (ev.y - t->content_y - off);
		if (idx >= 0 && idx < lv->items.n && items_selectable(&lv->items.v[idx])) {
			t->focus_sidebar = false;
			t->typing = false;
			lv->sel = idx;
			if (ev.bstate & BUTTON1_DOUBLE_CLICKED)
				do_action(t, ACT_PLAY);
			t->dirty = true;
		}
	}
}

static void handle_resize(struct tui *t)
{
	struct winsize ws;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0)
		resizeterm(ws.ws_row, ws.ws_col);
	clearok(curscr, TRUE);
	t->dirty = true;
}

static void handle_key(struct tui *t, int ret, wint_t ch)
{
	t->dirty = true;
	if (ret == KEY_CODE_YES && ch == KEY_RESIZE) {
		handle_resize(t);
		return;
	}
	if (ret == KEY_CODE_YES && ch == KEY_MOUSE) {
		handle_mouse(t);
		return;
	}
	if (t->cmd_active) {
		int r = edit_line(t->cmd, sizeof(t->cmd), ret, ch);
		if (r == 1) {
			t->cmd_active = false;
			char line[256];
			snprintf(line, sizeof(line), "%s", t->cmd);
			run_command(t, line);
		} else if (r == -1) {
			t->cmd_active = false;
		} else if (r == 0 && ret != KEY_CODE_YES && ch == 0) {
			t->cmd_active = false;
		}
		return;
	}
	if (t->typing && t->view == VIEW_SEARCH) {
		if (ret == KEY_CODE_YES && (ch == KEY_DOWN || ch == KEY_UP)) {
			t->typing = false;
			return;
		}
		int r = edit_line(t->query, sizeof(t->query), ret, ch);
		if (r == 1 || r == -1)
			t->typing = false;
		else if (r == 2)
			search_changed(t);
		return;
	}
	int key = (int)ch;
	/* Terminals send Backspace as DEL or C-h; the keymap names it once. */
	if (ret != KEY_CODE_YES && (ch == 127 || ch == 8))
		key = KEY_BACKSPACE;
	do_action(t, keymap_lookup(t->keymap, key));
}

/* ---------------------------------------------------------------- fetch results */

static void handle_result(struct tui *t, struct fetch_result *r)
{
	bool ok = r->rc == 0 && r->status >= 200 && r->status < 300;
	char why[320] = "";
	if (r->rc < 0)
		snprintf(why, sizeof(why), "cannot reach the server: %s", r->error);
	else if (!ok) {
		char msg[160];
		api_error_message(r->body, msg, sizeof(msg));
		snprintf(why, sizeof(why), "server answered %ld%s%s", r->status, msg[0] ? ": " : "", msg);
	}
	switch ((enum fetch_kind)r->kind) {
	case F_SUGGEST:
		if (r->gen != t->gen_suggest)
			return;
		items_clear(&t->suggestions);
		/* Suggestions are a nicety: a failure leaves the results alone. */
		if (ok)
			items_parse_suggest(&t->suggestions, r->body);
		search_rebuild(t);
		return;
	case F_SEARCH:
		if (r->gen != t->gen_search)
			return;
		t->search_loading = false;
		items_clear(&t->results);
		if (!ok || items_parse_search(&t->results, r->body) < 0)
			snprintf(t->search_error, sizeof(t->search_error), "Search failed: %s", why[0] ? why : "malformed answer");
		else if (t->results.n == 0)
			snprintf(t->search_error, sizeof(t->search_error), "No results for \"%s\"", t->query);
		else
			t->search_error[0] = 0;
		meta_put_all(t, &t->results);
		search_rebuild(t);
		return;
	case F_LIB_TRACKS: case F_LIB_ARTISTS: case F_LIB_ALBUMS: {
		int p = r->kind - F_LIB_TRACKS;
		static const char *const wrap[3] = {"track", NULL, "album"};
		items_clear(&t->lib_parts[p]);
		/* No library routes yet (404) reads as an empty library, not an error. */
		if (ok)
			items_parse_saved(&t->lib_parts[p], r->body, wrap[p]);
		else if (r->status != 404)
			snprintf(t->lib_note, sizeof(t->lib_note), "Library: %s", why);
		meta_put_all(t, &t->lib_parts[p]);
		if (t->lib_pending > 0)
			t->lib_pending--;
		library_rebuild(t);
		return;
	}
	case F_META: {
		struct items l = ITEMS_INIT;
		if (ok)
			items_parse_tracks(&l, r->body);
		meta_put_all(t, &l);
		items_free(&l);
		/* Clear pending marks of whatever this batch asked for, found or not. */
		for (int i = 0; i < t->npending;) {
			if (strstr(r->body, uri_id(t->meta_pending[i])) || !ok) {
				free(t->meta_pending[i]);
				t->meta_pending[i] = t->meta_pending[--t->npending];
			} else {
				i++;
			}
		}
		if (t->view == VIEW_QUEUE)
			queue_refresh(t);
		return;
	}
	case F_SAVE:
		if (ok) {
			status_set(t, false, "Saved to your library: %s", r->tag ? r->tag : "");
			t->lib_loaded = false;  /* reload when the Library view opens next */
			if (t->view == VIEW_LIBRARY)
				library_load(t);
		} else {
			status_set(t, true, "could not save: %s", why);
		}
		return;
	case F_HOME_DISCOVER: case F_HOME_MIXES: case F_HOME_RADAR: case F_HOME_TRENDING:
		home_on_result(t, r, ok, why);
		return;
	case F_PL_LIST: case F_PL_OPEN: case F_PL_POLL: case F_PL_EDIT: case F_PL_ADD:
		playlists_on_result(t, r, ok, why);
		return;
	case F_DEVICES: case F_TRANSFER:
		devices_on_result(t, r, ok, why);
		return;
	case F_FEATURES:
		if (!r->tag || strcmp(r->tag, t->features_uri) != 0)
			return;
		free(t->features_json);
		t->features_json = ok ? xstrdup(r->body) : NULL;
		t->features_missing = !ok;
		t->dirty = true;
		return;
	case F_CONTEXT_ALBUM: case F_CONTEXT_ARTIST: {
		struct items l = ITEMS_INIT;
		if (ok) {
			if (r->kind == F_CONTEXT_ALBUM)
				items_parse_saved(&l, r->body, NULL);
			else
				items_parse_tracks(&l, r->body);
		}
		if (!ok || l.n == 0) {
			status_set(t, true, "cannot play %s: %s", r->tag ? r->tag : "that", why[0] ? why : "no tracks");
		} else {
			const char **uris = xcalloc((size_t)l.n, sizeof(*uris));
			for (int i = 0; i < l.n; i++)
				uris[i] = l.v[i].uri;
			engine_play(t->engine, uris, l.n);
			free(uris);
			status_set(t, false, "Playing %s", r->tag ? r->tag : "");
		}
		meta_put_all(t, &l);
		items_free(&l);
		return;
	}
	}
}

/* ---------------------------------------------------------------- engine events */

static void engine_changed(struct tui *t)
{
	char old_uri[64], old_err[256];
	snprintf(old_uri, sizeof(old_uri), "%s", t->snap.uri);
	snprintf(old_err, sizeof(old_err), "%s", t->snap.error);
	int old_len = t->snap.queue_length, old_pos = t->snap.queue_position;
	enum engine_state old_state = t->snap.state;
	engine_snapshot(t->engine, &t->snap);
	if (t->snap.state == ENGINE_PLAYING)
		t->active_elsewhere[0] = 0;  /* playing here: this device is the active one */
	else if (old_state == ENGINE_PLAYING && t->connect)
		devices_load(t);  /* stopped: perhaps playback moved to another device */
	if (strcmp(old_uri, t->snap.uri) != 0) {
		snprintf(t->features_uri, sizeof(t->features_uri), "%s", t->snap.uri);
		free(t->features_json);
		t->features_json = NULL;
		t->features_missing = false;
		if (uri_is(t->snap.uri, "track")) {
			char *path = xasprintf("/v1/audio-features/%s", uri_id(t->snap.uri));
			fetcher_submit(t->fetcher, F_FEATURES, F_FEATURES, "GET", path, NULL, t->snap.uri, 0);
			free(path);
		}
	}
	if (t->snap.error[0] && strcmp(old_err, t->snap.error) != 0)
		status_set(t, true, "%s", t->snap.error);
	if (t->view == VIEW_QUEUE || old_len != t->snap.queue_length || old_pos != t->snap.queue_position)
		queue_refresh(t);
	t->dirty = true;
}

/* ---------------------------------------------------------------- drawing */

const char *const spinner_frames[10] = {"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"};

void bar_string(char *out, size_t n, int width, double frac)
{
	int filled = (int)(frac * width + 0.5);
	size_t o = 0;
	out[0] = 0;
	for (int i = 0; i < width && o + 4 < n; i++) {
		const char *c = i < filled ? "█" : "░";
		memcpy(out + o, c, strlen(c));
		o += strlen(c);
	}
	out[o] = 0;
}

static void draw_item(struct tui *t, int y, int x, int w, const struct item *it, bool selected, bool playing)
{
	attr_t base = selected ? (t->focus_sidebar ? A_REVERSE : theme(t, CONFIG_THEME_SELECTED)) : A_NORMAL;
	move(y, x);
	attron(base);
	for (int i = 0; i < w; i++)
		addch(' ');
	attroff(base);
	if (it->type == ITEM_HEADER) {
		put(y, x, it->title, w, false, theme(t, CONFIG_THEME_ACCENT) | A_UNDERLINE);
		return;
	}
	if (it->type == ITEM_TEXT) {
		put(y, x + 1, it->title, w - 1, false, base);
		return;
	}
	const char *mark = playing ? (it->type == ITEM_DEVICE ? "● " : "▶ ") : "  ";
	if (it->type == ITEM_DOWNLOAD) {
		/* title .......... [██████░░░░] 60%  sub */
		int barw = w >= 70 ? 12 : 8, subw = 28;
		int titlew = w - 2 - barw - 2 - 5 - subw;
		if (titlew < 8)
			titlew = 8;
		put(y, x, it->marked ? "✓ " : "↓ ", 2, false, base | theme(t, CONFIG_THEME_ACCENT));
		put(y, x + 2, it->title, titlew - 1, false, base);
		double frac = it->total > 0 ? (double)it->done / it->total : 0;
		if (it->marked)
			frac = 1;
		char bar[128], pct[16];
		bar_string(bar, sizeof(bar), barw, frac);
		snprintf(pct, sizeof(pct), "%3d%%", (int)(frac * 100 + 0.5));
		int bx = x + 2 + titlew;
		put(y, bx, bar, barw, false, base | (selected ? 0 : theme(t, CONFIG_THEME_PROGRESS)));
		put(y, bx + barw + 1, pct, 5, false, base);
		put(y, bx + barw + 7, it->sub, w - (bx + barw + 7 - x), false, base | (selected ? 0 : theme(t, CONFIG_THEME_DIM)));
		return;
	}
	if (it->type == ITEM_SUGGESTION) {
		char line[600];
		snprintf(line, sizeof(line), "  ↳ %s", it->title);
		int used = textw_width(line);
		put(y, x, line, w, false, base);
		if (used + 3 < w && it->sub[0]) {
			char sub[80];
			snprintf(sub, sizeof(sub), "(%s)", it->sub);
			put(y, x + used + 2, sub, w - used - 2, false, base | (selected ? 0 : theme(t, CONFIG_THEME_DIM)));
		}
		return;
	}
	int durw = it->type == ITEM_TRACK && it->duration_ms > 0 ? 6 : 0;
	int body = w - 2 - durw;
	int titlew = it->sub[0] ? body * 11 / 20 : body;
	put(y, x, mark, 2, false, base | theme(t, CONFIG_THEME_ACCENT));
	put(y, x + 2, it->title, titlew - 1, false, base | (playing ? theme(t, CONFIG_THEME_ACCENT) : 0));
	if (it->sub[0])
		put(y, x + 2 + titlew, it->sub, body - titlew, false, base | (selected ? 0 : theme(t, CONFIG_THEME_DIM)));
	if (durw) {
		char d[16], out[16];
		fmt_time(it->duration_ms, d, sizeof(d));
		snprintf(out, sizeof(out), "%5s", d);
		put(y, x + w - durw + 1, out, durw - 1, false, base | (selected ? 0 : theme(t, CONFIG_THEME_DIM)));
	}
}

void draw_list(struct tui *t, struct listview *lv, int y, int x, int h, int w, bool mark_current)
{
	list_clamp(lv, h);
	for (int r = 0; r < h; r++) {
		int i = lv->top + r;
		if (i >= lv->items.n)
			break;
		bool playing = mark_current ? i == t->queue_cur : (t->snap.uri[0] && strcmp(lv->items.v[i].uri, t->snap.uri) == 0);
		if (lv->items.v[i].type == ITEM_DEVICE)
			playing = lv->items.v[i].marked;
		draw_item(t, y + r, x, w, &lv->items.v[i], i == lv->sel && !t->typing, playing);
	}
}

void draw_center_text(struct tui *t, int y, int x, int w, const char *const *lines, int n)
{
	for (int i = 0; i < n; i++)
		put(y + i, x + 1, lines[i], w - 2, false, i == 0 ? theme(t, CONFIG_THEME_ACCENT) : theme(t, CONFIG_THEME_DIM));
}

static void draw_search(struct tui *t, int y, int x, int h, int w)
{
	char line[400];
	const char *spin = t->search_loading ? spinner_frames[t->spinner % 10] : " ";
	snprintf(line, sizeof(line), " %s Search: %s", spin, t->query);
	put(y, x, line, w, true, t->typing ? theme(t, CONFIG_THEME_ACCENT) : A_NORMAL);
	if (t->typing) {
		int cx = x + textw_width(line);
		if (cx < x + w)
			mvaddstr(y, cx, "▏");
	}
	if (!t->query[0]) {
		static const char *const hint[] = {
			"Find music",
			"Press / and type: suggestions and results update as you type.",
			"Enter plays the selected track, a adds it to the queue, A plays it next.",
		};
		draw_center_text(t, y + 2, x, w, hint, 3);
		return;
	}
	if (t->search_error[0] && t->search.items.n == 0) {
		put(y + 2, x + 1, t->search_error, w - 2, false, theme(t, CONFIG_THEME_DIM));
		return;
	}
	draw_list(t, &t->search, y + 2, x, h - 2, w, false);
}

static void draw_library(struct tui *t, int y, int x, int h, int w)
{
	if (t->library.items.n == 0) {
		if (t->lib_pending > 0) {
			char l[64];
			snprintf(l, sizeof(l), "%s Loading your library…", spinner_frames[t->spinner % 10]);
			put(y + 1, x + 1, l, w - 2, false, theme(t, CONFIG_THEME_DIM));
			return;
		}
		static const char *const empty[] = {
			"Your library is empty",
			"Saved tracks, followed artists and saved albums appear here.",
			"Search with / to find music, then press L on a track to save it",
			"(or use PUT /v1/me/tracks from any Web API client).",
		};
		draw_center_text(t, y + 1, x, w, empty, 4);
		if (t->lib_note[0])
			put(y + 6, x + 1, t->lib_note, w - 2, false, theme(t, CONFIG_THEME_ERROR));
		return;
	}
	draw_list(t, &t->library, y, x, h, w, false);
}

void draw_loading(struct tui *t, int y, int x, int w, const char *what)
{
	char l[200];
	snprintf(l, sizeof(l), "%s Loading %s…", spinner_frames[t->spinner % 10], what);
	put(y, x + 1, l, w - 2, false, theme(t, CONFIG_THEME_DIM));
}

static void draw_queue(struct tui *t, int y, int x, int h, int w)
{
	if (t->queue.items.n == 0) {
		static const char *const empty[] = {
			"The queue is empty",
			"a adds the selected track, A plays it next; J/K reorder, d removes.",
		};
		draw_center_text(t, y + 1, x, w, empty, 2);
		return;
	}
	char head[128];
	snprintf(head, sizeof(head), "Queue · %d track%s", t->queue_n, t->queue_n == 1 ? "" : "s");
	put(y, x, head, w, false, theme(t, CONFIG_THEME_ACCENT));
	draw_list(t, &t->queue, y + 1, x, h - 1, w, true);
}


static void draw_now(struct tui *t, int y, int x, int h, int w)
{
	struct engine_snapshot *s = &t->snap;
	struct items lines = ITEMS_INIT;
	char b[400], d1[16], d2[16];
	if (!s->uri[0]) {
		static const char *const idle[] = {"Nothing playing", "Search with / and press Enter to play."};
		draw_center_text(t, y + 1, x, w, idle, 2);
		return;
	}
	items_add(&lines, ITEM_HEADER, NULL, s->title[0] ? s->title : s->uri, NULL, 0);
	snprintf(b, sizeof(b), "Artist   %s", s->artist);
	items_add(&lines, ITEM_TEXT, NULL, b, NULL, 0);
	snprintf(b, sizeof(b), "Album    %s", s->album);
	items_add(&lines, ITEM_TEXT, NULL, b, NULL, 0);
	snprintf(b, sizeof(b), "URI      %s", s->uri);
	items_add(&lines, ITEM_TEXT, NULL, b, NULL, 0);
	fmt_time(s->position_ms, d1, sizeof(d1));
	fmt_time(s->duration_ms, d2, sizeof(d2));
	snprintf(b, sizeof(b), "State    %s  %s / %s", engine_state_name(s->state), d1, d2);
	items_add(&lines, ITEM_TEXT, NULL, b, NULL, 0);
	snprintf(b, sizeof(b), "Stream   %d kbps, %.1f s buffered, %llu segments, %llu bitrate switches, %llu underruns",
		 s->bitrate_kbps, s->buffer_seconds, (unsigned long long)s->segments_fetched,
		 (unsigned long long)s->bitrate_switches, (unsigned long long)s->underruns);
	items_add(&lines, ITEM_TEXT, NULL, b, NULL, 0);
	snprintf(b, sizeof(b), "Loudness normalisation %s, gain %+.1f dB", s->normalize ? "on" : "off", s->gain_db);
	items_add(&lines, ITEM_TEXT, NULL, b, NULL, 0);
	snprintf(b, sizeof(b), "Output   %s (this device)", s->output);
	items_add(&lines, ITEM_TEXT, NULL, b, NULL, 0);
	if (s->first_audio_us > 0) {
		snprintf(b, sizeof(b), "Start    first audio %.0f ms after the play command", s->first_audio_us / 1000.0);
		items_add(&lines, ITEM_TEXT, NULL, b, NULL, 0);
	}
	items_add(&lines, ITEM_TEXT, NULL, "", NULL, 0);
	items_add(&lines, ITEM_HEADER, NULL, "Audio features", NULL, 0);
	if (t->features_json) {
		char err[64];
		yajl_val root = json_parse(t->features_json, err, sizeof(err));
		static const char *const unit[] = {"danceability", "energy", "valence", "acousticness", "instrumentalness",
						   "liveness", "speechiness"};
		for (size_t i = 0; i < sizeof(unit) / sizeof(unit[0]); i++) {
			double v;
			if (!json_get_double(root, unit[i], &v))
				continue;
			char bar[200];
			bar_string(bar, sizeof(bar), 20, v < 0 ? 0 : v > 1 ? 1 : v);
			snprintf(b, sizeof(b), "%-16s %s %.2f", unit[i], bar, v);
			items_add(&lines, ITEM_TEXT, NULL, b, NULL, 0);
		}
		static const char *const keys[] = {"C", "C♯", "D", "E♭", "E", "F", "F♯", "G", "A♭", "A", "B♭", "B"};
		double tempo, loud;
		long long key, mode, ts;
		if (json_get_double(root, "tempo", &tempo)) {
			snprintf(b, sizeof(b), "%-16s %.0f BPM", "tempo", tempo);
			items_add(&lines, ITEM_TEXT, NULL, b, NULL, 0);
		}
		if (json_get_int(root, "key", &key) && key >= 0 && key < 12) {
			bool have_mode = json_get_int(root, "mode", &mode);
			snprintf(b, sizeof(b), "%-16s %s%s", "key", keys[key], have_mode ? (mode ? " major" : " minor") : "");
			items_add(&lines, ITEM_TEXT, NULL, b, NULL, 0);
		}
		if (json_get_double(root, "loudness", &loud)) {
			snprintf(b, sizeof(b), "%-16s %.1f dB", "loudness", loud);
			items_add(&lines, ITEM_TEXT, NULL, b, NULL, 0);
		}
		if (json_get_int(root, "time_signature", &ts)) {
			snprintf(b, sizeof(b), "%-16s %lld/4", "time signature", ts);
			items_add(&lines, ITEM_TEXT, NULL, b, NULL, 0);
		}
		yajl_tree_free(root);
	} else {
		items_add(&lines, ITEM_TEXT, NULL, t->features_missing ? "not analysed yet" : "loading…", NULL, 0);
	}
	if (t->now_scroll > lines.n - h)
		t->now_scroll = lines.n - h;
	if (t->now_scroll < 0)
		t->now_scroll = 0;
	for (int r = 0; r < h && t->now_scroll + r < lines.n; r++)
		draw_item(t, y + r, x, w, &lines.v[t->now_scroll + r], false, false);
	items_free(&lines);
}

static void draw_help(struct tui *t, int y, int x, int h, int w)
{
	struct items *l = &t->help.items;
	items_clear(l);
	items_add(l, ITEM_HEADER, NULL, "Keys (rebind with 'bind KEY ACTION' in the config file)", NULL, 0);
	for (int a = ACT_NONE + 1; a < ACT_COUNT; a++) {
		char keys[128], line[400];
		keymap_keys_for(t->keymap, (enum keymap_action)a, keys, sizeof(keys));
		if (!keys[0])
			snprintf(keys, sizeof(keys), "(unbound)");
		char kf[64];
		textw_fit(keys, 18, true, kf, sizeof(kf));
		snprintf(line, sizeof(line), "%s %-17s %s", kf, keymap_action_name((enum keymap_action)a),
			 keymap_action_help((enum keymap_action)a));
		items_add(l, ITEM_TEXT, NULL, line, NULL, 0);
	}
	items_add(l, ITEM_TEXT, NULL, "", NULL, 0);
	items_add(l, ITEM_HEADER, NULL, "Commands after ':'", NULL, 0);
	static const char *const cmds[] = {
		"play [URI...]  pause  toggle  next  prev  stop  seek [+|-]SEC  volume [+|-]N",
		"shuffle [on|off]  repeat off|one|all  normalize on|off  status  quit",
		"queue  queue add URI  queue next URI  queue rm N  queue mv FROM TO  queue clear",
	};
	for (size_t i = 0; i < 3; i++)
		items_add(l, ITEM_TEXT, NULL, cmds[i], NULL, 0);
	char cfg[600];
	snprintf(cfg, sizeof(cfg), "Config file: %s", t->cfg_path);
	items_add(l, ITEM_TEXT, NULL, "", NULL, 0);
	items_add(l, ITEM_TEXT, NULL, cfg, NULL, 0);
	if (t->help.top > l->n - h)
		t->help.top = l->n - h;
	if (t->help.top < 0)
		t->help.top = 0;
	for (int r = 0; r < h && t->help.top + r < l->n; r++)
		draw_item(t, y + r, x, w, &l->v[t->help.top + r], false, false);
}

static void draw_nowplaying_bar(struct tui *t, int y, int w)
{
	struct engine_snapshot *s = &t->snap;
	attr_t bar = theme(t, CONFIG_THEME_BAR);
	move(y - 1, 0);
	attron(theme(t, CONFIG_THEME_DIM));
	for (int i = 0; i < w; i++)
		addstr("─");
	attroff(theme(t, CONFIG_THEME_DIM));

	/* Line 1: state, title — artist ........ vol shuffle repeat device */
	const char *icon = s->state == ENGINE_PLAYING ? "▶" : s->state == ENGINE_PAUSED ? "⏸"
			   : (s->state == ENGINE_LOADING || s->state == ENGINE_BUFFERING) ? spinner_frames[t->spinner % 10]
			   : s->state == ENGINE_ERROR ? "!" : "■";
	const char *rep = s->repeat == ENGINE_REPEAT_ONE ? "one" : s->repeat == ENGINE_REPEAT_ALL ? "all" : "off";
	char right[200], dev[80], devname[64];
	/* Where playback is: here, or the device it was handed to. */
	textw_fit(t->active_elsewhere, 16, false, devname, sizeof(devname));
	snprintf(dev, sizeof(dev), t->active_elsewhere[0] ? "⇢ %s" : "⌂ this device", devname);
	snprintf(right, sizeof(right), " vol %d%%  shuffle %s  repeat %s  %s ", s->volume, s->shuffle ? "on" : "off", rep, dev);
	int rw = textw_width(right);
	if (rw > w * 11 / 20) {
		/* Narrow terminals keep every field, abbreviated, rather than drop some. */
		snprintf(right, sizeof(right), " vol %d%% shuf %s rep %s %s ", s->volume, s->shuffle ? "on" : "off", rep,
			 t->active_elsewhere[0] ? dev : "this device");
		rw = textw_width(right);
	}
	if (rw > w * 11 / 20) {
		snprintf(right, sizeof(right), " %d%% %s%s ", s->volume, s->shuffle ? "S" : "-", rep);
		rw = textw_width(right);
	}
	char left[600];
	if (s->uri[0])
		snprintf(left, sizeof(left), " %s %s%s%s", icon, s->title[0] ? s->title : s->uri, s->artist[0] ? " — " : "", s->artist);
	else
		snprintf(left, sizeof(left), " %s Nothing playing", icon);
	put(y, 0, left, w - rw, true, bar);
	put(y, w - rw, right, rw, false, theme(t, CONFIG_THEME_DIM));

	/* Line 2: elapsed [bar] total  bitrate  buffer */
	char el[16], tot[16], info[96];
	fmt_time(s->position_ms, el, sizeof(el));
	fmt_time(s->duration_ms, tot, sizeof(tot));
	if (s->uri[0])
		snprintf(info, sizeof(info), " %s  %3d kbps  buf %4.1fs ", tot, s->bitrate_kbps, s->buffer_seconds);
	else
		snprintf(info, sizeof(info), " %s ", tot);
	char elp[24];
	snprintf(elp, sizeof(elp), " %s ", el);
	int ew = textw_width(elp), iw = textw_width(info);
	int bw = w - ew - iw;
	put(y + 1, 0, elp, ew, false, A_NORMAL);
	t->bar_y = y + 1;
	t->bar_x = ew;
	t->bar_w = bw > 0 ? bw : 0;
	if (bw > 0) {
		double frac = s->duration_ms > 0 ? (double)s->position_ms / s->duration_ms : 0;
		if (frac > 1)
			frac = 1;
		int filled = (int)(frac * bw + 0.5);
		move(y + 1, ew);
		attron(theme(t, CONFIG_THEME_PROGRESS));
		for (int i = 0; i < filled; i++)
			addstr("━");
		attroff(theme(t, CONFIG_THEME_PROGRESS));
		attron(theme(t, CONFIG_THEME_DIM));
		for (int i = filled; i < bw; i++)
			addstr("─");
		attroff(theme(t, CONFIG_THEME_DIM));
	}
	put(y + 1, ew + (bw > 0 ? bw : 0), info, iw, false, A_NORMAL);
}

static void draw(struct tui *t)
{
	getmaxyx(stdscr, t->rows, t->cols);
	erase();
	int H = t->rows, W = t->cols;
	if (H < 8 || W < 30) {
		put(0, 0, "Terminal too small for encore", W, false, A_BOLD);
		refresh();
		return;
	}
	/* Title line. */
	char title[300];
	if (t->view == VIEW_PLAYLISTS && t->pl_is_open)
		snprintf(title, sizeof(title), " encore · Playlists › %s", t->pl.name);
	else
		snprintf(title, sizeof(title), " encore · %s", view_info[t->view].name);
	put(0, 0, title, W, true, theme(t, CONFIG_THEME_ACCENT));
	if (fetcher_busy(t->fetcher) > 0) {
		char sp[8];
		snprintf(sp, sizeof(sp), "%s ", spinner_frames[t->spinner % 10]);
		put(0, W - 2, sp, 2, false, theme(t, CONFIG_THEME_ACCENT));
	}

	int side = W >= 60 ? SIDEBAR_W : 0;
	t->content_y = 1;
	t->content_h = H - 1 - 4; /* separator + two bar lines + status */
	t->content_x = side ? side + 1 : 0;
	t->content_w = W - t->content_x;
	if (side) {
		int row = 0;
		for (int v = 0; v < VIEW_COUNT && row < t->content_h; v++) {
			if (!view_info[v].available)
				continue;
			char l[64];
			snprintf(l, sizeof(l), " %s", view_info[v].name);
			attr_t a = v == (int)t->view ? (t->focus_sidebar ? theme(t, CONFIG_THEME_SELECTED) : theme(t, CONFIG_THEME_ACCENT))
						: A_NORMAL;
			put(t->content_y + row++, 0, l, side, true, a);
		}
		attron(theme(t, CONFIG_THEME_DIM));
		for (int r = 0; r < t->content_h; r++)
			mvaddstr(t->content_y + r, side, "│");
		attroff(theme(t, CONFIG_THEME_DIM));
	}
	int y = t->content_y, x = t->content_x + (side ? 1 : 0), h = t->content_h, w = t->content_w - (side ? 1 : 0);
	switch (t->view) {
	case VIEW_SEARCH: draw_search(t, y, x, h, w); break;
	case VIEW_LIBRARY: draw_library(t, y, x, h, w); break;
	case VIEW_QUEUE: draw_queue(t, y, x, h, w); break;
	case VIEW_NOW: draw_now(t, y, x, h, w); break;
	case VIEW_HELP: draw_help(t, y, x, h, w); break;
	case VIEW_HOME: draw_home(t, y, x, h, w); break;
	case VIEW_PLAYLISTS: draw_playlists(t, y, x, h, w); break;
	case VIEW_DEVICES: draw_devices(t, y, x, h, w); break;
	case VIEW_DOWNLOADS: draw_downloads(t, y, x, h, w); break;
	default: break;
	}
	draw_nowplaying_bar(t, H - 3, W);

	/* Status / command line. */
	if (t->cmd_active) {
		char l[300];
		snprintf(l, sizeof(l), ":%s", t->cmd);
		put(H - 1, 0, l, W, true, A_NORMAL);
		curs_set(1);
		move(H - 1, textw_width(l) < W ? textw_width(l) : W - 1);
	} else {
		curs_set(0);
		if (t->status[0])
			put(H - 1, 0, t->status, W, true, t->status_error ? theme(t, CONFIG_THEME_ERROR) : A_NORMAL);
		else
			put(H - 1, 0, "? help  / search  : command  q quit", W, true, theme(t, CONFIG_THEME_DIM));
	}
	refresh();
	t->dirty = false;
}

/* ---------------------------------------------------------------- setup */

/* The tier claim of the access token (unverified: it only sets the quality ceiling,
 * the server enforces the real one). */
static bool token_is_premium(const char *jwt)
{
	const char *a = jwt ? strchr(jwt, '.') : NULL, *b = a ? strchr(a + 1, '.') : NULL;
	if (!b)
		return true;
	size_t n;
	unsigned char *payload = b64url_decode(a + 1, (size_t)(b - a - 1), &n);
	if (!payload)
		return true;
	char err[64];
	yajl_val v = json_parse((char *)payload, err, sizeof(err));
	const char *tier = json_get_str(v, "tier");
	bool premium = !tier || strcmp(tier, "free") != 0;
	yajl_tree_free(v);
	free(payload);
	return premium;
}

static void apply_binds(struct tui *t)
{
	for (int i = 0; i < t->config->nbinds; i++) {
		char why[128];
		struct config_bind *b = &t->config->binds[i];
		if (keymap_bind(t->keymap, b->key, b->action, why, sizeof(why)) < 0) {
			char *msg = xasprintf("%s:%d: %s", t->config->name, b->line, why);
			t->config->errors = xrealloc(t->config->errors, (size_t)(t->config->nerrors + 1) * sizeof(char *));
			t->config->errors[t->config->nerrors++] = msg;
		}
	}
}

static struct engine *start_engine(struct tui *t, struct session *ses, const char *output)
{
	struct engine_config ec;
	engine_config_defaults(&ec);
	ec.api = t->api;
	ec.output = output;
	ec.quality = t->config->quality;
	ec.normalize = t->config->normalize;
	if (t->config->volume >= 0)
		ec.volume = t->config->volume;
	ec.premium = token_is_premium(session_access_token(ses));
	char *cache = NULL;
	if (paths_ensure(t->cli->paths, PATHS_CACHE) == 0)
		cache = paths_file(t->cli->paths, PATHS_CACHE, "cache.db");
	ec.cache_path = cache;
	/* Downloaded tracks play from the offline store, as in `encore play`. */
	t->offline = cli_open_offline(t->cli, false);
	ec.offline = t->offline;
	char err[256] = "", err2[256] = "";
	struct engine *e = engine_new(&ec, err, sizeof(err));
	if (!e && strncmp(output, "alsa", 4) == 0) {
		/* No sound card is common (servers, containers): play silently and say so once. */
		ec.output = "null:realtime";
		e = engine_new(&ec, err2, sizeof(err2));
		if (e)
			status_set(t, true, "audio output '%s' failed (%s); playing to null", output, err);
		else
			snprintf(err, sizeof(err), "%s", err2);
	}
	if (!e)
		cli_error(t->cli, "cannot start playback: %s", err);
	free(cache);
	return e;
}

static void tui_free(struct tui *t)
{
	mpris_free(t->mpris);   /* before the engine it listens to */
	if (t->ctl)
		ctlsock_stop(t->ctl);
	plwatch_stop(t->plw);
	downloader_free(t->dl);
	if (t->fetcher)
		fetcher_free(t->fetcher);
	/* Connect drives the engine: it goes first. */
	connect_client_stop(t->connect);
	if (t->engine)
		engine_free(t->engine);
	offline_free(t->offline);
	dl_state_free(&t->dls);
	items_free(&t->home.items);
	for (int p = 0; p < HOME_PARTS; p++)
		shelves_free(&t->home_parts[p]);
	items_free(&t->pl_list.items);
	items_free(&t->pl_open.items);
	items_free(&t->devices.items);
	items_free(&t->downloads.items);
	items_free(&t->suggestions);
	items_free(&t->results);
	items_free(&t->search.items);
	items_free(&t->library.items);
	for (int p = 0; p < 3; p++)
		items_free(&t->lib_parts[p]);
	items_free(&t->queue.items);
	items_free(&t->help.items);
	engine_queue_list_free(t->queue_uris, t->queue_n);
	for (int i = 0; i < t->nmeta; i++) {
		free(t->meta[i].title);
		free(t->meta[i].sub);
	}
	free(t->meta);
	for (int i = 0; i < t->npending; i++)
		free(t->meta_pending[i]);
	free(t->meta_pending);
	free(t->features_json);
	keymap_free(t->keymap);
	config_free(t->config);
}

/* Connect: this UI is a device the user's other clients see and can hand playback to or
 * from; without the server's socket it still plays. */
static void start_connect(struct tui *t)
{
	char host[64] = "encore";
	gethostname(host, sizeof(host) - 1);
	snprintf(t->device_name, sizeof(t->device_name), "%s", host);
	/* Its own id, not `encore play`'s DATA_DIR/device_id: both may run at once from the
	 * same data directory, and the hub must see two devices. */
	char *idpath = paths_file(t->cli->paths, PATHS_DATA, "tui_device_id");
	char devid[64], err[256];
	int rc = connect_device_id(idpath, devid);
	free(idpath);
	if (rc != 0)
		return;
	snprintf(t->device_id, sizeof(t->device_id), "%s", devid);
	struct connect_client_config cc = {.api = t->api, .engine = t->engine, .device_id = devid, .name = t->device_name,
					   .type = "computer"};
	t->connect = connect_client_start(&cc, err, sizeof(err));
	if (!t->connect)
		status_set(t, true, "Connect unavailable: %s", err);
}

/* Reads every waiting key without blocking. */
static void drain_keys(struct tui *t)
{
	for (;;) {
		wint_t ch;
		int ret = get_wch(&ch);
		if (ret == ERR)
			return;
		handle_key(t, ret, ch);
		if (t->quit)
			return;
	}
}

static void main_loop(struct tui *t, int sfd)
{
	struct pollfd pf[6] = {
		{.fd = STDIN_FILENO, .events = POLLIN},
		{.fd = engine_event_fd(t->engine), .events = POLLIN},
		{.fd = fetcher_fd(t->fetcher), .events = POLLIN},
		{.fd = sfd, .events = POLLIN},
		{.fd = downloader_fd(t->dl), .events = POLLIN},
		{.fd = t->plw ? plwatch_fd(t->plw) : -1, .events = POLLIN},
	};
	long long last_tick = now_ms();
	while (!t->quit) {
		if (t->status[0] && !t->status_error) {
			struct timespec n;
			clock_gettime(CLOCK_MONOTONIC, &n);
			long long age = (n.tv_sec - t->status_at.tv_sec) * 1000LL + (n.tv_nsec - t->status_at.tv_nsec) / 1000000;
			if (age > NOTICE_MS) {
				t->status[0] = 0;
				t->dirty = true;
			}
		}
		if (t->dirty)
			draw(t);
		bool moving = t->snap.state == ENGINE_PLAYING || t->snap.state == ENGINE_LOADING ||
			      t->snap.state == ENGINE_BUFFERING || fetcher_busy(t->fetcher) > 0 ||
			      (t->status[0] && !t->status_error);
		int timeout = moving ? TICK_MS : -1;
		int timer = timers_run(t);
		if (timer >= 0 && (timeout < 0 || timer < timeout))
			timeout = timer;
		int n = poll(pf, 6, timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			status_set(t, true, "poll: %s", strerror(errno));
			break;
		}
		if (pf[3].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGWINCH)
					handle_resize(t);
				else
					t->quit = true;
			}
		}
		if (pf[1].revents & POLLIN) {
			engine_ack_event(t->engine);
			engine_changed(t);
		}
		if (pf[2].revents & POLLIN) {
			struct fetch_result *r = fetcher_take(t->fetcher);
			for (struct fetch_result *p = r; p; p = p->next)
				handle_result(t, p);
			fetch_result_free(r);
			t->dirty = true;
		}
		if (pf[4].revents & POLLIN) {
			downloader_ack(t->dl);
			downloads_rebuild(t);
		}
		if (pf[5].revents & POLLIN) {
			plwatch_ack(t->plw);
			pl_pushed(t);
		}
		if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			if (pf[0].revents & (POLLHUP | POLLERR) && !(pf[0].revents & POLLIN))
				t->quit = true;
			drain_keys(t);
		}
		long long now = now_ms();
		if (moving && now - last_tick >= TICK_MS - 10) {
			/* The position moves without events; the tick redraws the progress bar. */
			last_tick = now;
			t->spinner++;
			engine_snapshot(t->engine, &t->snap);
			t->dirty = true;
		}
	}
}

int tui_run(struct cli_ctx *c)
{
	struct tui T;
	struct tui *t = &T;
	memset(t, 0, sizeof(*t));
	t->cli = c;
	t->config = config_new();
	t->keymap = keymap_new();
	setlocale(LC_ALL, "");

	char *cfg_path = paths_file(c->paths, PATHS_CONFIG, "config");
	snprintf(t->cfg_path, sizeof(t->cfg_path), "%s", cfg_path);
	free(cfg_path);
	config_load(t->config, t->cfg_path);
	apply_binds(t);
	if (!c->server_opt && !(c->server_env && *c->server_env) && t->config->server)
		c->server_opt = t->config->server;

	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		cli_error(c, "the interactive UI needs a terminal; see '%s --help' for commands", c->prog);
		tui_free(t);
		return EXIT_USAGE;
	}
	struct session *ses = NULL;
	int code = cli_open_session(c, &ses, &t->api);
	if (code != EXIT_OK) {
		tui_free(t);
		return code;
	}
	snprintf(t->me, sizeof(t->me), "%s", session_username(ses) ? session_username(ses) : "");

	/* Block the signals we poll for before any thread starts, so every thread inherits
	 * the mask and they are delivered only through the signalfd. */
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGWINCH);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);

	const char *output = c->output_opt ? c->output_opt : t->config->output ? t->config->output : "alsa";
	t->engine = start_engine(t, ses, output);
	t->fetcher = t->engine ? fetcher_new(t->api, 2) : NULL;
	t->mpris = t->engine ? mpris_new_from_config(t->engine, t->config) : NULL;
	/* Like cmus and cmus-remote: the TUI is what `encore remote` and scripts drive. */
	if (t->engine && paths_ensure(c->paths, PATHS_RUNTIME) == 0) {
		char *sock = paths_file(c->paths, PATHS_RUNTIME, "socket");
		char cerr[200];
		t->ctl = ctlsock_start(t->engine, sock, cerr, sizeof(cerr));
		if (!t->ctl)
			status_set(t, true, "remote control unavailable: %s", cerr);
		free(sock);
	}
	if (t->fetcher && paths_ensure(c->paths, PATHS_DATA) == 0) {
		char *dir = paths_file(c->paths, PATHS_DATA, "offline");
		char *key = paths_file(c->paths, PATHS_DATA, "offline-device.key");
		t->dl = downloader_new(t->api, dir, key);
		free(dir);
		free(key);
	}
	if (!t->engine || !t->fetcher || !t->dl || sfd < 0) {
		if (t->engine && (!t->fetcher || !t->dl))
			cli_error(c, "cannot start the fetcher or download threads");
		code = EXIT_ERR;
		goto out;
	}
	start_connect(t);
	char perr[200];
	t->plw = plwatch_start(t->api, perr, sizeof(perr));  /* without it, open playlists are polled */
	/* Config problems first: they explain anything odd that follows. */
	if (t->config->nerrors > 0) {
		if (t->config->nerrors == 1)
			status_set(t, true, "%s", t->config->errors[0]);
		else
			status_set(t, true, "%s (and %d more problems in %s)", t->config->errors[0], t->config->nerrors - 1,
				   t->cfg_path);
	}

	set_escdelay(25);
	initscr();
	cbreak();
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	nodelay(stdscr, TRUE);
	curs_set(0);
	colors_init(t);
	t->mouse = t->config->mouse;
	if (t->mouse)
		mousemask(BUTTON1_CLICKED | BUTTON1_PRESSED | BUTTON1_DOUBLE_CLICKED, NULL);
	mouseinterval(0);

	engine_snapshot(t->engine, &t->snap);
	t->view = VIEW_SEARCH;
	t->typing = true;
	t->dirty = true;
	main_loop(t, sfd);
	endwin();
	code = EXIT_OK;
out:
	tui_free(t);
	if (sfd >= 0)
		close(sfd);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	api_free(t->api);
	session_free(ses);
	return code;
}
