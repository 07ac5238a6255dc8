"""Benchmarks against timm on the same cores, in one process: `compute` (the training step or
inference) and `pipeline` (the training input pipeline). `scripts/benchmark.py` runs either.

Imports nothing itself; `compute` needs jax only, `pipeline` imports TensorFlow and torch inside
its functions.
"""
