/* Unit tests for the play queue. */
#include "../tap.h"
#include "id.h"
#include "queue.h"
#include "xmem.h"
#include <errno.h>
#include <stdlib.h>

#define NT 8
static char uris[NT][64];

static void make_uris(void)
{
	for (int i = 0; i < NT; i++) {
		char seed[16], id[ID_LEN + 1];
		snprintf(seed, sizeof(seed), "t%d", i);
		id_from_seed(seed, id);
		snprintf(uris[i], sizeof(uris[i]), "encore:track:%s", id);
	}
}

/* Track number of an entry's URI, or -1. */
static int tno(const struct queue_entry *e)
{
	if (!e)
		return -1;
	for (int i = 0; i < NT; i++)
		if (strcmp(e->uri, uris[i]) == 0)
			return i;
	return -2;
}

/* Queue with tracks 0..n-1 in order. */
static struct queue *filled(int n, uint64_t seed)
{
	struct queue *q = queue_new(seed);
	for (int i = 0; i < n; i++)
		CHECK_INT(queue_add(q, uris[i], NULL), 0);
	return q;
}

/* Play order as a string of track digits, e.g. "0123". */
static const char *order(const struct queue *q)
{
	static char s[64];
	size_t i;
	for (i = 0; i < queue_len(q) && i < sizeof(s) - 1; i++)
		s[i] = (char)('0' + tno(queue_at(q, i)));
	s[i] = 0;
	return s;
}

static void test_add_rejects_malformed_uris(void)
{
	struct queue *q = queue_new(1);
	CHECK_INT(queue_add(q, "encore:album:0123456789012345678901", NULL), -EINVAL);
	CHECK_INT(queue_add(q, "encore:track:short", NULL), -EINVAL);
	CHECK_INT(queue_add(q, NULL, NULL), -EINVAL);
	CHECK_INT(queue_play_now(q, "spotify:track:x", NULL), -EINVAL);
	CHECK_INT(queue_play_next(q, "", NULL), -EINVAL);
	CHECK_INT(queue_len(q), 0);
	queue_free(q);
}

static void test_next_plays_in_order_then_exhausts(void)
{
	struct queue *q = filled(3, 1);
	CHECK(!queue_is_exhausted(q), "fresh queue with items is not exhausted");
	CHECK(queue_current(q) == NULL, "nothing current before the first next");
	CHECK_INT(tno(queue_next(q)), 0);
	CHECK_INT(tno(queue_next(q)), 1);
	CHECK_INT(tno(queue_next(q)), 2);
	CHECK(!queue_is_exhausted(q), "last track playing is not exhausted");
	CHECK(queue_next(q) == NULL, "expected NULL at the end without repeat");
	CHECK(queue_is_exhausted(q), "expected exhausted after the end");
	CHECK(queue_current(q) == NULL, "nothing current once exhausted");
	/* The autoplay hook appends; the next call plays it. */
	CHECK_INT(queue_add(q, uris[5], NULL), 0);
	CHECK(!queue_is_exhausted(q), "appending revives the queue");
	CHECK_INT(tno(queue_next(q)), 5);
	queue_free(q);

	struct queue *empty = queue_new(1);
	CHECK(queue_is_exhausted(empty), "an empty queue is exhausted");
	CHECK(queue_next(empty) == NULL, "next on an empty queue is NULL");
	queue_set_repeat(empty, QUEUE_REPEAT_ALL);
	CHECK(queue_next(empty) == NULL, "repeat all on an empty queue is still NULL");
	queue_free(empty);
}

static void test_repeat_all_wraps_without_shuffle(void)
{
	struct queue *q = filled(3, 1);
	queue_set_repeat(q, QUEUE_REPEAT_ALL);
	char got[16] = { 0 };
	for (int i = 0; i < 7; i++)
		got[i] = (char)('0' + tno(queue_next(q)));
	CHECK_STR(got, "0120120");
	CHECK(!queue_is_exhausted(q), "repeat all never exhausts");
	queue_free(q);
}

static void test_repeat_one_repeats_on_end_but_skip_advances(void)
{
	struct queue *q = filled(3, 1);
	queue_set_repeat(q, QUEUE_REPEAT_ONE);
	CHECK_INT(tno(queue_next(q)), 0);
	CHECK_INT(tno(queue_next(q)), 0);
	CHECK_INT(tno(queue_next(q)), 0);
	CHECK_INT(tno(queue_skip(q)), 1);
	CHECK_INT(tno(queue_next(q)), 1);
	CHECK_INT(queue_repeat(q), QUEUE_REPEAT_ONE);
	queue_free(q);
}

static void test_play_now_and_play_next_insert_after_current(void)
{
	struct queue *q = filled(3, 1);
	queue_next(q); /* 0 */
	uint64_t id = 0;
	CHECK_INT(queue_play_next(q, uris[5], &id), 0);
	CHECK(id > 0, "expected an id, got %llu", (unsigned long long)id);
	CHECK_STR(order(q), "0512");
	CHECK_INT(tno(queue_current(q)), 0);
	CHECK_INT(queue_play_now(q, uris[6], NULL), 0);
	CHECK_STR(order(q), "06512");
	CHECK_INT(tno(queue_current(q)), 6);
	CHECK_INT(tno(queue_next(q)), 5);
	CHECK_INT(tno(queue_previous(q)), 6);
	CHECK_INT(tno(queue_previous(q)), 0);
	CHECK(queue_previous(q) == NULL, "history exhausted");
	/* play_next before anything plays goes to the front. */
	struct queue *q2 = filled(2, 1);
	queue_play_next(q2, uris[7], NULL);
	CHECK_STR(order(q2), "701");
	CHECK_INT(tno(queue_next(q2)), 7);
	queue_free(q2);
	queue_free(q);
}

static void test_play_at_jumps_and_records_history(void)
{
	struct queue *q = filled(5, 1);
	queue_next(q);
	CHECK_INT(queue_play_at(q, 3), 0);
	CHECK_INT(tno(queue_current(q)), 3);
	CHECK_INT(tno(queue_next(q)), 4);
	CHECK_INT(tno(queue_previous(q)), 3);
	CHECK_INT(tno(queue_previous(q)), 0);
	CHECK_INT(queue_play_at(q, 5), -EINVAL);
	queue_free(q);
}

static void test_remove_by_index_and_by_entry_with_duplicates(void)
{
	struct queue *q = queue_new(1);
	uint64_t a, b, c;
	queue_add(q, uris[1], &a);
	queue_add(q, uris[2], &b);
	queue_add(q, uris[1], &c); /* duplicate URI, distinct entry */
	CHECK(a != c, "duplicates get distinct ids");
	CHECK_INT(queue_remove_id(q, c), 0);
	CHECK_STR(order(q), "12");
	CHECK_INT(queue_index_of(q, a), 0);
	CHECK_INT(queue_remove_id(q, c), -ENOENT);
	CHECK_INT(queue_remove_at(q, 2), -EINVAL);
	CHECK_INT(queue_remove_at(q, 0), 0);
	CHECK_STR(order(q), "2");
	CHECK_INT(queue_index_of(q, b), 0);
	queue_free(q);
}

static void test_removing_current_continues_with_its_follower(void)
{
	struct queue *q = filled(4, 1);
	queue_next(q);
	queue_next(q); /* 1 */
	CHECK_INT(queue_remove_at(q, 1), 0);
	CHECK(queue_current(q) == NULL, "removed current leaves nothing current");
	CHECK(!queue_is_exhausted(q), "followers remain");
	CHECK_INT(tno(queue_next(q)), 2);
	CHECK_INT(queue_remove_at(q, 0), 0); /* before current */
	CHECK_INT(tno(queue_current(q)), 2);
	CHECK_INT(queue_position(q), 0);
	CHECK_INT(tno(queue_next(q)), 3);
	/* Previous skips entries removed since they were played. */
	CHECK_INT(tno(queue_previous(q)), 2);
	CHECK(queue_previous(q) == NULL, "0 and 1 were removed");
	queue_free(q);
}

static void test_move_edge_cases(void)
{
	struct queue *q = filled(5, 1);
	CHECK_INT(queue_move(q, 0, 4), 0);
	CHECK_STR(order(q), "12340");
	CHECK_INT(queue_move(q, 4, 0), 0);
	CHECK_STR(order(q), "01234");
	CHECK_INT(queue_move(q, 2, 2), 0);
	CHECK_STR(order(q), "01234");
	CHECK_INT(queue_move(q, 1, 2), 0);
	CHECK_STR(order(q), "02134");
	CHECK_INT(queue_move(q, 5, 0), -EINVAL);
	CHECK_INT(queue_move(q, 0, 5), -EINVAL);
	CHECK_INT(queue_move(q, (size_t)-1, 0), -EINVAL);
	CHECK_STR(order(q), "02134");
	/* The current entry stays current when it or others move around it. */
	queue_next(q);
	queue_next(q); /* 2 at index 1 */
	CHECK_INT(queue_move(q, 1, 4), 0);
	CHECK_STR(order(q), "01342");
	CHECK_INT(tno(queue_current(q)), 2);
	CHECK_INT(queue_position(q), 4);
	CHECK(queue_next(q) == NULL, "moved current to the end: nothing follows");
	queue_free(q);

	q = filled(4, 1);
	queue_next(q);
	queue_next(q); /* 1 */
	CHECK_INT(queue_move(q, 3, 0), 0); /* from after to before current */
	CHECK_STR(order(q), "3012");
	CHECK_INT(queue_position(q), 2);
	CHECK_INT(tno(queue_next(q)), 2);
	queue_free(q);
}

static void test_clear_empties_queue_and_history(void)
{
	struct queue *q = filled(3, 1);
	queue_next(q);
	queue_next(q);
	queue_set_repeat(q, QUEUE_REPEAT_ALL);
	queue_clear(q);
	CHECK_INT(queue_len(q), 0);
	CHECK(queue_current(q) == NULL, "no current after clear");
	CHECK_INT(queue_history_len(q), 0);
	CHECK(queue_previous(q) == NULL, "no history after clear");
	CHECK_INT(queue_repeat(q), QUEUE_REPEAT_ALL);
	queue_add(q, uris[4], NULL);
	CHECK_INT(tno(queue_next(q)), 4);
	queue_free(q);
}

static void test_shuffle_plays_every_track_once_per_pass(void)
{
	for (uint64_t seed = 1; seed <= 20; seed++) {
		struct queue *q = filled(NT, seed);
		queue_set_repeat(q, QUEUE_REPEAT_ALL);
		queue_set_shuffle(q, true);
		int orders_differ = 0;
		char first[NT + 1] = { 0 };
		for (int pass = 0; pass < 5; pass++) {
			int seen[NT] = { 0 };
			char got[NT + 1] = { 0 };
			for (int i = 0; i < NT; i++) {
				int t = tno(queue_next(q));
				CHECK(t >= 0, "seed %llu pass %d: got no track", (unsigned long long)seed, pass);
				if (t >= 0)
					seen[t]++;
				got[i] = (char)('0' + t);
			}
			for (int t = 0; t < NT; t++)
				CHECK(seen[t] == 1, "seed %llu pass %d: track %d played %d times (%s)", (unsigned long long)seed, pass, t, seen[t], got);
			if (pass == 0)
				memcpy(first, got, sizeof(first));
			else if (strcmp(first, got) != 0)
				orders_differ = 1;
		}
		CHECK(orders_differ, "seed %llu: every pass had the same order %s", (unsigned long long)seed, first);
		queue_free(q);
	}
}

static void test_shuffle_is_reproducible_from_seed_and_actually_shuffles(void)
{
	struct queue *a = filled(NT, 42), *b = filled(NT, 42), *c = filled(NT, 43);
	queue_set_shuffle(a, true);
	queue_set_shuffle(b, true);
	queue_set_shuffle(c, true);
	char sa[NT + 1];
	strcpy(sa, order(a));
	CHECK_STR(order(b), sa);
	CHECK(strcmp(sa, "01234567") != 0, "shuffle left the order unchanged: %s", sa);
	CHECK(strcmp(sa, order(c)) != 0, "different seeds gave the same order %s", sa);
	queue_free(a);
	queue_free(b);
	queue_free(c);
}

static void test_shuffle_mid_queue_keeps_played_and_off_restores_order(void)
{
	struct queue *q = filled(NT, 7);
	queue_next(q);
	queue_next(q);
	queue_next(q); /* 2 current */
	queue_set_shuffle(q, true);
	CHECK(strncmp(order(q), "012", 3) == 0, "played prefix kept, got %s", order(q));
	CHECK_INT(tno(queue_current(q)), 2);
	/* Finish the pass: exactly the remaining tracks, once each. */
	int seen[NT] = { 0 };
	const struct queue_entry *e;
	int t1 = tno(queue_next(q)), t2 = tno(queue_next(q));
	seen[t1]++;
	seen[t2]++;
	queue_set_shuffle(q, false);
	CHECK_STR(order(q), "01234567");
	CHECK_INT(tno(queue_current(q)), t2);
	CHECK_INT(queue_position(q), t2);
	/* After turning shuffle off, playback continues in original order after the current track. */
	e = queue_next(q);
	CHECK_INT(tno(e), t2 + 1 < NT ? t2 + 1 : -1);
	CHECK(!queue_shuffle(q), "shuffle reported off");
	queue_free(q);
}

static void test_edits_while_shuffled_survive_turning_shuffle_off(void)
{
	struct queue *q = filled(4, 3);
	queue_next(q); /* 0 */
	queue_set_shuffle(q, true);
	uint64_t id;
	queue_add(q, uris[6], &id);
	queue_play_next(q, uris[7], NULL);
	CHECK_INT(tno(queue_at(q, 1)), 7);
	queue_remove_at(q, (size_t)queue_index_of(q, queue_at(q, 2)->id));
	size_t n = queue_len(q);
	queue_set_shuffle(q, false);
	CHECK_INT(queue_len(q), n);
	/* Original order with 7 after the current 0, 6 at the end, the removed one gone. */
	const char *o = order(q);
	CHECK(o[0] == '0' && o[1] == '7' && o[strlen(o) - 1] == '6', "got %s", o);
	CHECK_INT(strlen(o), 5);
	queue_free(q);
}

static void test_previous_after_shuffle_retraces_what_played(void)
{
	struct queue *q = filled(NT, 11);
	queue_set_shuffle(q, true);
	int played[5];
	for (int i = 0; i < 5; i++)
		played[i] = tno(queue_next(q));
	for (int i = 3; i >= 0; i--)
		CHECK_INT(tno(queue_previous(q)), played[i]);
	CHECK(queue_previous(q) == NULL, "history exhausted");
	/* Forward again replays the same shuffled order. */
	for (int i = 1; i < 5; i++)
		CHECK_INT(tno(queue_next(q)), played[i]);
	queue_free(q);
}

static void test_previous_across_a_repeat_all_pass_keeps_each_pass_complete(void)
{
	struct queue *q = filled(4, 5);
	queue_set_repeat(q, QUEUE_REPEAT_ALL);
	queue_set_shuffle(q, true);
	int last = -1;
	for (int i = 0; i < 4; i++)
		last = tno(queue_next(q));
	int first_new = tno(queue_next(q)); /* new pass */
	CHECK(first_new != last, "new pass starts with a different track (%d)", first_new);
	CHECK_INT(tno(queue_previous(q)), last);
	CHECK_INT(tno(queue_next(q)), first_new);
	/* This pass so far: last (gone back to), first_new; two more complete it. */
	int seen[NT] = { 0 };
	seen[last]++;
	seen[first_new]++;
	for (int i = 0; i < 2; i++)
		seen[tno(queue_next(q))]++;
	for (int t = 0; t < 4; t++)
		CHECK(seen[t] == 1, "track %d played %d times this pass", t, seen[t]);
	CHECK_INT(queue_position(q), 3);
	queue_free(q);
}

static void test_previous_after_exhaustion_returns_last_track(void)
{
	struct queue *q = filled(2, 1);
	queue_next(q);
	queue_next(q);
	CHECK(queue_next(q) == NULL, "exhausted");
	CHECK_INT(tno(queue_previous(q)), 1);
	CHECK_INT(tno(queue_current(q)), 1);
	CHECK_INT(tno(queue_previous(q)), 0);
	CHECK_INT(tno(queue_next(q)), 1);
	queue_free(q);
}

static void test_out_of_range_queries(void)
{
	struct queue *q = filled(2, 1);
	CHECK(queue_at(q, 2) == NULL, "at(len) is NULL");
	CHECK_INT(queue_index_of(q, 999), -ENOENT);
	CHECK_INT(queue_position(q), -1);
	queue_free(q);
	queue_free(NULL);
}

int main(void)
{
	make_uris();
	RUN(test_add_rejects_malformed_uris);
	RUN(test_next_plays_in_order_then_exhausts);
	RUN(test_repeat_all_wraps_without_shuffle);
	RUN(test_repeat_one_repeats_on_end_but_skip_advances);
	RUN(test_play_now_and_play_next_insert_after_current);
	RUN(test_play_at_jumps_and_records_history);
	RUN(test_remove_by_index_and_by_entry_with_duplicates);
	RUN(test_removing_current_continues_with_its_follower);
	RUN(test_move_edge_cases);
	RUN(test_clear_empties_queue_and_history);
	RUN(test_shuffle_plays_every_track_once_per_pass);
	RUN(test_shuffle_is_reproducible_from_seed_and_actually_shuffles);
	RUN(test_shuffle_mid_queue_keeps_played_and_off_restores_order);
	RUN(test_edits_while_shuffled_survive_turning_shuffle_off);
	RUN(test_previous_after_shuffle_retraces_what_played);
	RUN(test_previous_across_a_repeat_all_pass_keeps_each_pass_complete);
	RUN(test_previous_after_exhaustion_returns_last_track);
	RUN(test_out_of_range_queries);
	return TAP_DONE();
}
