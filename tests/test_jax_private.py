"""jax's private API this project uses (inception_flax/jax_private.py) is still where it is: a jax
upgrade that moves it fails here, by name, instead of in a multi-host job's failure path."""

import jax
import pytest

from inception_flax import jax_private


def test_the_coordination_client_is_where_jax_private_reaches_for_it():
    from jax._src import distributed  # what jax_private imports
    from jax._src.lib import _jax

    assert hasattr(distributed.global_state, "client"), f"jax {jax.__version__}: global_state.client is gone"
    for method in jax_private.CLIENT_METHODS:
        assert hasattr(_jax.DistributedRuntimeClient, method), f"jax {jax.__version__}: client.{method} is gone"


def test_without_jax_distributed_it_says_so():
    with pytest.raises(RuntimeError, match="jax.distributed is not initialized"):
        jax_private.coordination_client()
