/*
 * Run-time choice of the vector kernels (simd.h).  The CPU is asked once per
 * call through the compiler's cpuid wrapper; the environment variable can
 * only lower the level, never raise it past the hardware.
 */
#include "simd.h"

#include <stdlib.h>
#include <string.h>

static const char *const NAMES[SIMD_LEVELS] = {"none", "avx2"};

const char *simd_name(int level)
{
    return level >= 0 && level < SIMD_LEVELS ? NAMES[level] : NULL;
}

int simd_supported(void)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    if (__builtin_cpu_supports("avx2"))
        return SIMD_AVX2;
#endif
    return SIMD_NONE;
}

int simd_select(int requested)
{
    if (requested < 0) {
        const char *env = getenv("BLOCKCODEC_SIMD");
        requested = SIMD_LEVELS - 1;
        if (env && *env) {
            requested = -1;
            for (int i = 0; i < SIMD_LEVELS; i++)
                if (strcmp(env, NAMES[i]) == 0)
                    requested = i;
            if (requested < 0)
                return -1;
        }
    }
    int best = simd_supported();
    return requested < best ? requested : best;
}
