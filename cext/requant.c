/*
 * BlockCNN's requantization of float32 accumulators (see requant.h).
 */
#include "requant.h"

#define TILE REQUANT_MAX_CHANNELS       /* elements per vectorized run */
#define ROUNDER 6755399441055744.0      /* 1.5 * 2^52: (x + R) - R rounds x to an integer */

/* The requantization of a run of channels-last values whose per-element
 * parameters are given (tiled by the caller).  The rule is integer
 * (docs/FORMAT.md); it is evaluated in double precision because that is
 * exact here and vectorizes: (acc + bias) * mult and skip * skip_mult are
 * integers below 2^41 scaled by a power of two, so every product and sum is
 * exact, and so is the floor (round-to-integer via ROUNDER, then correct
 * down).  Returns nonzero when an accumulator is not an exact integer below
 * 2^24 - the exactness guarantee, checked rather than assumed: an inexact
 * (e.g. Winograd) convolution would show up as a fraction.  Branch-free; an
 * AVX2 clone is selected at load time where the CPU has it (same results). */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__)
__attribute__((target_clones("avx2", "default")))
#endif
static int requant_run(const float *restrict acc, const float *restrict skip,
                       const double *restrict bias, const double *restrict m,
                       const double *restrict sm, double slope, double lo, double hi,
                       double offset, ptrdiff_t len, float *restrict out)
{
    int bad = 0;
    for (ptrdiff_t i = 0; i < len; i++) {
        double f = acc[i];
        /* double, not int: keeps every lane the same width so the loop vectorizes */
        double in_range = __builtin_fabs(f) < (double)REQUANT_ACC_LIMIT;   /* false for NaN */
        double fc = in_range ? f : 0.0;
        bad |= !in_range | (((fc + ROUNDER) - ROUNDER) != fc);
        double t = (fc + bias[i]) * m[i] + (double)skip[i] * sm[i];
        double tn = t * slope;
        t = t < tn ? tn : t;                  /* leaky ReLU; slope 1 when off */
        t = t + 0.5;
        t = t < lo ? lo : t;                  /* clamp before floor: same result */
        t = t > hi ? hi : t;
        double r = (t + ROUNDER) - ROUNDER;   /* nearest integer ... */
        r = r > t ? r - 1.0 : r;              /* ... then floor */
        out[i] = (float)(r + offset);
    }
    return bad;
}

int requant_f32(const float *acc, const float *skip, const int32_t *bias, const int32_t *mult,
                const int32_t *skip_mult, ptrdiff_t channels, ptrdiff_t total, int shift, int relu, int offset,
                int lo, int hi, float *out)
{
    /* Per-element parameters for a tile of whole rows, so one flat loop covers
     * it.  Without a skip, skip_mult is zero and the accumulator stands in. */
    double db[TILE], dm[TILE], dsm[TILE];
    const double scale = 1.0 / (double)((int64_t)1 << shift);   /* exact: a power of two */
    const double slope = relu ? 1.0 / (1 << INTNET_NEG_SHIFT) : 1.0;
    ptrdiff_t tile = TILE / channels * channels;
    for (ptrdiff_t i = 0; i < tile; i++) {
        ptrdiff_t c = i % channels;
        db[i] = bias[c];
        dm[i] = mult[c] * scale;
        dsm[i] = skip_mult ? skip_mult[c] * scale : 0.0;
    }
    const float *sk = skip ? skip : acc;
    int bad = 0;
    for (ptrdiff_t off = 0; off < total; off += tile) {
        ptrdiff_t len = total - off < tile ? total - off : tile;
        bad |= requant_run(acc + off, sk + off, db, dm, dsm, slope, lo - offset, hi - offset, offset, len,
                           out + off);
    }
    return bad;
}
