"""The one place this project uses jax's private API, and why (tests/test_jax_private.py fails
loudly, naming what moved, when a jax upgrade changes it).

jax.distributed's coordination service holds a key-value store every process can read, which is
how a failing process tells the others why it stops (`faults.announce_failure` / `PeerWatch`);
jax (0.10) exposes the store's client only as `jax._src.distributed.global_state.client`.
"""

from __future__ import annotations

from typing import Any

# What this module needs of the client: the store's methods `faults` calls.
CLIENT_METHODS = ("key_value_set", "key_value_dir_get")


def coordination_client() -> Any:
    """The coordination-service client of this process (after `jax.distributed.initialize`)."""
    try:
        from jax._src import distributed

        client = distributed.global_state.client
    except (ImportError, AttributeError) as e:
        raise RuntimeError(
            f"jax's coordination-service client moved in this jax version ({e}); update "
            "inception_flax/jax_private.py (tests/test_jax_private.py checks it)."
        ) from e
    if client is None:
        raise RuntimeError("jax.distributed is not initialized: there is no coordination service to reach.")
    return client
