/*
 * Adaptive frequency rows (see adapt.h).
 *
 * Bit budget: entries are integers below ADAPT_MAX_VALUE = 2^46 in float64,
 * so sums of up to 128 entries are exact in int64 and float64.  Rows start
 * near 2^16 and gain `increment` (512) per symbol: a row reaches 2^46 only
 * after 2^37 symbols, more than any image this codec accepts holds; the check
 * turns such a stream into an error instead of inexact arithmetic.
 */
#include "adapt.h"

int adapt_rows(double *rows, ptrdiff_t n_rows, int n_symbols, const int64_t *ctx, const int64_t *sym,
               ptrdiff_t n, double increment, int cap_per_mille)
{
    (void)n_rows;
    /* Worst case: every symbol of the batch lands on one entry. */
    for (ptrdiff_t i = 0; i < n; i++)
        if (rows[ctx[i] * n_symbols + sym[i]] + increment * (double)n >= ADAPT_MAX_VALUE) return -1;
    for (ptrdiff_t i = 0; i < n; i++) rows[ctx[i] * n_symbols + sym[i]] += increment;
    if (cap_per_mille <= 0) return 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        double *row = rows + ctx[i] * n_symbols;
        int top = 0;
        int64_t sum = 0;
        for (int s = 0; s < n_symbols; s++) {
            sum += (int64_t)row[s];
            if (row[s] > row[top]) top = s;
        }
        int64_t m = (int64_t)row[top], cap = (sum - m) * cap_per_mille / (1000 - cap_per_mille);
        if (m > cap) row[top] = (double)cap;
    }
    return 0;
}
