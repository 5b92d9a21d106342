/*
 * The integer 8x8 DCT, its inverse and scalar quantization (see dct.h for
 * the method and the integer ranges).
 */
#include "dct.h"

#include <string.h>

/* Orthonormal 8-point DCT-II basis, BASIS[k][n] = a(k) cos((2n+1)k pi / 16),
 * a(0) = sqrt(1/8), a(k) = sqrt(2/8), scaled by 2^BASIS_BITS and rounded.
 * Committed as integers so no libm is involved. */
static const int32_t BASIS[DCTSIZE][DCTSIZE] = {
    {2896, 2896, 2896, 2896, 2896, 2896, 2896, 2896},
    {4017, 3406, 2276, 799, -799, -2276, -3406, -4017},
    {3784, 1567, -1567, -3784, -3784, -1567, 1567, 3784},
    {3406, -799, -4017, -2276, 2276, 4017, 799, -3406},
    {2896, -2896, -2896, 2896, 2896, -2896, -2896, 2896},
    {2276, -4017, 799, 3406, -3406, -799, 4017, -2276},
    {1567, -3784, 3784, -1567, -1567, 3784, -3784, 1567},
    {799, -2276, 3406, -4017, 4017, -3406, 2276, -799},
};

/* Arithmetic right shift with rounding to nearest (ties toward +inf).
 * Right-shifting a negative value is implementation-defined in C; module
 * initialisation refuses to load on a compiler where it is not arithmetic. */
#define DESCALE(x, n) (((x) + ((int64_t)1 << ((n) - 1))) >> (n))

void dct_idct_block(const int32_t *coef, int32_t *out)
{
    int64_t tmp[DCTSIZE2];
    for (int v = 0; v < DCTSIZE; v++) {          /* pass 1: columns, over u */
        for (int y = 0; y < DCTSIZE; y++) {
            int64_t acc = 0;
            for (int u = 0; u < DCTSIZE; u++)
                acc += (int64_t)BASIS[u][y] * coef[u * DCTSIZE + v];
            tmp[y * DCTSIZE + v] = DESCALE(acc, BASIS_BITS - PASS1_BITS);
        }
    }
    for (int y = 0; y < DCTSIZE; y++) {          /* pass 2: rows, over v */
        for (int x = 0; x < DCTSIZE; x++) {
            int64_t acc = 0;
            for (int v = 0; v < DCTSIZE; v++)
                acc += (int64_t)BASIS[v][x] * tmp[y * DCTSIZE + v];
            out[y * DCTSIZE + x] = (int32_t)DESCALE(acc, BASIS_BITS + PASS1_BITS);
        }
    }
}

void dct_fdct_block(const int16_t *pix, int64_t *out)
{
    int64_t tmp[DCTSIZE2];
    for (int y = 0; y < DCTSIZE; y++) {          /* pass 1: rows, over x */
        for (int v = 0; v < DCTSIZE; v++) {
            int64_t acc = 0;
            for (int x = 0; x < DCTSIZE; x++)
                acc += (int64_t)BASIS[v][x] * pix[y * DCTSIZE + x];
            tmp[y * DCTSIZE + v] = DESCALE(acc, BASIS_BITS - PASS1_BITS);
        }
    }
    for (int v = 0; v < DCTSIZE; v++) {          /* pass 2: columns, over y */
        for (int u = 0; u < DCTSIZE; u++) {
            int64_t acc = 0;
            for (int y = 0; y < DCTSIZE; y++)
                acc += (int64_t)BASIS[u][y] * tmp[y * DCTSIZE + v];
            out[u * DCTSIZE + v] = DESCALE(acc, BASIS_BITS + PASS1_BITS - FDCT_FRAC_BITS);
        }
    }
}

static uint8_t clamp_pixel(int32_t v)
{
    return (uint8_t)(v < 0 ? 0 : (v > PIXEL_MAX ? PIXEL_MAX : v));
}

void dct_fdct_quantize(const int16_t *res, ptrdiff_t n, const uint16_t *qtable, const uint16_t *rounding,
                       int16_t *out)
{
    int64_t X[DCTSIZE2];
    for (ptrdiff_t b = 0; b < n; b++) {
        dct_fdct_block(res + b * DCTSIZE2, X);
        for (int k = 0; k < DCTSIZE2; k++) {
            int64_t step = (int64_t)qtable[k] << FDCT_FRAC_BITS;
            int64_t mag = X[k] < 0 ? -X[k] : X[k];
            int64_t q = (mag * QUANT_ONE + step * rounding[k]) / (step * QUANT_ONE);
            if (q > QUANT_MAX_LEVEL) q = QUANT_MAX_LEVEL;
            out[b * DCTSIZE2 + k] = (int16_t)(X[k] < 0 ? -q : q);
        }
    }
}

void dct_dequant_idct(const int16_t *coef, ptrdiff_t n, const uint16_t *qtable, int32_t *out)
{
    int32_t deq[DCTSIZE2];
    for (ptrdiff_t b = 0; b < n; b++) {
        for (int k = 0; k < DCTSIZE2; k++) deq[k] = dct_dequantize(coef[b * DCTSIZE2 + k], qtable[k]);
        dct_idct_block(deq, out + b * DCTSIZE2);
    }
}

void dct_reconstruct(const int16_t *coef, ptrdiff_t n, const uint16_t *qtable, const uint8_t *pred, uint8_t *out)
{
    int32_t deq[DCTSIZE2], res[DCTSIZE2];
    for (ptrdiff_t b = 0; b < n; b++) {
        const int16_t *c = coef + b * DCTSIZE2;
        int nonzero = 0;
        for (int k = 0; k < DCTSIZE2; k++) {
            deq[k] = dct_dequantize(c[k], qtable[k]);
            nonzero |= deq[k];
        }
        if (nonzero) {
            dct_idct_block(deq, res);
            for (int k = 0; k < DCTSIZE2; k++)
                out[b * DCTSIZE2 + k] = clamp_pixel((int32_t)pred[b * DCTSIZE2 + k] + res[k]);
        } else {
            memcpy(out + b * DCTSIZE2, pred + b * DCTSIZE2, DCTSIZE2);
        }
    }
}
