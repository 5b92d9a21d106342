/*
 * The context rows of the entropy coder (docs/FORMAT.md, section 4.5), per
 * batch: Pass A's EOB and DC rows for one wavefront, and Pass B's AC
 * magnitude rows for one zigzag position and one checkerboard half.  The
 * rules are entropy.py's eob_context, dc_context, ac_base_context and
 * ac_context, which also build the lookup tables passed here, so the bucket
 * boundaries live in one place; these are the per-batch loops in C, where
 * numpy's per-call cost was most of a decode's entropy time.
 */
#ifndef BLOCKCODEC_CONTEXTS_H
#define BLOCKCODEC_CONTEXTS_H

#include <stddef.h>
#include <stdint.h>

#include "geometry.h"

#define CTX_STRIDE (DCTSIZE2 + 1)  /* capped magnitudes per block: 64 in zigzag order, then a constant 0 */
#define CTX_NBM_MAX 8              /* the in-block neighbour magnitude sum is capped here */
#define CTX_REM_MAX 16             /* the distance to EOB is capped here */
#define CTX_NK 3                   /* 0, 1 or 2 of the top/left blocks reach past k */
#define CTX_AC_LUT_LEN (DCTSIZE2 * (CTX_NBM_MAX + 1) * (CTX_REM_MAX + 1) * CTX_NK)

#define CTX_MEAN_MAX DCTSIZE2                      /* a neighbour mean (EOB, |DC - prediction|) is capped here */
#define CTX_EOB_LUT_LEN (CTX_MEAN_MAX + 2)         /* rows by the mean EOB 0..64, then "no neighbour" */
#define CTX_DC_LUT_LEN (2 * (CTX_MEAN_MAX + 2))    /* rows by (mean |d| 0..64 or "no neighbour", EOB == 1) */

/* Blocks of one wavefront, raster indices in a plane n_cols blocks wide; the
 * left and top neighbours, where they exist, are complete.  eob_row[m] is
 * the row for the neighbours' mean EOB m (the sum of one or two, rounded half
 * up), eob_row[CTX_MEAN_MAX + 1] for a block with neither. */
void eob_contexts(const int32_t *eob_row, const int32_t *blocks, ptrdiff_t n, ptrdiff_t n_cols,
                  const int32_t *eob, int64_t *ctx);

/* The blocks of the wavefront with eob > 0, in order: writes their indices
 * to sel, their DC prediction to pred (the MED of the left, top and top-left
 * DC with both neighbours, the one there is with one, else 0; all 0 without
 * dc_prediction) and their row to ctx: dc_row[2 m + (eob == 1)] for the
 * neighbours' mean |DC - prediction| m (rounded down, capped at 64), or
 * m = CTX_MEAN_MAX + 1 with neither neighbour.  dc: the plane's DC values,
 * block b's at dc[b * dc_stride]; dmag: [n_blocks] the blocks' |DC -
 * prediction|.  Returns how many. */
ptrdiff_t dc_contexts(const int32_t *dc_row, int dc_prediction, const int32_t *blocks, ptrdiff_t n,
                      ptrdiff_t n_cols, const int32_t *eob, const int16_t *dc, ptrdiff_t dc_stride,
                      const int32_t *dmag, int32_t *sel, int64_t *pred, int64_t *ctx);

typedef struct {
    const int32_t *ac_row;     /* [CTX_AC_LUT_LEN] row group by (k, nbm, rem, nk) */
    const int32_t *nb4_bucket; /* [nb4_max + 1] second-half refinement by the four neighbours' sum */
    int nb4_max;
    int n_refine;              /* refinements per row group; the last one is "first half" */
    int zz_up, zz_left;        /* zigzag indices of k's (u-1, v) and (u, v-1) neighbours (64: none) */
} AcContextRule;

/* blocks[i] < n_blocks; capped: [n_blocks + 1][CTX_STRIDE] (row n_blocks: no
 * block, zeros); eob: [n_blocks]; eob_top, eob_left: the top and left blocks'
 * EOB (0 where absent), the blocks in raster order, n_cols to a row.
 * second_half: the batch is the checkerboard's second half, whose rows are
 * refined by the four neighbours' capped magnitudes at k.  Writes ctx[i] (the
 * table row) and last[i] (1 where k is block i's last position). */
void ac_contexts(const AcContextRule *rule, int k, const int32_t *blocks, ptrdiff_t n, ptrdiff_t n_blocks,
                 ptrdiff_t n_cols, const uint8_t *capped, const int32_t *eob, const int8_t *eob_top,
                 const int8_t *eob_left, int second_half, int64_t *ctx, int64_t *last);

#endif
