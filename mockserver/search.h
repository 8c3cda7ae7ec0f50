/* search: encored's in-process search engine. An in-memory inverted index over folded terms
 * (textfold), a code-point trie of the term vocabulary walked with a Damerau-Levenshtein
 * automaton for typo and prefix expansion, BM25 field-weighted scoring blended with
 * popularity, the caller's taste and market availability. No I/O, no HTTP.
 *
 * Thread safety: one pthread rwlock per index. search_query and search_suggest take it for
 * reading and run in parallel; search_add/search_remove take it for writing, so a reader
 * sees a document either entirely or not at all, and sees it as soon as add returns.
 * Results are copied out, so nothing returned points into the index. */
#ifndef ENCORE_SEARCH_H
#define ENCORE_SEARCH_H
#include <stdbool.h>
#include <stddef.h>

enum search_type {
	SEARCH_TRACK, SEARCH_ARTIST, SEARCH_ALBUM, SEARCH_PLAYLIST, SEARCH_SHOW, SEARCH_EPISODE,
	SEARCH_NTYPES
};
#define SEARCH_MASK(t) (1u << (t))
#define SEARCH_ALL_TYPES ((1u << SEARCH_NTYPES) - 1)
#define SEARCH_ID_LEN 22
#define SEARCH_QUERY_MAX 512      /* bytes; longer queries are refused with -EINVAL */
#define SEARCH_LIMIT_MAX 50
#define SEARCH_OFFSET_MAX 1000
#define SEARCH_SUGGEST_MAX 10

/* One searchable object. Strings are copied by search_add. Field use per type:
 * track: name, artists, album; artist: name; album: name, artists; playlist: name, artists =
 * owner; show: name, artists = publisher; episode: name, album = show name. */
struct search_doc {
	enum search_type type;
	const char *id;                /* SEARCH_ID_LEN characters */
	const char *name;
	const char *const *artists;    /* nartists names, may be NULL */
	size_t nartists;
	const char *album;             /* may be NULL */
	const char *genre;             /* may be NULL */
	int popularity;                /* 0..100, clamped */
	const char *markets;           /* "SE,US"; NULL or "" = available everywhere */
	bool is_explicit;
	bool is_public;                /* playlists: private ones are not indexed */
};

struct search_weight {
	const char *key;               /* genre name or artist name (compared folded) */
	float weight;                  /* 0..1 */
};

/* The caller's taste: how much the listener likes each genre and artist. */
struct search_taste {
	const struct search_weight *genres;
	size_t ngenres;
	const struct search_weight *artists;
	size_t nartists;
};

struct search_query {
	const char *q;                 /* any bytes; the first 8 words are scored, the last is a
	                                * prefix unless q ends in whitespace */
	unsigned types;                /* SEARCH_MASK bits; 0 = all */
	int limit;                     /* per type, 1..SEARCH_LIMIT_MAX; 0 = 20 */
	int offset;                    /* 0..SEARCH_OFFSET_MAX */
	const char *market;            /* "SE" or NULL: unplayable items sort last */
	bool market_filter;            /* with market: drop unplayable items instead */
	const struct search_taste *taste; /* may be NULL */
};

/* Score parts, for debug=1. score = tier-ordered blend of these. */
struct search_parts {
	double text;                   /* BM25 field-weighted, normalised 0..1 within the query */
	double typo;                   /* penalty subtracted (typos, first-letter typos) */
	double popularity;             /* popularity contribution */
	double taste;                  /* genre/artist taste contribution */
	double market;                 /* 0, or a negative value when unplayable in market */
	double boost;                  /* exact-name and phrase boosts */
	int matched;                   /* query words matched */
	int typos;                     /* total edits over matched words (first letter counts 2) */
};

struct search_hit {
	enum search_type type;
	char id[SEARCH_ID_LEN + 1];
	char *name;                    /* owned by the results */
	double score;
	struct search_parts parts;
};

struct search_page {
	size_t total;                  /* matches of this type; an estimate when a query word is
	                                * in more documents than one query reads (docs/SEARCH.md) */
	size_t n;
	struct search_hit *hits;
};

struct search_results {
	struct search_page page[SEARCH_NTYPES];
	char error[128];               /* why -EINVAL, for the HTTP error body */
};

struct search_suggestion {
	enum search_type type;
	char id[SEARCH_ID_LEN + 1];
	char *text;                    /* display text; owned by the caller after the call */
	double score;
};

struct search_stats {
	size_t docs, terms, postings, trie_nodes, bytes;
};

struct search_index;

/* Returns an empty index; free with search_free. */
struct search_index *search_new(void);
void search_free(struct search_index *idx);

/* Indexes doc, replacing any document with the same type and id (an update). Returns 0,
 * or -EINVAL when the id is not SEARCH_ID_LEN characters, the type is unknown or name is
 * NULL. A private playlist is removed rather than added. Visible to queries on return. */
int search_add(struct search_index *idx, const struct search_doc *doc);

/* Removes the document; returns 0, or -ENOENT when it is not indexed. */
int search_remove(struct search_index *idx, enum search_type type, const char *id);

/* Runs a query. Fills *res (caller frees with search_results_free, also after an error).
 * Returns 0, or -EINVAL with res->error set for an empty, too long or out-of-range query. */
int search_query(struct search_index *idx, const struct search_query *query,
                 struct search_results *res);
void search_results_free(struct search_results *res);

/* Per-keystroke autocomplete: up to SEARCH_SUGGEST_MAX suggestions (types mask, 0 = all)
 * written to out, count in *n; the last word of q is a prefix. Texts are owned by the
 * caller: free with search_suggestions_free. Returns 0 or -EINVAL as search_query. */
int search_suggest(struct search_index *idx, const char *q, unsigned types, const char *market,
                   struct search_suggestion out[SEARCH_SUGGEST_MAX], size_t *n);
void search_suggestions_free(struct search_suggestion *out, size_t n);

/* Sizes of the index, for the bench and /metrics. */
void search_stats(struct search_index *idx, struct search_stats *st);

/* Name of a type as in the Web API ("track", ...), or NULL. */
const char *search_type_name(enum search_type t);

#endif
