/* tui_devices: the Devices view: Connect devices, the active one marked; Enter
 * transfers playback. */
#include "tui_int.h"
#include "json.h"
#include "textw.h"
#include "xmem.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void devices_load(struct tui *t)
{
	fetcher_submit(t->fetcher, F_DEVICES, F_DEVICES, "GET", "/v1/me/player/devices", NULL, NULL, 0);
	t->dev_loading = true;
	t->dev_next_poll = now_ms() + DEVICES_POLL_MS;
}

void devices_transfer(struct tui *t)
{
	struct item *it = list_current(&t->devices);
	if (!it)
		return;
	if (it->marked) {
		status_set(t, false, "%s is already playing", it->title);
		return;
	}
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "device_ids");
	jw_arr(&w);
	jw_str(&w, it->uri);
	jw_arr_end(&w);
	jw_kbool(&w, "play", true);
	jw_obj_end(&w);
	char *body = jw_finish(&w);
	fetcher_submit(t->fetcher, F_TRANSFER, -1, "PUT", "/v1/me/player", body, it->title, 0);
	free(body);
	status_set(t, false, "Transferring playback to %s…", it->title);
}


/* Handles the device list and transfer answers. */
void devices_on_result(struct tui *t, const struct fetch_result *r, bool ok, const char *why)
{
	if (r->kind == F_DEVICES) {
		t->dev_loading = false;
		if (!ok) {
			snprintf(t->dev_note, sizeof(t->dev_note), "Devices: %s", why);
		} else {
			char keep[64] = "";
			struct item *cur = list_current(&t->devices);
			if (cur)
				snprintf(keep, sizeof(keep), "%s", cur->uri);
			items_clear(&t->devices.items);
			items_parse_devices(&t->devices.items, r->body);
			t->dev_note[0] = 0;
			t->active_elsewhere[0] = 0;
			for (int i = 0; i < t->devices.items.n; i++) {
				struct item *d = &t->devices.items.v[i];
				if (d->marked && strcmp(d->uri, t->device_id) != 0)
					snprintf(t->active_elsewhere, sizeof(t->active_elsewhere), "%s", d->title);
			}
			for (int i = 0; keep[0] && i < t->devices.items.n; i++)
				if (strcmp(t->devices.items.v[i].uri, keep) == 0)
					t->devices.sel = i;
		}
		t->dirty = true;
		return;
	}
	if (r->kind == F_TRANSFER) {
		if (ok)
			status_set(t, false, "Playback transferred to %s", r->tag ? r->tag : "");
		else
			status_set(t, true, "cannot transfer to %s: %s", r->tag ? r->tag : "", why);
		devices_load(t);
		return;
	}
}

void draw_devices(struct tui *t, int y, int x, int h, int w)
{
	char line[200];
	snprintf(line, sizeof(line), "Devices · this one is \"%s\" · Enter transfers playback", t->device_name);
	put(y, x, line, w, false, theme(t, CONFIG_THEME_ACCENT));
	if (t->dev_note[0])
		put(y + 1, x + 1, t->dev_note, w - 2, false, theme(t, CONFIG_THEME_ERROR));
	else if (t->devices.items.n == 0 && t->dev_loading)
		draw_loading(t, y + 1, x, w, "devices");
	else if (t->devices.items.n == 0)
		put(y + 1, x + 1, "No devices online.", w - 2, false, theme(t, CONFIG_THEME_DIM));
	draw_list(t, &t->devices, y + 1, x, h - 1, w, false);
}


long long devices_timer(struct tui *t, long long now)
{
	if (t->view != VIEW_DEVICES)
		return -1;
	if (now >= t->dev_next_poll && !t->dev_loading)
		devices_load(t);
	return t->dev_next_poll - now;
}
