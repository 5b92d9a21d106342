/*
 * Rate-distortion optimized quantization of 8x8 residual blocks: the
 * encoder's choice of quantized levels, minimising D + lambda * R per block
 * with R read from the entropy coder's own tables and contexts
 * (blockcodec/entropy.py).  Encoder only: the decoder never runs this, so it
 * carries no normative weight, but it is integer arithmetic throughout, so an
 * encode is the same on every machine.
 *
 * The context structure mirrored here is that of entropy.py's code_plane:
 *   EOB   row from the mean EOB of the left and top blocks;
 *   DC    |DC - prediction|, row from the neighbours' |DC - prediction| and
 *         whether EOB == 1, then an escape and a sign;
 *   AC    zigzag position k = 1 .. EOB - 1, row group from (k, the capped
 *         magnitudes of the block's (u-1, v) and (u, v-1) coefficients, the
 *         distance to EOB, how many of the top/left blocks reach past k),
 *         refined on the second half of the checkerboard ((r + c) odd) by
 *         the four neighbours' capped magnitudes at k; symbol |q| (|q| - 1 at
 *         the last position), escapes past 16;
 *   signs DC: one raw bit; AC: row from (k, the signs of the block's own
 *         (u-1, v) and (u, v-1) coefficients).
 * Which table row each context selects is given by lookup tables the caller
 * builds from entropy.py, so bucket boundaries live in one place.  Two things
 * are approximated: the coder adapts its rows to the stream while the model's
 * costs are the static tables', and a second-half block's bottom and right
 * neighbours are not decided yet, so twice its top and left magnitudes stand
 * in for the four.
 *
 * Units: rates in 1/65536 bit (Q16); distortion in the squared units of the
 * forward DCT scaled by 2^FDCT_FRAC_BITS; J = D * 2^16 + lambda * R, all int64
 * (bounds in rdoq.c).
 */
#ifndef BLOCKCODEC_RDOQ_H
#define BLOCKCODEC_RDOQ_H

#include <stddef.h>
#include <stdint.h>

#include "geometry.h"

#define RDOQ_ALPHABET 18        /* magnitude symbols 0..16 and the escape */
#define RDOQ_ESC (RDOQ_ALPHABET - 1)
#define RDOQ_EOB_SYMBOLS (DCTSIZE2 + 1)   /* EOB 0..64 */
#define RDOQ_ESC_LENGTHS 16     /* Exp-Golomb length symbols */
#define RDOQ_NBM_MAX 8          /* the in-block neighbour magnitude sum is capped here */
#define RDOQ_REM_MAX 16         /* the distance to EOB is capped here */
#define RDOQ_NK 3               /* 0, 1 or 2 of the top/left blocks reach past k */
#define RDOQ_AVG_MAX 64         /* neighbour means index lookup tables 0..64 ... */
#define RDOQ_NO_NEIGHBOUR 65    /* ... and this entry is the "no neighbours" row */
#define RDOQ_ONE_BIT 65536      /* a raw bit (signs) in Q16 */
#define RDOQ_MAX_LEVEL 32767
#define RDOQ_AC_LUT_LEN (DCTSIZE2 * (RDOQ_NBM_MAX + 1) * (RDOQ_REM_MAX + 1) * RDOQ_NK)
#define RDOQ_NB4 7              /* checkerboard refinements: 6 buckets, then "first half" */
#define RDOQ_NB4_MAX (4 * RDOQ_ESC)
#define RDOQ_SIGN_LUT_LEN (DCTSIZE2 * 3 * 3)
#define RDOQ_MODEL_ARRAYS 13
#define RDOQ_MAX_LAMBDA ((int64_t)1 << 40)   /* keeps every J below 2^63 (rdoq.c) */
#define RDOQ_MAX_PASSES 8
#define RDOQ_DIST_WEIGHT 65536  /* J = D * 2^16 + lambda * R */

typedef struct {
    const int32_t *zigzag;     /* [64] natural index of zigzag position k */
    const int32_t *zz_up;      /* [64] zigzag index of (u-1, v), 64 outside the block */
    const int32_t *zz_left;    /* [64] zigzag index of (u, v-1), 64 outside the block */
    const int32_t *eob_row;    /* [66] EOB table row by the neighbours' mean EOB, [65] none */
    const int32_t *dc_row;     /* [66] DC table row (EOB > 1) by the neighbours' mean |d|; +1 for EOB == 1 */
    const int32_t *ac_row;     /* [RDOQ_AC_LUT_LEN] AC row group by (k, nbm, rem, nk); row = group * RDOQ_NB4 + refinement */
    const int32_t *nb4_bucket; /* [RDOQ_NB4_MAX + 1] refinement by the four neighbours' magnitude sum */
    const int32_t *sign_row;   /* [RDOQ_SIGN_LUT_LEN] sign row by (k, sign up + 1, sign left + 1) */
    const int32_t *eob_cost;   /* [rows][65] */
    const int32_t *dc_cost;    /* [rows][18] */
    const int32_t *ac_cost;    /* [rows][18] */
    const int32_t *sign_cost;  /* [rows][2]: positive, negative */
    const int32_t *esc_cost;   /* [16] */
} RdoqModel;

/* The plane-wide record of decisions made so far, which later blocks'
 * contexts read: EOB, |DC - prediction| and the quantized DC of every block,
 * and its capped magnitudes in zigzag order ([n][64]), raster order. */
typedef struct {
    int32_t *eob, *dmag, *dc;
    uint8_t *mags;
    int n_cols;
    int dc_prediction;         /* DC predicted from the neighbours' DC (LOCO-I median) */
} RdoqPlane;

/* floor-ish log2(x) in Q16 for x >= 1, by repeated squaring: integer
 * arithmetic only, so cost tables (and so encodes) match on every machine. */
int64_t rdoq_log2_q16(uint64_t x);

/* Quantize one block in place of the dead-zone quantizer.  coef: the forward
 * DCT, natural order, scaled by 2^FDCT_FRAC_BITS; step: the 64 quantizer
 * steps; (r, c): the block's position, whose left and top neighbours must
 * already be recorded in the plane.  passes: greedy passes over the levels
 * (0 = plain rounding to nearest, then only the end-of-block search).
 * Writes the signed levels (natural order) and records the block in the plane;
 * returns the model's rate of the chosen levels in Q16 bits. */
int64_t rdoq_block(const RdoqModel *m, RdoqPlane *p, int r, int c, const int64_t *coef,
                   const uint16_t *step, int64_t lambda, int passes, int16_t *out);

/* The encoder's loop over n residual blocks (res: [n][64] pixels in
 * -255..255) at block positions (rows[i], cols[i]), in that order: the
 * forward DCT (dct.h), then rdoq_block into out ([n][64]).  Returns the
 * total rate in Q16 bits. */
int64_t rdoq_blocks(const RdoqModel *m, RdoqPlane *p, const int16_t *res, ptrdiff_t n, const int32_t *rows,
                    const int32_t *cols, const uint16_t *step, int64_t lambda, int passes, int16_t *out);

#endif
