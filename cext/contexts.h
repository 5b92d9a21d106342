/*
 * The AC magnitude contexts of the entropy coder's Pass B (docs/FORMAT.md,
 * section 4.5), for one zigzag position and one checkerboard half: the
 * table row of every block in the batch, and whether k is its last
 * position.  The same rule as entropy.py's ac_base_context and ac_context,
 * which also build the lookup tables passed here, so the bucket boundaries
 * live in one place; this is the per-batch loop in C, where numpy's
 * per-call cost was most of a decode's entropy time.
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
