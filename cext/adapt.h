/*
 * Adaptive frequency rows of the entropy coder (docs/FORMAT.md, section 4.3):
 * after each batch of symbols, every coded symbol adds a fixed increment to
 * its row, and where a row is capped (the EOB table), its largest entry is
 * then lowered so that it stays within cap_per_mille of the row.
 *
 * The rows are float64 arrays of exact integers (constriction reads them as
 * probabilities); every value stays below 2^53, so the additions are exact
 * in any order, and the cap is computed in int64, so the result is the same
 * on every machine.  This replaces numpy's add.at and the capping pass of
 * entropy.py: a batch of a Kodak wavefront is a few dozen symbols, where
 * numpy's per-call cost was most of the time.
 */
#ifndef BLOCKCODEC_ADAPT_H
#define BLOCKCODEC_ADAPT_H

#include <stddef.h>
#include <stdint.h>

/* Entries stay below 2^46, so a row's sum (at most 65 entries here, any
 * order) is below 2^53 and exact in float64 and int64 alike. */
#define ADAPT_MAX_VALUE 70368744177664.0

/* rows: [n_rows][n_symbols]; ctx[i] < n_rows and sym[i] < n_symbols for every
 * i < n (checked by the caller).  First adds increment at (ctx[i], sym[i])
 * for every i, then, with cap_per_mille > 0, caps each listed row: where its
 * first largest entry m exceeds floor(others * cap / (1000 - cap)), others
 * being the sum of the rest, m becomes that bound.  Returns 0, or -1 where a
 * value would pass ADAPT_MAX_VALUE (nothing is changed then). */
int adapt_rows(double *rows, ptrdiff_t n_rows, int n_symbols, const int64_t *ctx, const int64_t *sym,
               ptrdiff_t n, double increment, int cap_per_mille);

#endif
