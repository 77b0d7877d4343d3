"""nnjax.layers and nnjax.convnet's architectures: shapes, parameter counts, initialisation,
dropout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnjax import convnet, layers
from nnjax.network import num_params

KEY = jax.random.key(0)
ARCHS = {  # BOOK.md id: (architecture, parameter count)
    "6a": (convnet.network3_arch((), (100,)), 784 * 100 + 100 + 100 * 10 + 10),
    "6b": (convnet.network3_arch((20,), (100,)), 520 + 2880 * 100 + 100 + 1010),
    "6c": (convnet.network3_arch((20,), ()), 520 + 2880 * 10 + 10),
    "6f": (convnet.network3_arch((20, 40), (100,), "relu"), 520 + 20040 + 64100 + 1010),
    "6k": (convnet.network3_arch((20, 40), (1000, 1000), "relu", dropout=0.5),
           520 + 20040 + 641000 + 1001000 + 10010),
}

LAYERS = [
    (layers.Dense(7), (5,)),
    (layers.Softmax(3), (4,)),
    (layers.Conv(6, 3), (9, 8, 2)),
    (layers.Conv(4, 5, "default", 1, "lax"), (12, 12, 3)),
    (layers.MaxPool(2), (8, 6, 3)),
    (layers.Activation("relu"), (4, 4, 2)),
    (layers.Flatten(), (4, 3, 2)),
    (layers.Dropout(0.5), (10,)),
    (layers.serial(layers.Conv(3, 3), layers.MaxPool(2), layers.Activation("tanh"),
                   layers.Flatten(), layers.Dense(5)), (10, 10, 1)),
]


@pytest.mark.parametrize("layer, in_shape", LAYERS)
@pytest.mark.parametrize("key", [None, jax.random.key(1)])
def test_init_predicts_the_shape_apply_returns(layer, in_shape, key):
    out_shape, params = layer.init(KEY, in_shape)
    y = layer.apply(params, jnp.ones((3, *in_shape)), key)
    assert y.shape == (3, *out_shape)


@pytest.mark.parametrize("net_id", ARCHS)
def test_book_networks_have_the_expected_shapes_and_parameter_counts(net_id):
    arch, count = ARCHS[net_id]
    net = convnet.build(arch)
    out_shape, params = net.init(KEY, (28, 28, 1))
    assert out_shape == (10,)
    assert num_params(params) == count
    assert net.apply(params, jnp.zeros((2, 28, 28, 1))).shape == (2, 10)


def test_network3_initialisation():
    net = convnet.build(convnet.network3_arch((20, 40), (100,), "relu"))
    _, params = net.init(KEY, (28, 28, 1))
    conv1, conv2, fc, soft = params[0], params[3], params[7], params[9]
    # N(0, 1/(F·25/4))
    np.testing.assert_allclose(jnp.std(conv2["w"]), (40 * 25 / 4) ** -0.5, rtol=0.05)
    np.testing.assert_allclose(jnp.std(fc["w"]), 100**-0.5, rtol=0.05)  # N(0, 1/n_out)
    np.testing.assert_allclose(jnp.std(fc["b"]), 1.0, rtol=0.3)
    assert conv1["w"].shape == (5, 5, 1, 20) and fc["w"].shape == (100, 640)
    assert not jnp.any(soft["w"]) and not jnp.any(soft["b"])  # softmax starts at zero
    _, modern = convnet.build(convnet.network3_arch((20, 40), (100,)),
                              init="default").init(KEY, (28, 28, 1))
    # N(0, 1/n_in)
    np.testing.assert_allclose(jnp.std(modern[3]["w"]), (25 * 20) ** -0.5, rtol=0.05)
    np.testing.assert_allclose(jnp.std(modern[7]["w"]), 640**-0.5, rtol=0.05)


def test_network3_arch_places_dropout_before_fc_and_softmax():
    arch = convnet.network3_arch((20,), (1000, 1000), "relu", dropout=0.5)
    assert [s[0] for s in arch] == ["conv", "pool", "act", "flatten", "dropout", "dense", "act",
                                    "dropout", "dense", "act", "dropout", "softmax"]


def test_dropout_semantics():
    x = jnp.ones((200, 50))
    k = jax.random.key(3)
    net3, inverted = layers.Dropout(0.3, "network3"), layers.Dropout(0.3, "inverted")
    train3, train_inv = net3.apply((), x, k), inverted.apply((), x, k)
    assert set(np.unique(train3).tolist()) == {0.0, 1.0}  # the mask alone, no rescaling
    np.testing.assert_allclose(train_inv, train3 / 0.7)  # same mask, scaled up
    assert abs(float(jnp.mean(train3)) - 0.7) < 0.02
    np.testing.assert_allclose(net3.apply((), x), 0.7 * x)  # evaluation: scale by 1 − p
    np.testing.assert_allclose(inverted.apply((), x), x)


def test_serial_apply_is_deterministic_without_key_and_random_with_one():
    net = convnet.build(convnet.network3_arch((), (30,), dropout=0.5))
    _, params = net.init(KEY, (28, 28, 1))
    params = (*params[:-1], {"w": jnp.ones((10, 30)), "b": jnp.zeros(10)})  # softmax starts at zero
    x = jax.random.uniform(KEY, (4, 28, 28, 1))
    np.testing.assert_array_equal(net.apply(params, x), net.apply(params, x))
    assert not np.allclose(net.apply(params, x, jax.random.key(1)),
                           net.apply(params, x, jax.random.key(2)))


@pytest.mark.parametrize("make, in_shape, match", [
    (lambda: layers.Dense(3), (4, 4, 1), "put Flatten"),
    (lambda: layers.Conv(3), (28, 28), r"\(H, W, C\)"),
    (lambda: layers.Conv(3, 5), (4, 4, 1), "does not fit"),
    (lambda: layers.MaxPool(2), (5, 4, 1), "divisible by 2"),
])
def test_layers_reject_inputs_they_cannot_take(make, in_shape, match):
    with pytest.raises(ValueError, match=match):
        make().init(KEY, in_shape)


def test_bad_layer_options_fail_clearly():
    with pytest.raises(ValueError, match=r"dropout probability p must be a number in \[0, 1\), got "
                                         r"1.5"):
        layers.Dropout(1.5)
    with pytest.raises(ValueError, match="unknown dropout mode 'keras'"):
        layers.Dropout(0.5, "keras")
    with pytest.raises(ValueError, match="unknown conv initialiser 'large'"):
        layers.Conv(3, init_name="large")
    with pytest.raises(ValueError, match="Softmax output layer"):
        layers.Activation("softmax")
    with pytest.raises(ValueError, match="unknown layer spec"):
        convnet.build((("lstm", 3),))
    net = layers.serial(layers.Dense(3))
    with pytest.raises(ValueError, match="params holds 2 layers, the network has 1"):
        net.apply(({}, {}), jnp.ones((1, 2)))


def Gain():
    """A test-local layer y = g·x with one learnable scalar g: forward and backward rules side by
    side."""
    return layers.Layer(lambda key, in_shape: (in_shape, {"g": jnp.ones(())}),
                        lambda p, x, key: (p["g"] * x, x),
                        lambda p, x, delta: ({"g": jnp.sum(delta * x)}, p["g"] * delta), True)


def test_a_new_layer_is_one_entry_that_build_and_hand_backprop_both_use(monkeypatch):
    from nnjax import conv_backprop

    monkeypatch.setitem(layers.SPECS, "gain", lambda **options: Gain())
    arch = (("conv", 2), ("pool", 2), ("gain",), ("act", "tanh"), ("flatten",), ("dense",
                                                                                 4), ("gain",),
            ("act", "sigmoid"), ("softmax", 3))
    net = convnet.build(arch, init="default")
    _, params = net.init(KEY, (8, 8, 1))
    params = jax.tree_util.tree_map(
        lambda p: p.astype(jnp.float64) + 0.3 * jax.random.normal(KEY, p.shape, jnp.float64),
        params)
    x, y = jax.random.uniform(jax.random.key(1), (3, 8, 8, 1), jnp.float64), jnp.array([0, 2, 1])
    hand = jax.jit(conv_backprop.make_grad(arch))(params, x, y)
    auto = jax.jit(convnet.make_grad(net.apply))(params, x, y)
    assert float(jnp.abs(hand[2]["g"])) > 0
    jax.tree_util.tree_map(lambda h, a: np.testing.assert_allclose(h, a, rtol=1e-9, atol=1e-12),
                           hand, auto)
