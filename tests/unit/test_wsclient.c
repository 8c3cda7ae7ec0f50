/* wsclient's pure parts: the reconnect backoff and fragment reassembly. */
#include "buf.h"
#include "tap.h"
#include "wsclient.h"
#include <errno.h>
#include <string.h>

static void test_backoff_doubles_from_min_to_max_with_quarter_jitter(void)
{
	for (int n = 0; n < 40; n++) {
		long step = WSCLIENT_BACKOFF_MIN_MS;
		for (int i = 0; i < n && step < WSCLIENT_BACKOFF_MAX_MS; i++)
			step *= 2;
		if (step > WSCLIENT_BACKOFF_MAX_MS)
			step = WSCLIENT_BACKOFF_MAX_MS;
		for (int k = 0; k < 100; k++) {
			double r = k / 100.0;
			int ms = wsclient_backoff_ms(n, r);
			CHECK(ms >= step * 3 / 4 && ms <= step * 5 / 4, "attempt %d r %.2f: %d not in [%ld, %ld]", n, r, ms,
			      step * 3 / 4, step * 5 / 4);
		}
	}
	CHECK_INT(wsclient_backoff_ms(0, 0.5), WSCLIENT_BACKOFF_MIN_MS);
	CHECK_INT(wsclient_backoff_ms(1, 0.5), 2 * WSCLIENT_BACKOFF_MIN_MS);
	CHECK_INT(wsclient_backoff_ms(1000, 0.5), WSCLIENT_BACKOFF_MAX_MS);
	CHECK_INT(wsclient_backoff_ms(0, 0.0), WSCLIENT_BACKOFF_MIN_MS * 3 / 4);
	CHECK(wsclient_backoff_ms(3, 0.1) < wsclient_backoff_ms(3, 0.9), "jitter moves the delay: %d vs %d",
	      wsclient_backoff_ms(3, 0.1), wsclient_backoff_ms(3, 0.9));
}

static void test_fragments_join_into_one_nul_terminated_message_on_the_final_one(void)
{
	struct buf rx = BUF_INIT;
	CHECK_INT(wsclient_assemble(&rx, "{\"type\":", 8, false, 64), 0);
	CHECK_INT(wsclient_assemble(&rx, "\"pi", 3, false, 64), 0);
	CHECK_INT(wsclient_assemble(&rx, "ng\"}", 4, true, 64), 1);
	CHECK_INT(rx.len, 15);
	CHECK_STR(rx.data, "{\"type\":\"ping\"}");
	buf_free(&rx);
	CHECK_INT(wsclient_assemble(&rx, "{}", 2, true, 64), 1);
	CHECK_STR(rx.data, "{}");
	buf_free(&rx);
}

static void test_a_message_longer_than_max_is_refused_and_the_buffer_emptied(void)
{
	struct buf rx = BUF_INIT;
	char chunk[10];
	memset(chunk, 'x', sizeof(chunk));
	CHECK_INT(wsclient_assemble(&rx, chunk, 10, false, 25), 0);
	CHECK_INT(wsclient_assemble(&rx, chunk, 10, false, 25), 0);
	CHECK_INT(wsclient_assemble(&rx, chunk, 10, true, 25), -EMSGSIZE);
	CHECK_INT(rx.len, 0);
	/* Exactly max fits. */
	CHECK_INT(wsclient_assemble(&rx, chunk, 10, false, 20), 0);
	CHECK_INT(wsclient_assemble(&rx, chunk, 10, true, 20), 1);
	CHECK_INT(rx.len, 20);
	buf_free(&rx);
	/* A single fragment over max, with a huge length that must not wrap the sum. */
	CHECK_INT(wsclient_assemble(&rx, chunk, (size_t)-1, true, 20), -EMSGSIZE);
	CHECK_INT(rx.len, 0);
}

int main(void)
{
	RUN(test_backoff_doubles_from_min_to_max_with_quarter_jitter);
	RUN(test_fragments_join_into_one_nul_terminated_message_on_the_final_one);
	RUN(test_a_message_longer_than_max_is_refused_and_the_buffer_emptied);
	return TAP_DONE();
}
