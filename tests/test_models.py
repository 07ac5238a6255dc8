"""Exact architecture facts (counts, shapes, MACs via jax.eval_shape) and model behaviour."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inception_flax import models
from inception_flax.models.networks import HE_TRUNCATED, XAVIER
from tests.helpers import random_variables

# params collection (BatchNorm beta, no gamma), from shared/reference/inception_architectures.md.
# Key: (num_classes, aux_logits). IR-v1 with aux is this project's own count (no reference).
PARAMS = {
    "inception_v3": {
        (1000, False): 23_817_352,
        (1001, False): 23_819_401,
        (1000, True): 27_143_152,
        (1001, True): 27_145_970,
    },
    "inception_v4": {
        (1000, False): 42_648_232,
        (1001, False): 42_649_769,
        (1000, True): 46_006_800,
        (1001, True): 46_009_106,
    },
    "inception_resnet_v2": {
        (1000, False): 55_813_192,
        (1001, False): 55_814_729,
        (1000, True): 59_179_952,
        (1001, True): 59_182_258,
    },
    "inception_resnet_v1": {
        (1000, False): 22_742_808,
        (1001, False): 22_744_601,
        (1000, True): 26_084_992,
        (1001, True): 26_087_554,
    },
}
# timm-style counts (with a BatchNorm gamma), 1000 classes, no aux.
PARAMS_WITH_GAMMA = {
    "inception_v3": 23_834_568,
    "inception_v4": 42_679_816,
    "inception_resnet_v2": 55_843_464,
    "inception_resnet_v1": 22_756_328,
}
# Conv + dense multiply-accumulates at 299x299 (reference, timm-style: 5.73 / 12.28 / 13.18 / ~6.2 G).
MACS = {
    "inception_v3": (5_713_216_096, 5.73e9),
    "inception_v4": (12_253_974_624, 12.28e9),
    "inception_resnet_v2": (13_155_794_016, 13.18e9),
    "inception_resnet_v1": (6_206_361_696, 6.2e9),
}
SHAPES_299 = {  # stem, stage_a, reduction_a, stage_b, reduction_b, stage_c, features
    "inception_v3": [
        (35, 35, 192),
        (35, 35, 288),
        (17, 17, 768),
        (17, 17, 768),
        (8, 8, 1280),
        (8, 8, 2048),
        (8, 8, 2048),
    ],
    "inception_v4": [
        (35, 35, 384),
        (35, 35, 384),
        (17, 17, 1024),
        (17, 17, 1024),
        (8, 8, 1536),
        (8, 8, 1536),
        (8, 8, 1536),
    ],
    "inception_resnet_v2": [
        (35, 35, 320),
        (35, 35, 320),
        (17, 17, 1088),
        (17, 17, 1088),
        (8, 8, 2080),
        (8, 8, 2080),
        (8, 8, 1536),
    ],
    "inception_resnet_v1": [
        (35, 35, 256),
        (35, 35, 256),
        (17, 17, 896),
        (17, 17, 896),
        (8, 8, 1792),
        (8, 8, 1792),
        (8, 8, 1792),
    ],
}
RESIDUAL = ["inception_resnet_v1", "inception_resnet_v2"]


def n_params(name, **options):
    return models.count_params(models.abstract_variables(models.create(name, **options))["params"])


def test_registry_names():
    assert models.names() == ["inception_resnet_v1", "inception_resnet_v2", "inception_v3", "inception_v4"]


@pytest.mark.parametrize("name", models.names())
@pytest.mark.parametrize("num_classes", [1000, 1001])
@pytest.mark.parametrize("aux", [False, True])
def test_param_counts(name, num_classes, aux):
    # A KeyError here means a registered network has no pinned count: pin it.
    assert n_params(name, num_classes=num_classes, aux_logits=aux) == PARAMS[name][(num_classes, aux)]


@pytest.mark.parametrize("name", models.names())
def test_param_counts_with_gamma_match_timm_style(name):
    assert n_params(name, bn_scale=True) == PARAMS_WITH_GAMMA[name]


@pytest.mark.parametrize("name", RESIDUAL)
def test_plain_variant_has_identical_parameters(name):
    res = models.abstract_variables(models.create(name))
    plain = models.abstract_variables(models.create(name, residual=False, plain_bn=False))
    assert jax.tree.map(lambda a: a.shape, res) == jax.tree.map(lambda a: a.shape, plain)


@pytest.mark.parametrize("name", RESIDUAL)
def test_plain_twin_normalises_its_projections(name):
    """The default twin: every projection's bias becomes a BatchNorm offset (same trainable count)."""
    res = models.abstract_variables(models.create(name))
    plain = models.abstract_variables(models.create(name, residual=False))
    count = lambda tree: sum(a.size for a in jax.tree.leaves(tree))  # noqa: E731
    assert count(plain["params"]) == count(res["params"])
    ups = [k for k in res["params"] if k.startswith("Block")]
    assert len(ups) == {"inception_resnet_v1": 20, "inception_resnet_v2": 40}[name]
    for block in ups:
        bias = res["params"][block]["up"]["bias"]
        assert plain["params"][block]["up"]["bn"]["bias"].shape == bias.shape
        assert "bias" not in plain["params"][block]["up"]["conv"]
        assert plain["batch_stats"][block]["up"]["bn"]["mean"].shape == bias.shape
    # The moving statistics added: a mean and a variance per projected channel.
    extra = count(plain["batch_stats"]) - count(res["batch_stats"])
    assert extra == 2 * sum(res["params"][b]["up"]["bias"].size for b in ups)


@pytest.mark.parametrize("name", models.names())
def test_feature_shapes_at_299(name):
    shapes = models.feature_shapes(models.create(name), 299)
    assert list(shapes) == list(models.STAGES)
    assert [s[1:] for s in shapes.values()] == SHAPES_299[name]


@pytest.mark.parametrize("name", models.names())
def test_macs_at_299(name):
    layers = models.trace_layers(models.create(name), 299)
    macs = sum(layer.macs for layer in layers)
    assert macs == MACS[name][0]
    assert macs == pytest.approx(MACS[name][1], rel=0.01)


@pytest.mark.parametrize("name", models.names())
def test_logits_shape_and_dtype_at_299(name):
    model = models.create(name, num_classes=1001)
    variables = models.abstract_variables(model)
    out = jax.eval_shape(model.apply, variables, jax.ShapeDtypeStruct((2, 299, 299, 3), jnp.float32))
    assert out.shape == (2, 1001) and out.dtype == jnp.float32


@pytest.mark.parametrize("name", models.names())
@pytest.mark.parametrize("aux", [False, True])
def test_minimum_input_size(name, aux):
    model = models.create(name, aux_logits=aux)
    smallest = models.MIN_INPUT_SIZE_AUX if aux else models.MIN_INPUT_SIZE
    assert (smallest, aux) in ((75, False), (107, True))
    models.abstract_variables(model, smallest)  # builds
    for shape in [(1, smallest - 1, smallest - 1, 3), (1, smallest, smallest - 1, 3)]:
        with pytest.raises(ValueError, match=f"at least {smallest}x{smallest}"):
            jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct(shape, jnp.float32))


def test_rank_error():
    with pytest.raises(ValueError, match="NHWC"):
        models.create("inception_v4").init(jax.random.key(0), jnp.zeros((299, 299, 3)))


def test_unknown_model_lists_known_ones():
    with pytest.raises(ValueError, match="Unknown model 'inception_v5'.*inception_resnet_v1.*inception_v4"):
        models.create("inception_v5")


def test_unknown_option_is_refused():
    with pytest.raises(ValueError, match="has no option"):
        models.create("inception_v4", residual=False)  # only the residual networks have it
    assert "residual" in models.options("inception_resnet_v2")


def _tiny(name, **options):
    model = models.create(name, width=0.125, num_classes=7, **options)
    x = jax.random.uniform(jax.random.key(1), (2, 75, 75, 3), minval=-1, maxval=1)
    return model, random_variables(model, 75), x


@pytest.mark.parametrize("init", [HE_TRUNCATED, XAVIER], ids=["he_truncated", "xavier"])
@pytest.mark.parametrize("shape", [(3, 3, 8, 16), (1, 7, 5, 4), (64, 10)])
def test_variance_scaling_is_jaxs_initializer_and_scales_unit_noise(init, shape):
    key = jax.random.key(3)
    reference = nn.initializers.variance_scaling(init.scale, init.mode, init.distribution)(key, shape)
    np.testing.assert_array_equal(init(key, shape), reference)
    if init.distribution == "truncated_normal":
        noise = jax.random.truncated_normal(key, -2.0, 2.0, shape)
    else:
        noise = jax.random.uniform(key, shape, minval=-1.0, maxval=1.0)
    np.testing.assert_allclose(init.multiplier(shape) * noise, reference, rtol=1e-6)


def _initializers_in_use(model, image_size):
    """{module path: module} for every Conv, Dense and BatchNorm `model.init` calls, and the abstract variables."""
    modules = {}

    def record(next_fun, args, kwargs, context):
        if context.method_name == "__call__" and isinstance(context.module, nn.Conv | nn.Dense | nn.BatchNorm):
            modules[tuple(context.module.path)] = context.module
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        abstract = models.abstract_variables(model, image_size)
    return modules, abstract


@pytest.mark.parametrize("name", models.names())
def test_init_variables_draws_what_each_module_would(name):
    model = models.create(name, width=0.25, num_classes=7, aux_logits=True, bn_scale=True)
    modules, abstract = _initializers_in_use(model, 107)
    variables = models.init_variables(model, jax.random.key(0), 107)
    assert jax.tree.structure(variables) == jax.tree.structure(abstract)
    probe = jax.random.key(9)
    for path, leaf in jax.tree_util.tree_leaves_with_path(variables):
        collection, *where, var = (p.key for p in path)
        assert leaf.dtype == np.float32
        module = modules[tuple(where)]
        rule = models.initializer(model, collection, (*where, var), leaf.ndim)
        if collection == "batch_stats":  # flax's BatchNorm starts at mean 0, variance 1
            assert rule == (1.0 if var == "var" else 0.0)
        elif var == "kernel":
            assert rule == module.kernel_init, f"{path}: {rule} is not the module's {module.kernel_init}"
        else:
            own = module.bias_init if var == "bias" else module.scale_init
            np.testing.assert_array_equal(own(probe, (3,), jnp.float32), rule)
        if isinstance(rule, float):
            np.testing.assert_array_equal(leaf, rule)
            continue
        unit = leaf / rule.multiplier(leaf.shape)
        bound, std = (2.0, 0.8796) if rule.distribution == "truncated_normal" else (1.0, 1 / np.sqrt(3))
        assert np.abs(unit).max() <= bound + 1e-5
        if leaf.size >= 2000:
            assert abs(unit.std() / std - 1) < 0.1, (path, unit.std())


def test_init_variables_depend_on_the_key_only():
    model = models.create("inception_resnet_v2", width=0.125, num_classes=5)
    a, b = (models.init_variables(model, jax.random.key(k), 75) for k in (0, 0))
    c = models.init_variables(model, jax.random.key(1), 75)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    given = models.init_variables(model, jax.random.key(0), 75, models.abstract_variables(model, 75))
    jax.tree.map(np.testing.assert_array_equal, a, given)
    kernels_differ = jax.tree.map(lambda x, y: bool(np.any(x != y)), a["params"], c["params"])
    flat = jax.tree_util.tree_leaves_with_path(kernels_differ)
    assert all(differ == (path[-1].key == "kernel") for path, differ in flat)


@pytest.mark.parametrize("name", models.names())
def test_narrow_network_runs_inference_and_training(name):
    model, variables, x = _tiny(name)
    logits = jax.jit(model.apply)(variables, x)
    assert logits.shape == (2, 7) and bool(jnp.all(jnp.isfinite(logits)))
    train = jax.jit(lambda v, x, k: model.apply(v, x, train=True, rngs={"dropout": k}, mutable=["batch_stats"]))
    logits_train, updates = train(variables, x, jax.random.key(2))
    assert logits_train.shape == (2, 7)
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), variables["batch_stats"], updates["batch_stats"])
    assert all(jax.tree.leaves(changed)), "train=True must update every BatchNorm's moving statistics"


def test_width_scales_channels():
    shapes = models.feature_shapes(models.create("inception_v4", width=0.5), 299)
    assert shapes["stem"] == (1, 35, 35, 192) and shapes["features"] == (1, 8, 8, 768)


def test_aux_head_returned_only_in_training():
    model = models.create("inception_v3", aux_logits=True, width=0.125, num_classes=5)
    x = jnp.zeros((2, 107, 107, 3))
    variables = random_variables(model, 107)
    assert "AuxLogits" in variables["params"]
    assert jax.eval_shape(model.apply, variables, x).shape == (2, 5)
    train = jax.jit(
        lambda v, x: model.apply(v, x, train=True, rngs={"dropout": jax.random.key(0)}, mutable=["batch_stats"])
    )
    (logits, aux), _ = train(variables, x)
    assert logits.shape == aux.shape == (2, 5)


def test_dropout_needs_rng_and_is_off_in_eval():
    model, variables, x = _tiny("inception_v4", dropout_rate=0.5)
    apply = jax.jit(model.apply, static_argnames="train")
    np.testing.assert_array_equal(apply(variables, x), apply(variables, x))
    train = jax.jit(lambda k: model.apply(variables, x, train=True, rngs={"dropout": k}, mutable=["batch_stats"])[0])
    assert not np.allclose(train(jax.random.key(0)), train(jax.random.key(1)))


def test_bfloat16_compute_with_float32_params():
    model, variables, x = _tiny("inception_resnet_v2", dtype=jnp.bfloat16)
    assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
    logits, state = jax.jit(lambda v, x: model.apply(v, x, mutable=["intermediates"]))(variables, x)
    assert logits.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(logits)))
    assert state["intermediates"]["stage_b"][0].dtype == jnp.bfloat16
    ref = jax.jit(models.create("inception_resnet_v2", width=0.125, num_classes=7).apply)(variables, x)
    np.testing.assert_allclose(logits, ref, rtol=0.1, atol=0.1 * float(jnp.abs(ref).max()))


@pytest.mark.parametrize("name", RESIDUAL)
def test_residual_flag_changes_the_function(name):
    model, variables, x = _tiny(name)
    plain = models.create(name, width=0.125, num_classes=7, residual=False, plain_bn=False)
    assert not np.allclose(model.apply(variables, x), plain.apply(variables, x))


def test_faithful_twin_differs_from_the_residual_block_by_the_shortcut_only():
    from inception_flax.models import blocks
    from inception_flax.models.layers import ConvBN

    norm = functools.partial(nn.BatchNorm, use_running_average=True)
    conv = functools.partial(ConvBN, conv=nn.Conv, norm=norm, width=0.25)
    up = functools.partial(nn.Conv, use_bias=True)
    x = jax.random.normal(jax.random.key(0), (2, 9, 9, 40))
    residual = blocks.InceptionResNetA(conv, up, 0.17, activate=False)
    variables = residual.init(jax.random.key(1), x)
    twin = blocks.InceptionResNetA(conv, up, 0.17, activate=False, residual=False)
    np.testing.assert_allclose(residual.apply(variables, x) - twin.apply(variables, x), x, atol=1e-5)


def test_only_the_faithful_twin_keeps_the_scales():
    def outputs(**options):
        model, variables, x = _tiny("inception_resnet_v1", residual=False, **options)
        scaled = models.create(
            "inception_resnet_v1", width=0.125, num_classes=7, residual=False, scale_c=1.0, **options
        )
        return model.apply(variables, x), scaled.apply(variables, x)

    assert not np.allclose(*outputs(plain_bn=False))
    np.testing.assert_array_equal(*outputs(plain_bn=True))  # BatchNorm sets the projection's scale


def test_residual_scales_are_used():
    model, variables, x = _tiny("inception_resnet_v1")
    other = models.create("inception_resnet_v1", width=0.125, num_classes=7, scale_a=1.0, scale_b=1.0, scale_c=1.0)
    assert not np.allclose(model.apply(variables, x), other.apply(variables, x))


def test_bn_scale_adds_gamma():
    _, variables, _ = _tiny("inception_v3", bn_scale=True)
    assert "scale" in variables["params"]["Stem"]["Conv2d_1a_3x3"]["bn"]


def test_pool_include_pad_only_changes_borders():
    model, variables, x = _tiny("inception_v3")
    timm_like = models.create("inception_v3", width=0.125, num_classes=7, pool_include_pad=True)
    assert not np.allclose(model.apply(variables, x), timm_like.apply(variables, x))


@pytest.mark.parametrize("kernel", [(1, 1), (3, 3), (1, 7)])
@pytest.mark.parametrize("bias", [False, True])
def test_conv_matches_flax_conv(kernel, bias):
    # layers.Conv computes 1x1 layers as a product over channels (XLA CPU backward without transposes).
    from inception_flax.models.layers import Conv

    x = jax.random.normal(jax.random.key(0), (2, 9, 9, 5))
    ours, ref = Conv(7, kernel, use_bias=bias), nn.Conv(7, kernel, use_bias=bias)
    variables = ref.init(jax.random.key(1), x)
    assert jax.tree.map(jnp.shape, ours.init(jax.random.key(1), x)) == jax.tree.map(jnp.shape, variables)
    np.testing.assert_allclose(ours.apply(variables, x), ref.apply(variables, x), rtol=1e-5, atol=1e-5)
    grad = jax.grad(lambda v, m: jnp.sum(m.apply(v, x) ** 2))
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), grad(variables, ours), grad(variables, ref)
    )


def test_remat_keeps_parameters_and_recomputes_blocks():
    plain, remat = (models.create("inception_resnet_v1", width=0.125, remat=r) for r in (False, True))
    shapes = [jax.tree.map(lambda a: a.shape, models.abstract_variables(m, 75)) for m in (plain, remat)]
    assert shapes[0] == shapes[1]
    variables = models.abstract_variables(plain, 75)
    x = jnp.zeros((2, 75, 75, 3))

    def loss(params, stats, model):
        rngs = {"dropout": jax.random.key(0)}
        out, _ = model.apply(
            {"params": params, "batch_stats": stats}, x, train=True, rngs=rngs, mutable=["batch_stats"]
        )
        return jnp.sum(out)

    def remat_calls(model):  # traced only, never compiled
        grad = jax.grad(loss)
        jaxpr = jax.make_jaxpr(grad, static_argnums=2)(variables["params"], variables["batch_stats"], model)
        return str(jaxpr).count("remat") + str(jaxpr).count("checkpoint")

    assert remat_calls(plain) == 0 and remat_calls(remat) >= 23  # every block: stem, 5 + 10 + 5, 2 reductions
