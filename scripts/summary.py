r"""Print a network's parameters, feature-map shapes and MACs without running it.

    python scripts/summary.py --model inception_v4 [--image_size 299] [--num_classes 1000]

Everything is computed from `jax.eval_shape`: nothing is compiled or run.
"""

from collections.abc import Sequence

from absl import app, flags
from clu import parameter_overview

from inception_flax import models

_MODEL = flags.DEFINE_enum("model", "inception_v4", models.names(), "Network to describe.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 299, "Square input size.")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", 1000, "Classes (1001 for TF-slim checkpoints).")
_AUX = flags.DEFINE_bool("aux_logits", False, "Include the auxiliary head.")
_WIDTH = flags.DEFINE_float("width", 1.0, "Channel multiplier (1.0 = the paper).")


def summarize(name: str, image_size: int, num_classes: int, aux_logits: bool = False, width: float = 1.0) -> str:
    model = models.create(name, num_classes=num_classes, aux_logits=aux_logits, width=width)
    model.check_input((1, image_size, image_size, 3))
    variables = models.abstract_variables(model, image_size)
    lines = [parameter_overview.get_parameter_overview(variables["params"], include_stats=False)]
    lines.append(f"Total parameters: {models.count_params(variables['params']):,}")
    lines.append(f"BatchNorm moving statistics (batch_stats): {models.count_params(variables['batch_stats']):,}")
    lines.append(f"\nFeature maps of {name} at {image_size}x{image_size}:")
    for stage, shape in models.feature_shapes(model, image_size).items():
        lines.append(f"  {stage:<12} {'x'.join(map(str, shape[1:]))}")
    layers = models.trace_layers(model, image_size)
    macs = sum(layer.macs for layer in layers if layer.path[0] != "AuxLogits")
    lines.append(f"\nMACs per image (conv + dense, inference): {macs / 1e9:.3f} G ({len(layers)} weight layers)")
    return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        print(summarize(_MODEL.value, _IMAGE_SIZE.value, _NUM_CLASSES.value, _AUX.value, _WIDTH.value))
    except ValueError as e:  # input too small, bad option: a message, not a traceback
        raise app.UsageError(str(e)) from None


if __name__ == "__main__":
    app.run(main)
