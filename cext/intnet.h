/*
 * The integer layer of BlockCNN (docs/FORMAT.md, section 5.3), the network
 * the coding loop runs for every block.  Pure integer arithmetic: the same
 * bits on every machine, compiler and vector width.  The caller
 * (blockcodec_cext.c) has checked every size and range.
 */
#ifndef BLOCKCODEC_INTNET_H
#define BLOCKCODEC_INTNET_H

#include <stddef.h>
#include <stdint.h>

/* Largest patch (kh * kw * cin) and channel count a layer may have. */
#define INTNET_MAX_PATCH 8192
#define INTNET_MAX_COUT 1024
#define INTNET_MAX_MAP 4096      /* map height and width */
#define INTNET_MAX_KERNEL 64     /* kernel height and width, stride; padding below it */

/* Value bounds (checked by the binding).  Activations every stage reads
 * (the input and every output but the last) lie in -INTNET_ACT_MAX ..
 * INTNET_ACT_MAX; with |weight| <= INTNET_MAX_WEIGHT and a patch of at most
 * INTNET_MAX_PATCH values, every accumulator stays inside int32 (8192 * 127
 * * 128 < 2^27, plus the bias).  The last stage's output may use all of
 * int16.  |bias| <= INTNET_MAX_BIAS and |mult|, |skip_mult| <= INTNET_MAX_MULT
 * keep v = (acc + bias) * mult + skip * skip_mult below 2^43 (int64). */
#define INTNET_ACT_MAX 128
#define INTNET_MAX_WEIGHT 127
#define INTNET_MAX_BIAS (1 << 24)
#define INTNET_MAX_MULT 32767
#define INTNET_MAX_SHIFT 40
#define INTNET_NEG_SHIFT 3       /* the leaky ReLU's slope, 1/8: negative v shifts by shift + 3 */

typedef struct {
    int h, w, cin;           /* input map, channels-last (HWC) per item */
    int kh, kw, stride, pad;
    int cout;
    int shift;               /* 0 .. INTNET_MAX_SHIFT */
    int relu;
    int lo, hi;              /* output clamp */
} IntnetLayer;

#define INTNET_LANES 8   /* int32 lanes of a 256-bit vector: output channels per vector */

static inline int intnet_out_size(int in, int k, int stride, int pad)
{
    return (in + 2 * pad - k) / stride + 1;
}

/* Patch length: kh * kw * cin rounded up to whole pairs. */
static inline int intnet_patch_len(const IntnetLayer *L)
{
    return (L->kh * L->kw * L->cin + 1) / 2 * 2;
}

/* Output channels rounded up to whole vectors. */
static inline int intnet_cout_padded(const IntnetLayer *L)
{
    return (L->cout + INTNET_LANES - 1) / INTNET_LANES * INTNET_LANES;
}

/* The whole network over n maps x [n][h][w][cin] (values in
 * -INTNET_ACT_MAX..INTNET_ACT_MAX; every stage but the last must clamp to
 * that range too).  Stages run in order, stage i reading the output of
 * stage i - 1 (stage 0 reads x) and, when skip_from >= 0, adding the input
 * of stage skip_from (same shape as its output) as the skip.  Maps are
 * shared out among up to `threads` threads; every map's result is the same
 * whichever thread computes it.  out: the last stage's output.  scratch:
 * intnet_scratch_len(stages, n_stages, threads) elements.  simd: a level of
 * simd.h (SIMD_NONE: the plain kernel; SIMD_AVX2: the AVX2 kernel where the
 * CPU has it), normally simd_select()'s; every level gives the same bits. */
#define INTNET_MAX_STAGES 40
#define INTNET_MAX_THREADS 16

typedef struct {
    IntnetLayer layer;
    /* packed: [patch_len / 2][cout_padded][2], values in -INTNET_MAX_WEIGHT..INTNET_MAX_WEIGHT;
     * weights[j][c][t] is the weight of output channel c for patch value
     * k = 2j + t, where patch value k = (ky * kw + kx) * cin + ci; zero where
     * k >= kh * kw * cin or c >= cout */
    const int16_t *weights;
    const int32_t *bias, *mult, *skip_mult;
    int skip_from;
} IntnetStage;

size_t intnet_scratch_len(const IntnetStage *stages, int n_stages, int threads);

void intnet_forward(const IntnetStage *stages, int n_stages, ptrdiff_t n, const int16_t *x, int16_t *out,
                    int16_t *scratch, int threads, int simd);

#endif
