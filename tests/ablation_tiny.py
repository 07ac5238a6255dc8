"""A tiny study for the tests: plain vs residual Inception-ResNet-v1 (width 0.125, 75 px), 2 seeds, 4 steps."""

import dataclasses

import ml_collections

from configs import inception_resnet_v1


@dataclasses.dataclass(frozen=True)
class Study:
    arms: tuple = ("plain", "residual")
    seeds: tuple = (0, 1)
    scale: str = "tiny"
    pairs: tuple = (("plain", "residual"),)
    sweep: tuple = ()
    target_top1_error: float = 0.85


DATA_DIR = ""  # set by the test (a prepared TFDS dir)


def get_study(name: str) -> Study:
    if name != "tiny":
        raise ValueError(f"Unknown study {name!r}; studies: tiny.")
    return Study()


def get_config(arg: str) -> ml_collections.ConfigDict:
    arm, _, _ = arg.partition(",")
    if arm not in ("plain", "residual"):
        raise ValueError(f"Unknown arm {arm!r}; arms: plain, residual.")
    c = inception_resnet_v1.get_config("runlocal")
    c.model_options = ml_collections.ConfigDict({"residual": arm == "residual"})
    c.data_dir = DATA_DIR
    c.batch_size = c.base_batch_size = 8
    c.num_train_steps = 4
    c.log_every_steps = c.eval_every_steps = c.checkpoint_every_steps = 2
    c.eval_split = "test[:16]"
    c.shuffle_buffer = 200
    return c
