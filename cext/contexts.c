/*
 * The entropy coder's context rows (see contexts.h).  Plain loops over the
 * batch; every index was checked by the binding.
 */
#include "contexts.h"

static int min_int(int a, int b) { return a < b ? a : b; }

void eob_contexts(const int32_t *eob_row, const int32_t *blocks, ptrdiff_t n, ptrdiff_t n_cols,
                  const int32_t *eob, int64_t *ctx)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        ptrdiff_t b = blocks[i];
        int has_l = b % n_cols > 0, has_t = b >= n_cols;
        int sum = (has_l ? eob[b - 1] : 0) + (has_t ? eob[b - n_cols] : 0);
        int mean = has_l && has_t ? (sum + 1) / 2 : sum;
        ctx[i] = eob_row[has_l || has_t ? mean : CTX_MEAN_MAX + 1];
    }
}

/* LOCO-I's median edge detector: left a, top b, top-left c. */
static int64_t med(int64_t a, int64_t b, int64_t c)
{
    int64_t mx = a > b ? a : b, mn = a < b ? a : b;
    return c >= mx ? mn : (c <= mn ? mx : a + b - c);
}

ptrdiff_t dc_contexts(const int32_t *dc_row, int dc_prediction, const int32_t *blocks, ptrdiff_t n,
                      ptrdiff_t n_cols, const int32_t *eob, const int16_t *dc, ptrdiff_t dc_stride,
                      const int32_t *dmag, int32_t *sel, int64_t *pred, int64_t *ctx)
{
    ptrdiff_t m = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        ptrdiff_t b = blocks[i];
        if (eob[b] == 0) continue;
        int has_l = b % n_cols > 0, has_t = b >= n_cols;
        int64_t p = 0;
        if (dc_prediction) {
            int64_t l = has_l ? dc[(b - 1) * dc_stride] : 0, t = has_t ? dc[(b - n_cols) * dc_stride] : 0;
            p = has_l && has_t ? med(l, t, dc[(b - n_cols - 1) * dc_stride]) : l + t;
        }
        int64_t sum = (has_l ? dmag[b - 1] : 0) + (has_t ? dmag[b - n_cols] : 0);
        int64_t mean = has_l && has_t ? sum / 2 : sum;
        int bucket = has_l || has_t ? (int)(mean < CTX_MEAN_MAX ? mean : CTX_MEAN_MAX) : CTX_MEAN_MAX + 1;
        sel[m] = (int32_t)b;
        pred[m] = p;
        ctx[m] = dc_row[2 * bucket + (eob[b] == 1)];
        m++;
    }
    return m;
}

void ac_contexts(const AcContextRule *rule, int k, const int32_t *blocks, ptrdiff_t n, ptrdiff_t n_blocks,
                 ptrdiff_t n_cols, const uint8_t *capped, const int32_t *eob, const int8_t *eob_top,
                 const int8_t *eob_left, int second_half, int64_t *ctx, int64_t *last)
{
    ptrdiff_t n_rows = n_blocks / n_cols;
    for (ptrdiff_t i = 0; i < n; i++) {
        ptrdiff_t b = blocks[i];
        const uint8_t *own = capped + (ptrdiff_t)b * CTX_STRIDE;
        int nbm = min_int(own[rule->zz_up] + own[rule->zz_left], CTX_NBM_MAX);
        int rem = min_int(eob[b] - 1 - k, CTX_REM_MAX);
        int nk = (eob_top[b] > k) + (eob_left[b] > k);
        int64_t group = rule->ac_row[((k * (CTX_NBM_MAX + 1) + nbm) * (CTX_REM_MAX + 1) + rem) * CTX_NK + nk];
        int refine = rule->n_refine - 1;
        if (second_half) {
            ptrdiff_t r = b / n_cols, c = b % n_cols;
            int s = 0;
            if (r > 0) s += capped[(b - n_cols) * CTX_STRIDE + k];
            if (r < n_rows - 1) s += capped[(b + n_cols) * CTX_STRIDE + k];
            if (c > 0) s += capped[(b - 1) * CTX_STRIDE + k];
            if (c < n_cols - 1) s += capped[(b + 1) * CTX_STRIDE + k];
            refine = rule->nb4_bucket[min_int(s, rule->nb4_max)];
        }
        ctx[i] = group * rule->n_refine + refine;
        last[i] = eob[b] - 1 == k;
    }
}
