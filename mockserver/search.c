/* search: see search.h for the contract. Layout, chosen for 1M tracks on 2 cores:
 * - documents live in slots (reused through a free list); per-slot hot data (field lengths,
 *   popularity) sits in a dense array so scoring touches 4 bytes per posting;
 * - each distinct folded term has an unordered postings vector of 8-byte entries; removal
 *   swap-deletes the document's postings, so updates never rebuild anything;
 * - the vocabulary also lives in a code-point trie (CJK n-grams excepted: they match
 *   exactly) with a max-popularity bound per node, walked with a Damerau-Levenshtein row per
 *   depth to expand typos, prefixes and typo'd prefixes;
 * - queries accumulate per-document matches in a dense stamped array taken from a small
 *   pool of scratch buffers, so concurrent readers never allocate per document. */
#include "search.h"
#include "textfold.h"
#include "xmem.h"
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXQ 8               /* query words scored; later words are ignored */
#define TYPE_SHIFT 29
#define SLOT_MASK ((1u << TYPE_SHIFT) - 1)
#define NO_POS 255
#define CAP_TYPO_EXP 24      /* typo expansions kept per query word */
#define CAP_PREFIX_EXP 40    /* prefix completions kept per query word */
#define CAP_SUGGEST_EXP 12
#define SEARCH_BUDGET 24000  /* postings read per query (see accumulate) */
#define SUGGEST_BUDGET 5000
#define VERIFY_MAX 8000      /* candidates checked for the words whose lists were cut */

/* ---------- small open-addressing map of ids, hash kept in the slot ---------- */

struct islot { uint32_t id1; uint32_t h; };  /* id1 = id + 1, 0 = empty */
struct imap { struct islot *s; uint32_t cap, n; };

static uint64_t hash_bytes(const void *p, size_t n, uint64_t seed)
{
	const unsigned char *b = p;
	uint64_t h = 1469598103934665603ull ^ seed;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 32;
	return h;
}

static void imap_grow(struct imap *m)
{
	uint32_t ncap = m->cap ? m->cap * 2 : 64;
	struct islot *ns = xcalloc(ncap, sizeof *ns);
	for (uint32_t i = 0; i < m->cap; i++) {
		if (!m->s[i].id1)
			continue;
		uint32_t j = m->s[i].h & (ncap - 1);
		while (ns[j].id1)
			j = (j + 1) & (ncap - 1);
		ns[j] = m->s[i];
	}
	free(m->s);
	m->s = ns;
	m->cap = ncap;
}

/* First slot index for h; iterate with imap_next until s[i].id1 == 0. */
static uint32_t imap_first(const struct imap *m, uint32_t h) { return h & (m->cap - 1); }
static uint32_t imap_next(const struct imap *m, uint32_t i) { return (i + 1) & (m->cap - 1); }

static void imap_put(struct imap *m, uint32_t h, uint32_t id)
{
	if ((m->n + 1) * 2 > m->cap)
		imap_grow(m);
	uint32_t i = imap_first(m, h);
	while (m->s[i].id1)
		i = imap_next(m, i);
	m->s[i].id1 = id + 1;
	m->s[i].h = h;
	m->n++;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void imap_del_at(struct imap *m, uint32_t i)
{
	uint32_t mask = m->cap - 1, j = i;
	m->s[i].id1 = 0;
	for (;;) {
		j = (j + 1) & mask;
		if (!m->s[j].id1)
			break;
		uint32_t home = m->s[j].h & mask;
		/* move j back into the hole when its home is not in (i, j] */
		if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
			m->s[i] = m->s[j];
			m->s[j].id1 = 0;
			i = j;
		}
	}
	m->n--;
}

/* ---------- data ---------- */

struct hot { uint8_t len[3]; uint8_t pop; };

/* 12 bytes: the document's field lengths and popularity ride along so that scoring a
 * posting costs no random access into the document table. */
struct posting {
	uint32_t doc;        /* slot | type << TYPE_SHIFT */
	uint8_t tf[3];       /* name, artist, album */
	uint8_t pos;         /* first position in name, NO_POS if absent */
	struct hot hot;      /* copy of the document's lengths and popularity */
};

/* Postings are kept as a prefix sorted by static impact (the score a document would get for
 * this word alone: field-weighted BM25 part, single-word-name bonus, popularity) followed by
 * a short unsorted tail of recent additions, merged in when it grows. Queries read the best
 * postings first and stop at a budget, which bounds latency for words in 20% of the catalog. */
struct term {
	char *str;
	struct posting *post;
	uint32_t npost, cap, nsorted;
	uint32_t h;
	int32_t node;        /* trie node, -1 for CJK n-grams */
	uint8_t maxpop;      /* upper bound, not lowered on removal */
	uint8_t weight;      /* likelihood of being the word a prefix stands for; see term_weight */
	uint8_t ncp;
};

struct tnode {
	uint32_t cp;
	uint32_t child;      /* 0 = none (node 0 is the root, never a child) */
	uint32_t sibling;
	int32_t term;
	uint8_t maxpop;      /* max term weight in the subtree (an upper bound) */
};

struct dterm { uint32_t term; uint8_t tf[3]; uint8_t pos; };

struct sdoc {
	char id[SEARCH_ID_LEN + 1];
	uint8_t type, alive, is_explicit, nartists;
	uint16_t genre;      /* 0 = none, else strtab id + 1 */
	uint16_t mset;       /* 0 = everywhere, else mset id + 1 */
	uint32_t h;
	char *name;
	char *artist_disp;   /* first artist, for suggestion text */
	uint32_t *artists;   /* interned folded artist ids */
	struct dterm *dt;    /* the document's distinct terms, for removal and verification */
	uint32_t nterms;
};

struct strtab { char **keys; uint32_t n, cap; struct imap map; };

struct mset { uint64_t bits[11]; char *key; };  /* 26*26 two-letter codes */

struct acc {
	uint32_t doc;
	uint16_t mask, exact, pfx;
	uint8_t type, pop, len0;
	float s[MAXQ];
	uint8_t cost[MAXQ];
	uint8_t pos[MAXQ];
};

struct sslot { uint32_t stamp, ix; };

struct scratch {
	struct sslot *slot;
	uint32_t cap, epoch;
	struct acc *acc;
	size_t nacc, capacc;
};

struct search_index {
	pthread_rwlock_t lock;
	struct sdoc *docs;
	struct hot *hot;
	uint32_t ndocs, capdocs, live;
	uint32_t *freeslots;
	uint32_t nfree, capfree;
	struct imap docmap;
	struct term *terms;
	uint32_t nterms, capterms;
	struct imap termmap;
	struct tnode *nodes;
	uint32_t nnodes, capnodes;
	struct strtab genres, artists;
	struct mset *msets;
	uint32_t nmsets, capmsets;
	struct imap msetmap;
	double sumlen[3];
	size_t npostings;
	pthread_mutex_t pool_lock;
	struct scratch **pool;
	size_t npool, cappool;
};

static const char *const type_names[SEARCH_NTYPES] = {
	"track", "artist", "album", "playlist", "show", "episode",
};

const char *search_type_name(enum search_type t)
{
	return (unsigned)t < SEARCH_NTYPES ? type_names[t] : NULL;
}

/* ---------- string tables ---------- */

static int32_t strtab_find(const struct strtab *t, const char *k)
{
	if (!t->map.cap)
		return -1;
	uint32_t h = (uint32_t)hash_bytes(k, strlen(k), 7);
	for (uint32_t i = imap_first(&t->map, h); t->map.s[i].id1; i = imap_next(&t->map, i))
		if (t->map.s[i].h == h && strcmp(t->keys[t->map.s[i].id1 - 1], k) == 0)
			return (int32_t)(t->map.s[i].id1 - 1);
	return -1;
}

static uint32_t strtab_intern(struct strtab *t, const char *k)
{
	int32_t f = strtab_find(t, k);
	if (f >= 0)
		return (uint32_t)f;
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 64;
		t->keys = xrealloc(t->keys, t->cap * sizeof *t->keys);
	}
	t->keys[t->n] = xstrdup(k);
	imap_put(&t->map, (uint32_t)hash_bytes(k, strlen(k), 7), t->n);
	return t->n++;
}

static void strtab_free(struct strtab *t)
{
	for (uint32_t i = 0; i < t->n; i++)
		free(t->keys[i]);
	free(t->keys);
	free(t->map.s);
}

/* ---------- markets ---------- */

static int market_code(const char *s, size_t n)
{
	if (n != 2)
		return -1;
	int a = s[0] | 0x20, b = s[1] | 0x20;
	if (a < 'a' || a > 'z' || b < 'a' || b > 'z')
		return -1;
	return (a - 'a') * 26 + (b - 'a');
}

/* Returns 0 for "everywhere", else mset id + 1. Unparseable codes are skipped. */
static uint16_t mset_intern(struct search_index *idx, const char *markets)
{
	struct mset m = {0};
	int any = 0;
	if (!markets || !*markets)
		return 0;
	for (const char *p = markets; *p;) {
		size_t n = strcspn(p, ", ");
		int c = market_code(p, n);
		if (c >= 0) {
			m.bits[c / 64] |= 1ull << (c % 64);
			any = 1;
		}
		p += n;
		while (*p == ',' || *p == ' ')
			p++;
	}
	if (!any)
		return 0;
	uint32_t h = (uint32_t)hash_bytes(m.bits, sizeof m.bits, 3);
	for (uint32_t i = idx->msetmap.cap ? imap_first(&idx->msetmap, h) : 0;
	     idx->msetmap.cap && idx->msetmap.s[i].id1; i = imap_next(&idx->msetmap, i))
		if (idx->msetmap.s[i].h == h &&
		    memcmp(idx->msets[idx->msetmap.s[i].id1 - 1].bits, m.bits, sizeof m.bits) == 0)
			return (uint16_t)idx->msetmap.s[i].id1;
	if (idx->nmsets >= 65534)
		return 0;   /* absurd variety: degrade to "everywhere" rather than fail */
	if (idx->nmsets == idx->capmsets) {
		idx->capmsets = idx->capmsets ? idx->capmsets * 2 : 16;
		idx->msets = xrealloc(idx->msets, idx->capmsets * sizeof *idx->msets);
	}
	idx->msets[idx->nmsets] = m;
	imap_put(&idx->msetmap, h, idx->nmsets);
	return (uint16_t)++idx->nmsets;
}

static int doc_playable(const struct search_index *idx, const struct sdoc *d, int market)
{
	if (market < 0 || !d->mset)
		return 1;
	const struct mset *m = &idx->msets[d->mset - 1];
	return (m->bits[market / 64] >> (market % 64)) & 1;
}

/* ---------- lifecycle ---------- */

struct search_index *search_new(void)
{
	struct search_index *idx = xcalloc(1, sizeof *idx);
	if (pthread_rwlock_init(&idx->lock, NULL) != 0) {
		free(idx);
		return NULL;
	}
	pthread_mutex_init(&idx->pool_lock, NULL);
	idx->capnodes = 1024;
	idx->nodes = xcalloc(idx->capnodes, sizeof *idx->nodes);
	idx->nodes[0].term = -1;
	idx->nnodes = 1;
	return idx;
}

static void doc_clear(struct sdoc *d)
{
	free(d->name);
	free(d->artist_disp);
	free(d->artists);
	free(d->dt);
	memset(d, 0, sizeof *d);
}

void search_free(struct search_index *idx)
{
	if (!idx)
		return;
	for (uint32_t i = 0; i < idx->ndocs; i++)
		doc_clear(&idx->docs[i]);
	free(idx->docs);
	free(idx->hot);
	free(idx->freeslots);
	free(idx->docmap.s);
	for (uint32_t i = 0; i < idx->nterms; i++) {
		free(idx->terms[i].str);
		free(idx->terms[i].post);
	}
	free(idx->terms);
	free(idx->termmap.s);
	free(idx->nodes);
	strtab_free(&idx->genres);
	strtab_free(&idx->artists);
	free(idx->msets);
	free(idx->msetmap.s);
	for (size_t i = 0; i < idx->npool; i++) {
		free(idx->pool[i]->slot);
		free(idx->pool[i]->acc);
		free(idx->pool[i]);
	}
	free(idx->pool);
	pthread_mutex_destroy(&idx->pool_lock);
	pthread_rwlock_destroy(&idx->lock);
	free(idx);
}

/* ---------- trie ---------- */

static uint32_t node_new(struct search_index *idx, uint32_t cp)
{
	if (idx->nnodes == idx->capnodes) {
		idx->capnodes *= 2;
		idx->nodes = xrealloc(idx->nodes, idx->capnodes * sizeof *idx->nodes);
	}
	struct tnode *n = &idx->nodes[idx->nnodes];
	memset(n, 0, sizeof *n);
	n->cp = cp;
	n->term = -1;
	return idx->nnodes++;
}

/* Walks/creates the path of str, raising maxpop along it; returns the final node. */
static uint32_t trie_insert(struct search_index *idx, const char *str, uint8_t pop)
{
	uint32_t cur = 0;
	size_t i = 0, n = strlen(str);
	if (idx->nodes[0].maxpop < pop)
		idx->nodes[0].maxpop = pop;
	while (i < n) {
		uint32_t cp = fold_next_cp(str, n, &i), c;
		for (c = idx->nodes[cur].child; c && idx->nodes[c].cp != cp; c = idx->nodes[c].sibling)
			;
		if (!c) {
			c = node_new(idx, cp);
			idx->nodes[c].sibling = idx->nodes[cur].child;
			idx->nodes[cur].child = c;
		}
		if (idx->nodes[c].maxpop < pop)
			idx->nodes[c].maxpop = pop;
		cur = c;
	}
	return cur;
}

/* ---------- terms ---------- */

static int32_t term_find(const struct search_index *idx, const char *s, size_t n)
{
	if (!idx->termmap.cap)
		return -1;
	uint32_t h = (uint32_t)hash_bytes(s, n, 1);
	for (uint32_t i = imap_first(&idx->termmap, h); idx->termmap.s[i].id1;
	     i = imap_next(&idx->termmap, i)) {
		if (idx->termmap.s[i].h != h)
			continue;
		const char *t = idx->terms[idx->termmap.s[i].id1 - 1].str;
		if (strncmp(t, s, n) == 0 && t[n] == 0)
			return (int32_t)(idx->termmap.s[i].id1 - 1);
	}
	return -1;
}

static uint32_t term_get(struct search_index *idx, const char *s, size_t n, int cjk)
{
	int32_t f = term_find(idx, s, n);
	if (f >= 0)
		return (uint32_t)f;
	if (idx->nterms == idx->capterms) {
		idx->capterms = idx->capterms ? idx->capterms * 2 : 1024;
		idx->terms = xrealloc(idx->terms, idx->capterms * sizeof *idx->terms);
	}
	struct term *t = &idx->terms[idx->nterms];
	memset(t, 0, sizeof *t);
	t->str = xstrndup(s, n);
	t->h = (uint32_t)hash_bytes(s, n, 1);
	t->node = -1;
	size_t i = 0;
	while (i < n) {
		fold_next_cp(s, n, &i);
		if (t->ncp < 255)
			t->ncp++;
	}
	if (!cjk) {
		uint32_t node = trie_insert(idx, t->str, 0);
		idx->nodes[node].term = (int32_t)idx->nterms;
		t->node = (int32_t)node;
	}
	imap_put(&idx->termmap, t->h, idx->nterms);
	return idx->nterms++;
}

/* ---------- add / remove ---------- */

struct collect {
	struct search_index *idx;
	struct dterm *v;
	size_t n, cap;
	int field;
	int len[3];
};

static void collect_tok(void *ctx, const char *tok, size_t len, int pos, unsigned flags)
{
	struct collect *c = ctx;
	/* a field's first 255 tokens are indexed: bounds the work an abusive name can cause */
	if (c->len[c->field] >= 255)
		return;
	c->len[c->field]++;
	uint32_t t = term_get(c->idx, tok, len, (flags & FOLD_TOK_CJK) != 0);
	for (size_t i = 0; i < c->n; i++) {
		if (c->v[i].term == t) {
			if (c->v[i].tf[c->field] < 255)
				c->v[i].tf[c->field]++;
			if (c->field == 0 && c->v[i].pos == NO_POS)
				c->v[i].pos = pos > 254 ? 254 : (uint8_t)pos;
			return;
		}
	}
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 16;
		c->v = xrealloc(c->v, c->cap * sizeof *c->v);
	}
	struct dterm d = {.term = t, .pos = NO_POS};
	d.tf[c->field] = 1;
	if (c->field == 0)
		d.pos = pos > 254 ? 254 : (uint8_t)pos;
	c->v[c->n++] = d;
}

static uint32_t doc_hash(int type, const char *id)
{
	return (uint32_t)hash_bytes(id, SEARCH_ID_LEN, (uint64_t)type + 11);
}

static int32_t doc_find(const struct search_index *idx, int type, const char *id, uint32_t *slot_out)
{
	if (!idx->docmap.cap)
		return -1;
	uint32_t h = doc_hash(type, id);
	for (uint32_t i = imap_first(&idx->docmap, h); idx->docmap.s[i].id1;
	     i = imap_next(&idx->docmap, i)) {
		const struct sdoc *d = &idx->docs[idx->docmap.s[i].id1 - 1];
		if (idx->docmap.s[i].h == h && d->type == type && memcmp(d->id, id, SEARCH_ID_LEN) == 0) {
			if (slot_out)
				*slot_out = i;
			return (int32_t)(idx->docmap.s[i].id1 - 1);
		}
	}
	return -1;
}

static void remove_slot(struct search_index *idx, uint32_t slot, uint32_t mapslot)
{
	struct sdoc *d = &idx->docs[slot];
	uint32_t key = slot | ((uint32_t)d->type << TYPE_SHIFT);
	for (uint32_t k = 0; k < d->nterms; k++) {
		struct term *t = &idx->terms[d->dt[k].term];
		for (uint32_t j = t->npost; j-- > 0;) {
			if (t->post[j].doc == key) {
				/* memmove keeps both the sorted prefix and the tail in order */
				memmove(&t->post[j], &t->post[j + 1], (t->npost - j - 1) * sizeof *t->post);
				t->npost--;
				if (j < t->nsorted)
					t->nsorted--;
				idx->npostings--;
				break;
			}
		}
	}
	for (int f = 0; f < 3; f++)
		idx->sumlen[f] -= idx->hot[slot].len[f];
	imap_del_at(&idx->docmap, mapslot);
	doc_clear(d);
	memset(&idx->hot[slot], 0, sizeof idx->hot[slot]);
	if (idx->nfree == idx->capfree) {
		idx->capfree = idx->capfree ? idx->capfree * 2 : 64;
		idx->freeslots = xrealloc(idx->freeslots, idx->capfree * sizeof *idx->freeslots);
	}
	idx->freeslots[idx->nfree++] = slot;
	idx->live--;
}

static uint32_t slot_alloc(struct search_index *idx)
{
	if (idx->nfree)
		return idx->freeslots[--idx->nfree];
	if (idx->ndocs == idx->capdocs) {
		idx->capdocs = idx->capdocs ? idx->capdocs * 2 : 1024;
		idx->docs = xrealloc(idx->docs, idx->capdocs * sizeof *idx->docs);
		idx->hot = xrealloc(idx->hot, idx->capdocs * sizeof *idx->hot);
	}
	return idx->ndocs++;
}

static const float field_w[3] = {3.0f, 2.0f, 1.0f};  /* name > artist > album */
#define BM25_K1 1.2f
#define BM25_B 0.75f

static void avg_lengths(const struct search_index *idx, float avg[3])
{
	for (int f = 0; f < 3; f++) {
		avg[f] = idx->live ? (float)(idx->sumlen[f] / idx->live) : 1.0f;
		if (avg[f] < 0.5f)
			avg[f] = 0.5f;
	}
}

static float bm25_part(const uint8_t tf[3], const struct hot *hd, const float avg[3])
{
	float bm = 0;
	for (int f = 0; f < 3; f++) {
		if (!tf[f])
			continue;
		float x = tf[f];
		bm += field_w[f] * x * (BM25_K1 + 1) / (x + BM25_K1 * (1 - BM25_B + BM25_B * hd->len[f] / avg[f]));
	}
	return bm;
}

static uint32_t impact(const struct search_index *idx, const struct posting *p, const float avg[3])
{
	const struct hot *hd = &p->hot;
	float text = bm25_part(p->tf, hd, avg) / (field_w[0] * (BM25_K1 + 1));
	float boost = p->tf[0] && hd->len[0] == 1 ? 0.5f : 0;
	return (uint32_t)((text + boost + 0.6f * hd->pop / 100.0f) * 10000.0f);
}

struct keyed { uint32_t key; struct posting p; };

static int cmp_keyed_desc(const void *a, const void *b)
{
	uint32_t x = ((const struct keyed *)a)->key, y = ((const struct keyed *)b)->key;
	return x < y ? 1 : x > y ? -1 : 0;
}

/* Merges the unsorted tail into the sorted prefix once it is long enough (over 1024 or a
 * sixteenth of the list), so the tail a query must read whole stays short. Only the tail is
 * sorted; it is merged in place from the back, finding each boundary by binary search, so a
 * merge into a 200k-entry list costs one memmove pass and O(tail log n) impact computations
 * (the write lock is held meanwhile, so this bounds how long readers can wait). */
static void term_maybe_merge(struct search_index *idx, struct term *t)
{
	uint32_t tail = t->npost - t->nsorted;
	if (tail < 64 || (tail <= 1024 && tail * 16 <= t->nsorted))
		return;
	float avg[3];
	avg_lengths(idx, avg);
	struct keyed *k = xmalloc(tail * sizeof *k);
	for (uint32_t i = 0; i < tail; i++) {
		k[i].p = t->post[t->nsorted + i];
		k[i].key = impact(idx, &k[i].p, avg);
	}
	qsort(k, tail, sizeof *k, cmp_keyed_desc);
	uint32_t rest = t->nsorted;  /* sorted entries [0, rest) not yet moved */
	uint32_t o = t->npost;       /* entries [o, npost) are final */
	for (uint32_t j = tail; j-- > 0;) {
		/* smallest tail entry first: the sorted entries below it move behind it */
		uint32_t lo = 0, hi = rest;
		while (lo < hi) {
			uint32_t mid = lo + (hi - lo) / 2;
			if (impact(idx, &t->post[mid], avg) >= k[j].key)
				lo = mid + 1;
			else
				hi = mid;
		}
		uint32_t len = rest - lo;
		o -= len;
		memmove(&t->post[o], &t->post[lo], len * sizeof *t->post);
		t->post[--o] = k[j].p;
		rest = lo;
	}
	t->nsorted = t->npost;
	free(k);
}

/* Which completions of a typed prefix to try first: common words (log of document
 * frequency) that also reach popular documents. Grows in steps, so trie updates are rare. */
static uint8_t term_weight(const struct term *t)
{
	int lg = 32 - __builtin_clz(t->npost + 1);
	int w = t->maxpop / 2 + 10 * lg;
	return (uint8_t)(w > 255 ? 255 : w);
}

int search_add(struct search_index *idx, const struct search_doc *doc)
{
	if (!doc || (unsigned)doc->type >= SEARCH_NTYPES || !doc->id ||
	    strlen(doc->id) != SEARCH_ID_LEN || !doc->name)
		return -EINVAL;
	if (doc->nartists && !doc->artists)
		return -EINVAL;
	int pop = doc->popularity < 0 ? 0 : doc->popularity > 100 ? 100 : doc->popularity;

	pthread_rwlock_wrlock(&idx->lock);
	uint32_t mapslot;
	int32_t old = doc_find(idx, doc->type, doc->id, &mapslot);
	if (old >= 0)
		remove_slot(idx, (uint32_t)old, mapslot);
	if (doc->type == SEARCH_PLAYLIST && !doc->is_public) {
		pthread_rwlock_unlock(&idx->lock);
		return 0;
	}
	if (idx->ndocs >= SLOT_MASK && !idx->nfree) {
		pthread_rwlock_unlock(&idx->lock);
		return -ENOSPC;
	}

	struct collect c = {.idx = idx};
	c.field = 0;
	fold_tokenize(doc->name, strlen(doc->name), FOLD_DOC, collect_tok, &c);
	c.field = 1;
	for (size_t i = 0; i < doc->nartists; i++)
		if (doc->artists[i])
			fold_tokenize(doc->artists[i], strlen(doc->artists[i]), FOLD_DOC, collect_tok, &c);
	c.field = 2;
	if (doc->album)
		fold_tokenize(doc->album, strlen(doc->album), FOLD_DOC, collect_tok, &c);

	uint32_t slot = slot_alloc(idx);
	struct sdoc *d = &idx->docs[slot];
	memset(d, 0, sizeof *d);
	memcpy(d->id, doc->id, SEARCH_ID_LEN);
	d->type = (uint8_t)doc->type;
	d->alive = 1;
	d->is_explicit = doc->is_explicit;
	d->name = xstrdup(doc->name);
	if (doc->nartists && doc->artists[0])
		d->artist_disp = xstrdup(doc->artists[0]);
	size_t na = doc->nartists > 255 ? 255 : doc->nartists;
	d->artists = na ? xcalloc(na, sizeof *d->artists) : NULL;
	for (size_t i = 0; i < na; i++) {
		if (!doc->artists[i])
			continue;
		char *f = fold_string(doc->artists[i]);
		d->artists[d->nartists++] = strtab_intern(&idx->artists, f);
		free(f);
	}
	if (doc->genre && *doc->genre) {
		char *f = fold_string(doc->genre);
		d->genre = (uint16_t)(strtab_intern(&idx->genres, f) + 1);
		free(f);
	}
	d->mset = mset_intern(idx, doc->markets);
	d->h = doc_hash(doc->type, doc->id);
	d->nterms = (uint32_t)c.n;
	d->dt = xmalloc((c.n ? c.n : 1) * sizeof *d->dt);
	if (c.n)
		memcpy(d->dt, c.v, c.n * sizeof *d->dt);
	for (int f = 0; f < 3; f++) {
		idx->hot[slot].len[f] = (uint8_t)(c.len[f] > 255 ? 255 : c.len[f]);
		idx->sumlen[f] += idx->hot[slot].len[f];
	}
	idx->hot[slot].pop = (uint8_t)pop;

	uint32_t key = slot | ((uint32_t)doc->type << TYPE_SHIFT);
	for (size_t i = 0; i < c.n; i++) {
		struct term *t = &idx->terms[c.v[i].term];
		if (t->npost == t->cap) {
			t->cap = t->cap ? t->cap * 2 : 2;
			t->post = xrealloc(t->post, t->cap * sizeof *t->post);
		}
		struct posting p = {.doc = key, .pos = c.v[i].pos, .hot = idx->hot[slot]};
		memcpy(p.tf, c.v[i].tf, 3);
		t->post[t->npost++] = p;
		idx->npostings++;
		term_maybe_merge(idx, t);
		if (t->maxpop < pop)
			t->maxpop = (uint8_t)pop;
		uint8_t tw = term_weight(t);
		if (tw > t->weight) {
			t->weight = tw;
			if (t->node >= 0)
				trie_insert(idx, t->str, tw);
		}
	}
	free(c.v);
	imap_put(&idx->docmap, d->h, slot);
	idx->live++;
	pthread_rwlock_unlock(&idx->lock);
	return 0;
}

int search_remove(struct search_index *idx, enum search_type type, const char *id)
{
	if (!id || strlen(id) != SEARCH_ID_LEN || (unsigned)type >= SEARCH_NTYPES)
		return -ENOENT;
	pthread_rwlock_wrlock(&idx->lock);
	uint32_t mapslot;
	int32_t slot = doc_find(idx, type, id, &mapslot);
	if (slot >= 0)
		remove_slot(idx, (uint32_t)slot, mapslot);
	pthread_rwlock_unlock(&idx->lock);
	return slot >= 0 ? 0 : -ENOENT;
}

void search_stats(struct search_index *idx, struct search_stats *st)
{
	pthread_rwlock_rdlock(&idx->lock);
	st->docs = idx->live;
	st->terms = idx->nterms;
	st->postings = idx->npostings;
	st->trie_nodes = idx->nnodes;
	size_t b = idx->capdocs * (sizeof(struct sdoc) + sizeof(struct hot)) +
	           idx->capterms * sizeof(struct term) + idx->capnodes * sizeof(struct tnode) +
	           (idx->termmap.cap + idx->docmap.cap) * sizeof(struct islot);
	for (uint32_t i = 0; i < idx->nterms; i++)
		b += idx->terms[i].cap * sizeof(struct posting) + strlen(idx->terms[i].str) + 1;
	for (uint32_t i = 0; i < idx->ndocs; i++)
		if (idx->docs[i].alive)
			b += strlen(idx->docs[i].name) + 1 + idx->docs[i].nterms * sizeof(struct dterm) +
			     idx->docs[i].nartists * 4;
	st->bytes = b;
	pthread_rwlock_unlock(&idx->lock);
}

/* ---------- query side ---------- */

struct exp {
	uint32_t term;
	uint8_t typos;       /* edits */
	uint8_t first;       /* the first letter was edited */
	uint8_t prefix;      /* a completion of the query word, not the word itself */
};

struct qword {
	char str[FOLD_MAX_TOKEN + 1];
	size_t len;
	uint32_t cp[FOLD_MAX_TOKEN];
	int ncp, cjk, end, pos;
	int capped;          /* expansion stopped at its cap: more completions exist */
	struct exp *exp;
	size_t nexp, capexp;
};

struct qparse { struct qword w[MAXQ]; int n; };

static void query_tok(void *ctx, const char *tok, size_t len, int pos, unsigned flags)
{
	struct qparse *qp = ctx;
	if (qp->n >= MAXQ)
		return;
	struct qword *w = &qp->w[qp->n++];
	memset(w, 0, sizeof *w);
	memcpy(w->str, tok, len);
	w->len = len;
	w->cjk = (flags & FOLD_TOK_CJK) != 0;
	w->end = (flags & FOLD_TOK_END) != 0;
	w->pos = pos;
	size_t i = 0;
	while (i < len && w->ncp < FOLD_MAX_TOKEN)
		w->cp[w->ncp++] = fold_next_cp(tok, len, &i);
}

/* The typo budget of the spec: none under 5 characters, one from 5, two from 9. */
static int typo_budget(int ncp)
{
	return ncp >= 9 ? 2 : ncp >= 5 ? 1 : 0;
}

static void exp_add(struct qword *w, uint32_t term, int typos, int first, int prefix)
{
	for (size_t i = 0; i < w->nexp; i++) {
		struct exp *e = &w->exp[i];
		if (e->term != term)
			continue;
		if (typos + first < e->typos + e->first ||
		    (typos + first == e->typos + e->first && prefix < e->prefix)) {
			e->typos = (uint8_t)typos;
			e->first = (uint8_t)first;
			e->prefix = (uint8_t)prefix;
		}
		return;
	}
	if (w->nexp == w->capexp) {
		w->capexp = w->capexp ? w->capexp * 2 : 16;
		w->exp = xrealloc(w->exp, w->capexp * sizeof *w->exp);
	}
	w->exp[w->nexp++] = (struct exp){term, (uint8_t)typos, (uint8_t)first, (uint8_t)prefix};
}

#define MAXDEPTH (FOLD_MAX_TOKEN + 3)

struct rec { uint32_t node; uint8_t dist, first; };

struct walk {
	const struct search_index *idx;
	struct qword *w;
	int n, k, prefix;
	uint8_t rows[MAXDEPTH + 1][FOLD_MAX_TOKEN + 1];
	uint32_t path[MAXDEPTH + 1];
	struct rec *recs;
	size_t nrecs, caprecs;
	size_t visited;
};

/* rows[depth] holds the edit distances between the first depth characters of the trie path
 * and each prefix of the query word (optimal string alignment, so a transposition is one
 * edit). Subtrees are cut as soon as every entry exceeds the budget. */
static void walk_node(struct walk *wk, uint32_t node, int depth)
{
	const struct tnode *nd = &wk->idx->nodes[node];
	const uint8_t *row = wk->rows[depth];
	int n = wk->n;
	wk->visited++;
	if (depth > 0 && row[n] <= wk->k) {
		int first = wk->path[0] != wk->w->cp[0];
		if (wk->prefix) {
			if (wk->nrecs == wk->caprecs) {
				wk->caprecs = wk->caprecs ? wk->caprecs * 2 : 16;
				wk->recs = xrealloc(wk->recs, wk->caprecs * sizeof *wk->recs);
			}
			wk->recs[wk->nrecs++] = (struct rec){node, row[n], (uint8_t)first};
		} else if (nd->term >= 0 && wk->idx->terms[nd->term].npost) {
			exp_add(wk->w, (uint32_t)nd->term, row[n], first, 0);
		}
	}
	if (depth >= n + wk->k || depth >= MAXDEPTH)
		return;
	if (wk->prefix && depth > 0 && row[n] <= wk->k) {
		/* the recorded subtree already holds everything below; descending only pays when
		 * a deeper node could reach the end of the query with fewer edits */
		int m = row[0];
		for (int j = 1; j <= n; j++)
			if (row[j] < m)
				m = row[j];
		if (row[n] <= m)
			return;
	}
	for (uint32_t c = nd->child; c; c = wk->idx->nodes[c].sibling) {
		uint32_t cp = wk->idx->nodes[c].cp;
		uint8_t *nr = wk->rows[depth + 1];
		int best = nr[0] = (uint8_t)(depth + 1 > 250 ? 250 : depth + 1);
		for (int j = 1; j <= n; j++) {
			int v = row[j] + 1;
			if (nr[j - 1] + 1 < v)
				v = nr[j - 1] + 1;
			int sub = row[j - 1] + (wk->w->cp[j - 1] != cp);
			if (sub < v)
				v = sub;
			if (j > 1 && depth >= 1 && wk->w->cp[j - 1] == wk->path[depth - 1] &&
			    wk->w->cp[j - 2] == cp && wk->rows[depth - 1][j - 2] + 1 < v)
				v = wk->rows[depth - 1][j - 2] + 1;
			nr[j] = (uint8_t)(v > 250 ? 250 : v);
			if (v < best)
				best = v;
		}
		if (best > wk->k)
			continue;
		wk->path[depth] = cp;
		walk_node(wk, c, depth + 1);
	}
}

struct hent { int prio; uint32_t node; uint32_t rec; };

static void hpush(struct hent **h, size_t *n, size_t *cap, struct hent e)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		*h = xrealloc(*h, *cap * sizeof **h);
	}
	size_t i = (*n)++;
	while (i && (*h)[(i - 1) / 2].prio < e.prio) {
		(*h)[i] = (*h)[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	(*h)[i] = e;
}

static struct hent hpop(struct hent *h, size_t *n)
{
	struct hent top = h[0], last = h[--*n];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= *n)
			break;
		if (c + 1 < *n && h[c + 1].prio > h[c].prio)
			c++;
		if (h[c].prio <= last.prio)
			break;
		h[i] = h[c];
		i = c;
	}
	if (*n)
		h[i] = last;
	return top;
}

/* Fills w->exp with the index terms this query word may stand for. */
static void expand_word(const struct search_index *idx, struct qword *w, int as_prefix, size_t cap)
{
	int k = w->cjk ? 0 : typo_budget(w->ncp);
	int32_t exact = term_find(idx, w->str, w->len);
	if (exact >= 0 && idx->terms[exact].npost)
		exp_add(w, (uint32_t)exact, 0, 0, 0);
	if (w->cjk || (k == 0 && !as_prefix))
		return;
	struct walk *wk = xcalloc(1, sizeof *wk);
	wk->idx = idx;
	wk->w = w;
	wk->n = w->ncp;
	wk->k = k;
	wk->prefix = as_prefix;
	for (int j = 0; j <= wk->n; j++)
		wk->rows[0][j] = (uint8_t)j;
	walk_node(wk, 0, 0);
	if (!as_prefix) {
		/* keep the closest expansions; exact first, then fewer edits, then bigger df */
		for (size_t i = 1; i < w->nexp; i++)
			for (size_t j = i; j > 0; j--) {
				struct exp *a = &w->exp[j - 1], *b = &w->exp[j];
				int ca = a->typos * 2 + a->first, cb = b->typos * 2 + b->first;
				if (cb < ca || (cb == ca && idx->terms[b->term].npost > idx->terms[a->term].npost)) {
					struct exp t = *a;
					*a = *b;
					*b = t;
				} else {
					break;
				}
			}
		if (w->nexp > cap)
			w->nexp = cap;
		goto out;
	}
	/* prefix: best-first over the subtrees of the matching nodes by max popularity,
	 * so a one-letter prefix yields the likeliest completions, not the first in order */
	struct hent *h = NULL;
	size_t hn = 0, hcap = 0, pops = 0;
	for (size_t r = 0; r < wk->nrecs; r++) {
		const struct rec *rc = &wk->recs[r];
		int prio = idx->nodes[rc->node].maxpop - 40 * rc->dist - 25 * rc->first;
		hpush(&h, &hn, &hcap, (struct hent){prio, rc->node, (uint32_t)r});
	}
	while (hn && w->nexp < cap && pops < 20000) {
		struct hent e = hpop(h, &hn);
		const struct rec *rc = &wk->recs[e.rec];
		const struct tnode *nd = &idx->nodes[e.node];
		pops++;
		if (nd->term >= 0 && idx->terms[nd->term].npost)
			exp_add(w, (uint32_t)nd->term, rc->dist, rc->first, e.node != rc->node);
		for (uint32_t c = nd->child; c; c = idx->nodes[c].sibling) {
			int prio = idx->nodes[c].maxpop - 40 * rc->dist - 25 * rc->first;
			hpush(&h, &hn, &hcap, (struct hent){prio, c, e.rec});
		}
	}
	if (hn)
		w->capped = 1;
	free(h);
out:
	free(wk->recs);
	free(wk);
}

/* ---------- scratch pool ---------- */

static struct scratch *scratch_get(struct search_index *idx)
{
	struct scratch *s = NULL;
	pthread_mutex_lock(&idx->pool_lock);
	if (idx->npool)
		s = idx->pool[--idx->npool];
	pthread_mutex_unlock(&idx->pool_lock);
	if (!s)
		s = xcalloc(1, sizeof *s);
	if (s->cap < idx->ndocs) {
		uint32_t ncap = idx->ndocs + idx->ndocs / 4 + 64;
		s->slot = xrealloc(s->slot, ncap * sizeof *s->slot);
		memset(s->slot + s->cap, 0, (ncap - s->cap) * sizeof *s->slot);
		s->cap = ncap;
	}
	if (++s->epoch == 0) {
		memset(s->slot, 0, s->cap * sizeof *s->slot);
		s->epoch = 1;
	}
	s->nacc = 0;
	return s;
}

static void scratch_put(struct search_index *idx, struct scratch *s)
{
	pthread_mutex_lock(&idx->pool_lock);
	if (idx->npool == idx->cappool) {
		idx->cappool = idx->cappool ? idx->cappool * 2 : 4;
		idx->pool = xrealloc(idx->pool, idx->cappool * sizeof *idx->pool);
	}
	idx->pool[idx->npool++] = s;
	pthread_mutex_unlock(&idx->pool_lock);
}

/* ---------- scoring ---------- */

struct ctx {
	struct search_index *idx;
	struct qparse qp;
	unsigned types;
	int market;            /* code, -1 = none */
	int market_filter;
	size_t budget;         /* postings read per query, split over its words */
	int truncated;         /* some list was cut at the budget: totals are estimates */
	double est[SEARCH_NTYPES];  /* largest per-word estimate of matches, by type */
	/* taste resolved to interned ids */
	float *genre_w;        /* by genre id, ngenre_w entries */
	size_t ngenre_w;
	uint32_t *taste_art;
	float *taste_art_w;
	size_t ntaste_art;
};

struct escore { float idf, quality; int cost; int prefix; };

static void score_posting(struct scratch *sc, int qi, const struct escore *es, uint32_t slot,
                          unsigned type, const uint8_t tf[3], uint8_t pos, const struct hot *hd,
                          const float avg[3])
{
	float s = es->idf * bm25_part(tf, hd, avg) * es->quality;
	struct acc *a;
	struct sslot *ss = &sc->slot[slot];
	if (ss->stamp != sc->epoch) {
		if (sc->nacc == sc->capacc) {
			sc->capacc = sc->capacc ? sc->capacc * 2 : 1024;
			sc->acc = xrealloc(sc->acc, sc->capacc * sizeof *sc->acc);
		}
		ss->stamp = sc->epoch;
		ss->ix = (uint32_t)sc->nacc;
		a = &sc->acc[sc->nacc++];
		memset(a, 0, sizeof *a);
		a->doc = slot;
		a->type = (uint8_t)type;
		a->pop = hd->pop;
		a->len0 = hd->len[0];
		memset(a->cost, 255, sizeof a->cost);
		memset(a->pos, NO_POS, sizeof a->pos);
	} else {
		a = &sc->acc[ss->ix];
	}
	uint16_t bit = (uint16_t)(1u << qi);
	int cost = es->cost;
	if (!(a->mask & bit) || cost < a->cost[qi] || (cost == a->cost[qi] && s > a->s[qi])) {
		a->mask |= bit;
		a->cost[qi] = (uint8_t)cost;
		a->s[qi] = s;
		a->pos[qi] = tf[0] ? pos : NO_POS;
		if (cost == 0 && tf[0]) {
			a->pfx |= bit;
			if (!es->prefix)
				a->exact |= bit;
			else
				a->exact &= (uint16_t)~bit;
		} else {
			a->pfx &= (uint16_t)~bit;
			a->exact &= (uint16_t)~bit;
		}
	}
}

static struct escore exp_score(const struct search_index *idx, const struct exp *e)
{
	const struct term *t = &idx->terms[e->term];
	double N = idx->live, df = t->npost;
	struct escore es;
	es.idf = (float)log(1.0 + (N - df + 0.5) / (df + 0.5));
	es.quality = 1.0f / (1.0f + e->typos) * (e->first ? 0.7f : 1.0f) * (e->prefix ? 0.85f : 1.0f);
	es.cost = e->typos + e->first;
	es.prefix = e->prefix;
	return es;
}

/* Bitmap over term ids of every term that starts with w exactly (the trie subtree of w), so
 * verification can accept completions beyond the expansion cap with one bit test. */
static uint8_t *prefix_bits(const struct search_index *idx, const struct qword *w)
{
	uint32_t cur = 0;
	for (int i = 0; i < w->ncp && cur != UINT32_MAX; i++) {
		uint32_t c;
		for (c = idx->nodes[cur].child; c && idx->nodes[c].cp != w->cp[i]; c = idx->nodes[c].sibling)
			;
		cur = c ? c : UINT32_MAX;
	}
	if (cur == UINT32_MAX)
		return NULL;
	uint8_t *bits = xcalloc(idx->nterms / 8 + 1, 1);
	uint32_t *stack = xmalloc(64 * sizeof *stack);
	size_t n = 0, cap = 64, visited = 0;
	stack[n++] = cur;
	while (n && visited++ < 200000) {
		const struct tnode *nd = &idx->nodes[stack[--n]];
		if (nd->term >= 0)
			bits[nd->term >> 3] |= (uint8_t)(1u << (nd->term & 7));
		for (uint32_t c = nd->child; c; c = idx->nodes[c].sibling) {
			if (n == cap) {
				cap *= 2;
				stack = xrealloc(stack, cap * sizeof *stack);
			}
			stack[n++] = c;
		}
	}
	free(stack);
	return bits;
}

/* Reads each word's postings best-first up to its share of the budget. A word whose lists
 * were cut is then checked against every candidate's own term list, so a document that has
 * all the words is never scored as a partial match just because one list was long. */
static void accumulate(struct ctx *cx, struct scratch *sc)
{
	struct search_index *idx = cx->idx;
	float avg[3];
	avg_lengths(idx, avg);
	int cut[MAXQ] = {0};
	size_t per_word = cx->budget / (size_t)cx->qp.n;
	for (int qi = 0; qi < cx->qp.n; qi++) {
		struct qword *w = &cx->qp.w[qi];
		double est[SEARCH_NTYPES] = {0};
		size_t used = 0;
		for (size_t ei = 0; ei < w->nexp; ei++) {
			const struct exp *e = &w->exp[ei];
			const struct term *t = &idx->terms[e->term];
			struct escore es = exp_score(idx, e);
			/* the word itself gets the larger share; expansions split the rest */
			size_t share = ei == 0 ? per_word / 2 : per_word / 16;
			if (used >= per_word && ei > 0) {
				cut[qi] = 1;
				continue;
			}
			uint32_t nread = t->nsorted < share ? t->nsorted : (uint32_t)share;
			if (nread < t->nsorted)
				cut[qi] = 1;
			size_t seen[SEARCH_NTYPES] = {0}, scanned = 0;
			for (int part = 0; part < 2; part++) {
				uint32_t from = part ? t->nsorted : 0, to = part ? t->npost : nread;
				for (uint32_t pi = from; pi < to; pi++) {
					const struct posting *p = &t->post[pi];
					unsigned type = p->doc >> TYPE_SHIFT;
					uint32_t slot = p->doc & SLOT_MASK;
					scanned++;
					if (!(cx->types & (1u << type)))
						continue;
					if (cx->market_filter && !doc_playable(idx, &idx->docs[slot], cx->market))
						continue;
					seen[type]++;
					score_posting(sc, qi, &es, slot, type, p->tf, p->pos, &p->hot, avg);
				}
			}
			used += scanned;
			for (int ty = 0; ty < SEARCH_NTYPES; ty++)
				est[ty] += scanned ? (double)seen[ty] * t->npost / scanned : 0;
		}
		for (int ty = 0; ty < SEARCH_NTYPES; ty++)
			if (est[ty] > cx->est[ty])
				cx->est[ty] = est[ty];
		if (w->capped)
			cut[qi] = 1;
		if (cut[qi])
			cx->truncated = 1;
	}
	if (cx->qp.n < 2)
		return;
	for (int qi = 0; qi < cx->qp.n; qi++) {
		struct qword *w = &cx->qp.w[qi];
		if (!cut[qi] || !w->nexp)
			continue;
		struct escore *es = xmalloc(w->nexp * sizeof *es);
		/* open-addressing set of the word's expansion terms: slot = expansion index + 1 */
		uint16_t set[256] = {0};
		for (size_t ei = 0; ei < w->nexp; ei++) {
			es[ei] = exp_score(idx, &w->exp[ei]);
			uint32_t h = (w->exp[ei].term * 2654435761u) >> 24;
			while (set[h])
				h = (h + 1) & 255;
			set[h] = (uint16_t)(ei + 1);
		}
		uint16_t bit = (uint16_t)(1u << qi);
		int as_prefix = w->end && qi == cx->qp.n - 1 && !w->cjk;
		uint8_t *pbits = as_prefix && w->capped ? prefix_bits(idx, w) : NULL;
		/* accumulators were created best-first, so the head holds the likeliest docs;
		 * only the ones lacking the word cost a lookup, and those are capped */
		size_t n = sc->nacc, checked = 0;
		for (size_t i = 0; i < n && checked < VERIFY_MAX; i++) {
			struct acc *a = &sc->acc[i];
			/* two-stage prefetch: these lookups are two dependent cache misses each */
			if (i + 16 < n && !(sc->acc[i + 16].mask & bit))
				__builtin_prefetch(&idx->docs[sc->acc[i + 16].doc]);
			if (i + 8 < n && !(sc->acc[i + 8].mask & bit))
				__builtin_prefetch(idx->docs[sc->acc[i + 8].doc].dt);
			if (a->mask & bit)
				continue;
			checked++;
			const struct sdoc *d = &idx->docs[a->doc];
			for (uint32_t k = 0; k < d->nterms; k++) {
				uint32_t term = d->dt[k].term, h = (term * 2654435761u) >> 24;
				int hit = 0;
				for (; set[h]; h = (h + 1) & 255) {
					size_t ei = set[h] - 1u;
					if (w->exp[ei].term != term)
						continue;
					score_posting(sc, qi, &es[ei], a->doc, a->type, d->dt[k].tf, d->dt[k].pos,
					              &idx->hot[a->doc], avg);
					hit = 1;
					break;
				}
				/* a completion beyond the expansion cap still counts when typed exactly */
				if (!hit && pbits && ((pbits[term >> 3] >> (term & 7)) & 1)) {
					struct exp e = {term, 0, 0, 1};
					struct escore pe = exp_score(idx, &e);
					score_posting(sc, qi, &pe, a->doc, a->type, d->dt[k].tf, d->dt[k].pos,
					              &idx->hot[a->doc], avg);
				}
			}
		}
		free(es);
		free(pbits);
	}
}

struct ranked { double key; uint32_t acc; };

static void rpush(struct ranked *h, size_t *n, size_t cap, struct ranked r)
{
	/* min-heap of the best cap entries */
	if (*n == cap) {
		if (r.key <= h[0].key)
			return;
		size_t i = 0;
		for (;;) {
			size_t c = 2 * i + 1;
			if (c >= *n)
				break;
			if (c + 1 < *n && h[c + 1].key < h[c].key)
				c++;
			if (h[c].key >= r.key)
				break;
			h[i] = h[c];
			i = c;
		}
		h[i] = r;
		return;
	}
	size_t i = (*n)++;
	while (i && h[(i - 1) / 2].key > r.key) {
		h[i] = h[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h[i] = r;
}

static int cmp_ranked_desc(const void *a, const void *b)
{
	double x = ((const struct ranked *)a)->key, y = ((const struct ranked *)b)->key;
	return x < y ? 1 : x > y ? -1 : 0;
}

static int popcount16(unsigned v)
{
	return __builtin_popcount(v);
}

/* Computes the score parts and the total order key of one accumulator. Returns 0 when the
 * document is excluded (too few words matched). */
static int score_acc(const struct ctx *cx, const struct acc *a, const float *maxtext,
                     int min_match, double floor, struct search_parts *pp, double *key)
{
	const struct search_index *idx = cx->idx;
	int nw = cx->qp.n, matched = popcount16(a->mask);
	if (matched < min_match)
		return 0;
	struct search_parts p = {0};
	double text = 0;
	int cost = 0;
	for (int i = 0; i < nw; i++)
		if (a->mask & (1u << i)) {
			text += a->s[i];
			cost += a->cost[i];
		}
	p.text = maxtext[a->type] > 0 ? text / maxtext[a->type] : 0;
	p.matched = matched;
	p.typos = cost;
	p.typo = 0.1 * cost;
	uint16_t all = (uint16_t)((1u << nw) - 1);
	if (a->exact == all && a->len0 == nw)
		p.boost += 0.5;
	else if (a->pfx == all && a->len0 == nw)
		p.boost += 0.35;
	if (nw >= 2 && a->mask == all) {
		int phrase = 1;
		for (int i = 0; i + 1 < nw && phrase; i++)
			phrase = a->pos[i] != NO_POS && a->pos[i + 1] == a->pos[i] + 1;
		if (phrase)
			p.boost += 0.25;
	}
	p.popularity = 0.6 * a->pop / 100.0;
	/* the rest needs the document record (a cache miss): skip it when even full taste
	 * could not lift this candidate into the page being built */
	double partial = p.text + p.boost + p.popularity - p.typo;
	if (1e7 + matched * 1e5 - cost * 1e3 + partial + 0.81 <= floor)
		return 2;
	const struct sdoc *d = &idx->docs[a->doc];
	if (d->genre && d->genre <= cx->ngenre_w)
		p.taste += 0.5 * cx->genre_w[d->genre - 1];
	float aw = 0;
	for (size_t i = 0; i < d->nartists; i++)
		for (size_t j = 0; j < cx->ntaste_art; j++)
			if (d->artists[i] == cx->taste_art[j] && cx->taste_art_w[j] > aw)
				aw = cx->taste_art_w[j];
	p.taste += 0.3 * aw;
	int playable = doc_playable(idx, d, cx->market);
	p.market = playable ? 0 : -1;
	double blended = p.text + p.boost + p.popularity + p.taste - p.typo;
	*key = (playable ? 1e7 : 0) + matched * 1e5 - cost * 1e3 + blended;
	*pp = p;
	return 1;
}

static int resolve(struct search_index *idx, const char *q, unsigned types, const char *market,
                   const struct search_taste *taste, struct ctx *cx, char *err, size_t errlen)
{
	memset(cx, 0, sizeof *cx);
	cx->idx = idx;
	cx->market = -1;
	if (!q) {
		snprintf(err, errlen, "missing query");
		return -EINVAL;
	}
	size_t qlen = strnlen(q, SEARCH_QUERY_MAX + 1);
	if (qlen > SEARCH_QUERY_MAX) {
		snprintf(err, errlen, "query longer than %d bytes", SEARCH_QUERY_MAX);
		return -EINVAL;
	}
	if (types & ~SEARCH_ALL_TYPES) {
		snprintf(err, errlen, "unknown type in mask");
		return -EINVAL;
	}
	cx->types = types ? types : SEARCH_ALL_TYPES;
	if (market && *market) {
		cx->market = market_code(market, strlen(market));
		if (cx->market < 0) {
			snprintf(err, errlen, "market must be a two-letter country code");
			return -EINVAL;
		}
	}
	fold_tokenize(q, qlen, FOLD_QUERY, query_tok, &cx->qp);
	if (cx->qp.n == 0) {
		snprintf(err, errlen, "query has no searchable words");
		return -EINVAL;
	}
	/* the last word is typed as a prefix unless the user ended it with a space, so
	 * "hel*" and "\"hel" still complete */
	char lastc = q[qlen - 1];
	cx->qp.w[cx->qp.n - 1].end = !(lastc == ' ' || lastc == '\t' || lastc == '\n');
	if (taste) {
		/* folded keys so "Jazz" and "jazz" are the same genre */
		cx->ngenre_w = idx->genres.n;
		cx->genre_w = xcalloc(cx->ngenre_w + 1, sizeof *cx->genre_w);
		for (size_t i = 0; i < taste->ngenres; i++) {
			if (!taste->genres[i].key)
				continue;
			char *f = fold_string(taste->genres[i].key);
			int32_t g = strtab_find(&idx->genres, f);
			free(f);
			if (g >= 0)
				cx->genre_w[g] = taste->genres[i].weight;
		}
		cx->taste_art = xcalloc(taste->nartists + 1, sizeof *cx->taste_art);
		cx->taste_art_w = xcalloc(taste->nartists + 1, sizeof *cx->taste_art_w);
		for (size_t i = 0; i < taste->nartists; i++) {
			if (!taste->artists[i].key)
				continue;
			char *f = fold_string(taste->artists[i].key);
			int32_t a = strtab_find(&idx->artists, f);
			free(f);
			if (a >= 0) {
				cx->taste_art[cx->ntaste_art] = (uint32_t)a;
				cx->taste_art_w[cx->ntaste_art++] = taste->artists[i].weight;
			}
		}
	}
	return 0;
}

static void ctx_free(struct ctx *cx)
{
	for (int i = 0; i < cx->qp.n; i++)
		free(cx->qp.w[i].exp);
	free(cx->genre_w);
	free(cx->taste_art);
	free(cx->taste_art_w);
}

static void expand_all(struct ctx *cx, size_t cap_typo, size_t cap_prefix)
{
	for (int i = 0; i < cx->qp.n; i++) {
		struct qword *w = &cx->qp.w[i];
		int as_prefix = w->end && i == cx->qp.n - 1 && !w->cjk;
		expand_word(cx->idx, w, as_prefix, as_prefix ? cap_prefix : cap_typo);
	}
}

static void max_text(const struct ctx *cx, const struct scratch *sc, float maxtext[SEARCH_NTYPES])
{
	for (int t = 0; t < SEARCH_NTYPES; t++)
		maxtext[t] = 0;
	for (size_t i = 0; i < sc->nacc; i++) {
		const struct acc *a = &sc->acc[i];
		float s = 0;
		for (int q = 0; q < cx->qp.n; q++)
			if (a->mask & (1u << q))
				s += a->s[q];
		int t = a->type;
		if (s > maxtext[t])
			maxtext[t] = s;
	}
}

int search_query(struct search_index *idx, const struct search_query *query,
                 struct search_results *res)
{
	memset(res, 0, sizeof *res);
	if (!query) {
		snprintf(res->error, sizeof res->error, "missing query");
		return -EINVAL;
	}
	int limit = query->limit ? query->limit : 20;
	if (limit < 1 || limit > SEARCH_LIMIT_MAX || query->offset < 0 ||
	    query->offset > SEARCH_OFFSET_MAX) {
		snprintf(res->error, sizeof res->error, "limit must be 1..%d and offset 0..%d",
		         SEARCH_LIMIT_MAX, SEARCH_OFFSET_MAX);
		return -EINVAL;
	}
	struct ctx cx;
	pthread_rwlock_rdlock(&idx->lock);
	int rc = resolve(idx, query->q, query->types, query->market, query->taste, &cx,
	                 res->error, sizeof res->error);
	if (rc < 0)
		goto out;
	cx.market_filter = query->market_filter && cx.market >= 0;
	expand_all(&cx, CAP_TYPO_EXP, CAP_PREFIX_EXP);
	cx.budget = SEARCH_BUDGET;
	struct scratch *sc = scratch_get(idx);
	accumulate(&cx, sc);
	float maxtext[SEARCH_NTYPES];
	max_text(&cx, sc, maxtext);
	/* all words when there are one or two, else at least half of them */
	int min_match = cx.qp.n <= 2 ? 1 : (cx.qp.n + 1) / 2;
	if (cx.qp.n == 2)
		min_match = 1;
	size_t k = (size_t)(query->offset + limit);
	struct ranked *heap[SEARCH_NTYPES];
	size_t hn[SEARCH_NTYPES] = {0};
	for (int t = 0; t < SEARCH_NTYPES; t++)
		heap[t] = (cx.types & (1u << t)) ? xmalloc(k * sizeof **heap) : NULL;
	for (size_t i = 0; i < sc->nacc; i++) {
		struct search_parts p;
		double key;
		int t = sc->acc[i].type;
		double floor = hn[t] == k ? heap[t][0].key : -1e300;
		int sr = score_acc(&cx, &sc->acc[i], maxtext, min_match, floor, &p, &key);
		if (!sr)
			continue;
		res->page[t].total++;
		if (sr == 1)
			rpush(heap[t], &hn[t], k, (struct ranked){key, (uint32_t)i});
	}
	for (int t = 0; t < SEARCH_NTYPES; t++) {
		if (!heap[t])
			continue;
		if (cx.truncated && cx.est[t] > res->page[t].total)
			res->page[t].total = (size_t)cx.est[t];
		qsort(heap[t], hn[t], sizeof *heap[t], cmp_ranked_desc);
		struct search_page *pg = &res->page[t];
		size_t from = (size_t)query->offset;
		pg->n = hn[t] > from ? hn[t] - from : 0;
		pg->hits = pg->n ? xcalloc(pg->n, sizeof *pg->hits) : NULL;
		for (size_t j = 0; j < pg->n; j++) {
			const struct acc *a = &sc->acc[heap[t][from + j].acc];
			const struct sdoc *d = &idx->docs[a->doc];
			struct search_hit *h = &pg->hits[j];
			double key;
			h->type = (enum search_type)d->type;
			memcpy(h->id, d->id, SEARCH_ID_LEN + 1);
			h->name = xstrdup(d->name);
			score_acc(&cx, a, maxtext, 0, -1e300, &h->parts, &key);
			h->score = key;
		}
		free(heap[t]);
	}
	scratch_put(idx, sc);
out:
	pthread_rwlock_unlock(&idx->lock);
	ctx_free(&cx);
	return rc;
}

void search_results_free(struct search_results *res)
{
	if (!res)
		return;
	for (int t = 0; t < SEARCH_NTYPES; t++) {
		for (size_t j = 0; j < res->page[t].n; j++)
			free(res->page[t].hits[j].name);
		free(res->page[t].hits);
		res->page[t].hits = NULL;
		res->page[t].n = 0;
	}
}

int search_suggest(struct search_index *idx, const char *q, unsigned types, const char *market,
                   struct search_suggestion out[SEARCH_SUGGEST_MAX], size_t *n)
{
	char err[128];
	struct ctx cx;
	*n = 0;
	pthread_rwlock_rdlock(&idx->lock);
	int rc = resolve(idx, q, types, market, NULL, &cx, err, sizeof err);
	if (rc < 0)
		goto out;
	expand_all(&cx, CAP_SUGGEST_EXP, CAP_SUGGEST_EXP);
	cx.budget = SUGGEST_BUDGET;
	struct scratch *sc = scratch_get(idx);
	accumulate(&cx, sc);
	float maxtext[SEARCH_NTYPES];
	max_text(&cx, sc, maxtext);
	struct ranked heap[SEARCH_SUGGEST_MAX];
	size_t hn = 0;
	for (size_t i = 0; i < sc->nacc; i++) {
		struct search_parts p;
		double key;
		double floor = hn == SEARCH_SUGGEST_MAX ? heap[0].key : -1e300;
		if (score_acc(&cx, &sc->acc[i], maxtext, cx.qp.n, floor, &p, &key) == 1)
			rpush(heap, &hn, SEARCH_SUGGEST_MAX, (struct ranked){key, (uint32_t)i});
	}
	qsort(heap, hn, sizeof *heap, cmp_ranked_desc);
	for (size_t j = 0; j < hn; j++) {
		const struct sdoc *d = &idx->docs[sc->acc[heap[j].acc].doc];
		out[j].type = (enum search_type)d->type;
		memcpy(out[j].id, d->id, SEARCH_ID_LEN + 1);
		out[j].text = d->artist_disp && d->type != SEARCH_ARTIST
		                  ? xasprintf("%s \xE2\x80\x94 %s", d->name, d->artist_disp)
		                  : xstrdup(d->name);
		out[j].score = heap[j].key;
	}
	*n = hn;
	scratch_put(idx, sc);
out:
	pthread_rwlock_unlock(&idx->lock);
	ctx_free(&cx);
	return rc;
}

void search_suggestions_free(struct search_suggestion *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(out[i].text);
		out[i].text = NULL;
	}
}
