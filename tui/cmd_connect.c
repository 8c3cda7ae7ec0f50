/* cmd_connect: `encore devices [--json]` lists the user's online Connect devices (the
 * active one marked), `encore transfer NAME|ID` moves playback to one of them. Both are
 * thin clients of the Web API player routes. */
#include "cli.h"
#include "json.h"
#include "xmem.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GET /v1/me/player/devices; EXIT_OK with the parsed body in *out (caller frees). */
static int fetch_devices(struct cli_ctx *c, struct api *api, struct buf *raw, yajl_val *out)
{
	struct api_response r;
	int rc = api_get(api, "/v1/me/player/devices", &r);
	int code = cli_check_response(c, api, rc, &r, NULL);
	if (code == EXIT_OK) {
		*out = json_parse(r.body.data ? r.body.data : "", NULL, 0);
		if (raw)
			buf_append(raw, r.body.data ? r.body.data : "", r.body.len);
		if (!*out || !YAJL_IS_ARRAY(json_get(*out, "devices"))) {
			cli_error(c, "unexpected answer from the server");
			yajl_tree_free(*out);
			*out = NULL;
			code = EXIT_ERR;
		}
	}
	api_response_free(&r);
	return code;
}

int cmd_devices(struct cli_ctx *c, int argc, char **argv)
{
	bool json = false;
	const char *pos[1];
	int npos = cli_parse_json_flag(c, argc, argv, &json, pos, 1);
	if (npos != 0) {
		fprintf(stderr, "usage: encore devices [--json]\n");
		return EXIT_USAGE;
	}
	struct session *s = NULL;
	struct api *api = NULL;
	int code = cli_open_session(c, &s, &api);
	if (code != EXIT_OK)
		return code;
	struct buf raw = BUF_INIT;
	yajl_val v = NULL;
	code = fetch_devices(c, api, &raw, &v);
	if (code == EXIT_OK) {
		if (json) {
			cli_print_raw(&raw);
		} else {
			yajl_val arr = json_get(v, "devices");
			if (arr->u.array.len == 0)
				printf("no devices online\n");
			for (size_t i = 0; i < arr->u.array.len; i++) {
				yajl_val d = arr->u.array.values[i];
				bool active = false;
				long long vol = 0;
				json_get_bool(d, "is_active", &active);
				json_get_int(d, "volume_percent", &vol);
				const char *name = json_get_str(d, "name"), *id = json_get_str(d, "id"), *type = json_get_str(d, "type");
				printf("%s %-24s %-10s vol %3lld  %s\n", active ? "*" : " ", name ? name : "?", type ? type : "?", vol,
				       id ? id : "?");
			}
		}
	}
	yajl_tree_free(v);
	buf_free(&raw);
	api_free(api);
	session_free(s);
	return code;
}

int cmd_transfer(struct cli_ctx *c, int argc, char **argv)
{
	bool json = false;
	const char *pos[1];
	int npos = cli_parse_json_flag(c, argc, argv, &json, pos, 1);
	if (npos != 1) {
		fprintf(stderr, "usage: encore transfer NAME|ID\n");
		return EXIT_USAGE;
	}
	struct session *s = NULL;
	struct api *api = NULL;
	int code = cli_open_session(c, &s, &api);
	if (code != EXIT_OK)
		return code;
	yajl_val v = NULL;
	code = fetch_devices(c, api, NULL, &v);
	if (code != EXIT_OK)
		goto out;
	/* An exact id wins; else a unique name (case-insensitive). */
	yajl_val arr = json_get(v, "devices");
	const char *id = NULL;
	int by_name = 0;
	for (size_t i = 0; i < arr->u.array.len && !id; i++) {
		const char *did = json_get_str(arr->u.array.values[i], "id");
		if (did && strcmp(did, pos[0]) == 0)
			id = did;
	}
	for (size_t i = 0; i < arr->u.array.len && !id; i++) {
		const char *name = json_get_str(arr->u.array.values[i], "name");
		if (name && strcasecmp(name, pos[0]) == 0 && by_name++ == 0)
			id = json_get_str(arr->u.array.values[i], "id");
	}
	if (!id) {
		cli_error(c, "no online device called %s (see `encore devices`)", pos[0]);
		code = EXIT_NOTFOUND;
		goto out;
	}
	struct buf body = BUF_INIT;
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "device_ids");
	jw_arr(&w);
	jw_str(&w, id);
	jw_arr_end(&w);
	jw_kbool(&w, "play", true);
	jw_obj_end(&w);
	char *js = jw_finish(&w);
	struct api_response r;
	int rc = api_request(api, "PUT", "/v1/me/player", "application/json", js, strlen(js), &r);
	free(js);
	buf_free(&body);
	code = cli_check_response(c, api, rc, &r, id);
	if (code == EXIT_OK && !json)
		printf("transferred to %s\n", pos[0]);
	api_response_free(&r);
out:
	yajl_tree_free(v);
	api_free(api);
	session_free(s);
	return code;
}
