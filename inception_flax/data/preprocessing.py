"""TF-slim Inception preprocessing on encoded image bytes, as pure functions of (bytes, seed).

Every random choice uses TensorFlow's stateless ops with an explicit seed, so an example's
augmentation depends only on its position in the input stream: what makes resume exact.
JPEG bytes take the fused decode-and-crop path; PNG/GIF/BMP bytes (even in a `.JPEG` file) are
decoded fully and cropped the same way. Grayscale and CMYK decode to 3 channels.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

CROP_FRACTION = 0.875  # slim's eval central crop


def decode(image_bytes: tf.Tensor) -> tf.Tensor:
    """uint8 [h, w, 3] from JPEG, PNG, GIF (first frame) or BMP bytes; grayscale and CMYK become RGB."""
    image = tf.cond(
        tf.io.is_jpeg(image_bytes),
        lambda: tf.io.decode_jpeg(image_bytes, channels=3),
        lambda: tf.io.decode_image(image_bytes, channels=3, expand_animations=False),
    )
    image.set_shape([None, None, 3])
    return image


def image_shape(image_bytes: tf.Tensor) -> tf.Tensor:
    """[height, width] of encoded bytes; reads only the header for JPEG."""
    return tf.cond(
        tf.io.is_jpeg(image_bytes),
        lambda: tf.image.extract_jpeg_shape(image_bytes)[:2],
        lambda: tf.shape(decode(image_bytes))[:2],
    )


def distorted_crop(
    image_bytes: tf.Tensor,
    seed: tf.Tensor,
    area_range: Sequence[float] = (0.05, 1.0),
    aspect_ratio_range: Sequence[float] = (0.75, 1.33),
    min_object_covered: float = 0.1,
    max_attempts: int = 100,
) -> tf.Tensor:
    """slim's `distorted_bounding_box_crop` with the whole image as the box; uint8 [h, w, 3]."""
    shape = image_shape(image_bytes)
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.concat([shape, [3]], axis=0),
        bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, [1, 1, 4]),
        seed=seed,
        min_object_covered=min_object_covered,
        aspect_ratio_range=aspect_ratio_range,
        area_range=area_range,
        max_attempts=max_attempts,
        use_image_if_no_bounding_boxes=True,
    )
    window = tf.stack([begin[0], begin[1], size[0], size[1]])

    def generic():
        return tf.image.crop_to_bounding_box(decode(image_bytes), begin[0], begin[1], size[0], size[1])

    image = tf.cond(
        tf.io.is_jpeg(image_bytes), lambda: tf.image.decode_and_crop_jpeg(image_bytes, window, channels=3), generic
    )
    image.set_shape([None, None, 3])
    return image


def distort_color(image: tf.Tensor, seed: tf.Tensor, fast_mode: bool = True) -> tf.Tensor:
    """slim's colour distortion on a float image in [0, 1] (brightness, saturation[, hue, contrast])."""
    seeds = tf.random.experimental.stateless_split(seed, 4)
    image = tf.image.stateless_random_brightness(image, 32.0 / 255.0, seeds[0])
    image = tf.image.stateless_random_saturation(image, 0.5, 1.5, seeds[1])
    if not fast_mode:
        image = tf.image.stateless_random_hue(image, 0.2, seeds[2])
        image = tf.image.stateless_random_contrast(image, 0.5, 1.5, seeds[3])
    return tf.clip_by_value(image, 0.0, 1.0)


def distort_color_fast(image: tf.Tensor, seed: tf.Tensor, chroma: float = 0.1) -> tf.Tensor:
    """The TPU reference's colour distortion (`distort_color_fast`) on a float image in [0, 1]: one
    brightness offset in +-32/255 and Cb, Cr offsets in +-`chroma`, added to R, G, B through the
    YCbCr -> RGB matrix (JPEG's coefficients)."""
    brightness, cb, cr = tf.unstack(
        tf.random.stateless_uniform([3], seed, minval=-1.0, maxval=1.0) * [32.0 / 255.0, chroma, chroma]
    )
    offset = tf.stack([1.402 * cr, -0.344136 * cb - 0.714136 * cr, 1.772 * cb]) + brightness
    return tf.clip_by_value(image + offset, 0.0, 1.0)


def to_unit_range(image: tf.Tensor) -> tf.Tensor:
    """[0, 1] -> [-1, 1], the networks' input range."""
    return (image - 0.5) * 2.0


def preprocess_train(
    image_bytes: tf.Tensor,
    seed: tf.Tensor,
    image_size: int,
    area_range: Sequence[float] = (0.05, 1.0),
    aspect_ratio_range: Sequence[float] = (0.75, 1.33),
    color_distortion: str = "tpu_fast",
    fast_mode: bool = True,
) -> tf.Tensor:
    """Distorted crop, bilinear resize, random flip, colour distortion ("tpu_fast", "slim" or
    "none"); float32 in [-1, 1]."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    image = distorted_crop(image_bytes, seeds[0], area_range, aspect_ratio_range)
    image = tf.image.convert_image_dtype(image, tf.float32)
    image = tf.image.resize(image, [image_size, image_size], method="bilinear")
    image = tf.image.stateless_random_flip_left_right(image, seeds[1])
    if color_distortion == "tpu_fast":
        image = distort_color_fast(image, seeds[2])
    elif color_distortion == "slim":
        image = distort_color(image, seeds[2], fast_mode)
    elif color_distortion != "none":
        raise ValueError(f"Unknown color_distortion {color_distortion!r}: tpu_fast, slim or none.")
    image = tf.clip_by_value(image, 0.0, 1.0)
    return to_unit_range(image)


def preprocess_eval(image_bytes: tf.Tensor, image_size: int, crop_fraction: float = CROP_FRACTION) -> tf.Tensor:
    """Central crop (87.5% of each side), bilinear resize; float32 in [-1, 1]."""
    image = tf.image.convert_image_dtype(decode(image_bytes), tf.float32)
    image = tf.image.central_crop(image, crop_fraction)
    image = tf.image.resize(image, [image_size, image_size], method="bilinear")
    return to_unit_range(tf.clip_by_value(image, 0.0, 1.0))
