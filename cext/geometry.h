/*
 * Block and context geometry shared by the C core (docs/FORMAT.md, sections
 * 4 and 5).  Named once here so that every file agrees; the Python side's
 * counterparts are blockcodec.predictors.base.CONTEXT and its neighbour
 * order TOP_LEFT, TOP, TOP_RIGHT, LEFT (a test holds them to these values
 * through _cext.DCTSIZE and _cext.CONTEXT).
 *
 * Pixels are 8-bit samples, 0..PIXEL_MAX; a residual (pixel minus
 * prediction) lies in -PIXEL_MAX..PIXEL_MAX.
 */
#ifndef BLOCKCODEC_GEOMETRY_H
#define BLOCKCODEC_GEOMETRY_H

#define DCTSIZE 8                         /* a block is DCTSIZE x DCTSIZE pixels */
#define DCTSIZE2 (DCTSIZE * DCTSIZE)      /* coefficients (and pixels) per block */

#define PIXEL_MAX 255                     /* largest sample; also the residual's magnitude bound */

/* A predictor's causal context: the 3 x 3 blocks centred on the block,
 * CONTEXT x CONTEXT pixels, row-major.  Only the four causal neighbours carry
 * decoded pixels. */
#define CONTEXT (3 * DCTSIZE)
#define CONTEXT2 (CONTEXT * CONTEXT)

/* The causal neighbours, in the order of the `avail` flags. */
enum {
    NB_TOP_LEFT = 0,
    NB_TOP = 1,
    NB_TOP_RIGHT = 2,
    NB_LEFT = 3,
    N_NEIGHBOURS = 4
};

#endif
