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
	ITEM_PLAYLIST,    /* a playlist (uri encore:playlist:ID) */
	ITEM_SHELF,       /* a Home shelf (uri "shelf:N", N its index in struct shelves) */
	ITEM_DEVICE,      /* a Connect device (uri = device id); marked = active */
	ITEM_DOWNLOAD,    /* a downloaded track (uri encore:track:ID) with progress */
};

struct item {
	enum item_type type;
	char uri[64];
	char *title;      /* owned; never NULL */
	char *sub;        /* owned; artists · album for tracks; never NULL */
	int duration_ms;  /* tracks; 0 otherwise */
	bool marked;      /* devices: the active one */
	int done, total;  /* downloads: files stored of total */
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

/* Appends a paging object of simplified playlists ({"items":[{"uri","name","owner",
 * "tracks":{"total"},"collaborative"}]}) as ITEM_PLAYLIST rows whose sub reads
 * "alice · 12 tracks · collaborative". Rows added or -EINVAL. */
int items_parse_playlists(struct items *l, const char *json);
/* Appends the items of a playlist's track page ({"items":[{"track":{...}|null}]}), one row
 * per item in order, so row i is position i: a track that left the catalog becomes an
 * unselectable "(unavailable)" row rather than shifting the positions after it. Rows
 * added or -EINVAL. */
int items_parse_playlist_items(struct items *l, const char *json);
struct yajl_val_s;
/* Appends the row of one playlist item whose "track" (a parsed track or episode object,
 * or NULL/null) is track: the unselectable "(unavailable)" row when it is not one. */
void items_add_playlist_row(struct items *l, struct yajl_val_s *track);
/* A playlist's details, as the Playlists view heads an open playlist with them. */
struct playlist_info {
	char uri[64];
	char name[256];
	char owner_id[64], owner[128];
	char snapshot_id[128];
	char collaborators[256];  /* "bob, chen", "" when none */
	bool collaborative;
	long long total;
};
/* Fills out from a playlist object (GET /v1/playlists/{id}). 0, or -EINVAL when json is
 * malformed or lacks a name or uri. */
int playlist_info_parse(const char *json, struct playlist_info *out);
/* Appends {"devices":[{"id","name","type","volume_percent","is_active"}]} as ITEM_DEVICE
 * rows (marked = is_active). Rows added or -EINVAL. */
int items_parse_devices(struct items *l, const char *json);

/* A Home shelf: a named list of tracks played as one context. */
struct shelf {
	char *title;      /* owned */
	char *sub;        /* owned; description, never NULL */
	struct items tracks;
};

struct shelves {
	struct shelf *v;
	int n, cap;
};

#define SHELVES_INIT {NULL, 0, 0}

/* Appends the shelves in a recommendations answer: a playlist-like object ({"name",
 * "description", "tracks":{"items":[{"track"}]}}), {"mixes":[playlist-like...]}, or a
 * trending page ({"tracks":{"items":[{"plays","track"}]}}, titled default_title).
 * Shelves without tracks are skipped. Returns shelves added or -EINVAL. */
int shelves_parse(struct shelves *s, const char *json, const char *default_title);
void shelves_clear(struct shelves *s);
void shelves_free(struct shelves *s);

#endif
