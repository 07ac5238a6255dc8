"""The ImageNet configs' learning rate against the TPU reference's own formulas, at every step.

The references are tensorflow/tpu `models/experimental/inception/inception_v3.py` and
`inception_v4.py`; their formulas are written out here from that code in numpy (float64), not
through this project's schedule. The departures docs/recipe.md states are the only differences
allowed: Inception-v3's warm-up (the reference has none) and the cold rate scaled with the batch
(the reference's 0.001 is the same at any batch).
"""

import numpy as np
import pytest

from configs import inception_resnet_v2, inception_v3, inception_v4
from inception_flax import recipe

IMAGES = recipe.TRAIN_IMAGES["imagenet2012"]


def v3_reference(step: np.ndarray, batch: int) -> np.ndarray:
    """inception_v3.py: exponential_decay(0.165 * B / 256, decay_steps=3 * (N // B), 0.94,
    staircase) floored at 1e-4 of the initial rate."""
    initial = 0.165 * batch / 256
    rate = initial * 0.94 ** np.floor(step / (3 * (IMAGES // batch)))
    return np.maximum(rate, 1e-4 * initial)


def v4_reference(step: np.ndarray, batch: int) -> np.ndarray:
    """inception_v4.py: cold epoch at 0.001, two warm-up epochs at e / 3 of the initial rate,
    then exponential_decay over int(2 * N / B) steps from step 0 of 0.15 * B / 256 / 0.94 ** 1.5."""
    batches_per_epoch = IMAGES / batch
    epoch = np.floor(step / batches_per_epoch)
    initial = 0.15 * batch / 256 / 0.94 ** ((2 + 1) / 2)
    decayed = initial * 0.94 ** np.floor(step / int(2 * batches_per_epoch))
    rate = np.where(epoch >= 1, np.where(epoch >= 3, decayed, epoch * initial / 3), 0.001)
    return np.maximum(rate, 1e-4 * initial)


def ours(config, steps: np.ndarray) -> np.ndarray:
    return np.asarray(recipe.resolve(config, IMAGES).learning_rate(steps), np.float64)


def per_epoch_ratios(config, reference) -> list[float]:
    """ours / reference at the first step of every epoch (the note's table)."""
    b = config.batch_size
    starts = np.array([-(-e * IMAGES // b) for e in range(int(config.num_epochs))])
    return list(ours(config, starts) / reference(starts, b))


@pytest.mark.parametrize("batch", [256, 1024, 4096])
def test_inception_v4_matches_its_reference_at_every_step(batch):
    for get_config in (inception_v4.get_config, inception_resnet_v2.get_config):
        c = get_config()
        c.batch_size = batch
        steps = np.arange(int(c.num_epochs * IMAGES / batch))
        ratio = ours(c, steps) / v4_reference(steps, batch)
        cold = steps < IMAGES / batch  # epoch 0: the cold rate, per image here
        np.testing.assert_allclose(ratio[~cold], 1.0, rtol=1e-6, atol=0)
        np.testing.assert_allclose(ratio[cold], batch / 256, rtol=1e-6, atol=0)


@pytest.mark.parametrize("batch", [256, 1024, 4096])
def test_inception_v3_matches_its_reference_after_warm_up(batch):
    c = inception_v3.get_config()
    c.batch_size = batch
    steps = np.arange(int(c.num_epochs * IMAGES / batch))
    ratio = ours(c, steps) / v3_reference(steps, batch)
    warm = steps < 3 * (IMAGES // batch)  # the stated departure: 1 cold + 2 linear epochs
    np.testing.assert_allclose(ratio[~warm], 1.0, rtol=1e-6, atol=0)
    assert np.all(ratio[warm] <= 1.0 + 1e-6)  # the warm-up only ever trains cooler


def test_per_epoch_ratios_at_1024():
    v3, v4 = inception_v3.get_config(), inception_v4.get_config()
    r3, r4 = per_epoch_ratios(v3, v3_reference), per_epoch_ratios(v4, v4_reference)
    assert r3[0] == pytest.approx(
        0.004 / 0.66
    )  # the cold epoch at 0.001 per 256 images; the reference starts at the peak
    assert r3[3:] == pytest.approx([1.0] * (len(r3) - 3), rel=1e-6)
    assert r4[0] == pytest.approx(4.0)  # 0.004 vs 0.001
    assert r4[1:] == pytest.approx([1.0] * (len(r4) - 1), rel=1e-6)
