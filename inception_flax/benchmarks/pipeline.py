"""Images per second of the training input pipeline, beside timm's training transform on the same files.

The project's side is what training runs: `input_pipeline.train_iterator` over a `folder:` source
(read, shuffle, slim's distorted crop fused into the JPEG decode, bilinear resize, flip, colour
distortion, batching), on tf.data's own thread pool. timm's side is its ImageNet training transform
(`timm.data.create_transform(is_training=True)`: PIL decode, RandomResizedCrop, flip, ColorJitter
0.4, ToTensor, Normalize) in a torch DataLoader with one worker per core. Both read the same
generated JPEGs (ImageNet-like sizes, natural-image-like content) on the same cores; timed blocks
alternate and the median is reported, per core as well. TensorFlow and torch are imported inside
the functions, so importing this module costs nothing.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

# ImageNet's most common JPEG size, and a large one (ImageNet has many of each).
SIZES = ((500, 375), (1000, 750))


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def write_jpegs(root: str, count: int, sizes: tuple[tuple[int, int], ...] = SIZES, classes: int = 4) -> None:
    """`count` JPEGs (quality 90) under `root/train/<class>/`, sizes alternating.

    Smooth colour fields plus fine grain: ~2.3 bits a pixel, between flat images and white noise
    (ImageNet's training JPEGs average ~110 KB, more bits a pixel; `measure` reports the figure).
    """
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(count):
        w, h = sizes[i % len(sizes)]
        directory = os.path.join(root, "train", f"n{i % classes:08d}")
        os.makedirs(directory, exist_ok=True)
        coarse = Image.fromarray(rng.integers(0, 256, (h // 24 + 2, w // 24 + 2, 3), dtype=np.uint8))
        image = np.asarray(coarse.resize((w, h), Image.BICUBIC), np.int16) + rng.integers(-10, 11, (h, w, 3))
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(
            os.path.join(directory, f"{i:06d}.JPEG"), quality=90
        )


def project_batches(root: str, image_size: int, batch_size: int) -> Callable[[], Iterator[Any]]:
    """A factory of fresh one-epoch iterators over the project's training pipeline."""
    from inception_flax.data import input_pipeline

    source = input_pipeline.get_source(f"folder:{root}")
    cfg = input_pipeline.PipelineConfig(image_size=image_size, global_batch=batch_size, shuffle_buffer=1024)
    per_epoch = source.num_examples("train") // batch_size  # what a Recipe would say; the benchmark reads one epoch
    return lambda: input_pipeline.train_iterator(source, cfg, per_epoch)


def timm_batches(root: str, image_size: int, batch_size: int) -> Callable[[], Iterator[Any]]:
    """A factory of iterators over timm's training transform in a DataLoader, one worker per core."""
    import timm.data
    import torch
    import torchvision

    transform = timm.data.create_transform(
        image_size, is_training=True, interpolation="bilinear", mean=(0.5,) * 3, std=(0.5,) * 3
    )
    dataset = torchvision.datasets.ImageFolder(os.path.join(root, "train"), transform)
    # Spawned, not forked: this process already runs TensorFlow's and XLA's threads.
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size,
        shuffle=True,
        num_workers=cores(),
        persistent_workers=True,
        drop_last=True,
        multiprocessing_context="spawn",
    )
    return lambda: iter(loader)


def _rate(factory: Callable[[], Iterator[Any]], batch_size: int, batches: int) -> float:
    """Images/s over `batches` batches, after the first (start-up: graph building, worker launch)."""
    iterator = factory()
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def measure(
    root: str, image_size: int = 299, batch_size: int = 32, images: int = 480, repeats: int = 3, compare: bool = True
) -> dict[str, Any]:
    """Median images/s (and per core) of each pipeline over `repeats` alternating one-epoch blocks."""
    from PIL import Image

    if not os.path.isdir(os.path.join(root, "train")):
        write_jpegs(root, images)
    # A reused `root` may hold another number of files, or other sizes: count what is there.
    files = [os.path.join(d, f) for d, _, names in os.walk(os.path.join(root, "train")) for f in names]
    images = len(files)
    batches = images // batch_size - 1  # one epoch: the first batch is not timed
    if batches < 1:
        raise ValueError(f"{images} images make fewer than two batches of {batch_size}.")
    # timm first: torchvision aborts the process when TensorFlow's native libraries loaded before it.
    theirs = timm_batches(root, image_size, batch_size) if compare else None
    factories = {"project": project_batches(root, image_size, batch_size)}
    if theirs:
        factories["timm"] = theirs
    rates: dict[str, list[float]] = {name: [] for name in factories}
    for _ in range(repeats):
        for name, factory in factories.items():
            rates[name].append(_rate(factory, batch_size, batches))
    n = cores()
    sizes = set()
    pixels = 0
    for f in files:
        with Image.open(f) as image:  # reads the header only
            sizes.add(image.size)
            pixels += image.size[0] * image.size[1]
    result: dict[str, Any] = {
        "setting": {"image_size": image_size, "batch_size": batch_size, "images": images, "sizes": sorted(sizes)},
        "cores": n,
        "bits_per_pixel": 8 * sum(os.path.getsize(f) for f in files) / pixels,
    }
    for name, values in rates.items():
        median = statistics.median(values)
        result[name] = {"images_per_second": median, "images_per_second_per_core": median / n, "runs": values}
    if compare:
        result["project_over_timm"] = result["project"]["images_per_second"] / result["timm"]["images_per_second"]
    return result


def format_result(r: dict[str, Any]) -> str:
    s = r["setting"]
    sizes = " and ".join(f"{w}x{h}" for w, h in s["sizes"])
    lines = [
        f"training input pipeline to {s['image_size']}px, batch {s['batch_size']}, {s['images']} JPEGs of {sizes} "
        f"({r['bits_per_pixel']:.1f} bits/pixel), {r['cores']} core(s)",
        f"{'':10}{'img/s':>9}{'per core':>10}",
    ]
    for name in ("project", "timm"):
        if name in r:
            lines.append(f"{name:10}{r[name]['images_per_second']:>9.1f}{r[name]['images_per_second_per_core']:>10.1f}")
    if "project_over_timm" in r:
        lines.append(f"project / timm {r['project_over_timm']:.2f}x")
    return "\n".join(lines)
