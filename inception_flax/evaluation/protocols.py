"""Evaluation protocols: which views of an image the network sees (TensorFlow ops on encoded bytes).

- `central`: one central crop. `resize="fraction"` is TF-slim's (and the paper's) eval: keep the
  central `crop_fraction` of each side, then resize to a square. `resize="shorter_side"` is
  timm/torchvision's: resize the shorter side to `size / crop_fraction` (antialiased, as PIL does),
  then cut the central `size` x `size` square; with `interpolation="bicubic"` it is the transform
  timm's published numbers were measured with.
- `10crop`: the shorter side resized to `size / crop_fraction`, the four corner crops and the
  centre crop, and their mirror images.
- `144crop`: the paper's (GoogLeNet's) multi-crop: 4 scales (shorter side 256, 288, 320 and 352
  for a 224 crop, scaled to `size`), 3 squares per scale (left/centre/right, or top/centre/bottom),
  6 crops per square (4 corners, centre, the whole square resized), and their mirror images.

Every view is a `size` x `size` float image in [-1, 1]; the evaluator averages the softmax
outputs over the views.
"""

from __future__ import annotations

import dataclasses
import math

import tensorflow as tf

from inception_flax.data import preprocessing

NUM_VIEWS = {"central": 1, "10crop": 10, "144crop": 144}
INTERPOLATIONS = ("bilinear", "bicubic")
RESIZE_MODES = ("fraction", "shorter_side")
# The paper's 144-crop scales: shorter side 256/288/320/352 for a 224 crop.
MULTI_SCALES = (256 / 224, 288 / 224, 320 / 224, 352 / 224)


@dataclasses.dataclass(frozen=True)
class Protocol:
    name: str = "central"
    crop_fraction: float = preprocessing.CROP_FRACTION
    interpolation: str = "bilinear"
    resize: str = "fraction"

    def __post_init__(self):
        if self.name not in NUM_VIEWS:
            raise ValueError(f"Unknown protocol {self.name!r}; choose one of {', '.join(NUM_VIEWS)}.")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}.")
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}, got {self.resize!r}.")
        if not 0.0 < self.crop_fraction <= 1.0:
            raise ValueError(f"crop_fraction must be in (0, 1], got {self.crop_fraction}.")

    @property
    def num_views(self) -> int:
        return NUM_VIEWS[self.name]

    @property
    def tag(self) -> str:
        """Short name for files and TensorBoard: e.g. central, 10crop, central-shorter_side-bicubic-0.8975."""
        if (self.crop_fraction, self.interpolation, self.resize) == (
            preprocessing.CROP_FRACTION,
            "bilinear",
            "fraction",
        ):
            return self.name
        return f"{self.name}-{self.resize}-{self.interpolation}-{self.crop_fraction:g}"

    def views(self, image_bytes: tf.Tensor, size: int) -> tf.Tensor:
        """[num_views, size, size, 3] float32 in [-1, 1] from encoded image bytes."""
        image = tf.image.convert_image_dtype(preprocessing.decode(image_bytes), tf.float32)
        if self.name == "central":
            crops = [self._central(image, size)]
        elif self.name == "10crop":
            crops = five_crops(self._shorter_side(image, math.floor(size / self.crop_fraction)), size)
        else:
            crops = []
            for scale in MULTI_SCALES:
                scaled = self._shorter_side(image, round(size * scale))
                for square in three_squares(scaled):
                    crops += [*five_crops(square, size), self._resize(square, size, size)]
        if self.name != "central":
            crops += [tf.image.flip_left_right(c) for c in crops]
        views = tf.stack(crops)
        return preprocessing.to_unit_range(tf.clip_by_value(views, 0.0, 1.0))

    def _central(self, image: tf.Tensor, size: int) -> tf.Tensor:
        if self.resize == "fraction":
            return self._resize(tf.image.central_crop(image, self.crop_fraction), size, size)
        return center_crop(self._shorter_side(image, math.floor(size / self.crop_fraction)), size)

    def _resize(self, image: tf.Tensor, height, width) -> tf.Tensor:
        # slim resizes without antialiasing; PIL (timm's transforms) filters when it shrinks.
        antialias = self.resize == "shorter_side"
        return tf.image.resize(image, [height, width], method=self.interpolation, antialias=antialias)

    def _shorter_side(self, image: tf.Tensor, target: int) -> tf.Tensor:
        """Resize keeping the aspect ratio so that the shorter side is exactly `target`."""
        shape = tf.cast(tf.shape(image)[:2], tf.float32)
        scale = target / tf.reduce_min(shape)
        new = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), target)
        return self._resize(image, new[0], new[1])


def center_crop(image: tf.Tensor, size: int) -> tf.Tensor:
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    top = tf.cast(tf.round((h - size) / 2), tf.int32)
    left = tf.cast(tf.round((w - size) / 2), tf.int32)
    return tf.image.crop_to_bounding_box(image, top, left, size, size)


def five_crops(image: tf.Tensor, size: int) -> list[tf.Tensor]:
    """Top-left, top-right, bottom-left, bottom-right and centre `size` crops (image at least `size`)."""
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    corners = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size)]
    crops = [tf.image.crop_to_bounding_box(image, top, left, size, size) for top, left in corners]
    return [*crops, center_crop(image, size)]


def three_squares(image: tf.Tensor) -> list[tf.Tensor]:
    """The first, central and last squares along the longer side (side = the shorter side)."""
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    side = tf.minimum(h, w)
    squares = []
    for position in (0.0, 0.5, 1.0):
        top = tf.cast(tf.round(tf.cast(h - side, tf.float32) * position), tf.int32)
        left = tf.cast(tf.round(tf.cast(w - side, tf.float32) * position), tf.int32)
        squares.append(tf.image.crop_to_bounding_box(image, top, left, side, side))
    return squares
