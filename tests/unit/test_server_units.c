/* Unit tests for encored's pure modules: routing, token buckets, the TTL cache, form decoding. */
#include "../tap.h"
#include "catalog.h"
#include "ratelimit.h"
#include "router.h"
#include "ttlcache.h"
#include "urlenc.h"
#include <stdlib.h>

static void test_route_match_captures_params_and_rejects_others(void)
{
	char p[ROUTE_MAX_PARAMS][ROUTE_PARAM_MAX];
	int n = -1;
	CHECK(route_match("/v1/tracks/{id}", "/v1/tracks/abc", p, &n), "simple");
	CHECK_INT(n, 1);
	CHECK_STR(p[0], "abc");
	CHECK(route_match("/v1/albums/{id}/tracks", "/v1/albums/x1/tracks/", p, &n), "trailing slash");
	CHECK_STR(p[0], "x1");
	CHECK(!route_match("/v1/tracks/{id}", "/v1/tracks/", p, &n), "empty param");
	CHECK(!route_match("/v1/tracks/{id}", "/v1/tracks/a/b", p, &n), "extra segment");
	CHECK(!route_match("/v1/tracks", "/v1/tracksx", p, &n), "prefix");
	CHECK(!route_match("/v1/me", "/v1", p, &n), "shorter path");
	CHECK(route_match("/v1/me", "/v1/me", p, &n) && n == 0, "no params");
}

static void test_bucket_refills_at_rate_up_to_burst(void)
{
	double tokens = 2, wait = 0;
	int64_t last = 0;
	CHECK(bucket_take(&tokens, &last, 0, 1.0, 2.0, &wait), "first");
	CHECK(bucket_take(&tokens, &last, 0, 1.0, 2.0, &wait), "second");
	CHECK(!bucket_take(&tokens, &last, 0, 1.0, 2.0, &wait), "third refused");
	CHECK(wait > 0.99 && wait <= 1.0, "wait %f", wait);
	CHECK(bucket_take(&tokens, &last, 1000000, 1.0, 2.0, &wait), "after 1 s");
	CHECK(!bucket_take(&tokens, &last, 1000000, 1.0, 2.0, &wait), "only one refilled");
	CHECK(bucket_take(&tokens, &last, 100000000, 1.0, 2.0, &wait), "after long idle");
	CHECK(bucket_take(&tokens, &last, 100000000, 1.0, 2.0, &wait), "burst of 2");
	CHECK(!bucket_take(&tokens, &last, 100000000, 1.0, 2.0, &wait), "never above burst");
}

static void test_ratelimit_keys_are_independent(void)
{
	struct ratelimit *rl = ratelimit_new(1, 1);
	int retry = 0;
	CHECK(ratelimit_take(rl, "a", 0, &retry), "a first");
	CHECK(!ratelimit_take(rl, "a", 0, &retry), "a second");
	CHECK_INT(retry, 1);
	CHECK(ratelimit_take(rl, "b", 0, &retry), "b unaffected");
	ratelimit_free(rl);
	struct ratelimit *off = ratelimit_new(0, 0);
	for (int i = 0; i < 100; i++)
		CHECK(ratelimit_take(off, "x", 0, &retry), "disabled limiter refused");
	ratelimit_free(off);
}

static void test_ttlcache_expires_and_evicts_oldest(void)
{
	struct ttlcache *c = ttlcache_new(1000, 2);
	ttlcache_put(c, "a", "1", 0);
	ttlcache_put(c, "b", "2", 10);
	char *v = ttlcache_get(c, "a", 500);
	CHECK_STR(v, "1");
	free(v);
	ttlcache_put(c, "c", "3", 20);
	CHECK(ttlcache_get(c, "a", 30) == NULL, "oldest not evicted");
	v = ttlcache_get(c, "c", 30);
	CHECK_STR(v, "3");
	free(v);
	CHECK(ttlcache_get(c, "b", 1010) == NULL, "expired entry returned");
	ttlcache_put(c, "c", "33", 40);
	v = ttlcache_get(c, "c", 50);
	CHECK_STR(v, "33");
	free(v);
	struct ttlcache_stats s = ttlcache_stats(c);
	CHECK(s.hits == 3 && s.misses == 2, "hits %llu misses %llu", (unsigned long long)s.hits, (unsigned long long)s.misses);
	ttlcache_clear(c);
	CHECK(ttlcache_get(c, "c", 50) == NULL, "clear");
	ttlcache_free(c);
}

static void test_form_get_decodes_and_rejects_bad_escapes(void)
{
	char *v = form_get("grant_type=password&username=al%C3%A9+x&password=a%26b%3Dc", "username");
	CHECK_STR(v, "al\xc3\xa9 x");
	free(v);
	v = form_get("grant_type=password&username=x&password=a%26b%3Dc", "password");
	CHECK_STR(v, "a&b=c");
	free(v);
	CHECK(form_get("a=1", "b") == NULL, "absent");
	CHECK(form_get("a=%zz", "a") == NULL, "bad escape");
	CHECK(form_get("a=%00", "a") == NULL, "encoded NUL");
	CHECK(form_get("a=%4", "a") == NULL, "short escape");
	struct buf b = BUF_INIT;
	url_encode(&b, "a b&é");
	CHECK_STR(b.data, "a%20b%26%C3%A9");
	buf_free(&b);
}

static void test_markets_decide_playability(void)
{
	CHECK(catalog_playable_in("", "SE"), "unrestricted");
	CHECK(catalog_playable_in("SE,JP", "JP"), "listed");
	CHECK(!catalog_playable_in("SE,JP", "US"), "unlisted");
	CHECK(!catalog_playable_in("SEX", "SE"), "prefix of a longer code");
}

int main(void)
{
	RUN(test_route_match_captures_params_and_rejects_others);
	RUN(test_bucket_refills_at_rate_up_to_burst);
	RUN(test_ratelimit_keys_are_independent);
	RUN(test_ttlcache_expires_and_evicts_oldest);
	RUN(test_form_get_decodes_and_rejects_bad_escapes);
	RUN(test_markets_decide_playability);
	return TAP_DONE();
}
