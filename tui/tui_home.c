/* tui_home: the Home view: shelves from the recommendation routes, fetched in parallel
 * and listed as one row per shelf, then the trending tracks. */
#include "tui_int.h"
#include "json.h"
#include "textw.h"
#include "xmem.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const home_titles[HOME_PARTS] = {"Discover Weekly", "Daily Mix", "Release Radar", "Trending now"};

static void home_rebuild(struct tui *t)
{
	char keep[64] = "";
	struct item *cur = list_current(&t->home);
	if (cur)
		snprintf(keep, sizeof(keep), "%s", cur->uri);
	items_clear(&t->home.items);
	bool made = false;
	for (int p = 0; p < HOME_PARTS - 1; p++) {
		for (int i = 0; i < t->home_parts[p].n; i++) {
			struct shelf *sh = &t->home_parts[p].v[i];
			if (!made)
				items_add(&t->home.items, ITEM_HEADER, NULL, "Made for you", NULL, 0);
			made = true;
			char uri[32], sub[400];
			snprintf(uri, sizeof(uri), "shelf:%d:%d", p, i);
			snprintf(sub, sizeof(sub), "%d track%s%s%s", sh->tracks.n, sh->tracks.n == 1 ? "" : "s", sh->sub[0] ? " · " : "",
				 sh->sub);
			items_add(&t->home.items, ITEM_SHELF, uri, sh->title, sub, 0);
		}
	}
	struct shelves *tr = &t->home_parts[HOME_PARTS - 1];
	if (tr->n && tr->v[0].tracks.n) {
		items_add(&t->home.items, ITEM_HEADER, NULL, home_titles[HOME_PARTS - 1], NULL, 0);
		for (int i = 0; i < tr->v[0].tracks.n; i++) {
			struct item *s = &tr->v[0].tracks.v[i];
			items_add(&t->home.items, s->type, s->uri, s->title, s->sub, s->duration_ms);
		}
	} else if (made && t->home_pending == 0) {
		items_add(&t->home.items, ITEM_HEADER, NULL, home_titles[HOME_PARTS - 1], NULL, 0);
		items_add(&t->home.items, ITEM_TEXT, NULL, "Nothing played on Encore in the last 30 minutes.", NULL, 0);
	}
	if (keep[0])
		for (int i = 0; i < t->home.items.n; i++)
			if (strcmp(t->home.items.v[i].uri, keep) == 0)
				t->home.sel = i;
	t->dirty = true;
}

void home_load(struct tui *t)
{
	static const char *const paths[HOME_PARTS] = {"/v1/me/discover-weekly", "/v1/me/daily-mixes", "/v1/me/release-radar",
						      "/v1/browse/trending?limit=20"};
	/* Shelves on screen stay until their fresh answer replaces them. */
	for (int p = 0; p < HOME_PARTS; p++) {
		fetcher_submit(t->fetcher, F_HOME_DISCOVER + p, F_HOME_DISCOVER + p, "GET", paths[p], NULL, NULL, 0);
	}
	t->home_note[0] = 0;
	t->home_pending = HOME_PARTS;
}

/* The shelf a "shelf:P:N" row stands for, or NULL. */
struct shelf *home_shelf(struct tui *t, const char *uri)
{
	int p, i;
	if (sscanf(uri, "shelf:%d:%d", &p, &i) != 2 || p < 0 || p >= HOME_PARTS || i < 0 || i >= t->home_parts[p].n)
		return NULL;
	return &t->home_parts[p].v[i];
}




void home_on_result(struct tui *t, const struct fetch_result *r, bool ok, const char *why)
{
	int p = r->kind - F_HOME_DISCOVER;
	shelves_clear(&t->home_parts[p]);
	/* One missing shelf leaves the others; the note says which failed. */
	if (!ok || shelves_parse(&t->home_parts[p], r->body, home_titles[p]) < 0)
		snprintf(t->home_note, sizeof(t->home_note), "%s: %s", home_titles[p], why[0] ? why : "malformed answer");
	for (int i = 0; i < t->home_parts[p].n; i++)
		meta_put_all(t, &t->home_parts[p].v[i].tracks);
	if (t->home_pending > 0)
		t->home_pending--;
	home_rebuild(t);
	return;
}

void draw_home(struct tui *t, int y, int x, int h, int w)
{
	if (t->home.items.n == 0) {
		if (t->home_pending > 0) {
			draw_loading(t, y + 1, x, w, "your recommendations");
			return;
		}
		static const char *const empty[] = {
			"Nothing here yet",
			"Discover Weekly, Daily Mixes, Release Radar and Trending appear here",
			"once the server has recommendations and listening history.",
		};
		draw_center_text(t, y + 1, x, w, empty, 3);
		if (t->home_note[0])
			put(y + 5, x + 1, t->home_note, w - 2, false, theme(t, CONFIG_THEME_ERROR));
		return;
	}
	draw_list(t, &t->home, y, x, h, w, false);
}

