"""Kernels written in NKI (legacy and current API) that ship with trnsim; each module checks itself when run."""
