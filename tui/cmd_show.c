/* cmd_show: `encore show URI`, a card for a track, album or artist. */
#include "card.h"
#include "cli.h"
#include "id.h"
#include "json.h"
#include "xmem.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_show(struct cli_ctx *c, int argc, char **argv)
{
	bool json;
	const char *uri = NULL;
	int npos = cli_parse_json_flag(c, argc, argv, &json, &uri, 1);
	if (npos < 0)
		goto usage;
	if (npos == 0) {
		cli_error(c, "show: missing URI");
		goto usage;
	}
	char type[16], id[ID_LEN + 1];
	if (!uri_parse(uri, type, sizeof(type), id)) {
		cli_error(c, "show: '%s' is not an encore URI (encore:TYPE:ID with a 22-character id)", uri);
		goto usage;
	}
	if (strcmp(type, "track") != 0 && strcmp(type, "album") != 0 && strcmp(type, "artist") != 0) {
		cli_error(c, "show: cannot show a %s; only tracks, albums and artists", type);
		goto usage;
	}

	struct session *s;
	struct api *api;
	int code = cli_open_session(c, &s, &api);
	if (code != EXIT_OK)
		return code;
	char *path = xasprintf("/v1/%ss/%s", type, id);
	struct api_response r;
	int rc = api_get(api, path, &r);
	free(path);
	code = cli_check_response(c, api, rc, &r, uri);
	if (code != EXIT_OK)
		goto out;
	if (json) {
		cli_print_raw(&r.body);
		goto out;
	}
	char perr[128];
	yajl_val obj = json_parse(r.body.data ? r.body.data : "", perr, sizeof(perr));
	struct buf card = BUF_INIT;
	if (card_render(&card, type, obj) < 0) {
		cli_error(c, "server sent a malformed %s object", type);
		code = EXIT_ERR;
	} else {
		fputs(card.data, stdout);
	}
	buf_free(&card);
	yajl_tree_free(obj);
out:
	api_response_free(&r);
	api_free(api);
	session_free(s);
	return code;
usage:
	fprintf(stderr, "usage: encore show URI [--json]\n");
	return EXIT_USAGE;
}
