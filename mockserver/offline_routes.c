/* offline_routes: licences for offline playback. A device registers an X25519 public
 * key; each licence is a random 32-byte key per (user, device, track) that leaves the
 * server only sealed to that device (crypto_box_seal), so a copied download folder is
 * useless on another device. The account tier is read from the database, not from the
 * token, so a downgrade takes effect at the next sync rather than at token expiry. */
#include "db.h"
#include "id.h"
#include "json.h"
#include "server.h"
#include "xmem.h"
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OFFLINE_MAX_DEVICES 3
#define OFFLINE_MAX_TRACKS 3333
#define DEVICE_ID_MAX 64

/* True when the user's current tier in the database is premium. */
static bool user_premium(sqlite3 *db, const char *user)
{
	sqlite3_stmt *st = db_prepare(db, "SELECT tier FROM users WHERE id = ?");
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	bool p = sqlite3_step(st) == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), "premium") == 0;
	sqlite3_finalize(st);
	return p;
}

/* Device ids are chosen by the client: printable, bounded, no separators. */
static bool device_id_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > DEVICE_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_'))
			return false;
	return true;
}

/* The device's public key; false when the device is not registered. */
static bool device_key(sqlite3 *db, const char *user, const char *dev, unsigned char pk[crypto_box_PUBLICKEYBYTES])
{
	sqlite3_stmt *st = db_prepare(db, "SELECT public_key FROM offline_devices WHERE user_id = ? AND device_id = ?");
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, dev, -1, SQLITE_STATIC);
	bool ok = false;
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == crypto_box_PUBLICKEYBYTES) {
		memcpy(pk, sqlite3_column_blob(st, 0), crypto_box_PUBLICKEYBYTES);
		ok = true;
	}
	sqlite3_finalize(st);
	return ok;
}

static void route_register_device(struct call *c)
{
	if (!user_premium(c->db, c->user.sub)) {
		call_error(c, 403, "premium_required: offline downloads need a premium account");
		return;
	}
	yajl_val v = call_body_json(c);
	if (!v)
		return;
	const char *dev = json_get_str(v, "device_id");
	const char *pk64 = json_get_str(v, "public_key");
	unsigned char pk[crypto_box_PUBLICKEYBYTES];
	size_t pklen = 0;
	if (!device_id_ok(dev)) {
		call_error(c, 400, "device_id must be 1-%d characters of [A-Za-z0-9_-]", DEVICE_ID_MAX);
		goto out;
	}
	if (!pk64 || sodium_base642bin(pk, sizeof(pk), pk64, strlen(pk64), NULL, &pklen, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    pklen != sizeof(pk)) {
		call_error(c, 400, "public_key must be a 32-byte X25519 key in unpadded base64url");
		goto out;
	}
	if (db_begin(c->db) != 0) {
		call_error(c, 503, "database busy");
		goto out;
	}
	unsigned char old[crypto_box_PUBLICKEYBYTES];
	bool exists = device_key(c->db, c->user.sub, dev, old);
	if (exists && memcmp(old, pk, sizeof(pk)) != 0) {
		db_rollback(c->db);
		call_error(c, 409, "device %s is registered with another key; remove it first", dev);
		goto out;
	}
	if (!exists) {
		sqlite3_stmt *st = db_prepare(c->db, "SELECT count(*) FROM offline_devices WHERE user_id = ?");
		sqlite3_bind_text(st, 1, c->user.sub, -1, SQLITE_STATIC);
		int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
		sqlite3_finalize(st);
		if (n >= OFFLINE_MAX_DEVICES) {
			db_rollback(c->db);
			call_error(c, 403, "device_limit: at most %d offline devices per account; remove one first", OFFLINE_MAX_DEVICES);
			goto out;
		}
		st = db_prepare(c->db, "INSERT INTO offline_devices (user_id, device_id, public_key, created_at) VALUES (?, ?, ?, ?)");
		sqlite3_bind_text(st, 1, c->user.sub, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, dev, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 3, pk, sizeof(pk), SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)time(NULL));
		int rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE) {
			db_rollback(c->db);
			call_error(c, 503, "cannot register the device");
			goto out;
		}
	}
	db_commit(c->db);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "device_id");
	jw_str(&w, dev);
	jw_key(&w, "max_devices");
	jw_int(&w, OFFLINE_MAX_DEVICES);
	jw_key(&w, "max_tracks");
	jw_int(&w, OFFLINE_MAX_TRACKS);
	jw_obj_end(&w);
	call_json(c, exists ? 200 : 201, jw_finish(&w));
out:
	yajl_tree_free(v);
}

static void route_delete_device(struct call *c)
{
	const char *dev = c->params[0];
	sqlite3_stmt *st = db_prepare(c->db, "DELETE FROM offline_devices WHERE user_id = ? AND device_id = ?");
	sqlite3_bind_text(st, 1, c->user.sub, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, dev, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		call_error(c, 503, "cannot remove the device");
		return;
	}
	if (sqlite3_changes(c->db) == 0) {
		call_error(c, 404, "no offline device %s", dev);
		return;
	}
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "device_id", dev);
	jw_kbool(&w, "removed", true);
	jw_obj_end(&w);
	call_json(c, 200, jw_finish(&w));
}

/* Writes one licence object: the key sealed to the device, so only it can open it.
 * Podcast episodes are licensed like tracks (their ids never collide); only the URI differs. */
static void write_license(struct jw *w, const char *track, bool episode, const unsigned char *key, const unsigned char *pk, int64_t expires)
{
	unsigned char sealed[32 + crypto_box_SEALBYTES];
	crypto_box_seal(sealed, key, 32, pk);
	char b64[sodium_base64_ENCODED_LEN(sizeof(sealed), sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	sodium_bin2base64(b64, sizeof(b64), sealed, sizeof(sealed), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	jw_obj(w);
	jw_key(w, "track_id");
	jw_str(w, track);
	jw_key(w, "uri");
	char uri[64];
	snprintf(uri, sizeof(uri), "encore:%s:%s", episode ? "episode" : "track", track);
	jw_str(w, uri);
	jw_key(w, "sealed_key");
	jw_str(w, b64);
	jw_key(w, "expires_at");
	jw_int(w, expires);
	jw_obj_end(w);
}

/* Parses "encore:track:ID", "encore:episode:ID" or a bare id into id. */
static bool track_id_of(const char *s, char id[ID_LEN + 1])
{
	if (!s)
		return false;
	if (strncmp(s, "encore:track:", 13) == 0)
		s += 13;
	else if (strncmp(s, "encore:episode:", 15) == 0)
		s += 15;
	if (!id_valid(s))
		return false;
	memcpy(id, s, ID_LEN + 1);
	return true;
}

static void route_licenses(struct call *c)
{
	if (!user_premium(c->db, c->user.sub)) {
		call_error(c, 403, "premium_required: offline downloads need a premium account");
		return;
	}
	yajl_val v = call_body_json(c);
	if (!v)
		return;
	char *json = NULL;
	const char *dev = json_get_str(v, "device_id");
	yajl_val uris = json_get(v, "uris");
	unsigned char pk[crypto_box_PUBLICKEYBYTES];
	if (!device_id_ok(dev)) {
		call_error(c, 400, "device_id must be 1-%d characters of [A-Za-z0-9_-]", DEVICE_ID_MAX);
		goto out;
	}
	if (!uris || !YAJL_IS_ARRAY(uris) || uris->u.array.len == 0) {
		call_error(c, 400, "uris must be a non-empty array of track or episode URIs");
		goto out;
	}
	if (uris->u.array.len > OFFLINE_MAX_TRACKS) {
		call_error(c, 400, "track_limit: at most %d tracks per request", OFFLINE_MAX_TRACKS);
		goto out;
	}
	size_t n = uris->u.array.len;
	char (*ids)[ID_LEN + 1] = xcalloc(n, sizeof(*ids));
	for (size_t i = 0; i < n; i++) {
		yajl_val u = uris->u.array.values[i];
		if (!YAJL_IS_STRING(u) || !track_id_of(YAJL_GET_STRING(u), ids[i])) {
			call_error(c, 400, "uris[%zu] is not a track or episode URI (encore:track:ID, encore:episode:ID)", i);
			free(ids);
			goto out;
		}
	}
	if (db_begin(c->db) != 0) {
		free(ids);
		call_error(c, 503, "database busy");
		goto out;
	}
	if (!device_key(c->db, c->user.sub, dev, pk)) {
		db_rollback(c->db);
		free(ids);
		call_error(c, 404, "device %s is not registered for offline use (POST /v1/me/offline/devices)", dev);
		goto out;
	}
	sqlite3_stmt *cnt = db_prepare(c->db, "SELECT count(*) FROM offline_licenses WHERE user_id = ? AND device_id = ?");
	sqlite3_bind_text(cnt, 1, c->user.sub, -1, SQLITE_STATIC);
	sqlite3_bind_text(cnt, 2, dev, -1, SQLITE_STATIC);
	int have = sqlite3_step(cnt) == SQLITE_ROW ? sqlite3_column_int(cnt, 0) : 0;
	sqlite3_finalize(cnt);
	sqlite3_stmt *exists = db_prepare(c->db, "SELECT 0 FROM tracks WHERE id = ?1 UNION ALL SELECT 1 FROM episodes WHERE id = ?1");
	sqlite3_stmt *old = db_prepare(c->db, "SELECT license_key FROM offline_licenses WHERE user_id = ? AND device_id = ? AND track_id = ?");
	sqlite3_stmt *put = db_prepare(c->db, "INSERT INTO offline_licenses (user_id, device_id, track_id, license_key, issued_at, expires_at) "
					      "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (user_id, device_id, track_id) "
					      "DO UPDATE SET expires_at = excluded.expires_at");
	int64_t now = (int64_t)time(NULL);
	int64_t expires = now + (int64_t)c->srv->opt.offline_license_days * 86400;
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "device_id");
	jw_str(&w, dev);
	jw_key(&w, "licenses");
	jw_arr(&w);
	int status = 200;
	char msg[200] = "";
	for (size_t i = 0; i < n && !msg[0]; i++) {
		sqlite3_reset(exists);
		sqlite3_bind_text(exists, 1, ids[i], -1, SQLITE_STATIC);
		if (sqlite3_step(exists) != SQLITE_ROW) {
			status = 404;
			snprintf(msg, sizeof(msg), "no track or episode %s", ids[i]);
			break;
		}
		bool episode = sqlite3_column_int(exists, 0) == 1;
		unsigned char key[32];
		sqlite3_reset(old);
		sqlite3_bind_text(old, 1, c->user.sub, -1, SQLITE_STATIC);
		sqlite3_bind_text(old, 2, dev, -1, SQLITE_STATIC);
		sqlite3_bind_text(old, 3, ids[i], -1, SQLITE_STATIC);
		if (sqlite3_step(old) == SQLITE_ROW && sqlite3_column_bytes(old, 0) == 32) {
			memcpy(key, sqlite3_column_blob(old, 0), 32);  /* a renewal keeps the key: the files stay valid */
		} else {
			if (have >= OFFLINE_MAX_TRACKS) {
				status = 403;
				snprintf(msg, sizeof(msg), "track_limit: at most %d offline tracks per device; remove some first", OFFLINE_MAX_TRACKS);
				break;
			}
			have++;
			randombytes_buf(key, sizeof(key));
		}
		sqlite3_reset(put);
		sqlite3_bind_text(put, 1, c->user.sub, -1, SQLITE_STATIC);
		sqlite3_bind_text(put, 2, dev, -1, SQLITE_STATIC);
		sqlite3_bind_text(put, 3, ids[i], -1, SQLITE_STATIC);
		sqlite3_bind_blob(put, 4, key, 32, SQLITE_TRANSIENT);
		sqlite3_bind_int64(put, 5, now);
		sqlite3_bind_int64(put, 6, expires);
		if (sqlite3_step(put) != SQLITE_DONE) {
			status = 503;
			snprintf(msg, sizeof(msg), "cannot store the licence");
			break;
		}
		write_license(&w, ids[i], episode, key, pk, expires);
		sodium_memzero(key, sizeof(key));
	}
	sqlite3_finalize(exists);
	sqlite3_finalize(old);
	sqlite3_finalize(put);
	free(ids);
	jw_arr_end(&w);
	jw_key(&w, "tracks_on_device");
	jw_int(&w, have);
	jw_key(&w, "max_tracks");
	jw_int(&w, OFFLINE_MAX_TRACKS);
	jw_obj_end(&w);
	json = jw_finish(&w);
	if (msg[0]) {
		/* All or nothing: a request that would cross a limit grants none of its tracks. */
		db_rollback(c->db);
		call_error(c, status, "%s", msg);
		goto out;
	}
	db_commit(c->db);
	call_json(c, 200, json);
	json = NULL;
out:
	free(json);
	yajl_tree_free(v);
}

static void route_sync(struct call *c)
{
	yajl_val v = call_body_json(c);
	if (!v)
		return;
	const char *dev = json_get_str(v, "device_id");
	if (!device_id_ok(dev)) {
		call_error(c, 400, "device_id must be 1-%d characters of [A-Za-z0-9_-]", DEVICE_ID_MAX);
		yajl_tree_free(v);
		return;
	}
	bool premium = user_premium(c->db, c->user.sub);
	unsigned char pk[crypto_box_PUBLICKEYBYTES];
	if (db_begin(c->db) != 0) {
		call_error(c, 503, "database busy");
		yajl_tree_free(v);
		return;
	}
	bool active = device_key(c->db, c->user.sub, dev, pk);
	int64_t now = (int64_t)time(NULL);
	int64_t expires = now + (int64_t)c->srv->opt.offline_license_days * 86400;
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "device_id");
	jw_str(&w, dev);
	jw_key(&w, "device_active");
	jw_bool(&w, active);
	jw_key(&w, "premium");
	jw_bool(&w, premium);
	jw_key(&w, "licenses");
	jw_arr(&w);
	sqlite3_stmt *st = db_prepare(c->db, "SELECT l.track_id, l.license_key, EXISTS (SELECT 1 FROM episodes e WHERE e.id = l.track_id)"
					     " FROM offline_licenses l WHERE l.user_id = ? AND l.device_id = ? ORDER BY l.track_id");
	sqlite3_bind_text(st, 1, c->user.sub, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, dev, -1, SQLITE_STATIC);
	if (premium && active)
		while (sqlite3_step(st) == SQLITE_ROW)
			if (sqlite3_column_bytes(st, 1) == 32)
				write_license(&w, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int(st, 2) != 0, sqlite3_column_blob(st, 1), pk, expires);
	jw_arr_end(&w);
	jw_key(&w, "revoked");
	jw_arr(&w);
	if (!premium || !active) {
		/* Everything this device held is revoked; the rows go, so a later upgrade starts afresh. */
		sqlite3_reset(st);
		while (sqlite3_step(st) == SQLITE_ROW) {
			char uri[64];
			snprintf(uri, sizeof(uri), "encore:%s:%s", sqlite3_column_int(st, 2) ? "episode" : "track", (const char *)sqlite3_column_text(st, 0));
			jw_str(&w, uri);
		}
	}
	sqlite3_finalize(st);
	jw_arr_end(&w);
	jw_obj_end(&w);
	if (premium && active) {
		st = db_prepare(c->db, "UPDATE offline_licenses SET expires_at = ?1 WHERE user_id = ?2 AND device_id = ?3");
		sqlite3_bind_int64(st, 1, expires);
	} else {
		st = db_prepare(c->db, "DELETE FROM offline_licenses WHERE user_id = ?2 AND device_id = ?3");
	}
	sqlite3_bind_text(st, 2, c->user.sub, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, dev, -1, SQLITE_STATIC);
	sqlite3_step(st);
	sqlite3_finalize(st);
	db_commit(c->db);
	call_json(c, 200, jw_finish(&w));
	yajl_tree_free(v);
}

const struct route offline_routes[] = {
	{"POST", "/v1/me/offline/devices", route_register_device, 0},
	{"DELETE", "/v1/me/offline/devices/{id}", route_delete_device, 0},
	{"POST", "/v1/me/offline/licenses", route_licenses, 0},
	{"POST", "/v1/me/offline/sync", route_sync, 0},
	{NULL, NULL, NULL, 0},
};
