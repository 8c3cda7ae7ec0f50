/* seqcrdt: RGA with per-item last-writer-wins placement.
 *
 * Elements live in one array (index 0 is the head); each knows its parent (its origin),
 * first child and next sibling, siblings kept newest first. The total order (pre-order
 * over the tree, tombstones included) is rebuilt lazily after changes. Ids map to array
 * slots through an open-addressing table. Items carry the payload and the list of their
 * elements and removals, each stamped with the version at which it was applied, so the
 * state at an old version is a filter over the present one. */
#include "seqcrdt.h"
#include "b64.h"
#include "xmem.h"
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX
#define REMOVAL_BIT 0x80000000u

struct elem {
	struct seq_id id;
	uint32_t item;         /* NONE for the head */
	uint32_t parent, first_child, next_sib;
	uint32_t pos;          /* index in the total order */
	uint64_t seq;          /* version at which it was applied */
};

struct removal {
	struct seq_id id;
	uint64_t seq;
};

struct item {
	struct seq_id id;
	char *uri, *added_by;
	int64_t added_at;
	uint32_t *elems;
	uint32_t nelems, elemcap;
	struct removal *rms;
	uint32_t nrms, rmcap;
	uint32_t winner;       /* element with the greatest id */
	struct seq_id max_rm;  /* greatest removal id, {0,0} if none */
};

struct slot {
	struct seq_id key;
	uint32_t val;          /* element index, or REMOVAL_BIT | item index */
	bool used;
};

struct seqcrdt {
	uint32_t replica;
	uint64_t max_counter;
	uint64_t version;
	struct elem *elems;
	uint32_t nelems, elemcap;
	struct item *items;
	uint32_t nitems, itemcap;
	struct slot *map;
	size_t mapcap, mapused;
	uint32_t *order;       /* element indexes in list order, head first */
	bool dirty;
	struct seq_op *pending;
	size_t npending, pendcap;
};

int seq_id_cmp(struct seq_id a, struct seq_id b)
{
	if (a.counter != b.counter)
		return a.counter < b.counter ? -1 : 1;
	if (a.replica != b.replica)
		return a.replica < b.replica ? -1 : 1;
	return 0;
}

static bool id_is_head(struct seq_id a)
{
	return a.counter == 0 && a.replica == 0;
}

static uint64_t id_hash(struct seq_id k)
{
	uint64_t h = k.counter * 0x9E3779B97F4A7C15ull ^ ((uint64_t)k.replica * 0xC2B2AE3D27D4EB4Full);
	return h ^ (h >> 29);
}

static struct slot *map_find(const struct seqcrdt *c, struct seq_id k)
{
	size_t mask = c->mapcap - 1;
	for (size_t i = id_hash(k) & mask;; i = (i + 1) & mask) {
		struct slot *s = &c->map[i];
		if (!s->used || seq_id_cmp(s->key, k) == 0)
			return s;
	}
}

static void map_put(struct seqcrdt *c, struct seq_id k, uint32_t val);

static void map_grow(struct seqcrdt *c)
{
	struct slot *old = c->map;
	size_t oldcap = c->mapcap;
	c->mapcap = oldcap ? oldcap * 2 : 64;
	c->map = xcalloc(c->mapcap, sizeof(*c->map));
	c->mapused = 0;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].used)
			map_put(c, old[i].key, old[i].val);
	free(old);
}

static void map_put(struct seqcrdt *c, struct seq_id k, uint32_t val)
{
	if ((c->mapused + 1) * 4 >= c->mapcap * 3)
		map_grow(c);
	struct slot *s = map_find(c, k);
	if (!s->used)
		c->mapused++;
	s->used = true;
	s->key = k;
	s->val = val;
}

static bool map_get(const struct seqcrdt *c, struct seq_id k, uint32_t *val)
{
	const struct slot *s = map_find(c, k);
	if (!s->used)
		return false;
	*val = s->val;
	return true;
}

static uint32_t elem_add(struct seqcrdt *c, struct seq_id id, uint32_t item, uint32_t parent)
{
	if (c->nelems == c->elemcap) {
		c->elemcap = c->elemcap ? c->elemcap * 2 : 16;
		c->elems = xrealloc(c->elems, c->elemcap * sizeof(*c->elems));
	}
	uint32_t i = c->nelems++;
	c->elems[i] = (struct elem){.id = id, .item = item, .parent = parent, .first_child = NONE, .next_sib = NONE,
				    .pos = NONE, .seq = c->version};
	map_put(c, id, i);
	if (parent != NONE) {
		/* Newest first among siblings: a later insert at the same place comes first. */
		uint32_t *link = &c->elems[parent].first_child;
		while (*link != NONE && seq_id_cmp(c->elems[*link].id, id) > 0)
			link = &c->elems[*link].next_sib;
		c->elems[i].next_sib = *link;
		*link = i;
	}
	c->dirty = true;
	return i;
}

struct seqcrdt *seqcrdt_new(uint32_t replica)
{
	struct seqcrdt *c = xcalloc(1, sizeof(*c));
	c->replica = replica;
	map_grow(c);
	elem_add(c, (struct seq_id){0, 0}, NONE, NONE);
	return c;
}

static void op_release(struct seq_op *op)
{
	free(op->uri);
	free(op->added_by);
}

void seq_ops_free(struct seq_op *ops, size_t n)
{
	for (size_t i = 0; ops && i < n; i++)
		op_release(&ops[i]);
	free(ops);
}

void seqcrdt_free(struct seqcrdt *c)
{
	if (!c)
		return;
	for (uint32_t i = 0; i < c->nitems; i++) {
		free(c->items[i].uri);
		free(c->items[i].added_by);
		free(c->items[i].elems);
		free(c->items[i].rms);
	}
	for (size_t i = 0; i < c->npending; i++)
		op_release(&c->pending[i]);
	free(c->pending);
	free(c->items);
	free(c->elems);
	free(c->map);
	free(c->order);
	free(c);
}

uint64_t seqcrdt_version(const struct seqcrdt *c)
{
	return c->version;
}

size_t seqcrdt_pending(const struct seqcrdt *c)
{
	return c->npending;
}

static bool item_visible_now(const struct seqcrdt *c, const struct item *it)
{
	return it->winner != NONE && seq_id_cmp(it->max_rm, c->elems[it->winner].id) < 0;
}

/* The element showing item at version v, or NONE if it was absent or removed then. */
static uint32_t winner_at(const struct seqcrdt *c, const struct item *it, uint64_t v)
{
	if (v >= c->version)
		return item_visible_now(c, it) ? it->winner : NONE;
	uint32_t best = NONE;
	for (uint32_t i = 0; i < it->nelems; i++) {
		const struct elem *e = &c->elems[it->elems[i]];
		if (e->seq <= v && (best == NONE || seq_id_cmp(e->id, c->elems[best].id) > 0))
			best = it->elems[i];
	}
	if (best == NONE)
		return NONE;
	for (uint32_t i = 0; i < it->nrms; i++)
		if (it->rms[i].seq <= v && seq_id_cmp(it->rms[i].id, c->elems[best].id) > 0)
			return NONE;
	return best;
}

static void note_counter(struct seqcrdt *c, struct seq_id id)
{
	if (id.counter > c->max_counter)
		c->max_counter = id.counter;
}

/* 1 applied, 0 duplicate, -EAGAIN missing dependency, -EINVAL malformed. */
static int apply_now(struct seqcrdt *c, const struct seq_op *op)
{
	uint32_t v;
	if (id_is_head(op->id))
		return -EINVAL;
	if (op->kind == SEQ_INSERT) {
		if (map_get(c, op->id, &v))
			return 0;
		uint32_t parent;
		if (!map_get(c, op->origin, &parent) || (parent & REMOVAL_BIT))
			return -EAGAIN;
		uint32_t item;
		if (seq_id_cmp(op->item, op->id) == 0) {
			if (!op->uri)
				return -EINVAL;
			if (c->nitems == c->itemcap) {
				c->itemcap = c->itemcap ? c->itemcap * 2 : 16;
				c->items = xrealloc(c->items, c->itemcap * sizeof(*c->items));
			}
			item = c->nitems++;
			c->items[item] = (struct item){.id = op->id, .uri = xstrdup(op->uri),
						       .added_by = op->added_by ? xstrdup(op->added_by) : NULL,
						       .added_at = op->added_at, .winner = NONE};
		} else {
			uint32_t first;
			if (!map_get(c, op->item, &first) || (first & REMOVAL_BIT))
				return -EAGAIN;
			item = c->elems[first].item;
			if (item == NONE || seq_id_cmp(c->items[item].id, op->item) != 0)
				return -EINVAL;  /* names an element that is not an item's first */
		}
		c->version++;
		note_counter(c, op->id);
		uint32_t e = elem_add(c, op->id, item, parent);
		struct item *it = &c->items[item];
		if (it->nelems == it->elemcap) {
			it->elemcap = it->elemcap ? it->elemcap * 2 : 2;
			it->elems = xrealloc(it->elems, it->elemcap * sizeof(*it->elems));
		}
		it->elems[it->nelems++] = e;
		if (it->winner == NONE || seq_id_cmp(op->id, c->elems[it->winner].id) > 0)
			it->winner = e;
		return 1;
	}
	if (op->kind == SEQ_REMOVE) {
		if (map_get(c, op->id, &v))
			return 0;
		uint32_t first;
		if (!map_get(c, op->item, &first) || (first & REMOVAL_BIT))
			return -EAGAIN;
		uint32_t item = c->elems[first].item;
		if (item == NONE || seq_id_cmp(c->items[item].id, op->item) != 0)
			return -EINVAL;
		c->version++;
		note_counter(c, op->id);
		struct item *it = &c->items[item];
		if (it->nrms == it->rmcap) {
			it->rmcap = it->rmcap ? it->rmcap * 2 : 2;
			it->rms = xrealloc(it->rms, it->rmcap * sizeof(*it->rms));
		}
		it->rms[it->nrms++] = (struct removal){.id = op->id, .seq = c->version};
		if (seq_id_cmp(op->id, it->max_rm) > 0)
			it->max_rm = op->id;
		map_put(c, op->id, REMOVAL_BIT | item);
		c->dirty = true;
		return 1;
	}
	return -EINVAL;
}

static bool pending_has(const struct seqcrdt *c, struct seq_id id)
{
	for (size_t i = 0; i < c->npending; i++)
		if (seq_id_cmp(c->pending[i].id, id) == 0)
			return true;
	return false;
}

int seqcrdt_apply(struct seqcrdt *c, const struct seq_op *op)
{
	int rc = apply_now(c, op);
	if (rc == -EAGAIN) {
		if (pending_has(c, op->id))
			return 0;
		if (c->npending == c->pendcap) {
			c->pendcap = c->pendcap ? c->pendcap * 2 : 8;
			c->pending = xrealloc(c->pending, c->pendcap * sizeof(*c->pending));
		}
		struct seq_op *p = &c->pending[c->npending++];
		*p = *op;
		p->uri = op->uri ? xstrdup(op->uri) : NULL;
		p->added_by = op->added_by ? xstrdup(op->added_by) : NULL;
		return 1;
	}
	if (rc <= 0)
		return rc;
	/* Something new arrived: held operations may now have their dependencies. */
	for (bool progress = true; progress && c->npending;) {
		progress = false;
		for (size_t i = 0; i < c->npending;) {
			int r = apply_now(c, &c->pending[i]);
			if (r == -EAGAIN) {
				i++;
				continue;
			}
			op_release(&c->pending[i]);
			c->pending[i] = c->pending[--c->npending];
			progress = progress || r > 0;
		}
	}
	return 1;
}

static void rebuild_order(struct seqcrdt *c)
{
	if (!c->dirty && c->order)
		return;
	free(c->order);
	c->order = xmalloc((size_t)c->nelems * sizeof(*c->order));
	uint32_t n = 0;
	c->order[n] = 0;
	c->elems[0].pos = n++;
	uint32_t e = c->elems[0].first_child;
	while (e != NONE) {
		c->order[n] = e;
		c->elems[e].pos = n++;
		if (c->elems[e].first_child != NONE) {
			e = c->elems[e].first_child;
			continue;
		}
		while (e != 0 && c->elems[e].next_sib == NONE)
			e = c->elems[e].parent;
		e = e == 0 ? NONE : c->elems[e].next_sib;
	}
	c->dirty = false;
}

static struct seq_entry entry_of(const struct seqcrdt *c, uint32_t e)
{
	const struct item *it = &c->items[c->elems[e].item];
	return (struct seq_entry){.elem = c->elems[e].id, .item = it->id, .uri = it->uri,
				  .added_by = it->added_by, .added_at = it->added_at};
}

struct seq_entry *seqcrdt_list(struct seqcrdt *c, uint64_t v, size_t *n)
{
	rebuild_order(c);
	struct seq_entry *out = xmalloc(((size_t)c->nitems + 1) * sizeof(*out));
	size_t k = 0;
	for (uint32_t p = 1; p < c->nelems; p++) {
		uint32_t e = c->order[p];
		if (winner_at(c, &c->items[c->elems[e].item], v) == e)
			out[k++] = entry_of(c, e);
	}
	*n = k;
	return out;
}

bool seqcrdt_known(const struct seqcrdt *c, struct seq_id id)
{
	uint32_t v;
	return map_get(c, id, &v);
}

size_t seqcrdt_len(struct seqcrdt *c)
{
	size_t n = 0;
	for (uint32_t i = 0; i < c->nitems; i++)
		n += item_visible_now(c, &c->items[i]);
	return n;
}

bool seqcrdt_find_item(struct seqcrdt *c, struct seq_id item, struct seq_entry *out)
{
	uint32_t first;
	if (!map_get(c, item, &first) || (first & REMOVAL_BIT) || c->elems[first].item == NONE)
		return false;
	const struct item *it = &c->items[c->elems[first].item];
	if (seq_id_cmp(it->id, item) != 0 || !item_visible_now(c, it))
		return false;
	*out = entry_of(c, it->winner);
	return true;
}

static struct seq_id next_id(struct seqcrdt *c)
{
	return (struct seq_id){c->max_counter + 1, c->replica};
}

static struct seq_op *ops_push(struct seq_op **ops, size_t *n)
{
	*ops = xrealloc(*ops, (*n + 1) * sizeof(**ops));
	struct seq_op *op = &(*ops)[(*n)++];
	memset(op, 0, sizeof(*op));
	return op;
}

int seqcrdt_insert(struct seqcrdt *c, uint64_t v, size_t pos, const char *const *uris, size_t n,
		   const char *added_by, int64_t added_at, struct seq_op **ops)
{
	*ops = NULL;
	if (v > c->version)
		return -EINVAL;
	struct seq_id origin = {0, 0};
	if (pos == SEQ_END) {
		rebuild_order(c);
		origin = c->elems[c->order[c->nelems - 1]].id;
	} else if (pos > 0) {
		size_t len;
		struct seq_entry *l = seqcrdt_list(c, v, &len);
		if (pos > len) {
			free(l);
			return -ERANGE;
		}
		origin = l[pos - 1].elem;
		free(l);
	}
	size_t nops = 0;
	for (size_t i = 0; i < n; i++) {
		struct seq_op *op = ops_push(ops, &nops);
		op->kind = SEQ_INSERT;
		op->id = op->item = next_id(c);
		op->origin = origin;
		op->uri = xstrdup(uris[i]);
		op->added_by = added_by ? xstrdup(added_by) : NULL;
		op->added_at = added_at;
		apply_now(c, op);
		origin = op->id;
	}
	return (int)nops;
}

int seqcrdt_move(struct seqcrdt *c, uint64_t v, size_t start, size_t len, size_t before, struct seq_op **ops)
{
	*ops = NULL;
	if (v > c->version)
		return -EINVAL;
	size_t n;
	struct seq_entry *l = seqcrdt_list(c, v, &n);
	int rc = -ERANGE;
	if (len == 0 || start >= n || len > n - start || before > n)
		goto out;
	rc = 0;
	if (before >= start && before <= start + len)
		goto out;  /* onto itself */
	struct seq_id origin = before == 0 ? (struct seq_id){0, 0} : l[before - 1].elem;
	size_t nops = 0;
	for (size_t i = start; i < start + len; i++) {
		struct seq_entry now;
		if (!seqcrdt_find_item(c, l[i].item, &now))
			continue;  /* removed since v */
		struct seq_op *op = ops_push(ops, &nops);
		op->kind = SEQ_INSERT;
		op->id = next_id(c);
		op->item = l[i].item;
		op->origin = origin;
		apply_now(c, op);
		origin = op->id;
	}
	rc = (int)nops;
out:
	free(l);
	return rc;
}

int seqcrdt_remove(struct seqcrdt *c, const struct seq_id *items, size_t n, struct seq_op **ops)
{
	*ops = NULL;
	size_t nops = 0;
	for (size_t i = 0; i < n; i++) {
		struct seq_entry now;
		if (!seqcrdt_find_item(c, items[i], &now))
			continue;
		struct seq_op *op = ops_push(ops, &nops);
		op->kind = SEQ_REMOVE;
		op->id = next_id(c);
		op->item = items[i];
		apply_now(c, op);
	}
	return (int)nops;
}

/* The one element a walk started at version v shows item at (see the header). */
static uint32_t designated(const struct seqcrdt *c, const struct item *it, uint64_t v)
{
	uint32_t then = winner_at(c, it, v);
	if (then != NONE)
		return then;
	uint32_t first = NONE;
	for (uint32_t i = 0; i < it->nelems; i++) {
		const struct elem *e = &c->elems[it->elems[i]];
		if (e->seq > v && (first == NONE || e->seq < c->elems[first].seq))
			first = it->elems[i];
	}
	return first;
}

int seqcrdt_page(struct seqcrdt *c, const struct seq_cursor *cur, size_t limit,
		 struct seq_entry *out, struct seq_cursor *next, bool *more)
{
	if (cur->version > c->version)
		return -EINVAL;
	rebuild_order(c);
	uint32_t start = 1;
	if (!id_is_head(cur->after)) {
		uint32_t e;
		if (!map_get(c, cur->after, &e) || (e & REMOVAL_BIT))
			return -EINVAL;
		start = c->elems[e].pos + 1;
	}
	*next = *cur;
	*more = false;
	size_t k = 0;
	for (uint32_t p = start; p < c->nelems; p++) {
		uint32_t e = c->order[p];
		const struct item *it = &c->items[c->elems[e].item];
		if (!item_visible_now(c, it))
			continue;
		if (designated(c, it, cur->version) != e)
			continue;
		if (k == limit) {
			*more = true;
			break;
		}
		out[k++] = entry_of(c, e);
		next->after = c->elems[e].id;
	}
	return (int)k;
}

static void put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void encode_into(const unsigned char *raw, size_t n, char out[SEQ_CURSOR_MAX])
{
	char *s = b64url_encode(raw, n);
	snprintf(out, SEQ_CURSOR_MAX, "%s", s);
	free(s);
}

void seq_cursor_encode(const struct seq_cursor *cur, char out[SEQ_CURSOR_MAX])
{
	unsigned char raw[21];
	raw[0] = 'c';
	put_u64(raw + 1, cur->version);
	put_u64(raw + 9, cur->after.counter);
	raw[17] = (unsigned char)(cur->after.replica >> 24);
	raw[18] = (unsigned char)(cur->after.replica >> 16);
	raw[19] = (unsigned char)(cur->after.replica >> 8);
	raw[20] = (unsigned char)cur->after.replica;
	encode_into(raw, sizeof(raw), out);
}

int seq_cursor_decode(const char *s, struct seq_cursor *out)
{
	size_t n;
	unsigned char *raw = s ? b64url_decode(s, strlen(s), &n) : NULL;
	int rc = -EINVAL;
	if (!raw || n != 21 || raw[0] != 'c')
		goto out;
	out->version = get_u64(raw + 1);
	out->after.counter = get_u64(raw + 9);
	out->after.replica = (uint32_t)raw[17] << 24 | (uint32_t)raw[18] << 16 | (uint32_t)raw[19] << 8 | raw[20];
	if ((out->after.counter == 0) != (out->after.replica == 0))
		goto out;
	rc = 0;
out:
	free(raw);
	return rc;
}

void seq_snapshot_encode(uint64_t version, char out[SEQ_CURSOR_MAX])
{
	unsigned char raw[9];
	raw[0] = 's';
	put_u64(raw + 1, version);
	encode_into(raw, sizeof(raw), out);
}

int seq_snapshot_decode(const char *s, uint64_t *version)
{
	size_t n;
	unsigned char *raw = s ? b64url_decode(s, strlen(s), &n) : NULL;
	int rc = -EINVAL;
	if (raw && n == 9 && raw[0] == 's') {
		*version = get_u64(raw + 1);
		rc = 0;
	}
	free(raw);
	return rc;
}

void seq_id_format(struct seq_id id, char out[32])
{
	snprintf(out, 32, "%" PRIu64 ".%" PRIu32, id.counter, id.replica);
}

bool seq_id_parse(const char *s, struct seq_id *out)
{
	if (!s)
		return false;
	uint64_t a = 0, b = 0;
	const char *p = s;
	int digits = 0;
	for (; *p >= '0' && *p <= '9'; p++, digits++) {
		if (a > (UINT64_MAX - 9) / 10)
			return false;
		a = a * 10 + (uint64_t)(*p - '0');
	}
	if (!digits || *p++ != '.')
		return false;
	digits = 0;
	for (; *p >= '0' && *p <= '9'; p++, digits++) {
		b = b * 10 + (uint64_t)(*p - '0');
		if (b > UINT32_MAX)
			return false;
	}
	if (!digits || *p)
		return false;
	out->counter = a;
	out->replica = (uint32_t)b;
	return true;
}
