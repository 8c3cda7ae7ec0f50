/* Tests for core/config: the settings file parser. */
#include "config.h"
#include "tap.h"
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void test_settings_parse_with_and_without_equals_and_comments(void)
{
	struct config *c = config_new();
	int bad = config_parse(c, "/home/u/.config/encore/config",
			       "# my settings\n"
			       "server = http://example.org:8080\n"
			       "quality 160   # a ceiling\n"
			       "normalize off\n"
			       "output \"null:realtime\"\n"
			       "volume=40\n"
			       "mouse no\n");
	CHECK_INT(bad, 0);
	CHECK_STR(c->server, "http://example.org:8080");
	CHECK_INT(c->quality, 160);
	CHECK_INT(c->normalize, 0);
	CHECK_STR(c->output, "null:realtime");
	CHECK_INT(c->volume, 40);
	CHECK_INT(c->mouse, 0);
	config_free(c);
}

static void test_offline_space_settings_parse_units_and_refuse_bad_values(void)
{
	struct config *c = config_new();
	CHECK(c->offline_quota == -1 && c->offline_min_free_mb == -1, "unset: quota %lld min_free %lld", c->offline_quota, c->offline_min_free_mb);
	int bad = config_parse(c, "config", "offline_quota 2M\noffline_min_free_mb 500\n");
	CHECK_INT(bad, 0);
	CHECK(c->offline_quota == 2097152, "2M = %lld", c->offline_quota);
	CHECK(c->offline_min_free_mb == 500, "min free %lld", c->offline_min_free_mb);
	bad = config_parse(c, "config", "offline_quota none\noffline_quota 12X\noffline_min_free_mb -1\noffline_min_free_mb lots\n");
	CHECK_INT(bad, 3);
	CHECK(c->offline_quota == 0, "none = 0, the bad line keeps it: %lld", c->offline_quota);
	CHECK(c->offline_min_free_mb == 500, "bad values keep 500: %lld", c->offline_min_free_mb);
	CHECK_STR(c->errors[0], "config:2: offline_quota wants bytes (with an optional K, M or G) or none, not '12X'");
	config_free(c);
}

static void test_defaults_without_a_file(void)
{
	struct config *c = config_new();
	CHECK_INT(config_load(c, "/nonexistent/encore/config"), 0);
	CHECK_INT(c->nerrors, 0);
	CHECK(c->server == NULL && c->output == NULL, "server %p output %p", (void *)c->server, (void *)c->output);
	CHECK_INT(c->quality, 0);
	CHECK_INT(c->normalize, 1);
	CHECK_INT(c->volume, -1);
	CHECK_INT(c->mouse, 1);
	config_free(c);
}

static void test_bad_line_is_named_by_file_and_line_and_the_rest_loads(void)
{
	struct config *c = config_new();
	int bad = config_parse(c, "/x/config", "quality 96\n\nvolme 30\noutput null\n");
	CHECK_INT(bad, 1);
	CHECK_INT(c->nerrors, 1);
	if (c->nerrors == 1)
		CHECK_STR(c->errors[0], "config:3: unknown setting 'volme'");
	CHECK_INT(c->quality, 96);
	CHECK_STR(c->output, "null");
	config_free(c);
}

static void test_bad_values_are_reported_and_keep_the_previous_value(void)
{
	struct config *c = config_new();
	int bad = config_parse(c, "config",
			       "quality 128\nnormalize maybe\nvolume 101\nserver ftp://x\nvolume\n"
			       "theme.accent purple\ntheme.sidebar red\nbind j\n");
	CHECK_INT(bad, 8);
	static const char *const want[] = {
		"config:1: quality wants auto, 24, 96, 160 or 320, not '128'",
		"config:2: normalize wants on or off, not 'maybe'",
		"config:3: volume wants 0..100, not '101'",
		"config:4: server wants an http:// or https:// URL, not 'ftp://x'",
		"config:5: volume needs a value",
		"config:6: theme.accent: unknown colour 'purple'",
		"config:7: unknown theme element 'sidebar'",
		"config:8: bind wants KEY ACTION",
	};
	for (int i = 0; i < 8 && i < c->nerrors; i++)
		CHECK_STR(c->errors[i], want[i]);
	CHECK_INT(c->quality, 0);
	CHECK_INT(c->normalize, 1);
	CHECK_INT(c->volume, -1);
	CHECK(c->server == NULL, "server set to %s", c->server);
	config_free(c);
}

static void test_theme_colours_and_binds(void)
{
	struct config *c = config_new();
	int bad = config_parse(c, "config",
			       "theme.accent = brightmagenta\n"
			       "theme.selected black,yellow,bold\n"
			       "theme.dim 244\n"
			       "bind x play_next\n"
			       "bind C-n next\n");
	CHECK_INT(bad, 0);
	struct config_color a = c->theme[CONFIG_THEME_ACCENT], s = c->theme[CONFIG_THEME_SELECTED];
	CHECK(a.set && a.fg == 13 && a.bg == -1 && !a.bold, "accent %d/%d bold %d set %d", a.fg, a.bg, a.bold, a.set);
	CHECK(s.set && s.fg == 0 && s.bg == 3 && s.bold, "selected %d/%d bold %d", s.fg, s.bg, s.bold);
	CHECK_INT(c->theme[CONFIG_THEME_DIM].fg, 244);
	CHECK_INT(c->theme[CONFIG_THEME_NORMAL].set, 0);
	CHECK_INT(c->nbinds, 2);
	if (c->nbinds == 2) {
		CHECK_STR(c->binds[0].key, "x");
		CHECK_STR(c->binds[0].action, "play_next");
		CHECK_INT(c->binds[0].line, 4);
		CHECK_STR(c->binds[1].key, "C-n");
		CHECK_INT(c->binds[1].line, 5);
	}
	config_free(c);
}

static void test_colour_names(void)
{
	CHECK_INT(config_parse_color("default"), -1);
	CHECK_INT(config_parse_color("red"), 1);
	CHECK_INT(config_parse_color("brightwhite"), 15);
	CHECK_INT(config_parse_color("255"), 255);
	CHECK_INT(config_parse_color("256"), -2);
	CHECK_INT(config_parse_color("reddish"), -2);
	CHECK_INT(config_parse_color(""), -2);
	CHECK_STR(config_theme_name(CONFIG_THEME_PROGRESS), "progress");
}

static void test_load_reads_the_file_and_names_it(void)
{
	char dir[256];
	CHECK(tap_mkdtemp(dir, sizeof(dir), "encore-config") != NULL, "mkdtemp failed");
	char path[512];
	snprintf(path, sizeof(path), "%s/config", dir);
	FILE *f = fopen(path, "w");
	fputs("output null\r\nvolme 3\r\n", f); /* CRLF from a Windows editor */
	fclose(f);
	struct config *c = config_new();
	CHECK_INT(config_load(c, path), 1);
	CHECK_STR(c->output, "null");
	if (c->nerrors)
		CHECK_STR(c->errors[0], "config:2: unknown setting 'volme'");
	config_free(c);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	RUN(test_settings_parse_with_and_without_equals_and_comments);
	RUN(test_defaults_without_a_file);
	RUN(test_offline_space_settings_parse_units_and_refuse_bad_values);
	RUN(test_bad_line_is_named_by_file_and_line_and_the_rest_loads);
	RUN(test_bad_values_are_reported_and_keep_the_previous_value);
	RUN(test_theme_colours_and_binds);
	RUN(test_colour_names);
	RUN(test_load_reads_the_file_and_names_it);
	return TAP_DONE();
}
