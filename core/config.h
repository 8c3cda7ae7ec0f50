/* config: the user's settings file, $XDG_CONFIG_HOME/encore/config (see core/paths.h).
 *
 * One setting per line, `NAME VALUE` or `NAME = VALUE`; `#` starts a comment; values may
 * be double-quoted. Settings: server URL | quality auto|24|96|160|320 | normalize on|off
 * | output SINK | volume 0..100 | mouse on|off | mpris on|off | notify on|off | theme.ELEMENT FG[,BG][,bold] | bind KEY ACTION
 * | offline_quota BYTES[K|M|G]|none | offline_min_free_mb N.
 * A bad line is recorded as "FILE:LINE: why" and skipped; the rest still loads, so one
 * typo never costs the user their whole configuration. Keys and actions of `bind` lines
 * are kept as text (with their line) for the UI's keymap to validate. */
#ifndef ENCORE_CONFIG_H
#define ENCORE_CONFIG_H
#include <stdbool.h>

/* Themeable parts of the UI. */
enum config_theme {
	CONFIG_THEME_NORMAL,    /* body text */
	CONFIG_THEME_ACCENT,    /* headings, the playing track */
	CONFIG_THEME_SELECTED,  /* the cursor row */
	CONFIG_THEME_BAR,       /* the now-playing bar */
	CONFIG_THEME_PROGRESS,  /* the filled part of the progress bar */
	CONFIG_THEME_DIM,       /* secondary text */
	CONFIG_THEME_ERROR,     /* errors in the status line */
	CONFIG_THEME_COUNT
};

/* A colour pair: -1 is the terminal's default; 0..255 are terminal colours. */
struct config_color {
	short fg, bg;
	bool bold;
	bool set;      /* the file set it (otherwise the UI uses its default) */
};

struct config_bind {
	char *key, *action;
	int line;
};

struct config {
	char *server;        /* NULL when unset */
	int quality;         /* 0 = auto */
	bool normalize;      /* default true */
	char *output;        /* NULL when unset */
	int volume;          /* -1 when unset */
	bool mouse;          /* default true: click to select, click the progress bar to seek */
	bool mpris;          /* default true: an MPRIS player on the session bus, if there is one */
	bool notify;         /* default false: a desktop notification when a track starts */
	long long offline_quota;        /* bytes; -1 when unset (the store's own setting applies), 0 = none */
	long long offline_min_free_mb;  /* free disk to keep when downloading; -1 when unset */
	struct config_color theme[CONFIG_THEME_COUNT];
	struct config_bind *binds;
	int nbinds;
	char **errors;       /* "FILE:LINE: message", one per bad line */
	int nerrors;
	char *name;          /* the file's basename as used in messages */
};

/* A configuration holding the defaults. Never NULL; free with config_free. */
struct config *config_new(void);
void config_free(struct config *c);

/* Parses text as the file called name (its basename prefixes messages) into c, later
 * lines overriding earlier ones. Returns the number of bad lines (each in c->errors). */
int config_parse(struct config *c, const char *name, const char *text);
/* Reads and parses path. A missing file is not an error (returns 0, nothing changes).
 * Returns the number of bad lines, or -errno when the file exists but cannot be read
 * (a message is added to c->errors too). */
int config_load(struct config *c, const char *path);

/* "accent", ... for an element; NULL when out of range. */
const char *config_theme_name(enum config_theme t);
/* Parses a colour name (default black red green yellow blue magenta cyan white, bright
 * variants as "brightred", or 0..255). Returns the colour, -1 for default, -2 if unknown. */
int config_parse_color(const char *s);

#endif
