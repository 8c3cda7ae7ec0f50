/* seqcrdt: a playlist's order as a sequence CRDT (RGA: a tree of "insert after" elements,
 * siblings newest first, read in pre-order), shared by encored and clients.
 *
 * Every operation has a Lamport id (counter, replica). An insert adds an element after an
 * origin element (or the head) carrying an item; a move is an insert of an existing item:
 * the item shows at its element with the greatest id (last writer wins per item), its other
 * elements are tombstones. A remove hides an item if its id beats every placement of it.
 * The visible order is therefore a function of the set of operations applied, whatever
 * their order, so replicas that saw the same operations agree. A run inserted as a chain
 * (each after the previous) stays contiguous next to concurrent runs.
 *
 * The replica numbers its applied operations 1, 2, ... (its version); the state at any
 * earlier version can be read back, which is how edits against an old snapshot are
 * rebased: positions are resolved in the list the user saw, then applied to the present.
 * Pure: no I/O, no globals. Not thread-safe: one owner (or lock) per instance. */
#ifndef ENCORE_SEQCRDT_H
#define ENCORE_SEQCRDT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Lamport id; {0, 0} is the head of the list (the origin of an insert at the front). */
struct seq_id {
	uint64_t counter;
	uint32_t replica;
};

enum seq_kind { SEQ_INSERT = 1, SEQ_REMOVE = 2 };

struct seq_op {
	enum seq_kind kind;
	struct seq_id id;      /* this operation; for an insert also the new element's id */
	struct seq_id item;    /* insert: == id for a new item, an existing item's id for a move; remove: the item */
	struct seq_id origin;  /* insert: the element this one follows ({0,0} = head) */
	char *uri;             /* insert of a new item: its track/episode URI (owned); NULL for moves and removes */
	char *added_by;        /* insert of a new item: user id (owned), may be NULL */
	int64_t added_at;      /* insert of a new item: unix seconds */
};

/* One visible item. Strings are borrowed from the replica and live until it is freed. */
struct seq_entry {
	struct seq_id elem;    /* where it shows (the element the cursor names) */
	struct seq_id item;    /* stable item id */
	const char *uri;
	const char *added_by;
	int64_t added_at;
};

/* A cursor for paging: the walk's starting version and the last element passed. */
struct seq_cursor {
	uint64_t version;
	struct seq_id after;   /* {0,0}: from the start */
};

#define SEQ_END ((size_t)-1)   /* position meaning "after the last element" */
#define SEQ_CURSOR_MAX 40      /* buffer size for an encoded cursor or snapshot id */

struct seqcrdt;

/* A new empty replica that makes ids with the given replica number (non-zero). */
struct seqcrdt *seqcrdt_new(uint32_t replica);
void seqcrdt_free(struct seqcrdt *c);

/* Applies an operation made here or elsewhere; strings are copied. Idempotent: a known id
 * is ignored. An operation whose origin or item is not known yet is held and applied once
 * it is. Returns 1 if applied (or held), 0 if a duplicate, -EINVAL if malformed. */
int seqcrdt_apply(struct seqcrdt *c, const struct seq_op *op);
/* Operations applied so far (held ones excluded). */
uint64_t seqcrdt_version(const struct seqcrdt *c);
/* Operations held for a missing origin/item. */
size_t seqcrdt_pending(const struct seqcrdt *c);
/* True when the operation with this id has been applied here (held ones excluded). */
bool seqcrdt_known(const struct seqcrdt *c, struct seq_id id);
/* Visible items now. */
size_t seqcrdt_len(struct seqcrdt *c);

/* The visible list at version v (v >= version means now): a new array (caller frees) of
 * *n entries. */
struct seq_entry *seqcrdt_list(struct seqcrdt *c, uint64_t v, size_t *n);
/* The visible entry for item, or false if unknown or removed. */
bool seqcrdt_find_item(struct seqcrdt *c, struct seq_id item, struct seq_entry *out);

/* ---- Local edits: resolve positions in the list at version v, make the operations,
 * apply them here, and return them (caller frees with seq_ops_free) for the log and peers.
 * All return the number of operations made, or -EINVAL / -ERANGE (position out of range). */

/* Inserts n URIs as one contiguous run at pos (0..len at v, or SEQ_END: after everything). */
int seqcrdt_insert(struct seqcrdt *c, uint64_t v, size_t pos, const char *const *uris, size_t n,
		   const char *added_by, int64_t added_at, struct seq_op **ops);
/* Moves the range [start, start+len) of the list at v before position before (0..len at v),
 * as the Web API's reorder does. Items removed since v are skipped. Moving a range onto itself makes no operation. */
int seqcrdt_move(struct seqcrdt *c, uint64_t v, size_t start, size_t len, size_t before, struct seq_op **ops);
/* Removes the given items (those still visible; others are skipped). */
int seqcrdt_remove(struct seqcrdt *c, const struct seq_id *items, size_t n, struct seq_op **ops);
void seq_ops_free(struct seq_op *ops, size_t n);

/* ---- Cursor paging, stable under concurrent edits. Each item is shown at one fixed
 * element: the place it had when the walk started, or for an item added during the walk
 * the first place it got. The walk goes forward over elements, which never change their
 * relative order, so no item comes twice and none that lived through the walk is skipped;
 * items removed meanwhile are left out. Returns the number of entries written (<= limit); *more says whether anything
 * is left, and *next is the cursor for the rest. -EINVAL if the cursor names an unknown
 * element or a future version. */
int seqcrdt_page(struct seqcrdt *c, const struct seq_cursor *cur, size_t limit,
		 struct seq_entry *out, struct seq_cursor *next, bool *more);

/* Opaque text forms (base64url). Encoders write at most SEQ_CURSOR_MAX bytes including the
 * NUL; decoders return 0 or -EINVAL. */
void seq_cursor_encode(const struct seq_cursor *cur, char out[SEQ_CURSOR_MAX]);
int seq_cursor_decode(const char *s, struct seq_cursor *out);
void seq_snapshot_encode(uint64_t version, char out[SEQ_CURSOR_MAX]);
int seq_snapshot_decode(const char *s, uint64_t *version);
/* "COUNTER.REPLICA" ids as the wire shows them; parse returns false when malformed. */
void seq_id_format(struct seq_id id, char out[32]);
bool seq_id_parse(const char *s, struct seq_id *out);
int seq_id_cmp(struct seq_id a, struct seq_id b);

#endif
