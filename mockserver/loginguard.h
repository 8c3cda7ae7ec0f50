/* loginguard: login throttling against password guessing and credential stuffing.
 *
 * Failures are counted per key (the gateway uses one key per account, "u:NAME", and one per
 * client address, "ip:ADDR", each with its own threshold). Once a key has max_failures
 * consecutive failures it is locked; every further failure while counting doubles the lock:
 * base, 2*base, 4*base, ... up to cap. A locked key refuses attempts without the password
 * being checked (so a locked account is no oracle) and reports when to retry. A success
 * clears the key; a key with no failure for a whole window after its last failure and its
 * lock's end is forgotten, so an IP's count decays instead of being reset by one good login.
 * Thread-safe; state is in memory only (a server restart clears every throttle).
 * Time is a parameter (microseconds) so the policy unit-tests without sleeping. */
#ifndef ENCORE_LOGINGUARD_H
#define ENCORE_LOGINGUARD_H
#include <stdbool.h>
#include <stdint.h>

struct loginguard;

/* max_failures 0 disables the guard (check always allows). base_s and cap_s are the first
 * and longest lock, window_s how long failures are remembered. NULL on bad arguments. */
struct loginguard *loginguard_new(int max_failures, int base_s, int cap_s, int window_s);
void loginguard_free(struct loginguard *g);
/* True when key may attempt a login at now_us; otherwise false with *retry_after_s
 * (whole seconds, >= 1) until its lock ends. */
bool loginguard_check(struct loginguard *g, const char *key, int64_t now_us, int *retry_after_s);
/* Records a failed attempt. Returns the lock now in force in seconds (0 = not locked). */
int loginguard_fail(struct loginguard *g, const char *key, int64_t now_us);
/* Records a success: the key starts over. */
void loginguard_success(struct loginguard *g, const char *key);
/* Clears key (the admin unlock). Returns true if it had failures or a lock. */
bool loginguard_clear(struct loginguard *g, const char *key);
/* The lock after failures consecutive failures (pure): 0 below max, else
 * min(cap, base * 2^(failures - max)). */
int loginguard_lock_seconds(int failures, int max_failures, int base_s, int cap_s);
#endif
