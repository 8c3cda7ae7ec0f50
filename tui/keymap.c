/* keymap: default bindings, key names and rebinding. */
#include "keymap.h"
#include "xmem.h"
#include <curses.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct binding {
	int key;
	enum keymap_action action;
};

struct keymap {
	struct binding b[KEYMAP_MAX];
	int n;
};

static const struct {
	const char *name, *help;
} actions[ACT_COUNT] = {
	[ACT_NONE] = {"none", "unbound"},
	[ACT_QUIT] = {"quit", "quit"},
	[ACT_HELP] = {"help", "this help"},
	[ACT_SEARCH] = {"search", "search (type to refine, Enter plays)"},
	[ACT_COMMAND] = {"command", "command line (same commands as 'encore remote')"},
	[ACT_REDRAW] = {"redraw", "redraw the screen"},
	[ACT_UP] = {"up", "move up"},
	[ACT_DOWN] = {"down", "move down"},
	[ACT_TOP] = {"top", "go to the first row"},
	[ACT_BOTTOM] = {"bottom", "go to the last row"},
	[ACT_PAGE_UP] = {"page_up", "page up"},
	[ACT_PAGE_DOWN] = {"page_down", "page down"},
	[ACT_PANE_NEXT] = {"pane_next", "switch between sidebar and content"},
	[ACT_PANE_LEFT] = {"pane_left", "focus the sidebar"},
	[ACT_PANE_RIGHT] = {"pane_right", "focus the content"},
	[ACT_PLAY] = {"play", "play the selected item"},
	[ACT_TOGGLE] = {"toggle", "pause / resume"},
	[ACT_NEXT] = {"next", "next track"},
	[ACT_PREV] = {"prev", "previous track"},
	[ACT_SEEK_FWD] = {"seek_forward", "seek forward 5 s"},
	[ACT_SEEK_BACK] = {"seek_back", "seek back 5 s"},
	[ACT_VOL_UP] = {"volume_up", "volume up"},
	[ACT_VOL_DOWN] = {"volume_down", "volume down"},
	[ACT_SHUFFLE] = {"shuffle", "toggle shuffle"},
	[ACT_REPEAT] = {"repeat", "cycle repeat off / all / one"},
	[ACT_ENQUEUE] = {"enqueue", "add the selected track to the queue"},
	[ACT_PLAY_NEXT] = {"play_next", "play the selected track next"},
	[ACT_MOVE_DOWN] = {"move_down", "queue, playlist: move the selected entry down"},
	[ACT_MOVE_UP] = {"move_up", "queue, playlist: move the selected entry up"},
	[ACT_REMOVE] = {"remove", "remove (queue, playlist, download); elsewhere download"},
	[ACT_SAVE] = {"save", "save the selected track to your library"},
	[ACT_VIEW_SEARCH] = {"view_search", "Search view"},
	[ACT_VIEW_LIBRARY] = {"view_library", "Library view"},
	[ACT_VIEW_QUEUE] = {"view_queue", "Queue view"},
	[ACT_VIEW_NOW] = {"view_now_playing", "Now Playing view"},
	[ACT_VIEW_HOME] = {"view_home", "Home view (Discover Weekly, mixes, trending)"},
	[ACT_VIEW_PLAYLISTS] = {"view_playlists", "Playlists view"},
	[ACT_VIEW_DEVICES] = {"view_devices", "Devices view (Enter transfers playback)"},
	[ACT_VIEW_DOWNLOADS] = {"view_downloads", "Downloads view"},
	[ACT_BACK] = {"back", "back (from an open playlist to the list)"},
	[ACT_DOWNLOAD] = {"download", "download the selected track, album or playlist"},
	[ACT_ADD_TO_PLAYLIST] = {"add_to_playlist", "add the selected track to a playlist"},
};

#define CTRL_KEY(c) ((c) & 0x1f)

static const struct binding defaults[] = {
	{'q', ACT_QUIT}, {'?', ACT_HELP}, {'/', ACT_SEARCH}, {':', ACT_COMMAND}, {CTRL_KEY('l'), ACT_REDRAW},
	{'k', ACT_UP}, {KEY_UP, ACT_UP}, {'j', ACT_DOWN}, {KEY_DOWN, ACT_DOWN},
	{'g', ACT_TOP}, {KEY_HOME, ACT_TOP}, {'G', ACT_BOTTOM}, {KEY_END, ACT_BOTTOM},
	{KEY_PPAGE, ACT_PAGE_UP}, {CTRL_KEY('b'), ACT_PAGE_UP}, {KEY_NPAGE, ACT_PAGE_DOWN}, {CTRL_KEY('f'), ACT_PAGE_DOWN},
	{'\t', ACT_PANE_NEXT}, {'h', ACT_PANE_LEFT}, {'l', ACT_PANE_RIGHT},
	{'\n', ACT_PLAY}, {'\r', ACT_PLAY}, {KEY_ENTER, ACT_PLAY}, {' ', ACT_TOGGLE},
	{'n', ACT_NEXT}, {'p', ACT_PREV}, {KEY_RIGHT, ACT_SEEK_FWD}, {KEY_LEFT, ACT_SEEK_BACK},
	{'+', ACT_VOL_UP}, {'=', ACT_VOL_UP}, {'-', ACT_VOL_DOWN},
	{'s', ACT_SHUFFLE}, {'r', ACT_REPEAT}, {'a', ACT_ENQUEUE}, {'A', ACT_PLAY_NEXT},
	{'J', ACT_MOVE_DOWN}, {'K', ACT_MOVE_UP}, {'d', ACT_REMOVE}, {KEY_DC, ACT_REMOVE}, {'L', ACT_SAVE},
	{'1', ACT_VIEW_SEARCH}, {'2', ACT_VIEW_LIBRARY}, {'3', ACT_VIEW_QUEUE}, {'4', ACT_VIEW_NOW},
	{'5', ACT_VIEW_HOME}, {'6', ACT_VIEW_PLAYLISTS}, {'7', ACT_VIEW_DEVICES}, {'8', ACT_VIEW_DOWNLOADS},
	{27, ACT_BACK}, {KEY_BACKSPACE, ACT_BACK}, {'D', ACT_DOWNLOAD}, {'P', ACT_ADD_TO_PLAYLIST},
};

static const struct {
	const char *name;
	int key;
} named_keys[] = {
	{"space", ' '}, {"enter", '\n'}, {"return", '\n'}, {"tab", '\t'}, {"esc", 27}, {"escape", 27},
	{"up", KEY_UP}, {"down", KEY_DOWN}, {"left", KEY_LEFT}, {"right", KEY_RIGHT},
	{"home", KEY_HOME}, {"end", KEY_END}, {"pgup", KEY_PPAGE}, {"pageup", KEY_PPAGE},
	{"pgdn", KEY_NPAGE}, {"pagedown", KEY_NPAGE}, {"backspace", KEY_BACKSPACE},
	{"delete", KEY_DC}, {"del", KEY_DC}, {"insert", KEY_IC}, {"backtab", KEY_BTAB},
};

struct keymap *keymap_new(void)
{
	struct keymap *km = xcalloc(1, sizeof(*km));
	km->n = (int)(sizeof(defaults) / sizeof(defaults[0]));
	memcpy(km->b, defaults, sizeof(defaults));
	return km;
}

void keymap_free(struct keymap *km)
{
	free(km);
}

enum keymap_action keymap_lookup(const struct keymap *km, int key)
{
	for (int i = 0; i < km->n; i++)
		if (km->b[i].key == key)
			return km->b[i].action;
	return ACT_NONE;
}

int keymap_parse_key(const char *name)
{
	size_t n = strlen(name);
	if (n == 0)
		return -1;
	/* One character (possibly multibyte UTF-8: a single code point). */
	const unsigned char *u = (const unsigned char *)name;
	if (n == 1 && u[0] >= 0x20 && u[0] < 0x7f)
		return u[0];
	if ((n == 2 && (u[0] & 0xe0) == 0xc0) || (n == 3 && (u[0] & 0xf0) == 0xe0)) {
		int cp = u[0] & (n == 2 ? 0x1f : 0x0f);
		for (size_t i = 1; i < n; i++) {
			if ((u[i] & 0xc0) != 0x80)
				return -1;
			cp = (cp << 6) | (u[i] & 0x3f);
		}
		return cp;
	}
	if ((name[0] == 'C' || name[0] == 'c') && name[1] == '-' && n == 3 && name[2] >= 'a' && name[2] <= 'z')
		return CTRL_KEY(name[2]);
	if (name[0] == '^' && n == 2 && ((name[1] >= 'a' && name[1] <= 'z') || (name[1] >= 'A' && name[1] <= 'Z')))
		return CTRL_KEY(name[1]);
	if ((name[0] == 'F' || name[0] == 'f') && n <= 3 && n >= 2 && strspn(name + 1, "0123456789") == n - 1) {
		int f = atoi(name + 1);
		if (f >= 1 && f <= 12)
			return KEY_F(f);
	}
	for (size_t i = 0; i < sizeof(named_keys) / sizeof(named_keys[0]); i++)
		if (strcasecmp(name, named_keys[i].name) == 0)
			return named_keys[i].key;
	return -1;
}

void keymap_key_name(int key, char *out, size_t outlen)
{
	static const struct {
		int key;
		const char *name;
	} pretty[] = {
		{' ', "Space"}, {'\n', "Enter"}, {'\r', "Return"}, {KEY_ENTER, "KEnter"}, {'\t', "Tab"}, {27, "Esc"},
		{KEY_UP, "Up"}, {KEY_DOWN, "Down"}, {KEY_LEFT, "Left"}, {KEY_RIGHT, "Right"},
		{KEY_HOME, "Home"}, {KEY_END, "End"}, {KEY_PPAGE, "PgUp"}, {KEY_NPAGE, "PgDn"},
		{KEY_BACKSPACE, "Backspace"}, {KEY_DC, "Delete"}, {KEY_IC, "Insert"}, {KEY_BTAB, "BackTab"},
	};
	for (size_t i = 0; i < sizeof(pretty) / sizeof(pretty[0]); i++)
		if (pretty[i].key == key) {
			snprintf(out, outlen, "%s", pretty[i].name);
			return;
		}
	if (key >= KEY_F(1) && key <= KEY_F(12))
		snprintf(out, outlen, "F%d", key - KEY_F0);
	else if (key > 0 && key < 0x20)
		snprintf(out, outlen, "C-%c", key + 'a' - 1);
	else if (key >= 0x20 && key < 0x7f)
		snprintf(out, outlen, "%c", key);
	else if (key >= 0x80 && key < 0x800)
		snprintf(out, outlen, "%c%c", 0xc0 | (key >> 6), 0x80 | (key & 0x3f));
	else if (key >= 0x800 && key < 0x10000 && key < KEY_MIN)
		snprintf(out, outlen, "%c%c%c", 0xe0 | (key >> 12), 0x80 | ((key >> 6) & 0x3f), 0x80 | (key & 0x3f));
	else
		snprintf(out, outlen, "key%d", key);
}

enum keymap_action keymap_action_by_name(const char *name, int *found)
{
	for (int i = 0; i < ACT_COUNT; i++)
		if (actions[i].name && strcmp(actions[i].name, name) == 0) {
			if (found)
				*found = 1;
			return (enum keymap_action)i;
		}
	if (found)
		*found = 0;
	return ACT_NONE;
}

const char *keymap_action_name(enum keymap_action a)
{
	return (unsigned)a < ACT_COUNT ? actions[a].name : "none";
}

const char *keymap_action_help(enum keymap_action a)
{
	return (unsigned)a < ACT_COUNT ? actions[a].help : "";
}

int keymap_bind(struct keymap *km, const char *key_name, const char *action_name, char *why, size_t whylen)
{
	int key = keymap_parse_key(key_name);
	if (key < 0) {
		snprintf(why, whylen, "unknown key '%s'", key_name);
		return -EINVAL;
	}
	int found;
	enum keymap_action a = keymap_action_by_name(action_name, &found);
	if (!found) {
		snprintf(why, whylen, "unknown action '%s'", action_name);
		return -EINVAL;
	}
	for (int i = 0; i < km->n; i++) {
		if (km->b[i].key == key) {
			if (a == ACT_NONE) {
				km->b[i] = km->b[--km->n];
			} else {
				km->b[i].action = a;
			}
			return 0;
		}
	}
	if (a == ACT_NONE)
		return 0;
	if (km->n >= KEYMAP_MAX) {
		snprintf(why, whylen, "too many key bindings");
		return -ENOSPC;
	}
	km->b[km->n++] = (struct binding){key, a};
	return 0;
}

void keymap_keys_for(const struct keymap *km, enum keymap_action a, char *out, size_t outlen)
{
	size_t o = 0;
	out[0] = 0;
	for (int i = 0; i < km->n && o + 1 < outlen; i++) {
		if (km->b[i].action != a || km->b[i].key == '\r' || km->b[i].key == KEY_ENTER)
			continue;
		char name[32];
		keymap_key_name(km->b[i].key, name, sizeof(name));
		int w = snprintf(out + o, outlen - o, "%s%s", o ? ", " : "", name);
		if (w < 0 || (size_t)w >= outlen - o)
			break;
		o += (size_t)w;
	}
}
