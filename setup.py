"""Builds the scanner's optional C hot path (``pilot_tui.detect._native``); everything else is in pyproject.toml.

The extension is optional: without a C compiler the install still succeeds and ``pilot-tui scan`` uses the pure
Python path (same results, slower). It needs no PCRE2 headers: libpcre2-8 is opened with dlopen at import.
"""

from glob import glob

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "pilot_tui.detect._native",
            sorted(glob("pilot_tui/detect/csrc/*.c")),
            depends=["pilot_tui/detect/csrc/native.h"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wno-missing-braces"],
            libraries=["dl"],
            optional=True,
        )
    ]
)
