/* api: the HTTP client for encored's Spotify-style Web API, on libcurl.
 * One struct api per client: its CURLSH share handle holds the connection pool, DNS
 * cache and TLS sessions, so every request (from any thread, each on its own easy
 * handle) reuses keep-alive connections. Idempotent requests are retried with
 * exponential backoff; a 401 triggers one transparent token refresh. */
#ifndef ENCORE_API_H
#define ENCORE_API_H
#include "buf.h"
#include <stdbool.h>
#include <stdint.h>

#define API_DEFAULT_TIMEOUT_MS 30000
#define API_CONNECT_TIMEOUT_MS 5000
#define API_DEFAULT_MAX_RETRIES 3
#define API_RETRY_BASE_MS 250      /* first backoff step */
#define API_RETRY_MAX_MS 8000      /* cap on one exponential backoff step */
#define API_RETRY_AFTER_MAX_S 30   /* a longer Retry-After is not waited for */

struct api_config {
	const char *base_url;  /* e.g. "http://127.0.0.1:8080"; required; copied */
	long timeout_ms;       /* total per attempt; 0 means API_DEFAULT_TIMEOUT_MS */
	int max_retries;       /* retries after the first attempt; <0 means the default, 0 disables */
	long retry_base_ms;    /* 0 means API_RETRY_BASE_MS; tests shrink it */
	const char *user_agent; /* NULL means "encore/VERSION" */
};

struct api_response {
	long status;            /* HTTP status; 0 when no response was received */
	struct buf body;
	char *etag;             /* NULL when absent; owned */
	char *content_type;     /* NULL when absent; owned */
	long retry_after;       /* seconds, -1 when absent */
	int curl_code;          /* CURLcode of the last attempt */
	int attempts;           /* HTTP attempts made, including retries and the post-refresh one */
	char error[256];        /* transport error text when the request failed */
};

/* Tokens as granted by POST /api/token. */
struct api_token {
	char *access_token;   /* owned */
	char *refresh_token;  /* owned; NULL if the server sent none */
	char *scope;          /* owned; may be NULL */
	long long expires_at; /* unix seconds */
};

struct api_stats {
	unsigned long requests;    /* HTTP attempts (transfers) performed */
	unsigned long connects;    /* attempts that opened a new connection */
	unsigned long reused;      /* attempts that reused a pooled connection */
	unsigned long retries;     /* backoff retries */
	unsigned long refreshes;   /* successful token refreshes */
};

/* Called (from whichever request thread refreshed) after a transparent refresh so the
 * owner can persist the new tokens. tok is only borrowed for the call. */
typedef void (*api_token_fn)(void *ctx, const struct api_token *tok);

struct api;

/* Returns NULL if the base URL is missing or libcurl cannot be set up. Call
 * curl_global_init before the first api_new (the CLI's main does). */
struct api *api_new(const struct api_config *cfg);
/* No request may be in flight. */
void api_free(struct api *api);
/* The server requests go to now: the first of the configured ones ("URL1,URL2") until
 * a failover. The pointer stays valid until api_free. */
const char *api_base_url(const struct api *api);
/* Every configured server, comma-separated (what a session should remember). */
const char *api_server_list(const struct api *api);
/* How many servers were configured (1 unless base_url listed several, at most 8). */
int api_server_count(const struct api *api);
/* Moves on to the next server if failed_url belongs to the current one (a transport
 * failure talking to it). True when this call switched. Thread-safe. */
bool api_failover(struct api *api, const char *failed_url);
/* url with its server part replaced by the current server when it points at another
 * configured one (signed CDN URLs verify on every server sharing the data); otherwise a
 * copy. Caller frees. */
char *api_rebase_url(const struct api *api, const char *url);

/* Installs the bearer and refresh tokens (copied; either may be NULL). Thread-safe. */
void api_set_tokens(struct api *api, const char *access_token, const char *refresh_token);
/* Registers the persistence callback for refreshed tokens (may be NULL). */
void api_set_token_callback(struct api *api, api_token_fn fn, void *ctx);

/* Performs METHOD base_url+path with the bearer token. body may be NULL. Returns 0 when
 * an HTTP response was received (whatever its status, in resp->status), or a negative
 * errno (-ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH, -EIO) with resp->error set when none
 * was. resp is always initialised and must be released with api_response_free. */
int api_request(struct api *api, const char *method, const char *path,
		const char *content_type, const char *body, size_t body_len,
		struct api_response *resp);
/* GET shorthand. Same contract as api_request. */
int api_get(struct api *api, const char *path, struct api_response *resp);
void api_response_free(struct api_response *resp);

/* Resource-owner password grant. Returns 0 and fills tok (free with api_token_free),
 * -EACCES on invalid_grant (message in err), or another negative errno on transport
 * or protocol failure (message in err). Does not install the tokens. */
int api_login(struct api *api, const char *user, const char *password,
	      struct api_token *tok, char *err, size_t errlen);
/* Refresh grant; same contract as api_login. */
int api_refresh(struct api *api, const char *refresh_token,
		struct api_token *tok, char *err, size_t errlen);
void api_token_free(struct api_token *tok);

void api_get_stats(struct api *api, struct api_stats *out);

/* For callers that run their own transfers (the engine's curl multi loop): a copy of the
 * current access token (caller frees; NULL if none) and its generation, and a refresh
 * after a 401 seen with that generation (0 when fresh tokens are installed, by this call
 * or by a peer; -EACCES when the session is gone). */
char *api_bearer(struct api *api, unsigned long *gen);
int api_refresh_after_401(struct api *api, unsigned long gen_seen);

/* ---- Pure helpers (no I/O), exposed for tests and reuse. ---- */

/* Appends key=value to b in application/x-www-form-urlencoded form, with a leading '&'
 * when b is non-empty. Unreserved bytes pass, space becomes '+', the rest %XX. */
void api_form_append(struct buf *b, const char *key, const char *value);

/* Parses a 200 token response at time now. Returns 0 and fills tok, or -EPROTO with a
 * message in err when the JSON lacks a string access_token or is malformed. */
int api_parse_token(const char *json, long long now, struct api_token *tok, char *err, size_t errlen);

/* The human message in an error body: {"error":{"message":M}} or OAuth's
 * {"error":E,"error_description":D}. Writes "" when neither shape matches. */
void api_error_message(const char *json, char *out, size_t outlen);

/* True when a request may be repeated: the method is idempotent (GET, HEAD, PUT, DELETE,
 * OPTIONS; never POST/PATCH) and either the transfer failed at connection level
 * (curl_code != 0, status 0) or the server answered 429 or 5xx other than 501/505. */
bool api_should_retry(const char *method, long status, int curl_code);

/* Milliseconds to wait before retry number attempt (0-based) with the default policy.
 * retry_after (seconds, -1 if absent) wins when present; if it exceeds
 * API_RETRY_AFTER_MAX_S returns -1, meaning do not retry. Otherwise "equal jitter":
 * half of min(base * 2^attempt, API_RETRY_MAX_MS) plus a deterministic jitter from
 * jitter_seed in [0, that half). */
long api_retry_delay_ms(int attempt, long retry_after, uint32_t jitter_seed);
/* The same with an explicit base step (the policy api_new uses with retry_base_ms). */
long api_retry_delay_ms_base(long base_ms, int attempt, long retry_after, uint32_t jitter_seed);

/* Parses a Retry-After header value (delta-seconds or HTTP-date) relative to now;
 * returns seconds >= 0, or -1 if unparseable. */
long api_parse_retry_after(const char *value, long long now);

#endif
