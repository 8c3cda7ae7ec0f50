/* loginguard: the login throttle's policy, with time as a parameter. */
#include "loginguard.h"
#include "tap.h"

#define S 1000000LL

static void test_lock_seconds_double_from_base_up_to_cap(void)
{
	CHECK_INT(loginguard_lock_seconds(4, 5, 1, 60), 0);
	CHECK_INT(loginguard_lock_seconds(5, 5, 1, 60), 1);
	CHECK_INT(loginguard_lock_seconds(6, 5, 1, 60), 2);
	CHECK_INT(loginguard_lock_seconds(7, 5, 1, 60), 4);
	CHECK_INT(loginguard_lock_seconds(11, 5, 1, 60), 60);   /* 64 capped */
	CHECK_INT(loginguard_lock_seconds(1000000, 5, 1, 900), 900); /* no overflow */
	CHECK_INT(loginguard_lock_seconds(99, 0, 1, 60), 0);    /* disabled */
}

static void test_failures_below_threshold_never_lock(void)
{
	struct loginguard *g = loginguard_new(3, 10, 100, 1000);
	int retry = -1;
	CHECK_INT(loginguard_fail(g, "u:a", 0), 0);
	CHECK_INT(loginguard_fail(g, "u:a", 1), 0);
	CHECK(loginguard_check(g, "u:a", 2, &retry), "two failures of three must not lock");
	loginguard_free(g);
}

static void test_lock_refuses_until_it_ends_then_doubles_on_next_failure(void)
{
	struct loginguard *g = loginguard_new(3, 10, 100, 1000);
	int retry = -1;
	int64_t t = 0;
	loginguard_fail(g, "u:a", t);
	loginguard_fail(g, "u:a", t);
	CHECK_INT(loginguard_fail(g, "u:a", t), 10);
	CHECK(!loginguard_check(g, "u:a", t + 1, &retry), "locked right after the third failure");
	CHECK_INT(retry, 10);
	CHECK(!loginguard_check(g, "u:a", t + 9 * S + 1, &retry), "still locked at 9 s");
	CHECK_INT(retry, 1);
	CHECK(loginguard_check(g, "u:a", t + 10 * S, &retry), "open when the lock ends");
	t += 10 * S;
	CHECK_INT(loginguard_fail(g, "u:a", t), 20);
	t += 20 * S;
	CHECK_INT(loginguard_fail(g, "u:a", t), 40);
	t += 40 * S;
	CHECK_INT(loginguard_fail(g, "u:a", t), 80);
	t += 80 * S;
	CHECK_INT(loginguard_fail(g, "u:a", t), 100);
	t += 100 * S;
	CHECK_INT(loginguard_fail(g, "u:a", t), 100);
	/* Other keys are unaffected. */
	CHECK(loginguard_check(g, "u:b", t, &retry), "another account is not locked");
	loginguard_free(g);
}

static void test_success_and_clear_start_over(void)
{
	struct loginguard *g = loginguard_new(3, 10, 100, 1000);
	int retry;
	loginguard_fail(g, "u:a", 0);
	loginguard_fail(g, "u:a", 0);
	loginguard_success(g, "u:a");
	CHECK_INT(loginguard_fail(g, "u:a", 0), 0);
	CHECK_INT(loginguard_fail(g, "u:a", 0), 0);
	CHECK_INT(loginguard_fail(g, "u:a", 0), 10);
	CHECK(loginguard_clear(g, "u:a"), "clear reports the key was throttled");
	CHECK(loginguard_check(g, "u:a", 1, &retry), "unlocked after clear");
	CHECK(!loginguard_clear(g, "u:a"), "clear of a clean key reports false");
	loginguard_free(g);
}

static void test_failures_are_forgotten_after_the_window(void)
{
	struct loginguard *g = loginguard_new(3, 10, 100, 60);
	loginguard_fail(g, "ip:x", 0);
	loginguard_fail(g, "ip:x", 0);
	/* 61 s later the two old failures no longer count: a third does not lock. */
	CHECK_INT(loginguard_fail(g, "ip:x", 61 * S), 0);
	loginguard_free(g);
}

static void test_bad_arguments_are_refused(void)
{
	CHECK(loginguard_new(3, 0, 10, 10) == NULL, "base 0 refused");
	CHECK(loginguard_new(3, 10, 5, 10) == NULL, "cap below base refused");
	struct loginguard *g = loginguard_new(0, 1, 1, 1);
	int retry;
	for (int i = 0; i < 100; i++)
		loginguard_fail(g, "u:a", 0);
	CHECK(loginguard_check(g, "u:a", 0, &retry), "max 0 disables the guard");
	loginguard_free(g);
}

int main(void)
{
	RUN(test_lock_seconds_double_from_base_up_to_cap);
	RUN(test_failures_below_threshold_never_lock);
	RUN(test_lock_refuses_until_it_ends_then_doubles_on_next_failure);
	RUN(test_success_and_clear_start_over);
	RUN(test_failures_are_forgotten_after_the_window);
	RUN(test_bad_arguments_are_refused);
	return TAP_DONE();
}
