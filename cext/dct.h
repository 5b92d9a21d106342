/*
 * The integer 8x8 transform and scalar quantization (docs/FORMAT.md,
 * section 4): forward DCT + dead-zone quantization for the encoder,
 * dequantization + inverse DCT + prediction for the decoder.
 *
 * Method: the separable orthonormal DCT-II, two passes of 1-D products with
 * an integer basis (BASIS_BITS fractional bits), keeping PASS1_BITS
 * fractional bits between the passes, each pass descaled with round to
 * nearest (ties toward +inf).  A direct matrix product rather than a fast
 * (AAN/LLM) factorization: the decoder's output is defined by this exact
 * integer sequence, and a plain one is easier to specify and reproduce.
 *
 * Integer ranges (int64 accumulators throughout; every bound has slack):
 *   basis     |BASIS| <= 4017 < 2^12, a row's or a column's |BASIS| sum <= 23168 < 2^15;
 *   forward   residual pixels in -PIXEL_MAX..PIXEL_MAX (9 bits), pass 1 sums
 *             < 2^23, the intermediate < 2^12, pass 2 sums < 2^27, output
 *             (the DCT scaled by 2^FDCT_FRAC_BITS) < 2^15;
 *   quantize  steps 1..65535, rounding offsets 0..QUANT_ONE (in 1/QUANT_ONE
 *             of a step), levels clamped to QUANT_MAX_LEVEL (int16);
 *   inverse   dequantized coefficients clamped to +-DEQUANT_LIMIT (16 bits),
 *             pass 1 sums < 2^30, the intermediate < 2^19, pass 2 sums
 *             < 2^34, the residual < 2^19 (int32); reconstruction clamps
 *             prediction + residual to 0..PIXEL_MAX.
 *
 * Layouts: coefficients in natural order, coef[u * DCTSIZE + v] with u the
 * vertical and v the horizontal frequency; pixels pix[y * DCTSIZE + x].
 * Right shifts of negative values must be arithmetic (the module refuses to
 * load otherwise).  No floats, no allocation, no global mutable state; the
 * caller has checked every size and range.
 */
#ifndef BLOCKCODEC_DCT_H
#define BLOCKCODEC_DCT_H

#include <stddef.h>
#include <stdint.h>

#include "geometry.h"

#define BASIS_BITS 13        /* fractional bits of the integer DCT basis */
#define PASS1_BITS 2         /* fractional bits kept between the two 1-D passes */
#define FDCT_FRAC_BITS 3     /* fractional bits of the forward transform's output, used by the quantizers */

/* Dequantized coefficients are clamped to this magnitude before the inverse
 * transform.  Valid residual coefficients never exceed 8 * 255 = 2040 (plus
 * half a quantizer step after rounding); the clamp only bounds the arithmetic
 * for corrupt or adversarial streams. */
#define DEQUANT_LIMIT 32767

#define QUANT_ONE 256              /* rounding offsets are in 1/QUANT_ONE of a step (QUANT_ONE / 2: to nearest) */
#define QUANT_MAX_LEVEL 32767      /* quantized levels are int16 */

/* Forward DCT of one residual block; output scaled by 2^FDCT_FRAC_BITS. */
void dct_fdct_block(const int16_t *pix, int64_t *out);

/* Inverse DCT of one block of dequantized coefficients into a signed residual.
 * Normative: this exact integer sequence defines the decoder's output. */
void dct_idct_block(const int32_t *coef, int32_t *out);

/* q * step, clamped to +-DEQUANT_LIMIT. */
static inline int32_t dct_dequantize(int16_t q, uint16_t step)
{
    int32_t d = (int32_t)q * (int32_t)step;
    if (d > DEQUANT_LIMIT) d = DEQUANT_LIMIT;
    if (d < -DEQUANT_LIMIT) d = -DEQUANT_LIMIT;
    return d;
}

/* Forward DCT and dead-zone quantization of n blocks:
 * out = sign(X) * min(floor(|X| / step + rounding / QUANT_ONE), QUANT_MAX_LEVEL),
 * X the DCT of the residual.  res, out: [n][DCTSIZE2]; qtable, rounding:
 * [DCTSIZE2]. */
void dct_fdct_quantize(const int16_t *res, ptrdiff_t n, const uint16_t *qtable, const uint16_t *rounding,
                       int16_t *out);

/* The residual half of dct_reconstruct: out = IDCT(dequantize(coef)), [n][DCTSIZE2], unclamped. */
void dct_dequant_idct(const int16_t *coef, ptrdiff_t n, const uint16_t *qtable, int32_t *out);

/* Decoder reconstruction of n blocks (normative):
 * out = clamp(pred + IDCT(dequantize(coef)), 0, PIXEL_MAX); a block whose
 * coefficients all dequantize to zero is its prediction. */
void dct_reconstruct(const int16_t *coef, ptrdiff_t n, const uint16_t *qtable, const uint8_t *pred, uint8_t *out);

#endif
