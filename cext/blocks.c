/*
 * Block gather/scatter and causal contexts (see blocks.h).
 */
#include "blocks.h"

#include <string.h>

/* The first pixel of block (r, c). */
static ptrdiff_t block_origin(int32_t r, int32_t c, ptrdiff_t width)
{
    return (ptrdiff_t)r * DCTSIZE * width + (ptrdiff_t)c * DCTSIZE;
}

void blocks_gather(const uint8_t *plane, ptrdiff_t width, const int32_t *rows, const int32_t *cols, ptrdiff_t n,
                   uint8_t *out)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        const uint8_t *src = plane + block_origin(rows[i], cols[i], width);
        for (int y = 0; y < DCTSIZE; y++)
            memcpy(out + i * DCTSIZE2 + y * DCTSIZE, src + y * width, DCTSIZE);
    }
}

void blocks_scatter(uint8_t *plane, ptrdiff_t width, const int32_t *rows, const int32_t *cols, ptrdiff_t n,
                    const uint8_t *src)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        uint8_t *dst = plane + block_origin(rows[i], cols[i], width);
        for (int y = 0; y < DCTSIZE; y++)
            memcpy(dst + y * width, src + i * DCTSIZE2 + y * DCTSIZE, DCTSIZE);
    }
}

void blocks_gather_contexts(const uint8_t *plane, ptrdiff_t width, const int32_t *rows, const int32_t *cols,
                            ptrdiff_t n, uint8_t fill, uint8_t *out, uint8_t *avail)
{
    const ptrdiff_t bw = width / DCTSIZE;
    /* The causal neighbours as (block row offset, block col offset), in
     * NB_TOP_LEFT .. NB_LEFT order. */
    static const int NB[N_NEIGHBOURS][2] = {{-1, -1}, {-1, 0}, {-1, 1}, {0, -1}};
    for (ptrdiff_t i = 0; i < n; i++) {
        uint8_t *ctx = out + i * CONTEXT2;
        memset(ctx, fill, CONTEXT2);
        for (int j = 0; j < N_NEIGHBOURS; j++) {
            ptrdiff_t br = rows[i] + NB[j][0], bc = cols[i] + NB[j][1];
            int ok = br >= 0 && bc >= 0 && bc < bw;
            avail[i * N_NEIGHBOURS + j] = (uint8_t)ok;
            if (!ok) continue;
            /* Where the neighbour sits in the 3 x 3 window. */
            int oy = (NB[j][0] + 1) * DCTSIZE, ox = (NB[j][1] + 1) * DCTSIZE;
            for (int y = 0; y < DCTSIZE; y++)
                memcpy(ctx + (oy + y) * CONTEXT + ox, plane + (br * DCTSIZE + y) * width + bc * DCTSIZE, DCTSIZE);
        }
    }
}
