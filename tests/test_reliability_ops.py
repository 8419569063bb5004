"""Regression tests for defects found in the ops, the passes, gc.nn's training loop and the IR:
gradients of int ** float, simplification and folding that must be exact bit for bit (the sign
of zero included), accuracy in Trainer.evaluate, error lines after hash-consing, and what a new
user meets (loading an unbuilt model, float64 data, numpy functions on nodes, initializer names)."""
import inspect
import os
import re

import numpy as np
import pytest

import graphc as gc
from graphc.passes.cleanup import cse
from graphc.passes.simplify import fill_value, simplify

from gradcheck import check_grad

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASENAME = os.path.basename(__file__)


def next_line():
    return inspect.currentframe().f_back.f_lineno + 1


def same_bits(a, b):
    """Equal as stored: -0.0 and +0.0 differ (np.testing's equality does not tell them apart)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def unoptimized_and_optimized(inputs, outputs, *arrays):
    """The interpreter's results as built (the oracle) and after the pass pipeline."""
    plain = gc.function(inputs, outputs, backend="interp")
    optimized = gc.function(inputs, outputs, backend="interp", optimize=True)
    with np.errstate(all="ignore"):
        return plain(*arrays), optimized(*arrays)


# ------------------------------------------------------------ 1. the gradient of int ** float


@pytest.mark.parametrize("base_dtype", [np.int32, np.int64])
def test_gradient_of_int_base_to_a_float_power(base_dtype):
    """d/db a**b = a**b log(a) with an int a: log is taken in the result's float dtype."""
    a = np.array([1, 2, 3, 0, 5], base_dtype)
    b = np.array([0.5, 1.5, 2.0, 1.25, -0.5])          # float64 (numpy's default)
    (gb,) = check_grad(lambda x, y: x ** y, [a, b], wrt=[1])
    assert gb.dtype == np.float64


# ------------------------------------------------------------ 2. exact simplification and folding


@pytest.mark.parametrize("build", [
    lambda x: x + 0.0,
    lambda x: 0.0 + x,
    lambda x: x + 0,                                     # an int zero next to a float is +0.0
    lambda x: x + gc.broadcast_to(gc.constant(np.float32(0)), (4,)),
    lambda x: x + gc.constant(np.zeros(4, bool)),
    lambda x: gc.sum(gc.reshape(x, (4, 1)), axis=1),     # a sum starts from +0.0
    lambda x: gc.mean(gc.reshape(x, (4, 1)), axis=1, keepdims=True)[:, 0],
], ids=["x+0.0", "0.0+x", "x+int0", "x+bcast0", "x+False", "sum_size1", "mean_size1"])
def test_adding_plus_zero_keeps_negative_zero(build):
    """-0.0 + 0.0 is +0.0, so 1 / (x + 0.0) is inf at x = -0.0: the optimized graph must agree."""
    with gc.Graph():
        x = gc.placeholder((4,), name="x")
        y = 1 / build(x)
        plain, optimized = unoptimized_and_optimized([x], y, np.array([-0.0, 0.0, 2.0, -np.inf], np.float32))
    assert plain[0] == np.inf
    assert same_bits(plain, optimized)


def test_exact_zero_rules_still_fire():
    with gc.Graph():
        x = gc.placeholder((4,), name="x")
        assert simplify([x + -0.0, -0.0 + x, x - 0.0, x - 0]) == [x, x, x, x]
        e = gc.exp(x)                                    # exp, |x| and x*x are never -0.0
        assert simplify([e + 0.0, gc.abs(x) + 0, gc.square(x) - (-0.0)]) == [e, gc.abs(x), gc.square(x)]
        assert simplify([gc.sum(gc.reshape(e, (4, 1)), axis=1, keepdims=True)]) == [gc.reshape(e, (4, 1))]
        i = gc.placeholder((4,), gc.int32, name="i")    # ints have no -0.0
        assert simplify([i + 0, i - 0]) == [i, i]
        kept = x - (-0.0)                               # x + 0.0 in disguise
        assert simplify([kept]) == [kept]


def test_a_constant_of_both_zeros_is_not_a_fill():
    with gc.Graph():
        assert fill_value(gc.constant(np.array([-0.0, 0.0], np.float32))) is None
        assert fill_value(gc.constant(np.array([-0.0, -0.0], np.float32))) == 0
        x = gc.placeholder((2, 3), name="x")
        zeros = gc.broadcast_to(gc.constant(np.array([[-0.0], [0.0]], np.float32)), (2, 3))
        y = [1 / zeros, x + zeros]                      # folding and simplify both read fills
        plain, optimized = unoptimized_and_optimized([x], y, np.full((2, 3), -0.0, np.float32))
    assert plain[0][0, 0] == -np.inf and plain[0][1, 0] == np.inf
    assert all(same_bits(p, o) for p, o in zip(plain, optimized))


def test_power_is_a_function_of_the_values_not_of_their_layout():
    """numpy squares (sqrt, 1/x) for a broadcast exponent of 2 (0.5, -1) but calls pow() on an
    array of them, which can differ in the last bit (these inputs do): the reference gives the
    shortcut's answer for every layout, so x ** 2 -> x * x and folding fills are exact."""
    values = np.array([1.3657904, 1.9200355e-03, 6.4241886e-04], np.float32)
    assert not same_bits(np.power(values, np.full(3, 2, np.float32)), values * values)
    with gc.Graph():
        x = gc.placeholder((3,), name="x")
        outs = []
        for p, want in [(2, values * values), (0.5, np.sqrt(values)), (-1, 1 / values)]:
            array = gc.constant(np.full(3, p, np.float32))
            column = gc.broadcast_to(gc.constant(np.full((3, 1), p, np.float32)), (3, 2))
            scalar = gc.constant(np.float32(p))
            outs += [x ** array, x ** scalar, gc.broadcast_to(gc.constant(values), (2, 3)) ** gc.transpose(column)]
            got = gc.function([x], outs[-3:], backend="interp")(values)
            assert all(same_bits(g, np.broadcast_to(want, g.shape)) for g in got), p
        plain, optimized = unoptimized_and_optimized([x], outs, values)
    assert all(same_bits(p, o) for p, o in zip(plain, optimized))


def test_maximum_and_minimum_of_floats_keep_their_operand_order():
    """np.maximum(-0.0, 0.0) is 0.0 and np.maximum(0.0, -0.0) is -0.0: CSE must not merge them."""
    with gc.Graph():
        a = gc.placeholder((1,), name="a")
        b = gc.placeholder((1,), name="b")
        outs = [gc.maximum(a, b), gc.maximum(b, a), gc.minimum(a, b), gc.minimum(b, a)]
        assert cse(outs) == outs
        plain, optimized = unoptimized_and_optimized([a, b], outs, np.array([-0.0], np.float32),
                                                     np.array([0.0], np.float32))
    assert all(same_bits(p, o) for p, o in zip(plain, optimized))


# ------------------------------------------------------------ 3. accuracy in Trainer.evaluate


def _binary_data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return x, (x[:, 0] + 0.3 * rng.normal(size=n) > 0.5).astype(np.int64)


def _trained(layers, loss, x, y):
    with gc.Graph():
        model = gc.nn.Sequential(layers)
    _, trainer = gc.nn.fit(model, loss, gc.optim.SGD(lr=0.1), x, y, epochs=2, batch_size=8,
                           backend="interp", verbose=False)
    return trainer


@pytest.mark.parametrize("label_shape", ["(n,1)", "(n,)"])
def test_accuracy_of_a_one_logit_binary_model(label_shape):
    x, labels = _binary_data()
    if label_shape == "(n,1)":
        y, layers = labels[:, None], [gc.nn.Dense(1, seed=0)]
    else:                                                # one logit per example, shape (n,)
        y, layers = labels, [gc.nn.Dense(1, seed=0), gc.nn.Activation(lambda t: t[:, 0])]
    trainer = _trained(layers, gc.nn.bce_with_logits, x, y)
    logits = trainer.predict(x).reshape(-1)
    want = np.mean((logits > 0) == (labels == 1))
    assert 0 < want < 1
    assert trainer.evaluate(x, y)["accuracy"] == pytest.approx(want)


def test_accuracy_of_a_sigmoid_model_thresholds_probabilities_at_one_half():
    x, labels = _binary_data()
    for loss in (gc.nn.binary_crossentropy, gc.nn.mse):  # mse: the final sigmoid says "probabilities"
        y = labels[:, None].astype(np.float32)
        trainer = _trained([gc.nn.Dense(1, "sigmoid", seed=0)], loss, x, y)
        want = np.mean((trainer.predict(x)[:, 0] > 0.5) == (labels == 1))
        assert trainer.evaluate(x, y)["accuracy"] == pytest.approx(want)


def test_accuracy_of_one_hot_float64_targets():
    """float64 one-hot targets next to float32 data: fit converts them to the outputs' dtype."""
    x, labels = _binary_data(n=30)
    classes = labels + (x[:, 1] > 0)                     # three classes
    one_hot = np.eye(3)[classes]
    assert one_hot.dtype == np.float64
    trainer = _trained([gc.nn.Dense(3, seed=0)], gc.nn.softmax_cross_entropy, x, one_hot)
    want = np.mean(trainer.predict(x).argmax(axis=1) == classes)
    assert trainer.evaluate(x, one_hot)["accuracy"] == pytest.approx(want)


def test_accuracy_of_integer_labels_and_none_for_regression():
    x, labels = _binary_data(n=30)
    classes = labels + (x[:, 1] > 0)
    trainer = _trained([gc.nn.Dense(3, seed=0)], gc.nn.softmax_cross_entropy, x, classes)
    want = np.mean(trainer.predict(x).argmax(axis=1) == classes)
    assert trainer.evaluate(x, classes)["accuracy"] == pytest.approx(want)
    regression = _trained([gc.nn.Dense(1, seed=0)], gc.nn.mse, x, x[:, :1] * 2)
    assert "accuracy" not in regression.evaluate(x, x[:, :1] * 2)


# ------------------------------------------------------------ 4. error lines after hash-consing


def test_a_call_time_error_names_every_line_that_asked_for_the_node():
    with gc.Graph():
        x = gc.placeholder((None,), name="x")
        y = gc.placeholder((None,), name="y")
        first = next_line()
        x + y
        again = next_line()
        total = x + y                                    # the same node: hash-consing returns it
        f = gc.function([x, y], total)
    with pytest.raises(gc.ShapeError) as info:
        f(np.ones(2, np.float32), np.ones(3, np.float32))
    msg = str(info.value)
    assert f"built at {__file__}:{first}, also requested at {__file__}:{again})" in msg


def test_request_lines_are_kept_once_shown_briefly_and_not_added_by_passes():
    with gc.Graph():
        x = gc.placeholder((3,), name="x")
        for _ in range(2):                               # the same line twice counts once
            first = next_line()
            e = gc.exp(x)
        again = next_line()
        gc.exp(x), gc.exp(x)
        gc.exp(x)
        gc.exp(x)
        gc.exp(x)
        gc.exp(x)
        assert e.loc == (__file__, first) and [n for _, n in e.loc.also] == list(range(again, again + 5))
        text = gc.core.errors.where(e.loc)
        assert text.count(BASENAME) == 4 and text.endswith(" and 2 more)")
        y = gc.exp(x * 1)
        before = e.loc.also
        (z,) = gc.optimize([y])                          # the pass rebuilds exp(x): not a request
        assert z is e and e.loc.also == before


def test_errors_about_a_node_name_the_failing_call_as_well_as_the_node():
    with gc.Graph():
        built = next_line()
        v = gc.variable(np.zeros(2, np.float32), name="v")
        i = gc.variable(np.zeros(2, np.int32), name="i")
        loss = gc.sum(v * gc.cast(i, gc.float32))
        calls = [lambda: gc.set_value(v, np.zeros(3, np.float32)), lambda: gc.grad(loss, [i]),
                 lambda: gc.optim.SGD(lr=0.1).updates(loss, [v, i]), lambda: gc.nn.l2([i], 0.1)]
        for call in calls:
            with pytest.raises(gc.GraphError) as info:
                call()
            msg = str(info.value)
            assert f"{BASENAME}:{built}" in msg or f"{BASENAME}:{built + 1}" in msg, msg
            assert f"{BASENAME}:{call.__code__.co_firstlineno}" in msg, msg


# ------------------------------------------------------------ 5. what a new user meets


def test_load_into_a_model_that_was_never_applied_says_to_build_it(tmp_path):
    with gc.Graph():
        x = gc.placeholder((None, 3), gc.float32)
        model = gc.nn.Sequential([gc.nn.Dense(2, seed=0)])
        model(x)
    path = tmp_path / "model.npz"
    gc.nn.save(model, path)
    fresh = gc.nn.Sequential([gc.nn.Dense(2, seed=1)])
    with pytest.raises(gc.GraphError, match=r"no variables yet.*applied to an input"):
        gc.nn.load(fresh, path)
    with pytest.raises(gc.GraphError, match="no variables yet"):
        gc.nn.save(fresh, tmp_path / "empty.npz")


def test_fit_trains_float64_data_in_float32_unless_told():
    x, labels = _binary_data()
    x64 = x.astype(np.float64)
    trainer = _trained([gc.nn.Dense(1, seed=0)], gc.nn.bce_with_logits, x64, labels[:, None])
    assert trainer.x.dtype == np.float32 and all(p.dtype == np.float32 for p in trainer.model.params)
    assert trainer.predict(x64).dtype == np.float32      # predict and evaluate cast the same way
    with gc.Graph():
        model = gc.nn.Sequential([gc.nn.Dense(1, seed=0)])
    _, t64 = gc.nn.fit(model, gc.nn.bce_with_logits, gc.optim.SGD(lr=0.1), x64, labels[:, None], epochs=1,
                       backend="interp", verbose=False, dtype=gc.float64)
    assert t64.x.dtype == np.float64 and all(p.dtype == np.float64 for p in model.params)


def test_numpy_functions_on_a_node_name_the_gc_function():
    with gc.Graph():
        x = gc.placeholder((3,), name="x")
        for call, hint in [(lambda: np.exp(x), "gc.exp(x)"), (lambda: np.sum(x), "gc.sum(x)"),
                           (lambda: np.maximum(x, 0), "gc.maximum(...)"), (lambda: np.abs(x), "gc.abs(x)"),
                           (lambda: np.add.reduce(x), "gc.sum(x)"), (lambda: np.concatenate([x, x]), "gc.concatenate")]:
            with pytest.raises(gc.NumpyOnNodeError) as info:
                call()
            assert isinstance(info.value, TypeError) and isinstance(info.value, gc.GraphError)
            assert hint in str(info.value) and f"{BASENAME}:{call.__code__.co_firstlineno}" in str(info.value)
        with pytest.raises(gc.NumpyOnNodeError, match="has no sin op"):
            np.sin(x)
        a = np.ones(3, np.float32)
        with pytest.raises(gc.NumpyOnNodeError, match="cannot store a node"):
            a += x
        # numpy's operators still build nodes, as Node's reflected operators do
        assert (a * x).op.name == "multiply" and (a * x).inputs[1] is x
        assert (a < x) is (x > a) and (a @ gc.placeholder((3, 2))).op.name == "matmul"
        assert (a == x) is False and (a != x) is True     # nodes compare by identity


def test_readme_initializers_exist_and_lowercase_names_point_at_the_classes():
    readme = open(os.path.join(ROOT, "README.md")).read()
    listed = readme[readme.index("**Initializers**"):].split("layers also take")[0]
    names = re.findall(r"`(\w+)[`(]", listed)
    assert {"Zeros", "Uniform", "Normal", "GlorotUniform", "HeNormal"} <= set(names)
    for name in names:
        assert callable(getattr(gc.init, name)), name
    with pytest.raises(AttributeError, match=r"gc\.init\.Uniform\(\.\.\.\)"):
        gc.init.uniform


# ------------------------------------------------------------ 6. NumericsError


def test_numerics_error_is_a_graph_error_and_a_floating_point_error():
    assert issubclass(gc.NumericsError, gc.GraphError) and issubclass(gc.NumericsError, FloatingPointError)
    from graphc.core.errors import NumericsError
    assert NumericsError is gc.NumericsError


# ------------------------------------------------------------ fuzzer finds in cpu scalar templates
def test_sign_of_negative_zero_is_positive_zero_on_cpu():
    """numpy: sign(-0.0) is +0.0; the cpu template returned its argument (-0.0) for zeros."""
    x = gc.placeholder((4,), gc.float32, name="x")
    arr = np.array([-0.0, 0.0, -2.0, np.nan], np.float32)
    want = np.sign(arr)
    for backend in ("interp", "cpu"):
        got = gc.function([x], [gc.sign(x)], backend=backend)(arr)[0]
        assert same_bits(got, want), (backend, got)


def test_negative_literal_base_of_power_on_cpu():
    """(-2.0) ** x: Python reads the emitted -2.0 ** x as -(2.0 ** x)."""
    x = gc.placeholder((3,), gc.float64, name="x")
    arr = np.array([2.0, -4.0, 0.5], np.float64)
    with np.errstate(all="ignore"):
        want = np.float64(-2.0) ** arr
        got = gc.function([x], [gc.constant(-2.0) ** x], backend="cpu")(arr)[0]
    np.testing.assert_array_equal(got, want)


def test_folding_a_constant_int_to_a_negative_power_leaves_it_to_raise_by_name():
    """c ** c with c = [-2, 3] in int32: numpy raises; folding it at compile time raised a bare
    ValueError. It stays unfolded, and every backend raises the named GraphError when it runs."""
    c = gc.constant(np.array([-2, 3], np.int32))
    x = gc.placeholder((2,), gc.int32, name="x")
    y = x + c ** c
    for backend in ("interp", "cpu"):
        f = gc.function([x], y, backend=backend)
        with pytest.raises(gc.GraphError, match="negative integer powers"):
            f(np.zeros(2, np.int32))


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_integer_powers_wrap_like_numpy_for_any_exponent(dtype):
    """Numba's ** went through floats for large exponents (3 ** (2**63 - 1) gave -2**63)."""
    big = np.iinfo(dtype).max
    x = gc.placeholder((4,), dtype, name="x")
    e = gc.placeholder((4,), dtype, name="e")
    bases, exps = np.array([3, -4, 7, -1], dtype), np.array([big, big, 40, big - 1], dtype)
    got = gc.function([x, e], x ** e, backend="cpu")(bases, exps)
    np.testing.assert_array_equal(got, bases ** exps)


def test_reshape_of_a_none_dimension_into_a_size_no_feed_can_have_is_refused_when_built():
    x = gc.placeholder((None, 4), gc.float32, name="x")
    with pytest.raises(gc.ShapeError, match=r"a multiple of 4 elements\) into \(1, 2\)"):
        gc.reshape(x, (1, 2))
    assert gc.reshape(x, (2, 4)).shape == (2, 4)


@pytest.mark.parametrize("exponent", [np.nan, np.inf, -np.inf])
def test_a_constant_non_finite_exponent_compiles(exponent):
    """x ** nan: the cpu template asked int(nan) (is it a small integer power?) and crashed."""
    x = gc.placeholder((3,), gc.float64, name="x")
    y = x ** gc.constant(np.float64(exponent))
    arr = np.array([0.5, 2.0, -1.0])
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(gc.function([x], y, backend="cpu")(arr), arr ** exponent)
