/*
 * Block glue of the coding loop (docs/FORMAT.md, section 5): copying 8x8
 * blocks out of and into a plane, and gathering a predictor's causal
 * context around each block.
 *
 * Planes are uint8, row-major, `width` pixels a row, padded by the caller to
 * whole blocks (width and height multiples of DCTSIZE).  Block positions
 * (rows[i], cols[i]) are in block units.  The caller (the Python binding)
 * has checked the geometry and that every position lies inside the plane;
 * these functions do no checking, allocation or arithmetic beyond indexing
 * (offsets are ptrdiff_t: planes up to the address space).
 */
#ifndef BLOCKCODEC_BLOCKS_H
#define BLOCKCODEC_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

#include "geometry.h"

/* out[i] = the block at (rows[i], cols[i]); out: [n][DCTSIZE2]. */
void blocks_gather(const uint8_t *plane, ptrdiff_t width, const int32_t *rows, const int32_t *cols, ptrdiff_t n,
                   uint8_t *out);

/* The block at (rows[i], cols[i]) = src[i]; src: [n][DCTSIZE2]. */
void blocks_scatter(uint8_t *plane, ptrdiff_t width, const int32_t *rows, const int32_t *cols, ptrdiff_t n,
                    const uint8_t *src);

/* Causal contexts: out[i] is the CONTEXT x CONTEXT window of the 3 x 3
 * blocks centred on block i, in which only the top-left, top, top-right and
 * left neighbours carry the plane's pixels; the centre, the right and the
 * bottom row, and neighbours outside the plane, hold `fill`.  avail[i][j]:
 * 1 where neighbour j (NB_TOP_LEFT .. NB_LEFT) exists.  out: [n][CONTEXT2];
 * avail: [n][N_NEIGHBOURS]. */
void blocks_gather_contexts(const uint8_t *plane, ptrdiff_t width, const int32_t *rows, const int32_t *cols,
                            ptrdiff_t n, uint8_t fill, uint8_t *out, uint8_t *avail);

#endif
