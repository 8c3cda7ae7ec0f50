/* cmd_playlist: `encore playlist ls|show|create|rename|add|rm|mv|collab|follow`.
 *
 * The client keeps each playlist it has shown in cache.db (key playlist:ID: the snapshot
 * it showed and its items), so positions typed by the user refer to that snapshot and go
 * to the server with its snapshot_id: the server rebases them onto whatever changed since.
 * Edits made while the server is unreachable go to the cache's outbox with the same
 * snapshot_id and are replayed, in order, before the next playlist command that reaches
 * the server. */
#include "cache.h"
#include "cli.h"
#include "id.h"
#include "json.h"
#include "xmem.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PLAYLIST_CACHE_TTL_S (30 * 24 * 3600)
#define OUTBOX_BATCH 256

struct pl_ctx {
	struct cli_ctx *cli;
	struct session *ses;
	struct api *api;
	struct cache *cache;
	bool json;
	bool offline;   /* a request in this run could not reach the server */
};

static struct cache *open_cache(struct cli_ctx *c)
{
	if (paths_ensure(c->paths, PATHS_CACHE) != 0)
		return NULL;
	char *path = paths_file(c->paths, PATHS_CACHE, "cache.db");
	char err[256];
	struct cache *cache = cache_open(path, err, sizeof(err));
	if (!cache)
		cli_error(c, "%s", err);
	free(path);
	return cache;
}

static bool transport_error(int rc)
{
	return rc < 0;
}

/* No answer, or the playlist service said it is down (502/503/504: nothing was applied):
 * reads fall back to the cached copy and edits wait in the queue. */
static bool unavailable(int rc, const struct api_response *r)
{
	return transport_error(rc) || r->status == 502 || r->status == 503 || r->status == 504;
}

/* Replays queued edits in order. Returns 0 when the outbox is empty afterwards, -EAGAIN
 * when the server is still unreachable (or failing) and edits remain. */
static int flush_outbox(struct pl_ctx *p)
{
	if (!p->cache)
		return 0;
	for (;;) {
		struct cache_outbox_entry e[OUTBOX_BATCH];
		size_t n = cache_outbox_list(p->cache, e, OUTBOX_BATCH);
		if (n == 0)
			return 0;
		int rc = 0;
		size_t i = 0;
		for (; i < n; i++) {
			struct api_response r;
			int t = api_request(p->api, e[i].method, e[i].path, e[i].body ? "application/json" : NULL, e[i].body,
					    e[i].body ? strlen(e[i].body) : 0, &r);
			if (transport_error(t) || r.status >= 500 || r.status == 429 || r.status == 401) {
				api_response_free(&r);
				p->offline = transport_error(t);
				rc = -EAGAIN;
				break;
			}
			if (r.status >= 400) {
				char msg[200];
				api_error_message(r.body.data, msg, sizeof(msg));
				cli_error(p->cli, "dropped a queued edit (%s %s): server answered %ld%s%s", e[i].method, e[i].path,
					  r.status, msg[0] ? ": " : "", msg);
			} else if (!p->json) {
				fprintf(stderr, "%s: sent a queued edit (%s %s)\n", p->cli->prog, e[i].method, e[i].path);
			}
			api_response_free(&r);
			cache_outbox_remove(p->cache, e[i].id);
		}
		for (size_t j = 0; j < n; j++)
			cache_outbox_entry_free(&e[j]);
		if (rc)
			return rc;
	}
}

/* The snapshot this client last showed for playlist id, or NULL (caller frees). */
static char *cached_snapshot(struct pl_ctx *p, const char *id)
{
	if (!p->cache)
		return NULL;
	char *key = xasprintf("playlist:%s", id);
	char *v = cache_get(p->cache, key, (int64_t)time(NULL));
	free(key);
	if (!v)
		return NULL;
	char err[64];
	yajl_val j = json_parse(v, err, sizeof(err));
	const char *s = json_get_str(j, "snapshot_id");
	char *out = s ? xstrdup(s) : NULL;
	yajl_tree_free(j);
	free(v);
	return out;
}

/* Sends an edit; when the server is unreachable, queues it instead. Returns an exit code;
 * *resp is filled when a response came back (free it), left empty otherwise. */
static int send_edit(struct pl_ctx *p, const char *method, const char *path, const char *body,
		     struct api_response *resp, bool *queued, const char *what)
{
	*queued = false;
	memset(resp, 0, sizeof(*resp));
	if (flush_outbox(p) == -EAGAIN) {
		/* Keep the order: an edit may not overtake the ones queued before it. */
		if (p->cache && cache_outbox_add(p->cache, method, path, body) == 0) {
			*queued = true;
			return EXIT_OK;
		}
	}
	int rc = api_request(p->api, method, path, body ? "application/json" : NULL, body, body ? strlen(body) : 0, resp);
	if (unavailable(rc, resp) && p->cache && cache_outbox_add(p->cache, method, path, body) == 0) {
		api_response_free(resp);
		memset(resp, 0, sizeof(*resp));
		*queued = true;
		return EXIT_OK;
	}
	return cli_check_response(p->cli, p->api, rc, resp, what);
}

static void report_edit(struct pl_ctx *p, const struct api_response *r, bool queued, const char *done)
{
	if (queued) {
		if (p->json)
			printf("{\"queued\":true}\n");
		else
			fprintf(stderr, "%s: server unreachable; the edit is queued and will be sent on reconnect\n", p->cli->prog);
		return;
	}
	if (p->json) {
		cli_print_raw(&r->body);
		return;
	}
	char err[64];
	yajl_val j = json_parse(r->body.data ? r->body.data : "", err, sizeof(err));
	const char *snap = json_get_str(j, "snapshot_id");
	printf("%s%s%s\n", done, snap ? "; snapshot " : "", snap ? snap : "");
	yajl_tree_free(j);
}

static bool check_playlist_id(struct pl_ctx *p, const char *arg, char id[ID_LEN + 1])
{
	char type[16];
	if (uri_parse(arg, type, sizeof(type), id) && strcmp(type, "playlist") == 0)
		return true;
	if (id_valid(arg)) {
		snprintf(id, ID_LEN + 1, "%s", arg);
		return true;
	}
	cli_error(p->cli, "playlist: '%s' is not a playlist id or encore:playlist: URI", arg);
	return false;
}

static int do_ls(struct pl_ctx *p)
{
	flush_outbox(p);
	struct buf all = BUF_INIT;
	buf_puts(&all, "[");
	int code = EXIT_OK, count = 0;
	for (int offset = 0;; offset += 50) {
		char *path = xasprintf("/v1/me/playlists?limit=50&offset=%d", offset);
		struct api_response r;
		int rc = api_get(p->api, path, &r);
		free(path);
		code = cli_check_response(p->cli, p->api, rc, &r, NULL);
		if (code != EXIT_OK) {
			api_response_free(&r);
			break;
		}
		char err[64];
		yajl_val j = json_parse(r.body.data ? r.body.data : "", err, sizeof(err));
		yajl_val items = json_get(j, "items");
		for (size_t i = 0; items && YAJL_IS_ARRAY(items) && i < items->u.array.len; i++) {
			yajl_val it = items->u.array.values[i];
			const char *id = json_get_str(it, "id"), *name = json_get_str(it, "name");
			yajl_val owner = json_get(it, "owner"), tracks = json_get(it, "tracks");
			long long total = 0;
			bool pub = false, col = false;
			json_get_int(tracks, "total", &total);
			json_get_bool(it, "public", &pub);
			json_get_bool(it, "collaborative", &col);
			if (p->json) {
				struct jw w;
				jw_init(&w);
				jw_obj(&w);
				jw_kstr(&w, "id", id);
				jw_kstr(&w, "name", name);
				jw_kstr(&w, "owner", json_get_str(owner, "id"));
				jw_kbool(&w, "public", pub);
				jw_kbool(&w, "collaborative", col);
				jw_kint(&w, "total", total);
				jw_kstr(&w, "snapshot_id", json_get_str(it, "snapshot_id"));
				jw_obj_end(&w);
				char *s = jw_finish(&w);
				buf_printf(&all, "%s%s", count ? "," : "", s);
				free(s);
			} else {
				printf("%s  %-30s %4lld tracks  by %s%s%s\n", id ? id : "?", name ? name : "?", total,
				       json_get_str(owner, "id") ? json_get_str(owner, "id") : "?", pub ? "" : "  private",
				       col ? "  collaborative" : "");
			}
			count++;
		}
		yajl_val next = json_get(j, "next");
		bool more = next && YAJL_IS_STRING(next);
		yajl_tree_free(j);
		api_response_free(&r);
		if (!more)
			break;
	}
	buf_puts(&all, "]");
	if (code == EXIT_OK && p->json)
		printf("%s\n", all.data);
	else if (code == EXIT_OK && count == 0)
		printf("no playlists\n");
	buf_free(&all);
	return code;
}

/* Writes one row of `show`, human or JSON, from a playlist track object. */
static void show_item(struct pl_ctx *p, struct buf *out, size_t pos, yajl_val it, bool first)
{
	yajl_val tr = json_get(it, "track");
	const char *name = json_get_str(tr, "name"), *uri = json_get_str(tr, "uri");
	yajl_val artists = json_get(tr, "artists");
	const char *artist = artists && YAJL_IS_ARRAY(artists) && artists->u.array.len ? json_get_str(artists->u.array.values[0], "name") : NULL;
	if (!artist)
		artist = json_get_str(json_get(tr, "show"), "name");
	long long ms = 0;
	json_get_int(tr, "duration_ms", &ms);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kint(&w, "position", (long long)pos);
	jw_kstr(&w, "item_id", json_get_str(it, "item_id"));
	jw_kstr(&w, "uri", uri);
	jw_kstr(&w, "name", name);
	jw_kstr(&w, "artist", artist);
	jw_kint(&w, "duration_ms", ms);
	jw_kstr(&w, "added_by", json_get_str(json_get(it, "added_by"), "id"));
	jw_obj_end(&w);
	char *s = jw_finish(&w);
	buf_printf(out, "%s%s", first ? "" : ",", s);
	free(s);
	if (!p->json)
		printf("%4zu  %s — %s  (%lld:%02lld)\n", pos, name ? name : "(unavailable)", artist ? artist : "?",
		       ms / 60000, ms / 1000 % 60);
}

static int show_cached(struct pl_ctx *p, const char *id)
{
	char *key = xasprintf("playlist:%s", id);
	char *v = p->cache ? cache_get(p->cache, key, (int64_t)time(NULL)) : NULL;
	free(key);
	if (!v)
		return EXIT_ERR;
	char err[64];
	yajl_val j = json_parse(v, err, sizeof(err));
	if (p->json) {
		printf("%s\n", v);
	} else {
		printf("%s  (encore:playlist:%s)  [offline: cached copy]\n", json_get_str(j, "name") ? json_get_str(j, "name") : "?", id);
		yajl_val items = json_get(j, "items");
		for (size_t i = 0; items && YAJL_IS_ARRAY(items) && i < items->u.array.len; i++) {
			yajl_val it = items->u.array.values[i];
			printf("%4zu  %s — %s\n", i, json_get_str(it, "name") ? json_get_str(it, "name") : "?",
			       json_get_str(it, "artist") ? json_get_str(it, "artist") : "?");
		}
	}
	yajl_tree_free(j);
	free(v);
	return EXIT_OK;
}

static int do_show(struct pl_ctx *p, const char *id)
{
	flush_outbox(p);
	char *path = xasprintf("/v1/playlists/%s", id);
	struct api_response r;
	int rc = api_get(p->api, path, &r);
	free(path);
	if (unavailable(rc, &r) && show_cached(p, id) == EXIT_OK) {
		cli_error(p->cli, transport_error(rc) ? "server unreachable; showing the cached copy"
						      : "playlists unavailable right now; showing the cached copy");
		api_response_free(&r);
		return EXIT_OK;
	}
	char what[64];
	snprintf(what, sizeof(what), "encore:playlist:%s", id);
	int code = cli_check_response(p->cli, p->api, rc, &r, what);
	if (code != EXIT_OK) {
		api_response_free(&r);
		return code;
	}
	char err[64];
	yajl_val pl = json_parse(r.body.data ? r.body.data : "", err, sizeof(err));
	const char *name = json_get_str(pl, "name");
	bool pub = false, col = false;
	json_get_bool(pl, "public", &pub);
	json_get_bool(pl, "collaborative", &col);
	if (!p->json)
		printf("%s  (encore:playlist:%s)\nby %s%s%s\n", name ? name : "?", id, json_get_str(json_get(pl, "owner"), "id"),
		       pub ? ", public" : ", private", col ? ", collaborative" : "");
	/* The items by cursor: stable even if someone edits while we page. */
	struct buf items = BUF_INIT;
	char *snapshot = NULL;
	char *cursor = xstrdup("");
	size_t pos = 0;
	while (cursor) {
		char *tp = xasprintf("/v1/playlists/%s/tracks?limit=100&cursor=%s", id, cursor);
		struct api_response tr;
		rc = api_get(p->api, tp, &tr);
		free(tp);
		free(cursor);
		cursor = NULL;
		code = cli_check_response(p->cli, p->api, rc, &tr, what);
		if (code != EXIT_OK) {
			api_response_free(&tr);
			break;
		}
		yajl_val page = json_parse(tr.body.data ? tr.body.data : "", err, sizeof(err));
		if (!snapshot && json_get_str(page, "snapshot_id"))
			snapshot = xstrdup(json_get_str(page, "snapshot_id"));
		yajl_val list = json_get(page, "items");
		for (size_t i = 0; list && YAJL_IS_ARRAY(list) && i < list->u.array.len; i++, pos++)
			show_item(p, &items, pos, list->u.array.values[i], pos == 0);
		const char *after = json_get_str(json_get(page, "cursors"), "after");
		if (after)
			cursor = xstrdup(after);
		yajl_tree_free(page);
		api_response_free(&tr);
	}
	if (code == EXIT_OK) {
		struct jw w;
		jw_init(&w);
		jw_obj(&w);
		jw_kstr(&w, "id", id);
		jw_kstr(&w, "name", name);
		jw_kstr(&w, "owner", json_get_str(json_get(pl, "owner"), "id"));
		jw_kbool(&w, "public", pub);
		jw_kbool(&w, "collaborative", col);
		jw_kstr(&w, "snapshot_id", snapshot);
		jw_key(&w, "collaborators");
		yajl_val cs = json_get(pl, "collaborators");
		jw_arr(&w);
		for (size_t i = 0; cs && YAJL_IS_ARRAY(cs) && i < cs->u.array.len; i++)
			if (YAJL_IS_STRING(cs->u.array.values[i]))
				jw_str(&w, cs->u.array.values[i]->u.string);
		jw_arr_end(&w);
		jw_kint(&w, "total", (long long)pos);
		jw_key(&w, "items");
		char *arr = xasprintf("[%s]", items.data ? items.data : "");
		jw_raw(&w, arr);
		free(arr);
		jw_obj_end(&w);
		char *s = jw_finish(&w);
		if (p->json)
			printf("%s\n", s);
		else
			printf("%zu tracks · snapshot %s\n", pos, snapshot ? snapshot : "?");
		if (p->cache) {
			char *key = xasprintf("playlist:%s", id);
			cache_put(p->cache, key, s, (int64_t)time(NULL) + PLAYLIST_CACHE_TTL_S);
			free(key);
		}
		free(s);
	}
	free(snapshot);
	buf_free(&items);
	yajl_tree_free(pl);
	api_response_free(&r);
	return code;
}

static int do_create(struct pl_ctx *p, const char *name, bool pub, bool col)
{
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "name", name);
	jw_kbool(&w, "public", pub);
	jw_kbool(&w, "collaborative", col);
	jw_obj_end(&w);
	char *body = jw_finish(&w);
	flush_outbox(p);
	struct api_response r;
	int rc = api_request(p->api, "POST", "/v1/me/playlists", "application/json", body, strlen(body), &r);
	free(body);
	int code = cli_check_response(p->cli, p->api, rc, &r, NULL);
	if (code == EXIT_OK) {
		if (p->json) {
			cli_print_raw(&r.body);
		} else {
			char err[64];
			yajl_val j = json_parse(r.body.data ? r.body.data : "", err, sizeof(err));
			printf("created encore:playlist:%s\n", json_get_str(j, "id") ? json_get_str(j, "id") : "?");
			yajl_tree_free(j);
		}
	}
	api_response_free(&r);
	return code;
}

/* Body helpers: {"snapshot_id": S, ...} with the snapshot this client last showed. */
static void put_snapshot(struct pl_ctx *p, struct jw *w, const char *id)
{
	char *snap = cached_snapshot(p, id);
	if (snap)
		jw_kstr(w, "snapshot_id", snap);
	free(snap);
}

static int edit(struct pl_ctx *p, const char *method, const char *path, char *body, const char *what, const char *done)
{
	struct api_response r;
	bool queued;
	int code = send_edit(p, method, path, body, &r, &queued, what);
	if (code == EXIT_OK)
		report_edit(p, &r, queued, done);
	api_response_free(&r);
	free(body);
	return code;
}

int cmd_playlist(struct cli_ctx *c, int argc, char **argv)
{
	const char *pos[110];
	bool pub = false, col = false, json = false;
	int npos = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (strcmp(argv[i], "--public") == 0)
			pub = true;
		else if (strcmp(argv[i], "--collaborative") == 0)
			col = true;
		else if (argv[i][0] == '-' && argv[i][1] && strcmp(argv[i], "--") != 0) {
			cli_error(c, "playlist: unknown option '%s'", argv[i]);
			goto usage;
		} else if (strcmp(argv[i], "--") == 0) {
			continue;
		} else if (npos < (int)(sizeof(pos) / sizeof(pos[0]))) {
			pos[npos++] = argv[i];
		} else {
			cli_error(c, "playlist: too many arguments");
			goto usage;
		}
	}
	if (npos == 0)
		goto usage;
	const char *sub = pos[0];
	struct {
		const char *name;
		int min, max;
	} shapes[] = {{"ls", 1, 1}, {"show", 2, 2}, {"create", 2, 2}, {"rename", 3, 3}, {"add", 3, 102},
		      {"rm", 3, 3}, {"mv", 4, 4}, {"collab", 3, 3}, {"follow", 2, 2}};
	bool known = false;
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
		if (strcmp(sub, shapes[i].name) == 0) {
			known = true;
			if (npos < shapes[i].min || npos > shapes[i].max) {
				cli_error(c, "playlist %s: wrong number of arguments", sub);
				goto usage;
			}
		}
	if (!known) {
		cli_error(c, "playlist: unknown subcommand '%s'", sub);
		goto usage;
	}
	struct pl_ctx p = {.cli = c, .json = json};
	char id[ID_LEN + 1] = "";
	if (npos >= 2 && strcmp(sub, "create") != 0 && strcmp(sub, "ls") != 0 && !check_playlist_id(&p, pos[1], id))
		goto usage;
	long long from = 0, to = 0;
	if (strcmp(sub, "mv") == 0) {
		char *e1, *e2;
		from = strtoll(pos[2], &e1, 10);
		to = strtoll(pos[3], &e2, 10);
		if (*e1 || *e2 || from < 0 || to < 0 || !*pos[2] || !*pos[3]) {
			cli_error(c, "playlist mv: FROM and TO are positions (0-based) as `encore playlist show` numbers them");
			goto usage;
		}
	}
	if (strcmp(sub, "add") == 0 || strcmp(sub, "rm") == 0) {
		for (int i = 2; i < npos; i++) {
			char type[16], tid[ID_LEN + 1];
			if (!uri_parse(pos[i], type, sizeof(type), tid) || (strcmp(type, "track") && strcmp(type, "episode"))) {
				cli_error(c, "playlist %s: '%s' is not an encore:track: or encore:episode: URI", sub, pos[i]);
				goto usage;
			}
		}
	}
	int code = cli_open_session(c, &p.ses, &p.api);
	if (code != EXIT_OK)
		return code;
	p.cache = open_cache(c);
	char *path = NULL, *what = xasprintf("encore:playlist:%s", id);
	struct jw w;
	jw_init(&w);
	if (strcmp(sub, "ls") == 0) {
		code = do_ls(&p);
	} else if (strcmp(sub, "show") == 0) {
		code = do_show(&p, id);
	} else if (strcmp(sub, "create") == 0) {
		code = do_create(&p, pos[1], pub, col);
	} else if (strcmp(sub, "rename") == 0) {
		jw_obj(&w);
		jw_kstr(&w, "name", pos[2]);
		jw_obj_end(&w);
		path = xasprintf("/v1/playlists/%s", id);
		code = edit(&p, "PUT", path, jw_finish(&w), what, "renamed");
	} else if (strcmp(sub, "add") == 0) {
		jw_obj(&w);
		jw_key(&w, "uris");
		jw_arr(&w);
		for (int i = 2; i < npos; i++)
			jw_str(&w, pos[i]);
		jw_arr_end(&w);
		jw_obj_end(&w);
		path = xasprintf("/v1/playlists/%s/tracks", id);
		code = edit(&p, "POST", path, jw_finish(&w), what, "added");
	} else if (strcmp(sub, "rm") == 0) {
		jw_obj(&w);
		jw_key(&w, "tracks");
		jw_arr(&w);
		jw_obj(&w);
		jw_kstr(&w, "uri", pos[2]);
		jw_obj_end(&w);
		jw_arr_end(&w);
		put_snapshot(&p, &w, id);
		jw_obj_end(&w);
		path = xasprintf("/v1/playlists/%s/tracks", id);
		code = edit(&p, "DELETE", path, jw_finish(&w), what, "removed");
	} else if (strcmp(sub, "mv") == 0) {
		/* Web API reorder: moving down means inserting before the slot after TO. */
		jw_obj(&w);
		jw_kint(&w, "range_start", from);
		jw_kint(&w, "range_length", 1);
		jw_kint(&w, "insert_before", to > from ? to + 1 : to);
		put_snapshot(&p, &w, id);
		jw_obj_end(&w);
		path = xasprintf("/v1/playlists/%s/tracks", id);
		code = edit(&p, "PUT", path, jw_finish(&w), what, "moved");
	} else if (strcmp(sub, "collab") == 0) {
		jw_obj(&w);
		jw_kstr(&w, "id", pos[2]);
		jw_obj_end(&w);
		path = xasprintf("/v1/playlists/%s/collaborators", id);
		code = edit(&p, "POST", path, jw_finish(&w), what, "invited");
	} else if (strcmp(sub, "follow") == 0) {
		path = xasprintf("/v1/playlists/%s/followers", id);
		code = edit(&p, "PUT", path, xstrdup("{}"), what, "following");
	}
	jw_free(&w);
	free(path);
	free(what);
	cache_close(p.cache);
	api_free(p.api);
	session_free(p.ses);
	return code;
usage:
	fprintf(stderr, "usage: encore playlist ls | show ID | create NAME [--public] [--collaborative] | rename ID NAME\n"
			"                       | add ID URI... | rm ID URI | mv ID FROM TO | collab ID USER | follow ID  [--json]\n");
	return EXIT_USAGE;
}
