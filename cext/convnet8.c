/*
 * The post-filter's integer network (convnet8.h): tiles, buffers, and the
 * 8-bit convolution kernels.
 *
 * Each tile is computed over a region of the tile plus `margin` pixels on
 * every side.  Every buffer holds the whole region, channels-last, inside a
 * border of CN8_RING pixels that holds the buffer's zero: a k x k window
 * then needs no bounds checks, and the border is exactly the zero padding
 * of a "same" convolution at the region's edge.  Steps run one after the
 * other over the whole region (the largest buffer, 64 channels of a
 * 256-pixel tile, is a few MB and stays in the last-level cache).
 *
 * A convolution is, per output pixel, a dot product of the k rows of its
 * window (each k * cin contiguous bytes) with each channel's kernel.  The
 * weights are packed four bytes per channel lane, so one 32-bit broadcast
 * of source bytes meets one vector of kernels:
 *   - plain C: scalar loops over the same layout;
 *   - AVX2: vpmaddubsw (u8 x s8, pairs summed to int16: exact because
 *     |w| <= 64) then vpmaddwd by ones (pairs of pairs into int32).
 * Integer sums are exact in any order, so the kernels agree bit for bit.
 *
 * Tiles are dealt out to threads in a fixed round robin; a tile's result
 * does not depend on which thread computes it.
 */
#include "convnet8.h"
#include "simd.h"

#include <stdlib.h>
#include <string.h>

#include "parallel.h"

#if CN8_MAX_THREADS > PARALLEL_MAX_JOBS
#error "CN8_MAX_THREADS exceeds PARALLEL_MAX_JOBS"
#endif

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define CN8_X86 1
#include <immintrin.h>
#endif

#define GROUP 4        /* output pixels per register tile */
#define SLACK GROUP    /* columns past the right border a register tile may read */

static int cpad_of(int cout)
{
    return (cout + CN8_VEC - 1) / CN8_VEC * CN8_VEC;
}

/* ------------------------------------------------------------ the checks */

const char *cn8_check(const Cn8Net *net)
{
    if (net->n_buffers < 2 || net->n_buffers > CN8_MAX_BUFFERS)
        return "a network has 2 to 8 buffers";
    if (net->n_ops < 1 || net->n_ops > CN8_MAX_OPS)
        return "a network has 1 to 48 steps";
    for (int b = 0; b < net->n_buffers; b++) {
        const Cn8Buffer *B = &net->buf[b];
        if (B->channels < 1 || B->channels > CN8_MAX_CHANNELS)
            return "a buffer has 1 to 256 channels";
        if (B->type == CN8_U8) {
            if (B->zero != 0 && B->zero != 128)
                return "a uint8 buffer's zero is 0 or 128";
        } else if (B->type != CN8_I16 || B->zero != 0) {
            return "a buffer is uint8, or int16 with zero 0";
        }
    }
    if (net->input < 0 || net->input >= net->n_buffers || net->buf[net->input].type != CN8_U8 ||
        net->buf[net->input].zero != 0)
        return "the input is a uint8 buffer with zero 0";
    if (net->output < 0 || net->output >= net->n_buffers || net->buf[net->output].type != CN8_U8 ||
        net->buf[net->output].channels != 1 || net->buf[net->output].zero != 0)
        return "the output is a one-channel uint8 buffer with zero 0";
    if (net->margin < 0 || net->margin > 64)
        return "the margin is 0 to 64 pixels";
    for (int i = 0; i < net->n_ops; i++) {
        const Cn8Op *op = &net->op[i];
        if (op->src < 0 || op->src >= net->n_buffers || op->dst < 0 || op->dst >= net->n_buffers ||
            op->src == op->dst || op->dst == net->input)
            return "a step reads one buffer and writes another, never the input";
        const Cn8Buffer *S = &net->buf[op->src], *D = &net->buf[op->dst];
        if (op->skip >= 0 && (op->skip >= net->n_buffers || op->skip == op->src ||
                              net->buf[op->skip].type != CN8_I16 || net->buf[op->skip].channels != D->channels))
            return "a skip is an int16 buffer shaped like the destination, not the source";
        if (op->shift < 31 || op->shift > 62 || op->lo > op->hi)
            return "a shift is 31 to 62 and a clamp is lo <= hi";
        int zmin = D->type == CN8_U8 ? -D->zero : -32768, zmax = D->type == CN8_U8 ? 255 - D->zero : 32767;
        if (op->lo < zmin || op->hi > zmax)
            return "a clamp keeps values inside the destination's type";
        if (op->kind == CN8_CONV) {
            if (S->type != CN8_U8 || S->channels % 4)
                return "a convolution reads a uint8 buffer of a multiple of 4 channels";
            if (op->k < 1 || op->k > CN8_MAX_K || op->k % 2 == 0)
                return "a kernel is 1x1, 3x3 or 5x5";
            if (op->cout != D->channels)
                return "a convolution writes all of its destination's channels";
            if (!op->weights || !op->bias || !op->mult)
                return "a convolution has weights, biases and multipliers";
            size_t n = (size_t)op->k * (size_t)op->k * (size_t)S->channels * (size_t)cpad_of(op->cout);
            for (size_t j = 0; j < n; j++)
                if (op->weights[j] > CN8_MAX_WEIGHT || op->weights[j] < -CN8_MAX_WEIGHT)
                    return "a weight is in -64..64";
            for (int c = 0; c < op->cout; c++)
                if (op->bias[c] > CN8_MAX_BIAS || op->bias[c] < -CN8_MAX_BIAS)
                    return "a bias is in -2^30..2^30";
        } else if (op->kind == CN8_REQUANT) {
            if (S->type != CN8_I16 || S->channels != D->channels || !op->mult)
                return "a requantization maps an int16 buffer to one of its channel count";
        } else {
            return "a step is a convolution or a requantization";
        }
    }
    return NULL;
}

/* ------------------------------------------------------------ the kernels */

/* acc[p][c] for GROUP pixels: row ky of pixel p's window starts at
 * in + ky * row_bytes + p * cin.  Channels innermost, so that a compiler
 * can vectorize the loop on any CPU. */
static void dot_plain(const uint8_t *in, ptrdiff_t row_bytes, int cin, int k, const int8_t *wp, int cpad,
                      int32_t *acc)
{
    const int run = k * cin / 4;
    for (int p = 0; p < GROUP; p++) {
        int32_t *a = acc + p * cpad;
        for (int c = 0; c < cpad; c++)
            a[c] = 0;
        for (int ky = 0; ky < k; ky++) {
            const uint8_t *x = in + ky * row_bytes + p * cin;
            const int8_t *w = wp + (ptrdiff_t)ky * run * cpad * 4;
            for (int j = 0; j < run; j++, x += 4, w += 4 * cpad) {
                const int32_t x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
                for (int c = 0; c < cpad; c++)
                    a[c] += x0 * w[4 * c] + x1 * w[4 * c + 1] + x2 * w[4 * c + 2] + x3 * w[4 * c + 3];
            }
        }
    }
}

#ifdef CN8_X86
__attribute__((target("avx2")))
static void dot_avx2(const uint8_t *in, ptrdiff_t row_bytes, int cin, int k, const int8_t *wp, int cpad,
                     int32_t *acc)
{
    const int run = k * cin / 4;
    const __m256i ones = _mm256_set1_epi16(1);
    for (int c0 = 0; c0 < cpad; c0 += 16) {
        __m256i a[GROUP][2];
        for (int p = 0; p < GROUP; p++)
            a[p][0] = a[p][1] = _mm256_setzero_si256();
        for (int ky = 0; ky < k; ky++) {
            const uint8_t *x = in + ky * row_bytes;
            const int8_t *w = wp + ((ptrdiff_t)ky * run * cpad + c0) * 4;
            for (int j = 0; j < run; j++, x += 4, w += 4 * cpad) {
                __m256i w0 = _mm256_loadu_si256((const __m256i *)w);
                __m256i w1 = _mm256_loadu_si256((const __m256i *)(w + 32));
                for (int p = 0; p < GROUP; p++) {
                    int32_t quad;
                    memcpy(&quad, x + p * cin, sizeof quad);
                    __m256i b = _mm256_set1_epi32(quad);
                    a[p][0] = _mm256_add_epi32(a[p][0], _mm256_madd_epi16(_mm256_maddubs_epi16(b, w0), ones));
                    a[p][1] = _mm256_add_epi32(a[p][1], _mm256_madd_epi16(_mm256_maddubs_epi16(b, w1), ones));
                }
            }
        }
        for (int p = 0; p < GROUP; p++) {
            _mm256_storeu_si256((__m256i *)(acc + p * cpad + c0), a[p][0]);
            _mm256_storeu_si256((__m256i *)(acc + p * cpad + c0 + 8), a[p][1]);
        }
    }
}
#endif

/* floor(v / 2^s + 1/2) */
static inline int64_t round_shift(int64_t v, int s)
{
    return s ? (v + ((int64_t)1 << (s - 1))) >> s : v;
}

/* One requantized value before the clamp.  |acc + bias| < 2^31 (cn8_check
 * bounds both) and |mult| < 2^31 keep v inside 2^62; a shift of at least 31
 * then keeps the result inside int32. */
static inline int32_t requant_value(int32_t acc, int32_t bias, int32_t mult, int shift)
{
    return (int32_t)round_shift((int64_t)(acc + bias) * mult, shift);
}

static void store_plain(const Cn8Op *op, const int32_t *acc, int cpad, int count, const int16_t *skip,
                        void *dst, int dst_u8, int zero, int c0)
{
    const int cout = op->cout;
    for (int p = 0; p < count; p++)
        for (int c = c0; c < cout; c++) {
            int32_t t = requant_value(acc[p * cpad + c], op->bias[c], op->mult[c], op->shift);
            if (skip)
                t += skip[p * cout + c];
            t = t < op->lo ? op->lo : t > op->hi ? op->hi : t;
            if (dst_u8)
                ((uint8_t *)dst)[p * cout + c] = (uint8_t)(t + zero);
            else
                ((int16_t *)dst)[p * cout + c] = (int16_t)t;
        }
}

#ifdef CN8_X86
/* The same arithmetic 8 channels at a time.  AVX2 has no 64-bit arithmetic
 * shift, so v is offset by 2^62 to be non-negative, shifted logically, and
 * the offset's share, 2^(62 - shift), taken off again in 32 bits. */
__attribute__((target("avx2")))
static void store_avx2(const Cn8Op *op, const int32_t *acc, int cpad, int count, const int16_t *skip,
                       void *dst, int dst_u8, int zero)
{
    const int cout = op->cout, vec_end = cout / 8 * 8, s = op->shift;
    const __m256i round = _mm256_set1_epi64x(((int64_t)1 << (s - 1)) + ((int64_t)1 << 62));
    const __m256i offset = _mm256_set1_epi32((int32_t)((int64_t)1 << (62 - s)));
    const __m128i count_s = _mm_cvtsi32_si128(s);
    const __m256i lo = _mm256_set1_epi32(op->lo), hi = _mm256_set1_epi32(op->hi), z = _mm256_set1_epi32(zero);
    for (int p = 0; p < count; p++) {
        for (int c = 0; c < vec_end; c += 8) {
            __m256i a = _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(acc + p * cpad + c)),
                                         _mm256_loadu_si256((const __m256i *)(op->bias + c)));
            __m256i m = _mm256_loadu_si256((const __m256i *)(op->mult + c));
            __m256i even = _mm256_srl_epi64(_mm256_add_epi64(_mm256_mul_epi32(a, m), round), count_s);
            __m256i odd = _mm256_srl_epi64(_mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(a, 32),
                                                                              _mm256_srli_epi64(m, 32)), round),
                                           count_s);
            __m256i t = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
            t = _mm256_sub_epi32(t, offset);
            if (skip)
                t = _mm256_add_epi32(t, _mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)(skip + p * cout + c))));
            t = _mm256_add_epi32(_mm256_min_epi32(_mm256_max_epi32(t, lo), hi), z);
            __m256i w16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(t, t), 0xD8);
            __m128i h = _mm256_castsi256_si128(w16);
            if (dst_u8)
                _mm_storel_epi64((__m128i *)((uint8_t *)dst + p * cout + c), _mm_packus_epi16(h, h));
            else
                _mm_storeu_si128((__m128i *)((int16_t *)dst + p * cout + c), h);
        }
    }
    if (vec_end < cout)
        store_plain(op, acc, cpad, count, skip, dst, dst_u8, zero, vec_end);
}
#endif

/* Requantizes `count` pixels of accumulators into dst (and adds skip). */
static void store_pixels(const Cn8Op *op, const int32_t *acc, int cpad, int count, const int16_t *skip,
                         void *dst, int dst_u8, int zero, int simd)
{
#ifdef CN8_X86
    if (simd >= SIMD_AVX2) {
        store_avx2(op, acc, cpad, count, skip, dst, dst_u8, zero);
        return;
    }
#endif
    (void)simd;
    store_plain(op, acc, cpad, count, skip, dst, dst_u8, zero, 0);
}

/* ------------------------------------------------------------ one tile */

typedef struct {
    void *data[CN8_MAX_BUFFERS];
    int32_t *acc;
    int pitch;          /* pixels per stored row, border and slack included */
} Work;

static size_t elem_size(const Cn8Buffer *B)
{
    return B->type == CN8_U8 ? 1 : 2;
}

/* Address of region pixel (y, x) of buffer b (y, x may reach into the border). */
static inline void *at(const Cn8Net *net, const Work *ws, int b, int y, int x)
{
    const Cn8Buffer *B = &net->buf[b];
    ptrdiff_t i = ((ptrdiff_t)(y + CN8_RING) * ws->pitch + x + CN8_RING) * B->channels;
    return (char *)ws->data[b] + i * (ptrdiff_t)elem_size(B);
}

/* Writes each buffer's zero into the border (and slack) around a rh x rw region. */
static void fill_borders(const Cn8Net *net, const Work *ws, int rh, int rw)
{
    for (int b = 0; b < net->n_buffers; b++) {
        const Cn8Buffer *B = &net->buf[b];
        const size_t px = (size_t)B->channels * elem_size(B);
        const int v = B->zero;
        for (int y = -CN8_RING; y < rh + CN8_RING; y++) {
            if (y < 0 || y >= rh) {
                memset(at(net, ws, b, y, -CN8_RING), v, px * (size_t)ws->pitch);
            } else {
                memset(at(net, ws, b, y, -CN8_RING), v, px * CN8_RING);
                memset(at(net, ws, b, y, rw), v, px * (size_t)(ws->pitch - rw - CN8_RING));
            }
        }
    }
}

static void run_conv(const Cn8Net *net, const Work *ws, const Cn8Op *op, int rh, int rw, int simd)
{
    const Cn8Buffer *S = &net->buf[op->src], *D = &net->buf[op->dst];
    const int cin = S->channels, cpad = cpad_of(op->cout), r = op->k / 2;
    const ptrdiff_t row_bytes = (ptrdiff_t)ws->pitch * cin;
    for (int y = 0; y < rh; y++)
        for (int x0 = 0; x0 < rw; x0 += GROUP) {
            const uint8_t *in = at(net, ws, op->src, y - r, x0 - r);
#ifdef CN8_X86
            if (simd >= SIMD_AVX2)
                dot_avx2(in, row_bytes, cin, op->k, op->weights, cpad, ws->acc);
            else
#endif
                dot_plain(in, row_bytes, cin, op->k, op->weights, cpad, ws->acc);
            int count = rw - x0 < GROUP ? rw - x0 : GROUP;
            const int16_t *skip = op->skip >= 0 ? at(net, ws, op->skip, y, x0) : NULL;
            store_pixels(op, ws->acc, cpad, count, skip, at(net, ws, op->dst, y, x0), D->type == CN8_U8, D->zero,
                         simd);
        }
}

#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__)
__attribute__((target_clones("avx2", "default")))
#endif
static void requant_row(const Cn8Op *op, const int16_t *src, int n, void *dst, int dst_u8, int zero,
                        const int16_t *skip)
{
    const int64_t m = op->mult[0], lo = op->lo, hi = op->hi;
    for (int i = 0; i < n; i++) {
        int64_t t = round_shift((int64_t)src[i] * m, op->shift);
        if (skip)
            t += skip[i];
        t = t < lo ? lo : t > hi ? hi : t;
        if (dst_u8)
            ((uint8_t *)dst)[i] = (uint8_t)(t + zero);
        else
            ((int16_t *)dst)[i] = (int16_t)t;
    }
}

static void run_requant(const Cn8Net *net, const Work *ws, const Cn8Op *op, int rh, int rw)
{
    const Cn8Buffer *D = &net->buf[op->dst];
    const int n = rw * D->channels;
    for (int y = 0; y < rh; y++)
        requant_row(op, at(net, ws, op->src, y, 0), n, at(net, ws, op->dst, y, 0), D->type == CN8_U8, D->zero,
                    op->skip >= 0 ? at(net, ws, op->skip, y, 0) : NULL);
}

typedef struct {
    const Cn8Net *net;
    const uint8_t *plane;
    int h, w;
    ptrdiff_t stride;
    const uint8_t *consts;
    uint8_t *out;
    ptrdiff_t out_stride;
    int tile, tiles_x, n_tiles, first, step, simd;
    int failed;
} Job;

static void run_tile(const Job *job, const Work *ws, int t)
{
    const Cn8Net *net = job->net;
    const int M = net->margin;
    const int y0 = t / job->tiles_x * job->tile, x0 = t % job->tiles_x * job->tile;
    const int th = job->h - y0 < job->tile ? job->h - y0 : job->tile;
    const int tw = job->w - x0 < job->tile ? job->w - x0 : job->tile;
    const int rh = th + 2 * M, rw = tw + 2 * M;
    const int cin = net->buf[net->input].channels;
    fill_borders(net, ws, rh, rw);
    /* The region, edge pixels replicated past the image. */
    for (int y = 0; y < rh; y++) {
        int sy = y0 - M + y;
        sy = sy < 0 ? 0 : sy >= job->h ? job->h - 1 : sy;
        const uint8_t *src = job->plane + (ptrdiff_t)sy * job->stride;
        uint8_t *d = at(net, ws, net->input, y, 0);
        for (int x = 0; x < rw; x++, d += cin) {
            int sx = x0 - M + x;
            sx = sx < 0 ? 0 : sx >= job->w ? job->w - 1 : sx;
            d[0] = src[sx];
            for (int c = 1; c < cin; c++)
                d[c] = job->consts[c - 1];
        }
    }
    for (int i = 0; i < net->n_ops; i++) {
        const Cn8Op *op = &net->op[i];
        if (op->kind == CN8_CONV)
            run_conv(net, ws, op, rh, rw, job->simd);
        else
            run_requant(net, ws, op, rh, rw);
    }
    for (int y = 0; y < th; y++)
        memcpy(job->out + (ptrdiff_t)(y0 + y) * job->out_stride + x0, at(net, ws, net->output, M + y, M),
               (size_t)tw);
}

static void *run_job(void *arg)
{
    Job *job = arg;
    const Cn8Net *net = job->net;
    const int side = job->tile + 2 * net->margin;
    Work ws = {{0}, NULL, side + 2 * CN8_RING + SLACK};
    int ok = 1, cmax = 1;
    for (int b = 0; b < net->n_buffers; b++) {
        const Cn8Buffer *B = &net->buf[b];
        size_t n = (size_t)(side + 2 * CN8_RING) * (size_t)ws.pitch * (size_t)B->channels * elem_size(B);
        ok = ok && (ws.data[b] = malloc(n)) != NULL;
    }
    for (int i = 0; i < net->n_ops; i++)
        if (net->op[i].kind == CN8_CONV && cpad_of(net->op[i].cout) > cmax)
            cmax = cpad_of(net->op[i].cout);
    ok = ok && (ws.acc = malloc(sizeof(int32_t) * GROUP * (size_t)cmax)) != NULL;
    if (ok)
        for (int t = job->first; t < job->n_tiles; t += job->step)
            run_tile(job, &ws, t);
    job->failed = !ok;
    for (int b = 0; b < net->n_buffers; b++)
        free(ws.data[b]);
    free(ws.acc);
    return NULL;
}

int cn8_run(const Cn8Net *net, const uint8_t *plane, int h, int w, ptrdiff_t stride, const uint8_t *consts,
            uint8_t *out, ptrdiff_t out_stride, int tile, int threads, int simd)
{
    if (h < 1 || w < 1)
        return 0;
    tile = tile < CN8_MIN_TILE ? CN8_MIN_TILE : tile > CN8_MAX_TILE ? CN8_MAX_TILE : tile;
    const int tiles_x = (w + tile - 1) / tile, n_tiles = tiles_x * ((h + tile - 1) / tile);
    threads = threads < 1 ? 1 : threads > CN8_MAX_THREADS ? CN8_MAX_THREADS : threads;
    threads = threads > n_tiles ? n_tiles : threads;
    Job jobs[CN8_MAX_THREADS];
    for (int t = 0; t < threads; t++)
        jobs[t] = (Job){net, plane, h, w, stride, consts, out, out_stride, tile, tiles_x, n_tiles, t, threads,
                        simd, 0};
    parallel_run(run_job, jobs, sizeof jobs[0], threads);
    int failed = 0;
    for (int t = 0; t < threads; t++)
        failed |= jobs[t].failed;
    return failed ? -1 : 0;
}
