/*
 * The planar predictor (docs/FORMAT.md, section 5.2): the classical
 * fallback predictor, and the base BlockCNN corrects.
 *
 * Method: each predicted pixel is the mean of a horizontal and a vertical
 * linear interpolation between the reference row above the block (16
 * pixels: the top and top-right neighbours' last rows) and the reference
 * column to its left (the left neighbour's last column), as in HEVC's
 * planar intra mode; missing references are substituted from the nearest
 * available ones, or `fill` when there are none.
 *
 * Integer ranges: references 0..PIXEL_MAX; the weights of each pixel's four
 * terms sum to 2 * DCTSIZE = 16, so v <= 16 * 255 < 2^12 (int32), and the
 * result (v + 8) >> 4 is again 0..PIXEL_MAX.
 */
#ifndef BLOCKCODEC_PLANAR_H
#define BLOCKCODEC_PLANAR_H

#include <stddef.h>
#include <stdint.h>

#include "geometry.h"

/* Predicts n blocks.  ctx: [n][CONTEXT2] causal contexts as
 * blocks_gather_contexts writes them; avail: [n][N_NEIGHBOURS] flags;
 * fill: 0..PIXEL_MAX; out: [n][DCTSIZE2]. */
void planar_predict(const uint8_t *ctx, const uint8_t *avail, int32_t fill, ptrdiff_t n, uint8_t *out);

#endif
