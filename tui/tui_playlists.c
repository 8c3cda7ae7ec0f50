/* tui_playlists: the Playlists view: the list, an open playlist and its edits, the
 * playlist picker behind 'P', and live updates (plwatch push, snapshot polling as the
 * fallback). */
#include "tui_int.h"
#include "json.h"
#include "plchange.h"
#include "seqcrdt.h"
#include "textw.h"
#include "xmem.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void pl_list_load(struct tui *t)
{
	fetcher_submit(t->fetcher, F_PL_LIST, F_PL_LIST, "GET", "/v1/me/playlists?limit=50", NULL, NULL, 0);
	t->pl_list_loading = true;
}

void pl_open_load(struct tui *t)
{
	char *path = xasprintf("/v1/playlists/%s", uri_id(t->pl_uri));
	t->gen_pl_open = fetcher_submit(t->fetcher, F_PL_OPEN, F_PL_OPEN, "GET", path, NULL, t->pl_uri, 0);
	free(path);
	t->pl_open_loading = true;
	t->pl_next_poll = now_ms() + PL_POLL_MS;
}

void pl_open(struct tui *t, const struct item *it)
{
	snprintf(t->pl_uri, sizeof(t->pl_uri), "%s", it->uri);
	if (strcmp(t->pl.uri, it->uri) != 0) {
		memset(&t->pl, 0, sizeof(t->pl));
		snprintf(t->pl.name, sizeof(t->pl.name), "%s", it->title);
		items_clear(&t->pl_open.items);
		t->pl_open.sel = t->pl_open.top = 0;
	}
	t->pl_is_open = true;
	t->pl_note[0] = 0;
	if (t->plw)
		plwatch_watch(t->plw, uri_id(it->uri));
	pl_open_load(t);
	t->dirty = true;
}

void pl_close(struct tui *t)
{
	t->pl_is_open = false;
	if (t->plw)
		plwatch_watch(t->plw, NULL);
}

/* The version a snapshot id names; 0 for "" or a malformed one. */
static uint64_t snap_version(const char *s)
{
	uint64_t v;
	return s && s[0] && seq_snapshot_decode(s, &v) == 0 ? v : 0;
}

/* True when the push has told of a snapshot past the one on screen (after the pushes
 * applied so far): a push was not queued, or the subscription came back after a gap. */
static bool pl_behind(struct tui *t)
{
	char snap[128];
	if (!t->plw)
		return false;
	plwatch_snapshot(t->plw, snap, sizeof(snap));
	return snap_version(snap) > snap_version(t->pl.snapshot_id);
}

static void pl_status_change(struct tui *t, const struct plchange_summary *s)
{
	char what[160] = "";
	int k = 0;
	const char *verb[3] = {"added", "moved", "removed"};
	int count[3] = {s->added, s->moved, s->removed};
	for (int i = 0; i < 3; i++)
		if (count[i])
			k += snprintf(what + k, sizeof(what) - (size_t)k, "%s%s %d", k ? ", " : "", verb[i], count[i]);
	/* The user's own edits (from here or elsewhere) say "Added …"/"Playlist updated". */
	if (k && strcmp(s->by, t->me) != 0)
		status_set(t, false, "%s %s", s->by[0] ? s->by : "someone", what);
}

/* Pushes arrived: each is applied in place to the open playlist's rows (plchange.h), so a
 * live update fetches nothing; the playlist is refetched only when a push does not follow
 * the snapshot shown (one was missed) or needs rows the view does not hold, or when the
 * pushed snapshot is still ahead afterwards. While a fetch is in flight pushes are dropped:
 * its answer is compared with the pushed snapshot when it lands. */
void pl_pushed(struct tui *t)
{
	bool held = t->pl_is_open && !t->pl_open_loading && t->pl.snapshot_id[0];
	bool refetch = false;
	char *msg;
	while ((msg = plwatch_next(t->plw))) {
		if (held && !refetch) {
			struct plchange_summary sum;
			enum plchange_rc rc = plchange_apply(msg, uri_id(t->pl_uri), &t->pl, &t->pl_open.items, PL_WINDOW,
							     &t->pl_open.sel, &sum);
			if (rc == PLCHANGE_APPLIED) {
				t->dirty = true;
				pl_status_change(t, &sum);
			}
			refetch = rc == PLCHANGE_REFETCH;
		}
		free(msg);
	}
	if (t->view == VIEW_PLAYLISTS && held && (refetch || pl_behind(t)))
		pl_open_load(t);
}

/* Sends an edit of the open playlist, against the snapshot the user is looking at, so
 * the server rebases it over edits made meanwhile. */
static void pl_edit(struct tui *t, const char *method, struct jw *w, const char *what)
{
	if (t->pl.snapshot_id[0])
		jw_kstr(w, "snapshot_id", t->pl.snapshot_id);
	jw_obj_end(w);
	char *body = jw_finish(w);
	char *path = xasprintf("/v1/playlists/%s/tracks", uri_id(t->pl_uri));
	fetcher_submit(t->fetcher, F_PL_EDIT, -1, method, path, body, what, 0);
	t->pl_edit_busy = true;
	t->pl_edit_answered = false;
	free(path);
	free(body);
}

void pl_action(struct tui *t, enum keymap_action a)
{
	/* Positions name rows of the list on screen at its snapshot: until the last edit's
	 * answer and the refetched list are in, the screen is not what the server would
	 * rebase a new position against, so one edit at a time. */
	if (t->pl_edit_busy) {
		status_set(t, false, "Saving the last change…");
		return;
	}
	int sel = t->pl_open.sel;
	struct item *it = list_current(&t->pl_open);
	if (!it)
		return;
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	if (a == ACT_REMOVE) {
		jw_key(&w, "tracks");
		jw_arr(&w);
		jw_obj(&w);
		jw_kstr(&w, "uri", it->uri);
		jw_key(&w, "positions");
		jw_arr(&w);
		jw_int(&w, sel);
		jw_arr_end(&w);
		jw_obj_end(&w);
		jw_arr_end(&w);
		pl_edit(t, "DELETE", &w, it->title);
		t->pl_follow = sel;
		status_set(t, false, "Removing %s…", it->title);
		return;
	}
	int to = a == ACT_MOVE_DOWN ? sel + 1 : sel - 1;
	if (to < 0 || to >= t->pl_open.items.n) {
		jw_free(&w);
		return;
	}
	jw_kint(&w, "range_start", sel);
	jw_kint(&w, "insert_before", a == ACT_MOVE_DOWN ? sel + 2 : sel - 1);
	pl_edit(t, "PUT", &w, it->title);
	t->pl_follow = to;  /* the cursor goes with the item once the list is fetched again */
}

/* 'P': remember the track and let the user pick a playlist in the Playlists view. */
void add_to_playlist_begin(struct tui *t)
{
	struct listview *lv = current_list(t);
	struct item *it = lv ? list_current(lv) : NULL;
	if (!it || !(uri_is(it->uri, "track") || uri_is(it->uri, "episode"))) {
		status_set(t, true, "select a track to add to a playlist");
		return;
	}
	snprintf(t->add_uri, sizeof(t->add_uri), "%s", it->uri);
	snprintf(t->add_title, sizeof(t->add_title), "%s", it->title);
	t->add_return = t->view;
	t->add_was_open = t->pl_is_open;
	t->view = t->sidebar_sel = VIEW_PLAYLISTS;
	t->pl_is_open = false;
	pl_list_load(t);
	status_set(t, false, "Add %s to which playlist? Enter adds, Esc cancels", it->title);
}

void add_to_playlist_finish(struct tui *t, const struct item *pl)
{
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "uris");
	jw_arr(&w);
	jw_str(&w, t->add_uri);
	jw_arr_end(&w);
	jw_obj_end(&w);
	char *body = jw_finish(&w);
	char *path = xasprintf("/v1/playlists/%s/tracks", uri_id(pl->uri));
	char *tag = xasprintf("%s to %s", t->add_title, pl->title);
	fetcher_submit(t->fetcher, F_PL_ADD, -1, "POST", path, body, tag, 0);
	free(tag);
	free(path);
	free(body);
	t->add_uri[0] = 0;
	t->pl_is_open = t->add_was_open;
	t->view = t->sidebar_sel = t->add_return;
	t->dirty = true;
}


/* Handles the answers of the Playlists view's requests (F_PL_*). */
void playlists_on_result(struct tui *t, const struct fetch_result *r, bool ok, const char *why)
{
	if (r->kind == F_PL_LIST) {
		t->pl_list_loading = false;
		char keep[64] = "";
		struct item *cur = list_current(&t->pl_list);
		if (cur)
			snprintf(keep, sizeof(keep), "%s", cur->uri);
		items_clear(&t->pl_list.items);
		if (!ok || items_parse_playlists(&t->pl_list.items, r->body) < 0)
			snprintf(t->pl_note, sizeof(t->pl_note), "Playlists: %s", why[0] ? why : "malformed answer");
		else
			t->pl_note[0] = 0;
		for (int i = 0; keep[0] && i < t->pl_list.items.n; i++)
			if (strcmp(t->pl_list.items.v[i].uri, keep) == 0)
				t->pl_list.sel = i;
		t->dirty = true;
		return;
	}
	if (r->kind == F_PL_OPEN) {
		if (r->gen != t->gen_pl_open || !r->tag || strcmp(r->tag, t->pl_uri) != 0)
			return;
		t->pl_open_loading = false;
		/* The edit in flight (if any) is now on screen, or the fetch failed: either way
		 * the next edit may go. */
		bool follow = false;
		if (t->pl_edit_busy && t->pl_edit_answered) {
			follow = t->pl_follow >= 0;
			t->pl_edit_busy = t->pl_edit_answered = false;
		}
		struct playlist_info info;
		if (!ok || playlist_info_parse(r->body, &info) < 0) {
			snprintf(t->pl_note, sizeof(t->pl_note), "Cannot open the playlist: %s", why[0] ? why : "malformed answer");
			t->dirty = true;
			return;
		}
		t->pl = info;
		t->pl_note[0] = 0;
		items_clear(&t->pl_open.items);
		items_parse_playlist_items(&t->pl_open.items, r->body);
		meta_put_all(t, &t->pl_open.items);
		if (follow) {
			t->pl_open.sel = t->pl_follow;
			t->pl_follow = -1;
		}
		t->pl_next_poll = now_ms() + PL_POLL_MS;
		t->dirty = true;
		/* Pushes that came while this was in flight were dropped. */
		if (pl_behind(t))
			pl_open_load(t);
		return;
	}
	if (r->kind == F_PL_POLL) {
		if (!r->tag || strcmp(r->tag, t->pl_uri) != 0 || !t->pl_is_open || t->pl_open_loading)
			return;
		char snap[128] = "";
		if (ok) {
			yajl_val v = json_parse(r->body, NULL, 0);
			const char *s = json_get_str(v, "snapshot_id");
			snprintf(snap, sizeof(snap), "%s", s ? s : "");
			yajl_tree_free(v);
		}
		/* A new snapshot (someone edited) or an answer we cannot read: refetch. A
		 * transport failure just waits for the next poll. */
		if (r->rc == 0 && strcmp(snap, t->pl.snapshot_id) != 0)
			pl_open_load(t);
		return;
	}
	if (r->kind == F_PL_EDIT) {
		if (!ok) {
			status_set(t, true, "playlist edit failed: %s", why);
			t->pl_follow = -1;
		} else
			status_set(t, false, "Playlist updated");
		/* The list fetched from here on includes the edit (or shows it failed). */
		t->pl_edit_answered = true;
		const char *snap = NULL;
		yajl_val v = ok ? json_parse(r->body, NULL, 0) : NULL;
		snap = json_get_str(v, "snapshot_id");
		if (t->pl_is_open && t->pl_uri[0] && snap && !t->pl_open_loading &&
		    snap_version(snap) <= snap_version(t->pl.snapshot_id)) {
			/* Its push is already applied to the rows (the cursor went with them). */
			t->pl_edit_busy = t->pl_edit_answered = false;
			t->pl_follow = -1;
		} else if (t->pl_is_open && t->pl_uri[0]) {
			pl_open_load(t);
		} else {
			t->pl_edit_busy = t->pl_edit_answered = false;
		}
		yajl_tree_free(v);
		return;
	}
	if (r->kind == F_PL_ADD) {
		if (ok)
			status_set(t, false, "Added %s", r->tag ? r->tag : "");
		else
			status_set(t, true, "could not add %s: %s", r->tag ? r->tag : "", why);
		return;
	}
}

void draw_playlists(struct tui *t, int y, int x, int h, int w)
{
	char line[700];
	if (!t->pl_is_open) {
		if (t->add_uri[0])
			snprintf(line, sizeof(line), "Add \"%s\" to: (Enter adds, Esc cancels)", t->add_title);
		else
			snprintf(line, sizeof(line), "Your playlists · %d%s", t->pl_list.items.n,
				 t->pl_list.items.n ? "  (Enter opens, P on a track adds it)" : "");
		put(y, x, line, w, false, theme(t, CONFIG_THEME_ACCENT));
		if (t->pl_note[0])
			put(y + 1, x + 1, t->pl_note, w - 2, false, theme(t, CONFIG_THEME_ERROR));
		else if (t->pl_list.items.n == 0 && t->pl_list_loading)
			draw_loading(t, y + 1, x, w, "your playlists");
		else if (t->pl_list.items.n == 0)
			put(y + 1, x + 1, "No playlists yet: `encore playlist create NAME` makes one.", w - 2, false,
			    theme(t, CONFIG_THEME_DIM));
		draw_list(t, &t->pl_list, y + 1, x, h - 1, w, false);
		return;
	}
	struct playlist_info *p = &t->pl;
	snprintf(line, sizeof(line), "%s · %lld track%s%s", p->name, p->total, p->total == 1 ? "" : "s",
		 p->total > t->pl_open.items.n && t->pl_open.items.n ? " (the first 100 shown)" : "");
	put(y, x, line, w, false, theme(t, CONFIG_THEME_ACCENT));
	snprintf(line, sizeof(line), "by %s%s%s%s", p->owner[0] ? p->owner : "…", p->collaborative ? " · collaborative" : "",
		 p->collaborators[0] ? " · collaborators: " : "", p->collaborators);
	put(y + 1, x + 1, line, w - 2, false, theme(t, CONFIG_THEME_DIM));
	if (t->pl_note[0])
		put(y + 2, x + 1, t->pl_note, w - 2, false, theme(t, CONFIG_THEME_ERROR));
	else
		put(y + 2, x + 1, "Enter plays from here · J/K move · d removes · Esc back", w - 2, false,
		    theme(t, CONFIG_THEME_DIM));
	if (t->pl_open.items.n == 0) {
		if (t->pl_open_loading)
			draw_loading(t, y + 3, x, w, "the playlist");
		else
			put(y + 3, x + 1, "This playlist is empty: P on a track in Search or the Queue adds it here.", w - 2, false,
			    theme(t, CONFIG_THEME_DIM));
		return;
	}
	draw_list(t, &t->pl_open, y + 3, x, h - 3, w, false);
}


long long playlists_timer(struct tui *t, long long now)
{
	char snap[128];
	bool pushed = t->plw && plwatch_snapshot(t->plw, snap, sizeof(snap));
	if (t->view != VIEW_PLAYLISTS || !t->pl_is_open || !t->pl.snapshot_id[0] || pushed)
		return -1;
	if (now >= t->pl_next_poll && !t->pl_open_loading) {
		char *path = xasprintf("/v1/playlists/%s/changes?since=%s", uri_id(t->pl_uri), t->pl.snapshot_id);
		fetcher_submit(t->fetcher, F_PL_POLL, F_PL_POLL, "GET", path, NULL, t->pl_uri, 0);
		free(path);
		t->pl_next_poll = now + PL_POLL_MS;
	}
	return t->pl_next_poll - now;
}
