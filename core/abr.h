/* abr: adaptive bitrate choice for segmented streaming. Everything here is a pure
 * function of its inputs (no clock, no I/O) so the policy can be simulated on
 * bandwidth traces in unit tests. The player asks abr_choose() once per segment,
 * so a switch can only ever happen at a segment boundary. */
#ifndef ENCORE_ABR_H
#define ENCORE_ABR_H
#include <stdbool.h>
#include <stddef.h>

#define ABR_RUNGS 4
/* The ladder the server transcodes to, ascending, in kbps. */
extern const int abr_ladder_kbps[ABR_RUNGS];

enum abr_tier { ABR_TIER_FREE, ABR_TIER_PREMIUM };
enum abr_quality {
	ABR_QUALITY_AUTO,      /* up to the tier cap */
	ABR_QUALITY_LOW,       /* 24 kbps */
	ABR_QUALITY_NORMAL,    /* 96 kbps */
	ABR_QUALITY_HIGH,      /* 160 kbps */
	ABR_QUALITY_VERY_HIGH, /* 320 kbps */
};

/* Tunables; abr_params_default() gives the documented policy (docs/ENGINE-NOTES.md). */
struct abr_params {
	double segment_s;       /* segment duration, 4 s */
	int startup_kbps;       /* first segment when nothing is known yet */
	double up_factor;       /* switch up only if estimate >= rung * up_factor */
	double up_min_buffer_s; /* ... and the buffer holds at least this much */
	double down_safety;     /* on a down switch pick the highest rung <= estimate * this */
	double reserve_s;       /* never start a segment expected to take longer than buffer - reserve */
	double target_base_s;   /* prefetch window on an ordinary link */
	double target_min_s;    /* prefetch window bounds */
	double target_max_s;
};

/* Smoothed throughput: harmonic mean of the last `window` per-segment download rates.
 * The harmonic mean is dominated by the slow samples, so the estimate drops at once
 * when the link degrades and rises only after a few good segments. The slowest and
 * fastest of the last ABR_EST_MAX_WINDOW samples are kept too (longer memory, so a
 * slow spell a minute ago still counts as a risk). A plain value type (no
 * allocation) because the player embeds it and tests copy it freely. */
#define ABR_EST_MAX_WINDOW 16
struct abr_estimator {
	double rate_bps[ABR_EST_MAX_WINDOW]; /* ring of recent samples */
	int window;                          /* samples averaged, 1..ABR_EST_MAX_WINDOW */
	int count;                           /* samples held, <= ABR_EST_MAX_WINDOW */
	int next;                            /* ring slot for the next sample */
};

/* Fills p with the default policy. */
void abr_params_default(struct abr_params *p);
/* Highest bitrate (kbps) allowed by tier and quality setting together. */
int abr_cap_kbps(enum abr_tier tier, enum abr_quality quality);

/* Resets e to "no estimate" averaging over `window` samples (clamped to 1..ABR_EST_MAX_WINDOW). */
void abr_estimator_init(struct abr_estimator *e, int window);
/* Records one segment download of `bytes` taking `seconds`; ignored if either is <= 0. */
void abr_estimator_add_sample(struct abr_estimator *e, double bytes, double seconds);
/* Current estimate (harmonic mean) in bits per second, or 0 when there are no samples yet. */
double abr_estimator_bps(const struct abr_estimator *e);
/* Slowest / fastest of the last ABR_EST_MAX_WINDOW samples (bits per second), or 0 when there are none. */
double abr_estimator_min_bps(const struct abr_estimator *e);
double abr_estimator_max_bps(const struct abr_estimator *e);

struct abr_input {
	enum abr_tier tier;
	enum abr_quality quality;
	double throughput_bps; /* smoothed estimate (abr_estimator_bps); <= 0 means unknown */
	double worst_bps;      /* slowest recent sample (abr_estimator_min_bps); <= 0: use throughput_bps */
	double buffer_s;       /* seconds of audio buffered ahead of the play head */
	int current_kbps;      /* bitrate of the segment just fetched; 0 at track start */
};

/* Bitrate (kbps, always a ladder rung <= abr_cap_kbps) for the next segment. */
int abr_choose(const struct abr_params *p, const struct abr_input *in);

/* Seconds of audio to keep buffered ahead (the prefetch window), clamped to
 * [target_min_s, target_max_s]: target_base_s scaled by how many seconds of audio one
 * second of download buys (capacity / bitrate, 4 being ordinary), and at least enough
 * to fetch one more segment at this bitrate at the worst recent rate plus reserve_s.
 * Pass capacity = fastest recent sample (abr_estimator_max_bps): a link that is
 * sometimes fast refills a deep buffer cheaply, and a deep buffer is what rides out
 * its slow spells. worst_bps = slowest recent sample; <= 0 values mean unknown and
 * an unknown capacity gives target_base_s. */
double abr_buffer_target(const struct abr_params *p, double capacity_bps, double worst_bps, int bitrate_kbps);

#endif
