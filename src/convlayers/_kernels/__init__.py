"""Compiled numba kernels (private)."""
