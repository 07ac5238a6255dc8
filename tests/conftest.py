"""Test-wide settings. Environment variables must be set before jax/TensorFlow are imported."""

import os

from inception_flax import runtime

runtime.use_fast_cpu_convolutions()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# One persistent XLA cache for the whole run, inherited by the subprocess tests: identical
# programs (the same tiny network's init and train step) compile once instead of once per test.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", os.path.join(os.path.dirname(os.path.dirname(__file__)), ".pytest_cache", "xla")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

# torchvision (imported by timm) aborts the process when TensorFlow's native libraries are already
# loaded; the other order works. Import the optional references first when they are installed.
try:
    import torch  # noqa: F401
    import torchvision  # noqa: F401
except ImportError:
    pass


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
    """The embedded digits, prepared once per test process."""
    from inception_flax import data

    path = str(tmp_path_factory.mktemp("tfds"))
    data.get_source("inception_digits", path)
    return path


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory):
    """A GCS API server on 127.0.0.1 (tests/fake_gcs.py), one per test process, with bucket `bucket`."""
    from tests.fake_gcs import FakeGcs

    server = FakeGcs.start(str(tmp_path_factory.mktemp("gcs")))
    server.create_bucket("bucket")
    yield server
    server.stop()


@pytest.fixture
def gcs(gcs_server, monkeypatch):
    """`gcs_server` with its environment set in this process too (TensorFlow reads it per request);
    subprocesses get `gcs.env`. Tensorstore (orbax's arrays) is only used against it in subprocesses."""
    for key, value in gcs_server.env.items():
        monkeypatch.setenv(key, value)
    return gcs_server


@pytest.fixture(scope="session")
def slurm():
    """A one-node SLURM cluster (tests/slurm.py), started once per test process that needs it; skips
    with the reason where SLURM is not installed or the tests do not run as root."""
    from tests.slurm import Slurm, skip_reason

    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:])  # each worker's job ids apart
    cluster = Slurm.start(first_job_id=1 + 1000 * worker)
    yield cluster
    cluster.stop()
