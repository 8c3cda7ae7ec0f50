/* Fuzz target: WebSocket messages into the two hubs that read them, Connect (device
 * registration, state reports, commands) and playlist push (subscribe/unsubscribe).
 * Each input is a sequence of messages, one per line, all on one authenticated
 * connection, wired as encored wires them (Connect, then playlist push). The hubs run for real on a scratch data dir
 * (their SQLite state included); only the socket is replaced: what they would send is
 * checked to be NUL-free JSON-ish text and dropped. The route handlers the hubs' files
 * also define are not reached from here, so their gateway helpers are stubs that abort. */
#include "../../mockserver/connect.h"   /* not core/connect.h, the client's */
#include "fuzz.h"
#include "http.h"
#include "jwt.h"
#include "keyring.h"
#include "playlists.h"
#include "plpush.h"
#include "server.h"
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

void http_ws_send(struct http_server *s, uint64_t conn, const char *text, size_t len)
{
	(void)s;
	(void)conn;
	if (len == 0 || memchr(text, 0, len) || (text[0] != '{' && text[0] != '['))
		abort();   /* every message a hub sends is one JSON value */
}

void http_ws_close(struct http_server *s, uint64_t conn, int code, const char *reason)
{
	(void)s;
	(void)conn;
	if (code < 1000 || code > 4999 || !reason)
		abort();
}

int playlists_subscribe_check(struct playlists *p, sqlite3 *db, const char *id, const char *user,
			      char snapshot[SEQ_CURSOR_MAX])
{
	(void)p;
	(void)db;
	(void)user;
	/* The playlist service's answer: ids starting with a digit exist and are readable. */
	if (!id || !id[0] || !(id[0] >= '0' && id[0] <= '9'))
		return -ENOENT;
	snprintf(snapshot, SEQ_CURSOR_MAX, "1.1");
	return 0;
}

void call_error(struct call *c, int status, const char *fmt, ...) { (void)c; (void)status; (void)fmt; abort(); }
void call_json(struct call *c, int status, char *json) { (void)c; (void)status; (void)json; abort(); }
yajl_val call_body_json(struct call *c) { (void)c; abort(); }
const char *http_arg(const struct http_req *req, const char *name) { (void)req; (void)name; abort(); }

static struct connhub *conn_hub;
static struct plhub *pl_hub;
static struct http_ws_app conn_app;
static char *token;
static uint64_t next_conn = 1;

static void setup(void)
{
	char tmpl[] = "/tmp/encore-fuzz-ws-XXXXXX";
	if (!mkdtemp(tmpl))
		abort();
	struct keyring *kr = keyring_new();
	unsigned char key[KEYRING_KEY_BYTES];
	memset(key, 7, sizeof(key));
	keyring_add(kr, "k1", key);
	struct jwt_claims cl = {.sub = "alice", .tier = "premium", .country = "SE", .iat = 1, .exp = 4102444800LL};
	token = jwt_sign(kr, &cl);
	conn_hub = connhub_new(kr, tmpl);
	pl_hub = plhub_new(kr, NULL, tmpl);
	if (!conn_hub || !pl_hub || !token)
		abort();
	/* As encored wires them: Connect first, playlist push for the messages it leaves. */
	conn_app = connhub_ws_app(conn_hub, plhub_ws_app(pl_hub));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!conn_hub)
		setup();
	if (size == 0)
		return 0;
	struct http_ws_app *app = &conn_app;
	char *text = fz_cstr(data + 1, size - 1);
	uint64_t conn = next_conn++;
	/* The first byte: odd opens without a token (the hello message must authenticate). */
	app->open(app->ctx, conn, (data[0] & 1) ? NULL : token);
	char *rest = text;
	while (*rest) {
		char *msg = fz_field(&rest);
		app->message(app->ctx, conn, msg, strlen(msg));
	}
	app->close(app->ctx, conn);
	free(text);
	return 0;
}
