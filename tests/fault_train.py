"""`scripts/train.py` with a fault injected, for the multi-process tests only.

    INCEPTION_FLAX_TEST_RAISE=<process>:<position> python tests/fault_train.py <train.py flags>

makes that process raise a RuntimeError when it reaches that global batch; everything else is the
real script (the same flags, logging and exit paths).
"""

import os
import runpy
import sys
from pathlib import Path

from inception_flax import runtime

runtime.use_fast_cpu_convolutions()  # before jax is imported

import jax  # noqa: E402

from inception_flax import train  # noqa: E402

TRAIN = Path(__file__).resolve().parents[1] / "scripts" / "train.py"
PROCESS, POSITION = (int(x) for x in os.environ["INCEPTION_FLAX_TEST_RAISE"].split(":"))
_original = train.train_and_evaluate


def _hook(position, batch):
    if jax.process_index() == PROCESS and position == POSITION:
        raise RuntimeError(f"injected fault at global batch {position}")
    return batch


def _train_and_evaluate(config, workdir, batch_hook=None):
    del batch_hook
    return _original(config, workdir, batch_hook=_hook)


train.train_and_evaluate = _train_and_evaluate
sys.argv[0] = str(TRAIN)
runpy.run_path(str(TRAIN), run_name="__main__")
