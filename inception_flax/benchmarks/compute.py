"""Throughput of the project's training step (or inference) beside timm's, measured in one process.

The project's step is `step.train_step` with the paper's recipe (RMSProp, EMA, clipping, L2, the
non-finite guard), jitted with the state donated, on a random batch already on the device. timm's
is forward + backward + SGD, eager, NCHW and channels_last, with bfloat16 autocast when the dtype
is bfloat16. Times are medians of `repeats` timed blocks of `steps` steps each after warm-up;
the blocks of the two frameworks alternate, so load on a shared machine hits both alike.
Imports no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import functools
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from inception_flax import config_base, models, optim, recipe, runtime, step


@dataclasses.dataclass(frozen=True)
class Setting:
    model: str = "inception_v4"
    mode: str = "train"  # train | infer
    image_size: int = 299
    batch_size: int = 8
    dtype: str = "float32"  # float32 | bfloat16
    width: float = 1.0
    remat: bool = False
    steps: int = 5
    warmup: int = 2
    repeats: int = 5


def macs_per_image(s: Setting) -> int:
    model = models.create(s.model, width=s.width)
    return sum(layer.macs for layer in models.trace_layers(model, s.image_size))


def flops_per_step(s: Setting) -> float:
    """2 FLOPs a MAC; training counts the backward pass as twice the forward."""
    return (6.0 if s.mode == "train" else 2.0) * macs_per_image(s) * s.batch_size


def matmul_peak(dtype: str, n: int | None = None) -> float:
    """FLOP/s of a large square matmul on the default device: the practical peak to compare with."""
    n = n or (8192 if jax.default_backend() == "gpu" else 2048)
    x = jnp.ones((n, n), jnp.dtype(dtype))
    f = jax.jit(lambda a: a @ a)
    f(x).block_until_ready()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        f(x).block_until_ready()
        times.append(time.perf_counter() - start)
    return 2 * n**3 / min(times)


def project_step(s: Setting) -> tuple[Callable[[], None], dict[str, float]]:
    """A closure running one step of the project, and its init/compile seconds."""
    config = config_base.get_base_config()
    config.model, config.width, config.image_size = s.model, s.width, s.image_size
    config.batch_size = config.base_batch_size = s.batch_size
    config.half_precision = s.dtype == "bfloat16"
    config.remat = s.remat
    resolved = recipe.resolve(
        config, 1000 * config.batch_size
    )  # a 1000-step epoch: the schedule's values do not matter
    model = models.create(s.model, **step.model_options(config, 1000, resolved.bn_momentum))
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.uniform(-1, 1, (s.batch_size, s.image_size, s.image_size, 3)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 1000, (s.batch_size,)), jnp.int32)
    times: dict[str, float] = {}
    start = time.perf_counter()
    if s.mode == "infer":
        variables = jax.block_until_ready(jax.device_put(models.init_variables(model, jax.random.key(0), s.image_size)))
        times["init_s"] = time.perf_counter() - start
        fn, compile_times = compile_timed(jax.jit(functools.partial(model.apply, train=False)), variables, images)
        times.update(compile_times)
        runtime.release_freed_memory()
        return lambda: jax.block_until_ready(fn(variables, images)), times
    tx = optim.create_optimizer(config, resolved.learning_rate)
    key = jax.random.key(0)
    state = jax.block_until_ready(step.init_state(model, tx, s.image_size, config.ema_batch_stats, key))
    times["init_s"] = time.perf_counter() - start
    train = functools.partial(step.train_step, model=model, tx=tx, recipe=resolved)
    batch = {"image": images, "label": labels}
    fn, compile_times = compile_timed(jax.jit(train, donate_argnums=0), state, batch)
    times.update(compile_times)
    runtime.release_freed_memory()  # as train.py does
    times.update(step_memory(fn))
    holder = [state]

    def run():
        holder[0], _, finite = fn(holder[0], batch)
        jax.block_until_ready(finite)

    return run, times


def compile_timed(jitted: Any, *args: Any) -> tuple[jax.stages.Compiled, dict[str, float]]:
    """Compiles `jitted` for `args`: the executable and its start-up split into Python (tracing and
    lowering) and XLA, with the number of fusions XLA made (on CPU its compile time follows that
    count: one generated kernel per fusion)."""
    start = time.perf_counter()
    lowered = jitted.trace(*args).lower()
    traced = time.perf_counter()
    compiled = lowered.compile()
    done = time.perf_counter()
    return compiled, {
        "compile_s": done - start,
        "trace_lower_s": traced - start,
        "xla_compile_s": done - traced,
        "fusions": compiled.as_text().count(" fusion("),
    }


def step_memory(compiled: jax.stages.Compiled) -> dict[str, float]:
    """XLA's buffer assignment for the step: state in, and the scratch (activations) it needs, in GB.

    Exact and independent of the allocator and of what else the process holds, unlike host RSS;
    the figure that `remat` is meant to lower.
    """
    analysis = compiled.memory_analysis()
    if analysis is None:
        return {}
    return {"state_gb": analysis.argument_size_in_bytes / 1e9, "scratch_gb": analysis.temp_size_in_bytes / 1e9}


def timm_step(s: Setting, channels_last: bool, compile_: bool = False) -> Callable[[], None]:
    import timm
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = timm.create_model(s.model, pretrained=False, num_classes=1000).to(device)
    x = torch.randn(s.batch_size, 3, s.image_size, s.image_size, device=device)
    y = torch.randint(0, 1000, (s.batch_size,), device=device)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    if compile_:
        model = torch.compile(model)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=s.dtype == "bfloat16")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if s.mode == "infer":
        model.eval()

        def run():
            with torch.no_grad(), autocast:
                model(x)
            sync()

        return run
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def run():
        with autocast:
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()

    return run


def _block(run: Callable[[], None], steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        run()
    return (time.perf_counter() - start) / steps


def measure(s: Setting, compare: tuple[str, ...] = ()) -> dict[str, Any]:
    """Median seconds per step of the project and of each timm variant in `compare` (alternating)."""
    runners: dict[str, Callable[[], None]] = {}
    project, startup = project_step(s)
    runners["project"] = project
    for name in compare:  # timm_nchw, timm_channels_last, timm_compile
        runners[name] = timm_step(s, channels_last=name != "timm_nchw", compile_=name == "timm_compile")
    for run in runners.values():
        for _ in range(s.warmup):
            run()
    seconds: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(s.repeats):
        for name, run in runners.items():
            seconds[name].append(_block(run, s.steps))
    flops = flops_per_step(s)
    peak = matmul_peak(s.dtype)
    result: dict[str, Any] = {"setting": dataclasses.asdict(s), "backend": jax.default_backend(), **startup}
    result["device"] = jax.devices()[0].device_kind
    result["matmul_peak_tflops"] = peak / 1e12
    for name, values in seconds.items():
        median = statistics.median(values)
        result[name] = {
            "seconds_per_step": median,
            "images_per_second": s.batch_size / median,
            "tflops": flops / median / 1e12,
            "share_of_matmul_peak": flops / median / peak,
        }
    for name in compare:
        result[f"project_over_{name}"] = result["project"]["images_per_second"] / result[name]["images_per_second"]
    stats = jax.devices()[0].memory_stats() or {}
    result["peak_device_memory_gb"] = stats.get("peak_bytes_in_use", 0) / 1e9 or None
    result["peak_host_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    return result


def format_result(r: dict[str, Any]) -> str:
    s = r["setting"]
    lines = [
        f"{s['model']} {s['mode']} {s['image_size']}px batch {s['batch_size']} {s['dtype']} width {s['width']}{' remat' if s.get('remat') else ''} "
        f"on {r['device']} ({r['backend']}); matmul peak {r['matmul_peak_tflops']:.1f} TFLOP/s; "
        f"init {r['init_s']:.1f} s, compile {r['compile_s']:.1f} s"
        + (
            f" (tracing {r['trace_lower_s']:.1f} s, XLA {r['xla_compile_s']:.1f} s, {r['fusions']} fusions)"
            if "fusions" in r
            else ""
        ),
        f"{'':22}{'img/s':>9}{'ms/step':>10}{'TFLOP/s':>9}{'of peak':>9}",
    ]
    for name in ("project", "timm_nchw", "timm_channels_last", "timm_compile"):
        if name in r:
            m = r[name]
            lines.append(
                f"{name:22}{m['images_per_second']:>9.2f}{1e3 * m['seconds_per_step']:>10.1f}"
                f"{m['tflops']:>9.2f}{m['share_of_matmul_peak']:>9.1%}"
            )
    ratios = [f"{k.removeprefix('project_over_')} {v:.2f}x" for k, v in r.items() if k.startswith("project_over_")]
    if ratios:
        lines.append("project / " + ", ".join(ratios))
    memory = f"peak device memory {r['peak_device_memory_gb']:.2f} GB, " if r["peak_device_memory_gb"] else ""
    if "scratch_gb" in r:
        memory = f"step buffers (XLA): state {r['state_gb']:.2f} GB + scratch {r['scratch_gb']:.2f} GB; " + memory
    lines.append(f"{memory}peak host RSS {r['peak_host_rss_gb']:.2f} GB (includes timm when compared)")
    return "\n".join(lines)
