"""Process-level settings that must be applied before jax is imported (no jax import here)."""

import os

# Plain XLA convolutions (Eigen over oneDNN sgemm) are ~2x faster than the default YNNPACK path
# for Inception-shaped convs on CPU (shared/reference/cpu_performance_notes.md). No effect on TPU/GPU.
FAST_CPU_CONV_FLAG = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"


def use_fast_cpu_convolutions() -> None:
    """Appends the CPU convolution flag to XLA_FLAGS (keeping the caller's flags); call before importing jax."""
    flags = os.environ.get("XLA_FLAGS", "")
    if FAST_CPU_CONV_FLAG not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {FAST_CPU_CONV_FLAG}".strip()
