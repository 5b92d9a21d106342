# The C core is declared here because pyproject.toml cannot describe extension modules.
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "blockcodec._cext",
            # blockcodec_cext.c: the Python bindings; the others: one algorithm each, no Python.
            sources=["cext/adapt.c", "cext/blockcodec_cext.c", "cext/blocks.c", "cext/contexts.c", "cext/convnet8.c", "cext/dct.c", "cext/intnet.c",
                     "cext/planar.c", "cext/rdoq.c", "cext/requant.c", "cext/simd.c"],
            depends=["cext/adapt.h", "cext/blocks.h", "cext/contexts.h", "cext/convnet8.h", "cext/dct.h", "cext/geometry.h", "cext/intnet.h", "cext/parallel.h",
                     "cext/planar.h", "cext/rdoq.h", "cext/requant.h", "cext/simd.h"],
            # -ffp-contract=off: the C core has no floats in the decoding path, and we
            # keep it that way; no -ffast-math anywhere.
            extra_compile_args=["-O3", "-std=c99", "-pthread", "-Wall", "-Wextra", "-ffp-contract=off",
                                "-fno-trapping-math"],
            extra_link_args=["-pthread"],
        )
    ]
)
