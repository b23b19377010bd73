"""Kernels written in the current NKI API (`import nki`), each module checks itself when run."""
