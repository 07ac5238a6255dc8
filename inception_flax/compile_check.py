"""Whether a config's train step fits a GPU node this machine does not have: compiled for it here.

jax compiles for a device topology without the devices (`jax.experimental.topologies`). With the
CUDA plugin installed (`pip install "jax[cuda12]==0.10.2"`, no GPU needed; run with
`JAX_PLATFORMS=cpu`), the GPU compiler builds the real step, jitted as `train.py` jits it
(`step.jit_train_step`), for N GPUs that a target config describes. Its `memory_analysis()` is the
compiler's buffer assignment per device: the state, the scratch, the generated code. That, against
the memory jax's allocator may use (75% of the GPU by default, `XLA_PYTHON_CLIENT_MEM_FRACTION`),
says whether the step fits before a job waits in a queue for it.

The compiler gives no FLOP count for these devices (`cost_analysis()` is None), so the FLOPs are the
model's: 6 x MACs x images (2 a MAC forward, twice that backward). The bound is the roofline's: no
step can beat its FLOPs at the dense bfloat16 peak, nor reading and writing its state once at the
memory bandwidth. It is a floor on the step time, not a measurement.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh

from inception_flax import mesh, models, optim, step
from inception_flax import recipe as recipe_lib

KNOWN_CLASSES = {"imagenet2012": 1000, "inception_digits": 10}
DEFAULT_MEMORY_FRACTION = 0.75  # jax preallocates this share of each GPU (XLA_PYTHON_CLIENT_MEM_FRACTION)

# What the GPU compiler needs to know of a Hopper GPU besides its size (CUDA's device limits for
# compute capability 9.0; the same for H100 and H200).
_HOPPER = {
    "threads_per_block_limit": 1024,
    "threads_per_warp": 32,
    "shared_memory_per_block": 49152,
    "shared_memory_per_core": 233472,
    "threads_per_core_limit": 2048,
    "fpus_per_core": 128,
    "block_dim_limit_x": 2147483647,
    "block_dim_limit_y": 65535,
    "block_dim_limit_z": 65535,
    "shared_memory_per_block_optin": 232448,
    "registers_per_core_limit": 65536,
    "registers_per_block_limit": 65536,
}


@dataclasses.dataclass(frozen=True)
class Gpu:
    name: str  # as the driver reports it
    memory_bytes: int  # what the driver reports as the device's memory
    bandwidth: float  # HBM, bytes/s
    bf16_flops: float  # dense bfloat16 tensor-core peak, FLOP/s
    source: str  # NVIDIA's page for the memory, bandwidth and peak
    cores: int = 132
    l2_bytes: int = 50 << 20
    clock_ghz: float = 1.98
    compute_capability: tuple[int, int] = (9, 0)
    limits: tuple[tuple[str, int], ...] = tuple(_HOPPER.items())


# SXM parts. The peaks are NVIDIA's "with sparsity" figures halved (1,979 -> 989 TFLOP/s).
GPUS = {
    "h100": Gpu(
        "NVIDIA H100 80GB HBM3", 84_942_979_072, 3.35e12, 989e12, "https://www.nvidia.com/en-us/data-center/h100/"
    ),
    "h200": Gpu(
        "NVIDIA H200 141GB HBM3e", 151_397_597_184, 4.8e12, 989e12, "https://www.nvidia.com/en-us/data-center/h200/"
    ),
}


def target_config(gpu: Gpu) -> str:
    """The GPU as a `GpuTargetConfigProto` in text form, with only the fields jax 0.10.2's XLA parses."""
    info = dict(gpu.limits)
    info.update(
        core_count=gpu.cores,
        memory_bandwidth=int(gpu.bandwidth),
        l2_cache_size=gpu.l2_bytes,
        clock_rate_ghz=gpu.clock_ghz,
        device_memory_size=gpu.memory_bytes,
    )
    body = "\n".join(f"  {k}: {v}" for k, v in info.items())
    major, minor = gpu.compute_capability
    return (
        f"gpu_device_info {{\n{body}\n  cuda_compute_capability {{ major: {major} minor: {minor} }}\n}}\n"
        f'platform_name: "CUDA"\ndnn_version_info {{ major: 9 minor: 10 }}\n'
        f'device_description_str: "{gpu.name}"\n'
    )


def gpu_devices(kind: str, gpus_per_node: int, nodes: int = 1) -> list[Any]:
    """Compile-only devices: `nodes` x `gpus_per_node` GPUs of `kind` (a key of GPUS)."""
    from jax.experimental import topologies

    if kind not in GPUS:
        raise ValueError(f"Unknown GPU {kind!r}; known: {', '.join(GPUS)}.")
    topology = topologies.get_topology_desc(
        topology_name=kind, platform="cuda", target_config=target_config(GPUS[kind]),
        topology=f"1x{nodes}x{gpus_per_node}",
    )  # fmt: skip
    return list(topology.devices)


def for_devices(config: ml_collections.ConfigDict, devices: int) -> ml_collections.ConfigDict:
    """`config` with what train.py decides from the devices it runs on made explicit: bfloat16 where
    `half_precision` is unset (as on any accelerator) and BatchNorm over each device's share."""
    config = copy.deepcopy(config)
    with config.unlocked():
        if config.half_precision is None:
            config.half_precision = True
        if config.bn_group_size < 0:
            config.bn_group_size = config.batch_size // devices
    return config


_COLLECTIVE = re.compile(r"=\s*(.+?)\s+(all-reduce|all-gather|reduce-scatter|all-to-all|collective-permute)(-start)?\(")
_ARRAY = re.compile(r"\b(pred|[subf]\d+|bf16)\[([\d,]*)\]")
_BITS = {"pred": 8, "bf16": 16}


def collectives(hlo: str) -> dict[str, dict[str, int]]:
    """Per kind of collective in optimised HLO text: how many, and the bytes of their results (also
    by element type: XLA may sum bfloat16 gradients before casting them to the float32 parameters)."""
    found: dict[str, dict[str, int]] = {}
    for shape, kind, _ in _COLLECTIVE.findall(hlo):
        entry = found.setdefault(kind, {"count": 0, "bytes": 0, "bytes_by_dtype": {}})
        entry["count"] += 1
        for dtype, dims in _ARRAY.findall(shape):
            size = int(np.prod([int(d) for d in dims.split(",") if d])) if dims else 1
            nbytes = size * _BITS.get(dtype, int(dtype[1:]) if dtype[1:].isdigit() else 32) // 8
            entry["bytes"] += nbytes
            entry["bytes_by_dtype"][dtype] = entry["bytes_by_dtype"].get(dtype, 0) + nbytes
    return found


def check(config: ml_collections.ConfigDict, kind: str, gpus_per_node: int, nodes: int = 1,
          memory_fraction: float = DEFAULT_MEMORY_FRACTION) -> dict[str, Any]:  # fmt: skip
    """Compiles `config`'s train step for the node(s) and returns the report (see `format_report`)."""
    devices = gpu_devices(kind, gpus_per_node, nodes)  # refuses an unknown kind
    gpu = GPUS[kind]
    n = len(devices)
    if config.batch_size % n:
        raise ValueError(f"config.batch_size={config.batch_size} must be divisible by the {n} GPUs.")
    config = for_devices(config, n)
    train_images = recipe_lib.known_train_images(config)
    num_classes = config.num_classes if config.num_classes > 0 else KNOWN_CLASSES.get(config.dataset)
    if train_images is None or num_classes is None:
        raise ValueError(f"config.dataset={config.dataset}: its size is not known here; use a known dataset.")
    resolved = recipe_lib.resolve(config, train_images)
    model = models.create(config.model, **step.model_options(config, num_classes, resolved.bn_momentum))
    tx = optim.create_optimizer(config, resolved.learning_rate)
    replicated, split = mesh.shardings(Mesh(np.asarray(devices), (mesh.AXIS,)))
    state = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated),
        step.abstract_state(model, tx, config.image_size, config.ema_batch_stats),
    )
    size = config.image_size
    batch = {
        "image": jax.ShapeDtypeStruct((config.batch_size, size, size, 3), np.float32, sharding=split),
        "label": jax.ShapeDtypeStruct((config.batch_size,), np.int32, sharding=split),
    }
    began = time.perf_counter()
    compiled = step.jit_train_step(model, tx, resolved, replicated, split).lower(state, batch).compile()
    compile_s = time.perf_counter() - began
    m = compiled.memory_analysis()
    # The donated state's buffers are reused for the new state (the alias), so outputs add little.
    total = (
        m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
        + m.temp_size_in_bytes + m.generated_code_size_in_bytes
    )  # fmt: skip
    usable = memory_fraction * gpu.memory_bytes
    macs = sum(layer.macs for layer in models.trace_layers(model, size))
    flops = 6.0 * macs * config.batch_size / n  # per GPU per step
    compute_s = flops / gpu.bf16_flops
    memory_s = (m.argument_size_in_bytes + m.output_size_in_bytes) / gpu.bandwidth
    bound_s = max(compute_s, memory_s)
    return {
        "model": config.model,
        "gpu": gpu.name,
        "gpus": n,
        "nodes": nodes,
        "global_batch": config.batch_size,
        "image_size": size,
        "dtype": "bfloat16" if config.half_precision else "float32",
        "remat": bool(config.remat),
        "compile_s": compile_s,
        "memory": {
            "arguments_bytes": m.argument_size_in_bytes,  # the compiler's: the state and this GPU's batch
            "state_bytes": _bytes(state),
            "batch_bytes": _bytes(batch) // n,
            "scratch_bytes": m.temp_size_in_bytes,
            "code_bytes": m.generated_code_size_in_bytes,
            "total_bytes": total,
            "usable_bytes": usable,
            "device_bytes": gpu.memory_bytes,
            "memory_fraction": memory_fraction,
        },
        "fits": total <= usable,
        "flops_per_gpu_step": flops,
        "collectives": collectives(compiled.as_text()),
        "bound": {
            "step_s": bound_s,
            "compute_s": compute_s,
            "memory_s": memory_s,
            "images_per_s": config.batch_size / bound_s,
            "hours": resolved.total_steps * bound_s / 3600,
            "epochs": resolved.total_steps * config.batch_size / train_images,
            "peak_source": gpu.source,
        },
    }


def _bytes(tree: Any) -> int:
    return sum(a.size * a.dtype.itemsize for a in jax.tree.leaves(tree))


def format_report(r: dict[str, Any]) -> str:
    gb = 1e9
    m, b = r["memory"], r["bound"]
    margin = m["usable_bytes"] - m["total_bytes"]
    verdict = f"fits, {margin / gb:.1f} GB to spare" if r["fits"] else f"does NOT fit: {-margin / gb:.1f} GB over"
    lines = [
        f"{r['model']} on {r['nodes']} node(s) x {r['gpus'] // r['nodes']} {r['gpu']}: global batch "
        f"{r['global_batch']} ({r['global_batch'] // r['gpus']} a GPU), {r['image_size']} px, {r['dtype']}"
        f"{', remat' if r['remat'] else ''}; compiled in {r['compile_s']:.0f} s on this machine",
        f"per GPU: state {m['state_bytes'] / gb:.2f} GB + batch {m['batch_bytes'] / gb:.2f} GB + scratch {m['scratch_bytes'] / gb:.2f} GB + code "
        f"{m['code_bytes'] / gb:.2f} GB = {m['total_bytes'] / gb:.2f} GB of {m['usable_bytes'] / gb:.1f} GB usable "
        f"({m['memory_fraction']:.0%} of {m['device_bytes'] / gb:.1f} GB): {verdict}",
        f"FLOPs per GPU per step (6 x MACs x images): {r['flops_per_gpu_step'] / 1e12:.2f} TFLOP",
        "collectives: "
        + ", ".join(
            f"{k} {v['count']} ({v['bytes'] / 1e6:.1f} MB: "
            + ", ".join(f"{t} {b / 1e6:.1f}" for t, b in sorted(v["bytes_by_dtype"].items()))
            + ")"
            for k, v in r["collectives"].items()
        ),
        f"bound, not a measurement: a step takes at least {b['step_s'] * 1e3:.1f} ms (bf16 peak; state traffic "
        f"{b['memory_s'] * 1e3:.1f} ms), at most {b['images_per_s']:,.0f} images/s, at least {b['hours']:.1f} h for "
        f"{b['epochs']:.0f} epochs (peak: {b['peak_source']})",
    ]
    return "\n".join(lines)


def advice(r: dict[str, Any], config: ml_collections.ConfigDict) -> str:
    """For a step that does not fit: the largest global batch that would, estimated from the scratch
    per image (the scratch grows with the batch, the state does not), and what else to try."""
    m, n = r["memory"], r["gpus"]
    per_image = (m["scratch_bytes"] + m["batch_bytes"]) / (r["global_batch"] // n)
    room = m["usable_bytes"] - (m["total_bytes"] - m["scratch_bytes"] - m["batch_bytes"])
    largest = max(int(room // per_image), 0) * n
    tips = [f"an estimate, not compiled: at most about --config.batch_size={largest} fits (scratch per image)"]
    if not config.remat:
        tips.append("--config.remat=True recomputes each block's activations in the backward pass: less scratch")
    tips.append(f"XLA_PYTHON_CLIENT_MEM_FRACTION above {m['memory_fraction']} lets jax use more of each GPU")
    return "does not fit; " + "; ".join(tips) + "."


def format_table(reports: list[dict[str, Any]]) -> str:
    """The markdown table of saved reports (docs/training.md's GPU table)."""
    rows = [
        "| network | GPUs | global batch (a GPU) | state + batch + scratch + code, a GPU | of usable | fits | compiled in | "
        "bound: ms a step | bound: images/s | bound: hours |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        m, b = r["memory"], r["bound"]
        rows.append(
            f"| {r['model']} | {r['nodes']} x {r['gpus'] // r['nodes']} {r['gpu'].split()[1]} | "
            f"{r['global_batch']:,} ({r['global_batch'] // r['gpus']}) | "
            f"{m['state_bytes'] / 1e9:.2f} + {m['batch_bytes'] / 1e9:.2f} + {m['scratch_bytes'] / 1e9:.1f} + "
            f"{m['code_bytes'] / 1e9:.2f} = "
            f"{m['total_bytes'] / 1e9:.1f} GB | {m['usable_bytes'] / 1e9:.1f} GB | {'yes' if r['fits'] else 'no'} | "
            f"{r['compile_s']:.0f} s | {b['step_s'] * 1e3:.1f} | {b['images_per_s']:,.0f} | "
            f"{b['hours']:.1f} ({b['epochs']:.0f} epochs) |"
        )
    return "\n".join(rows)
