/* synth: arranges a small song (intro, verse/chorus, outro) over a chord progression in the
 * requested key and renders it with cheap instruments: recursive-sine additive voices, polyBLEP
 * saws through one-pole filters, pitch-swept sine kicks and filtered-noise snares and hats. */
#include "synth.h"
#include "xmem.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TAU 6.283185307179586

struct rng {
	uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
	/* splitmix64: tiny, stateless beyond one word, and identical on every platform. */
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double rng_unit(struct rng *r)
{
	return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

static int rng_int(struct rng *r, int n)
{
	return (int)(rng_unit(r) * n);
}

static double rng_gauss(struct rng *r)
{
	/* Irwin-Hall: sum of 4 uniforms is Gaussian enough for humanisation and avoids log(). */
	return (rng_unit(r) + rng_unit(r) + rng_unit(r) + rng_unit(r) - 2.0) * 1.732;
}

static float noise(struct rng *r)
{
	return (float)(rng_unit(r) * 2.0 - 1.0);
}

static double midi_hz(double m)
{
	return 440.0 * pow(2.0, (m - 69.0) / 12.0);
}

/* ---- mixing bus -------------------------------------------------------------------------- */

struct bus {
	float *l, *r;
	long n;
	int rate;
};

struct voice_out {
	struct bus *b;
	long i0;
	float gl, gr;
};

static struct voice_out vout(struct bus *b, double t, double pan)
{
	/* Equal-power pan keeps perceived level constant as instruments spread across the field. */
	double a = (pan + 1.0) * (TAU / 8.0);
	struct voice_out v = {b, lround(t * b->rate), (float)cos(a), (float)sin(a)};
	return v;
}

static inline int vput(struct voice_out *v, long n, float x)
{
	long i = v->i0 + n;
	if (i < 0)
		return 1;
	if (i >= v->b->n)
		return 0;
	v->b->l[i] += x * v->gl;
	v->b->r[i] += x * v->gr;
	return 1;
}

static double onepole(double fc, int rate)
{
	if (fc >= rate * 0.45)
		return 1.0;
	return 1.0 - exp(-TAU * fc / rate);
}

/* ---- instruments -------------------------------------------------------------------------- */

static void kick(struct bus *b, double t, double vel, double decay, double hi, double lo)
{
	struct voice_out v = vout(b, t, 0.0);
	long len = (long)(decay * 7.0 * b->rate);
	double ph = 0.0, sweep = hi - lo, sw_k = exp(-1.0 / (0.03 * b->rate));
	double env = vel, env_k = exp(-1.0 / (decay * b->rate));
	for (long n = 0; n < len; n++) {
		ph += TAU * (lo + sweep) / b->rate;
		sweep *= sw_k;
		double click = n < b->rate / 400 ? 0.25 * (1.0 - (double)n * 400 / b->rate) : 0.0;
		if (!vput(&v, n, (float)(env * (sin(ph) + click))))
			break;
		env *= env_k;
	}
}

/* Filtered noise plus an optional decaying tone: snares (body + rattle), claps, hats, rides. */
static void noise_hit(struct bus *b, struct rng *r, double t, double vel, double decay, double hp_hz,
		      double lp_hz, double tone_hz, double tone_amt, double pan)
{
	struct voice_out v = vout(b, t, pan);
	long len = (long)(decay * 7.0 * b->rate);
	double a_hp = onepole(hp_hz, b->rate), a_lp = onepole(lp_hz, b->rate);
	double low = 0.0, out = 0.0, env = vel, env_k = exp(-1.0 / (decay * b->rate));
	double tenv = tone_amt * vel, t_k = exp(-1.0 / (0.05 * b->rate));
	double c = 2.0 * cos(TAU * tone_hz / b->rate), y1 = 0.0, y2 = -sin(TAU * tone_hz / b->rate);
	for (long n = 0; n < len; n++) {
		double x = noise(r);
		low += a_hp * (x - low);
		double hp = x - low;
		out += a_lp * (hp - out);
		double y = c * y1 - y2;
		y2 = y1;
		y1 = y;
		if (!vput(&v, n, (float)(env * out * 1.6 + tenv * y)))
			break;
		env *= env_k;
		tenv *= t_k;
	}
}

/* Additive voice with per-partial exponential decay: higher partials die faster, which is what
 * makes a struck string (piano), a bell or a mallet sound struck rather than synthetic. */
struct partials {
	int count;
	double ratio[16], amp[16], decay[16];
};

static void additive(struct bus *b, double t, double dur, double freq, double vel, double pan,
		     const struct partials *pp, double attack, double release)
{
	struct voice_out v = vout(b, t, pan);
	long hold = (long)(dur * b->rate), rel = (long)(release * b->rate) + 1;
	long att = (long)(attack * b->rate) + 1;
	long len = hold + rel * 5;
	double nyq = b->rate * 0.45;
	for (int k = 0; k < pp->count; k++) {
		double f = freq * pp->ratio[k];
		if (f >= nyq)
			continue;
		double w = TAU * f / b->rate;
		double c = 2.0 * cos(w), y1 = 0.0, y2 = -sin(w);
		double env = vel * pp->amp[k], env_k = exp(-1.0 / (pp->decay[k] * b->rate));
		double rel_k = exp(-1.0 / rel);
		long kl = len;
		long life = (long)(pp->decay[k] * 7.0 * b->rate);
		if (life < kl)
			kl = life;
		for (long n = 0; n < kl; n++) {
			double y = c * y1 - y2;
			y2 = y1;
			y1 = y;
			double a = n < att ? (double)n / att : 1.0;
			if (!vput(&v, n, (float)(env * a * y)))
				break;
			env *= n < hold ? env_k : env_k * rel_k;
		}
	}
}

static void piano(struct bus *b, double t, double dur, double midi, double vel, double pan,
		  double bright)
{
	double f = midi_hz(midi);
	struct partials pp = {.count = 10};
	double base = 1.6 * pow(261.6 / f, 0.5);
	if (base > 5.0)
		base = 5.0;
	if (base < 0.35)
		base = 0.35;
	double roll = 1.9 - 0.9 * bright;
	for (int k = 0; k < pp.count; k++) {
		int h = k + 1;
		/* Stiff-string inharmonicity: partial h sits at h*sqrt(1+B h^2) times the fundamental. */
		pp.ratio[k] = h * sqrt(1.0 + 0.0004 * h * h);
		pp.amp[k] = 0.5 / pow(h, roll) * (h == 2 ? 1.3 : 1.0);
		pp.decay[k] = base / (1.0 + 0.45 * k);
	}
	additive(b, t, dur, f, vel, pan, &pp, 0.003, 0.12);
}

static void bell(struct bus *b, double t, double midi, double vel, double pan, double decay)
{
	static const double ratio[] = {1.0, 2.0, 2.76, 4.07, 5.4};
	static const double amp[] = {0.5, 0.2, 0.25, 0.08, 0.06};
	struct partials pp = {.count = 5};
	for (int k = 0; k < 5; k++) {
		pp.ratio[k] = ratio[k];
		pp.amp[k] = amp[k];
		pp.decay[k] = decay / (1.0 + 0.8 * k);
	}
	additive(b, t, 0.0, midi_hz(midi), vel, pan, &pp, 0.004, decay);
}

static double polyblep(double ph, double dt)
{
	if (ph < dt) {
		ph /= dt;
		return ph + ph - ph * ph - 1.0;
	}
	if (ph > 1.0 - dt) {
		ph = (ph - 1.0) / dt;
		return ph * ph + ph + ph + 1.0;
	}
	return 0.0;
}

/* Two detuned band-limited saws through a 2-pole low-pass: pads, stabs, bass, leads and (with
 * drive) the rock guitar. The filter cutoff is where energy becomes brightness. */
static void saw_voice(struct bus *b, double t, double dur, double midi, double vel, double pan,
		      double cutoff, double attack, double decay, double sustain, double release,
		      double detune_cents, double drive)
{
	struct voice_out v = vout(b, t, pan);
	double f = midi_hz(midi);
	double f2 = f * pow(2.0, detune_cents / 1200.0);
	double dt1 = f / b->rate, dt2 = f2 / b->rate;
	double ph1 = 0.0, ph2 = 0.37;
	double a = onepole(cutoff, b->rate), s1 = 0.0, s2 = 0.0;
	long hold = (long)(dur * b->rate), att = (long)(attack * b->rate) + 1;
	long len = hold + (long)(release * 6.0 * b->rate);
	double dec_k = exp(-1.0 / (decay * b->rate + 1.0)), rel_k = exp(-1.0 / (release * b->rate + 1.0));
	double env_d = 1.0, rel = 1.0;
	for (long n = 0; n < len; n++) {
		double x = (2.0 * ph1 - 1.0 - polyblep(ph1, dt1)) + (2.0 * ph2 - 1.0 - polyblep(ph2, dt2));
		ph1 += dt1;
		if (ph1 >= 1.0)
			ph1 -= 1.0;
		ph2 += dt2;
		if (ph2 >= 1.0)
			ph2 -= 1.0;
		if (drive > 0.0)
			x = tanh(x * drive) / tanh(drive);
		s1 += a * (x - s1);
		s2 += a * (s1 - s2);
		double env = (n < att ? (double)n / att : 1.0) * (sustain + (1.0 - sustain) * env_d) * rel;
		env_d *= dec_k;
		if (n >= hold)
			rel *= rel_k;
		if (!vput(&v, n, (float)(0.35 * vel * env * s2)))
			break;
	}
}

/* Sine sub-bass with a touch of saturation so it is audible on small speakers (the 808). */
static void sub_bass(struct bus *b, double t, double dur, double midi, double vel, double decay)
{
	struct voice_out v = vout(b, t, 0.0);
	double w = TAU * midi_hz(midi) / b->rate;
	double c = 2.0 * cos(w), y1 = 0.0, y2 = -sin(w);
	long hold = (long)(dur * b->rate), len = hold + b->rate / 20;
	double env = vel, k = exp(-1.0 / (decay * b->rate)), rk = exp(-1.0 / (0.01 * b->rate));
	long att = b->rate / 200;
	for (long n = 0; n < len; n++) {
		double y = c * y1 - y2;
		y2 = y1;
		y1 = y;
		double a = n < att ? (double)n / att : 1.0;
		if (!vput(&v, n, (float)(env * a * tanh(1.5 * y) / tanh(1.5))))
			break;
		env *= n < hold ? k : rk;
	}
}

/* ---- arrangement --------------------------------------------------------------------------- */

enum section { SEC_INTRO, SEC_VERSE, SEC_CHORUS, SEC_OUTRO };

struct song {
	const struct synth_params *p;
	struct bus bus;
	struct rng rng;
	double beat;          /* seconds per quarter note */
	int bars;
	int scale[7];         /* semitones above tonic */
	int chord_scale[7];   /* scale chords are built from (harmonic minor raises the 7th) */
	int prog[4];          /* scale degrees, one chord per bar */
	int sevenths;
	double jitter;        /* seconds, std-dev of timing error */
	double cutoff;        /* Hz, brightness */
};

static const char *const genre_names[SYNTH_GENRE_COUNT] = {
	"techno", "hip-hop", "ambient", "jazz", "rock", "piano",
};

const char *synth_genre_name(enum synth_genre g)
{
	return (unsigned)g < SYNTH_GENRE_COUNT ? genre_names[g] : NULL;
}

int synth_genre_from_name(const char *name)
{
	for (int g = 0; name && g < SYNTH_GENRE_COUNT; g++)
		if (strcmp(name, genre_names[g]) == 0)
			return g;
	return -1;
}

struct preset {
	double tempo_lo, tempo_hi, swing, energy, dance;
};

static const struct preset presets[SYNTH_GENRE_COUNT] = {
	[SYNTH_TECHNO] = {122, 135, 0.0, 0.85, 0.85},
	[SYNTH_HIPHOP] = {84, 98, 0.35, 0.65, 0.8},
	[SYNTH_AMBIENT] = {70, 90, 0.0, 0.2, 0.25},
	[SYNTH_JAZZ] = {100, 170, 0.8, 0.45, 0.55},
	[SYNTH_ROCK] = {110, 150, 0.0, 0.8, 0.55},
	[SYNTH_PIANO] = {70, 110, 0.0, 0.25, 0.3},
};

void synth_params_preset(struct synth_params *p, enum synth_genre genre, uint64_t seed)
{
	if ((unsigned)genre >= SYNTH_GENRE_COUNT)
		genre = SYNTH_TECHNO;
	const struct preset *pr = &presets[genre];
	struct rng r = {seed ^ 0x5eedULL};
	memset(p, 0, sizeof(*p));
	p->genre = genre;
	p->tempo = floor(pr->tempo_lo + rng_unit(&r) * (pr->tempo_hi - pr->tempo_lo) + 0.5);
	p->key = 0;
	p->mode = SYNTH_MAJOR;
	p->energy = pr->energy;
	p->danceability = pr->dance;
	p->swing = pr->swing;
	p->seed = seed;
	p->duration = 30.0;
	p->rate = 44100;
}

static enum section section_of(const struct song *s, int bar)
{
	int edge = s->bars >= 8 ? 2 : 1;
	if (bar < edge)
		return SEC_INTRO;
	if (bar >= s->bars - edge)
		return SEC_OUTRO;
	return ((bar - edge) / 4) % 2 ? SEC_CHORUS : SEC_VERSE;
}

static double section_level(enum section sec)
{
	static const double lv[] = {0.6, 0.85, 1.0, 0.65};
	return lv[sec];
}

/* Time of a sixteenth-note step, with swing delaying the off-beat eighth (and the sixteenths
 * around it) toward the triplet position. */
static double step_time(const struct song *s, int bar, int step)
{
	int beat = step / 4, sub = step % 4;
	static const double swung[4] = {0.0, 0.0833, 0.1667, 0.0833};
	double pos = beat + sub * 0.25 + s->p->swing * swung[sub];
	return (bar * 4 + pos) * s->beat;
}

static double human(struct song *s, double t)
{
	double j = t + rng_gauss(&s->rng) * s->jitter;
	return j < 0.0 ? 0.0 : j;
}

/* MIDI note of scale degree d (may exceed 6 or be negative) above tonic note `root`. */
static int degree_note(const int *scale, int root, int d)
{
	int oct = d >= 0 ? d / 7 : -((-d + 6) / 7);
	int idx = d - oct * 7;
	return root + oct * 12 + scale[idx];
}

static int chord_notes(const struct song *s, int degree, int root, int *out)
{
	/* Sevenths colour ii and V; the tonic stays a triad, since Imaj7 contains the iii chord
	 * and blurs which key the tune is in. */
	int n = s->sevenths && degree % 7 != 0 ? 4 : 3;
	for (int i = 0; i < n; i++)
		out[i] = degree_note(s->chord_scale, root, degree + 2 * i);
	return n;
}

static void render_drums(struct song *s, int bar, enum section sec)
{
	const struct synth_params *p = s->p;
	double e = p->energy, d = p->danceability, lv = section_level(sec);
	struct rng *r = &s->rng;
	/* Danceability is how hard and how reliably the kick lands on the beat. */
	double kv = (0.45 + 0.55 * d) * lv;
	double drop = (1.0 - d) * 0.35, ghost = (1.0 - d) * 0.12;
	for (int st = 0; st < 16; st++) {
		double t = human(s, step_time(s, bar, st));
		int on_beat = st % 4 == 0;
		switch (p->genre) {
		case SYNTH_TECHNO:
			if (on_beat && rng_unit(r) >= drop)
				kick(&s->bus, t, kv, 0.12, 150, 48);
			else if (!on_beat && rng_unit(r) < ghost)
				kick(&s->bus, t, kv * 0.6, 0.08, 140, 50);
			if (sec == SEC_INTRO)
				break;
			if (st % 4 == 2)
				noise_hit(&s->bus, r, t, 0.12 * lv * (0.5 + e), 0.06, 7000, 16000, 0, 0, 0.3);
			else if (e > 0.55 && st % 2 == 1)
				noise_hit(&s->bus, r, t, 0.05 * lv, 0.015, 8000, 16000, 0, 0, -0.3);
			if ((st == 4 || st == 12) && e > 0.35)
				noise_hit(&s->bus, r, t, 0.3 * lv, 0.05, 900, 6000, 0, 0, 0.0);
			break;
		case SYNTH_HIPHOP:
		case SYNTH_ROCK: {
			int is_kick = st == 0 || st == 8 || (st == 10 && e > 0.5 && p->genre == SYNTH_HIPHOP) ||
				      (st == 6 && e > 0.6 && p->genre == SYNTH_ROCK);
			if (is_kick && !(on_beat && rng_unit(r) < drop))
				kick(&s->bus, t, kv * (on_beat ? 1.0 : 0.7), p->genre == SYNTH_HIPHOP ? 0.2 : 0.1,
				     130, 45);
			else if (!on_beat && rng_unit(r) < ghost)
				kick(&s->bus, t, kv * 0.5, 0.1, 130, 45);
			if (sec == SEC_INTRO && p->genre == SYNTH_HIPHOP)
				break;
			if (st == 4 || st == 12)
				noise_hit(&s->bus, r, t, 0.55 * lv, p->genre == SYNTH_ROCK ? 0.12 : 0.09, 400,
					  7000, 190, 0.5, 0.05);
			if (st % 2 == 0 || (e > 0.75 && p->genre == SYNTH_HIPHOP))
				noise_hit(&s->bus, r, t, (st % 2 ? 0.04 : 0.08) * lv * (0.6 + e), 0.025, 7000,
					  15000, 0, 0, 0.35);
			if (p->genre == SYNTH_ROCK && st == 0 && sec == SEC_CHORUS && bar % 4 == 0)
				noise_hit(&s->bus, r, t, 0.25 * lv, 0.6, 4000, 14000, 0, 0, -0.4);
			break;
		}
		case SYNTH_JAZZ:
			/* Ride "ding, ding-a ding": every beat plus the swung skip note before 2 and 4. */
			if (on_beat || st == 6 || st == 14)
				noise_hit(&s->bus, r, t, (on_beat ? 0.1 : 0.06) * (0.6 + e), 0.25, 5000, 12000,
					  5200, 0.05, 0.4);
			if (st == 4 || st == 12)
				noise_hit(&s->bus, r, t, 0.06, 0.02, 6000, 12000, 0, 0, -0.3);
			if (on_beat && rng_unit(r) >= drop)
				kick(&s->bus, t, kv * 0.35, 0.1, 110, 50);
			if (st % 2 == 0 && !on_beat && rng_unit(r) < 0.12 + 0.2 * e)
				noise_hit(&s->bus, r, t, 0.08 * lv, 0.06, 500, 6000, 200, 0.3, -0.1);
			break;
		case SYNTH_AMBIENT:
			if (on_beat && sec != SEC_INTRO && (st == 0 || st == 8 || e > 0.5) &&
			    rng_unit(r) >= drop)
				kick(&s->bus, t, kv * 0.45, 0.2, 90, 42);
			break;
		default:
			break;
		}
	}
}

static void render_bass(struct song *s, int bar, enum section sec, int chord_root)
{
	const struct synth_params *p = s->p;
	double lv = section_level(sec), e = p->energy;
	int root = chord_root;
	switch (p->genre) {
	case SYNTH_TECHNO:
		for (int st = 2; st < 16; st += 4)
			saw_voice(&s->bus, human(s, step_time(s, bar, st)), s->beat * 0.35, root, 0.9 * lv, 0,
				  200 + 1600 * e, 0.004, 0.08, 0.3, 0.03, 8, 0);
		break;
	case SYNTH_HIPHOP:
		sub_bass(&s->bus, human(s, step_time(s, bar, 0)), s->beat * 1.8, root, 0.55 * lv, 1.2);
		sub_bass(&s->bus, human(s, step_time(s, bar, 8)), s->beat * 1.2, root + (bar % 2 ? 7 : 0),
			 0.5 * lv, 1.0);
		break;
	case SYNTH_ROCK:
		for (int st = 0; st < 16; st += 2)
			saw_voice(&s->bus, human(s, step_time(s, bar, st)), s->beat * 0.45, root,
				  (st % 4 ? 0.6 : 0.8) * lv, 0, 300 + 1200 * e, 0.003, 0.2, 0.6, 0.03, 4, 0);
		break;
	case SYNTH_JAZZ: {
		/* Walking bass: root on 1, chord tones, then a chromatic approach into the next bar. */
		int next = s->prog[(bar + 1) % 4];
		int nroot = degree_note(s->chord_scale, 36 + p->key, next);
		int notes[4] = {root, degree_note(s->chord_scale, root, 2), degree_note(s->chord_scale, root, 4),
				nroot + (rng_unit(&s->rng) < 0.5 ? 1 : -1)};
		(void)nroot;
		for (int i = 0; i < 4; i++)
			piano(&s->bus, human(s, step_time(s, bar, i * 4)), s->beat * 0.9, notes[i],
			      (i == 0 ? 1.1 : 0.9) * lv, -0.1, 0.1);
		break;
	}
	case SYNTH_AMBIENT:
		/* A tonic drone (pedal point) under changing chords: the genre's signature sound. */
		sub_bass(&s->bus, step_time(s, bar, 0), s->beat * 4.0, 36 + p->key, 0.3 * lv, 4.0);
		break;
	default:
		break;
	}
}

static void render_chords(struct song *s, int bar, enum section sec, int degree)
{
	const struct synth_params *p = s->p;
	double lv = section_level(sec), e = p->energy;
	int notes[4];
	int n = chord_notes(s, degree, 55 + (p->key + 5) % 12, notes);
	/* Keep voicings inside one octave around middle C so the progression sounds, not jumps. */
	for (int i = 0; i < n; i++)
		while (notes[i] > 67)
			notes[i] -= 12;
	double bar_t = step_time(s, bar, 0), bar_len = 4 * s->beat;
	switch (p->genre) {
	case SYNTH_TECHNO:
		for (int i = 0; i < n; i++)
			saw_voice(&s->bus, bar_t, bar_len * 0.95, notes[i], 0.22 * lv, i % 2 ? 0.5 : -0.5,
				  s->cutoff * 0.5, 0.08, 1.0, 0.7, 0.2, 12, 0);
		break;
	case SYNTH_AMBIENT:
		for (int i = 0; i < n; i++)
			saw_voice(&s->bus, bar_t, bar_len, notes[i], 0.3 * lv, i % 2 ? 0.6 : -0.6,
				  s->cutoff * 0.4, bar_len * 0.3, 2.0, 0.8, bar_len * 0.3, 14, 0);
		break;
	case SYNTH_HIPHOP:
		for (int k = 0; k < 2; k++) {
			double t = human(s, step_time(s, bar, k ? 10 : 0));
			for (int i = 0; i < n; i++)
				piano(&s->bus, t, s->beat * (k ? 1.5 : 2.2), notes[i] + 12, 0.35 * lv,
				      i % 2 ? 0.3 : -0.3, 0.2 + 0.4 * e);
		}
		break;
	case SYNTH_JAZZ:
		/* Comping on a couple of swung eighths per bar, always including the downbeat. */
		for (int st = 0; st < 16; st += 2) {
			if (st != 0 && rng_unit(&s->rng) > 0.2 + 0.2 * e)
				continue;
			double t = human(s, step_time(s, bar, st));
			for (int i = 0; i < n; i++)
				piano(&s->bus, t, s->beat * (st ? 0.6 : 1.4), notes[i] + 12, 0.3 * lv,
				      0.2 + 0.1 * i, 0.35);
		}
		break;
	case SYNTH_ROCK: {
		/* Power chord (root + fifth + octave) through a saturating "amp". */
		int pc[3] = {notes[0] - 12, notes[0] - 5, notes[0]};
		int eighths = sec == SEC_CHORUS || e > 0.7;
		/* A quiet organ holds the full triad: power chords have no third, so without it
		 * major and minor would sound alike. */
		for (int i = 0; i < n; i++)
			saw_voice(&s->bus, bar_t, bar_len * 0.95, notes[i] + 12, 0.12 * lv, i % 2 ? 0.4 : -0.4,
				  1500, 0.05, 1.0, 0.8, 0.1, 5, 0);
		for (int st = 0; st < 16; st += eighths ? 2 : 8) {
			double t = human(s, step_time(s, bar, st));
			for (int i = 0; i < 3; i++)
				saw_voice(&s->bus, t, s->beat * (eighths ? 0.45 : 1.9), pc[i], 0.2 * lv,
					  i == 1 ? -0.6 : 0.6, 1200 + 3000 * e, 0.002, 0.5, 0.7, 0.05, 7,
					  1.5 + 3.0 * e);
		}
		break;
	}
	case SYNTH_PIANO: {
		/* Left hand: bass octave on 1, then the chord on 2, 3 and 4. */
		double t = human(s, step_time(s, bar, 0));
		piano(&s->bus, t, s->beat * 1.8, notes[0] - 12, 0.5 * lv, -0.3, 0.3 * e + 0.2);
		piano(&s->bus, t, s->beat * 1.8, notes[0] - 24, 0.35 * lv, -0.3, 0.3 * e + 0.2);
		for (int b = 1; b < 4; b++) {
			t = human(s, step_time(s, bar, b * 4));
			for (int i = 1; i < n; i++)
				piano(&s->bus, t, s->beat * 0.9, notes[i], 0.25 * lv, -0.1, 0.3 * e + 0.2);
		}
		break;
	}
	default:
		break;
	}
}

struct motif {
	int count;
	int step[16];  /* sixteenth position inside a 2-bar phrase (0..31) */
	int move[16];  /* scale-degree step from the previous note */
	double len[16];
};

static void make_motif(struct song *s, struct motif *m)
{
	double e = s->p->energy;
	/* Denser phrases at higher energy; sparse long notes for calm music. */
	double density = 0.2 + 0.45 * e;
	if (s->p->genre == SYNTH_AMBIENT)
		density = 0.12;
	m->count = 0;
	/* Calm genres move in quarter notes; the others in eighths. */
	int grid = s->p->genre == SYNTH_PIANO || s->p->genre == SYNTH_AMBIENT ? 4 : 2;
	for (int st = 0; st < 32 && m->count < 16; st += grid) {
		int strong = st % 8 == 0;
		if (st == 0 || rng_unit(&s->rng) < (strong ? density + 0.3 : density)) {
			m->step[m->count] = st;
			int mv = rng_int(&s->rng, 5) - 2;
			m->move[m->count] = mv == 0 && rng_unit(&s->rng) < 0.5 ? 1 : mv;
			m->count++;
		}
	}
	for (int i = 0; i < m->count; i++) {
		int next = i + 1 < m->count ? m->step[i + 1] : 32;
		m->len[i] = (next - m->step[i]) * 0.25;
	}
}

static void render_lead(struct song *s, int bar, enum section sec, const struct motif *m, int *deg)
{
	const struct synth_params *p = s->p;
	double lv = section_level(sec), e = p->energy;
	int lead_root = 72 + p->key - (p->key > 5 ? 12 : 0);
	int half = bar % 2;
	for (int i = 0; i < m->count; i++) {
		int st = m->step[i];
		if ((st >= 16) != half)
			continue;
		int chord_deg = s->prog[bar % 4];
		*deg += m->move[i];
		if (*deg > 9)
			*deg -= 4;
		if (*deg < -2)
			*deg += 4;
		if (st % 8 == 0) {
			/* Strong beats land on a chord tone so the melody states the harmony. */
			int best = *deg, bd = 99;
			for (int c = -7; c <= 14; c += 1) {
				int rel = ((c - chord_deg) % 7 + 7) % 7;
				if ((rel == 0 || rel == 2 || rel == 4) && abs(c - *deg) < bd) {
					bd = abs(c - *deg);
					best = c;
				}
			}
			*deg = best;
		}
		int note = degree_note(chord_deg == 4 ? s->chord_scale : s->scale, lead_root, *deg);
		double t = human(s, step_time(s, bar, st % 16));
		double dur = m->len[i] * s->beat * 0.9;
		double vel = (st % 8 == 0 ? 1.0 : 0.8) * lv;
		switch (p->genre) {
		case SYNTH_TECHNO:
			saw_voice(&s->bus, t, dur * 0.5, note, 0.35 * vel, 0.2, s->cutoff, 0.003, 0.15, 0.2,
				  0.08, 6, 0);
			break;
		case SYNTH_HIPHOP:
		case SYNTH_AMBIENT:
			bell(&s->bus, t, note, 0.35 * vel, p->genre == SYNTH_AMBIENT ? 0.4 : -0.2,
			     p->genre == SYNTH_AMBIENT ? 2.5 : 0.8);
			break;
		case SYNTH_ROCK:
			saw_voice(&s->bus, t, dur, note, 0.3 * vel, -0.2, 2000 + 3000 * e, 0.01, 0.4, 0.8, 0.08,
				  5, 2.0);
			break;
		case SYNTH_JAZZ:
		case SYNTH_PIANO:
			piano(&s->bus, t, dur, note, 0.45 * vel, 0.15, 0.3 + 0.4 * e);
			break;
		default:
			break;
		}
	}
}

/* Ambient arpeggio: one bell per beat across the chord gives the otherwise floating genre a
 * pulse a listener (and the tempo tracker) can follow. */
static void render_arp(struct song *s, int bar, enum section sec, int degree)
{
	int notes[4];
	int n = chord_notes(s, degree, 60 + s->p->key, notes);
	for (int b = 0; b < 4; b++)
		bell(&s->bus, human(s, step_time(s, bar, b * 4)), notes[b % n] + 12,
		     0.22 * section_level(sec) * (b == 0 ? 1.2 : 1.0), b % 2 ? 0.5 : -0.5, 1.2);
}

/* Schroeder reverb (4 combs + 2 allpasses per side), applied to a copy and mixed back. */
static void reverb(struct bus *b, double wet)
{
	static const double comb_ms[4] = {29.7, 37.1, 41.1, 43.7};
	static const double ap_ms[2] = {5.0, 1.7};
	float *chan[2] = {b->l, b->r};
	for (int c = 0; c < 2; c++) {
		float *x = chan[c];
		float *acc = xcalloc((size_t)b->n, sizeof(float));
		for (int k = 0; k < 4; k++) {
			long d = (long)(comb_ms[k] * b->rate / 1000.0) + c * 23;
			float *line = xcalloc((size_t)d, sizeof(float));
			long pos = 0;
			float lp = 0.0f;
			for (long i = 0; i < b->n; i++) {
				float y = line[pos];
				lp = 0.7f * y + 0.3f * lp; /* damping: highs die first, like a real room */
				line[pos] = x[i] + 0.82f * lp;
				acc[i] += y;
				if (++pos == d)
					pos = 0;
			}
			free(line);
		}
		for (int k = 0; k < 2; k++) {
			long d = (long)(ap_ms[k] * b->rate / 1000.0) + c * 7;
			float *line = xcalloc((size_t)d, sizeof(float));
			long pos = 0;
			for (long i = 0; i < b->n; i++) {
				float buf = line[pos];
				float y = -acc[i] + buf;
				line[pos] = acc[i] + 0.5f * buf;
				acc[i] = y;
				if (++pos == d)
					pos = 0;
			}
			free(line);
		}
		for (long i = 0; i < b->n; i++)
			x[i] += (float)(wet * 0.25) * acc[i];
		free(acc);
	}
}

static int params_ok(const struct synth_params *p)
{
	return p && (unsigned)p->genre < SYNTH_GENRE_COUNT && p->tempo >= 40 && p->tempo <= 240 &&
	       p->key >= 0 && p->key <= 11 && p->duration > 0 && p->duration <= 3600 &&
	       p->rate >= 8000 && p->rate <= 192000;
}

static double clamp01(double x)
{
	return x < 0 ? 0 : x > 1 ? 1 : x;
}

/* Master: level to an energy-dependent RMS (energy is, first of all, loudness), then a soft
 * knee limiter so loud settings never clip, then short fades so tracks start and end cleanly. */
static struct pcm *master(struct bus *b, double energy, double duration)
{
	double sum = 0.0;
	for (long i = 0; i < b->n; i++)
		sum += (double)b->l[i] * b->l[i] + (double)b->r[i] * b->r[i];
	double rms = sqrt(sum / (2.0 * (double)(b->n > 0 ? b->n : 1)));
	double target = pow(10.0, (-30.0 + 20.0 * energy) / 20.0);
	double g = rms > 1e-9 ? target / rms : 0.0;
	struct pcm *out = pcm_new(b->rate, 2, (size_t)b->n);
	long fade_in = b->rate / 100, fade_out = (long)(fmin(1.5, duration * 0.1) * b->rate);
	for (long i = 0; i < b->n; i++) {
		double f = 1.0;
		if (i < fade_in)
			f = (double)i / fade_in;
		if (i > b->n - fade_out)
			f *= (double)(b->n - i) / fade_out;
		for (int c = 0; c < 2; c++) {
			double x = (c ? b->r[i] : b->l[i]) * g * f;
			double a = fabs(x);
			if (a > 0.8)
				a = 0.8 + 0.18 * tanh((a - 0.8) / 0.18);
			out->samples[2 * i + c] = (float)(x < 0 ? -a : a);
		}
	}
	return out;
}

struct pcm *synth_render(const struct synth_params *p)
{
	if (!params_ok(p))
		return NULL;
	struct song s = {.p = p, .rng = {p->seed * 0x2545f4914f6cdd1dULL + 1}};
	s.bus.rate = p->rate;
	s.bus.n = (long)(p->duration * p->rate);
	if (s.bus.n < 1)
		return NULL;
	s.bus.l = xcalloc((size_t)s.bus.n, sizeof(float));
	s.bus.r = xcalloc((size_t)s.bus.n, sizeof(float));
	s.beat = 60.0 / p->tempo;
	s.bars = (int)ceil(p->duration / (4.0 * s.beat));
	double e = clamp01(p->energy), d = clamp01(p->danceability);
	s.jitter = 0.002 + (1.0 - d) * 0.022;
	s.cutoff = 400.0 * pow(2.0, 0.5 + 4.5 * e);
	static const int major[7] = {0, 2, 4, 5, 7, 9, 11};
	static const int minor[7] = {0, 2, 3, 5, 7, 8, 10};
	static const int harmonic[7] = {0, 2, 3, 5, 7, 8, 11};
	memcpy(s.scale, p->mode == SYNTH_MAJOR ? major : minor, sizeof(s.scale));
	memcpy(s.chord_scale, p->mode == SYNTH_MAJOR ? major : harmonic, sizeof(s.chord_scale));
	/* Progressions that return to the tonic often, so the key is heard (and measurable). */
	static const int maj_prog[][4] = {{0, 3, 0, 4}, {0, 5, 3, 4}, {0, 4, 5, 3}, {0, 3, 4, 0}};
	static const int min_prog[][4] = {{0, 3, 0, 4}, {0, 5, 3, 4}, {0, 3, 4, 0}, {0, 5, 0, 4}};
	static const int jazz_prog[][4] = {{1, 4, 0, 0}, {0, 5, 1, 4}};
	int pick = rng_int(&s.rng, 4);
	if (p->genre == SYNTH_JAZZ) {
		s.sevenths = 1;
		memcpy(s.prog, jazz_prog[pick % 2], sizeof(s.prog));
	} else {
		memcpy(s.prog, p->mode == SYNTH_MAJOR ? maj_prog[pick] : min_prog[pick], sizeof(s.prog));
	}
	struct synth_params eff = *p;
	eff.energy = e;
	eff.danceability = d;
	eff.swing = clamp01(p->swing);
	s.p = &eff;
	struct motif verse, chorus;
	make_motif(&s, &verse);
	make_motif(&s, &chorus);
	int deg = 0;
	for (int bar = 0; bar < s.bars; bar++) {
		enum section sec = section_of(&s, bar);
		int degree = s.prog[bar % 4];
		/* The last bar resolves to the tonic, as real songs do. */
		if (bar == s.bars - 1)
			degree = 0;
		int bass_root = degree_note(s.chord_scale, 36 + p->key, degree);
		render_drums(&s, bar, sec);
		if (sec != SEC_INTRO || p->genre == SYNTH_AMBIENT || p->genre == SYNTH_PIANO)
			render_bass(&s, bar, sec, bass_root);
		render_chords(&s, bar, sec, degree);
		if (p->genre == SYNTH_AMBIENT)
			render_arp(&s, bar, sec, degree);
		if (sec == SEC_CHORUS || (sec == SEC_VERSE && (e > 0.4 || p->genre == SYNTH_PIANO)))
			render_lead(&s, bar, sec, sec == SEC_CHORUS ? &chorus : &verse, &deg);
	}
	static const double wet[SYNTH_GENRE_COUNT] = {0.3, 0.25, 0.9, 0.35, 0.3, 0.5};
	reverb(&s.bus, wet[p->genre]);
	struct pcm *out = master(&s.bus, e, p->duration);
	free(s.bus.l);
	free(s.bus.r);
	return out;
}

/* ---- speech ----------------------------------------------------------------------------- */

struct formant {
	double a1, a2, gain;
	double y1, y2;
};

static void formant_set(struct formant *f, double freq, double bw, int rate)
{
	/* Two-pole resonator: poles at radius exp(-pi bw / fs), angle 2 pi f / fs. */
	double r = exp(-M_PI * bw / rate);
	f->a1 = 2.0 * r * cos(TAU * freq / rate);
	f->a2 = -r * r;
	f->gain = 1.0 - r;
}

static double formant_run(struct formant *f, double x)
{
	double y = f->gain * x + f->a1 * f->y1 + f->a2 * f->y2;
	f->y2 = f->y1;
	f->y1 = y;
	return y;
}

struct pcm *synth_speech(uint64_t seed, double duration, int rate)
{
	if (!(duration > 0 && duration <= 3600 && rate >= 8000 && rate <= 192000))
		return NULL;
	static const double vowels[][3] = {
		{730, 1090, 2440}, {270, 2290, 3010}, {300, 870, 2240}, {530, 1840, 2480},
		{570, 840, 2410},  {660, 1720, 2410}, {440, 1020, 2240}, {390, 1990, 2550},
	};
	struct rng r = {seed * 0x9e3779b97f4a7c15ULL + 7};
	long total = (long)(duration * rate);
	struct pcm *out = pcm_new(rate, 1, (size_t)total);
	float *y = out->samples;
	double f0_base = 95.0 + rng_unit(&r) * 110.0; /* speaker: low male .. high female voice */
	struct formant fm[3] = {{0}};
	double phase = 0.0;
	long i = (long)(0.3 * rate);
	while (i < total) {
		/* A phrase: 4-14 syllables under a declining pitch contour, then a breath pause. */
		int syl = 4 + rng_int(&r, 11);
		double f0_start = f0_base * (1.1 + 0.15 * rng_unit(&r));
		for (int k = 0; k < syl && i < total; k++) {
			double contour = f0_start * (1.0 - 0.25 * k / syl);
			/* Consonant: a fricative (high noise) or plosive (short broadband burst). */
			if (rng_unit(&r) < 0.7) {
				int fric = rng_unit(&r) < 0.5;
				long n = (long)((fric ? 0.05 + 0.05 * rng_unit(&r) : 0.015) * rate);
				double lp = 0.0, a = onepole(fric ? 3500 : 1200, rate), amp = fric ? 0.05 : 0.12;
				for (long j = 0; j < n && i < total; j++, i++) {
					double x = noise(&r);
					lp += a * (x - lp);
					y[i] += (float)(amp * (fric ? x - lp : x) * sin(M_PI * j / n));
				}
			}
			/* Vowel: glottal pulse train through three formant resonators. */
			const double *v = vowels[rng_int(&r, 8)];
			for (int q = 0; q < 3; q++)
				formant_set(&fm[q], v[q] * (0.95 + 0.1 * rng_unit(&r)), 60 + 40 * q, rate);
			long n = (long)((0.09 + 0.12 * rng_unit(&r)) * rate);
			double stress = 0.6 + 0.4 * rng_unit(&r);
			double glide = (rng_unit(&r) - 0.5) * 0.2;
			for (long j = 0; j < n && i < total; j++, i++) {
				double u = (double)j / n;
				double f0 = contour * (1.0 + glide * u) * (1.0 + 0.01 * rng_gauss(&r));
				phase += f0 / rate;
				double src = 0.0;
				if (phase >= 1.0) {
					phase -= 1.0;
					src = 1.0;
				}
				src += 0.02 * noise(&r); /* breathiness */
				double s = formant_run(&fm[0], src) * 1.0 + formant_run(&fm[1], src) * 0.5 +
					   formant_run(&fm[2], src) * 0.25;
				double env = sin(M_PI * u);
				y[i] += (float)(stress * env * s * 3.0);
			}
			/* Tiny gap between syllables. */
			i += (long)((0.02 + 0.05 * rng_unit(&r)) * rate);
		}
		i += (long)((0.25 + 0.45 * rng_unit(&r)) * rate);
	}
	double peak = 0.0;
	for (long j = 0; j < total; j++)
		peak = fmax(peak, fabs(y[j]));
	if (peak > 0.0)
		for (long j = 0; j < total; j++)
			y[j] = (float)(y[j] * 0.7 / peak);
	return out;
}
