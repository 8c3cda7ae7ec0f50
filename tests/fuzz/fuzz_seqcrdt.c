/* Fuzz target: playlist order. The first line is decoded as a paging cursor, a snapshot id
 * and an op id (all arrive in requests); the remaining bytes are a program of edits and
 * remote operations run against two replicas, which must then agree (the CRDT's promise)
 * and page through their list without repeats. */
#include "fuzz.h"
#include "seqcrdt.h"

static const char *const uris[] = {"spotify:track:a", "spotify:track:b", "spotify:episode:c"};

static void replay(struct seqcrdt *to, const struct seq_op *ops, int n)
{
	for (int i = 0; i < n; i++)
		if (seqcrdt_apply(to, &ops[i]) < 0)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t first = nl ? (size_t)(nl - data) : size;
	char *line = fz_cstr(data, first);
	struct seq_cursor cur;
	uint64_t v;
	struct seq_id id;
	if (seq_cursor_decode(line, &cur) == 0) {
		char again[SEQ_CURSOR_MAX];
		seq_cursor_encode(&cur, again);
	}
	(void)seq_snapshot_decode(line, &v);
	(void)seq_id_parse(line, &id);
	free(line);
	if (!nl)
		return 0;
	const uint8_t *p = nl + 1, *end = data + size;

	struct seqcrdt *a = seqcrdt_new(1), *b = seqcrdt_new(2);
	int steps = 0;
	while (p + 3 <= end && steps++ < 200) {
		uint8_t op = p[0], x = p[1], y = p[2];
		p += 3;
		struct seqcrdt *self = op & 0x80 ? b : a, *other = self == a ? b : a;
		uint64_t ver = seqcrdt_version(self);
		uint64_t at = (op & 0x40) && ver ? (uint64_t)x % ver : ver;  /* edit against an old snapshot */
		size_t len = 0;
		free(seqcrdt_list(self, at, &len));
		struct seq_op *ops = NULL;
		int n = -1;
		switch (op & 3) {
		case 0:
			n = seqcrdt_insert(self, at, len ? (size_t)y % (len + 1) : 0, uris, 1 + (size_t)(x % 3), "u", 1, &ops);
			break;
		case 1:
			if (len)
				n = seqcrdt_move(self, at, (size_t)x % len, 1 + (size_t)(y % 2), (size_t)y % (len + 1), &ops);
			break;
		case 2: {
			size_t cnt = 0;
			struct seq_entry *e = seqcrdt_list(self, SEQ_END, &cnt);
			if (cnt) {
				struct seq_id item = e[(size_t)x % cnt].item;
				n = seqcrdt_remove(self, &item, 1, &ops);
			}
			free(e);
			break;
		}
		case 3: {
			/* Page with the list's own cursors; no element may come twice. */
			struct seq_cursor c = {seqcrdt_version(self), {0, 0}}, next;
			struct seq_entry page[4];
			bool more = true;
			size_t seen = 0, total = seqcrdt_len(self);
			while (more) {
				int got = seqcrdt_page(self, &c, 1 + (size_t)(x % 4), page, &next, &more);
				if (got < 0)
					abort();
				seen += (size_t)got;
				if (seen > total)
					abort();
				c = next;
			}
			break;
		}
		}
		if (n > 0) {
			/* Deliver to the other replica, sometimes twice: duplicates must be ignored. */
			replay(other, ops, n);
			if (y & 1)
				replay(other, ops, n);
		}
		if (n > 0)
			seq_ops_free(ops, (size_t)n);
	}
	size_t na = 0, nb = 0;
	struct seq_entry *la = seqcrdt_list(a, SEQ_END, &na), *lb = seqcrdt_list(b, SEQ_END, &nb);
	if (na != nb)
		abort();
	for (size_t i = 0; i < na; i++)
		if (seq_id_cmp(la[i].item, lb[i].item) != 0 || strcmp(la[i].uri, lb[i].uri) != 0)
			abort();
	free(la);
	free(lb);
	seqcrdt_free(a);
	seqcrdt_free(b);
	return 0;
}
