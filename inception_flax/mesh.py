"""Data parallelism for training and evaluation: one mesh axis, `data`, over every device of every
process; parameters replicated, batches split along their first dimension."""

from __future__ import annotations

from collections.abc import Mapping

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXIS = "data"


def make_mesh() -> Mesh:
    return Mesh(np.asarray(jax.devices()), (AXIS,))


def shardings(mesh: Mesh) -> tuple[NamedSharding, NamedSharding]:
    """(replicated, split along the batch dimension) on `mesh`."""
    return NamedSharding(mesh, P()), NamedSharding(mesh, P(AXIS))


def to_global(batch: Mapping[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
    """This host's slice of the global batch -> global arrays sharded over the `data` axis."""
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}
