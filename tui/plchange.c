/* plchange: everything is checked before a row moves, so a push that cannot be applied
 * exactly leaves the rows as they were and the caller refetches. */
#include "plchange.h"
#include "json.h"
#include "seqcrdt.h"
#include "xmem.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One row of the result: an old row (index into rows) or a new one (its track object). */
struct slot {
	int from;          /* >= 0: rows->v[from]; -1: new */
	yajl_val track;    /* new rows: the "track" (may be NULL or null) */
};

static bool int_in(yajl_val v, long long lo, long long hi, long long *out)
{
	if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < lo || YAJL_GET_INTEGER(v) > hi)
		return false;
	*out = YAJL_GET_INTEGER(v);
	return true;
}

static bool snapshot_of(yajl_val root, const char *key, uint64_t *v)
{
	const char *s = json_get_str(root, key);
	return s && seq_snapshot_decode(s, v) == 0;
}

enum plchange_rc plchange_apply(const char *push, const char *id, struct playlist_info *pl, struct items *rows,
				int window, int *sel, struct plchange_summary *sum)
{
	enum plchange_rc rc = PLCHANGE_REFETCH;
	char err[64];
	yajl_val root = push ? json_parse(push, err, sizeof(err)) : NULL;
	struct slot *out = NULL;
	bool *leaves = NULL;
	uint64_t have, now, base;
	const char *type = json_get_str(root, "type"), *pid = json_get_str(root, "playlist");
	if (!type || strcmp(type, "playlist_changed") != 0 || !pid || (id && strcmp(pid, id) != 0))
		goto out;
	if (!snapshot_of(root, "snapshot_id", &now) || seq_snapshot_decode(pl->snapshot_id, &have) != 0)
		goto out;
	if (now <= have) {
		rc = PLCHANGE_OLD;
		goto out;
	}
	if (!snapshot_of(root, "base_snapshot_id", &base) || base != have)
		goto out;  /* a message in between was missed */

	yajl_val ch = json_get(root, "change");
	yajl_val rm = json_get(ch, "remove"), add = json_get(ch, "items");
	long long total = pl->total, at = 0, newtotal;
	if (!YAJL_IS_OBJECT(ch) || !YAJL_IS_ARRAY(rm) || !YAJL_IS_ARRAY(add) || total < 0)
		goto out;
	int held = rows->n;
	if (held > total || (held < total && held < window))
		goto out;  /* the rows are not the list's first rows as described */
	size_t nrm = rm->u.array.len, nadd = add->u.array.len;
	if ((long long)nrm > total)
		goto out;
	leaves = xcalloc((size_t)held + 1, sizeof(*leaves));
	long long prev = -1;
	for (size_t i = 0; i < nrm; i++) {
		long long p;
		if (!int_in(rm->u.array.values[i], prev + 1, total - 1, &p))
			goto out;  /* positions ascend and lie in the list */
		if (p < held)
			leaves[p] = true;
		prev = p;
	}
	long long kept_total = total - (long long)nrm;
	if (nadd && !int_in(json_get(ch, "insert_at"), 0, kept_total, &at))
		goto out;
	if (!json_get_int(ch, "total", &newtotal) || newtotal != kept_total + (long long)nadd)
		goto out;

	/* The rows that stay, in order, then the run spliced in where it lands. */
	out = xcalloc((size_t)held + nadd + 1, sizeof(*out));
	int n = 0;
	for (int i = 0; i < held; i++)
		if (!leaves[i])
			out[n++] = (struct slot){.from = i};
	if (nadd && at <= n) {
		memmove(out + at + nadd, out + at, (size_t)(n - at) * sizeof(*out));
		for (size_t i = 0; i < nadd; i++) {
			yajl_val it = add->u.array.values[i];
			yajl_val from = json_get(it, "from");
			struct slot s = {.from = -1, .track = json_get(it, "track")};
			if (from) {
				long long f;
				/* A moved row must be one that left, and one the view holds. */
				if (!int_in(from, 0, held - 1, &f) || !leaves[f])
					goto out;
				s.from = (int)f;
			}
			out[at + (long long)i] = s;
		}
		n += (int)nadd;
	} else if (nadd && held == total) {
		goto out;  /* cannot land beyond a complete list */
	}
	int want = newtotal < window ? (int)newtotal : window;
	if (n < want)
		goto out;  /* rows from beyond the window would slide in: unknown here */
	if (n > want)
		n = want;
	/* A row is used at most once; a duplicated "from" would alias one row. */
	bool *used = xcalloc((size_t)held + 1, sizeof(*used));
	for (int i = 0; i < n; i++)
		if (out[i].from >= 0) {
			if (used[out[i].from]) {
				free(used);
				goto out;
			}
			used[out[i].from] = true;
		}

	/* Commit: build the new rows, moving the kept ones and freeing those that left. */
	struct items next = ITEMS_INIT;
	int newsel = -1, oldsel = sel ? *sel : -1;
	for (int i = 0; i < n; i++) {
		if (out[i].from >= 0) {
			items_add(&next, ITEM_TEXT, NULL, NULL, NULL, 0);
			free(next.v[next.n - 1].title);
			free(next.v[next.n - 1].sub);
			next.v[next.n - 1] = rows->v[out[i].from];
			if (out[i].from == oldsel)
				newsel = i;
		} else {
			items_add_playlist_row(&next, out[i].track);
		}
	}
	for (int i = 0; i < held; i++)
		if (!used[i]) {
			free(rows->v[i].title);
			free(rows->v[i].sub);
		}
	free(used);
	free(rows->v);
	*rows = next;
	if (sel) {
		if (newsel < 0)
			newsel = oldsel < n ? oldsel : n - 1;
		*sel = newsel < 0 ? 0 : newsel;
	}
	pl->total = newtotal;
	snprintf(pl->snapshot_id, sizeof(pl->snapshot_id), "%s", json_get_str(root, "snapshot_id"));
	if (sum) {
		memset(sum, 0, sizeof(*sum));
		const char *by = json_get_str(root, "by");
		snprintf(sum->by, sizeof(sum->by), "%s", by ? by : "");
		int nmoved = 0;
		for (size_t i = 0; i < nadd; i++)
			nmoved += json_get(add->u.array.values[i], "from") != NULL;
		sum->moved = nmoved;
		sum->added = (int)nadd - nmoved;
		sum->removed = (int)nrm - nmoved;
	}
	rc = PLCHANGE_APPLIED;
out:
	free(out);
	free(leaves);
	yajl_tree_free(root);
	return rc;
}
