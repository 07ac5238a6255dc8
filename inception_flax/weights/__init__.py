"""Importers of released weights into the Flax networks (imports only jax, flax and numpy).

`from_timm(state_dict, name)` and `from_keras(model_or_path, name)` return Flax `variables`
({"params", "batch_stats"}) for `inception_flax.models.create(name, num_classes=...)`.
"""

from inception_flax.weights.keras import from_keras
from inception_flax.weights.timm import TIMM_MODEL_OPTIONS, from_timm

__all__ = ["TIMM_MODEL_OPTIONS", "from_keras", "from_timm"]
