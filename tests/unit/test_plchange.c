/* Tests for plchange: pushed playlist changes applied to the rows on screen. */
#include "plchange.h"
#include "seqcrdt.h"
#include "tap.h"
#include <stdio.h>
#include <string.h>

#define PID "0123456789abcdefABCDEF"

/* Rows named by the letters of names, at snapshot version v of a list of total items. */
static void setup(struct items *rows, struct playlist_info *pl, const char *names, uint64_t v, long long total)
{
	items_clear(rows);
	for (const char *c = names; *c; c++) {
		char uri[64], title[2] = {*c, 0};
		snprintf(uri, sizeof(uri), "encore:track:%c", *c);
		items_add(rows, ITEM_TRACK, uri, title, "old", 1000);
	}
	memset(pl, 0, sizeof(*pl));
	seq_snapshot_encode(v, pl->snapshot_id);
	pl->total = total;
}

static const char *titles(const struct items *rows)
{
	static char out[128];
	int k = 0;
	for (int i = 0; i < rows->n && k < 120; i++)
		k += snprintf(out + k, sizeof(out) - (size_t)k, "%s", rows->v[i].title);
	out[k] = 0;
	return out;
}

/* A playlist_changed message from base to now carrying change (the JSON object's body). */
static const char *push(uint64_t base, uint64_t now, const char *change)
{
	static char out[2048];
	char b[SEQ_CURSOR_MAX], n[SEQ_CURSOR_MAX];
	seq_snapshot_encode(base, b);
	seq_snapshot_encode(now, n);
	snprintf(out, sizeof(out),
		 "{\"type\":\"playlist_changed\",\"playlist\":\"" PID "\",\"snapshot_id\":\"%s\",\"base_snapshot_id\":\"%s\","
		 "\"version\":%llu,\"by\":\"bob\",\"ops\":[]%s%s%s}",
		 n, b, (unsigned long long)now, change ? ",\"change\":{" : "", change ? change : "", change ? "}" : "");
	return out;
}

#define TRACK_E "{\"item_id\":\"9.1\",\"added_by\":\"bob\",\"added_at\":1,\"track\":{\"name\":\"E\",\"uri\":\"encore:track:E\"," \
		"\"duration_ms\":2000,\"artists\":[{\"name\":\"Xa\"}],\"album\":{\"name\":\"Yb\"}}}"

static void test_insert_at_a_position_adds_the_pushed_rows_and_the_cursor_follows_its_row(void)
{
	struct items rows = ITEMS_INIT;
	struct playlist_info pl;
	setup(&rows, &pl, "ABC", 3, 3);
	int sel = 1;  /* on B */
	struct plchange_summary sum;
	CHECK_INT(plchange_apply(push(3, 4, "\"remove\":[],\"insert_at\":1,\"items\":[" TRACK_E "],\"total\":4"), PID, &pl, &rows, 100,
			       &sel, &sum), PLCHANGE_APPLIED);
	CHECK_STR(titles(&rows), "AEBC");
	CHECK_STR(rows.v[1].sub, "Xa · Yb");
	CHECK_STR(rows.v[1].uri, "encore:track:E");
	CHECK_INT(rows.v[1].duration_ms, 2000);
	CHECK_INT(pl.total, 4);
	uint64_t v = 0;
	CHECK_INT(seq_snapshot_decode(pl.snapshot_id, &v), 0);
	CHECK_INT(v, 4);
	CHECK_INT(sel, 2);
	CHECK_STR(sum.by, "bob");
	CHECK_INT(sum.added, 1);
	CHECK_INT(sum.moved + sum.removed, 0);
	items_free(&rows);
}

static void test_move_takes_the_range_out_and_splices_it_in_where_it_lands(void)
{
	struct items rows = ITEMS_INIT;
	struct playlist_info pl;
	setup(&rows, &pl, "ABCD", 7, 4);
	int sel = 0;  /* on A, which moves */
	struct plchange_summary sum;
	/* Range [0, 2) before position 4: C D A B. */
	CHECK_INT(plchange_apply(push(7, 9, "\"remove\":[0,1],\"insert_at\":2,\"items\":[{\"item_id\":\"1.1\",\"from\":0},"
					     "{\"item_id\":\"2.1\",\"from\":1}],\"total\":4"), PID, &pl, &rows, 100, &sel, &sum),
		  PLCHANGE_APPLIED);
	CHECK_STR(titles(&rows), "CDAB");
	CHECK_STR(rows.v[2].sub, "old");  /* the row itself moved, not a copy from the push */
	CHECK_INT(sel, 2);
	CHECK_INT(sum.moved, 2);
	CHECK_INT(sum.added + sum.removed, 0);
	CHECK_INT(pl.total, 4);
	items_free(&rows);
}

static void test_remove_drops_rows_and_a_cursor_on_a_removed_row_keeps_its_index(void)
{
	struct items rows = ITEMS_INIT;
	struct playlist_info pl;
	setup(&rows, &pl, "ABCD", 5, 4);
	int sel = 3;  /* on D, removed */
	struct plchange_summary sum;
	CHECK_INT(plchange_apply(push(5, 7, "\"remove\":[1,3],\"insert_at\":0,\"items\":[],\"total\":2"), PID, &pl, &rows, 100, &sel,
			       &sum), PLCHANGE_APPLIED);
	CHECK_STR(titles(&rows), "AC");
	CHECK_INT(sel, 1);
	CHECK_INT(sum.removed, 2);
	CHECK_INT(pl.total, 2);
	items_free(&rows);
}

static void test_a_missed_message_or_an_old_one_changes_nothing(void)
{
	struct items rows = ITEMS_INIT;
	struct playlist_info pl;
	setup(&rows, &pl, "ABC", 3, 3);
	int sel = 1;
	const char *ins = "\"remove\":[],\"insert_at\":0,\"items\":[" TRACK_E "],\"total\":4";
	/* Based on version 4 while the rows are at 3: the push for 4 was missed. */
	CHECK_INT(plchange_apply(push(4, 5, ins), PID, &pl, &rows, 100, &sel, NULL), PLCHANGE_REFETCH);
	/* Already shown (a refetch got ahead of the push). */
	CHECK_INT(plchange_apply(push(2, 3, ins), PID, &pl, &rows, 100, &sel, NULL), PLCHANGE_OLD);
	CHECK_INT(plchange_apply(push(1, 2, ins), PID, &pl, &rows, 100, &sel, NULL), PLCHANGE_OLD);
	CHECK_STR(titles(&rows), "ABC");
	CHECK_INT(sel, 1);
	CHECK_INT(pl.total, 3);
	uint64_t v = 0;
	CHECK_INT(seq_snapshot_decode(pl.snapshot_id, &v), 0);
	CHECK_INT(v, 3);
	/* Two in a row apply when each follows the last. */
	CHECK_INT(plchange_apply(push(3, 4, ins), PID, &pl, &rows, 100, &sel, NULL), PLCHANGE_APPLIED);
	CHECK_INT(plchange_apply(push(4, 5, "\"remove\":[0],\"insert_at\":0,\"items\":[],\"total\":3"), PID, &pl, &rows, 100, &sel,
			       NULL), PLCHANGE_APPLIED);
	CHECK_STR(titles(&rows), "ABC");
	items_free(&rows);
}

static void test_a_window_of_the_first_rows_refetches_only_when_unseen_rows_come_in(void)
{
	struct items rows = ITEMS_INIT;
	struct playlist_info pl;
	const char *ins5 = "\"remove\":[],\"insert_at\":5,\"items\":[" TRACK_E "],\"total\":11";
	const char *ins0 = "\"remove\":[],\"insert_at\":0,\"items\":[" TRACK_E "],\"total\":12";
	/* The first 3 rows of 10. An insert past them only counts. */
	setup(&rows, &pl, "ABC", 1, 10);
	CHECK_INT(plchange_apply(push(1, 2, ins5), PID, &pl, &rows, 3, NULL, NULL), PLCHANGE_APPLIED);
	CHECK_STR(titles(&rows), "ABC");
	CHECK_INT(pl.total, 11);
	/* An insert at the front pushes C out of the window. */
	CHECK_INT(plchange_apply(push(2, 3, ins0), PID, &pl, &rows, 3, NULL, NULL), PLCHANGE_APPLIED);
	CHECK_STR(titles(&rows), "EAB");
	CHECK_INT(pl.total, 12);
	/* A removal in the window would pull the unseen 4th row in. */
	CHECK_INT(plchange_apply(push(3, 4, "\"remove\":[1],\"insert_at\":0,\"items\":[],\"total\":11"), PID, &pl, &rows, 3, NULL, NULL),
		  PLCHANGE_REFETCH);
	/* So would a move of an unseen row into it. */
	CHECK_INT(plchange_apply(push(3, 4, "\"remove\":[7],\"insert_at\":0,\"items\":[{\"item_id\":\"8.1\",\"from\":7}],\"total\":12"), PID,
			       &pl, &rows, 3, NULL, NULL), PLCHANGE_REFETCH);
	/* A removal beyond the window only counts. */
	CHECK_INT(plchange_apply(push(3, 4, "\"remove\":[8],\"insert_at\":0,\"items\":[],\"total\":11"), PID, &pl, &rows, 3, NULL, NULL),
		  PLCHANGE_APPLIED);
	CHECK_STR(titles(&rows), "EAB");
	CHECK_INT(pl.total, 11);
	items_free(&rows);
}

static void test_malformed_or_inconsistent_changes_ask_for_a_refetch(void)
{
	struct items rows = ITEMS_INIT;
	struct playlist_info pl;
	setup(&rows, &pl, "ABCD", 3, 4);
	const char *bad[] = {
		NULL,                                                                      /* no "change" */
		"\"remove\":[2,1],\"insert_at\":0,\"items\":[],\"total\":2",               /* positions not ascending */
		"\"remove\":[4],\"insert_at\":0,\"items\":[],\"total\":3",                 /* beyond the list */
		"\"remove\":[1],\"insert_at\":0,\"items\":[],\"total\":4",                 /* total does not add up */
		"\"remove\":[1],\"insert_at\":0,\"items\":[{\"item_id\":\"1.1\",\"from\":2}],\"total\":4",  /* moves a row that stays */
		"\"remove\":[1],\"insert_at\":0,\"items\":[{\"item_id\":\"1.1\",\"from\":1},{\"item_id\":\"1.1\",\"from\":1}],\"total\":5",
		"\"remove\":[],\"insert_at\":9,\"items\":[" TRACK_E "],\"total\":5",      /* lands beyond the end */
		"\"remove\":\"all\",\"items\":[],\"total\":0",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int sel = 2;
		enum plchange_rc rc = plchange_apply(push(3, 4, bad[i]), PID, &pl, &rows, 100, &sel, NULL);
		CHECK(rc == PLCHANGE_REFETCH, "case %zu: expected PLCHANGE_REFETCH, got %d", i, (int)rc);
		CHECK_INT(sel, 2);
	}
	CHECK_INT(plchange_apply(push(3, 4, "\"remove\":[],\"insert_at\":0,\"items\":[],\"total\":4"), "zzzzzzzzzzzzzzzzzzzzzz", &pl,
			       &rows, 100, NULL, NULL), PLCHANGE_REFETCH);  /* another playlist's push */
	CHECK_INT(plchange_apply("{not json", PID, &pl, &rows, 100, NULL, NULL), PLCHANGE_REFETCH);
	CHECK_STR(titles(&rows), "ABCD");
	CHECK_INT(pl.total, 4);
	/* An item whose track left the catalog becomes the unselectable placeholder row. */
	CHECK_INT(plchange_apply(push(3, 4, "\"remove\":[],\"insert_at\":4,\"items\":[{\"item_id\":\"5.1\",\"track\":null}],\"total\":5"),
			       PID, &pl, &rows, 100, NULL, NULL), PLCHANGE_APPLIED);
	CHECK_STR(rows.v[4].title, "(unavailable)");
	CHECK(!items_selectable(&rows.v[4]), "the placeholder is selectable");
	items_free(&rows);
}

int main(void)
{
	RUN(test_insert_at_a_position_adds_the_pushed_rows_and_the_cursor_follows_its_row);
	RUN(test_move_takes_the_range_out_and_splices_it_in_where_it_lands);
	RUN(test_remove_drops_rows_and_a_cursor_on_a_removed_row_keeps_its_index);
	RUN(test_a_missed_message_or_an_old_one_changes_nothing);
	RUN(test_a_window_of_the_first_rows_refetches_only_when_unseen_rows_come_in);
	RUN(test_malformed_or_inconsistent_changes_ask_for_a_refetch);
	return TAP_DONE();
}
