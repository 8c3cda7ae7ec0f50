/* keymap: which key does what in the TUI. Keys are ncurses key codes (characters as
 * their code point, KEY_* for special keys); actions are an enum with stable names so
 * `bind KEY ACTION` lines in the config can rebind them. Pure: no terminal I/O. */
#ifndef ENCORE_KEYMAP_H
#define ENCORE_KEYMAP_H
#include <stddef.h>

enum keymap_action {
	ACT_NONE,
	ACT_QUIT, ACT_HELP, ACT_SEARCH, ACT_COMMAND, ACT_REDRAW,
	ACT_UP, ACT_DOWN, ACT_TOP, ACT_BOTTOM, ACT_PAGE_UP, ACT_PAGE_DOWN,
	ACT_PANE_NEXT, ACT_PANE_LEFT, ACT_PANE_RIGHT,
	ACT_PLAY, ACT_TOGGLE, ACT_NEXT, ACT_PREV, ACT_SEEK_FWD, ACT_SEEK_BACK,
	ACT_VOL_UP, ACT_VOL_DOWN, ACT_SHUFFLE, ACT_REPEAT,
	ACT_ENQUEUE, ACT_PLAY_NEXT, ACT_MOVE_DOWN, ACT_MOVE_UP, ACT_REMOVE, ACT_SAVE,
	ACT_VIEW_SEARCH, ACT_VIEW_LIBRARY, ACT_VIEW_QUEUE, ACT_VIEW_NOW,
	ACT_VIEW_HOME, ACT_VIEW_PLAYLISTS, ACT_VIEW_DEVICES, ACT_VIEW_DOWNLOADS,
	ACT_BACK, ACT_DOWNLOAD, ACT_ADD_TO_PLAYLIST,
	ACT_COUNT
};

#define KEYMAP_MAX 160

struct keymap;

/* A keymap with the default bindings. Never NULL. */
struct keymap *keymap_new(void);
void keymap_free(struct keymap *km);

/* The action bound to key, ACT_NONE if none. */
enum keymap_action keymap_lookup(const struct keymap *km, int key);
/* Binds key_name to action_name ("none" unbinds). Returns 0, or -EINVAL with a reason
 * in why ("unknown key 'C-'", "unknown action 'plya'"), or -ENOSPC when full. */
int keymap_bind(struct keymap *km, const char *key_name, const char *action_name, char *why, size_t whylen);
/* Writes the keys bound to action as "j, Down" into out (empty when none). */
void keymap_keys_for(const struct keymap *km, enum keymap_action a, char *out, size_t outlen);

/* Parses "j", "J", "space", "enter", "tab", "up", "pgdn", "C-l", "F5", "<"... into a
 * key code; -1 when unknown. */
int keymap_parse_key(const char *name);
/* The display name of a key ("Space", "Up", "C-l", "j"). */
void keymap_key_name(int key, char *out, size_t outlen);
/* Action by config name ("play_next"); ACT_NONE (and false) when unknown. */
enum keymap_action keymap_action_by_name(const char *name, int *found);
const char *keymap_action_name(enum keymap_action a);
/* One-line description for the Help view. */
const char *keymap_action_help(enum keymap_action a);

#endif
