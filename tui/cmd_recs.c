/* cmd_recs: `encore recs discover|daily|radio URI|release [--json]`: the recommendation
 * shelves, one line per track with its URI so scripts can queue them; --json prints the
 * server's answer as received. */
#include "api.h"
#include "cli.h"
#include "json.h"
#include "urlenc.h"
#include "xmem.h"
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void)
{
	fprintf(stderr, "usage: encore recs discover|daily|radio URI|release [--json]\n");
}

static void print_track(int n, yajl_val t)
{
	const char *name = json_get_str(t, "name");
	yajl_val arts = json_get(t, "artists");
	const char *artist = YAJL_IS_ARRAY(arts) && arts->u.array.len ? json_get_str(arts->u.array.values[0], "name") : NULL;
	const char *uri = json_get_str(t, "uri");
	printf("%3d. %s \u2014 %s  %s\n", n, name ? name : "?", artist ? artist : "?", uri ? uri : "");
}

/* Prints an array of track objects, or of {"track": T} wrappers. Returns the count. */
static int print_tracks(yajl_val arr)
{
	int n = 0;
	for (size_t i = 0; YAJL_IS_ARRAY(arr) && i < arr->u.array.len; i++) {
		yajl_val t = arr->u.array.values[i];
		yajl_val inner = json_get(t, "track");
		if (inner)
			t = inner;
		if (YAJL_IS_OBJECT(t))
			print_track(++n, t);
	}
	return n;
}

/* Text rendering of one answer; false when it is malformed. */
static bool print_answer(const char *what, const char *json)
{
	char err[128];
	yajl_val root = json_parse(json ? json : "", err, sizeof(err));
	if (!YAJL_IS_OBJECT(root)) {
		yajl_tree_free(root);
		return false;
	}
	const char *src = json_get_str(root, "source");
	if (strcmp(what, "daily") == 0) {
		yajl_val mixes = json_get(root, "mixes");
		for (size_t m = 0; YAJL_IS_ARRAY(mixes) && m < mixes->u.array.len; m++) {
			yajl_val mix = mixes->u.array.values[m];
			const char *desc = json_get_str(mix, "description");
			printf("%s%s%s%s\n", m ? "\n" : "", json_get_str(mix, "name") ? json_get_str(mix, "name") : "Mix",
			       desc ? " \u2014 " : "", desc ? desc : "");
			print_tracks(json_get(json_get(mix, "tracks"), "items"));
		}
	} else if (strcmp(what, "radio") == 0) {
		printf("Radio from %s\n", json_get_str(root, "seed") ? json_get_str(root, "seed") : "?");
		print_tracks(json_get(root, "tracks"));
	} else {
		const char *name = json_get_str(root, "name");
		printf("%s\n", name ? name : what);
		print_tracks(json_get(json_get(root, "tracks"), "items"));
	}
	if (src && strcmp(src, "personal") != 0)
		printf("(from %s recommendations: no personal model for you yet)\n", src);
	yajl_tree_free(root);
	return true;
}

int cmd_recs(struct cli_ctx *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, 0, 'j'},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	bool json = false;
	int opt;
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'j': json = true; break;
		case 'h': usage(); return EXIT_OK;
		default:
			cli_error(c, "recs: unknown option '%s'", argv[optind - 1]);
			usage();
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		cli_error(c, "recs: missing shelf (discover, daily, radio, release)");
		usage();
		return EXIT_USAGE;
	}
	const char *what = argv[optind];
	struct buf path = BUF_INIT;
	if (strcmp(what, "discover") == 0 && optind + 1 == argc) {
		buf_puts(&path, "/v1/me/discover-weekly");
	} else if (strcmp(what, "daily") == 0 && optind + 1 == argc) {
		buf_puts(&path, "/v1/me/daily-mixes");
	} else if (strcmp(what, "release") == 0 && optind + 1 == argc) {
		buf_puts(&path, "/v1/me/release-radar");
	} else if (strcmp(what, "radio") == 0 && optind + 2 == argc) {
		buf_puts(&path, "/v1/radio?seed=");
		url_encode(&path, argv[optind + 1]);
	} else {
		cli_error(c, "recs: expected discover, daily, release or radio URI");
		usage();
		buf_free(&path);
		return EXIT_USAGE;
	}
	struct session *s;
	struct api *api;
	int code = cli_open_session(c, &s, &api);
	if (code != EXIT_OK) {
		buf_free(&path);
		return code;
	}
	struct api_response r;
	int rc = api_get(api, path.data, &r);
	code = cli_check_response(c, api, rc, &r, NULL);
	if (code == EXIT_OK) {
		if (json) {
			cli_print_raw(&r.body);
		} else if (!print_answer(what, r.body.data)) {
			cli_error(c, "server sent a malformed recommendations answer");
			code = EXIT_ERR;
		}
	}
	api_response_free(&r);
	buf_free(&path);
	api_free(api);
	session_free(s);
	return code;
}
