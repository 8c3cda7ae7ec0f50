/* catalog: artists, albums and tracks: writing them (for seeding and ingest) and the
 * Web API routes that read them. Object ids are derived from names, so re-seeding
 * the same catalog gives the same ids. */
#ifndef ENCORE_CATALOG_H
#define ENCORE_CATALOG_H
#include "id.h"
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>

struct catalog_track {
	const char *name;
	const char *artist_name;
	const char *album_name;
	const char *genre;          /* also added to the artist's genres */
	const char *label;          /* rights holder */
	const char *release_date;   /* YYYY-MM-DD */
	const char *markets;        /* "" everywhere, else "SE,US" */
	int track_number;
	int duration_ms;
	int popularity;
	bool explicit_;
	const char *state;          /* NULL = "ready"; ingest uses "pending" until transcoded */
	const char *source_hash;    /* object-store name of the ingested source, or NULL */
};

struct catalog_episode {
	const char *show_name;
	const char *publisher;
	const char *show_description;
	const char *name;
	const char *description;
	const char *release_date;
	int episode_number;
	int duration_ms;
	bool explicit_;
	const char *source_hash;
};

/* Inserts (or finds) the artist and album and inserts the track. Fills track_id.
 * 0, or -EINVAL (bad field, reason in err) / -EIO. Runs in the caller's transaction if any. */
int catalog_add_track(sqlite3 *db, const struct catalog_track *t, char track_id[ID_LEN + 1], char *err, size_t errlen);
/* Inserts (or finds) the show and inserts the episode in state "pending". Fills episode_id.
 * 0, -EEXIST, -EINVAL or -EIO with err. */
int catalog_add_episode(sqlite3 *db, const struct catalog_episode *e, char episode_id[ID_LEN + 1], char *err, size_t errlen);
/* Web API object renderers, shared with search results. Each writes one object for id into
 * w using the caller's connection and country, and returns false (writing nothing) when the
 * id is not in the catalog. */
struct call;
struct jw;
bool catalog_write_track(struct call *c, struct jw *w, const char *id);           /* full track */
bool catalog_write_artist(struct call *c, struct jw *w, const char *id);          /* full artist */
bool catalog_write_album_simple(struct call *c, struct jw *w, const char *id);    /* simplified album */
bool catalog_write_show_simple(struct call *c, struct jw *w, const char *id);     /* simplified show */
bool catalog_write_episode_simple(struct call *c, struct jw *w, const char *id);  /* simplified episode */

/* True when markets ("" = everywhere) includes country. */
bool catalog_playable_in(const char *markets, const char *country);

#endif
