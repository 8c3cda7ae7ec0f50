/* Unit tests for the shared library: JSON writer/reader, base64url, ids, JWT. */
#include "../tap.h"
#include "b64.h"
#include "id.h"
#include "json.h"
#include "jwt.h"
#include "xmem.h"
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
	return TAP_DONE();
}
