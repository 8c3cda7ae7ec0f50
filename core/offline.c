/* offline: see offline.h. Every write of a file goes to a temporary name, is fsynced and
 * renamed, and only then checkpointed in SQLite: after a crash a checkpointed file is
 * complete or (if the disk lied) fails authentication and is fetched again. */
#include "offline.h"
#include "api.h"
#include "b64.h"
#include "buf.h"
#include "json.h"
#include "manifest.h"
#include "xmem.h"
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define KEY_MAGIC "encore-offline-device-v1"
#define CONTEXT "encore-offline-v1"
#define LICENSE_BATCH 500
#define DISK_MARGIN ((uint64_t)64 << 20)  /* default free space kept for the rest of the system */

struct offline {
	char *dir;
	sqlite3 *db;
	char device_id[40];
	uint8_t pk[crypto_box_PUBLICKEYBYTES];
	uint8_t sk[crypto_box_SECRETKEYBYTES];
	bool registered;
	int64_t quota_override;  /* -1: the stored quota applies */
	uint64_t min_free;       /* bytes of disk a download must leave free */
	CURL *curl;   /* one handle for every CDN fetch: keep-alive across segments */
};

struct offline_track {
	struct offline *o;
	char id[ID_LEN + 1];
	uint8_t key[32];
	struct manifest *m;   /* borrowed view for hashes: a private copy */
};

static const char SCHEMA[] =
	"CREATE TABLE IF NOT EXISTS tracks ("
	"  track_id TEXT PRIMARY KEY,"
	"  sealed_key BLOB NOT NULL,"
	"  expires_at INTEGER NOT NULL,"
	"  bitrate INTEGER NOT NULL DEFAULT 0,"
	"  manifest TEXT,"            /* the manifest, reduced to the downloaded rendition, no inline audio */
	"  meta TEXT,"
	"  name TEXT NOT NULL DEFAULT '',"
	"  files_total INTEGER NOT NULL DEFAULT 0,"
	"  complete INTEGER NOT NULL DEFAULT 0,"
	"  added_at INTEGER NOT NULL,"
	"  kind TEXT NOT NULL DEFAULT 'track');"  /* 'track' or 'episode' */
	"CREATE TABLE IF NOT EXISTS files ("  /* the per-file checkpoints; idx -1 = init */
	"  track_id TEXT NOT NULL,"
	"  idx INTEGER NOT NULL,"
	"  bytes INTEGER NOT NULL,"
	"  PRIMARY KEY (track_id, idx)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value INTEGER NOT NULL);";

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

static sqlite3_stmt *prep(struct offline *o, const char *sql)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(o->db, sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "offline: cannot prepare \"%s\": %s\n", sql, sqlite3_errmsg(o->db));
		abort();  /* statements are constants: a failure is a bug */
	}
	return st;
}

/* ---------------------------------------------------------------- pure crypto */

void offline_content_key(const uint8_t licence_key[32], const uint8_t device_sk[32], const char *track_id, uint8_t out[32])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, device_sk, 32, 32);
	crypto_generichash_update(&st, (const unsigned char *)CONTEXT, sizeof(CONTEXT));
	crypto_generichash_update(&st, licence_key, 32);
	crypto_generichash_update(&st, (const unsigned char *)track_id, strlen(track_id));
	crypto_generichash_final(&st, out, 32);
}

static size_t make_ad(char *ad, size_t cap, const char *track_id, int index)
{
	int n = snprintf(ad, cap, "%s:%s:%d", CONTEXT, track_id, index);
	return n > 0 ? (size_t)n : 0;
}

uint8_t *offline_seal(const uint8_t key[32], const char *track_id, int index, const uint8_t *plain, size_t len, size_t *outlen)
{
	char ad[96];
	size_t adlen = make_ad(ad, sizeof(ad), track_id, index);
	size_t total = crypto_secretstream_xchacha20poly1305_HEADERBYTES + len + crypto_secretstream_xchacha20poly1305_ABYTES;
	uint8_t *out = xmalloc(total);
	crypto_secretstream_xchacha20poly1305_state st;
	crypto_secretstream_xchacha20poly1305_init_push(&st, out, key);
	crypto_secretstream_xchacha20poly1305_push(&st, out + crypto_secretstream_xchacha20poly1305_HEADERBYTES, NULL, plain, len,
						   (const unsigned char *)ad, adlen, crypto_secretstream_xchacha20poly1305_TAG_FINAL);
	*outlen = total;
	return out;
}

int offline_unseal(const uint8_t key[32], const char *track_id, int index, const uint8_t *box, size_t boxlen,
		   uint8_t **plain, size_t *len)
{
	size_t over = crypto_secretstream_xchacha20poly1305_HEADERBYTES + crypto_secretstream_xchacha20poly1305_ABYTES;
	if (boxlen < over)
		return -EBADMSG;
	char ad[96];
	size_t adlen = make_ad(ad, sizeof(ad), track_id, index);
	crypto_secretstream_xchacha20poly1305_state st;
	if (crypto_secretstream_xchacha20poly1305_init_pull(&st, box, key) != 0)
		return -EBADMSG;
	uint8_t *out = xmalloc(boxlen - over + 1);
	unsigned long long n = 0;
	unsigned char tag = 0;
	if (crypto_secretstream_xchacha20poly1305_pull(&st, out, &n, &tag, box + crypto_secretstream_xchacha20poly1305_HEADERBYTES,
						       boxlen - crypto_secretstream_xchacha20poly1305_HEADERBYTES,
						       (const unsigned char *)ad, adlen) != 0 ||
	    tag != crypto_secretstream_xchacha20poly1305_TAG_FINAL) {
		free(out);
		return -EBADMSG;
	}
	*plain = out;
	*len = (size_t)n;
	return 0;
}

/* ---------------------------------------------------------------- files */

static char *file_path(const struct offline *o, const char *track_id, int index)
{
	if (index < 0)
		return xasprintf("%s/%s/init.enc", o->dir, track_id);
	return xasprintf("%s/%s/%06d.enc", o->dir, track_id, index);
}

static int read_file(const char *path, uint8_t **data, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat sb;
	if (fstat(fd, &sb) != 0 || sb.st_size > (1 << 28)) {
		close(fd);
		return -EIO;
	}
	uint8_t *b = xmalloc((size_t)sb.st_size + 1);
	size_t got = 0;
	while (got < (size_t)sb.st_size) {
		ssize_t r = read(fd, b + got, (size_t)sb.st_size - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	*data = b;
	*len = got;
	return 0;
}

/* Writes data to path atomically: temporary file, fsync, rename. 0 or -errno. */
static int write_atomic(const char *path, const uint8_t *data, size_t len, mode_t mode)
{
	char *tmp = xasprintf("%s.tmp", path);
	int rc = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0) {
			rc = -errno;
			break;
		}
		off += (size_t)w;
	}
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	close(fd);
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc != 0)
		unlink(tmp);
out:
	free(tmp);
	return rc;
}

/* ---------------------------------------------------------------- device key */

static int load_or_create_key(struct offline *o, const char *path, char *err, size_t errlen)
{
	uint8_t *data = NULL;
	size_t len = 0;
	if (read_file(path, &data, &len) == 0) {
		data[len] = 0;
		char magic[32], dev[40], pk64[64], sk64[64];
		int ok = sscanf((char *)data, "%31s %39s %63s %63s", magic, dev, pk64, sk64) == 4 && strcmp(magic, KEY_MAGIC) == 0;
		sodium_memzero(data, len);
		free(data);
		size_t pkl = 0, skl = 0;
		if (!ok || sodium_base642bin(o->pk, sizeof(o->pk), pk64, strlen(pk64), NULL, &pkl, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
		    sodium_base642bin(o->sk, sizeof(o->sk), sk64, strlen(sk64), NULL, &skl, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
		    pkl != sizeof(o->pk) || skl != sizeof(o->sk)) {
			snprintf(err, errlen, "%s: not a device key file", path);
			sodium_memzero(sk64, sizeof(sk64));
			return -EINVAL;
		}
		sodium_memzero(sk64, sizeof(sk64));
		snprintf(o->device_id, sizeof(o->device_id), "%s", dev);
		return 0;
	}
	crypto_box_keypair(o->pk, o->sk);
	uint8_t rnd[12];
	randombytes_buf(rnd, sizeof(rnd));
	char hex[25];
	sodium_bin2hex(hex, sizeof(hex), rnd, sizeof(rnd));
	snprintf(o->device_id, sizeof(o->device_id), "dev-%s", hex);
	char pk64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	char sk64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	sodium_bin2base64(pk64, sizeof(pk64), o->pk, sizeof(o->pk), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_bin2base64(sk64, sizeof(sk64), o->sk, sizeof(o->sk), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *text = xasprintf("%s %s %s %s\n", KEY_MAGIC, o->device_id, pk64, sk64);
	int rc = write_atomic(path, (const uint8_t *)text, strlen(text), 0600);
	sodium_memzero(text, strlen(text));
	sodium_memzero(sk64, sizeof(sk64));
	free(text);
	if (rc != 0)
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
	return rc;
}

/* ---------------------------------------------------------------- open */

struct offline *offline_open(const char *dir, const char *key_path, char *err, size_t errlen)
{
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium cannot start");
		return NULL;
	}
	struct offline *o = xcalloc(1, sizeof(*o));
	o->dir = xstrdup(dir);
	o->quota_override = -1;
	o->min_free = DISK_MARGIN;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		goto fail;
	}
	if (load_or_create_key(o, key_path, err, errlen) != 0)
		goto fail;
	char *dbp = xasprintf("%s/offline.db", dir);
	int rc = sqlite3_open_v2(dbp, &o->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
	free(dbp);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot open the offline store in %s", dir);
		goto fail;
	}
	sqlite3_busy_timeout(o->db, 5000);
	if (sqlite3_exec(o->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(o->db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "offline store: %s", sqlite3_errmsg(o->db));
		goto fail;
	}
	/* Stores made before episodes could be downloaded lack the column; the error when it
	 * already exists is expected. */
	sqlite3_exec(o->db, "ALTER TABLE tracks ADD COLUMN kind TEXT NOT NULL DEFAULT 'track'", NULL, NULL, NULL);
	return o;
fail:
	offline_free(o);
	return NULL;
}

void offline_free(struct offline *o)
{
	if (!o)
		return;
	if (o->db)
		sqlite3_close(o->db);
	if (o->curl)
		curl_easy_cleanup(o->curl);
	sodium_memzero(o->sk, sizeof(o->sk));
	free(o->dir);
	free(o);
}

const char *offline_device_id(const struct offline *o)
{
	return o->device_id;
}

/* ---------------------------------------------------------------- server calls */

static int post_json(struct api *api, const char *path, const char *body, struct api_response *r, char *err, size_t errlen)
{
	int rc = api_request(api, "POST", path, "application/json", body, strlen(body), r);
	if (rc != 0) {
		snprintf(err, errlen, "cannot reach the server: %s", r->error[0] ? r->error : strerror(-rc));
		return -EIO;
	}
	if (r->status / 100 != 2) {
		char msg[256] = "";
		api_error_message(r->body.data ? r->body.data : "", msg, sizeof(msg));
		snprintf(err, errlen, "%s", msg[0] ? msg : "refused by the server");
		return r->status == 403 ? -EACCES : r->status == 404 ? -ENOENT : -EIO;
	}
	return 0;
}

int offline_register(struct offline *o, struct api *api, char *err, size_t errlen)
{
	if (o->registered)
		return 0;
	char pk64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	sodium_bin2base64(pk64, sizeof(pk64), o->pk, sizeof(o->pk), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "device_id", o->device_id);
	jw_kstr(&w, "public_key", pk64);
	jw_obj_end(&w);
	char *body = jw_finish(&w);
	struct api_response r;
	int rc = post_json(api, "/v1/me/offline/devices", body, &r, err, errlen);
	free(body);
	api_response_free(&r);
	if (rc == 0)
		o->registered = true;
	return rc;
}

/* Stores the licences of a licences/sync answer (new keys, new expiries); returns how many. */
static int store_licences(struct offline *o, yajl_val list)
{
	if (!list || !YAJL_IS_ARRAY(list))
		return 0;
	sqlite3_stmt *st = prep(o, "INSERT INTO tracks (track_id, sealed_key, expires_at, added_at, kind) VALUES (?1, ?2, ?3, ?4, ?5) "
				   "ON CONFLICT (track_id) DO UPDATE SET sealed_key = excluded.sealed_key, expires_at = excluded.expires_at");
	int n = 0;
	sqlite3_exec(o->db, "BEGIN", NULL, NULL, NULL);
	for (size_t i = 0; i < list->u.array.len; i++) {
		yajl_val l = list->u.array.values[i];
		const char *id = json_get_str(l, "track_id");
		const char *sk = json_get_str(l, "sealed_key");
		long long exp = 0;
		if (!id || !id_valid(id) || !sk || !json_get_int(l, "expires_at", &exp))
			continue;
		size_t blen = 0;
		unsigned char *blob = b64url_decode(sk, strlen(sk), &blen);
		if (!blob)
			continue;
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, blob, (int)blen, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 3, exp);
		sqlite3_bind_int64(st, 4, now_s());
		const char *uri = json_get_str(l, "uri");
		sqlite3_bind_text(st, 5, uri && strncmp(uri, "encore:episode:", 15) == 0 ? "episode" : "track", -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_DONE)
			n++;
		free(blob);
	}
	sqlite3_exec(o->db, "COMMIT", NULL, NULL, NULL);
	sqlite3_finalize(st);
	return n;
}

int offline_license(struct offline *o, struct api *api, const char (*ids)[ID_LEN + 1], size_t n, char *err, size_t errlen)
{
	char (*uris)[OFFLINE_URI_MAX] = xcalloc(n ? n : 1, sizeof(*uris));
	for (size_t i = 0; i < n; i++)
		snprintf(uris[i], OFFLINE_URI_MAX, "encore:track:%s", ids[i]);
	int rc = offline_license_uris(o, api, (const char(*)[OFFLINE_URI_MAX])uris, n, err, errlen);
	free(uris);
	return rc;
}

int offline_license_uris(struct offline *o, struct api *api, const char (*uris)[OFFLINE_URI_MAX], size_t n, char *err, size_t errlen)
{
	int rc = offline_register(o, api, err, errlen);
	for (size_t at = 0; rc == 0 && at < n; at += LICENSE_BATCH) {
		struct jw w;
		jw_init(&w);
		jw_obj(&w);
		jw_kstr(&w, "device_id", o->device_id);
		jw_key(&w, "uris");
		jw_arr(&w);
		for (size_t i = at; i < n && i < at + LICENSE_BATCH; i++)
			jw_str(&w, uris[i]);
		jw_arr_end(&w);
		jw_obj_end(&w);
		char *body = jw_finish(&w);
		struct api_response r;
		rc = post_json(api, "/v1/me/offline/licenses", body, &r, err, errlen);
		free(body);
		if (rc == 0) {
			yajl_val v = json_parse(r.body.data ? r.body.data : "", NULL, 0);
			store_licences(o, json_get(v, "licenses"));
			yajl_tree_free(v);
		}
		api_response_free(&r);
	}
	return rc;
}

/* ---------------------------------------------------------------- licences and keys */

/* Opens the sealed licence key of a track and derives its content key. 0, -ENOENT,
 * -EKEYEXPIRED (when now > 0 and past expiry), -EKEYREJECTED (not sealed to this device). */
static int track_key(struct offline *o, const char *id, int64_t now, uint8_t key[32], int64_t *expires)
{
	sqlite3_stmt *st = prep(o, "SELECT sealed_key, expires_at FROM tracks WHERE track_id = ?");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int rc = -ENOENT;
	if (sqlite3_step(st) == SQLITE_ROW) {
		int64_t exp = sqlite3_column_int64(st, 1);
		if (expires)
			*expires = exp;
		uint8_t lk[32];
		if (now > 0 && exp < now)
			rc = -EKEYEXPIRED;
		else if (sqlite3_column_bytes(st, 0) != 32 + crypto_box_SEALBYTES ||
			 crypto_box_seal_open(lk, sqlite3_column_blob(st, 0), 32 + crypto_box_SEALBYTES, o->pk, o->sk) != 0)
			rc = -EKEYREJECTED;
		else {
			offline_content_key(lk, o->sk, id, key);
			sodium_memzero(lk, sizeof(lk));
			rc = 0;
		}
	}
	sqlite3_finalize(st);
	return rc;
}

/* ---------------------------------------------------------------- download */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	buf_append(ud, p, size * n);
	return size * n;
}

/* GETs an absolute URL into body; returns the HTTP status, or 0 when none came. */
static long cdn_get(struct offline *o, const char *url, struct buf *body)
{
	if (!o->curl)
		o->curl = curl_easy_init();
	buf_reset(body);
	curl_easy_reset(o->curl);
	curl_easy_setopt(o->curl, CURLOPT_URL, url);
	curl_easy_setopt(o->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(o->curl, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(o->curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(o->curl, CURLOPT_TIMEOUT_MS, 60000L);
	curl_easy_setopt(o->curl, CURLOPT_NOSIGNAL, 1L);
	long status = 0;
	if (curl_easy_perform(o->curl) == CURLE_OK)
		curl_easy_getinfo(o->curl, CURLINFO_RESPONSE_CODE, &status);
	return status;
}

static bool hash_ok(const uint8_t *data, size_t len, const char *hex_want)
{
	unsigned char h[32];
	char hex[65];
	crypto_generichash(h, sizeof(h), data, len, NULL, 0);
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	return strcmp(hex, hex_want) == 0;
}

/* Fetches the manifest and reduces it to one rendition: quality 0 = the best listed
 * (the server lists only what this account may use), else the best at or below it. */
static int fetch_manifest(struct offline *o, struct api *api, const char *id, int quality, int want_bitrate,
			  struct manifest **out, char *err, size_t errlen)
{
	(void)o;
	char path[128];
	snprintf(path, sizeof(path), "/v1/playback/%s?inline=0", id);
	struct api_response r;
	int rc = api_get(api, path, &r);
	if (rc != 0 || r.status != 200) {
		char msg[256] = "";
		if (rc == 0)
			api_error_message(r.body.data ? r.body.data : "", msg, sizeof(msg));
		snprintf(err, errlen, "manifest of %s: %s", id, rc != 0 ? "cannot reach the server" : msg[0] ? msg : "refused");
		api_response_free(&r);
		return -EIO;
	}
	struct manifest *m;
	rc = manifest_parse(r.body.data, &m, err, errlen);
	api_response_free(&r);
	if (rc != 0)
		return -EIO;
	int pick = -1;
	for (int i = 0; i < m->nrenditions; i++) {
		int b = m->renditions[i].bitrate;
		if (want_bitrate ? b == want_bitrate : (quality == 0 || b <= quality))
			pick = i;
	}
	if (pick < 0) {
		snprintf(err, errlen, "%s has no rendition at %d kbps for this account", id, want_bitrate ? want_bitrate : quality);
		manifest_free(m);
		return -EIO;
	}
	if (pick != 0) {
		/* Keep only the chosen rendition, in slot 0; free the rest through manifest_free. */
		struct manifest_rendition keep = m->renditions[pick];
		m->renditions[pick] = m->renditions[0];
		m->renditions[0] = keep;
	}
	for (int i = 1; i < m->nrenditions; i++) {
		free(m->renditions[i].init_url);
		free(m->renditions[i].segment_url_template);
		free(m->renditions[i].origin_url_template);
		free(m->renditions[i].origin_init_url);
		free(m->renditions[i].segments);
		memset(&m->renditions[i], 0, sizeof(m->renditions[i]));
	}
	m->nrenditions = 1;
	m->inline_bitrate = 0;
	*out = m;
	return 0;
}

static uint64_t stored_bytes(struct offline *o, const char *id)
{
	sqlite3_stmt *st = prep(o, id ? "SELECT coalesce(sum(bytes),0) FROM files WHERE track_id = ?" : "SELECT coalesce(sum(bytes),0) FROM files");
	if (id)
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	uint64_t b = sqlite3_step(st) == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return b;
}

static uint64_t get_setting(struct offline *o, const char *key)
{
	sqlite3_stmt *st = prep(o, "SELECT value FROM settings WHERE key = ?");
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	uint64_t v = sqlite3_step(st) == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return v;
}

static uint64_t effective_quota(struct offline *o)
{
	return o->quota_override >= 0 ? (uint64_t)o->quota_override : get_setting(o, "quota_bytes");
}

/* Bytes available to this user on the store's filesystem (statvfs). 0 or -errno. */
static int disk_avail(struct offline *o, uint64_t *avail)
{
	struct statvfs vfs;
	if (statvfs(o->dir, &vfs) != 0)
		return -errno;
	*avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	return 0;
}

static bool checkpointed(struct offline *o, const char *id, int idx)
{
	sqlite3_stmt *st = prep(o, "SELECT 1 FROM files WHERE track_id = ? AND idx = ?");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, idx);
	bool yes = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return yes;
}

static void checkpoint(struct offline *o, const char *id, int idx, size_t bytes, bool present)
{
	sqlite3_stmt *st = prep(o, present ? "INSERT OR REPLACE INTO files (track_id, idx, bytes) VALUES (?, ?, ?)"
					   : "DELETE FROM files WHERE track_id = ? AND idx = ?");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, idx);
	if (present)
		sqlite3_bind_int64(st, 3, (sqlite3_int64)bytes);
	sqlite3_step(st);
	sqlite3_finalize(st);
}

/* True when the checkpointed file decrypts and matches the manifest hash. */
static bool verify_file(struct offline *o, const uint8_t key[32], const char *id, int idx, const char *hash)
{
	char *p = file_path(o, id, idx);
	uint8_t *box = NULL, *plain = NULL;
	size_t blen = 0, plen = 0;
	bool ok = read_file(p, &box, &blen) == 0 && offline_unseal(key, id, idx, box, blen, &plain, &plen) == 0 && hash_ok(plain, plen, hash);
	free(p);
	free(box);
	if (plain)
		sodium_memzero(plain, plen);
	free(plain);
	return ok;
}

/* True when the stored item is a podcast episode (its URI and metadata route differ). */
static bool is_episode(struct offline *o, const char *id)
{
	sqlite3_stmt *st = prep(o, "SELECT kind FROM tracks WHERE track_id = ?");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	bool ep = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) && strcmp((const char *)sqlite3_column_text(st, 0), "episode") == 0;
	sqlite3_finalize(st);
	return ep;
}

static void fetch_meta(struct offline *o, struct api *api, const char *id)
{
	char path[64];
	snprintf(path, sizeof(path), "/v1/%s/%s", is_episode(o, id) ? "episodes" : "tracks", id);
	struct api_response r;
	if (api_get(api, path, &r) == 0 && r.status == 200 && r.body.data) {
		yajl_val v = json_parse(r.body.data, NULL, 0);
		const char *name = json_get_str(v, "name");
		sqlite3_stmt *st = prep(o, "UPDATE tracks SET meta = ?, name = ? WHERE track_id = ?");
		sqlite3_bind_text(st, 1, r.body.data, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, name ? name : "", -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
		sqlite3_step(st);
		sqlite3_finalize(st);
		yajl_tree_free(v);
	}
	api_response_free(&r);
}

static char *absolute_url(struct api *api, const char *url)
{
	return url[0] == '/' ? xasprintf("%s%s", api_base_url(api), url) : xstrdup(url);
}

int offline_download(struct offline *o, struct api *api, const char *id, int quality,
		     offline_progress_fn progress, void *ctx, char *err, size_t errlen)
{
	uint8_t key[32];
	int rc = track_key(o, id, now_s(), key, NULL);
	if (rc != 0) {
		snprintf(err, errlen, "%s: %s", id, rc == -ENOENT ? "no licence (request one first)" : rc == -EKEYEXPIRED ? "licence expired; run encore offline sync"
						    : "licence not issued to this device");
		return -EKEYREJECTED;
	}
	struct manifest *m = NULL;
	struct buf body = BUF_INIT;
	char *tdir = xasprintf("%s/%s", o->dir, id);
	mkdir(tdir, 0700);
	/* Resume with the stored manifest: same rendition, same hashes. */
	int stored_bitrate = 0;
	sqlite3_stmt *st = prep(o, "SELECT manifest, bitrate FROM tracks WHERE track_id = ?");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
		char e2[64];
		if (manifest_parse((const char *)sqlite3_column_text(st, 0), &m, e2, sizeof(e2)) != 0)
			m = NULL;
		stored_bitrate = sqlite3_column_int(st, 1);
	}
	sqlite3_finalize(st);
	bool fresh_urls = false;
	if (!m) {
		rc = fetch_manifest(o, api, id, quality, 0, &m, err, errlen);
		if (rc != 0)
			goto out;
		fresh_urls = true;
		struct jw w;
		jw_init(&w);
		manifest_write(m, &w);
		char *json = jw_finish(&w);
		st = prep(o, "UPDATE tracks SET manifest = ?, bitrate = ?, files_total = ?, complete = 0 WHERE track_id = ?");
		sqlite3_bind_text(st, 1, json, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int(st, 2, m->renditions[0].bitrate);
		sqlite3_bind_int(st, 3, (int)m->segment_count + 1);
		sqlite3_bind_text(st, 4, id, -1, SQLITE_STATIC);
		sqlite3_step(st);
		sqlite3_finalize(st);
		free(json);
		stored_bitrate = m->renditions[0].bitrate;
		fetch_meta(o, api, id);
	}
	const struct manifest_rendition *mr = &m->renditions[0];
	struct offline_progress pr = {.track_id = id, .total = m->segment_count + 1, .bitrate = stored_bitrate, .episode = is_episode(o, id)};
	/* Pass 1: re-authenticate what is checkpointed; count what is missing. */
	uint64_t missing_bytes = 0;
	bool *have = xcalloc(m->segment_count + 1, sizeof(bool));
	for (int idx = -1; idx < (int)m->segment_count; idx++) {
		const char *hash = idx < 0 ? mr->init_hash : mr->segments[idx].hash;
		uint32_t size = idx < 0 ? mr->init_size : mr->segments[idx].size;
		if (checkpointed(o, id, idx)) {
			if (verify_file(o, key, id, idx, hash)) {
				have[idx + 1] = true;
				pr.resumed++;
				continue;
			}
			checkpoint(o, id, idx, 0, false);  /* corrupt or truncated: fetch it again */
			pr.refetched++;
		}
		missing_bytes += size + crypto_secretstream_xchacha20poly1305_HEADERBYTES + crypto_secretstream_xchacha20poly1305_ABYTES;
	}
	pr.done = pr.resumed;
	pr.bytes = stored_bytes(o, id);
	/* Space checks before writing anything, so a full disk never fails mid-track (nothing
	 * to write: nothing to check, so a complete track re-verifies over a lowered quota). */
	uint64_t quota = effective_quota(o);
	uint64_t used = stored_bytes(o, NULL);
	if (missing_bytes > 0 && quota && used + missing_bytes > quota) {
		snprintf(err, errlen, "%s needs %llu more bytes: over the offline quota of %llu bytes (%llu used; encore offline quota)", id,
			 (unsigned long long)missing_bytes, (unsigned long long)quota, (unsigned long long)used);
		rc = -EDQUOT;
		goto refuse;
	}
	uint64_t avail = 0;
	if (missing_bytes > 0 && disk_avail(o, &avail) == 0 && avail < missing_bytes + o->min_free) {
		snprintf(err, errlen, "disk nearly full: %llu bytes free, %s needs %llu and %llu MB must stay free (offline_min_free_mb)",
			 (unsigned long long)avail, id, (unsigned long long)missing_bytes, (unsigned long long)(o->min_free >> 20));
		rc = -ENOSPC;
		goto refuse;
	}
	if (progress)
		progress(ctx, &pr);
	for (int idx = -1; idx < (int)m->segment_count; idx++) {
		if (have[idx + 1])
			continue;
		const char *hash = idx < 0 ? mr->init_hash : mr->segments[idx].hash;
		uint32_t size = idx < 0 ? mr->init_size : mr->segments[idx].size;
		long status = 0;
		for (int attempt = 0; attempt < 4; attempt++) {
			char *u = idx < 0 ? xstrdup(mr->init_url) : manifest_expand(mr->segment_url_template, (uint32_t)idx);
			char *url = absolute_url(api, u);
			free(u);
			status = cdn_get(o, url, &body);
			free(url);
			if (status == 200 && body.len == size && hash_ok((const uint8_t *)body.data, body.len, hash))
				break;
			if (status == 403 && !fresh_urls) {
				/* Signed URLs expired since the download started: fresh ones, same rendition. */
				struct manifest *n2 = NULL;
				char e2[256];
				if (fetch_manifest(o, api, id, 0, stored_bitrate, &n2, e2, sizeof(e2)) == 0 &&
				    n2->segment_count == m->segment_count) {
					manifest_free(m);
					m = n2;
					mr = &m->renditions[0];
					fresh_urls = true;
				} else {
					manifest_free(n2);
				}
			}
			status = -1;
		}
		if (status != 200) {
			snprintf(err, errlen, "%s: cannot fetch %s %d (network or server error); run the download again to resume", id,
				 idx < 0 ? "init part" : "segment", idx);
			rc = -EIO;
			goto out_have;
		}
		size_t boxlen = 0;
		uint8_t *box = offline_seal(key, id, idx, (const uint8_t *)body.data, body.len, &boxlen);
		sodium_memzero(body.data, body.len);
		char *p = file_path(o, id, idx);
		rc = write_atomic(p, box, boxlen, 0600);
		free(p);
		free(box);
		if (rc != 0) {
			snprintf(err, errlen, "%s: cannot write: %s", id, strerror(-rc));
			goto out_have;
		}
		checkpoint(o, id, idx, boxlen, true);
		pr.done++;
		pr.bytes += boxlen;
		if (progress)
			progress(ctx, &pr);
	}
	st = prep(o, "UPDATE tracks SET complete = 1 WHERE track_id = ?");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_step(st);
	sqlite3_finalize(st);
	pr.finished = true;
	if (progress)
		progress(ctx, &pr);
	rc = 0;
	goto out_have;
refuse:
	/* Refused before writing: a track with nothing stored leaves nothing behind (a
	 * partly stored one keeps its verified files so a later run resumes). */
	if (pr.resumed == 0) {
		free(have);
		manifest_free(m);
		m = NULL;
		offline_remove(o, id);
		goto out;
	}
out_have:
	free(have);
out:
	sodium_memzero(key, sizeof(key));
	if (body.data)
		sodium_memzero(body.data, body.len);
	buf_free(&body);
	manifest_free(m);
	free(tdir);
	return rc;
}

/* ---------------------------------------------------------------- management */

int offline_remove(struct offline *o, const char *id)
{
	if (!id_valid(id))
		return -ENOENT;
	char *tdir = xasprintf("%s/%s", o->dir, id);
	DIR *d = opendir(tdir);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			char *p = xasprintf("%s/%s", tdir, de->d_name);
			unlink(p);
			free(p);
		}
		closedir(d);
		rmdir(tdir);
	}
	free(tdir);
	sqlite3_stmt *st = prep(o, "DELETE FROM files WHERE track_id = ?");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_step(st);
	sqlite3_finalize(st);
	st = prep(o, "DELETE FROM tracks WHERE track_id = ?");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_step(st);
	sqlite3_finalize(st);
	return sqlite3_changes(o->db) > 0 ? 0 : -ENOENT;
}

int offline_sync(struct offline *o, struct api *api, struct offline_sync_result *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "device_id", o->device_id);
	jw_obj_end(&w);
	char *body = jw_finish(&w);
	struct api_response r;
	int rc = post_json(api, "/v1/me/offline/sync", body, &r, err, errlen);
	free(body);
	if (rc != 0) {
		api_response_free(&r);
		return rc;
	}
	yajl_val v = json_parse(r.body.data ? r.body.data : "", NULL, 0);
	api_response_free(&r);
	if (!v || !YAJL_IS_OBJECT(v)) {
		yajl_tree_free(v);
		snprintf(err, errlen, "sync: malformed answer");
		return -EIO;
	}
	json_get_bool(v, "premium", &out->premium);
	json_get_bool(v, "device_active", &out->device_active);
	yajl_val list = json_get(v, "licenses");
	out->renewed = store_licences(o, list);
	/* Whatever the server did not renew is revoked: delete it. */
	size_t nkeep = list && YAJL_IS_ARRAY(list) ? list->u.array.len : 0;
	sqlite3_stmt *st = prep(o, "SELECT track_id FROM tracks");
	char (*gone)[ID_LEN + 1] = NULL;
	size_t ngone = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 0);
		bool kept = false;
		for (size_t i = 0; i < nkeep && !kept; i++) {
			const char *k = json_get_str(list->u.array.values[i], "track_id");
			kept = k && strcmp(k, id) == 0;
		}
		if (!kept) {
			gone = xrealloc(gone, (ngone + 1) * sizeof(*gone));
			snprintf(gone[ngone++], ID_LEN + 1, "%s", id);
		}
	}
	sqlite3_finalize(st);
	for (size_t i = 0; i < ngone; i++)
		offline_remove(o, gone[i]);
	out->revoked = (int)ngone;
	free(gone);
	yajl_tree_free(v);
	if (!out->device_active)
		o->registered = false;
	return 0;
}

int offline_list(struct offline *o, void (*fn)(void *ctx, const struct offline_entry *e), void *ctx)
{
	sqlite3_stmt *st = prep(o, "SELECT t.track_id, t.name, t.bitrate, t.complete, t.files_total, t.expires_at, t.kind, "
				   "(SELECT count(*) FROM files f WHERE f.track_id = t.track_id), "
				   "(SELECT coalesce(sum(bytes),0) FROM files f WHERE f.track_id = t.track_id) "
				   "FROM tracks t ORDER BY t.name, t.track_id");
	int n = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct offline_entry e = {0};
		snprintf(e.track_id, sizeof(e.track_id), "%s", (const char *)sqlite3_column_text(st, 0));
		snprintf(e.name, sizeof(e.name), "%s", (const char *)sqlite3_column_text(st, 1));
		e.bitrate = sqlite3_column_int(st, 2);
		e.complete = sqlite3_column_int(st, 3) != 0;
		e.files_total = (uint32_t)sqlite3_column_int(st, 4);
		e.expires_at = sqlite3_column_int64(st, 5);
		e.episode = sqlite3_column_text(st, 6) && strcmp((const char *)sqlite3_column_text(st, 6), "episode") == 0;
		e.files_done = (uint32_t)sqlite3_column_int(st, 7);
		e.bytes = (uint64_t)sqlite3_column_int64(st, 8);
		if (fn)
			fn(ctx, &e);
		n++;
	}
	sqlite3_finalize(st);
	return n;
}

int offline_usage(struct offline *o, uint64_t *bytes, int *tracks, uint64_t *quota)
{
	*bytes = stored_bytes(o, NULL);
	sqlite3_stmt *st = prep(o, "SELECT count(*) FROM tracks");
	*tracks = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
	sqlite3_finalize(st);
	*quota = effective_quota(o);
	return 0;
}

void offline_set_space_policy(struct offline *o, int64_t quota, int64_t min_free)
{
	o->quota_override = quota < 0 ? -1 : quota;
	o->min_free = min_free < 0 ? DISK_MARGIN : (uint64_t)min_free;
}

int offline_disk(struct offline *o, uint64_t *free_bytes, uint64_t *min_free, uint64_t *quota)
{
	*min_free = o->min_free;
	*quota = effective_quota(o);
	return disk_avail(o, free_bytes);
}

int offline_set_quota(struct offline *o, uint64_t bytes)
{
	sqlite3_stmt *st = prep(o, "INSERT OR REPLACE INTO settings (key, value) VALUES ('quota_bytes', ?)");
	sqlite3_bind_int64(st, 1, (sqlite3_int64)bytes);
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
	sqlite3_finalize(st);
	return rc;
}

/* ---------------------------------------------------------------- playback */

int offline_track_open(struct offline *o, const char *id, int64_t now, struct offline_track **t,
		       struct manifest **m, char *err, size_t errlen)
{
	sqlite3_stmt *st = prep(o, "SELECT manifest FROM tracks WHERE track_id = ? AND complete = 1");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	char *json = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) ? xstrdup((const char *)sqlite3_column_text(st, 0)) : NULL;
	sqlite3_finalize(st);
	const char *kind = is_episode(o, id) ? "episode" : "track";
	if (!json) {
		snprintf(err, errlen, "encore:%s:%s is not downloaded", kind, id);
		return -ENOENT;
	}
	uint8_t key[32];
	int64_t exp = 0;
	int rc = track_key(o, id, now, key, &exp);
	if (rc == -EKEYEXPIRED)
		snprintf(err, errlen, "the offline licence of encore:%s:%s expired; go online and run encore offline sync", kind, id);
	else if (rc == -EKEYREJECTED)
		snprintf(err, errlen, "encore:%s:%s was downloaded for another device; its licence cannot be opened here", kind, id);
	else if (rc != 0)
		snprintf(err, errlen, "encore:%s:%s has no offline licence", kind, id);
	if (rc != 0) {
		free(json);
		return rc;
	}
	struct manifest *a, *b;
	if (manifest_parse(json, &a, err, errlen) != 0 || manifest_parse(json, &b, err, errlen) != 0) {
		free(json);
		sodium_memzero(key, sizeof(key));
		return -ENOENT;
	}
	free(json);
	struct offline_track *tr = xcalloc(1, sizeof(*tr));
	tr->o = o;
	snprintf(tr->id, sizeof(tr->id), "%s", id);
	memcpy(tr->key, key, 32);
	sodium_memzero(key, sizeof(key));
	tr->m = a;
	*t = tr;
	*m = b;
	return 0;
}

int offline_track_read(struct offline_track *t, int index, uint8_t **data, size_t *len)
{
	const struct manifest_rendition *mr = &t->m->renditions[0];
	if (index >= (int)t->m->segment_count)
		return -ENOENT;
	char *p = file_path(t->o, t->id, index);
	uint8_t *box = NULL;
	size_t blen = 0;
	int rc = read_file(p, &box, &blen);
	free(p);
	if (rc != 0)
		return -ENOENT;
	rc = offline_unseal(t->key, t->id, index, box, blen, data, len);
	free(box);
	if (rc == 0 && !hash_ok(*data, *len, index < 0 ? mr->init_hash : mr->segments[index].hash)) {
		free(*data);
		rc = -EBADMSG;
	}
	return rc;
}

void offline_track_free(struct offline_track *t)
{
	if (!t)
		return;
	sodium_memzero(t->key, sizeof(t->key));
	manifest_free(t->m);
	free(t);
}

char *offline_meta(struct offline *o, const char *id)
{
	sqlite3_stmt *st = prep(o, "SELECT meta FROM tracks WHERE track_id = ? AND complete = 1");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	char *m = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) ? xstrdup((const char *)sqlite3_column_text(st, 0)) : NULL;
	sqlite3_finalize(st);
	return m;
}
