"""Test-wide settings. Environment variables must be set before jax/TensorFlow are imported."""

import os

# Plain XLA convolutions are ~2x faster than the default YNNPACK path on this CPU
# (shared/reference/cpu_performance_notes.md). Appended so callers can still add flags.
_FLAG = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# torchvision (imported by timm) aborts the process when TensorFlow's native libraries are already
# loaded; the other order works. Import the optional references first when they are installed.
try:
    import torch  # noqa: F401
    import torchvision  # noqa: F401
except ImportError:
    pass
