"""Tiny studies for the tests: plain vs residual Inception-ResNet-v1 (width 0.125, 75 px), 2 seeds, 4 steps;
and a pilot of the residual arm at 2 learning rates."""

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
    learning_rates: tuple = ()
    test_split: str = "test[:16]"
    final_evals: int = 1
    equivalence_margin: float = 0.02
    stall_top1_error: float = 0.8


DATA_DIR = ""  # set by the test (a prepared TFDS dir)


def get_study(name: str) -> Study:
    if name == "tiny_pilot":
        return Study(arms=("residual",), seeds=(0,), learning_rates=(0.01, 0.05))
    if name != "tiny":
        raise ValueError(f"Unknown study {name!r}; studies: tiny, tiny_pilot.")
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
