/* Unit tests for the client foundation's pure parts: XDG path resolution, the
 * session file, form encoding, the retry policy, token parsing and CLI cards. */
#include "api.h"
#include "card.h"
#include "json.h"
#include "paths.h"
#include "session.h"
#include "tap.h"
#include "xmem.h"
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- injected environment ---- */

struct fake_env {
	const char *kv[16][2];
};

static const char *fake_getenv(const char *name, void *ctx)
{
	struct fake_env *e = ctx;
	for (int i = 0; i < 16 && e->kv[i][0]; i++)
		if (strcmp(e->kv[i][0], name) == 0)
			return e->kv[i][1];
	return NULL;
}

static void test_paths_default_to_home_dotdirs_when_xdg_unset(void)
{
	struct fake_env e = {{{"HOME", "/home/alice"}}};
	struct paths *p = paths_new(fake_getenv, &e, 1000);
	CHECK(p != NULL, "paths_new returned NULL");
	if (!p)
		return;
	CHECK_STR(paths_dir(p, PATHS_CONFIG), "/home/alice/.config/encore");
	CHECK_STR(paths_dir(p, PATHS_CACHE), "/home/alice/.cache/encore");
	CHECK_STR(paths_dir(p, PATHS_DATA), "/home/alice/.local/share/encore");
	CHECK_STR(paths_dir(p, PATHS_RUNTIME), "/tmp/encore-1000");
	paths_free(p);
}

static void test_paths_xdg_vars_used_when_set(void)
{
	struct fake_env e = {{{"HOME", "/home/alice"}, {"XDG_CONFIG_HOME", "/x/cfg"}, {"XDG_CACHE_HOME", "/x/cache"},
			      {"XDG_DATA_HOME", "/x/data"}, {"XDG_RUNTIME_DIR", "/run/user/1000"}}};
	struct paths *p = paths_new(fake_getenv, &e, 1000);
	CHECK_STR(paths_dir(p, PATHS_CONFIG), "/x/cfg/encore");
	CHECK_STR(paths_dir(p, PATHS_CACHE), "/x/cache/encore");
	CHECK_STR(paths_dir(p, PATHS_DATA), "/x/data/encore");
	CHECK_STR(paths_dir(p, PATHS_RUNTIME), "/run/user/1000/encore");
	char *f = paths_file(p, PATHS_DATA, "session.json");
	CHECK_STR(f, "/x/data/encore/session.json");
	free(f);
	paths_free(p);
}

static void test_paths_encore_overrides_beat_xdg(void)
{
	struct fake_env e = {{{"HOME", "/home/alice"}, {"XDG_CONFIG_HOME", "/x/cfg"}, {"ENCORE_CONFIG_DIR", "/o/cfg"},
			      {"ENCORE_CACHE_DIR", "/o/cache"}, {"ENCORE_DATA_DIR", "/o/data/"},
			      {"XDG_RUNTIME_DIR", "/run/user/1000"}, {"ENCORE_RUNTIME_DIR", "/o/run"}}};
	struct paths *p = paths_new(fake_getenv, &e, 1000);
	CHECK_STR(paths_dir(p, PATHS_CONFIG), "/o/cfg");
	CHECK_STR(paths_dir(p, PATHS_CACHE), "/o/cache");
	CHECK_STR(paths_dir(p, PATHS_DATA), "/o/data");  /* trailing slash stripped */
	CHECK_STR(paths_dir(p, PATHS_RUNTIME), "/o/run");
	paths_free(p);
}

static void test_paths_relative_or_empty_xdg_value_is_ignored(void)
{
	struct fake_env e = {{{"HOME", "/h"}, {"XDG_CONFIG_HOME", "rel/cfg"}, {"XDG_DATA_HOME", ""},
			      {"XDG_RUNTIME_DIR", "run"}, {"ENCORE_CACHE_DIR", ""}}};
	struct paths *p = paths_new(fake_getenv, &e, 42);
	CHECK_STR(paths_dir(p, PATHS_CONFIG), "/h/.config/encore");
	CHECK_STR(paths_dir(p, PATHS_DATA), "/h/.local/share/encore");
	CHECK_STR(paths_dir(p, PATHS_CACHE), "/h/.cache/encore");
	CHECK_STR(paths_dir(p, PATHS_RUNTIME), "/tmp/encore-42");
	paths_free(p);
}

static char *make_tmpdir(void)
{
	char buf[256];
	return tap_mkdtemp(buf, sizeof(buf), "encore-test") ? xstrdup(buf) : NULL;
}

static void rm_rf(const char *path)
{
	char *cmd = xasprintf("rm -rf '%s'", path);
	if (system(cmd) != 0) {
		/* leftover temp dirs are harmless */
	}
	free(cmd);
}

static void test_paths_ensure_creates_nested_dirs_with_0700(void)
{
	char *root = make_tmpdir();
	CHECK(root, "mkdtemp failed");
	if (!root)
		return;
	char *data = xasprintf("%s/a/b/data", root);
	struct fake_env e = {{{"HOME", root}, {"ENCORE_DATA_DIR", data}}};
	struct paths *p = paths_new(fake_getenv, &e, (unsigned)getuid());
	mode_t old = umask(0);
	CHECK_INT(paths_ensure(p, PATHS_DATA), 0);
	CHECK_INT(paths_ensure(p, PATHS_DATA), 0);  /* idempotent */
	umask(old);
	struct stat st;
	CHECK_INT(stat(data, &st), 0);
	CHECK_INT(st.st_mode & 0777, 0700);
	char *mid = xasprintf("%s/a", root);
	CHECK_INT(stat(mid, &st), 0);
	CHECK_INT(st.st_mode & 0777, 0700);
	free(mid);
	paths_free(p);
	free(data);
	rm_rf(root);
	free(root);
}

static void test_paths_runtime_dir_open_to_others_is_refused(void)
{
	char *root = make_tmpdir();
	if (!root)
		return;
	char *run = xasprintf("%s/run", root);
	mkdir(run, 0700);
	chmod(run, 0755);
	struct fake_env e = {{{"HOME", root}, {"ENCORE_RUNTIME_DIR", run}}};
	struct paths *p = paths_new(fake_getenv, &e, (unsigned)getuid());
	CHECK_INT(paths_ensure(p, PATHS_RUNTIME), -EPERM);
	chmod(run, 0700);
	CHECK_INT(paths_ensure(p, PATHS_RUNTIME), 0);
	paths_free(p);
	free(run);
	rm_rf(root);
	free(root);
}

/* ---- session file ---- */

static void test_session_round_trip_preserves_every_field(void)
{
	char *root = make_tmpdir();
	if (!root)
		return;
	char *path = xasprintf("%s/session.json", root);
	struct session *s = session_new("http://h:1", "alice \"q\"", "acc.tok.en", "ref-1", 1700000000LL);
	CHECK_INT(session_save(s, path), 0);
	int err = 1;
	struct session *l = session_load(path, &err);
	CHECK_INT(err, 0);
	CHECK(l != NULL, "load failed");
	if (l) {
		CHECK_STR(session_server(l), "http://h:1");
		CHECK_STR(session_username(l), "alice \"q\"");
		CHECK_STR(session_access_token(l), "acc.tok.en");
		CHECK_STR(session_refresh_token(l), "ref-1");
		CHECK_INT(session_expires_at(l), 1700000000LL);
	}
	session_free(l);
	session_free(s);
	/* A session without a refresh token stays without one. */
	s = session_new("http://h:1", "bob", "a", NULL, 5);
	CHECK_INT(session_save(s, path), 0);
	l = session_load(path, &err);
	CHECK(l && session_refresh_token(l) == NULL, "refresh token should be NULL, got %s",
	      l && session_refresh_token(l) ? session_refresh_token(l) : "(null)");
	session_free(l);
	session_free(s);
	free(path);
	rm_rf(root);
	free(root);
}

static void test_session_file_is_0600_even_under_permissive_umask(void)
{
	char *root = make_tmpdir();
	if (!root)
		return;
	char *path = xasprintf("%s/session.json", root);
	/* A pre-existing world-readable file must not keep its mode. */
	int fd = open(path, O_CREAT | O_WRONLY, 0644);
	close(fd);
	chmod(path, 0644);
	mode_t old = umask(0);
	struct session *s = session_new("http://h", "a", "t", "r", 1);
	CHECK_INT(session_save(s, path), 0);
	umask(old);
	struct stat st;
	CHECK_INT(stat(path, &st), 0);
	CHECK_INT(st.st_mode & 0777, 0600);
	session_free(s);
	free(path);
	rm_rf(root);
	free(root);
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	if (d)
		closedir(d);
	return n;
}

static void test_session_save_replaces_by_rename_not_in_place(void)
{
	char *root = make_tmpdir();
	if (!root)
		return;
	char *path = xasprintf("%s/session.json", root);
	struct session *s1 = session_new("http://h", "old-user", "t1", "r1", 1);
	struct session *s2 = session_new("http://h", "new-user", "t2", "r2", 2);
	CHECK_INT(session_save(s1, path), 0);
	/* A reader holding the old file must keep seeing it whole: only a rename gives that. */
	int fd = open(path, O_RDONLY);
	struct stat before, after;
	fstat(fd, &before);
	CHECK_INT(session_save(s2, path), 0);
	char buf[512] = "";
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	CHECK(n > 0 && strstr(buf, "old-user") != NULL, "old reader saw \"%s\"", buf);
	stat(path, &after);
	CHECK(before.st_ino != after.st_ino, "inode unchanged (%lu): file was rewritten in place",
	      (unsigned long)after.st_ino);
	CHECK_INT(count_entries(root), 1);  /* no temp file left behind */
	int err;
	struct session *l = session_load(path, &err);
	CHECK_STR(l ? session_username(l) : NULL, "new-user");
	session_free(l);
	session_free(s1);
	session_free(s2);
	free(path);
	rm_rf(root);
	free(root);
}

static void test_session_load_missing_is_enoent_and_garbage_is_einval(void)
{
	char *root = make_tmpdir();
	if (!root)
		return;
	char *path = xasprintf("%s/session.json", root);
	int err = 0;
	CHECK(session_load(path, &err) == NULL, "loaded a missing file");
	CHECK_INT(err, -ENOENT);
	const char *bad[] = {"not json", "{}", "{\"server\":\"s\",\"username\":\"u\",\"expires_at\":1}",
			     "{\"server\":\"s\",\"username\":\"u\",\"access_token\":\"a\"}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		FILE *f = fopen(path, "w");
		fputs(bad[i], f);
		fclose(f);
		err = 0;
		struct session *s = session_load(path, &err);
		CHECK(s == NULL && err == -EINVAL, "case %zu: expected -EINVAL, got %d", i, err);
		session_free(s);
	}
	CHECK_INT(session_remove(path), 0);
	CHECK_INT(session_remove(path), -ENOENT);
	free(path);
	rm_rf(root);
	free(root);
}

/* ---- form encoding ---- */

static void test_form_encoding_escapes_reserved_bytes_and_space_as_plus(void)
{
	struct buf b = BUF_INIT;
	api_form_append(&b, "grant_type", "password");
	api_form_append(&b, "username", "al ice");
	api_form_append(&b, "password", "p&s=w+d%/\xc3\xa9~");
	CHECK_STR(b.data, "grant_type=password&username=al+ice&password=p%26s%3Dw%2Bd%25%2F%C3%A9%7E");
	buf_reset(&b);
	api_form_append(&b, "k", "");
	api_form_append(&b, "a-b.c_d*", "AZaz09");
	CHECK_STR(b.data, "k=&a-b.c_d*=AZaz09");
	buf_free(&b);
}

/* ---- retry policy ---- */

static void test_should_retry_idempotent_methods_on_5xx_429_and_connection_errors(void)
{
	const char *methods[] = {"GET", "PUT", "DELETE", "HEAD"};
	for (int i = 0; i < 4; i++) {
		CHECK(api_should_retry(methods[i], 500, 0), "%s 500", methods[i]);
		CHECK(api_should_retry(methods[i], 503, 0), "%s 503", methods[i]);
		CHECK(api_should_retry(methods[i], 429, 0), "%s 429", methods[i]);
		CHECK(api_should_retry(methods[i], 0, CURLE_COULDNT_CONNECT), "%s refused", methods[i]);
		CHECK(api_should_retry(methods[i], 0, CURLE_OPERATION_TIMEDOUT), "%s timeout", methods[i]);
		CHECK(api_should_retry(methods[i], 0, CURLE_GOT_NOTHING), "%s empty reply", methods[i]);
	}
}

static void test_should_retry_never_post_or_patch(void)
{
	CHECK(!api_should_retry("POST", 503, 0), "POST 503 retried");
	CHECK(!api_should_retry("POST", 429, 0), "POST 429 retried");
	CHECK(!api_should_retry("POST", 0, CURLE_COULDNT_CONNECT), "POST refused retried");
	CHECK(!api_should_retry("PATCH", 503, 0), "PATCH retried");
}

static void test_should_not_retry_success_client_errors_or_permanent_5xx(void)
{
	long no[] = {200, 204, 304, 400, 401, 403, 404, 409, 501, 505};
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		CHECK(!api_should_retry("GET", no[i], 0), "GET %ld retried", no[i]);
	CHECK(!api_should_retry("GET", 0, CURLE_URL_MALFORMAT), "malformed URL retried");
	CHECK(!api_should_retry("GET", 0, CURLE_OK), "nothing-failed retried");
}

static void test_retry_delay_doubles_per_attempt_within_equal_jitter_bounds(void)
{
	for (uint32_t seed = 0; seed < 2000; seed += 7) {
		for (int attempt = 0; attempt < 8; attempt++) {
			long step = (long)API_RETRY_BASE_MS << attempt;
			if (step > API_RETRY_MAX_MS)
				step = API_RETRY_MAX_MS;
			long d = api_retry_delay_ms(attempt, -1, seed);
			CHECK(d >= step / 2 && d < step, "attempt %d seed %u: %ld not in [%ld, %ld)", attempt, seed, d,
			      step / 2, step);
		}
	}
	/* Large attempts saturate at the cap instead of overflowing. */
	long d = api_retry_delay_ms(1000, -1, 1);
	CHECK(d >= API_RETRY_MAX_MS / 2 && d < API_RETRY_MAX_MS, "attempt 1000 gave %ld", d);
}

static void test_retry_delay_is_deterministic_per_seed_and_spread_across_seeds(void)
{
	CHECK_INT(api_retry_delay_ms(2, -1, 12345), api_retry_delay_ms(2, -1, 12345));
	long min = 1L << 30, max = -1;
	for (uint32_t seed = 0; seed < 1000; seed++) {
		long d = api_retry_delay_ms(3, -1, seed);
		if (d < min)
			min = d;
		if (d > max)
			max = d;
	}
	/* Attempt 3 spans [1000, 2000): a jitter that barely varies would not spread clients. */
	CHECK(max - min > 800, "jitter spread only %ld ms (%ld..%ld)", max - min, min, max);
}

static void test_retry_after_overrides_backoff_and_too_long_means_give_up(void)
{
	CHECK_INT(api_retry_delay_ms(0, 2, 99), 2000);
	CHECK_INT(api_retry_delay_ms(5, 0, 99), 0);
	CHECK_INT(api_retry_delay_ms(0, API_RETRY_AFTER_MAX_S, 99), API_RETRY_AFTER_MAX_S * 1000L);
	CHECK_INT(api_retry_delay_ms(0, API_RETRY_AFTER_MAX_S + 1, 99), -1);
}

static void test_parse_retry_after_accepts_seconds_and_http_date(void)
{
	CHECK_INT(api_parse_retry_after("7", 0), 7);
	CHECK_INT(api_parse_retry_after(" 12 ", 0), 12);
	CHECK_INT(api_parse_retry_after("abc", 0), -1);
	CHECK_INT(api_parse_retry_after("5x", 0), -1);
	/* Sun, 06 Nov 1994 08:49:37 GMT is 784111777. */
	CHECK_INT(api_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111777LL - 30), 30);
	CHECK_INT(api_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111777LL + 30), 0);
}

/* ---- token response ---- */

static void test_parse_token_response_fills_all_fields(void)
{
	struct api_token t;
	char err[128] = "";
	int rc = api_parse_token("{\"access_token\":\"eyJ.a.b\",\"token_type\":\"Bearer\",\"expires_in\":3600,"
				 "\"refresh_token\":\"opaque\",\"scope\":\"streaming user-read\"}",
				 1000, &t, err, sizeof(err));
	CHECK_INT(rc, 0);
	CHECK_STR(t.access_token, "eyJ.a.b");
	CHECK_STR(t.refresh_token, "opaque");
	CHECK_STR(t.scope, "streaming user-read");
	CHECK_INT(t.expires_at, 4600);
	api_token_free(&t);
	rc = api_parse_token("{\"access_token\":\"x\",\"token_type\":\"bearer\"}", 10, &t, err, sizeof(err));
	CHECK_INT(rc, 0);
	CHECK(t.refresh_token == NULL, "refresh token should be absent");
	CHECK_INT(t.expires_at, 10 + 3600);
	api_token_free(&t);
}

static void test_parse_token_rejects_malformed_or_incomplete_responses(void)
{
	const char *bad[] = {"", "{", "[]", "{\"token_type\":\"Bearer\"}", "{\"access_token\":\"\"}",
			     "{\"access_token\":7}", "{\"access_token\":\"x\",\"token_type\":\"mac\"}",
			     "{\"access_token\":\"x\",\"expires_in\":\"soon\"}", "{\"access_token\":\"x\",\"expires_in\":-5}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct api_token t;
		char err[128] = "";
		int rc = api_parse_token(bad[i], 0, &t, err, sizeof(err));
		CHECK(rc == -EPROTO && err[0], "case %zu (%s): rc %d err \"%s\"", i, bad[i], rc, err);
		api_token_free(&t);
	}
}

static void test_error_message_reads_both_error_shapes(void)
{
	char m[64];
	api_error_message("{\"error\":{\"status\":404,\"message\":\"non existing id\"}}", m, sizeof(m));
	CHECK_STR(m, "non existing id");
	api_error_message("{\"error\":\"invalid_grant\",\"error_description\":\"Invalid credentials\"}", m, sizeof(m));
	CHECK_STR(m, "Invalid credentials");
	api_error_message("{\"error\":\"invalid_grant\"}", m, sizeof(m));
	CHECK_STR(m, "invalid_grant");
	api_error_message("<html>502</html>", m, sizeof(m));
	CHECK_STR(m, "");
	api_error_message(NULL, m, sizeof(m));
	CHECK_STR(m, "");
}

/* ---- cards ---- */

static void test_duration_renders_m_ss_truncating_and_h_mm_ss_from_an_hour(void)
{
	struct {
		long long ms;
		const char *want;
	} cases[] = {{0, "0:00"}, {999, "0:00"}, {1000, "0:01"}, {59999, "0:59"}, {60000, "1:00"},
		     {225999, "3:45"}, {3599999, "59:59"}, {3600000, "1:00:00"}, {3723000, "1:02:03"}, {-5, "0:00"}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b = BUF_INIT;
		card_duration(&b, cases[i].ms);
		CHECK_STR(b.data, cases[i].want);
		buf_free(&b);
	}
}

static void test_track_card_shows_name_artists_album_duration_explicit_playable(void)
{
	const char *j = "{\"name\":\"Song\",\"type\":\"track\",\"duration_ms\":225500,\"explicit\":true,"
			"\"is_playable\":false,\"restrictions\":{\"reason\":\"market\"},\"track_number\":3,"
			"\"artists\":[{\"name\":\"A\"},{\"name\":\"B\"}],"
			"\"album\":{\"name\":\"LP\",\"release_date\":\"2019-04-01\"},\"uri\":\"encore:track:x\"}";
	char err[64];
	yajl_val v = json_parse(j, err, sizeof(err));
	struct buf b = BUF_INIT;
	CHECK_INT(card_render(&b, "track", v), 0);
	const char *want = "Song\n"
			   "  artists    A, B\n"
			   "  album      LP (2019)\n"
			   "  track      3\n"
			   "  duration   3:45\n"
			   "  explicit   yes\n"
			   "  playable   no\n"
			   "  restricted market\n"
			   "  uri        encore:track:x\n";
	CHECK_STR(b.data, want);
	buf_reset(&b);
	CHECK_INT(card_render(&b, "playlist", v), -EINVAL);
	buf_free(&b);
	yajl_tree_free(v);
}

static void test_album_card_lists_tracks_and_total_duration(void)
{
	const char *j = "{\"name\":\"LP\",\"album_type\":\"album\",\"total_tracks\":2,\"artists\":[{\"name\":\"A\"}],"
			"\"tracks\":{\"items\":[{\"name\":\"One\",\"track_number\":1,\"duration_ms\":61000},"
			"{\"name\":\"Two\",\"track_number\":2,\"duration_ms\":120000,\"explicit\":true}]}}";
	char err[64];
	yajl_val v = json_parse(j, err, sizeof(err));
	struct buf b = BUF_INIT;
	CHECK_INT(card_render(&b, "album", v), 0);
	CHECK(b.data && strstr(b.data, "   1. One  1:01\n"), "got:\n%s", b.data);
	CHECK(b.data && strstr(b.data, "   2. Two [E]  2:00\n"), "got:\n%s", b.data);
	CHECK(b.data && strstr(b.data, "  total 3:01\n"), "got:\n%s", b.data);
	buf_free(&b);
	yajl_tree_free(v);
}

int main(void)
{
	RUN(test_paths_default_to_home_dotdirs_when_xdg_unset);
	RUN(test_paths_xdg_vars_used_when_set);
	RUN(test_paths_encore_overrides_beat_xdg);
	RUN(test_paths_relative_or_empty_xdg_value_is_ignored);
	RUN(test_paths_ensure_creates_nested_dirs_with_0700);
	RUN(test_paths_runtime_dir_open_to_others_is_refused);
	RUN(test_session_round_trip_preserves_every_field);
	RUN(test_session_file_is_0600_even_under_permissive_umask);
	RUN(test_session_save_replaces_by_rename_not_in_place);
	RUN(test_session_load_missing_is_enoent_and_garbage_is_einval);
	RUN(test_form_encoding_escapes_reserved_bytes_and_space_as_plus);
	RUN(test_should_retry_idempotent_methods_on_5xx_429_and_connection_errors);
	RUN(test_should_retry_never_post_or_patch);
	RUN(test_should_not_retry_success_client_errors_or_permanent_5xx);
	RUN(test_retry_delay_doubles_per_attempt_within_equal_jitter_bounds);
	RUN(test_retry_delay_is_deterministic_per_seed_and_spread_across_seeds);
	RUN(test_retry_after_overrides_backoff_and_too_long_means_give_up);
	RUN(test_parse_retry_after_accepts_seconds_and_http_date);
	RUN(test_parse_token_response_fills_all_fields);
	RUN(test_parse_token_rejects_malformed_or_incomplete_responses);
	RUN(test_error_message_reads_both_error_shapes);
	RUN(test_duration_renders_m_ss_truncating_and_h_mm_ss_from_an_hour);
	RUN(test_track_card_shows_name_artists_album_duration_explicit_playable);
	RUN(test_album_card_lists_tracks_and_total_duration);
	return TAP_DONE();
}
