/*
 * The planar predictor (see planar.h for the method and ranges).
 */
#include "planar.h"

#define REF_LEN (2 * DCTSIZE)   /* the row above: the top and top-right blocks */
#define PLANAR_SHIFT 4          /* log2 of the weight sum 2 * DCTSIZE */

static void planar_block(const uint8_t *ctx, const uint8_t *avail, int32_t fill, uint8_t *out)
{
    int32_t top[REF_LEN], left[DCTSIZE];
    /* The row just above the block and the column just left of it. */
    for (int x = 0; x < REF_LEN; x++) top[x] = ctx[(DCTSIZE - 1) * CONTEXT + DCTSIZE + x];
    for (int y = 0; y < DCTSIZE; y++) left[y] = ctx[(DCTSIZE + y) * CONTEXT + DCTSIZE - 1];
    int has_top = avail[NB_TOP] != 0, has_tr = avail[NB_TOP_RIGHT] != 0, has_left = avail[NB_LEFT] != 0;
    /* Missing references are substituted from the nearest available ones. */
    if (has_top && !has_tr)
        for (int x = DCTSIZE; x < REF_LEN; x++) top[x] = top[DCTSIZE - 1];
    if (!has_top && has_left)
        for (int x = 0; x < REF_LEN; x++) top[x] = left[0];
    if (has_top && !has_left)
        for (int y = 0; y < DCTSIZE; y++) left[y] = top[0];
    if (!has_top && !has_left) {
        for (int x = 0; x < REF_LEN; x++) top[x] = fill;
        for (int y = 0; y < DCTSIZE; y++) left[y] = fill;
    }
    const int n = DCTSIZE - 1;
    for (int y = 0; y < DCTSIZE; y++)
        for (int x = 0; x < DCTSIZE; x++) {
            int32_t v = (n - x) * left[y] + (x + 1) * top[DCTSIZE] + (n - y) * top[x] + (y + 1) * left[n];
            out[y * DCTSIZE + x] = (uint8_t)((v + (1 << (PLANAR_SHIFT - 1))) >> PLANAR_SHIFT);
        }
}

void planar_predict(const uint8_t *ctx, const uint8_t *avail, int32_t fill, ptrdiff_t n, uint8_t *out)
{
    for (ptrdiff_t i = 0; i < n; i++)
        planar_block(ctx + i * CONTEXT2, avail + i * N_NEIGHBOURS, fill, out + i * DCTSIZE2);
}
