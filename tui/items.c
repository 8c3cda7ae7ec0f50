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
