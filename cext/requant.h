/*
 * BlockCNN's requantization rule applied to float32 accumulators
 * (docs/FORMAT.md, section 5.3.3): the second, float implementation of the
 * integer network's last step.
 *
 * Not on the codec's path (the coding loop runs intnet.c, which applies the
 * same rule to int32 accumulators).  It serves blockcodec.train.blockcnn_qat,
 * whose float reference path computes the convolutions in PyTorch float32
 * and requantizes them here, and the tests that hold that path to the
 * integer kernel's bits.
 *
 * Method: per element of channel c,
 *   v = (acc + bias[c]) * mult[c] + skip * skip_mult[c],
 *   y = floor(v / 2^shift + 1/2), with shift + INTNET_NEG_SHIFT for negative v
 *       under the leaky ReLU,
 *   out = clamp(y + offset, lo, hi),
 * evaluated in IEEE double precision, which is exact here: |acc| <
 * REQUANT_ACC_LIMIT = 2^24 (checked per element: an inexact, e.g. Winograd,
 * convolution shows up as a fraction or a magnitude), |bias| <=
 * INTNET_MAX_BIAS = 2^24, |mult|, |skip_mult| <= INTNET_MAX_MULT < 2^15 and
 * |skip| <= 128, so |v| < 2^41 and every product and sum has at most 44
 * significant bits; scaling by 2^-shift is exact, and so is the floor.
 */
#ifndef BLOCKCODEC_REQUANT_H
#define BLOCKCODEC_REQUANT_H

#include <stddef.h>
#include <stdint.h>

#include "intnet.h"

#define REQUANT_ACC_LIMIT 16777216.0f    /* 2^24: the largest magnitude float32 holds every integer below */
#define REQUANT_MAX_CHANNELS 1024        /* channels per row: whole rows fill one run of parameters */

/* acc, skip, out: [total / channels][channels] float32, channels-last; skip
 * NULL (and skip_mult NULL) for none, else integers in -128..127.  bias,
 * mult, skip_mult: [channels] within the INTNET_MAX_BIAS / INTNET_MAX_MULT
 * bounds; 1 <= channels <= REQUANT_MAX_CHANNELS; 0 <= shift <=
 * INTNET_MAX_SHIFT; lo <= hi and offset in int16 range.  All checked by the
 * caller.  Returns nonzero when an accumulator is not an exact integer below
 * 2^24 in magnitude (out is then meaningless). */
int requant_f32(const float *acc, const float *skip, const int32_t *bias, const int32_t *mult,
                const int32_t *skip_mult, ptrdiff_t channels, ptrdiff_t total, int shift, int relu, int offset,
                int lo, int hi, float *out);

#endif
