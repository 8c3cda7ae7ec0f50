/* Unit tests for the playlist order CRDT: local edits, concurrent edits from several
 * replicas delivered in any order, rebasing against old versions, cursor paging. */
#include "../tap.h"
#include "seqcrdt.h"
#include "xmem.h"
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The visible URIs joined with ',' (caller frees). */
static char *order_str(struct seqcrdt *c, uint64_t v)
{
	size_t n;
	struct seq_entry *l = seqcrdt_list(c, v, &n);
	size_t cap = 1;
	for (size_t i = 0; i < n; i++)
		cap += strlen(l[i].uri) + 1;
	char *s = xcalloc(1, cap);
	for (size_t i = 0; i < n; i++) {
		if (i)
			strcat(s, ",");
		strcat(s, l[i].uri);
	}
	free(l);
	return s;
}

static void ins(struct seqcrdt *c, size_t pos, const char *csv)
{
	const char *uris[64];
	char *copy = xstrdup(csv), *save = NULL;
	size_t n = 0;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
		uris[n++] = t;
	struct seq_op *ops;
	int k = seqcrdt_insert(c, seqcrdt_version(c), pos, uris, n, "u", 1, &ops);
	CHECK_INT(k, n);
	seq_ops_free(ops, k > 0 ? (size_t)k : 0);
	free(copy);
}

#define CHECK_ORDER(c, want) do { char *o_ = order_str((c), UINT64_MAX); CHECK_STR(o_, want); free(o_); } while (0)

static void test_insert_at_positions_and_append(void)
{
	struct seqcrdt *c = seqcrdt_new(1);
	ins(c, SEQ_END, "a,b,c");
	ins(c, 0, "x");
	ins(c, 2, "y,z");
	ins(c, SEQ_END, "e");
	CHECK_ORDER(c, "x,a,y,z,b,c,e");
	CHECK_INT(seqcrdt_len(c), 7);
	struct seq_op *ops;
	const char *u = "q";
	CHECK_INT(seqcrdt_insert(c, seqcrdt_version(c), 8, &u, 1, NULL, 0, &ops), -ERANGE);
	seqcrdt_free(c);
}

static void test_move_range_follows_web_api_reorder(void)
{
	struct seqcrdt *c = seqcrdt_new(1);
	ins(c, SEQ_END, "a,b,c,d,e");
	struct seq_op *ops;
	int k = seqcrdt_move(c, seqcrdt_version(c), 1, 2, 4, &ops);
	CHECK_INT(k, 2);
	seq_ops_free(ops, 2);
	CHECK_ORDER(c, "a,d,b,c,e");
	k = seqcrdt_move(c, seqcrdt_version(c), 4, 1, 0, &ops);
	seq_ops_free(ops, (size_t)k);
	CHECK_ORDER(c, "e,a,d,b,c");
	CHECK_INT(seqcrdt_move(c, seqcrdt_version(c), 1, 2, 2, &ops), 0);
	CHECK_INT(seqcrdt_move(c, seqcrdt_version(c), 4, 2, 0, &ops), -ERANGE);
	CHECK_INT(seqcrdt_move(c, seqcrdt_version(c), 0, 1, 6, &ops), -ERANGE);
	CHECK_INT(seqcrdt_len(c), 5);
	seqcrdt_free(c);
}

static void test_remove_hides_items_and_keeps_versions_readable(void)
{
	struct seqcrdt *c = seqcrdt_new(1);
	ins(c, SEQ_END, "a,b,c");
	uint64_t v = seqcrdt_version(c);
	size_t n;
	struct seq_entry *l = seqcrdt_list(c, v, &n);
	struct seq_id items[2] = {l[0].item, l[2].item};
	free(l);
	struct seq_op *ops;
	CHECK_INT(seqcrdt_remove(c, items, 2, &ops), 2);
	seq_ops_free(ops, 2);
	CHECK_ORDER(c, "b");
	char *old = order_str(c, v);
	CHECK_STR(old, "a,b,c");
	free(old);
	CHECK_INT(seqcrdt_remove(c, items, 2, &ops), 0);  /* already gone */
	seqcrdt_free(c);
}

static void test_edit_against_old_version_applies_to_what_the_user_saw(void)
{
	struct seqcrdt *c = seqcrdt_new(1);
	ins(c, SEQ_END, "a,b,c,d");
	uint64_t seen = seqcrdt_version(c);
	/* Others edit meanwhile: two at the front, b removed, d moved to the front. */
	ins(c, 0, "p,q");
	size_t n;
	struct seq_entry *l = seqcrdt_list(c, seen, &n);
	struct seq_id b = l[1].item;
	free(l);
	struct seq_op *ops;
	int k = seqcrdt_remove(c, &b, 1, &ops);
	seq_ops_free(ops, (size_t)k);
	k = seqcrdt_move(c, seqcrdt_version(c), 4, 1, 0, &ops);
	seq_ops_free(ops, (size_t)k);
	CHECK_ORDER(c, "d,p,q,a,c");
	/* The user, looking at a,b,c,d, inserts x at 2 (after b) and moves a (0) before d (3). */
	const char *x = "x";
	k = seqcrdt_insert(c, seen, 2, &x, 1, "u", 0, &ops);
	seq_ops_free(ops, (size_t)k);
	CHECK_ORDER(c, "d,p,q,a,x,c");
	k = seqcrdt_move(c, seen, 0, 1, 3, &ops);
	CHECK_INT(k, 1);
	seq_ops_free(ops, (size_t)k);
	CHECK_ORDER(c, "d,p,q,x,c,a");
	seqcrdt_free(c);
}

static struct seq_op op_copy(const struct seq_op *o)
{
	struct seq_op c = *o;
	c.uri = o->uri ? xstrdup(o->uri) : NULL;
	c.added_by = o->added_by ? xstrdup(o->added_by) : NULL;
	return c;
}

static void test_concurrent_runs_at_one_place_are_not_interleaved(void)
{
	struct seqcrdt *r1 = seqcrdt_new(1), *r2 = seqcrdt_new(2);
	struct seq_op *base;
	const char *ab[] = {"a", "b"};
	int k = seqcrdt_insert(r1, 0, SEQ_END, ab, 2, NULL, 0, &base);
	for (int i = 0; i < k; i++)
		seqcrdt_apply(r2, &base[i]);
	const char *run1[] = {"x1", "x2", "x3"}, *run2[] = {"y1", "y2", "y3"};
	struct seq_op *o1, *o2;
	int k1 = seqcrdt_insert(r1, seqcrdt_version(r1), 1, run1, 3, NULL, 0, &o1);
	int k2 = seqcrdt_insert(r2, seqcrdt_version(r2), 1, run2, 3, NULL, 0, &o2);
	/* Deliver the other's run backwards, to exercise held operations too. */
	for (int i = k2 - 1; i >= 0; i--)
		seqcrdt_apply(r1, &o2[i]);
	for (int i = 0; i < k1; i++)
		seqcrdt_apply(r2, &o1[i]);
	char *s1 = order_str(r1, UINT64_MAX), *s2 = order_str(r2, UINT64_MAX);
	CHECK_STR(s1, s2);
	CHECK(strstr(s1, "x1,x2,x3") && strstr(s1, "y1,y2,y3"), "runs interleaved: %s", s1);
	CHECK_INT(seqcrdt_pending(r1), 0);
	free(s1);
	free(s2);
	seq_ops_free(base, (size_t)k);
	seq_ops_free(o1, (size_t)k1);
	seq_ops_free(o2, (size_t)k2);
	seqcrdt_free(r1);
	seqcrdt_free(r2);
}

static void test_apply_is_idempotent_and_refuses_malformed_ops(void)
{
	struct seqcrdt *c = seqcrdt_new(1);
	struct seq_op op = {.kind = SEQ_INSERT, .id = {5, 2}, .item = {5, 2}, .origin = {0, 0}, .uri = "u"};
	CHECK_INT(seqcrdt_apply(c, &op), 1);
	CHECK_INT(seqcrdt_apply(c, &op), 0);
	CHECK_INT(seqcrdt_version(c), 1);
	struct seq_op bad = {.kind = SEQ_INSERT, .id = {0, 0}, .item = {0, 0}, .uri = "u"};
	CHECK_INT(seqcrdt_apply(c, &bad), -EINVAL);
	struct seq_op nouri = {.kind = SEQ_INSERT, .id = {6, 2}, .item = {6, 2}};
	CHECK_INT(seqcrdt_apply(c, &nouri), -EINVAL);
	struct seq_op kind = {.kind = 9, .id = {7, 2}};
	CHECK_INT(seqcrdt_apply(c, &kind), -EINVAL);
	/* Local ids continue above every id seen (Lamport). */
	const char *u = "v";
	struct seq_op *ops;
	seqcrdt_insert(c, 1, SEQ_END, &u, 1, NULL, 0, &ops);
	CHECK_INT(ops[0].id.counter, 6);
	seq_ops_free(ops, 1);
	seqcrdt_free(c);
}

/* ---- randomized convergence ---- */

#define NREP 5
#define MAXRUNS 256
#define MAXCOUNTER 8192

struct sim {
	struct seqcrdt *rep[NREP];
	struct seq_op *log;          /* every op made, in creation order */
	size_t nlog, logcap;
	size_t *inbox[NREP];         /* indexes into log not yet delivered */
	size_t ninbox[NREP], inboxcap[NREP];
	/* Per placement (insert op): which runs its maker had seen; indexed [replica][counter]. */
	uint8_t (*seen)[MAXRUNS / 8];
	struct { struct seq_id items[8]; int n; } runs[MAXRUNS];
	int nruns;
	struct { uint64_t version; char *order; } snaps[64];
	int nsnaps;
	int snap_rep;
};

static uint32_t rng_state = 12345;
static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return n ? rng_state % n : 0;
}

static size_t seen_index(struct seq_id id)
{
	return (size_t)id.replica * MAXCOUNTER + (size_t)id.counter;
}

static void sim_publish(struct sim *s, int from, struct seq_op *ops, int k)
{
	for (int i = 0; i < k; i++) {
		if (s->nlog == s->logcap) {
			s->logcap = s->logcap ? s->logcap * 2 : 256;
			s->log = xrealloc(s->log, s->logcap * sizeof(*s->log));
		}
		s->log[s->nlog] = op_copy(&ops[i]);
		if (ops[i].kind == SEQ_INSERT) {
			uint8_t *bits = s->seen[seen_index(ops[i].id)];
			for (int r = 0; r < s->nruns; r++) {
				/* Seen = the maker had applied the run's first insert. */
				if (seqcrdt_known(s->rep[from], s->runs[r].items[0]))
					bits[r / 8] |= (uint8_t)(1u << (r % 8));
			}
		}
		for (int r = 0; r < NREP; r++) {
			if (r == from)
				continue;
			if (s->ninbox[r] == s->inboxcap[r]) {
				s->inboxcap[r] = s->inboxcap[r] ? s->inboxcap[r] * 2 : 256;
				s->inbox[r] = xrealloc(s->inbox[r], s->inboxcap[r] * sizeof(size_t));
			}
			s->inbox[r][s->ninbox[r]++] = s->nlog;
		}
		s->nlog++;
	}
}

/* Delivers up to n random pending ops to replica r (any order, even ahead of causality). */
static void sim_deliver(struct sim *s, int r, size_t n)
{
	while (n-- > 0 && s->ninbox[r] > 0) {
		size_t i = rnd((uint32_t)s->ninbox[r]);
		size_t li = s->inbox[r][i];
		s->inbox[r][i] = s->inbox[r][--s->ninbox[r]];
		int rc = seqcrdt_apply(s->rep[r], &s->log[li]);
		CHECK(rc >= 0, "apply failed: %d", rc);
		/* Duplicate delivery must be harmless. */
		if (rnd(10) == 0)
			CHECK_INT(seqcrdt_apply(s->rep[r], &s->log[li]), 0);
	}
}

static void sim_local_edit(struct sim *s, int r)
{
	struct seqcrdt *c = s->rep[r];
	size_t len = seqcrdt_len(c);
	/* Sometimes edit against an older version of this replica (a stale snapshot). */
	uint64_t v = seqcrdt_version(c);
	if (v > 0 && rnd(4) == 0)
		v -= rnd((uint32_t)(v < 20 ? v : 20));
	size_t vn;
	struct seq_entry *vl = seqcrdt_list(c, v, &vn);
	struct seq_op *ops = NULL;
	int k = 0;
	uint32_t what = rnd(10);
	if (what < 5 || vn < 2) {
		char names[8][32];
		const char *uris[8];
		int n = 1 + (int)rnd(4);
		for (int i = 0; i < n; i++) {
			snprintf(names[i], sizeof(names[i]), "r%d-%zu-%d", r, s->nlog, i);
			uris[i] = names[i];
		}
		size_t pos = rnd(3) == 0 ? SEQ_END : rnd((uint32_t)vn + 1);
		k = seqcrdt_insert(c, v, pos, uris, (size_t)n, "u", 0, &ops);
		CHECK(k == n, "insert made %d ops, want %d", k, n);
		if (n >= 2 && s->nruns < MAXRUNS) {
			s->runs[s->nruns].n = n;
			for (int i = 0; i < n; i++)
				s->runs[s->nruns].items[i] = ops[i].item;
			s->nruns++;
		}
	} else if (what < 8) {
		size_t start = rnd((uint32_t)vn), l = 1 + rnd((uint32_t)(vn - start < 3 ? vn - start : 3));
		k = seqcrdt_move(c, v, start, l, rnd((uint32_t)vn + 1), &ops);
		CHECK(k >= 0, "move failed %d", k);
	} else {
		struct seq_id victim = vl[rnd((uint32_t)vn)].item;
		k = seqcrdt_remove(c, &victim, 1, &ops);
		CHECK(k >= 0, "remove failed %d", k);
	}
	(void)len;
	free(vl);
	if (k > 0)
		sim_publish(s, r, ops, k);
	seq_ops_free(ops, k > 0 ? (size_t)k : 0);
}

static void test_random_concurrent_edits_converge_on_every_replica(void)
{
	for (int trial = 0; trial < 20; trial++) {
		rng_state = 0x9e3779b9u ^ (uint32_t)trial * 7919u;
		struct sim *s = xcalloc(1, sizeof(*s));
		s->seen = xcalloc((size_t)(NREP + 1) * MAXCOUNTER, sizeof(*s->seen));
		for (int r = 0; r < NREP; r++)
			s->rep[r] = seqcrdt_new((uint32_t)r + 1);
		s->snap_rep = (int)rnd(NREP);
		for (int step = 0; step < 300; step++) {
			int r = (int)rnd(NREP);
			if (rnd(3) == 0)
				sim_deliver(s, r, rnd(12));
			else
				sim_local_edit(s, r);
			/* Replica snap_rep records its list now and then, to read back later. */
			if (rnd(10) == 0 && s->nsnaps < 64) {
				struct seqcrdt *c = s->rep[s->snap_rep];
				s->snaps[s->nsnaps].version = seqcrdt_version(c);
				s->snaps[s->nsnaps].order = order_str(c, UINT64_MAX);
				s->nsnaps++;
			}
		}
		for (int r = 0; r < NREP; r++)
			sim_deliver(s, r, SIZE_MAX);

		char *ref = order_str(s->rep[0], UINT64_MAX);
		for (int r = 0; r < NREP; r++) {
			CHECK_INT(seqcrdt_pending(s->rep[r]), 0);
			CHECK_INT(seqcrdt_version(s->rep[r]), s->nlog);
			char *o = order_str(s->rep[r], UINT64_MAX);
			CHECK(strcmp(o, ref) == 0, "trial %d: replica %d diverged:\n#   %s\n#   %s", trial, r, o, ref);
			free(o);
		}
		/* Old versions read back exactly as they were seen. */
		for (int i = 0; i < s->nsnaps; i++) {
			char *o = order_str(s->rep[s->snap_rep], s->snaps[i].version);
			CHECK(strcmp(o, s->snaps[i].order) == 0, "trial %d: version %llu reads back differently", trial,
			      (unsigned long long)s->snaps[i].version);
			free(o);
			free(s->snaps[i].order);
		}
		/* Nothing acknowledged is lost: an item is present iff no removal of it beats its
		 * latest placement, computed here from the log alone. */
		struct seqcrdt *c = s->rep[0];
		size_t n;
		struct seq_entry *l = seqcrdt_list(c, UINT64_MAX, &n);
		size_t expect_present = 0, checked = 0;
		for (size_t i = 0; i < s->nlog; i++) {
			struct seq_op *o = &s->log[i];
			if (o->kind != SEQ_INSERT || seq_id_cmp(o->id, o->item) != 0)
				continue;
			struct seq_id last_place = o->id, last_rm = {0, 0};
			for (size_t j = 0; j < s->nlog; j++) {
				struct seq_op *p = &s->log[j];
				if (seq_id_cmp(p->item, o->item) != 0)
					continue;
				if (p->kind == SEQ_INSERT && seq_id_cmp(p->id, last_place) > 0)
					last_place = p->id;
				if (p->kind == SEQ_REMOVE && seq_id_cmp(p->id, last_rm) > 0)
					last_rm = p->id;
			}
			bool want = seq_id_cmp(last_rm, last_place) < 0;
			struct seq_entry e;
			bool got = seqcrdt_find_item(c, o->item, &e);
			CHECK(want == got, "trial %d: item %s: expected present=%d", trial, o->uri, want);
			if (want && got)
				CHECK(seq_id_cmp(e.elem, last_place) == 0, "trial %d: item %s not at its latest placement", trial, o->uri);
			expect_present += want;
			checked++;
		}
		CHECK_INT(n, expect_present);
		/* Runs are not interleaved: between two unmoved items of one run, only items placed
		 * by someone who had already seen that run. */
		size_t *posof = xcalloc((size_t)(NREP + 1) * MAXCOUNTER, sizeof(size_t));
		for (size_t i = 0; i < n; i++)
			posof[seen_index(l[i].item)] = i + 1;
		int runs_checked = 0;
		for (int r = 0; r < s->nruns; r++) {
			size_t prev = 0;
			for (int i = 0; i < s->runs[r].n; i++) {
				struct seq_id it = s->runs[r].items[i];
				size_t p = posof[seen_index(it)];
				if (!p || seq_id_cmp(l[p - 1].elem, it) != 0)
					continue;  /* removed or moved */
				if (prev) {
					for (size_t q = prev; q < p - 1; q++) {
						uint8_t *bits = s->seen[seen_index(l[q].elem)];
						CHECK(bits[r / 8] & (1u << (r % 8)), "trial %d: run %d interleaved with %s placed by a replica that had not seen it",
						      trial, r, l[q].uri);
					}
					runs_checked++;
				}
				prev = p;
			}
		}
		CHECK(runs_checked > 0, "trial %d: no run survived to check", trial);
		CHECK(checked > 100, "trial %d: only %zu inserts", trial, checked);
		free(posof);
		free(l);
		free(ref);
		for (int r = 0; r < NREP; r++) {
			seqcrdt_free(s->rep[r]);
			free(s->inbox[r]);
		}
		seq_ops_free(s->log, s->nlog);
		free(s->seen);
		free(s);
	}
}

static void test_cursor_walk_under_edits_never_repeats_or_skips_survivors(void)
{
	for (int trial = 0; trial < 30; trial++) {
		rng_state = 777u + (uint32_t)trial;
		struct seqcrdt *c = seqcrdt_new(1);
		for (int i = 0; i < 30; i++) {
			char csv[256];
			snprintf(csv, sizeof(csv), "i%d-a,i%d-b,i%d-c,i%d-d,i%d-e,i%d-f,i%d-g,i%d-h,i%d-i,i%d-j", i, i, i, i, i, i, i, i, i, i);
			ins(c, SEQ_END, csv);
		}
		size_t n0;
		struct seq_entry *start = seqcrdt_list(c, UINT64_MAX, &n0);
		struct seq_id *initial = xmalloc(n0 * sizeof(*initial));
		for (size_t i = 0; i < n0; i++)
			initial[i] = start[i].item;
		free(start);
		struct seq_id removed[4096];
		size_t nremoved = 0;
		struct seq_id *got = xmalloc(4096 * sizeof(*got));
		size_t ngot = 0;
		struct seq_cursor cur = {.version = seqcrdt_version(c)};
		bool more = true;
		int pages = 0;
		while (more) {
			struct seq_entry page[7];
			struct seq_cursor next;
			char enc[SEQ_CURSOR_MAX];
			seq_cursor_encode(&cur, enc);
			CHECK_INT(seq_cursor_decode(enc, &cur), 0);
			int k = seqcrdt_page(c, &cur, 7, page, &next, &more);
			CHECK(k >= 0, "page failed %d", k);
			for (int i = 0; i < k && ngot < 4096; i++)
				got[ngot++] = page[i].item;
			cur = next;
			pages++;
			/* Others edit between pages: inserts anywhere, removes, moves. */
			for (int e = 0; e < 3; e++) {
				size_t len = seqcrdt_len(c);
				struct seq_op *ops = NULL;
				int kk = 0;
				uint32_t w = rnd(3);
				if (w == 0 || len < 2) {
					char u[32];
					snprintf(u, sizeof(u), "new-%d-%d", pages, e);
					const char *uu = u;
					kk = seqcrdt_insert(c, seqcrdt_version(c), rnd((uint32_t)len + 1), &uu, 1, NULL, 0, &ops);
				} else if (w == 1) {
					size_t ln;
					struct seq_entry *l = seqcrdt_list(c, UINT64_MAX, &ln);
					struct seq_id victim = l[rnd((uint32_t)ln)].item;
					free(l);
					kk = seqcrdt_remove(c, &victim, 1, &ops);
					if (kk > 0)
						removed[nremoved++] = victim;
				} else {
					kk = seqcrdt_move(c, seqcrdt_version(c), rnd((uint32_t)len), 1, rnd((uint32_t)len + 1), &ops);
				}
				seq_ops_free(ops, kk > 0 ? (size_t)kk : 0);
			}
			if (pages > 1000)
				break;
		}
		for (size_t i = 0; i < ngot; i++)
			for (size_t j = i + 1; j < ngot; j++)
				CHECK(seq_id_cmp(got[i], got[j]) != 0, "trial %d: item returned twice", trial);
		size_t survivors = 0;
		for (size_t i = 0; i < n0; i++) {
			bool gone = false, seen = false;
			for (size_t j = 0; j < nremoved; j++)
				gone = gone || seq_id_cmp(removed[j], initial[i]) == 0;
			if (gone)
				continue;
			survivors++;
			for (size_t j = 0; j < ngot; j++)
				seen = seen || seq_id_cmp(got[j], initial[i]) == 0;
			CHECK(seen, "trial %d: item %zu lived through the walk but was skipped", trial, i);
		}
		CHECK(survivors > 200, "trial %d: %zu survivors", trial, survivors);
		free(got);
		free(initial);
		seqcrdt_free(c);
	}
}

static void test_cursor_and_snapshot_text_round_trip_and_reject_garbage(void)
{
	struct seq_cursor a = {.version = 123456789012ull, .after = {987654321ull, 4000000000u}}, b;
	char s[SEQ_CURSOR_MAX];
	seq_cursor_encode(&a, s);
	CHECK_INT(seq_cursor_decode(s, &b), 0);
	CHECK(a.version == b.version && seq_id_cmp(a.after, b.after) == 0, "cursor changed in a round trip");
	CHECK_INT(seq_cursor_decode("", &b), -EINVAL);
	CHECK_INT(seq_cursor_decode("abc!", &b), -EINVAL);
	CHECK_INT(seq_cursor_decode(NULL, &b), -EINVAL);
	char snap[SEQ_CURSOR_MAX];
	seq_snapshot_encode(42, snap);
	uint64_t v;
	CHECK_INT(seq_snapshot_decode(snap, &v), 0);
	CHECK_INT(v, 42);
	CHECK_INT(seq_snapshot_decode(s, &v), -EINVAL);     /* a cursor is not a snapshot */
	CHECK_INT(seq_cursor_decode(snap, &b), -EINVAL);
	char id[32];
	seq_id_format((struct seq_id){17, 3}, id);
	CHECK_STR(id, "17.3");
	struct seq_id p;
	CHECK(seq_id_parse("17.3", &p) && p.counter == 17 && p.replica == 3, "parse 17.3");
	CHECK(!seq_id_parse("17", &p) && !seq_id_parse(".3", &p) && !seq_id_parse("1.99999999999", &p) && !seq_id_parse("1.2x", &p),
	      "malformed ids accepted");
	/* A cursor naming an unknown element or a future version is refused by the replica. */
	struct seqcrdt *c = seqcrdt_new(1);
	ins(c, SEQ_END, "a");
	struct seq_entry e[2];
	struct seq_cursor next;
	bool more;
	struct seq_cursor bad = {.version = 1, .after = {99, 9}};
	CHECK_INT(seqcrdt_page(c, &bad, 2, e, &next, &more), -EINVAL);
	bad = (struct seq_cursor){.version = 5};
	CHECK_INT(seqcrdt_page(c, &bad, 2, e, &next, &more), -EINVAL);
	seqcrdt_free(c);
}

int main(void)
{
	RUN(test_insert_at_positions_and_append);
	RUN(test_move_range_follows_web_api_reorder);
	RUN(test_remove_hides_items_and_keeps_versions_readable);
	RUN(test_edit_against_old_version_applies_to_what_the_user_saw);
	RUN(test_concurrent_runs_at_one_place_are_not_interleaved);
	RUN(test_apply_is_idempotent_and_refuses_malformed_ops);
	RUN(test_random_concurrent_edits_converge_on_every_replica);
	RUN(test_cursor_walk_under_edits_never_repeats_or_skips_survivors);
	RUN(test_cursor_and_snapshot_text_round_trip_and_reject_garbage);
	return TAP_DONE();
}
