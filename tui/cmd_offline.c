/* cmd_offline: `encore download URI...` and `encore offline ls|rm|usage|sync|quota`.
 * Downloads are resumable: running the same command again continues where it stopped. */
#include "cli.h"
#include "config.h"
#include "id.h"
#include "json.h"
#include "offline.h"
#include "xmem.h"
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct offline *cli_open_offline(struct cli_ctx *c, bool create)
{
	if (paths_ensure(c->paths, PATHS_DATA) != 0) {
		cli_error(c, "cannot create the data directory %s", paths_dir(c->paths, PATHS_DATA));
		return NULL;
	}
	char *dir = paths_file(c->paths, PATHS_DATA, "offline");
	char *key = paths_file(c->paths, PATHS_DATA, "offline-device.key");
	struct offline *o = NULL;
	struct stat sb;
	if (create || stat(dir, &sb) == 0) {
		char err[256];
		o = offline_open(dir, key, err, sizeof(err));
		if (!o)
			cli_error(c, "%s", err);
	}
	if (o) {
		/* The config file's offline_quota and offline_min_free_mb apply to this run; its
		 * other lines (and their errors) are the player's business. */
		struct config *cfg = config_new();
		char *path = paths_file(c->paths, PATHS_CONFIG, "config");
		config_load(cfg, path);
		free(path);
		offline_set_space_policy(o, cfg->offline_quota,
					 cfg->offline_min_free_mb < 0 ? -1 : (int64_t)(cfg->offline_min_free_mb << 20));
		config_free(cfg);
	}
	free(dir);
	free(key);
	return o;
}

/* URIs of the tracks and episodes to download, canonical and without duplicates. */
struct ids {
	char (*v)[OFFLINE_URI_MAX];
	size_t n, cap;
};

static void ids_add(struct ids *l, const char *uri)
{
	char type[16], id[ID_LEN + 1];
	if (!uri || !uri_parse(uri, type, sizeof(type), id) || (strcmp(type, "track") != 0 && strcmp(type, "episode") != 0))
		return;
	char canon[OFFLINE_URI_MAX];
	snprintf(canon, sizeof(canon), "encore:%s:%s", type, id);
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], canon) == 0)
			return;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	memcpy(l->v[l->n++], canon, OFFLINE_URI_MAX);
}

/* Adds every track of an album or playlist, or every episode of a show, page by page. */
static int add_collection(struct cli_ctx *c, struct api *api, const char *type, const char *id, const char *arg, struct ids *out)
{
	for (int offset = 0;; offset += 50) {
		char *path = xasprintf("/v1/%ss/%s/%s?limit=50&offset=%d", type, id, strcmp(type, "show") == 0 ? "episodes" : "tracks", offset);
		struct api_response r;
		int rc = api_get(api, path, &r);
		free(path);
		int code = cli_check_response(c, api, rc, &r, arg);
		if (code != EXIT_OK) {
			api_response_free(&r);
			return code;
		}
		yajl_val v = json_parse(r.body.data ? r.body.data : "", NULL, 0);
		yajl_val items = json_get(v, "items");
		size_t n = items && YAJL_IS_ARRAY(items) ? items->u.array.len : 0;
		for (size_t i = 0; i < n; i++) {
			yajl_val it = items->u.array.values[i];
			const char *u = json_get_str(it, "uri");
			if (!u)
				u = json_get_str(json_get(it, "track"), "uri");  /* playlist track objects */
			ids_add(out, u);
		}
		long long total = 0;
		json_get_int(v, "total", &total);
		yajl_tree_free(v);
		api_response_free(&r);
		if (n == 0 || offset + (long long)n >= total)
			return EXIT_OK;
	}
}

struct dl_ui {
	bool json, tty;
	const char *uri;
};

static void on_progress(void *ctx, const struct offline_progress *p)
{
	struct dl_ui *ui = ctx;
	if (ui->json) {
		struct jw w;
		jw_init(&w);
		jw_obj(&w);
		jw_kstr(&w, "event", p->finished ? "downloaded" : "progress");
		char uri[64];
		snprintf(uri, sizeof(uri), "encore:%s:%s", p->episode ? "episode" : "track", p->track_id);
		jw_kstr(&w, "uri", uri);
		jw_kint(&w, "done", p->done);
		jw_kint(&w, "total", p->total);
		jw_kint(&w, "resumed", p->resumed);
		jw_kint(&w, "refetched", p->refetched);
		jw_kint(&w, "bytes", (long long)p->bytes);
		jw_kint(&w, "bitrate", p->bitrate);
		jw_obj_end(&w);
		char *s = jw_finish(&w);
		printf("%s\n", s);
		fflush(stdout);
		free(s);
		return;
	}
	if (ui->tty) {
		int width = 30, fill = p->total ? (int)((uint64_t)p->done * (uint64_t)width / p->total) : 0;
		char bar[64];
		memset(bar, '#', (size_t)fill);
		memset(bar + fill, '-', (size_t)(width - fill));
		bar[width] = 0;
		fprintf(stderr, "\r%s [%s] %u/%u %.1f MB", p->track_id, bar, p->done, p->total, (double)p->bytes / 1e6);
		if (p->finished)
			fputc('\n', stderr);
	} else if (p->finished) {
		printf("downloaded encore:%s:%s  %u files  %llu bytes  %d kbps%s\n", p->episode ? "episode" : "track", p->track_id, p->total,
		       (unsigned long long)p->bytes, p->bitrate, p->resumed ? "  (resumed)" : "");
	}
}

static void download_usage(void)
{
	fprintf(stderr, "usage: encore download [--quality 24|96|160|320] [--json] URI...\n"
			"       URIs of tracks, albums, playlists, podcast episodes or shows; run it again to resume\n");
}

int cmd_download(struct cli_ctx *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"quality", required_argument, 0, 'q'},
		{"json", no_argument, 0, 'j'},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	int quality = 0, opt;
	struct dl_ui ui = {.tty = isatty(2)};
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *end;
		switch (opt) {
		case 'q':
			quality = (int)strtol(optarg, &end, 10);
			if (*end || (quality != 24 && quality != 96 && quality != 160 && quality != 320)) {
				cli_error(c, "download: --quality must be 24, 96, 160 or 320");
				return EXIT_USAGE;
			}
			break;
		case 'j': ui.json = true; break;
		case 'h': download_usage(); return EXIT_OK;
		default:
			cli_error(c, "download: unknown option '%s'", argv[optind - 1]);
			download_usage();
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		cli_error(c, "download: give track, album or playlist URIs");
		download_usage();
		return EXIT_USAGE;
	}
	struct session *s = NULL;
	struct api *api = NULL;
	int code = cli_open_session(c, &s, &api);
	if (code != EXIT_OK)
		return code;
	struct ids ids = {0};
	struct offline *o = NULL;
	for (int i = optind; i < argc && code == EXIT_OK; i++) {
		char type[16], id[ID_LEN + 1];
		if (!uri_parse(argv[i], type, sizeof(type), id)) {
			cli_error(c, "download: '%s' is not a valid encore URI", argv[i]);
			code = EXIT_USAGE;
		} else if (strcmp(type, "track") == 0 || strcmp(type, "episode") == 0) {
			ids_add(&ids, argv[i]);
		} else if (strcmp(type, "album") == 0 || strcmp(type, "playlist") == 0 || strcmp(type, "show") == 0) {
			code = add_collection(c, api, type, id, argv[i], &ids);
		} else {
			cli_error(c, "download: cannot download a %s (tracks, albums, playlists, episodes and shows only)", type);
			code = EXIT_USAGE;
		}
	}
	if (code != EXIT_OK)
		goto out;
	o = cli_open_offline(c, true);
	if (!o) {
		code = EXIT_ERR;
		goto out;
	}
	char err[512];
	/* Phone home while online: renewals and revocations apply before anything new. */
	struct offline_sync_result sr;
	if (offline_list(o, NULL, NULL) > 0 && offline_sync(o, api, &sr, err, sizeof(err)) == 0 && sr.revoked > 0)
		fprintf(stderr, "encore: %d downloaded tracks were revoked by the server and deleted\n", sr.revoked);
	int rc = offline_license_uris(o, api, (const char(*)[OFFLINE_URI_MAX])ids.v, ids.n, err, sizeof(err));
	if (rc != 0) {
		cli_error(c, "download: %s", err);
		code = rc == -EACCES ? EXIT_AUTH : rc == -ENOENT ? EXIT_NOTFOUND : EXIT_ERR;
		goto out;
	}
	for (size_t i = 0; i < ids.n; i++) {
		char type[16], id[ID_LEN + 1];
		uri_parse(ids.v[i], type, sizeof(type), id);  /* canonical: ids_add parsed it */
		rc = offline_download(o, api, id, quality, on_progress, &ui, err, sizeof(err));
		if (rc != 0) {
			if (ui.tty && !ui.json)
				fputc('\n', stderr);
			cli_error(c, "download: %s", err);
			code = EXIT_ERR;
			break;
		}
	}
out:
	offline_free(o);
	free(ids.v);
	api_free(api);
	session_free(s);
	return code;
}

struct ls_ctx {
	bool json;
	struct jw *w;
	int64_t now;
};

static void on_entry(void *ctx, const struct offline_entry *e)
{
	struct ls_ctx *l = ctx;
	char uri[64];
	snprintf(uri, sizeof(uri), "encore:%s:%s", e->episode ? "episode" : "track", e->track_id);
	if (l->json) {
		jw_obj(l->w);
		jw_kstr(l->w, "uri", uri);
		jw_kstr(l->w, "name", e->name);
		jw_kint(l->w, "bitrate", e->bitrate);
		jw_kbool(l->w, "complete", e->complete);
		jw_kint(l->w, "files_done", e->files_done);
		jw_kint(l->w, "files_total", e->files_total);
		jw_kint(l->w, "bytes", (long long)e->bytes);
		jw_kint(l->w, "expires_at", e->expires_at);
		jw_kbool(l->w, "expired", e->expires_at < l->now);
		jw_obj_end(l->w);
		return;
	}
	printf("%s  %-30.30s  %3d kbps  %8.1f MB  %s  licence %s %lld days\n", uri, e->name, e->bitrate, (double)e->bytes / 1e6,
	       e->complete ? "complete" : "partial ", e->expires_at < l->now ? "expired" : "valid for",
	       (long long)((e->expires_at - l->now) / 86400));
}

static void offline_usage_text(void)
{
	fprintf(stderr, "usage: encore offline ls [--json]\n"
			"       encore offline rm URI...\n"
			"       encore offline usage [--json]\n"
			"       encore offline quota BYTES|none\n"
			"       encore offline sync [--json]\n");
}

int cmd_offline(struct cli_ctx *c, int argc, char **argv)
{
	if (argc < 2) {
		offline_usage_text();
		return EXIT_USAGE;
	}
	const char *sub = argv[1];
	bool json = false;
	const char *pos[64];
	int npos = cli_parse_json_flag(c, argc - 1, argv + 1, &json, pos, 64);
	if (npos < 0)
		return EXIT_USAGE;
	struct offline *o = NULL;
	struct session *s = NULL;
	struct api *api = NULL;
	int code = EXIT_OK;
	if (strcmp(sub, "sync") == 0) {
		code = cli_open_session(c, &s, &api);
		if (code != EXIT_OK)
			return code;
	} else if (strcmp(sub, "ls") != 0 && strcmp(sub, "rm") != 0 && strcmp(sub, "usage") != 0 && strcmp(sub, "quota") != 0) {
		cli_error(c, "offline: unknown subcommand '%s'", sub);
		offline_usage_text();
		return EXIT_USAGE;
	}
	o = cli_open_offline(c, true);
	if (!o) {
		code = EXIT_ERR;
		goto out;
	}
	if (strcmp(sub, "ls") == 0) {
		struct jw w;
		jw_init(&w);
		struct ls_ctx l = {.json = json, .w = &w, .now = (int64_t)time(NULL)};
		if (json) {
			jw_obj(&w);
			jw_key(&w, "tracks");
			jw_arr(&w);
		}
		offline_list(o, on_entry, &l);
		if (json) {
			jw_arr_end(&w);
			jw_obj_end(&w);
			char *out = jw_finish(&w);
			printf("%s\n", out);
			free(out);
		} else {
			jw_free(&w);
		}
	} else if (strcmp(sub, "rm") == 0) {
		if (npos == 0) {
			cli_error(c, "offline rm: give track URIs");
			code = EXIT_USAGE;
		}
		for (int i = 0; i < npos; i++) {
			char type[16], id[ID_LEN + 1];
			if (!uri_parse(pos[i], type, sizeof(type), id) || (strcmp(type, "track") != 0 && strcmp(type, "episode") != 0)) {
				cli_error(c, "offline rm: '%s' is not a track or episode URI", pos[i]);
				code = EXIT_USAGE;
			} else if (offline_remove(o, id) != 0) {
				cli_error(c, "offline rm: %s is not downloaded", pos[i]);
				code = EXIT_NOTFOUND;
			}
		}
	} else if (strcmp(sub, "usage") == 0 || strcmp(sub, "quota") == 0) {
		if (strcmp(sub, "quota") == 0) {
			char *end = NULL;
			unsigned long long q = npos == 1 && strcmp(pos[0], "none") != 0 ? strtoull(pos[0], &end, 10) : 0;
			if (npos != 1 || (end && *end)) {
				cli_error(c, "offline quota: give a number of bytes, or none");
				code = EXIT_USAGE;
				goto out;
			}
			offline_set_quota(o, q);
		}
		uint64_t bytes, quota, disk_free = 0, min_free = 0;
		int tracks;
		offline_usage(o, &bytes, &tracks, &quota);
		bool have_disk = offline_disk(o, &disk_free, &min_free, &quota) == 0;
		bool low = have_disk && disk_free < min_free;
		if (json) {
			struct jw w;
			jw_init(&w);
			struct ls_ctx l = {.json = true, .w = &w, .now = (int64_t)time(NULL)};
			jw_obj(&w);
			jw_kint(&w, "tracks", tracks);
			jw_kint(&w, "bytes", (long long)bytes);
			jw_kint(&w, "quota_bytes", (long long)quota);
			jw_key(&w, "disk_free_bytes");
			if (have_disk)
				jw_int(&w, (long long)disk_free);
			else
				jw_null(&w);
			jw_kint(&w, "min_free_bytes", (long long)min_free);
			jw_kbool(&w, "low_disk", low);
			jw_key(&w, "items");  /* bytes per track: the same objects as offline ls */
			jw_arr(&w);
			offline_list(o, on_entry, &l);
			jw_arr_end(&w);
			jw_obj_end(&w);
			char *out = jw_finish(&w);
			printf("%s\n", out);
			free(out);
		} else {
			printf("%d tracks, %.1f MB%s%.1f MB quota\n", tracks, (double)bytes / 1e6, quota ? " of a " : ", no quota", quota ? (double)quota / 1e6 : 0.0);
		}
		if (low)
			fprintf(stderr, "encore: warning: disk nearly full: %.1f MB free, downloads keep %.1f MB free (offline_min_free_mb)\n",
				(double)disk_free / 1e6, (double)min_free / 1e6);
	} else {
		struct offline_sync_result r;
		char err[256];
		if (offline_sync(o, api, &r, err, sizeof(err)) != 0) {
			cli_error(c, "offline sync: %s", err);
			code = EXIT_ERR;
			goto out;
		}
		if (json)
			printf("{\"renewed\":%d,\"revoked\":%d,\"premium\":%s,\"device_active\":%s}\n", r.renewed, r.revoked,
			       r.premium ? "true" : "false", r.device_active ? "true" : "false");
		else
			printf("%d licences renewed, %d revoked and deleted%s%s\n", r.renewed, r.revoked,
			       r.premium ? "" : " (the account is not premium)", r.device_active ? "" : " (this device was removed)");
	}
out:
	offline_free(o);
	api_free(api);
	session_free(s);
	return code;
}
