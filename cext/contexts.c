/*
 * Pass B's AC magnitude contexts (see contexts.h).  Plain loops over the
 * batch; every index was checked by the binding.
 */
#include "contexts.h"

static int min_int(int a, int b) { return a < b ? a : b; }

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
