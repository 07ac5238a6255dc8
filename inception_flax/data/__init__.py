"""Input pipelines (TensorFlow / TFDS). Not imported by `inception_flax.models`."""

from inception_flax.data import digits  # registers the `inception_digits` TFDS builder
from inception_flax.data.input_pipeline import (
    DatasetNotPreparedError,
    PipelineConfig,
    Source,
    eval_iterator,
    get_source,
    num_eval_steps,
    train_iterator,
)

__all__ = [
    "DatasetNotPreparedError",
    "PipelineConfig",
    "Source",
    "digits",
    "eval_iterator",
    "get_source",
    "num_eval_steps",
    "train_iterator",
]
