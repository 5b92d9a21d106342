/*
 * Rate-distortion optimized quantization (see rdoq.h for the rate model).
 *
 * Method, per block: start from rounding to nearest; then greedy passes in
 * reverse zigzag order, each level either kept, lowered by one or zeroed,
 * whichever gives the lowest J = D * 2^16 + lambda * R with R the whole
 * block's rate under the coder's contexts (the in-block contexts depend on the
 * lower-frequency levels and on the end of block, so the rate is re-evaluated
 * for every candidate rather than patched); last, the end of block is placed
 * by trying every truncation.  Neighbouring blocks' contexts are not
 * re-optimised: a block's choice is final once made, as in H.264/HEVC RDOQ.
 *
 * Bit budget: |coef| <= 8 * 8 * 255 * 2^3, steps <= 4096 * 2^3, so one
 * coefficient's squared error is below 2^32 and a block's below 2^38;
 * rates are below 64 * 80 bits = 2^23 in Q16; with lambda < RDOQ_MAX_LAMBDA =
 * 2^40 (checked by the binding) every J stays below 2^63.
 */
#include "rdoq.h"

#include <string.h>

#include "dct.h"

typedef struct {
    int eob_row, dc_row, eob_t, eob_l;
    int64_t pred;
    int second_half;                     /* (r + c) odd */
    const uint8_t *mag_t, *mag_l;        /* the top and left blocks' capped magnitudes, or NULL */
} BlockContext;

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t abs64(int64_t a) { return a < 0 ? -a : a; }

static int bit_length(uint64_t v)
{
    int n = 0;
    while (v) { n++; v >>= 1; }
    return n;
}

int64_t rdoq_log2_q16(uint64_t x)
{
    int k = bit_length(x) - 1;
    /* y = x / 2^k in [1, 2) as Q31; squaring doubles the exponent, and each
     * time it passes 2 one more fractional bit of the logarithm is 1. */
    uint64_t y = k >= 31 ? x >> (k - 31) : x << (31 - k);
    int64_t r = (int64_t)k << 16;
    for (int i = 15; i >= 0; i--) {
        y = (y * y) >> 31;
        if (y >= ((uint64_t)1 << 32)) {
            y >>= 1;
            r |= (int64_t)1 << i;
        }
    }
    return r;
}

/* Q16 cost of magnitude symbol value s >= 0 on one table row, escape
 * (Exp-Golomb: length symbol, then `length` uniform bits) included. */
static int64_t magnitude_cost(const RdoqModel *m, const int32_t *row, int64_t s)
{
    if (s < RDOQ_ESC) return row[s];
    int len = bit_length((uint64_t)(s - RDOQ_ESC) + 1) - 1;
    if (len > RDOQ_ESC_LENGTHS - 1) len = RDOQ_ESC_LENGTHS - 1;
    return (int64_t)row[RDOQ_ESC] + m->esc_cost[len] + (int64_t)len * RDOQ_ONE_BIT;
}

/* LOCO-I median edge detector: left a, top b, top-left c. */
static int64_t median_edge(int64_t a, int64_t b, int64_t c)
{
    int64_t mx = a > b ? a : b, mn = a < b ? a : b;
    return c >= mx ? mn : (c <= mn ? mx : a + b - c);
}

static BlockContext block_context(const RdoqModel *m, const RdoqPlane *p, int r, int c)
{
    BlockContext x;
    ptrdiff_t idx = (ptrdiff_t)r * p->n_cols + c;
    int has_l = c > 0, has_t = r > 0, n_nb = has_l + has_t;
    int64_t eob_l = has_l ? p->eob[idx - 1] : 0, eob_t = has_t ? p->eob[idx - p->n_cols] : 0;
    int64_t dm_l = has_l ? p->dmag[idx - 1] : 0, dm_t = has_t ? p->dmag[idx - p->n_cols] : 0;
    if (n_nb == 0) {
        x.eob_row = m->eob_row[RDOQ_NO_NEIGHBOUR];
        x.dc_row = m->dc_row[RDOQ_NO_NEIGHBOUR];
    } else {
        x.eob_row = m->eob_row[(eob_l + eob_t + (n_nb == 2)) / n_nb];
        x.dc_row = m->dc_row[min64((dm_l + dm_t) / n_nb, RDOQ_AVG_MAX)];
    }
    x.eob_t = (int)eob_t;
    x.eob_l = (int)eob_l;
    x.second_half = (r + c) & 1;
    x.mag_t = has_t ? p->mags + (idx - p->n_cols) * DCTSIZE2 : NULL;
    x.mag_l = has_l ? p->mags + (idx - 1) * DCTSIZE2 : NULL;
    x.pred = 0;
    if (p->dc_prediction) {
        int64_t dl = has_l ? p->dc[idx - 1] : 0, dt = has_t ? p->dc[idx - p->n_cols] : 0;
        if (has_l && has_t) x.pred = median_edge(dl, dt, p->dc[idx - p->n_cols - 1]);
        else x.pred = has_l ? dl : dt;
    }
    return x;
}

static int sign_of(int32_t level, int neg) { return level == 0 ? 0 : (neg ? -1 : 1); }

/* The model's rate of a block: lev[0..63] magnitudes in zigzag order (lev[64]
 * is a constant 0 for out-of-block neighbours), neg[0..64] their signs
 * (1 = negative). */
static int64_t block_rate(const RdoqModel *m, const BlockContext *x, const int32_t *lev, const uint8_t *neg, int eob)
{
    int dc_neg = neg[0];
    int64_t rate = m->eob_cost[(ptrdiff_t)x->eob_row * RDOQ_EOB_SYMBOLS + eob];
    if (eob == 0) return rate;
    int64_t d = abs64((dc_neg ? -(int64_t)lev[0] : lev[0]) - x->pred);
    rate += magnitude_cost(m, m->dc_cost + (ptrdiff_t)(x->dc_row + (eob == 1)) * RDOQ_ALPHABET, d);
    rate += d ? RDOQ_ONE_BIT : 0;
    for (int k = 1; k < eob; k++) {
        int last = k == eob - 1;
        int up = lev[m->zz_up[k]], left = lev[m->zz_left[k]];
        int nbm = (int)min64(min64(up, RDOQ_ESC) + min64(left, RDOQ_ESC), RDOQ_NBM_MAX);
        int rem = (int)min64(eob - 1 - k, RDOQ_REM_MAX);
        int nk = (x->eob_t > k) + (x->eob_l > k);
        int refine = RDOQ_NB4 - 1;
        if (x->second_half) {
            int64_t s = 0;
            if (x->mag_t) s += x->mag_t[k];
            if (x->mag_l) s += x->mag_l[k];
            refine = m->nb4_bucket[min64(2 * s, RDOQ_NB4_MAX)];
        }
        int64_t row = (int64_t)m->ac_row[((k * (RDOQ_NBM_MAX + 1) + nbm) * (RDOQ_REM_MAX + 1) + rem) * RDOQ_NK + nk]
                      * RDOQ_NB4 + refine;
        rate += magnitude_cost(m, m->ac_cost + row * RDOQ_ALPHABET, lev[k] - last);
        if (lev[k]) {
            int su = sign_of(lev[m->zz_up[k]], neg[m->zz_up[k]]), sl = sign_of(lev[m->zz_left[k]], neg[m->zz_left[k]]);
            int srow = m->sign_row[(k * 3 + su + 1) * 3 + sl + 1];
            rate += m->sign_cost[(ptrdiff_t)srow * 2 + neg[k]];
        }
    }
    return rate;
}

static int end_of_block(const int32_t *lev, int from)
{
    int e = from;
    while (e > 0 && lev[e - 1] == 0) e--;
    return e;
}

int64_t rdoq_block(const RdoqModel *m, RdoqPlane *p, int r, int c, const int64_t *coef,
                   const uint16_t *step, int64_t lambda, int passes, int16_t *out)
{
    BlockContext x = block_context(m, p, r, c);
    int32_t lev[DCTSIZE2 + 1];
    uint8_t neg[DCTSIZE2 + 1];
    int64_t mag[DCTSIZE2], scale[DCTSIZE2];
    for (int k = 0; k < DCTSIZE2; k++) {
        int nat = m->zigzag[k];
        neg[k] = coef[nat] < 0;
        mag[k] = abs64(coef[nat]);
        scale[k] = (int64_t)step[nat] << FDCT_FRAC_BITS;
        lev[k] = (int32_t)min64((2 * mag[k] + scale[k]) / (2 * scale[k]), RDOQ_MAX_LEVEL);
    }
    lev[DCTSIZE2] = 0;
    neg[DCTSIZE2] = 0;
#define ERR(k, l) ((mag[k] - (int64_t)(l) * scale[k]) * (mag[k] - (int64_t)(l) * scale[k]))
    int64_t dist = 0;
    for (int k = 0; k < DCTSIZE2; k++) dist += ERR(k, lev[k]);
    int eob = end_of_block(lev, DCTSIZE2);
    int64_t rate = block_rate(m, &x, lev, neg, eob);

    for (int pass = 0; pass < passes; pass++) {
        int changed = 0;
        for (int k = eob - 1; k >= 0; k--) {
            int32_t keep = lev[k];
            if (keep == 0) continue;
            int32_t best = keep;
            int64_t best_j = dist * RDOQ_DIST_WEIGHT + lambda * rate, best_d = dist, best_r = rate;
            int32_t cand[2] = {keep - 1, 0};
            for (int i = 0; i < (keep > 1 ? 2 : 1); i++) {
                lev[k] = cand[i];
                int e = (cand[i] == 0 && k == eob - 1) ? end_of_block(lev, k) : eob;
                int64_t d = dist - ERR(k, keep) + ERR(k, cand[i]);
                int64_t rt = block_rate(m, &x, lev, neg, e);
                if (d * RDOQ_DIST_WEIGHT + lambda * rt < best_j) {
                    best_j = d * RDOQ_DIST_WEIGHT + lambda * rt; best = cand[i]; best_d = d; best_r = rt;
                }
            }
            lev[k] = best;
            if (best != keep) {
                changed = 1;
                dist = best_d;
                rate = best_r;
                if (best == 0 && k == eob - 1) eob = end_of_block(lev, k);
            }
        }
        if (!changed) break;
    }

    /* End of block: the best truncation, the whole block zeroed included. */
    int best_e = eob;
    int64_t best_j = dist * RDOQ_DIST_WEIGHT + lambda * rate, best_d = dist, best_r = rate, d = dist;
    int32_t saved[DCTSIZE2];
    memcpy(saved, lev, sizeof saved);
    for (int e = eob; e > 0; e--) {
        d += ERR(e - 1, 0) - ERR(e - 1, lev[e - 1]);
        lev[e - 1] = 0;
        int e2 = end_of_block(lev, e - 1);
        int64_t rt = block_rate(m, &x, lev, neg, e2);
        if (d * RDOQ_DIST_WEIGHT + lambda * rt < best_j) { best_j = d * RDOQ_DIST_WEIGHT + lambda * rt; best_e = e2; best_d = d; best_r = rt; }
    }
    memcpy(lev, saved, sizeof saved);
    for (int k = best_e; k < DCTSIZE2; k++) lev[k] = 0;
    eob = best_e;
    dist = best_d;
    rate = best_r;
#undef ERR

    for (int k = 0; k < DCTSIZE2; k++) {
        int nat = m->zigzag[k];
        out[nat] = (int16_t)(coef[nat] < 0 ? -lev[k] : lev[k]);
    }
    ptrdiff_t idx = (ptrdiff_t)r * p->n_cols + c;
    int64_t dc = out[0];
    p->eob[idx] = eob;
    p->dc[idx] = (int32_t)dc;
    for (int k = 0; k < DCTSIZE2; k++) p->mags[idx * DCTSIZE2 + k] = (uint8_t)min64(lev[k], RDOQ_ESC);
    p->dmag[idx] = eob > 0 ? (int32_t)abs64(dc - x.pred) : 0;
    return rate;
}

int64_t rdoq_blocks(const RdoqModel *m, RdoqPlane *p, const int16_t *res, ptrdiff_t n, const int32_t *rows,
                    const int32_t *cols, const uint16_t *step, int64_t lambda, int passes, int16_t *out)
{
    int64_t total = 0;
    int64_t X[DCTSIZE2];
    for (ptrdiff_t b = 0; b < n; b++) {
        dct_fdct_block(res + b * DCTSIZE2, X);
        total += rdoq_block(m, p, rows[b], cols[b], X, step, lambda, passes, out + b * DCTSIZE2);
    }
    return total;
}
