/* card: human-readable cards for API objects. */
#include "card.h"
#include "json.h"
#include <errno.h>
#include <stdbool.h>
#include <string.h>

void card_duration(struct buf *out, long long ms)
{
	long long s = ms > 0 ? ms / 1000 : 0;
	if (s >= 3600)
		buf_printf(out, "%lld:%02lld:%02lld", s / 3600, (s / 60) % 60, s % 60);
	else
		buf_printf(out, "%lld:%02lld", s / 60, s % 60);
}

void card_artists(struct buf *out, yajl_val obj)
{
	yajl_val arr = json_get(obj, "artists");
	if (!arr || !YAJL_IS_ARRAY(arr))
		return;
	bool first = true;
	for (size_t i = 0; i < arr->u.array.len; i++) {
		const char *name = json_get_str(arr->u.array.values[i], "name");
		if (!name)
			continue;
		buf_printf(out, "%s%s", first ? "" : ", ", name);
		first = false;
	}
}

static void field(struct buf *out, const char *label, const char *value)
{
	if (value && *value)
		buf_printf(out, "  %-10s %s\n", label, value);
}

static void yes_no(struct buf *out, yajl_val obj, const char *key, const char *label)
{
	bool v;
	if (json_get_bool(obj, key, &v))
		field(out, label, v ? "yes" : "no");
}

static void artists_field(struct buf *out, yajl_val obj)
{
	struct buf a = BUF_INIT;
	card_artists(&a, obj);
	field(out, "artists", a.data);
	buf_free(&a);
}

static void render_track(struct buf *out, yajl_val t)
{
	buf_printf(out, "%s\n", json_get_str(t, "name") ? json_get_str(t, "name") : "(untitled)");
	artists_field(out, t);
	yajl_val album = json_get(t, "album");
	if (album) {
		const char *an = json_get_str(album, "name");
		const char *date = json_get_str(album, "release_date");
		if (an) {
			struct buf a = BUF_INIT;
			buf_puts(&a, an);
			if (date && strlen(date) >= 4)
				buf_printf(&a, " (%.4s)", date);
			field(out, "album", a.data);
			buf_free(&a);
		}
	}
	long long n;
	if (json_get_int(t, "track_number", &n)) {
		long long d;
		struct buf a = BUF_INIT;
		if (json_get_int(t, "disc_number", &d) && d > 1)
			buf_printf(&a, "%lld-", d);
		buf_printf(&a, "%lld", n);
		field(out, "track", a.data);
		buf_free(&a);
	}
	long long ms;
	if (json_get_int(t, "duration_ms", &ms)) {
		struct buf a = BUF_INIT;
		card_duration(&a, ms);
		field(out, "duration", a.data);
		buf_free(&a);
	}
	yes_no(out, t, "explicit", "explicit");
	yes_no(out, t, "is_playable", "playable");
	yajl_val restr = json_get(t, "restrictions");
	if (restr)
		field(out, "restricted", json_get_str(restr, "reason"));
	field(out, "uri", json_get_str(t, "uri"));
}

static void render_album(struct buf *out, yajl_val a)
{
	buf_printf(out, "%s\n", json_get_str(a, "name") ? json_get_str(a, "name") : "(untitled)");
	artists_field(out, a);
	field(out, "type", json_get_str(a, "album_type"));
	field(out, "released", json_get_str(a, "release_date"));
	field(out, "label", json_get_str(a, "label"));
	long long total;
	if (json_get_int(a, "total_tracks", &total)) {
		struct buf b = BUF_INIT;
		buf_printf(&b, "%lld", total);
		field(out, "tracks", b.data);
		buf_free(&b);
	}
	yes_no(out, a, "is_playable", "playable");
	field(out, "uri", json_get_str(a, "uri"));
	yajl_val items = json_get(json_get(a, "tracks"), "items");
	if (!items || !YAJL_IS_ARRAY(items) || items->u.array.len == 0)
		return;
	buf_puts(out, "\n");
	long long sum = 0;
	for (size_t i = 0; i < items->u.array.len; i++) {
		yajl_val t = items->u.array.values[i];
		long long n = (long long)i + 1, ms = 0;
		json_get_int(t, "track_number", &n);
		json_get_int(t, "duration_ms", &ms);
		sum += ms;
		bool explicit_ = false;
		json_get_bool(t, "explicit", &explicit_);
		buf_printf(out, "  %2lld. %s%s  ", n, json_get_str(t, "name") ? json_get_str(t, "name") : "?",
			   explicit_ ? " [E]" : "");
		card_duration(out, ms);
		buf_puts(out, "\n");
	}
	buf_puts(out, "  total ");
	card_duration(out, sum);
	buf_puts(out, "\n");
}

static void render_artist(struct buf *out, yajl_val a)
{
	buf_printf(out, "%s\n", json_get_str(a, "name") ? json_get_str(a, "name") : "(unnamed)");
	yajl_val genres = json_get(a, "genres");
	if (genres && YAJL_IS_ARRAY(genres) && genres->u.array.len) {
		struct buf g = BUF_INIT;
		for (size_t i = 0; i < genres->u.array.len; i++) {
			const char *s = YAJL_GET_STRING(genres->u.array.values[i]);
			if (s)
				buf_printf(&g, "%s%s", g.len ? ", " : "", s);
		}
		field(out, "genres", g.data);
		buf_free(&g);
	}
	long long v;
	if (json_get_int(json_get(a, "followers"), "total", &v)) {
		struct buf b = BUF_INIT;
		buf_printf(&b, "%lld", v);
		field(out, "followers", b.data);
		buf_free(&b);
	}
	if (json_get_int(a, "popularity", &v)) {
		struct buf b = BUF_INIT;
		buf_printf(&b, "%lld/100", v);
		field(out, "popularity", b.data);
		buf_free(&b);
	}
	field(out, "uri", json_get_str(a, "uri"));
}

int card_render(struct buf *out, const char *type, yajl_val obj)
{
	if (!obj || !YAJL_IS_OBJECT(obj))
		return -EINVAL;
	if (strcmp(type, "track") == 0)
		render_track(out, obj);
	else if (strcmp(type, "album") == 0)
		render_album(out, obj);
	else if (strcmp(type, "artist") == 0)
		render_artist(out, obj);
	else
		return -EINVAL;
	return 0;
}

int card_render_user(struct buf *out, yajl_val me)
{
	if (!me || !YAJL_IS_OBJECT(me))
		return -EINVAL;
	const char *id = json_get_str(me, "id");
	const char *dn = json_get_str(me, "display_name");
	buf_printf(out, "%s\n", dn && *dn ? dn : (id ? id : "?"));
	field(out, "id", id);
	field(out, "product", json_get_str(me, "product"));
	field(out, "country", json_get_str(me, "country"));
	field(out, "uri", json_get_str(me, "uri"));
	return 0;
}
