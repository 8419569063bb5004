"""ONNX's own backend test suite (onnx.backend.test) run through gc.onnx.

Every node test of the ops in INCLUDE runs on the interpreter (fast, the whole set), and a
subset of the network ops (CPU_INCLUDE) also compiles on the "cpu" backend. The expected
failures are listed in XFAIL with the reason for each; they are real expectedFailures: a test
there that starts to pass fails the run, so the list stays exact. Node tests are generated in
memory by the onnx package; loading them is the slow part (~15 s), shared by both runners.
"""
import re

import pytest

pytest.importorskip("onnx")
import onnx.backend.test.runner as runner  # noqa: E402

from graphc.onnx.backend import GraphcBackend, GraphcCpuBackend  # noqa: E402

# The ONNX ops the importer maps (by the stem of their test names: test_<stem>_..._cpu).
NODE_STEMS = """abs add and argmax argmin averagepool basic_conv batchnorm cast castlike celu clip
concat constant constantofshape conv_with depthtospace div dropout elu equal erf exp expand eyelike
flatten gather gelu gemm globalaveragepool globalmaxpool greater greater_equal hardmax hardsigmoid
hardswish identity instancenorm layer_normalization leakyrelu less less_equal log logsoftmax
lpnormalization lrn matmul max maxpool mean min mish mul mvn neg not onehot or prelu pow range
reciprocal reduce_l1 reduce_l2 reduce_log_sum reduce_log_sum_exp reduce_max reduce_mean reduce_min
reduce_prod reduce_sum reduce_sum_square relu reshape selu shape sigmoid sign size shrink slice
softmax softplus softsign spacetodepth split sqrt squeeze sub sum swish tanh thresholdedrelu tile
transpose tril triu unsqueeze where xor convtranspose constant_pad edge_pad reflect_pad wrap_pad
training_dropout resize upsample floor ceil round mod isnan isinf""".split()
# the pytorch-converted, pytorch-operator and simple model tests made of those ops
MODEL_STEMS = """AvgPool BatchNorm ConstantPad2d Conv ConvTranspose ELU Embedding GLU LeakyReLU
Linear LogSoftmax MaxPool PReLU PixelShuffle PoissonNLLLLoss_no_reduce ReLU ReflectionPad2d
ReplicationPad2d SELU Sigmoid Softmax Softmin Softplus Softsign Tanh ZeroPad2d log_softmax
softmax_functional softmax_lastdim expand_shape_model sign_model single_relu_model operator_add
operator_basic operator_chunk operator_clip operator_concat2 operator_conv operator_exp
operator_flatten operator_index operator_max operator_maxpool operator_min operator_mm
operator_non_float_params operator_pad operator_params operator_permute2 operator_pow
operator_reduced operator_repeat operator_selu operator_sqrt operator_symbolic_override
operator_view""".split()
INCLUDE = [r"^test_(%s)(?![a-z])" % "|".join(NODE_STEMS), r"^test_(%s)(?![a-z])" % "|".join(MODEL_STEMS)]

# Tests a stem matches that exercise other ops (skipped, not failures of the ops above).
EXCLUDE = [
    r"^test_gather_elements",          # GatherElements, another op
    r"^test_split_to_sequence",        # SplitToSequence: sequences
    r"^test_range_.*_expanded",        # the expansion is a Loop
]

# Expected failures, each with its reason.
XFAIL = [
    # element types graphc has no dtype for (graphc: float32/64, int32/64, bool); the importer
    # names the type in its error (a test name says which types it uses)
    r"^test_\w*?(u?int(2|4|8|16)|uint32|uint64|b?float16|float8e\w*|float4e2m1|"
    r"U?INT(2|4|8|16)|UINT32|UINT64|B?FLOAT16|FLOAT8E\w*|FLOAT4E2M1|STRING)",
    r"^test_equal_string", r"^test_identity_(sequence|opt)",     # strings, sequences, optionals
    # 3-D convolution and pooling: graphc's conv and pools are 1-D/2-D
    r"^test_Conv3d", r"^test_(AvgPool|MaxPool)3d", r"^test_(average|max)pool_3d", r"^test_convtranspose_3d",
    # AveragePool with dilations (graphc's pools have none; a dilated MaxPool is composed of
    # strided slices), MaxPool's Indices output
    r"^test_averagepool_2d_dilations",
    r"^test_maxpool_with_argmax",
    # average pool with count_include_pad=0 and pads wider than half the kernel
    r"^test_averagepool_2d_pads_cpu",
    # training-mode BatchNormalization and Dropout (the importer is for inference)
    r"^test_batchnorm_\w*training_mode", r"^test_training_dropout(_default|_mask|_default_mask)?_cpu",
    r"^test_training_dropout_zero_ratio(_mask)?_cpu",
    # Resize and Upsample: graphc imports mode "nearest" (a static gather); linear and cubic
    # interpolation, crop-and-resize and the aspect-ratio policies are not imported
    r"^test_resize_\w*(cubic|linear|tf_crop_and_resize|not_larger|not_smaller)",
    # ReduceMax/Min/LogSumExp over an empty axis (the identity -inf/inf is not built)
    r"^test_reduce_(max|min|log_sum_exp)_empty_set(_bool)?_cpu",
]

# The cpu backend compiles every model (~1-2 s each on this shared 2-core machine, cold): a
# subset covering each network op family, 1-D and 2-D, grouped/depthwise/dilated/transposed conv.
CPU_NODE = """
    basic_conv_with_padding conv_with_strides_padding convtranspose convtranspose_pads
    convtranspose_group_2 averagepool_2d_pads_count_include_pad averagepool_2d_ceil
    maxpool_2d_pads maxpool_2d_ceil maxpool_2d_dilations batchnorm_epsilon gemm_all_attributes
    matmul_4d softmax_axis_1 logsoftmax_axis_1 lrn globalaveragepool flatten_axis1
    transpose_all_permutations_3 edge_pad reduce_mean_keepdims_example gather_0 prelu_broadcast
    erf gelu_default_1 layer_normalization_2d_axis0 instancenorm_example""".split()
CPU_MODEL = """
    Conv2d_groups Conv2d_depthwise_strided Conv1d_dilated ConvTranspose2d
    MaxPool1d_stride_padding_dilation AvgPool2d_stride BatchNorm1d_3d_input_eval Linear
    PixelShuffle""".split()
CPU_INCLUDE = [r"^test_(%s)_cpu$" % "|".join(CPU_NODE + CPU_MODEL)]


def cached_loading():
    """Both runners read the (slow to generate) node tests once."""
    cache, load = {}, runner.load_model_tests

    def loader(kind=None, **kwargs):
        if kind not in cache:
            cache[kind] = load(kind=kind, **kwargs)
        return cache[kind]
    return loader


def build(backend, include, names):
    bt = runner.Runner(backend, __name__)
    for pattern in include:
        bt.include(pattern)
    for pattern in EXCLUDE:
        bt.exclude(pattern)
    for pattern in XFAIL:
        bt.xfail(pattern)
    wanted = [re.compile(p) for p in include]
    for name, case in bt.test_cases.items():
        for test in [n for n in dir(case) if n.startswith("test_")]:
            if test.endswith("_cuda") or not any(p.search(test) for p in wanted):
                delattr(case, test)      # not one of ours: left out, not counted as skipped
        names[name] = case


runner.load_model_tests, _original = cached_loading(), runner.load_model_tests
try:
    _interp, _cpu = {}, {}
    build(GraphcBackend, INCLUDE, _interp)
    build(GraphcCpuBackend, CPU_INCLUDE, _cpu)
finally:
    runner.load_model_tests = _original
globals().update(_interp)
globals().update({"Cpu" + name: case for name, case in _cpu.items()})


def test_the_include_list_names_only_converted_ops():
    """Every stem is a real test family (a typo would silently include nothing)."""
    names = [n for case in _interp.values() for n in dir(case) if n.startswith("test_")]
    for stem in NODE_STEMS + MODEL_STEMS:
        assert any(re.match(r"^test_%s(?![a-z])" % stem, n) for n in names), stem
