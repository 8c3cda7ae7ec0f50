/* items: the rows the TUI lists (search results, suggestions, library, queue), built
 * from Web API JSON. Pure: text in, rows out, so the shapes unit-test without a server. */
#ifndef ENCORE_ITEMS_H
#define ENCORE_ITEMS_H
#include <stdbool.h>

enum item_type {
	ITEM_HEADER,      /* a group title ("Tracks"); not selectable */
	ITEM_SUGGESTION,  /* an autocomplete suggestion */
	ITEM_TRACK,
	ITEM_ARTIST,
	ITEM_ALBUM,
	ITEM_TEXT,        /* an informational line; not selectable */
};

struct item {
	enum item_type type;
	char uri[64];
	char *title;      /* owned; never NULL */
	char *sub;        /* owned; artists · album for tracks; never NULL */
	int duration_ms;  /* tracks; 0 otherwise */
};

struct items {
	struct item *v;
	int n, cap;
};

#define ITEMS_INIT {NULL, 0, 0}

/* Appends a row (strings copied, NULL means ""). */
void items_add(struct items *l, enum item_type type, const char *uri, const char *title, const char *sub, int duration_ms);
/* Removes every row, keeping the storage. */
void items_clear(struct items *l);
void items_free(struct items *l);
/* True for rows the cursor may rest on. */
bool items_selectable(const struct item *it);

/* Appends a search response ({"tracks":{"items":[...]},"artists":...,"albums":...}) as
 * groups under headers. Returns the rows added, or -EINVAL when json is malformed. */
int items_parse_search(struct items *l, const char *json);
/* Appends {"suggestions":[{"type","uri","text"}]} as suggestion rows. Rows added or -EINVAL. */
int items_parse_suggest(struct items *l, const char *json);
/* Appends a paging object of saved objects ({"items":[{"track":{...}}]}, with wrap
 * "track" or "album"), or of plain objects when wrap is NULL; artists may also arrive
 * as {"artists":{"items":[...]}} (the followed-artists shape). Rows added or -EINVAL. */
int items_parse_saved(struct items *l, const char *json, const char *wrap);
/* Appends the tracks of {"tracks":[track or null, ...]} in order. Rows added or -EINVAL. */
int items_parse_tracks(struct items *l, const char *json);

#endif
