/* cmd_search: `encore search QUERY`, ranked results grouped by type, one line per item
 * with its URI so scripts can pick one; --json prints the server's answer as received. */
#include "api.h"
#include "cli.h"
#include "json.h"
#include "urlenc.h"
#include "xmem.h"
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TYPES "track,artist,album,playlist,show,episode"

static void usage(void)
{
	fprintf(stderr, "usage: encore search QUERY... [--type track,artist,album,playlist,show,episode] [--limit N] [--json]\n");
}

/* The first element's "name" of an array of objects (artists), or NULL. */
static const char *first_name(yajl_val arr)
{
	if (!YAJL_IS_ARRAY(arr) || arr->u.array.len == 0)
		return NULL;
	return json_get_str(arr->u.array.values[0], "name");
}

/* One result line: "  N. title — artist — album  URI"; parts that do not apply are left out. */
static void print_item(int n, const char *key, yajl_val o)
{
	const char *name = json_get_str(o, "name");
	const char *uri = json_get_str(o, "uri");
	const char *parts[3] = {name ? name : "?", NULL, NULL};
	if (strcmp(key, "tracks") == 0) {
		parts[1] = first_name(json_get(o, "artists"));
		parts[2] = json_get_str(json_get(o, "album"), "name");
	} else if (strcmp(key, "albums") == 0) {
		parts[1] = first_name(json_get(o, "artists"));
	} else if (strcmp(key, "shows") == 0) {
		parts[1] = json_get_str(o, "publisher");
	} else if (strcmp(key, "playlists") == 0) {
		parts[1] = json_get_str(json_get(o, "owner"), "display_name");
	} else if (strcmp(key, "episodes") == 0) {
		parts[1] = json_get_str(o, "release_date");
	}
	printf("%3d. %s", n, parts[0]);
	for (int i = 1; i < 3; i++)
		if (parts[i] && *parts[i])
			printf(" \u2014 %s", parts[i]);
	printf("  %s\n", uri ? uri : "");
}

/* Prints the groups of a search answer; returns the number of items, or -1 if malformed. */
static int print_results(const char *json)
{
	static const struct {
		const char *key, *title;
	} groups[] = {
		{"tracks", "Tracks"}, {"artists", "Artists"}, {"albums", "Albums"},
		{"playlists", "Playlists"}, {"shows", "Shows"}, {"episodes", "Episodes"},
	};
	char err[128];
	yajl_val root = json_parse(json ? json : "", err, sizeof(err));
	if (!YAJL_IS_OBJECT(root)) {
		yajl_tree_free(root);
		return -1;
	}
	int total = 0;
	for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
		yajl_val page = json_get(root, groups[g].key);
		yajl_val items = json_get(page, "items");
		if (!YAJL_IS_ARRAY(items) || items->u.array.len == 0)
			continue;
		long long t = 0;
		json_get_int(page, "total", &t);
		printf("%s%s (%lld)\n", total ? "\n" : "", groups[g].title, t);
		for (size_t i = 0; i < items->u.array.len; i++)
			print_item((int)i + 1, groups[g].key, items->u.array.values[i]);
		total += (int)items->u.array.len;
	}
	yajl_tree_free(root);
	return total;
}

int cmd_search(struct cli_ctx *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"type", required_argument, 0, 't'},
		{"limit", required_argument, 0, 'l'},
		{"json", no_argument, 0, 'j'},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	const char *types = DEFAULT_TYPES;
	long limit = 10;
	bool json = false;
	int opt;
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 't': types = optarg; break;
		case 'l': {
			char *end;
			limit = strtol(optarg, &end, 10);
			if (*end || limit < 1 || limit > 50) {
				cli_error(c, "search: --limit wants a number from 1 to 50");
				usage();
				return EXIT_USAGE;
			}
			break;
		}
		case 'j': json = true; break;
		case 'h': usage(); return EXIT_OK;
		default:
			cli_error(c, "search: unknown option '%s'", argv[optind - 1]);
			usage();
			return EXIT_USAGE;
		}
	}
	struct buf q = BUF_INIT;
	for (int i = optind; i < argc; i++) {
		if (q.len)
			buf_putc(&q, ' ');
		buf_puts(&q, argv[i]);
	}
	if (!q.len) {
		cli_error(c, "search: missing QUERY");
		usage();
		buf_free(&q);
		return EXIT_USAGE;
	}
	struct session *s;
	struct api *api;
	int code = cli_open_session(c, &s, &api);
	if (code != EXIT_OK) {
		buf_free(&q);
		return code;
	}
	struct buf path = BUF_INIT;
	buf_puts(&path, "/v1/search?q=");
	url_encode(&path, q.data);
	buf_puts(&path, "&type=");
	url_encode(&path, types);
	buf_printf(&path, "&limit=%ld", limit);
	struct api_response r;
	int rc = api_get(api, path.data, &r);
	code = cli_check_response(c, api, rc, &r, NULL);
	if (code == EXIT_OK) {
		if (json) {
			cli_print_raw(&r.body);
		} else {
			int n = print_results(r.body.data);
			if (n < 0) {
				cli_error(c, "server sent a malformed search answer");
				code = EXIT_ERR;
			} else if (n == 0) {
				printf("No results for '%s'.\n", q.data);
			}
		}
	}
	api_response_free(&r);
	buf_free(&path);
	buf_free(&q);
	api_free(api);
	session_free(s);
	return code;
}
