# The C core is declared here because pyproject.toml cannot describe extension modules.
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "blockcodec._cext",
            sources=["cext/blockcodec_cext.c", "cext/convnet8.c", "cext/intnet.c", "cext/rdoq.c", "cext/simd.c"],
            depends=["cext/convnet8.h", "cext/intnet.h", "cext/rdoq.h", "cext/simd.h"],
            # -ffp-contract=off: the C core has no floats in the decoding path, and we
            # keep it that way; no -ffast-math anywhere.
            extra_compile_args=["-O3", "-std=c99", "-pthread", "-Wall", "-Wextra", "-ffp-contract=off",
                                "-fno-trapping-math"],
            extra_link_args=["-pthread"],
        )
    ]
)
