/* auth: the token endpoint (OAuth 2 password and refresh_token grants), /v1/me, and
 * the admin routes for accounts. */
#include "buf.h"
#include <stdio.h>
#include "json.h"
#include "jwt.h"
#include "server.h"
#include "urlenc.h"
#include "users.h"
#include "xmem.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REFRESH_TTL_S (30 * 24 * 3600)

/* The token endpoint speaks OAuth's own error shape (RFC 6749 section 5.2), as Spotify's does. */
static void oauth_error(struct call *c, int status, const char *code, const char *desc)
{
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "error", code);
	jw_kstr(&w, "error_description", desc);
	jw_obj_end(&w);
	call_json(c, status, jw_finish(&w));
}

static void issue_tokens(struct call *c, const struct user *u)
{
	struct jwt_claims cl;
	memset(&cl, 0, sizeof(cl));
	snprintf(cl.sub, sizeof(cl.sub), "%s", u->id);
	snprintf(cl.tier, sizeof(cl.tier), "%s", u->tier);
	snprintf(cl.country, sizeof(cl.country), "%s", u->country);
	cl.admin = u->admin;
	cl.iat = (int64_t)time(NULL);
	cl.exp = cl.iat + c->srv->opt.token_ttl_s;
	char *access = jwt_sign(c->srv->jwt_keys, &cl);
	char *refresh = users_new_refresh(c->db, u->id, REFRESH_TTL_S);
	if (!access || !refresh) {
		call_error(c, 500, "could not issue tokens");
		goto out;
	}
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "access_token", access);
	jw_kstr(&w, "token_type", "Bearer");
	jw_kint(&w, "expires_in", c->srv->opt.token_ttl_s);
	jw_kstr(&w, "refresh_token", refresh);
	jw_kstr(&w, "scope", u->admin ? "user admin" : "user");
	jw_obj_end(&w);
	call_json(c, 200, jw_finish(&w));
	http_resp_header(c->resp, "Cache-Control", "no-store");
out:
	free(access);
	free(refresh);
}

/* Throttle keys: the username is cut to a bounded length so a huge one cannot bloat the
 * guard (no valid username is that long, so nothing real collides). */
static void throttle_keys(const char *user, const char *ip, char ukey[80], char ikey[80])
{
	snprintf(ukey, 80, "u:%.64s", user);
	snprintf(ikey, 80, "ip:%.64s", ip);
}

/* The password grant behind the login throttle (loginguard.h): a locked account or address
 * is refused with 429 before the password is looked at, so guesses during a lock learn
 * nothing; a failure that starts or extends a lock says for how long in Retry-After. */
static void password_grant(struct call *c, const char *user, const char *pass)
{
	char ukey[80], ikey[80], retry[16];
	throttle_keys(user, c->req->client_ip, ukey, ikey);
	int64_t now = http_now_us();
	int wait_u = 0, wait_i = 0;
	bool ok_u = loginguard_check(c->srv->login_accounts, ukey, now, &wait_u);
	bool ok_i = loginguard_check(c->srv->login_ips, ikey, now, &wait_i);
	if (!ok_u || !ok_i) {
		atomic_fetch_add(&c->srv->rate_limited, 1);
		snprintf(retry, sizeof(retry), "%d", wait_u > wait_i ? wait_u : wait_i);
		oauth_error(c, 429, "too_many_attempts",
			    !ok_u ? "Too many failed logins for this account; try again later"
				  : "Too many failed logins from this address; try again later");
		http_resp_header(c->resp, "Retry-After", retry);
		return;
	}
	struct user u;
	if (users_check_password(c->db, user, pass, &u) != 0) {
		atomic_fetch_add(&c->srv->auth_failures, 1);
		int lu = loginguard_fail(c->srv->login_accounts, ukey, now);
		int li = loginguard_fail(c->srv->login_ips, ikey, now);
		oauth_error(c, 400, "invalid_grant", "Invalid username or password");
		if (lu > 0 || li > 0) {
			snprintf(retry, sizeof(retry), "%d", lu > li ? lu : li);
			http_resp_header(c->resp, "Retry-After", retry);
		}
		return;
	}
	/* Only the account starts over: one good login must not wash an address's failures
	 * (a stuffer holding one valid account would otherwise reset the count at will). */
	loginguard_success(c->srv->login_accounts, ukey);
	issue_tokens(c, &u);
}

static void route_token(struct call *c)
{
	const char *ct = c->req->content_type;
	char *grant = NULL, *user = NULL, *pass = NULL, *refresh = NULL;
	if (!ct || strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0) {
		oauth_error(c, 400, "invalid_request", "body must be application/x-www-form-urlencoded");
		return;
	}
	const char *body = c->req->body.data ? c->req->body.data : "";
	if (strlen(body) != c->req->body.len) {
		oauth_error(c, 400, "invalid_request", "NUL byte in form body");
		return;
	}
	grant = form_get(body, "grant_type");
	if (!grant) {
		oauth_error(c, 400, "invalid_request", "grant_type is required");
	} else if (strcmp(grant, "password") == 0) {
		user = form_get(body, "username");
		pass = form_get(body, "password");
		if (!user || !pass)
			oauth_error(c, 400, "invalid_request", "username and password are required");
		else
			password_grant(c, user, pass);
	} else if (strcmp(grant, "refresh_token") == 0) {
		refresh = form_get(body, "refresh_token");
		char id[64];
		struct user u;
		if (!refresh) {
			oauth_error(c, 400, "invalid_request", "refresh_token is required");
		} else if (users_take_refresh(c->db, refresh, id) != 0 || users_get(c->db, id, &u) != 0) {
			oauth_error(c, 400, "invalid_grant", "Invalid refresh token");
		} else {
			issue_tokens(c, &u);
		}
	} else {
		oauth_error(c, 400, "unsupported_grant_type", "grant_type must be password or refresh_token");
	}
	free(grant);
	free(user);
	if (pass) {
		memset(pass, 0, strlen(pass));
		free(pass);
	}
	free(refresh);
}

static void write_user(struct call *c, struct jw *w, const struct user *u, bool private_fields)
{
	jw_obj(w);
	if (private_fields) {
		jw_kstr(w, "country", u->country);
		jw_key(w, "explicit_content");
		jw_obj(w);
		jw_kbool(w, "filter_enabled", !u->explicit_ok);
		jw_kbool(w, "filter_locked", false);
		jw_obj_end(w);
		jw_kstr(w, "product", u->tier);
	}
	jw_kstr(w, "display_name", u->display_name);
	jw_key(w, "external_urls");
	jw_obj(w);
	jw_obj_end(w);
	jw_key(w, "followers");
	jw_obj(w);
	jw_key(w, "href");
	jw_null(w);
	jw_kint(w, "total", 0);
	jw_obj_end(w);
	char *href = xasprintf("%s/v1/users/%s", c->srv->base_url, u->id);
	jw_kstr(w, "href", href);
	free(href);
	jw_kstr(w, "id", u->id);
	jw_key(w, "images");
	jw_arr(w);
	jw_arr_end(w);
	jw_kstr(w, "type", "user");
	char *uri = xasprintf("encore:user:%s", u->id);
	jw_kstr(w, "uri", uri);
	free(uri);
	jw_obj_end(w);
}

static void route_me(struct call *c)
{
	struct user u;
	if (users_get(c->db, c->user.sub, &u) != 0) {
		call_error(c, 401, "the token's user no longer exists");
		return;
	}
	struct jw w;
	jw_init(&w);
	write_user(c, &w, &u, true);
	call_json(c, 200, jw_finish(&w));
}

static void route_user(struct call *c)
{
	struct user u;
	if (users_get(c->db, c->params[0], &u) != 0) {
		call_error(c, 404, "no user '%s'", c->params[0]);
		return;
	}
	struct jw w;
	jw_init(&w);
	write_user(c, &w, &u, false);
	call_json(c, 200, jw_finish(&w));
}

static void route_admin_add_user(struct call *c)
{
	yajl_val body = call_body_json(c);
	if (!body)
		return;
	const char *name = json_get_str(body, "username");
	const char *pass = json_get_str(body, "password");
	const char *tier = json_get_str(body, "tier");
	const char *country = json_get_str(body, "country");
	bool admin = false;
	yajl_val adm = json_get(body, "admin");
	char err[256];
	if (adm && !json_get_bool(body, "admin", &admin)) {
		call_error(c, 400, "admin must be a boolean");
	} else if (!name || !pass) {
		call_error(c, 400, "username and password must be strings");
	} else {
		int rc = users_add(c->db, name, pass, tier ? tier : "free", country ? country : "US", admin, err, sizeof(err));
		if (rc == -EEXIST) {
			call_error(c, 409, "%s", err);
		} else if (rc != 0) {
			call_error(c, rc == -EINVAL ? 400 : 500, "%s", err);
		} else {
			struct user u;
			users_get(c->db, name, &u);
			struct jw w;
			jw_init(&w);
			write_user(c, &w, &u, true);
			call_json(c, 201, jw_finish(&w));
		}
	}
	yajl_tree_free(body);
}

static void route_admin_update_user(struct call *c)
{
	yajl_val body = call_body_json(c);
	if (!body)
		return;
	yajl_val tv = json_get(body, "tier"), cv = json_get(body, "country"), ev = json_get(body, "explicit_ok");
	const char *tier = json_get_str(body, "tier"), *country = json_get_str(body, "country");
	bool explicit_ok = true;
	char err[256];
	if ((tv && !tier) || (cv && !country)) {
		call_error(c, 400, "tier and country must be strings");
	} else if (ev && !json_get_bool(body, "explicit_ok", &explicit_ok)) {
		call_error(c, 400, "explicit_ok must be a boolean");
	} else {
		int rc = users_update(c->db, c->params[0], tier, country, err, sizeof(err));
		if (rc == 0 && ev)
			rc = users_set_explicit_ok(c->db, c->params[0], explicit_ok);
		if (rc != 0) {
			call_error(c, rc == -ENOENT ? 404 : rc == -EINVAL ? 400 : 500, "%s", err);
		} else {
			struct user u;
			users_get(c->db, c->params[0], &u);
			struct jw w;
			jw_init(&w);
			write_user(c, &w, &u, true);
			call_json(c, 200, jw_finish(&w));
		}
	}
	yajl_tree_free(body);
}

/* Lifts a login lock on an account (the documented unlock; see docs/SECURITY.md). Clears the
 * account's failures only: an address that is throttled stays throttled. */
static void route_admin_unlock_user(struct call *c)
{
	struct user u;
	if (users_get(c->db, c->params[0], &u) != 0) {
		call_error(c, 404, "no user '%s'", c->params[0]);
		return;
	}
	char ukey[80], ikey[80];
	throttle_keys(u.id, "", ukey, ikey);
	bool was = loginguard_clear(c->srv->login_accounts, ukey);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "id", u.id);
	jw_kbool(&w, "was_throttled", was);
	jw_obj_end(&w);
	call_json(c, 200, jw_finish(&w));
}

const struct route auth_routes[] = {
	{"POST", "/api/token", route_token, ROUTE_PUBLIC},
	{"GET", "/v1/me", route_me, 0},
	{"GET", "/v1/users/{id}", route_user, 0},
	{"POST", "/v1/admin/users", route_admin_add_user, ROUTE_ADMIN},
	{"PUT", "/v1/admin/users/{id}", route_admin_update_user, ROUTE_ADMIN},
	{"POST", "/v1/admin/users/{id}/unlock", route_admin_unlock_user, ROUTE_ADMIN},
	{NULL, NULL, NULL, 0},
};
