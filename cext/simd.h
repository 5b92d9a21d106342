/*
 * Which vector kernels the integer networks may use.
 *
 * Every kernel computes the same exact integer sums, so the choice changes
 * speed only, never a bit of output.  The level is the best the CPU has,
 * lowered by the environment variable BLOCKCODEC_SIMD (none | avx2) so that
 * tests and users can run, and compare, each path on one machine.
 */
#ifndef BLOCKCODEC_SIMD_H
#define BLOCKCODEC_SIMD_H

enum {
    SIMD_NONE = 0,   /* plain C loops */
    SIMD_AVX2 = 1,   /* 256-bit integer multiply-adds */
    SIMD_LEVELS
};

/* The best level this CPU supports (SIMD_NONE off x86). */
int simd_supported(void);

/* The level to use: `requested` (negative: BLOCKCODEC_SIMD, or the best
 * supported when it is unset) capped at what the CPU supports.  Returns -1
 * when BLOCKCODEC_SIMD names no level. */
int simd_select(int requested);

/* "none", "avx2"; NULL for a level out of range. */
const char *simd_name(int level);

#endif
