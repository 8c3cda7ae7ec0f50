/* items: Web API JSON to list rows. */
#include "items.h"
#include "buf.h"
#include "json.h"
#include "xmem.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void items_add(struct items *l, enum item_type type, const char *uri, const char *title, const char *sub, int duration_ms)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 32;
		l->v = xrealloc(l->v, (size_t)l->cap * sizeof(*l->v));
	}
	struct item *it = &l->v[l->n++];
	memset(it, 0, sizeof(*it));
	it->type = type;
	snprintf(it->uri, sizeof(it->uri), "%s", uri ? uri : "");
	it->title = xstrdup(title ? title : "");
	it->sub = xstrdup(sub ? sub : "");
	it->duration_ms = duration_ms;
}

void items_clear(struct items *l)
{
	for (int i = 0; i < l->n; i++) {
		free(l->v[i].title);
		free(l->v[i].sub);
	}
	l->n = 0;
}

void items_free(struct items *l)
{
	items_clear(l);
	free(l->v);
	l->v = NULL;
	l->cap = 0;
}

bool items_selectable(const struct item *it)
{
	return it->type != ITEM_HEADER && it->type != ITEM_TEXT;
}

/* "A, B" from an array of objects with "name". */
static void join_names(struct buf *b, yajl_val arr)
{
	if (!YAJL_IS_ARRAY(arr))
		return;
	for (size_t i = 0; i < arr->u.array.len; i++) {
		const char *n = json_get_str(arr->u.array.values[i], "name");
		if (n)
			buf_printf(b, "%s%s", b->len ? ", " : "", n);
	}
}

static int add_object(struct items *l, yajl_val o, enum item_type type)
{
	if (!YAJL_IS_OBJECT(o))
		return 0;
	const char *uri = json_get_str(o, "uri"), *name = json_get_str(o, "name");
	if (!uri || !name)
		return 0;
	struct buf sub = BUF_INIT;
	long long ms = 0;
	if (type == ITEM_TRACK) {
		join_names(&sub, json_get(o, "artists"));
		const char *album = json_get_str(json_get(o, "album"), "name");
		if (album)
			buf_printf(&sub, "%s%s", sub.len ? " · " : "", album);
		json_get_int(o, "duration_ms", &ms);
	} else if (type == ITEM_ALBUM) {
		join_names(&sub, json_get(o, "artists"));
		const char *date = json_get_str(o, "release_date");
		if (date && strlen(date) >= 4)
			buf_printf(&sub, "%s%.4s", sub.len ? " · " : "", date);
	} else if (type == ITEM_ARTIST) {
		yajl_val g = json_get(o, "genres");
		if (YAJL_IS_ARRAY(g))
			for (size_t i = 0; i < g->u.array.len && i < 3; i++)
				if (YAJL_IS_STRING(g->u.array.values[i]))
					buf_printf(&sub, "%s%s", sub.len ? ", " : "", g->u.array.values[i]->u.string);
	}
	items_add(l, type, uri, name, sub.data, (int)ms);
	buf_free(&sub);
	return 1;
}

static yajl_val parse(const char *json)
{
	char err[128];
	return json ? json_parse(json, err, sizeof(err)) : NULL;
}

int items_parse_search(struct items *l, const char *json)
{
	yajl_val root = parse(json);
	if (!YAJL_IS_OBJECT(root)) {
		yajl_tree_free(root);
		return -EINVAL;
	}
	static const struct {
		const char *key, *header;
		enum item_type type;
	} groups[] = {
		{"tracks", "Tracks", ITEM_TRACK},
		{"artists", "Artists", ITEM_ARTIST},
		{"albums", "Albums", ITEM_ALBUM},
	};
	int added = 0;
	for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
		yajl_val arr = json_get(json_get(root, groups[g].key), "items");
		if (!YAJL_IS_ARRAY(arr) || arr->u.array.len == 0)
			continue;
		int header = l->n;
		items_add(l, ITEM_HEADER, NULL, groups[g].header, NULL, 0);
		int n = 0;
		for (size_t i = 0; i < arr->u.array.len; i++)
			n += add_object(l, arr->u.array.values[i], groups[g].type);
		if (n == 0) {
			free(l->v[header].title);
			free(l->v[header].sub);
			l->n = header;
		} else {
			added += n + 1;
		}
	}
	yajl_tree_free(root);
	return added;
}

int items_parse_suggest(struct items *l, const char *json)
{
	yajl_val root = parse(json);
	yajl_val arr = json_get(root, "suggestions");
	if (!YAJL_IS_ARRAY(arr)) {
		yajl_tree_free(root);
		return -EINVAL;
	}
	int added = 0;
	for (size_t i = 0; i < arr->u.array.len; i++) {
		yajl_val s = arr->u.array.values[i];
		const char *text = json_get_str(s, "text"), *type = json_get_str(s, "type");
		if (!text)
			continue;
		items_add(l, ITEM_SUGGESTION, json_get_str(s, "uri"), text, type, 0);
		added++;
	}
	yajl_tree_free(root);
	return added;
}

int items_parse_saved(struct items *l, const char *json, const char *wrap)
{
	yajl_val root = parse(json);
	if (!YAJL_IS_OBJECT(root)) {
		yajl_tree_free(root);
		return -EINVAL;
	}
	yajl_val arr = json_get(root, "items");
	if (!arr)
		arr = json_get(json_get(root, "artists"), "items");
	if (!YAJL_IS_ARRAY(arr)) {
		yajl_tree_free(root);
		return -EINVAL;
	}
	int added = 0;
	for (size_t i = 0; i < arr->u.array.len; i++) {
		yajl_val o = arr->u.array.values[i];
		if (wrap)
			o = json_get(o, wrap);
		const char *type = json_get_str(o, "type");
		enum item_type t = !type ? ITEM_TRACK : strcmp(type, "artist") == 0 ? ITEM_ARTIST
							: strcmp(type, "album") == 0    ? ITEM_ALBUM
											: ITEM_TRACK;
		added += add_object(l, o, t);
	}
	yajl_tree_free(root);
	return added;
}

int items_parse_tracks(struct items *l, const char *json)
{
	yajl_val root = parse(json);
	yajl_val arr = json_get(root, "tracks");
	if (!YAJL_IS_ARRAY(arr)) {
		yajl_tree_free(root);
		return -EINVAL;
	}
	int added = 0;
	for (size_t i = 0; i < arr->u.array.len; i++)
		added += add_object(l, arr->u.array.values[i], ITEM_TRACK);
	yajl_tree_free(root);
	return added;
}

int items_parse_playlists(struct items *l, const char *json)
{
	yajl_val root = parse(json);
	yajl_val arr = json_get(root, "items");
	if (!YAJL_IS_ARRAY(arr)) {
		yajl_tree_free(root);
		return -EINVAL;
	}
	int added = 0;
	for (size_t i = 0; i < arr->u.array.len; i++) {
		yajl_val p = arr->u.array.values[i];
		const char *uri = json_get_str(p, "uri"), *name = json_get_str(p, "name");
		if (!uri || !name)
			continue;
		struct buf sub = BUF_INIT;
		yajl_val owner = json_get(p, "owner");
		const char *who = json_get_str(owner, "display_name");
		if (!who)
			who = json_get_str(owner, "id");
		long long total = 0;
		bool collab = false;
		json_get_int(json_get(p, "tracks"), "total", &total);
		json_get_bool(p, "collaborative", &collab);
		buf_printf(&sub, "%s · %lld track%s%s", who ? who : "?", total, total == 1 ? "" : "s",
			   collab ? " · collaborative" : "");
		items_add(l, ITEM_PLAYLIST, uri, name, sub.data, 0);
		buf_free(&sub);
		added++;
	}
	yajl_tree_free(root);
	return added;
}

void items_add_playlist_row(struct items *l, struct yajl_val_s *track)
{
	if (!add_object(l, track, ITEM_TRACK))
		items_add(l, ITEM_TEXT, NULL, "(unavailable)", NULL, 0);
}

int items_parse_playlist_items(struct items *l, const char *json)
{
	yajl_val root = parse(json);
	yajl_val arr = json_get(root, "items");
	if (!arr)
		arr = json_get(json_get(root, "tracks"), "items");
	if (!YAJL_IS_ARRAY(arr)) {
		yajl_tree_free(root);
		return -EINVAL;
	}
	int added = 0;
	for (size_t i = 0; i < arr->u.array.len; i++) {
		items_add_playlist_row(l, json_get(arr->u.array.values[i], "track"));
		added++;
	}
	yajl_tree_free(root);
	return added;
}

int items_parse_devices(struct items *l, const char *json)
{
	yajl_val root = parse(json);
	yajl_val arr = json_get(root, "devices");
	if (!YAJL_IS_ARRAY(arr)) {
		yajl_tree_free(root);
		return -EINVAL;
	}
	int added = 0;
	for (size_t i = 0; i < arr->u.array.len; i++) {
		yajl_val d = arr->u.array.values[i];
		const char *id = json_get_str(d, "id"), *name = json_get_str(d, "name"), *type = json_get_str(d, "type");
		if (!id || !name)
			continue;
		long long vol = 0;
		bool active = false;
		json_get_int(d, "volume_percent", &vol);
		json_get_bool(d, "is_active", &active);
		char sub[96];
		snprintf(sub, sizeof(sub), "%s · vol %lld%%%s", type ? type : "device", vol, active ? " · playing here" : "");
		items_add(l, ITEM_DEVICE, id, name, sub, 0);
		l->v[l->n - 1].marked = active;
		added++;
	}
	yajl_tree_free(root);
	return added;
}

/* Adds one shelf from a playlist-like object; 1 if it had tracks. */
static int add_shelf(struct shelves *s, yajl_val o, const char *title)
{
	yajl_val arr = json_get(json_get(o, "tracks"), "items");
	if (!YAJL_IS_ARRAY(arr))
		return 0;
	struct items tracks = ITEMS_INIT;
	for (size_t i = 0; i < arr->u.array.len; i++)
		add_object(&tracks, json_get(arr->u.array.values[i], "track"), ITEM_TRACK);
	if (tracks.n == 0) {
		items_free(&tracks);
		return 0;
	}
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 8;
		s->v = xrealloc(s->v, (size_t)s->cap * sizeof(*s->v));
	}
	struct shelf *sh = &s->v[s->n++];
	const char *name = json_get_str(o, "name"), *desc = json_get_str(o, "description");
	sh->title = xstrdup(name ? name : title ? title : "");
	sh->sub = xstrdup(desc ? desc : "");
	sh->tracks = tracks;
	return 1;
}

int shelves_parse(struct shelves *s, const char *json, const char *default_title)
{
	yajl_val root = parse(json);
	if (!YAJL_IS_OBJECT(root)) {
		yajl_tree_free(root);
		return -EINVAL;
	}
	int added = 0;
	yajl_val mixes = json_get(root, "mixes");
	if (YAJL_IS_ARRAY(mixes)) {
		for (size_t i = 0; i < mixes->u.array.len; i++)
			added += add_shelf(s, mixes->u.array.values[i], default_title);
	} else if (YAJL_IS_OBJECT(json_get(root, "tracks"))) {
		added += add_shelf(s, root, default_title);
	} else {
		added = -EINVAL;
	}
	yajl_tree_free(root);
	return added;
}

void shelves_clear(struct shelves *s)
{
	for (int i = 0; i < s->n; i++) {
		free(s->v[i].title);
		free(s->v[i].sub);
		items_free(&s->v[i].tracks);
	}
	s->n = 0;
}

void shelves_free(struct shelves *s)
{
	shelves_clear(s);
	free(s->v);
	s->v = NULL;
	s->cap = 0;
}

int playlist_info_parse(const char *json, struct playlist_info *out)
{
	memset(out, 0, sizeof(*out));
	yajl_val root = parse(json);
	const char *name = json_get_str(root, "name"), *uri = json_get_str(root, "uri");
	if (!YAJL_IS_OBJECT(root) || !name || !uri) {
		yajl_tree_free(root);
		return -EINVAL;
	}
	snprintf(out->uri, sizeof(out->uri), "%s", uri);
	snprintf(out->name, sizeof(out->name), "%s", name);
	yajl_val owner = json_get(root, "owner");
	const char *oid = json_get_str(owner, "id"), *oname = json_get_str(owner, "display_name");
	snprintf(out->owner_id, sizeof(out->owner_id), "%s", oid ? oid : "");
	snprintf(out->owner, sizeof(out->owner), "%s", oname ? oname : oid ? oid : "");
	const char *snap = json_get_str(root, "snapshot_id");
	snprintf(out->snapshot_id, sizeof(out->snapshot_id), "%s", snap ? snap : "");
	json_get_bool(root, "collaborative", &out->collaborative);
	json_get_int(json_get(root, "tracks"), "total", &out->total);
	/* Collaborators are user ids (an Encore extension); user objects are taken too. */
	yajl_val c = json_get(root, "collaborators");
	struct buf b = BUF_INIT;
	if (YAJL_IS_ARRAY(c))
		for (size_t i = 0; i < c->u.array.len; i++) {
			yajl_val v = c->u.array.values[i];
			const char *id = YAJL_IS_STRING(v) ? v->u.string : json_get_str(v, "id");
			if (id)
				buf_printf(&b, "%s%s", b.len ? ", " : "", id);
		}
	snprintf(out->collaborators, sizeof(out->collaborators), "%s", b.data ? b.data : "");
	buf_free(&b);
	yajl_tree_free(root);
	return 0;
}
