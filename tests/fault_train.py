"""`scripts/train.py` with a fault injected, for the fault tests only.

    INCEPTION_FLAX_TEST_RAISE=<process>:<position> python tests/fault_train.py <train.py flags>
    INCEPTION_FLAX_TEST_FILL=<position>:<step> python tests/fault_train.py <train.py flags>
    INCEPTION_FLAX_TEST_NO_SPACE=<process>:<position> python tests/fault_train.py <train.py flags>

RAISE makes that process raise a RuntimeError when it reaches that global batch. FILL fills the
workdir's file system (leaving 1 MB) when the run reaches that global batch, once the checkpoint of
`step` is complete: the next save then meets a full disk. NO_SPACE makes every later checkpoint save
of that process alone fail with ENOSPC (a full local disk on one host). Everything else is the real script (the
same flags, logging and exit paths).
"""

import errno
import os
import runpy
import shutil
import sys
import time
from pathlib import Path

from inception_flax import runtime

runtime.use_fast_cpu_convolutions()  # before jax is imported

import jax  # noqa: E402

from inception_flax import train  # noqa: E402

TRAIN = Path(__file__).resolve().parents[1] / "scripts" / "train.py"
_original = train.train_and_evaluate


def _spec(name):
    value = os.environ.get(name)
    return tuple(int(x) for x in value.split(":")) if value else None


def _fill(workdir: Path, after_step: int) -> None:
    deadline = time.time() + 120
    while not (workdir / "checkpoints" / str(after_step)).exists():  # orbax renames a step when complete
        assert time.time() < deadline, f"checkpoint {after_step} never completed"
        time.sleep(0.05)
    with open(workdir.parent / "filler", "wb") as f:
        f.write(b"\0" * (shutil.disk_usage(workdir).free - 2**20))


def _refuse_saves() -> None:
    import orbax.checkpoint as ocp

    def save(self, step, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.directory))

    ocp.CheckpointManager.save = save


def _train_and_evaluate(config, workdir, batch_hook=None, plan=None, start_over=False):
    del batch_hook
    raise_at, fill_at = _spec("INCEPTION_FLAX_TEST_RAISE"), _spec("INCEPTION_FLAX_TEST_FILL")
    no_space = _spec("INCEPTION_FLAX_TEST_NO_SPACE")

    def hook(position, batch):
        if raise_at and jax.process_index() == raise_at[0] and position == raise_at[1]:
            raise RuntimeError(f"injected fault at global batch {position}")
        if fill_at and position == fill_at[0]:
            _fill(Path(workdir), fill_at[1])
        if no_space and jax.process_index() == no_space[0] and position == no_space[1]:
            _refuse_saves()
        return batch

    return _original(config, workdir, batch_hook=hook, plan=plan, start_over=start_over)


train.train_and_evaluate = _train_and_evaluate
sys.argv[0] = str(TRAIN)
runpy.run_path(str(TRAIN), run_name="__main__")
