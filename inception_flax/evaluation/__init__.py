"""Evaluation: protocols (central / 10-crop / 144-crop views), the compiled evaluator, checkpoint runs.

Used by the training loop (periodic evaluation) and by `scripts/evaluate.py` / `scripts/predict.py`.
Imports TensorFlow (the input pipeline).
"""

from inception_flax.evaluation.evaluator import Evaluator
from inception_flax.evaluation.labels import class_names, dataset_class_names, imagenet_words
from inception_flax.evaluation.protocols import NUM_VIEWS, Protocol
from inception_flax.evaluation.runner import EvalRequest, evaluate, format_table, read_exclude_list, record_path

__all__ = [
    "NUM_VIEWS",
    "EvalRequest",
    "Evaluator",
    "Protocol",
    "class_names",
    "dataset_class_names",
    "evaluate",
    "format_table",
    "imagenet_words",
    "read_exclude_list",
    "record_path",
]
