/* card: human-readable renderings of Web API objects for `encore show` and
 * `encore whoami`. Pure functions of the parsed JSON, so they unit-test. */
#ifndef ENCORE_CARD_H
#define ENCORE_CARD_H
#include "buf.h"
#include <yajl/yajl_tree.h>

/* Appends a duration as m:ss (h:mm:ss from one hour), truncating to whole seconds,
 * as players display it. Negative input renders as 0:00. */
void card_duration(struct buf *out, long long ms);
/* Appends the names of the "artists" array joined by ", "; "" when absent. */
void card_artists(struct buf *out, yajl_val obj);
/* Appends a multi-line card for a track, album or artist object (type is "track",
 * "album" or "artist"). Returns 0, or -EINVAL for another type or a non-object. */
int card_render(struct buf *out, const char *type, yajl_val obj);
/* Appends a card for a /v1/me user object. Returns 0 or -EINVAL for a non-object. */
int card_render_user(struct buf *out, yajl_val me);

#endif
