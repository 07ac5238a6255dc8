"""Importers of released weights into the Flax networks (imports only jax, flax and numpy).

`from_timm(state_dict, name)`, `from_keras(model_or_path, name)` and `from_slim(path, name)` return
Flax `variables` ({"params", "batch_stats"}) for `inception_flax.models.create(name, **options)`;
`model_options(variables)` reads the class count, aux head and BatchNorm gamma from them.
"""

from inception_flax.weights.common import model_options
from inception_flax.weights.keras import from_keras
from inception_flax.weights.slim import SLIM_SCOPES, from_slim
from inception_flax.weights.timm import TIMM_MODEL_OPTIONS, from_timm

__all__ = ["SLIM_SCOPES", "TIMM_MODEL_OPTIONS", "from_keras", "from_slim", "from_timm", "model_options"]
