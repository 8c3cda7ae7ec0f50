/* Tests for the TUI's pure parts: display width, keymap, Web API JSON to rows. */
#include "items.h"
#include "keymap.h"
#include "tap.h"
#include "textw.h"
#include <curses.h>
#include <errno.h>
#include <locale.h>
#include <string.h>

static void test_width_counts_cjk_as_two_and_accents_as_one(void)
{
	CHECK_INT(textw_width("abc"), 3);
	CHECK_INT(textw_width("Beyoncé"), 7);               /* precomposed é */
	CHECK_INT(textw_width("Beyonce\xcc\x81"), 7);       /* e + combining acute */
	CHECK_INT(textw_width("坂本龍一"), 8);
	CHECK_INT(textw_width("Sigur Rós — Ágætis byrjun"), 25);
	CHECK_INT(textw_width(""), 0);
}

static void test_fit_pads_to_exact_columns(void)
{
	char out[64];
	CHECK_INT(textw_fit("ab", 5, true, out, sizeof(out)), 5);
	CHECK_STR(out, "ab   ");
	CHECK_INT(textw_fit("東京", 6, true, out, sizeof(out)), 6);
	CHECK_STR(out, "東京  ");
	CHECK_INT(textw_fit("ab", 5, false, out, sizeof(out)), 2);
	CHECK_STR(out, "ab");
}

static void test_fit_truncates_with_ellipsis_at_character_boundaries(void)
{
	char out[64];
	CHECK_INT(textw_fit("Hello world", 8, true, out, sizeof(out)), 8);
	CHECK_STR(out, "Hello w…");
	/* 4 columns for 坂本龍一 (8): two ideographs would need 4 + 1 for the ellipsis, so
	 * one ideograph, the ellipsis, and a pad space fill exactly 4. */
	CHECK_INT(textw_fit("坂本龍一", 4, true, out, sizeof(out)), 4);
	CHECK_STR(out, "坂… ");
	CHECK_INT(textw_fit("坂本龍一", 5, false, out, sizeof(out)), 5);
	CHECK_STR(out, "坂本…");
	/* A combining accent stays with its letter. */
	CHECK_INT(textw_fit("Cafe\xcc\x81s", 5, true, out, sizeof(out)), 5);
	CHECK_STR(out, "Cafe\xcc\x81s");
	CHECK_INT(textw_fit("Cafe\xcc\x81s!", 5, true, out, sizeof(out)), 5);
	CHECK_STR(out, "Cafe\xcc\x81…");
	CHECK_INT(textw_fit("abc", 0, true, out, sizeof(out)), 0);
	CHECK_STR(out, "");
	CHECK_INT(textw_fit("abc", 1, true, out, sizeof(out)), 1);
	CHECK_STR(out, "…");
}

static void test_control_and_invalid_bytes_become_question_marks(void)
{
	char out[64];
	/* An escape sequence in a track name must not reach the terminal. */
	textw_fit("a\x1b[2Jb", 10, false, out, sizeof(out));
	CHECK_STR(out, "a?[2Jb");
	textw_fit("x\xff\xc3y", 10, false, out, sizeof(out));
	CHECK_STR(out, "x??y");
	CHECK_INT(textw_width("\xe6\x9d"), 2); /* truncated sequence: two bad bytes */
}

static void test_fit_never_overflows_a_small_buffer(void)
{
	char out[6];
	textw_fit("東京東京東京", 20, true, out, sizeof(out));
	CHECK_STR(out, "東  ");  /* the next ideograph would not fit in 6 bytes; pad spaces do */
}

static void test_pop_char_and_prefix_bytes(void)
{
	char s[32] = "añ東";
	textw_pop_char(s);
	CHECK_STR(s, "añ");
	textw_pop_char(s);
	CHECK_STR(s, "a");
	textw_pop_char(s);
	textw_pop_char(s);
	CHECK_STR(s, "");
	CHECK_INT(textw_prefix_bytes("東京x", 3), 3);
	CHECK_INT(textw_prefix_bytes("東京x", 4), 6);
}

static void test_default_keys(void)
{
	struct keymap *km = keymap_new();
	CHECK_INT(keymap_lookup(km, 'j'), ACT_DOWN);
	CHECK_INT(keymap_lookup(km, KEY_DOWN), ACT_DOWN);
	CHECK_INT(keymap_lookup(km, ' '), ACT_TOGGLE);
	CHECK_INT(keymap_lookup(km, '\r'), ACT_PLAY);
	CHECK_INT(keymap_lookup(km, KEY_RIGHT), ACT_SEEK_FWD);
	CHECK_INT(keymap_lookup(km, 'A'), ACT_PLAY_NEXT);
	CHECK_INT(keymap_lookup(km, 'J'), ACT_MOVE_DOWN);
	CHECK_INT(keymap_lookup(km, 'Z'), ACT_NONE);
	char keys[64];
	keymap_keys_for(km, ACT_DOWN, keys, sizeof(keys));
	CHECK_STR(keys, "j, Down");
	keymap_keys_for(km, ACT_PLAY, keys, sizeof(keys));
	CHECK_STR(keys, "Enter");
	keymap_free(km);
}

static void test_bind_rebinds_and_unbinds_and_rejects_unknowns(void)
{
	struct keymap *km = keymap_new();
	char why[64] = "";
	CHECK_INT(keymap_bind(km, "x", "play_next", why, sizeof(why)), 0);
	CHECK_INT(keymap_lookup(km, 'x'), ACT_PLAY_NEXT);
	CHECK_INT(keymap_bind(km, "j", "up", why, sizeof(why)), 0);
	CHECK_INT(keymap_lookup(km, 'j'), ACT_UP);
	CHECK_INT(keymap_bind(km, "C-n", "next", why, sizeof(why)), 0);
	CHECK_INT(keymap_lookup(km, 14), ACT_NEXT);
	CHECK_INT(keymap_bind(km, "space", "none", why, sizeof(why)), 0);
	CHECK_INT(keymap_lookup(km, ' '), ACT_NONE);
	CHECK_INT(keymap_bind(km, "F5", "view_queue", why, sizeof(why)), 0);
	CHECK_INT(keymap_lookup(km, KEY_F(5)), ACT_VIEW_QUEUE);
	CHECK_INT(keymap_bind(km, "ö", "quit", why, sizeof(why)), 0);
	CHECK_INT(keymap_lookup(km, 0xf6), ACT_QUIT);
	CHECK_INT(keymap_bind(km, "x", "plya", why, sizeof(why)), -EINVAL);
	CHECK_STR(why, "unknown action 'plya'");
	CHECK_INT(keymap_bind(km, "C-", "play", why, sizeof(why)), -EINVAL);
	CHECK_STR(why, "unknown key 'C-'");
	keymap_free(km);
}

static void test_key_names_round_trip(void)
{
	static const char *const names[] = {"j", "Space", "Enter", "Tab", "Up", "PgDn", "C-l", "F5", "Delete", "é"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char back[32];
		int k = keymap_parse_key(names[i]);
		keymap_key_name(k, back, sizeof(back));
		CHECK(k >= 0 && strcmp(back, names[i]) == 0, "%s parsed to %d, named back %s", names[i], k, back);
	}
	int found;
	for (int a = 0; a < ACT_COUNT; a++) {
		enum keymap_action b = keymap_action_by_name(keymap_action_name((enum keymap_action)a), &found);
		CHECK(found && (int)b == a, "action %d round-trips to %d", a, (int)b);
		CHECK(keymap_action_help((enum keymap_action)a)[0] != 0, "action %d has no help", a);
	}
}

static const char search_json[] =
	"{\"tracks\":{\"items\":["
	"{\"uri\":\"encore:track:AAAAAAAAAAAAAAAAAAAAAA\",\"name\":\"Northern Lights\",\"duration_ms\":215000,"
	" \"artists\":[{\"name\":\"Aurora\"},{\"name\":\"Björk\"}],\"album\":{\"name\":\"Polar\"}},"
	"{\"uri\":\"encore:track:BBBBBBBBBBBBBBBBBBBBBB\",\"name\":\"東京\",\"duration_ms\":1000,\"artists\":[],\"album\":{}}"
	"]},\"artists\":{\"items\":[{\"uri\":\"encore:artist:CCCCCCCCCCCCCCCCCCCCCC\",\"name\":\"Aurora\",\"genres\":[\"pop\",\"folk\"]}]},"
	"\"albums\":{\"items\":[]}}";

static void test_search_results_are_grouped_under_headers(void)
{
	struct items l = ITEMS_INIT;
	CHECK_INT(items_parse_search(&l, search_json), 5);
	CHECK_INT(l.n, 5);
	if (l.n == 5) {
		CHECK_INT(l.v[0].type, ITEM_HEADER);
		CHECK_STR(l.v[0].title, "Tracks");
		CHECK_INT(l.v[1].type, ITEM_TRACK);
		CHECK_STR(l.v[1].title, "Northern Lights");
		CHECK_STR(l.v[1].sub, "Aurora, Björk · Polar");
		CHECK_INT(l.v[1].duration_ms, 215000);
		CHECK_STR(l.v[2].uri, "encore:track:BBBBBBBBBBBBBBBBBBBBBB");
		CHECK_STR(l.v[2].sub, "");
		CHECK_STR(l.v[3].title, "Artists");
		CHECK_INT(l.v[4].type, ITEM_ARTIST);
		CHECK_STR(l.v[4].sub, "pop, folk");
		CHECK(!items_selectable(&l.v[0]) && items_selectable(&l.v[1]), "selectability");
	}
	CHECK_INT(items_parse_search(&l, "{\"tracks\":"), -EINVAL);
	CHECK_INT(items_parse_search(&l, "[]"), -EINVAL);
	items_free(&l);
}

static void test_suggestions_saved_and_track_lists(void)
{
	struct items l = ITEMS_INIT;
	CHECK_INT(items_parse_suggest(&l, "{\"suggestions\":[{\"type\":\"track\",\"uri\":\"encore:track:X\",\"text\":\"Northern Lights\"},"
					  "{\"type\":\"artist\",\"text\":\"Aurora\"}]}"), 2);
	if (l.n == 2) {
		CHECK_INT(l.v[0].type, ITEM_SUGGESTION);
		CHECK_STR(l.v[0].title, "Northern Lights");
		CHECK_STR(l.v[0].sub, "track");
		CHECK_STR(l.v[1].uri, "");
	}
	items_clear(&l);
	CHECK_INT(items_parse_saved(&l, "{\"items\":[{\"added_at\":\"x\",\"track\":{\"type\":\"track\",\"uri\":\"encore:track:T\",\"name\":\"Saved\"}}],\"total\":1}", "track"), 1);
	CHECK_INT(items_parse_saved(&l, "{\"artists\":{\"items\":[{\"type\":\"artist\",\"uri\":\"encore:artist:R\",\"name\":\"Followed\"}]}}", NULL), 1);
	CHECK_INT(items_parse_saved(&l, "{\"items\":[],\"total\":0}", "album"), 0);
	if (l.n == 2) {
		CHECK_INT(l.v[0].type, ITEM_TRACK);
		CHECK_INT(l.v[1].type, ITEM_ARTIST);
	}
	items_clear(&l);
	CHECK_INT(items_parse_tracks(&l, "{\"tracks\":[null,{\"uri\":\"encore:track:T\",\"name\":\"One\",\"duration_ms\":5}]}"), 1);
	CHECK_INT(items_parse_tracks(&l, "{\"error\":{}}"), -EINVAL);
	items_free(&l);
}

static void test_playlists_rows_name_owner_count_and_collaboration(void)
{
	struct items l = ITEMS_INIT;
	CHECK_INT(items_parse_playlists(&l, "{\"items\":[{\"uri\":\"encore:playlist:P\",\"name\":\"Road\","
					   "\"owner\":{\"id\":\"alice\",\"display_name\":\"Alice\"},\"tracks\":{\"total\":12},"
					   "\"collaborative\":true},{\"uri\":\"encore:playlist:Q\",\"name\":\"Solo\","
					   "\"owner\":{\"id\":\"bob\"},\"tracks\":{\"total\":1}},{\"name\":\"no uri\"}]}"), 2);
	if (l.n == 2) {
		CHECK_INT(l.v[0].type, ITEM_PLAYLIST);
		CHECK_STR(l.v[0].sub, "Alice · 12 tracks · collaborative");
		CHECK_STR(l.v[1].sub, "bob · 1 track");
	}
	CHECK_INT(items_parse_playlists(&l, "[1]"), -EINVAL);
	items_free(&l);
}

static void test_playlist_items_keep_positions_when_a_track_left_the_catalog(void)
{
	struct items l = ITEMS_INIT;
	/* Row i must be position i: edits name positions. */
	CHECK_INT(items_parse_playlist_items(&l, "{\"name\":\"P\",\"uri\":\"encore:playlist:P\",\"tracks\":{\"items\":["
						 "{\"track\":{\"uri\":\"encore:track:A\",\"name\":\"A\"}},{\"track\":null},"
						 "{\"track\":{\"uri\":\"encore:track:C\",\"name\":\"C\"}}]}}"), 3);
	if (l.n == 3) {
		CHECK_STR(l.v[0].uri, "encore:track:A");
		CHECK(!items_selectable(&l.v[1]), "the missing track is not selectable");
		CHECK_STR(l.v[2].uri, "encore:track:C");
	}
	items_free(&l);
}

static void test_playlist_info_lists_collaborators(void)
{
	struct playlist_info p;
	CHECK_INT(playlist_info_parse("{\"uri\":\"encore:playlist:P\",\"name\":\"Road\",\"owner\":{\"id\":\"alice\"},"
				      "\"snapshot_id\":\"S1\",\"collaborative\":true,\"collaborators\":[\"bob\",\"chen\"],"
				      "\"tracks\":{\"total\":3,\"items\":[]}}", &p), 0);
	CHECK_STR(p.owner, "alice");
	CHECK_STR(p.snapshot_id, "S1");
	CHECK_STR(p.collaborators, "bob, chen");
	CHECK(p.collaborative, "collaborative");
	CHECK_INT((int)p.total, 3);
	CHECK_INT(playlist_info_parse("{\"name\":\"no uri\"}", &p), -EINVAL);
	CHECK_INT(playlist_info_parse("not json", &p), -EINVAL);
}

static void test_devices_mark_the_active_one(void)
{
	struct items l = ITEMS_INIT;
	CHECK_INT(items_parse_devices(&l, "{\"devices\":[{\"id\":\"d1\",\"name\":\"Kitchen\",\"type\":\"speaker\","
					  "\"volume_percent\":40,\"is_active\":false},{\"id\":\"d2\",\"name\":\"Desk\","
					  "\"type\":\"computer\",\"volume_percent\":100,\"is_active\":true}]}"), 2);
	if (l.n == 2) {
		CHECK(!l.v[0].marked, "Kitchen not active");
		CHECK(l.v[1].marked, "Desk active");
		CHECK_STR(l.v[1].uri, "d2");
		CHECK_STR(l.v[0].sub, "speaker · vol 40%");
	}
	CHECK_INT(items_parse_devices(&l, "{}"), -EINVAL);
	items_free(&l);
}

static void test_shelves_from_playlist_likes_mixes_and_trending(void)
{
	struct shelves s = SHELVES_INIT;
	CHECK_INT(shelves_parse(&s, "{\"name\":\"Discover Weekly\",\"description\":\"new to you\",\"tracks\":{\"items\":["
				    "{\"track\":{\"uri\":\"encore:track:A\",\"name\":\"A\"}}]}}", "x"), 1);
	CHECK_INT(shelves_parse(&s, "{\"mixes\":[{\"name\":\"Daily Mix 1\",\"tracks\":{\"items\":[{\"track\":"
				    "{\"uri\":\"encore:track:B\",\"name\":\"B\"}}]}},{\"name\":\"Empty\",\"tracks\":{\"items\":[]}}]}",
				    "x"), 1);
	CHECK_INT(shelves_parse(&s, "{\"tracks\":{\"items\":[{\"plays\":3,\"track\":{\"uri\":\"encore:track:C\",\"name\":\"C\"}},"
				    "{\"plays\":1,\"track\":{\"uri\":\"encore:track:D\",\"name\":\"D\"}}]},\"window_ms\":1}", "Trending now"), 1);
	CHECK_INT(s.n, 3);
	if (s.n == 3) {
		CHECK_STR(s.v[0].title, "Discover Weekly");
		CHECK_STR(s.v[0].sub, "new to you");
		CHECK_STR(s.v[1].title, "Daily Mix 1");
		CHECK_STR(s.v[2].title, "Trending now");
		CHECK_INT(s.v[2].tracks.n, 2);
	}
	CHECK_INT(shelves_parse(&s, "{\"nothing\":1}", "x"), -EINVAL);
	shelves_free(&s);
}

static void test_view_keys_and_download_keys_are_bound(void)
{
	struct keymap *km = keymap_new();
	CHECK_INT(keymap_lookup(km, '5'), ACT_VIEW_HOME);
	CHECK_INT(keymap_lookup(km, '6'), ACT_VIEW_PLAYLISTS);
	CHECK_INT(keymap_lookup(km, '7'), ACT_VIEW_DEVICES);
	CHECK_INT(keymap_lookup(km, '8'), ACT_VIEW_DOWNLOADS);
	CHECK_INT(keymap_lookup(km, 'D'), ACT_DOWNLOAD);
	CHECK_INT(keymap_lookup(km, 'P'), ACT_ADD_TO_PLAYLIST);
	CHECK_INT(keymap_lookup(km, 27), ACT_BACK);
	CHECK_INT(keymap_lookup(km, KEY_BACKSPACE), ACT_BACK);
	char why[128];
	CHECK_INT(keymap_bind(km, "x", "add_to_playlist", why, sizeof(why)), 0);
	CHECK_INT(keymap_lookup(km, 'x'), ACT_ADD_TO_PLAYLIST);
	keymap_free(km);
}

int main(void)
{
	setlocale(LC_ALL, "C.UTF-8");
	RUN(test_width_counts_cjk_as_two_and_accents_as_one);
	RUN(test_fit_pads_to_exact_columns);
	RUN(test_fit_truncates_with_ellipsis_at_character_boundaries);
	RUN(test_control_and_invalid_bytes_become_question_marks);
	RUN(test_fit_never_overflows_a_small_buffer);
	RUN(test_pop_char_and_prefix_bytes);
	RUN(test_default_keys);
	RUN(test_bind_rebinds_and_unbinds_and_rejects_unknowns);
	RUN(test_key_names_round_trip);
	RUN(test_search_results_are_grouped_under_headers);
	RUN(test_suggestions_saved_and_track_lists);
	RUN(test_playlists_rows_name_owner_count_and_collaboration);
	RUN(test_playlist_items_keep_positions_when_a_track_left_the_catalog);
	RUN(test_playlist_info_lists_collaborators);
	RUN(test_devices_mark_the_active_one);
	RUN(test_shelves_from_playlist_likes_mixes_and_trending);
	RUN(test_view_keys_and_download_keys_are_bound);
	return TAP_DONE();
}
