/* remote: splits a line into words and maps them onto engine commands. Replies are one
 * line (or one JSON object) so a socket client can read them with one getline. */
#include "remote.h"
#include "engine.h"
#include "json.h"
#include "xmem.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define REMOTE_MAX_WORDS 64

static int split(char *line, char **w, int max)
{
	int n = 0;
	for (char *p = strtok(line, " \t\r\n"); p && n < max; p = strtok(NULL, " \t\r\n"))
		w[n++] = p;
	return n;
}

static bool parse_int(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (!*s || *end || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

static int bad(struct buf *reply, const char *msg)
{
	buf_printf(reply, "error: %s", msg);
	return -EINVAL;
}

void remote_status_json(struct engine *e, struct buf *reply)
{
	struct engine_snapshot s;
	engine_snapshot(e, &s);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "state", engine_state_name(s.state));
	jw_key(&w, "uri");
	jw_str(&w, s.uri[0] ? s.uri : NULL);
	jw_kstr(&w, "title", s.title);
	jw_kstr(&w, "artist", s.artist);
	jw_kstr(&w, "album", s.album);
	jw_kint(&w, "position_ms", s.position_ms);
	jw_kint(&w, "duration_ms", s.duration_ms);
	jw_kint(&w, "bitrate_kbps", s.bitrate_kbps);
	jw_kdouble(&w, "buffer_seconds", s.buffer_seconds);
	jw_kint(&w, "volume", s.volume);
	jw_kbool(&w, "shuffle", s.shuffle);
	jw_kstr(&w, "repeat", s.repeat == ENGINE_REPEAT_ONE ? "one" : s.repeat == ENGINE_REPEAT_ALL ? "all" : "off");
	jw_kbool(&w, "normalize", s.normalize);
	jw_kdouble(&w, "gain_db", s.gain_db);
	jw_kint(&w, "queue_length", s.queue_length);
	jw_kint(&w, "queue_position", s.queue_position);
	jw_kstr(&w, "output", s.output);
	jw_key(&w, "error");
	jw_str(&w, s.error[0] ? s.error : NULL);
	jw_kint(&w, "underruns", (long long)s.underruns);
	jw_kint(&w, "segments_fetched", (long long)s.segments_fetched);
	jw_kint(&w, "connections_reused", (long long)s.connections_reused);
	jw_kint(&w, "connections_opened", (long long)s.connections_opened);
	jw_kint(&w, "bitrate_switches", (long long)s.bitrate_switches);
	jw_kint(&w, "version", (long long)s.version);
	jw_obj_end(&w);
	char *json = jw_finish(&w);
	buf_puts(reply, json);
	free(json);
}

static void queue_reply(struct engine *e, struct buf *reply, bool json)
{
	char **uris;
	int n, cur;
	engine_queue_list(e, &uris, &n, &cur);
	if (json) {
		struct jw w;
		jw_init(&w);
		jw_obj(&w);
		jw_kint(&w, "current", cur);
		jw_key(&w, "uris");
		jw_arr(&w);
		for (int i = 0; i < n; i++)
			jw_str(&w, uris[i]);
		jw_arr_end(&w);
		jw_obj_end(&w);
		char *s = jw_finish(&w);
		buf_puts(reply, s);
		free(s);
	} else {
		buf_printf(reply, "%d in queue", n);
		for (int i = 0; i < n; i++)
			buf_printf(reply, "%s%s%s", i ? ", " : ": ", i == cur ? ">" : "", uris[i]);
	}
	engine_queue_list_free(uris, n);
}

int remote_exec(struct engine *e, const char *text, struct buf *reply)
{
	char *line = xstrdup(text);
	char *w[REMOTE_MAX_WORDS];
	int n = split(line, w, REMOTE_MAX_WORDS);
	int rc = 0;
	long v;
	if (n == 0) {
		rc = bad(reply, "empty command");
		goto out;
	}
	const char *cmd = w[0];
	if (strcmp(cmd, "play") == 0) {
		if (n == 1) {
			rc = engine_resume(e);
		} else {
			rc = engine_play(e, (const char *const *)&w[1], n - 1);
			if (rc)
				rc = bad(reply, "play wants encore:track:ID or encore:episode:ID URIs");
		}
	} else if (strcmp(cmd, "pause") == 0) {
		rc = engine_pause(e);
	} else if (strcmp(cmd, "toggle") == 0) {
		rc = engine_toggle(e);
	} else if (strcmp(cmd, "next") == 0) {
		rc = engine_next(e);
	} else if (strcmp(cmd, "prev") == 0 || strcmp(cmd, "previous") == 0) {
		rc = engine_prev(e);
	} else if (strcmp(cmd, "stop") == 0) {
		rc = engine_stop(e);
	} else if (strcmp(cmd, "seek") == 0) {
		if (n != 2 || !parse_int(w[1] + (w[1][0] == '+'), -86400, 86400, &v)) {
			rc = bad(reply, "seek wants [+|-]SECONDS");
			goto out;
		}
		bool rel = w[1][0] == '+' || w[1][0] == '-';
		rc = engine_seek(e, (int)v * 1000, rel);
	} else if (strcmp(cmd, "volume") == 0) {
		if (n != 2 || !parse_int(w[1] + (w[1][0] == '+'), -100, 100, &v) || (w[1][0] != '+' && w[1][0] != '-' && v < 0)) {
			rc = bad(reply, "volume wants N (0-100) or +N/-N");
			goto out;
		}
		rc = engine_set_volume(e, (int)v, w[1][0] == '+' || w[1][0] == '-');
	} else if (strcmp(cmd, "shuffle") == 0) {
		struct engine_snapshot s;
		engine_snapshot(e, &s);
		bool on = !s.shuffle;
		if (n == 2 && strcmp(w[1], "on") == 0)
			on = true;
		else if (n == 2 && strcmp(w[1], "off") == 0)
			on = false;
		else if (n != 1) {
			rc = bad(reply, "shuffle wants on, off or nothing (toggle)");
			goto out;
		}
		rc = engine_set_shuffle(e, on);
	} else if (strcmp(cmd, "repeat") == 0) {
		enum engine_repeat r;
		if (n == 2 && strcmp(w[1], "off") == 0)
			r = ENGINE_REPEAT_OFF;
		else if (n == 2 && strcmp(w[1], "one") == 0)
			r = ENGINE_REPEAT_ONE;
		else if (n == 2 && strcmp(w[1], "all") == 0)
			r = ENGINE_REPEAT_ALL;
		else {
			rc = bad(reply, "repeat wants off, one or all");
			goto out;
		}
		rc = engine_set_repeat(e, r);
	} else if (strcmp(cmd, "normalize") == 0) {
		if (n != 2 || (strcmp(w[1], "on") != 0 && strcmp(w[1], "off") != 0)) {
			rc = bad(reply, "normalize wants on or off");
			goto out;
		}
		rc = engine_set_normalize(e, strcmp(w[1], "on") == 0);
	} else if (strcmp(cmd, "queue") == 0) {
		if (n == 1 || (n == 2 && strcmp(w[1], "--json") == 0)) {
			queue_reply(e, reply, n == 2);
			goto out;
		}
		const char *sub = w[1];
		if ((strcmp(sub, "add") == 0 || strcmp(sub, "next") == 0) && n >= 3) {
			for (int i = 2; i < n && rc == 0; i++)
				rc = engine_enqueue(e, w[i], strcmp(sub, "next") == 0);
			if (rc)
				rc = bad(reply, "queue add wants encore:track:ID URIs");
		} else if (strcmp(sub, "rm") == 0 && n == 3 && parse_int(w[2], 0, 1000000, &v)) {
			rc = engine_queue_remove(e, (int)v);
		} else if (strcmp(sub, "mv") == 0 && n == 4 && parse_int(w[2], 0, 1000000, &v)) {
			long to;
			if (!parse_int(w[3], 0, 1000000, &to)) {
				rc = bad(reply, "queue mv wants FROM TO");
				goto out;
			}
			rc = engine_queue_move(e, (int)v, (int)to);
		} else if (strcmp(sub, "clear") == 0 && n == 2) {
			rc = engine_queue_clear(e);
		} else {
			rc = bad(reply, "queue wants add URI, next URI, rm INDEX, mv FROM TO, clear or nothing");
			goto out;
		}
	} else if (strcmp(cmd, "status") == 0) {
		if (n == 2 && strcmp(w[1], "--json") == 0) {
			remote_status_json(e, reply);
		} else if (n == 1) {
			struct engine_snapshot s;
			engine_snapshot(e, &s);
			buf_printf(reply, "%s %s%s%s %d:%02d/%d:%02d %d kbps vol %d", engine_state_name(s.state),
				   s.title[0] ? s.title : s.uri, s.artist[0] ? " - " : "", s.artist,
				   s.position_ms / 60000, s.position_ms / 1000 % 60, s.duration_ms / 60000,
				   s.duration_ms / 1000 % 60, s.bitrate_kbps, s.volume);
		} else {
			rc = bad(reply, "status wants nothing or --json");
		}
		goto out;
	} else {
		buf_printf(reply, "error: unknown command '%s' (try: play pause toggle next prev stop seek volume shuffle repeat queue status)", cmd);
		rc = -EINVAL;
		goto out;
	}
	if (rc == 0 && reply->len == 0)
		buf_puts(reply, "ok");
out:
	free(line);
	return rc;
}
