/* urlsign: signatures for CDN URLs. A signature binds the content (item id, rendition,
 * and the segment range it covers), the user, the expiry and the client IP, so a URL
 * works only for the listener it was issued to, from where they asked, until it expires.
 * The manifest route is the only place that signs; the CDN routes only verify. */
#ifndef ENCORE_URLSIGN_H
#define ENCORE_URLSIGN_H
#include "keyring.h"
#include <stdbool.h>
#include <stdint.h>

#define URLSIGN_SIG_LEN 43   /* base64url of 32 bytes */

struct urlsign_claims {
	const char *content_id;  /* track or episode id */
	int bitrate;             /* rendition, kbps */
	const char *range;       /* segments covered: "all" for a whole rendition */
	const char *user;
	int64_t expires;         /* unix seconds */
	const char *ip;          /* client address the URL is bound to */
};

enum urlsign_err {
	URLSIGN_OK = 0,
	URLSIGN_MALFORMED,
	URLSIGN_UNKNOWN_KEY,
	URLSIGN_BAD_SIGNATURE,   /* forged, tampered, another user's or another IP's */
	URLSIGN_EXPIRED,
};

/* Signs with the ring's current key: fills sig (URLSIGN_SIG_LEN + 1) and kid (KEYRING_KID_MAX + 1).
 * Returns 0, or -ENOKEY if the ring is empty. */
int urlsign_sign(const struct keyring *kr, const struct urlsign_claims *c, char *sig, char *kid);
/* Verifies sig made with key kid over c at time now, comparing in constant time. */
enum urlsign_err urlsign_verify(const struct keyring *kr, const struct urlsign_claims *c, const char *kid,
				const char *sig, int64_t now);
const char *urlsign_strerror(enum urlsign_err e);

#endif
