"""Compiled kernels for symmetry functions: fused numba loops for MD on a CPU (:mod:`.fused`)."""
