/* The offline store's pure crypto: the file format and the content key binding. */
#include "offline.h"
#include "tap.h"
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static const char TRACK[] = "4uLU6hMCjMI75M1A2tKUQC";

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 7);
}

static void test_seal_roundtrip_restores_the_plaintext(void)
{
	uint8_t key[32], plain[5000];
	fill(key, sizeof(key), 1);
	fill(plain, sizeof(plain), 9);
	size_t boxlen;
	uint8_t *box = offline_seal(key, TRACK, 3, plain, sizeof(plain), &boxlen);
	CHECK_INT(boxlen, sizeof(plain) + crypto_secretstream_xchacha20poly1305_HEADERBYTES + crypto_secretstream_xchacha20poly1305_ABYTES);
	CHECK(memmem(box, boxlen, plain + 100, 32) == NULL, "plaintext visible in the box");
	uint8_t *out = NULL;
	size_t len = 0;
	CHECK_INT(offline_unseal(key, TRACK, 3, box, boxlen, &out, &len), 0);
	CHECK_INT(len, sizeof(plain));
	CHECK(out && memcmp(out, plain, sizeof(plain)) == 0, "plaintext differs");
	free(out);
	free(box);
}

static void test_unseal_refuses_flipped_bit_truncation_wrong_slot_and_wrong_key(void)
{
	uint8_t key[32], other[32], plain[300];
	fill(key, sizeof(key), 1);
	fill(other, sizeof(other), 2);
	fill(plain, sizeof(plain), 3);
	size_t boxlen;
	uint8_t *box = offline_seal(key, TRACK, 0, plain, sizeof(plain), &boxlen);
	uint8_t *out = NULL;
	size_t len;
	CHECK_INT(offline_unseal(key, TRACK, 1, box, boxlen, &out, &len), -EBADMSG);              /* moved to another index */
	CHECK_INT(offline_unseal(key, "5uLU6hMCjMI75M1A2tKUQC", 0, box, boxlen, &out, &len), -EBADMSG); /* another track */
	CHECK_INT(offline_unseal(other, TRACK, 0, box, boxlen, &out, &len), -EBADMSG);            /* another key */
	CHECK_INT(offline_unseal(key, TRACK, 0, box, boxlen - 1, &out, &len), -EBADMSG);          /* truncated */
	CHECK_INT(offline_unseal(key, TRACK, 0, box, 10, &out, &len), -EBADMSG);                  /* shorter than a header */
	box[boxlen / 2] ^= 1;
	CHECK_INT(offline_unseal(key, TRACK, 0, box, boxlen, &out, &len), -EBADMSG);              /* flipped bit */
	free(box);
}

static void test_content_key_depends_on_licence_device_and_track(void)
{
	uint8_t lk[32], lk2[32], sk[32], sk2[32], a[32], b[32];
	fill(lk, 32, 1);
	fill(lk2, 32, 2);
	fill(sk, 32, 3);
	fill(sk2, 32, 4);
	offline_content_key(lk, sk, TRACK, a);
	offline_content_key(lk, sk, TRACK, b);
	CHECK(memcmp(a, b, 32) == 0, "not deterministic");
	offline_content_key(lk2, sk, TRACK, b);
	CHECK(memcmp(a, b, 32) != 0, "licence key ignored");
	offline_content_key(lk, sk2, TRACK, b);
	CHECK(memcmp(a, b, 32) != 0, "device key ignored");
	offline_content_key(lk, sk, "5uLU6hMCjMI75M1A2tKUQC", b);
	CHECK(memcmp(a, b, 32) != 0, "track ignored");
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	RUN(test_seal_roundtrip_restores_the_plaintext);
	RUN(test_unseal_refuses_flipped_bit_truncation_wrong_slot_and_wrong_key);
	RUN(test_content_key_depends_on_licence_device_and_track);
	return TAP_DONE();
}
