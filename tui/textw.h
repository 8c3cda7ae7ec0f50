/* textw: terminal display width of UTF-8 text, and fitting text into a number of
 * columns. CJK ideographs take two columns, combining accents none, so counting bytes
 * or code points misaligns every column after a non-ASCII name.
 *
 * Decoding is done here (not by the locale), widths come from wcwidth(), so the caller
 * must have set an LC_CTYPE whose wchar_t is UCS (any glibc locale). Control characters
 * and invalid bytes are shown as '?' (one column): metadata comes from the network and
 * must not reach the terminal as escape sequences. */
#ifndef ENCORE_TEXTW_H
#define ENCORE_TEXTW_H
#include <stdbool.h>
#include <stddef.h>

/* Columns s occupies when drawn. */
int textw_width(const char *s);

/* Writes s fitted to at most cols columns into out (outlen bytes, always
 * NUL-terminated): if it is wider, it is cut at a character boundary and ends with
 * "…"; if pad, spaces fill it to exactly cols columns. Returns the columns written. */
int textw_fit(const char *s, int cols, bool pad, char *out, size_t outlen);

/* Bytes of the first n columns' worth of characters of s (cut never splits a character). */
size_t textw_prefix_bytes(const char *s, int cols);

/* Removes the last character (not byte) of the UTF-8 string s in place. */
void textw_pop_char(char *s);

#endif
