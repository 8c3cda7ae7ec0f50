/* searchsvc: encored's search service around the in-memory engine (search.h). It owns the
 * index, fills it from the database at `serve` start, keeps it current as items enter the
 * catalog (ingest's hook, and a generic add for other modules such as playlists), and
 * caches query results under a generation number that every index change advances, so a
 * cached result never outlives the index it came from. No HTTP here: search_routes.c is
 * the Web API face. */
#ifndef ENCORE_SEARCHSVC_H
#define ENCORE_SEARCHSVC_H
#include "ingest.h"
#include "search.h"
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct searchsvc;

/* What searchsvc_build indexed, per type, and how long it took. */
struct searchsvc_build_stats {
	size_t count[SEARCH_NTYPES];
	size_t total;
	double ms;
};

/* A loader adds one kind of object to the index at build time (through searchsvc_add);
 * returns the number added or -errno. This is how modules outside the catalog (playlists)
 * put their objects in the index: register a loader before searchsvc_build, and call
 * searchsvc_add/searchsvc_remove as the objects change. */
typedef long (*searchsvc_loader_fn)(void *ctx, sqlite3 *db, struct searchsvc *svc);

/* Where a caller's taste comes from (the events issue). get fills *out for user_id and
 * returns true, or false for "no taste"; release frees what get allocated. Called on HTTP
 * worker threads with the worker's connection, for uncached queries only. */
struct searchsvc_taste_provider {
	bool (*get)(void *ctx, sqlite3 *db, const char *user_id, struct search_taste *out);
	void (*release)(void *ctx, struct search_taste *t);
	void *ctx;
};

/* An empty service whose result cache keeps up to cache_entries results for cache_ttl_ms.
 * Free with searchsvc_free. */
struct searchsvc *searchsvc_new(int64_t cache_ttl_ms, size_t cache_entries);
void searchsvc_free(struct searchsvc *s);

/* Registers a build-time loader (at most 8); call before searchsvc_build. */
void searchsvc_add_loader(struct searchsvc *s, searchsvc_loader_fn fn, void *ctx);

/* Indexes every catalog track, artist, album, show and episode in db (whatever their ingest
 * state: metadata is searchable from submission), then runs the registered loaders.
 * Returns 0 or -EIO; fills *st when not NULL. */
int searchsvc_build(struct searchsvc *s, sqlite3 *db, struct searchsvc_build_stats *st);

/* Adds or replaces one document (see search_add) and advances the generation.
 * Returns search_add's result. */
int searchsvc_add(struct searchsvc *s, const struct search_doc *doc);
/* Removes one document and advances the generation; 0 or -ENOENT. */
int searchsvc_remove(struct searchsvc *s, enum search_type type, const char *id);

/* (Re)indexes one catalog item from db: a track together with its artist and album, an
 * episode together with its show, or an artist, album or show alone. Returns 0, -ENOENT
 * when the row does not exist, or -EINVAL for a type the catalog does not hold. */
int searchsvc_index_item(struct searchsvc *s, sqlite3 *db, enum search_type type, const char *id);

/* An ingest_hook_fn (ctx = the searchsvc): indexes the item ingest just committed. */
void searchsvc_ingest_hook(void *ctx, sqlite3 *db, enum ingest_kind kind, const char *content_id);

/* The engine, for queries. Borrowed; valid until searchsvc_free. */
struct search_index *searchsvc_index(struct searchsvc *s);
/* Advances on every add/remove. Read it before running a query and put it in the cache
 * key: a result computed from an older index is then never served again. */
uint64_t searchsvc_generation(struct searchsvc *s);

/* The result cache: a copy of the value (caller frees) or NULL; put stores a copy. */
char *searchsvc_cache_get(struct searchsvc *s, const char *key);
void searchsvc_cache_put(struct searchsvc *s, const char *key, const char *value);

/* Plugs in a taste provider (NULL: none). Set it before serving. */
void searchsvc_set_taste_provider(struct searchsvc *s, const struct searchsvc_taste_provider *p);
/* True when a provider is set (the cache key then includes the user). */
bool searchsvc_has_taste(struct searchsvc *s);
/* The caller's taste from the provider: true with *out filled (release with
 * searchsvc_taste_release), false when there is none. */
bool searchsvc_taste_get(struct searchsvc *s, sqlite3 *db, const char *user_id, struct search_taste *out);
void searchsvc_taste_release(struct searchsvc *s, struct search_taste *t);

#endif
