/* tui_downloads: the Downloads view over the downloader thread's published state, and
 * the 'd'/'D' download of the selection. */
#include "tui_int.h"
#include "json.h"
#include "textw.h"
#include "xmem.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void fmt_bytes(uint64_t b, char *out, size_t n)
{
	if (b >= 1000000)
		snprintf(out, n, "%.1f MB", (double)b / 1e6);
	else
		snprintf(out, n, "%.0f kB", (double)b / 1e3);
}

void downloads_rebuild(struct tui *t)
{
	dl_state_free(&t->dls);
	downloader_state(t->dl, &t->dls);
	items_clear(&t->downloads.items);
	long long now = (long long)time(NULL);
	for (int i = 0; i < t->dls.n; i++) {
		struct dl_entry *e = &t->dls.v[i];
		struct meta *m = meta_find(t, e->uri);
		char sub[200], size[32];
		fmt_bytes(e->bytes, size, sizeof(size));
		long long days = (e->expires_at - now) / 86400;
		if (e->expires_at <= now)
			snprintf(sub, sizeof(sub), "%s · %dk · licence expired", size, e->bitrate);
		else
			snprintf(sub, sizeof(sub), "%s · %dk · licence %lld d", size, e->bitrate, days);
		items_add(&t->downloads.items, ITEM_DOWNLOAD, e->uri, e->name[0] ? e->name : m ? m->title : e->uri, sub, 0);
		struct item *it = &t->downloads.items.v[t->downloads.items.n - 1];
		it->done = (int)e->done;
		it->total = (int)e->total;
		it->marked = e->complete;
	}
	if (t->dls.finished != t->dl_finished_seen) {
		t->dl_finished_seen = t->dls.finished;
		if (t->dls.error[0])
			status_set(t, true, "%s", t->dls.error);
		else if (t->dls.done_msg[0])
			status_set(t, false, "%s", t->dls.done_msg);
	}
	t->dirty = true;
}

/* 'd' outside the Queue and an open playlist, and 'D' anywhere: download the selection. */
void download_selected(struct tui *t)
{
	struct listview *lv = current_list(t);
	struct item *it = lv ? list_current(lv) : NULL;
	if (it && it->type == ITEM_SHELF) {
		struct shelf *sh = home_shelf(t, it->uri);
		int n = 0;
		for (int i = 0; sh && i < sh->tracks.n; i++)
			if (downloader_add(t->dl, sh->tracks.v[i].uri, sh->tracks.v[i].title) == 0)
				n++;
		status_set(t, false, "Downloading %s (%d tracks) in the background", it->title, n);
		return;
	}
	if (!it || !(uri_is(it->uri, "track") || uri_is(it->uri, "album") || uri_is(it->uri, "playlist"))) {
		status_set(t, true, "select a track, album or playlist to download");
		return;
	}
	if (downloader_add(t->dl, it->uri, it->title) < 0) {
		status_set(t, true, "cannot download %s", it->uri);
		return;
	}
	meta_put(t, it);
	status_set(t, false, "Downloading %s in the background (8 shows progress)", it->title);
}


void draw_downloads(struct tui *t, int y, int x, int h, int w)
{
	struct dl_state *d = &t->dls;
	char line[600], used[32], quota[64] = "no quota";
	fmt_bytes(d->bytes, used, sizeof(used));
	if (d->quota) {
		char q[32];
		fmt_bytes(d->quota, q, sizeof(q));
		snprintf(quota, sizeof(quota), "quota %s", q);
	}
	snprintf(line, sizeof(line), "Downloads · %d track%s · %s used · %s", d->n, d->n == 1 ? "" : "s", used, quota);
	put(y, x, line, w, false, theme(t, CONFIG_THEME_ACCENT));
	if (d->active[0])
		snprintf(line, sizeof(line), "%s Downloading %s%s", spinner_frames[t->spinner % 10], d->active,
			 d->queued > 0 ? " (more queued)" : "");
	else if (d->error[0])
		snprintf(line, sizeof(line), "%s", d->error);
	else
		snprintf(line, sizeof(line), "d or D on a track, album or playlist downloads it; Enter plays");
	put(y + 1, x + 1, line, w - 2, false, d->error[0] && !d->active[0] ? theme(t, CONFIG_THEME_ERROR) : theme(t, CONFIG_THEME_DIM));
	if (t->downloads.items.n == 0) {
		put(y + 3, x + 1, d->loaded ? "Nothing downloaded yet." : "Reading the offline store…", w - 2, false,
		    theme(t, CONFIG_THEME_DIM));
		return;
	}
	draw_list(t, &t->downloads, y + 2, x, h - 2, w, false);
}

