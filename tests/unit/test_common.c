/* Unit tests for the shared library: JSON writer/reader, base64url, ids, JWT, HMAC, signed URLs. */
#include "../tap.h"
#include "b64.h"
#include "buf.h"
#include "hmac256.h"
#include "id.h"
#include "json.h"
#include "jwt.h"
#include "urlsign.h"
#include "xmem.h"
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>

static void test_json_writer_nests_and_escapes(void)
{
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "a", "q\"\\\n\x01");
	jw_key(&w, "list");
	jw_arr(&w);
	jw_int(&w, 1);
	jw_int(&w, -2);
	jw_obj(&w);
	jw_obj_end(&w);
	jw_arr_end(&w);
	jw_kbool(&w, "t", true);
	jw_key(&w, "n");
	jw_str(&w, NULL);
	jw_obj_end(&w);
	char *s = jw_finish(&w);
	CHECK_STR(s, "{\"a\":\"q\\\"\\\\\\n\\u0001\",\"list\":[1,-2,{}],\"t\":true,\"n\":null}");
	free(s);
}

static void test_json_writer_replaces_invalid_utf8(void)
{
	struct jw w;
	jw_init(&w);
	jw_str(&w, "a\xff" "b\xc3\xa9\xe2\x82");
	char *s = jw_finish(&w);
	CHECK_STR(s, "\"a\xEF\xBF\xBD" "b\xc3\xa9\xEF\xBF\xBD\xEF\xBF\xBD\"");
	free(s);
}

static void test_json_reader_checks_types(void)
{
	char err[128];
	yajl_val v = json_parse("{\"s\":\"x\",\"i\":5,\"d\":1.5,\"b\":false}", err, sizeof(err));
	CHECK(v != NULL, "parse failed: %s", err);
	long long i = 0;
	double d = 0;
	bool b = true;
	CHECK_STR(json_get_str(v, "s"), "x");
	CHECK(json_get_str(v, "i") == NULL, "int read as string");
	CHECK(json_get_int(v, "i", &i) && i == 5, "i=%lld", i);
	CHECK(!json_get_int(v, "s", &i), "string read as int");
	CHECK(json_get_double(v, "d", &d) && d == 1.5, "d=%f", d);
	CHECK(json_get_bool(v, "b", &b) && !b, "b");
	CHECK(json_get(v, "missing") == NULL, "missing key found");
	yajl_tree_free(v);
	CHECK(json_parse("{\"a\":", err, sizeof(err)) == NULL, "truncated JSON accepted");
	CHECK(strchr(err, '\n') == NULL && err[0], "error message '%s'", err);
}

static void test_b64url_round_trips_and_rejects_padding(void)
{
	const unsigned char data[] = {0xfb, 0xff, 0x00, 0x41};
	char *e = b64url_encode(data, sizeof(data));
	CHECK_STR(e, "-_8AQQ");
	size_t n;
	unsigned char *d = b64url_decode(e, strlen(e), &n);
	CHECK(d && n == 4 && memcmp(d, data, 4) == 0, "round trip");
	free(d);
	free(e);
	CHECK(b64url_decode("ab==", 4, &n) == NULL, "padding accepted");
	CHECK(b64url_decode("a+b/", 4, &n) == NULL, "standard alphabet accepted");
}

static void test_ids_are_22_base62_and_seeded_ids_are_stable(void)
{
	char a[ID_LEN + 1], b[ID_LEN + 1];
	id_random(a);
	CHECK(id_valid(a), "random id %s invalid", a);
	id_from_seed("track:1", a);
	id_from_seed("track:1", b);
	CHECK_STR(a, b);
	id_from_seed("track:2", b);
	CHECK(strcmp(a, b) != 0, "different seeds gave %s twice", a);
	CHECK(!id_valid("short"), "short id valid");
	CHECK(!id_valid("abcdefghijklmnopqrstu!"), "punctuation valid");
	CHECK(!id_valid("abcdefghijklmnopqrstuvw"), "23 chars valid");
	char type[16], id[ID_LEN + 1];
	char uri[64];
	snprintf(uri, sizeof(uri), "encore:track:%s", a);
	CHECK(uri_parse(uri, type, sizeof(type), id), "uri %s", uri);
	CHECK_STR(type, "track");
	CHECK_STR(id, a);
	CHECK(!uri_parse("spotify:track:x", type, sizeof(type), id), "foreign uri accepted");
	CHECK(!uri_parse("encore:track:../../etc", type, sizeof(type), id), "path in uri accepted");
}

static void test_time_ordered_ids_sort_by_time_and_differ_within_a_millisecond(void)
{
	char prev[ID_LEN + 1], cur[ID_LEN + 1];
	int64_t ms = 1700000000000LL;
	id_time_ordered(prev, ms);
	CHECK(id_valid(prev), "time-ordered id %s invalid", prev);
	int out_of_order = 0, same = 0;
	for (int i = 1; i < 5000; i++) {
		/* Every 7th id shares its millisecond: the random tail tells them apart, in any order. */
		if (i % 7)
			ms += 1 + i % 1000;
		id_time_ordered(cur, ms);
		if (i % 7 && strcmp(prev, cur) >= 0)
			out_of_order++;
		if (strcmp(prev, cur) == 0)
			same++;
		memcpy(prev, cur, sizeof(cur));
	}
	CHECK_INT(out_of_order, 0);
	CHECK_INT(same, 0);
	/* 48 bits of milliseconds: year 10889 still sorts after today. */
	char late[ID_LEN + 1];
	id_time_ordered(late, (1LL << 48) - 1);
	CHECK(strcmp(late, prev) > 0, "max-time id %s sorts before %s", late, prev);
}

static struct keyring *ring_with(const char *kid, unsigned char fill)
{
	unsigned char key[KEYRING_KEY_BYTES];
	memset(key, fill, sizeof(key));
	struct keyring *kr = keyring_new();
	keyring_add(kr, kid, key);
	return kr;
}

static void test_jwt_sign_verify_round_trip(void)
{
	struct keyring *kr = ring_with("k1", 7);
	struct jwt_claims c = {.sub = "alice", .tier = "premium", .country = "SE", .iat = 1000, .exp = 4600};
	char *t = jwt_sign(kr, &c);
	struct jwt_claims out;
	CHECK_INT(jwt_verify(kr, t, 2000, &out), JWT_OK);
	CHECK_STR(out.sub, "alice");
	CHECK_STR(out.tier, "premium");
	CHECK_STR(out.country, "SE");
	CHECK_INT(jwt_verify(kr, t, 4600, &out), JWT_EXPIRED);
	CHECK_INT(jwt_verify(kr, t, 500, &out), JWT_NOT_YET_VALID);
	free(t);
	keyring_free(kr);
}

static void test_jwt_refuses_tampered_forged_and_alg_none(void)
{
	struct keyring *kr = ring_with("k1", 7);
	struct keyring *other = ring_with("k1", 8);
	struct jwt_claims c = {.sub = "bob", .tier = "free", .country = "US", .iat = 1000, .exp = 4600};
	char *t = jwt_sign(kr, &c);
	char *forged = jwt_sign(other, &c);
	struct jwt_claims out;
	CHECK_INT(jwt_verify(kr, forged, 2000, &out), JWT_BAD_SIGNATURE);

	/* Tamper: swap the payload for one claiming premium, keep the signature. */
	c.tier[0] = 0;
	strcpy(c.tier, "premium");
	char *premium = jwt_sign(other, &c);
	char *dot1 = strchr(t, '.'), *dot2 = strrchr(t, '.');
	char *pdot1 = strchr(premium, '.'), *pdot2 = strrchr(premium, '.');
	char *tampered = xasprintf("%.*s%.*s%s", (int)(dot1 - t), t, (int)(pdot2 - pdot1), pdot1, dot2);
	CHECK_INT(jwt_verify(kr, tampered, 2000, &out), JWT_BAD_SIGNATURE);

	char *h = b64url_encode("{\"alg\":\"none\",\"kid\":\"k1\"}", 25);
	char *none = xasprintf("%s%.*s.", h, (int)(dot2 - dot1), dot1);
	CHECK_INT(jwt_verify(kr, none, 2000, &out), JWT_BAD_ALG);
	char *h2 = b64url_encode("{\"alg\":\"HS512\",\"kid\":\"k1\"}", 26);
	char *hs512 = xasprintf("%s%s", h2, dot1);
	CHECK_INT(jwt_verify(kr, hs512, 2000, &out), JWT_BAD_ALG);
	char *h3 = b64url_encode("{\"alg\":\"HS256\",\"kid\":\"k9\"}", 26);
	char *unk = xasprintf("%s%s", h3, dot1);
	CHECK_INT(jwt_verify(kr, unk, 2000, &out), JWT_UNKNOWN_KEY);
	CHECK_INT(jwt_verify(kr, "a.b", 2000, &out), JWT_MALFORMED);
	CHECK_INT(jwt_verify(kr, "", 2000, &out), JWT_MALFORMED);
	CHECK_INT(jwt_verify(kr, "....", 2000, &out), JWT_MALFORMED);
	free(t); free(forged); free(premium); free(tampered); free(h); free(none);
	free(h2); free(hs512); free(h3); free(unk);
	keyring_free(kr);
	keyring_free(other);
}

static void test_jwt_old_key_verifies_after_rotation(void)
{
	struct keyring *kr = ring_with("k1", 7);
	struct jwt_claims c = {.sub = "chen", .tier = "premium", .country = "JP", .iat = 1000, .exp = 4600};
	char *old = jwt_sign(kr, &c);
	unsigned char k2[KEYRING_KEY_BYTES];
	memset(k2, 9, sizeof(k2));
	keyring_add(kr, "k2", k2);
	char *fresh = jwt_sign(kr, &c);
	struct jwt_claims out;
	CHECK_INT(jwt_verify(kr, old, 2000, &out), JWT_OK);
	CHECK_INT(jwt_verify(kr, fresh, 2000, &out), JWT_OK);
	CHECK(strcmp(old, fresh) != 0, "rotation did not change the signing key");
	free(old);
	free(fresh);
	keyring_free(kr);
}

static void test_hmac256_matches_rfc4231_and_libsodium(void)
{
	/* RFC 4231 test cases 2 (a short key) and 6 (a key longer than a block). */
	struct hmac256_key k;
	unsigned char m[HMAC256_BYTES];
	char hex[2 * HMAC256_BYTES + 1];
	hmac256_key_init(&k, (const unsigned char *)"Jefe", 4);
	hmac256(&k, "what do ya want for nothing?", 28, m);
	sodium_bin2hex(hex, sizeof(hex), m, sizeof(m));
	CHECK_STR(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	unsigned char big[131];
	memset(big, 0xaa, sizeof(big));
	hmac256_key_init(&k, big, sizeof(big));
	hmac256(&k, "Test Using Larger Than Block-Size Key - Hash Key First", 54, m);
	sodium_bin2hex(hex, sizeof(hex), m, sizeof(m));
	CHECK_STR(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
	/* And libsodium's HMAC for every message length around the block boundaries. */
	unsigned char key[32], msg[200], ref[32];
	randombytes_buf(key, sizeof(key));
	randombytes_buf(msg, sizeof(msg));
	hmac256_key_init(&k, key, sizeof(key));
	int differ = 0;
	for (size_t n = 0; n <= sizeof(msg); n++) {
		hmac256(&k, msg, n, m);
		crypto_auth_hmacsha256(ref, msg, n, key);
		differ += memcmp(m, ref, sizeof(m)) != 0;
	}
	CHECK_INT(differ, 0);
	hmac256_key_wipe(&k);
}

static void test_b64url_constant_time_encoder_matches_the_codec(void)
{
	unsigned char data[64];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 4);  /* every 6-bit value appears */
	int differ = 0;
	for (int round = 0; round < 50; round++) {
		for (size_t n = 0; n <= sizeof(data); n++) {
			char ct[B64URL_LEN(sizeof(data)) + 1];
			char *ref = b64url_encode(data, n);
			b64url_encode_ct(data, n, ct);
			differ += strcmp(ct, ref) != 0;
			CHECK_INT(strlen(ct), B64URL_LEN(n));
			free(ref);
		}
		randombytes_buf(data, sizeof(data));
	}
	CHECK_INT(differ, 0);
}

/* The public-data codec agrees with libsodium's: the same text for any bytes, and the same
 * verdict and bytes for any text, valid or not. */
static void test_b64url_public_codec_agrees_with_the_constant_time_one(void)
{
	unsigned char data[200];
	int differ = 0;
	for (int round = 0; round < 40; round++) {
		randombytes_buf(data, sizeof(data));
		for (size_t n = 0; n <= sizeof(data); n += 1 + (size_t)round % 3) {
			char *a = b64url_encode(data, n), *b = b64url_encode_public(data, n);
			differ += strcmp(a, b) != 0;
			size_t la = 0, lb = 0;
			unsigned char *da = b64url_decode(a, strlen(a), &la), *db = b64url_decode_public(a, strlen(a), &lb);
			differ += !da || !db || la != n || lb != n || memcmp(da, data, n) != 0 || memcmp(db, data, n) != 0;
			free(da);
			free(db);
			free(a);
			free(b);
		}
	}
	CHECK_INT(differ, 0);
	/* Random text over the alphabet and a few strangers: same verdict, same bytes. */
	const char *chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/= ";
	int verdicts = 0;
	for (int k = 0; k < 20000; k++) {
		char t[24];
		size_t len = randombytes_uniform(sizeof(t));
		for (size_t i = 0; i < len; i++)
			t[i] = chars[randombytes_uniform(64 + (k % 4 == 0 ? 5 : 0))];
		t[len] = 0;
		size_t la = 0, lb = 0;
		unsigned char *da = b64url_decode(t, len, &la), *db = b64url_decode_public(t, len, &lb);
		if ((da == NULL) != (db == NULL) || (da && (la != lb || memcmp(da, db, la) != 0)))
			verdicts++;
		free(da);
		free(db);
	}
	CHECK_INT(verdicts, 0);
	size_t n;
	CHECK(b64url_decode_public("ab==", 4, &n) == NULL, "padding accepted");
	CHECK(b64url_decode_public("a+b/", 4, &n) == NULL, "standard alphabet accepted");
	CHECK(b64url_decode_public("AB", 2, &n) == NULL, "non-zero trailing bits accepted");
	CHECK(b64url_decode_public("AAAAA", 5, &n) == NULL, "a length of 4n+1 accepted");
}

static void test_json_escape_runs_match_the_per_character_rules(void)
{
	/* Long plain runs, every escape, UTF-8 (valid and not) mixed in. */
	const char *in = "plain text then \"quote\" and \\ back\nnew\rret\ttab\x01" "ctl caf\xc3\xa9 bad\xff end";
	struct buf b = BUF_INIT;
	json_escape(&b, in, strlen(in));
	CHECK_STR(b.data, "\"plain text then \\\"quote\\\" and \\\\ back\\nnew\\rret\\ttab\\u0001ctl caf\xc3\xa9 bad\xef\xbf\xbd end\"");
	buf_free(&b);
}

static void test_urlsign_binds_every_claim_and_rotates(void)
{
	struct keyring *kr = ring_with("k1", 3);
	struct urlsign_claims c = {.content_id = "4uLU6hMCjMI75M1A2tKUQC", .bitrate = 160, .range = "all",
				   .user = "alice", .expires = 5000, .ip = "127.0.0.1"};
	char sig[URLSIGN_SIG_LEN + 1], kid[KEYRING_KID_MAX + 1];
	CHECK_INT(urlsign_sign(kr, &c, sig, kid), 0);
	CHECK_STR(kid, "k1");
	CHECK_INT(strlen(sig), URLSIGN_SIG_LEN);
	CHECK_INT(urlsign_verify(kr, &c, kid, sig, 4000), URLSIGN_OK);
	CHECK_INT(urlsign_verify(kr, &c, kid, sig, 5000), URLSIGN_EXPIRED);
	struct urlsign_claims t = c;
	t.user = "bob";
	CHECK_INT(urlsign_verify(kr, &t, kid, sig, 4000), URLSIGN_BAD_SIGNATURE);
	t = c;
	t.ip = "127.0.0.2";
	CHECK_INT(urlsign_verify(kr, &t, kid, sig, 4000), URLSIGN_BAD_SIGNATURE);
	t = c;
	t.bitrate = 320;
	CHECK_INT(urlsign_verify(kr, &t, kid, sig, 4000), URLSIGN_BAD_SIGNATURE);
	t = c;
	t.expires = 9000;  /* a longer life written into the URL */
	CHECK_INT(urlsign_verify(kr, &t, kid, sig, 4000), URLSIGN_BAD_SIGNATURE);
	t = c;
	t.content_id = "5uLU6hMCjMI75M1A2tKUQC";
	CHECK_INT(urlsign_verify(kr, &t, kid, sig, 4000), URLSIGN_BAD_SIGNATURE);
	char bad[URLSIGN_SIG_LEN + 1];
	memcpy(bad, sig, sizeof(bad));
	bad[10] = bad[10] == 'A' ? 'B' : 'A';
	CHECK_INT(urlsign_verify(kr, &c, kid, bad, 4000), URLSIGN_BAD_SIGNATURE);
	bad[10] = '+';
	CHECK_INT(urlsign_verify(kr, &c, kid, bad, 4000), URLSIGN_MALFORMED);
	/* The last character's two low bits are padding: set, the same MAC is spelt another
	 * way, which is refused rather than accepted. */
	memcpy(bad, sig, sizeof(bad));
	const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	bad[URLSIGN_SIG_LEN - 1] = alpha[(strchr(alpha, sig[URLSIGN_SIG_LEN - 1]) - alpha) ^ 1];
	CHECK_INT(urlsign_verify(kr, &c, kid, bad, 4000), URLSIGN_MALFORMED);
	CHECK_INT(urlsign_verify(kr, &c, kid, "short", 4000), URLSIGN_MALFORMED);
	CHECK_INT(urlsign_verify(kr, &c, "k9", sig, 4000), URLSIGN_UNKNOWN_KEY);
	/* The same MAC libsodium computes over the documented rendering. */
	const char *text = "cdn1\n4uLU6hMCjMI75M1A2tKUQC\n160\nall\nalice\n5000\n127.0.0.1";
	unsigned char ref[32];
	crypto_auth_hmacsha256(ref, (const unsigned char *)text, strlen(text), keyring_find(kr, "k1"));
	char *refsig = b64url_encode(ref, sizeof(ref));
	CHECK_STR(sig, refsig);
	free(refsig);
	/* Rotation: the old key's URLs verify; new ones are signed with the new key. */
	unsigned char k2[KEYRING_KEY_BYTES];
	memset(k2, 4, sizeof(k2));
	keyring_add(kr, "k2", k2);
	CHECK_INT(urlsign_verify(kr, &c, "k1", sig, 4000), URLSIGN_OK);
	char sig2[URLSIGN_SIG_LEN + 1], kid2[KEYRING_KID_MAX + 1];
	CHECK_INT(urlsign_sign(kr, &c, sig2, kid2), 0);
	CHECK_STR(kid2, "k2");
	CHECK_INT(urlsign_verify(kr, &c, kid2, sig2, 4000), URLSIGN_OK);
	CHECK(strcmp(sig, sig2) != 0, "the new key signed the same");
	c.user = "al\nice";
	CHECK_INT(urlsign_sign(kr, &c, sig2, kid2), -EINVAL);
	keyring_free(kr);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	RUN(test_json_writer_nests_and_escapes);
	RUN(test_json_writer_replaces_invalid_utf8);
	RUN(test_json_reader_checks_types);
	RUN(test_b64url_round_trips_and_rejects_padding);
	RUN(test_ids_are_22_base62_and_seeded_ids_are_stable);
	RUN(test_time_ordered_ids_sort_by_time_and_differ_within_a_millisecond);
	RUN(test_jwt_sign_verify_round_trip);
	RUN(test_jwt_refuses_tampered_forged_and_alg_none);
	RUN(test_jwt_old_key_verifies_after_rotation);
	RUN(test_hmac256_matches_rfc4231_and_libsodium);
	RUN(test_b64url_constant_time_encoder_matches_the_codec);
	RUN(test_urlsign_binds_every_claim_and_rotates);
	RUN(test_b64url_public_codec_agrees_with_the_constant_time_one);
	RUN(test_json_escape_runs_match_the_per_character_rules);
	return TAP_DONE();
}
