/*
 * The post-filter's integer network: a program of 8-bit convolutions run
 * over an image plane in tiles (docs/FORMAT.md, section 6).
 *
 * Numbers: activations are stored as uint8 (a signed activation a as
 * a + 128) or int16; weights are int8 with |w| <= CN8_MAX_WEIGHT;
 * convolutions accumulate in int32 and requantize in int64 with a
 * per-channel multiplier and a shift.  No floating point anywhere, so the
 * output is a function of the plane and the program alone.
 *
 * The caller (the Python binding) builds the program and checks it with
 * cn8_check before running it.
 */
#ifndef BLOCKCODEC_CONVNET8_H
#define BLOCKCODEC_CONVNET8_H

#include <stddef.h>
#include <stdint.h>

#define CN8_RING 2            /* border around every buffer: the radius of the largest kernel */
#define CN8_MAX_K 5
#define CN8_MAX_BUFFERS 8
#define CN8_MAX_OPS 48
#define CN8_MAX_CHANNELS 256
/* |w| <= 64 keeps the sum of two u8 x s8 products inside int16 (255 * 128
 * < 2^15), so the AVX2 kernel's pairwise multiply-add never saturates. */
#define CN8_MAX_WEIGHT 64
#define CN8_MAX_BIAS (1 << 30)
#define CN8_VEC 16            /* output channels are packed in groups of this many */
#define CN8_MAX_THREADS 16
#define CN8_MIN_TILE 8
#define CN8_MAX_TILE 2048

enum { CN8_U8 = 0, CN8_I16 = 1 };
enum { CN8_CONV = 0, CN8_REQUANT = 1 };

typedef struct {
    int channels;   /* a multiple of 4 where a convolution reads it */
    int type;       /* CN8_U8 or CN8_I16 */
    int zero;       /* the stored value of a zero activation (u8: 0 or 128); the border holds it */
} Cn8Buffer;

/* One step.  For every pixel and output channel c:
 *   conv:    v = (sum of w * src over the k x k window and all channels
 *                 + bias[c]) * mult[c]
 *   requant: v = src[c] * mult[0]
 *   t = floor(v / 2^shift + 1/2) (+ skip[c] where skip >= 0),
 *   dst[c] = clamp(t, lo, hi) + dst's zero.
 * A convolution's window reads stored values, the border included (the
 * buffer's zero), so a bias folds in the zero of a signed source. */
typedef struct {
    int kind;
    int src, dst, skip;        /* buffer indices; skip -1 or an int16 buffer like dst */
    int k;                     /* conv: odd kernel size, 1 .. CN8_MAX_K */
    int cout;                  /* conv: dst's channels */
    int shift;                 /* 31 .. 62 */
    int lo, hi;
    /* conv: [k][k * cin / 4][cpad][4], cpad = cout rounded up to CN8_VEC;
     * weights[ky][j][c][t] is the weight of channel c for the 4j + t-th
     * byte of kernel row ky (its k * cin source bytes in memory order);
     * zero for c >= cout */
    const int8_t *weights;
    const int32_t *bias;       /* conv: [cout] */
    const int32_t *mult;       /* conv: [cout]; requant: [1] */
} Cn8Op;

typedef struct {
    int n_buffers, n_ops;
    Cn8Buffer buf[CN8_MAX_BUFFERS];
    Cn8Op op[CN8_MAX_OPS];
    int input;    /* u8, zero 0: channel 0 the plane's pixels, the others constants */
    int output;   /* u8, 1 channel: the filtered pixels */
    int margin;   /* context around each tile: at least the receptive-field radius */
} Cn8Net;

/* NULL when the program is well formed, else what is wrong with it. */
const char *cn8_check(const Cn8Net *net);

/* Filters the h x w plane (rows `stride` bytes apart) into out.  consts:
 * the values of input channels 1 .. C - 1.  The plane is cut into tiles of
 * `tile` pixels, each computed with `margin` pixels of context, edge pixels
 * replicated beyond the image; with margin at least the receptive field,
 * the result is the same for every tile size, thread count and kernel.
 * Returns 0, or -1 when memory ran out (out is then incomplete). */
int cn8_run(const Cn8Net *net, const uint8_t *plane, int h, int w, ptrdiff_t stride, const uint8_t *consts,
            uint8_t *out, ptrdiff_t out_stride, int tile, int threads, int simd);

#endif
