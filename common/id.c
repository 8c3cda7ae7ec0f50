/* id: 16 bytes read as a big number and written in base62 fill exactly 22 digits. */
#include "id.h"
#include <sodium.h>
#include <string.h>

static const char ALPHABET[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static void encode(unsigned char bytes[16], char out[ID_LEN + 1])
{
	/* Repeated division of the 128-bit number by 62, most significant byte first. */
	for (int i = ID_LEN - 1; i >= 0; i--) {
		unsigned rem = 0;
		for (int j = 0; j < 16; j++) {
			unsigned cur = (rem << 8) | bytes[j];
			bytes[j] = (unsigned char)(cur / 62);
			rem = cur % 62;
		}
		out[i] = ALPHABET[rem];
	}
	out[ID_LEN] = 0;
}

void id_random(char out[ID_LEN + 1])
{
	unsigned char b[16];
	randombytes_buf(b, sizeof(b));
	encode(b, out);
}

void id_time_ordered(char out[ID_LEN + 1], int64_t ms)
{
	unsigned char b[16];
	randombytes_buf(b + 6, sizeof(b) - 6);
	uint64_t t = ms < 0 ? 0 : (uint64_t)ms;
	for (int i = 5; i >= 0; i--, t >>= 8)
		b[i] = (unsigned char)(t & 0xff);
	encode(b, out);
}

void id_from_seed(const char *seed, char out[ID_LEN + 1])
{
	unsigned char b[16];
	crypto_generichash(b, sizeof(b), (const unsigned char *)seed, strlen(seed), NULL, 0);
	encode(b, out);
}

bool id_valid(const char *s)
{
	if (!s)
		return false;
	size_t i;
	for (i = 0; s[i]; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
			return false;
		if (i >= ID_LEN)
			return false;
	}
	return i == ID_LEN;
}

bool uri_parse(const char *uri, char *type, size_t typecap, char id[ID_LEN + 1])
{
	if (strncmp(uri, "encore:", 7) != 0)
		return false;
	const char *t = uri + 7;
	const char *colon = strchr(t, ':');
	if (!colon || colon == t || (size_t)(colon - t) >= typecap)
		return false;
	if (!id_valid(colon + 1))
		return false;
	memcpy(type, t, (size_t)(colon - t));
	type[colon - t] = 0;
	memcpy(id, colon + 1, ID_LEN + 1);
	return true;
}
