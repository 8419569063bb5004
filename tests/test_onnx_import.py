"""gc.onnx: real CNN architectures against onnxruntime, opset differences, errors, and what an
imported graph can be used for (gc.grad on variables, gc.to_dot)."""
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import graphc as gc  # noqa: E402
from graphc.core.errors import DTypeError  # noqa: E402

import onnx_models  # noqa: E402


def onnxruntime_outputs(model, feeds):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


@pytest.fixture(scope="module", params=sorted(onnx_models.ARCHITECTURES))
def architecture(request):
    model = onnx_models.ARCHITECTURES[request.param](32)
    x = np.random.default_rng(7).standard_normal((1, 3, 32, 32)).astype(np.float32)
    return request.param, model, x, onnxruntime_outputs(model, {"input": x})[0]


@pytest.mark.parametrize("backend", ["interp", "cpu"])
def test_architecture_matches_onnxruntime(architecture, backend):
    name, model, x, expected = architecture
    (got,) = gc.onnx.load(model, backend=backend)(x)
    assert got.shape == expected.shape and got.dtype == np.float32
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max(), name


def test_a_batch_of_two_and_a_file_path(tmp_path):
    model = onnx_models.resnet(16, batch=2)
    path = tmp_path / "resnet.onnx"
    onnx.save(model, str(path))
    x = np.random.default_rng(1).standard_normal((2, 3, 16, 16)).astype(np.float32)
    (got,) = gc.onnx.load(str(path), backend="interp")(input=x)      # by the model's input name
    expected = onnxruntime_outputs(model, {"input": x})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)

# ---------------------------------------------------------------- small models by hand


def single(op_type, inputs, outputs, opset, inits=(), **attrs):
    """A one-node model; inputs and outputs are (name, elem_type, shape)."""
    node = helper.make_node(op_type, [i[0] for i in inputs] + [i.name for i in inits],
                            [o[0] for o in outputs], name="the_node", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(*i) for i in inputs],
                              [helper.make_tensor_value_info(*o) for o in outputs], list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


F = TensorProto.FLOAT


def check_against_onnxruntime(model, *xs):
    names = [i.name for i in model.graph.input]
    expected = onnxruntime_outputs(model, dict(zip(names, xs)))
    got = gc.onnx.load(model, backend="interp")(*xs)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_softmax_before_opset_13_normalizes_the_flattened_rows():
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    for opset in (11, 13):
        check_against_onnxruntime(single("Softmax", [("x", F, [2, 3, 4])], [("y", F, [2, 3, 4])], opset, axis=1), x)


def test_axes_as_attribute_before_opset_13_and_as_input_from_it():
    x = np.ones((3, 4), np.float32)
    old = single("Unsqueeze", [("x", F, [3, 4])], [("y", F, [3, 1, 4, 1])], 11, axes=[1, -1])
    axes = numpy_helper.from_array(np.array([1, -1], np.int64), "axes")
    new = single("Unsqueeze", [("x", F, [3, 4])], [("y", F, [3, 1, 4, 1])], 13, inits=[axes])
    for m in (old, new):
        (y,) = gc.onnx.load(m, backend="interp")(x)
        assert y.shape == (3, 1, 4, 1)
    sums = numpy_helper.from_array(np.array([0], np.int64), "axes")
    check_against_onnxruntime(single("ReduceSum", [("x", F, [3, 4])], [("y", F, [1, 4])], 13, inits=[sums]),
                              np.arange(12, dtype=np.float32).reshape(3, 4))


def test_clip_pad_split_across_opsets():
    x = np.random.default_rng(2).standard_normal((2, 6)).astype(np.float32)
    check_against_onnxruntime(single("Clip", [("x", F, [2, 6])], [("y", F, [2, 6])], 6, min=-0.5, max=0.5), x)
    lo, hi = (numpy_helper.from_array(np.array(v, np.float32), n) for v, n in ((-0.5, "lo"), (0.5, "hi")))
    check_against_onnxruntime(single("Clip", [("x", F, [2, 6])], [("y", F, [2, 6])], 12, inits=[lo, hi]), x)
    check_against_onnxruntime(single("Pad", [("x", F, [2, 6])], [("y", F, [3, 9])], 2, pads=[0, 1, 1, 2],
                                     value=1.5), x)
    pads = numpy_helper.from_array(np.array([0, 1, 1, 2], np.int64), "pads")
    check_against_onnxruntime(single("Pad", [("x", F, [2, 6])], [("y", F, [3, 9])], 13, inits=[pads],
                                     mode="reflect"), x)
    outs = [("a", F, [2, 2]), ("b", F, [2, 4])]
    check_against_onnxruntime(single("Split", [("x", F, [2, 6])], outs, 11, axis=1, split=[2, 4]), x)
    sizes = numpy_helper.from_array(np.array([2, 4], np.int64), "sizes")
    check_against_onnxruntime(single("Split", [("x", F, [2, 6])], outs, 13, inits=[sizes], axis=1), x)
    three = [("a", F, [2, 2]), ("b", F, [2, 2]), ("c", F, [2, 2])]
    check_against_onnxruntime(single("Split", [("x", F, [2, 6])], three, 18, axis=1, num_outputs=3), x)


def flatten_by_shape(batch_dim):
    """x -> Reshape(x, Concat(Gather(Shape(x), 0), [-1])): the shape arithmetic of exporters."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
             helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["y"]), helper.make_node("Relu", ["y"], ["r"])]
    inits = [numpy_helper.from_array(np.array(v, np.int64), n)
             for v, n in ((0, "zero"), ([0], "axes"), ([-1], "minus1"))]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, [batch_dim, 2, 3])],
                              [helper.make_tensor_value_info("r", F, [batch_dim, 6])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_shapes_are_computed_at_import_and_symbolic_sizes_can_be_given():
    x = np.random.default_rng(3).standard_normal((4, 2, 3)).astype(np.float32)
    imported = gc.onnx.import_graph(flatten_by_shape(4))
    assert {n.op.name for n in imported.graph.nodes} >= {"reshape", "relu"}
    assert not any(n.op.name in ("getitem", "concatenate") for n in imported.graph.nodes)   # folded
    with pytest.raises(gc.onnx.OnnxImportError, match=r"Shape node .*shapes=\{input name: shape\}"):
        gc.onnx.load(flatten_by_shape("batch"), backend="interp")
    (y,) = gc.onnx.load(flatten_by_shape("batch"), backend="interp", shapes={"x": (4, 2, 3)})(x)
    np.testing.assert_array_equal(y, np.maximum(x.reshape(4, 6), 0))


def test_variables_are_trainable_and_the_graph_draws():
    model = onnx_models.squeezenet(16)
    imported = gc.onnx.import_graph(model, weights="variables")
    assert imported.variables and all(v.op.name == "variable" for v in imported.variables)
    with imported.graph:
        (probs,) = imported.outputs
        loss = gc.sum(gc.log(probs[:, 0]))
        grads = gc.grad(loss, imported.variables[:2])
        fn = gc.function(imported.inputs, [loss] + grads)
    x = np.random.default_rng(4).standard_normal((1, 3, 16, 16)).astype(np.float32)
    out = fn(x)
    assert out[1].shape == gc.get_value(imported.variables[0]).shape and np.isfinite(out[1]).all()
    dot = gc.to_dot(imported.graph)
    assert dot.startswith("digraph") and "conv2d" in dot

# ---------------------------------------------------------------- errors


def test_an_unsupported_op_is_named_with_its_node_opset_and_the_supported_list():
    m = single("Det", [("x", F, [2])], [("y", F, [2])], 13)
    with pytest.raises(gc.onnx.OnnxImportError, match=r"ONNX op Det \(node 'the_node', opset 13\) is not "
                                                      r"supported.*supported ops: Abs, Add"):
        gc.onnx.load(m, backend="interp")


def test_unsupported_attributes_say_why():
    m = single("Conv", [("x", F, [1, 1, 4, 4, 4]), ("w", F, [1, 1, 2, 2, 2])], [("y", F, [1, 1, 3, 3, 3])], 13)
    with pytest.raises(gc.onnx.OnnxImportError, match=r"Conv node 'the_node' \(opset 13\).*rank-5"):
        gc.onnx.load(m, backend="interp")


def test_an_unsupported_dtype_is_named():
    m = single("Relu", [("x", TensorProto.FLOAT16, [2])], [("y", TensorProto.FLOAT16, [2])], 13)
    with pytest.raises(DTypeError, match=r"graph input 'x' has element type float16.*supported: float, double"):
        gc.onnx.load(m, backend="interp")


def test_a_truncated_or_foreign_file_is_a_clear_error(tmp_path):
    data = onnx_models.vgg(16).SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(gc.onnx.OnnxImportError, match=r"cannot read an ONNX model from .*cut.onnx|not a valid ONNX"):
        gc.onnx.load(str(path))
    bad = single("Relu", [("x", F, [2])], [("y", F, [2])], 13)
    bad.graph.node[0].input[0] = "nowhere"
    with pytest.raises(gc.onnx.OnnxImportError, match=r"not a valid ONNX model \(onnx.checker\)"):
        gc.onnx.load(bad)


def test_import_graphc_does_not_import_onnx_and_a_missing_onnx_names_the_extra():
    code = ("import sys, graphc; assert 'onnx' not in sys.modules; sys.modules['onnx'] = None\n"
            "try:\n    graphc.onnx\nexcept ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'graphc[onnx]'" in out


def test_bench_onnx_checks_then_times(tmp_path, capsys):
    from graphc.tools.cli import main
    path = tmp_path / "vgg.onnx"
    onnx.save(onnx_models.vgg(16), str(path))
    assert main(["bench", "onnx", str(path), "--reps", "2", "--keep-env"]) == 0
    out = capsys.readouterr().out
    assert "graphc cpu" in out and "onnxruntime (2 threads)" in out and "graphc / onnxruntime:" in out


@pytest.mark.parametrize("name", [n for n in onnx_models.LIGHT if n not in ("vgg19", "zfnet512", "bvlc_alexnet")])
def test_the_real_light_models_import(name):
    """The onnx package's real architectures (ResNet-50, Inception v1/v2, DenseNet-121, SqueezeNet,
    ShuffleNet; VGG-19, AlexNet and ZFNet too, but their 100M+ random weights take long to make):
    every op converts, the output has the model's shape."""
    imported = gc.onnx.import_graph(onnx_models.light_model(name))
    assert len(imported.outputs) == 1 and imported.outputs[0].shape[:2] == (1, 1000)


@pytest.mark.parametrize("name, backend", [("squeezenet", "interp"), ("shufflenet", "interp"),
                                           ("shufflenet", "cpu")])
def test_real_models_with_random_weights_match_onnxruntime(name, backend):
    model = onnx_models.light_model(name)
    x = np.random.default_rng(5).standard_normal((1, 3, 224, 224)).astype(np.float32)
    inits = {i.name for i in model.graph.initializer}
    (data,) = [i.name for i in model.graph.input if i.name not in inits]
    expected = onnxruntime_outputs(model, {data: x})[0]
    (got,) = gc.onnx.load(model, backend=backend)(x)
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()


@pytest.mark.parametrize("backend", ["interp", "cpu"])
def test_nearest_resize_2x_and_by_sizes(backend):
    x = np.random.default_rng(6).standard_normal((1, 2, 3, 5)).astype(np.float32)
    roi = numpy_helper.from_array(np.zeros(0, np.float32), "roi")
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    sizes = numpy_helper.from_array(np.array([1, 2, 7, 4], np.int64), "sizes")
    twice = single("Resize", [("x", F, [1, 2, 3, 5])], [("y", F, [1, 2, 6, 10])], 13, inits=[roi, scales],
                   mode="nearest")
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="nearest",
                            coordinate_transformation_mode="asymmetric", nearest_mode="round_prefer_ceil")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", F, [1, 2, 3, 5])],
                              [helper.make_tensor_value_info("y", F, [1, 2, 7, 4])], [sizes])
    odd = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    for model in (twice, odd):
        (got,) = gc.onnx.load(model, backend=backend)(x)
        np.testing.assert_array_equal(got, onnxruntime_outputs(model, {"x": x})[0])
