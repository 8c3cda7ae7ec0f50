/* ratelimit: token buckets keyed by a string (a user id, a client IP). Thread-safe. */
#ifndef ENCORE_RATELIMIT_H
#define ENCORE_RATELIMIT_H
#include <stdbool.h>
#include <stdint.h>

struct ratelimit;

/* rate: tokens added per second; burst: bucket capacity. rate <= 0 disables limiting. */
struct ratelimit *ratelimit_new(double rate, double burst);
void ratelimit_free(struct ratelimit *rl);
/* Takes one token for key at time now_us. Returns true if allowed; otherwise false and
 * *retry_after_s is the whole seconds until a token is available (at least 1). */
bool ratelimit_take(struct ratelimit *rl, const char *key, int64_t now_us, int *retry_after_s);

/* The pure bucket arithmetic, exposed for tests: refills *tokens since *last_us and takes one. */
bool bucket_take(double *tokens, int64_t *last_us, int64_t now_us, double rate, double burst, double *wait_s);

#endif
