/*
 * BlockCNN's integer network: convolution, bias, requantization, leaky ReLU.
 *
 * Why integers in C rather than float convolutions in a framework: the
 * network is in the coding loop, so its outputs are part of the bitstream
 * definition.  Integer sums are exact in any order, so every compiler, vector
 * width, thread count and CPU gives the same bits; and a wavefront of a few
 * dozen blocks is too small a job for a framework's per-call overhead.
 *
 * A layer is a matrix product.  Output row r (map r / P, position r % P of
 * its P = ho * wo positions; rows are also the channels-last output's rows)
 * gathers its receptive field into a patch of K = kh * kw * cin values
 * (zeros outside the map), and output channel c is the dot product of that
 * patch with the kernel of c.  The caller packs the weights (once per
 * network) so that consecutive patch values pair up: wp[j][c][t] is the
 * weight of patch value 2j + t for channel c.  That is the operand order of
 * the int16 multiply-add instruction (two products summed into one int32
 * lane), which the AVX2 kernel broadcasts a patch pair against, eight
 * channels at a time.  The plain kernel walks the same layout with scalar
 * loops; both give the same exact sums.
 *
 * Maps go through the whole network a group at a time, so that a group's
 * activations stay in cache, and maps are shared out among threads.  No
 * allocation: the caller passes the scratch space (intnet_scratch_len).
 */
#include "intnet.h"
#include "simd.h"

#include <string.h>

#include "parallel.h"

#if INTNET_MAX_THREADS > PARALLEL_MAX_JOBS
#error "INTNET_MAX_THREADS exceeds PARALLEL_MAX_JOBS"
#endif

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define INTNET_AVX2 1
#include <immintrin.h>
#endif

#define ROWS 4           /* output rows per register tile */
#define CHUNK 64         /* output rows gathered at a time (a multiple of ROWS) */
#define GROUP 16         /* maps taken through the network together */

/* The requantization of rows of accumulators: v = (acc + bias) * mult
 * (+ skip * skip_mult), y = floor(v / 2^shift + 1/2), with shift + 3 for
 * negative v under the leaky ReLU, then the clamp (the normative rule of
 * FORMAT.md).  Branch-free int64 so that it vectorizes; the x86-64-v4 clone
 * (AVX-512 has 64-bit multiplies and shifts) is picked at load time where
 * the CPU has it. */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
static void requant_rows(const IntnetLayer *L, const int32_t *acc, int m, int cpad, const int32_t *bias,
                         const int32_t *mult, const int16_t *skip, const int32_t *skip_mult, int16_t *out)
{
    /* Parameters padded to cpad channels (zeros beyond cout; skip_mult zero
     * without a skip), so every row is one loop of whole vectors. */
    int32_t b[INTNET_MAX_COUT], mu[INTNET_MAX_COUT], sm[INTNET_MAX_COUT];
    int16_t sk[INTNET_MAX_COUT], row[INTNET_MAX_COUT];
    const int cout = L->cout, sp = L->shift, sn = L->shift + (L->relu ? INTNET_NEG_SHIFT : 0);
    const int64_t rp = ((int64_t)1 << sp) >> 1, rn = ((int64_t)1 << sn) >> 1;
    const int64_t lo = L->lo, hi = L->hi;
    for (int c = 0; c < cpad; c++) {
        b[c] = c < cout ? bias[c] : 0;
        mu[c] = c < cout ? mult[c] : 0;
        sm[c] = (c < cout && skip) ? skip_mult[c] : 0;
        sk[c] = 0;
    }
    for (int i = 0; i < m; i++) {
        const int32_t *a = acc + (ptrdiff_t)i * cpad;
        if (skip)
            memcpy(sk, skip + (ptrdiff_t)i * cout, sizeof(int16_t) * (size_t)cout);
        for (int c0 = 0; c0 < cpad; c0 += INTNET_LANES)
            for (int j = 0; j < INTNET_LANES; j++) {   /* a fixed trip count: one vector */
                int c = c0 + j;
                int64_t v = (int64_t)(a[c] + b[c]) * mu[c] + (int64_t)sk[c] * sm[c];
                int64_t y = v < 0 ? (v + rn) >> sn : (v + rp) >> sp;
                y = y < lo ? lo : y;
                y = y > hi ? hi : y;
                row[c] = (int16_t)y;
            }
        memcpy(out + (ptrdiff_t)i * cout, row, sizeof(int16_t) * (size_t)cout);
    }
}

/* x [n][h][w][cin] with `pad` zeros around each map: [n][h + 2p][w + 2p][cin],
 * so that gathering a patch needs no bounds checks. */
static void pad_maps(const IntnetLayer *L, ptrdiff_t n, const int16_t *x, int16_t *xp)
{
    const int cin = L->cin, hp = L->h + 2 * L->pad, wp = L->w + 2 * L->pad;
    memset(xp, 0, sizeof(int16_t) * (size_t)(n * hp * wp * cin));
    for (ptrdiff_t b = 0; b < n; b++)
        for (int y = 0; y < L->h; y++)
            memcpy(xp + ((b * hp + y + L->pad) * wp + L->pad) * cin, x + (b * L->h + y) * L->w * cin,
                   sizeof(int16_t) * (size_t)(L->w * cin));
}

/* Patches of output rows r0 .. r0 + m - 1 into patch[m][kp], from padded
 * maps: each kernel row is one run of kw * cin values. */
static void gather_patches(const IntnetLayer *L, const int16_t *xp, int ho, int wo, ptrdiff_t r0, int m,
                           int kp, int16_t *patch)
{
    const int cin = L->cin, per_map = ho * wo, run = L->kw * cin;
    const int hp = L->h + 2 * L->pad, wp = L->w + 2 * L->pad;
    for (int i = 0; i < m; i++) {
        ptrdiff_t r = r0 + i;
        ptrdiff_t b = r / per_map;
        int pos = (int)(r % per_map), oy = pos / wo, ox = pos % wo;
        const int16_t *src = xp + ((b * hp + (ptrdiff_t)oy * L->stride) * wp + (ptrdiff_t)ox * L->stride) * cin;
        int16_t *p = patch + (ptrdiff_t)i * kp;
        for (int ky = 0; ky < L->kh; ky++, p += run)
            for (int k = 0; k < run; k++)
                p[k] = src[(ptrdiff_t)ky * wp * cin + k];
        for (int k = L->kh * run; k < kp; k++)
            patch[(ptrdiff_t)i * kp + k] = 0;
    }
}

/* acc[m][cpad] = patch[m][kp] x wp, plain loops. */
static void matmul_plain(const int16_t *patch, int m, int kp, const int16_t *wp, int cpad, int32_t *acc)
{
    for (int i = 0; i < m; i++) {
        const int16_t *p = patch + (ptrdiff_t)i * kp;
        int32_t *a = acc + (ptrdiff_t)i * cpad;
        for (int c = 0; c < cpad; c++)
            a[c] = 0;
        for (int j = 0; j < kp / 2; j++) {
            const int16_t *w = wp + (ptrdiff_t)j * cpad * 2;
            for (int c = 0; c < cpad; c++)
                a[c] += p[2 * j] * w[2 * c] + p[2 * j + 1] * w[2 * c + 1];
        }
    }
}

#ifdef INTNET_AVX2
/* One register tile: ROWS rows x nv vectors of INTNET_LANES channels from c0.  nv
 * is a constant at each (inlined) call site, so the loops unroll. */
__attribute__((target("avx2"), always_inline))
static inline void tile_avx2(const int16_t *patch, int kp, const int16_t *wp, int cpad, int c0, int nv,
                             int32_t *acc)
{
    __m256i a[ROWS][3];
    for (int i = 0; i < ROWS; i++)
        for (int v = 0; v < nv; v++)
            a[i][v] = _mm256_setzero_si256();
    for (int j = 0; j < kp / 2; j++) {
        const int16_t *w = wp + ((ptrdiff_t)j * cpad + c0) * 2;
        __m256i wv[3];
        for (int v = 0; v < nv; v++)
            wv[v] = _mm256_loadu_si256((const __m256i *)(w + 2 * INTNET_LANES * v));
        for (int i = 0; i < ROWS; i++) {
            int32_t pair;
            memcpy(&pair, patch + (ptrdiff_t)i * kp + 2 * j, sizeof pair);
            __m256i b = _mm256_set1_epi32(pair);
            for (int v = 0; v < nv; v++)
                a[i][v] = _mm256_add_epi32(a[i][v], _mm256_madd_epi16(b, wv[v]));
        }
    }
    for (int i = 0; i < ROWS; i++)
        for (int v = 0; v < nv; v++)
            _mm256_storeu_si256((__m256i *)(acc + (ptrdiff_t)i * cpad + c0 + INTNET_LANES * v), a[i][v]);
}

/* The same product; m a multiple of ROWS, cpad of INTNET_LANES. */
__attribute__((target("avx2")))
static void matmul_avx2(const int16_t *patch, int m, int kp, const int16_t *wp, int cpad, int32_t *acc)
{
    for (int r = 0; r < m; r += ROWS) {
        const int16_t *p = patch + (ptrdiff_t)r * kp;
        int32_t *a = acc + (ptrdiff_t)r * cpad;
        int c0 = 0;
        for (; c0 + 3 * INTNET_LANES <= cpad; c0 += 3 * INTNET_LANES)
            tile_avx2(p, kp, wp, cpad, c0, 3, a);
        if (cpad - c0 == 2 * INTNET_LANES)
            tile_avx2(p, kp, wp, cpad, c0, 2, a);
        else if (cpad - c0 == INTNET_LANES)
            tile_avx2(p, kp, wp, cpad, c0, 1, a);
    }
}
#endif

/* Scratch space of one thread, sized for the largest stage. */
typedef struct {
    int16_t *patch;   /* [CHUNK][patch_len] */
    int32_t *acc;     /* [CHUNK][cout_padded] */
    int16_t *padded;  /* GROUP input maps with their zero border */
} Scratch;

/* One layer over n (<= GROUP) maps: x [n][h][w][cin] -> out [n][ho][wo][cout]. */
static void run_layer(const IntnetStage *s, ptrdiff_t n, const int16_t *x, const int16_t *skip, int16_t *out,
                      const Scratch *ws, int use_avx2)
{
    const IntnetLayer *L = &s->layer;
    const int ho = intnet_out_size(L->h, L->kh, L->stride, L->pad);
    const int wo = intnet_out_size(L->w, L->kw, L->stride, L->pad);
    const int cout = L->cout, kp = intnet_patch_len(L), cpad = intnet_cout_padded(L);
    (void)use_avx2;
    if (L->pad) {
        pad_maps(L, n, x, ws->padded);
        x = ws->padded;
    }
    const ptrdiff_t rows = n * ho * wo;
    for (ptrdiff_t r0 = 0; r0 < rows; r0 += CHUNK) {
        int m = rows - r0 < CHUNK ? (int)(rows - r0) : CHUNK;
        int m_tiles = (m + ROWS - 1) / ROWS * ROWS;
        gather_patches(L, x, ho, wo, r0, m, kp, ws->patch);
        memset(ws->patch + (ptrdiff_t)m * kp, 0, sizeof(int16_t) * (size_t)(m_tiles - m) * (size_t)kp);
#ifdef INTNET_AVX2
        if (use_avx2)
            matmul_avx2(ws->patch, m_tiles, kp, s->weights, cpad, ws->acc);
        else
#endif
            matmul_plain(ws->patch, m, kp, s->weights, cpad, ws->acc);
        requant_rows(L, ws->acc, m, cpad, s->bias, s->mult, skip ? skip + r0 * cout : NULL, s->skip_mult,
                     out + r0 * cout);
    }
}

/* ------------------------------------------------------------ whole network */

typedef struct {
    const IntnetStage *stages;
    int n_stages;
    ptrdiff_t n;
    const int16_t *x;
    int16_t *out;
    int16_t *scratch;
    int use_avx2;
} Job;

/* Elements of one map at the input of stage i (i == n_stages: the output). */
static ptrdiff_t map_elems(const IntnetStage *s, int n_stages, int i)
{
    if (i < n_stages)
        return (ptrdiff_t)s[i].layer.h * s[i].layer.w * s[i].layer.cin;
    const IntnetLayer *L = &s[n_stages - 1].layer;
    return (ptrdiff_t)intnet_out_size(L->h, L->kh, L->stride, L->pad) *
           intnet_out_size(L->w, L->kw, L->stride, L->pad) * L->cout;
}

/* One thread's scratch, in int16 elements, and where each part starts:
 * acc (int32, first so that it is aligned), patch, padded maps, then the
 * activations act[1 .. k-1] of one group. */
static size_t scratch_layout(const IntnetStage *s, int k, size_t *off)
{
    size_t patch = 1, acc = 1, padded = 1;
    for (int i = 0; i < k; i++) {
        const IntnetLayer *L = &s[i].layer;
        size_t pm = (size_t)(L->h + 2 * L->pad) * (size_t)(L->w + 2 * L->pad) * (size_t)L->cin;
        patch = patch > (size_t)intnet_patch_len(L) ? patch : (size_t)intnet_patch_len(L);
        acc = acc > (size_t)intnet_cout_padded(L) ? acc : (size_t)intnet_cout_padded(L);
        padded = padded > pm ? padded : pm;
    }
    size_t at = 0;
    off[0] = at;  at += 2 * CHUNK * acc;
    off[1] = at;  at += CHUNK * patch;
    off[2] = at;  at += GROUP * padded;
    for (int i = 1; i < k; i++) {
        off[2 + i] = at;
        at += GROUP * (size_t)map_elems(s, k, i);
    }
    return (at + 31) / 32 * 32;   /* keeps every thread's part 64-byte aligned */
}

size_t intnet_scratch_len(const IntnetStage *stages, int n_stages, int threads)
{
    size_t off[INTNET_MAX_STAGES + 3];
    return scratch_layout(stages, n_stages, off) * (size_t)(threads < 1 ? 1 : threads);
}

static void *run_job(void *arg)
{
    Job *job = arg;
    const IntnetStage *s = job->stages;
    const int k = job->n_stages;
    size_t off[INTNET_MAX_STAGES + 3];
    scratch_layout(s, k, off);
    Scratch ws = {job->scratch + off[1], (int32_t *)(void *)(job->scratch + off[0]), job->scratch + off[2]};
    /* act[i]: stage i's input for one group; act[0] is x, act[k] the output. */
    int16_t *act[INTNET_MAX_STAGES + 1] = {0};
    for (int i = 1; i < k; i++)
        act[i] = job->scratch + off[2 + i];
    const ptrdiff_t in_elems = map_elems(s, k, 0), out_elems = map_elems(s, k, k);
    for (ptrdiff_t g = 0; g < job->n; g += GROUP) {
        ptrdiff_t m = job->n - g < GROUP ? job->n - g : GROUP;
        for (int i = 0; i < k; i++) {
            const int16_t *in = i ? act[i] : job->x + g * in_elems;
            const int16_t *skip = NULL;
            if (s[i].skip_from >= 0)
                skip = s[i].skip_from ? act[s[i].skip_from] : job->x + g * in_elems;
            int16_t *dst = i + 1 < k ? act[i + 1] : job->out + g * out_elems;
            run_layer(&s[i], m, in, skip, dst, &ws, job->use_avx2);
        }
    }
    return NULL;
}

void intnet_forward(const IntnetStage *stages, int n_stages, ptrdiff_t n, const int16_t *x, int16_t *out,
                    int16_t *scratch, int threads, int simd)
{
    Job jobs[INTNET_MAX_THREADS];
    if (threads < 1)
        threads = 1;
    if (threads > INTNET_MAX_THREADS)
        threads = INTNET_MAX_THREADS;
    if (threads > n)
        threads = n > 0 ? (int)n : 1;
    int use_avx2 = 0;
#ifdef INTNET_AVX2
    use_avx2 = simd >= SIMD_AVX2 && __builtin_cpu_supports("avx2");
#endif
    (void)simd;
    ptrdiff_t in_elems = map_elems(stages, n_stages, 0), out_elems = map_elems(stages, n_stages, n_stages);
    size_t per_thread = intnet_scratch_len(stages, n_stages, 1);
    for (int t = 0; t < threads; t++) {
        ptrdiff_t b0 = n * t / threads, b1 = n * (t + 1) / threads;
        jobs[t] = (Job){stages, n_stages, b1 - b0, x + b0 * in_elems, out + b0 * out_elems,
                        scratch + per_thread * (size_t)t, use_avx2};
    }
    parallel_run(run_job, jobs, sizeof jobs[0], threads);
}
