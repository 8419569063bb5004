"""Small but real CNN architectures written as ONNX models with onnx.helper (random weights),
for checking gc.onnx against onnxruntime: ResNet (residual blocks with BatchNorm), an
Inception block (with LRN), SqueezeNet fire modules, a DenseNet block, ShuffleNet units
(grouped convs, channel shuffle by Reshape/Transpose) and VGG/AlexNet-style stacks.

Each builder takes the input size and returns a ModelProto; nothing is stored on disk.
"""
import numpy as np
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class Net:
    """Collects nodes and initializers; each layer method returns its output's name."""

    def __init__(self, channels, size, seed=0, batch=1):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.k = [], [], 0
        self.input = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, channels, size, size])

    def name(self, kind):
        self.k += 1
        return f"{kind}_{self.k}"

    def weight(self, value, kind="w"):
        n = self.name(kind)
        self.inits.append(numpy_helper.from_array(np.asarray(value), n))
        return n

    def op(self, op_type, inputs, **attrs):
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x, cin, cout, k, stride=1, pad=None, group=1, bias=True, dilation=1):
        pad = (k // 2) * dilation if pad is None else pad
        w = self.rng.standard_normal((cout, cin // group, k, k)).astype(np.float32)
        w *= np.sqrt(2.0 / (cin // group * k * k))
        ins = [x, self.weight(w)]
        if bias:
            ins.append(self.weight(0.1 * self.rng.standard_normal(cout).astype(np.float32), "b"))
        return self.op("Conv", ins, kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4,
                       group=group, dilations=[dilation, dilation])

    def bn(self, x, c):
        r = self.rng
        params = [1 + 0.1 * r.standard_normal(c), 0.1 * r.standard_normal(c), 0.1 * r.standard_normal(c),
                  0.5 + r.random(c)]
        return self.op("BatchNormalization", [x] + [self.weight(p.astype(np.float32), "bn") for p in params],
                       epsilon=1e-5)

    def relu(self, x):
        return self.op("Relu", [x])

    def cbr(self, x, cin, cout, k, stride=1, group=1):
        return self.relu(self.bn(self.conv(x, cin, cout, k, stride, group=group, bias=False), cout))

    def maxpool(self, x, k=3, stride=2, pad=1, ceil=0):
        return self.op("MaxPool", [x], kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4, ceil_mode=ceil)

    def avgpool(self, x, k=2, stride=2, pad=0, include=0):
        return self.op("AveragePool", [x], kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4,
                       count_include_pad=include)

    def head(self, x, c, classes=10):
        """Global average pool, flatten, a dense layer: the logits."""
        x = self.op("Flatten", [self.op("GlobalAveragePool", [x])], axis=1)
        return self.gemm(x, c, classes)

    def gemm(self, x, cin, cout):
        w = (self.rng.standard_normal((cout, cin)) / np.sqrt(cin)).astype(np.float32)
        b = (0.1 * self.rng.standard_normal(cout)).astype(np.float32)
        return self.op("Gemm", [x, self.weight(w), self.weight(b, "b")], transB=1)

    def const(self, values):
        return self.weight(np.asarray(values, np.int64), "shape")

    def model(self, out):
        y = helper.make_tensor_value_info(out, TensorProto.FLOAT, [None, None])     # logits
        graph = helper.make_graph(self.nodes, "net", [self.input], [y], self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def resnet(size=32, width=8, blocks=(1, 1, 1), batch=1):
    """ResNet with basic blocks: conv-BN-ReLU x2 plus the identity or a 1x1 strided projection."""
    net = Net(3, size, seed=1, batch=batch)
    x = net.maxpool(net.cbr(net.input.name, 3, width, 7, stride=2))
    c = width
    for stage, n in enumerate(blocks):
        for i in range(n):
            stride = 2 if stage and not i else 1
            cout = width * 2 ** stage
            y = net.bn(net.conv(net.cbr(x, c, cout, 3, stride), cout, cout, 3, bias=False), cout)
            short = x if stride == 1 and c == cout else net.bn(net.conv(x, c, cout, 1, stride, bias=False), cout)
            x, c = net.relu(net.op("Add", [y, short])), cout
    return net.model(net.head(x, c))


def inception(size=32, batch=1):
    """A GoogLeNet stem (with LRN) and two Inception blocks: 1x1, 1x1-3x3, 1x1-5x5, pool-1x1."""
    net = Net(3, size, seed=2, batch=batch)
    x = net.maxpool(net.relu(net.conv(net.input.name, 3, 16, 7, stride=2)))
    x = net.op("LRN", [x], size=5, alpha=1e-4, beta=0.75, bias=1.0)
    c = 16
    for b1, b3r, b3, b5r, b5, bp in ((8, 8, 12, 4, 4, 4), (12, 8, 16, 4, 8, 8)):
        branches = [net.relu(net.conv(x, c, b1, 1)),
                    net.relu(net.conv(net.relu(net.conv(x, c, b3r, 1)), b3r, b3, 3)),
                    net.relu(net.conv(net.relu(net.conv(x, c, b5r, 1)), b5r, b5, 5)),
                    net.relu(net.conv(net.maxpool(x, 3, 1, 1), c, bp, 1))]
        x, c = net.op("Concat", branches, axis=1), b1 + b3 + b5 + bp
    x = net.op("Dropout", [net.avgpool(x, 2, 2)])
    return net.model(net.head(x, c))


def squeezenet(size=32, batch=1):
    """SqueezeNet 1.1: fire modules (squeeze 1x1, expand 1x1 and 3x3, concatenated), ceil-mode
    pools, a 1x1 classifier conv averaged globally, then softmax."""
    net = Net(3, size, seed=3, batch=batch)
    x = net.maxpool(net.relu(net.conv(net.input.name, 3, 16, 3, stride=2, pad=0)), 3, 2, 0, ceil=1)
    c = 16
    for s, e in ((4, 8), (4, 8), (8, 16)):
        sq = net.relu(net.conv(x, c, s, 1))
        x = net.op("Concat", [net.relu(net.conv(sq, s, e, 1)), net.relu(net.conv(sq, s, e, 3))], axis=1)
        c = 2 * e
    x = net.maxpool(x, 3, 2, 0, ceil=1)
    x = net.relu(net.conv(net.op("Dropout", [x]), c, 10, 1))
    x = net.op("Flatten", [net.op("GlobalAveragePool", [x])])
    return net.model(net.op("Softmax", [x], axis=1))


def densenet(size=32, growth=6, layers=3, batch=1):
    """A DenseNet: bottleneck layers (BN-ReLU-1x1, BN-ReLU-3x3) whose outputs are concatenated
    onto their input; a transition (BN-ReLU-1x1, 2x2 average pool) between two blocks."""
    net = Net(3, size, seed=4, batch=batch)
    x = net.maxpool(net.cbr(net.input.name, 3, 12, 3, stride=2))
    c = 12
    for block in range(2):
        for _ in range(layers):
            y = net.conv(net.relu(net.bn(x, c)), c, 4 * growth, 1, bias=False)
            y = net.conv(net.relu(net.bn(y, 4 * growth)), 4 * growth, growth, 3, bias=False)
            x, c = net.op("Concat", [x, y], axis=1), c + growth
        if block == 0:
            x = net.avgpool(net.conv(net.relu(net.bn(x, c)), c, c // 2, 1, bias=False))
            c //= 2
    return net.model(net.head(net.relu(net.bn(x, c)), c))


def shuffle(net, x, c, groups, h):
    """Channel shuffle as exporters write it: Reshape to (N, g, c/g, h, w) with 0 and -1 in the
    target, swap the group axes, Reshape back."""
    x = net.op("Reshape", [x, net.const([0, groups, c // groups, h, -1])])
    x = net.op("Transpose", [x], perm=[0, 2, 1, 3, 4])
    return net.op("Reshape", [x, net.const([0, -1, h, h])])


def shufflenet(size=32, groups=2, batch=1):
    """ShuffleNet v1 units: grouped 1x1 conv, channel shuffle, depthwise 3x3 (stride 2 units
    join an average-pooled shortcut by Concat, stride 1 units add the identity)."""
    net = Net(3, size, seed=5, batch=batch)
    x = net.maxpool(net.cbr(net.input.name, 3, 8, 3, stride=2))
    c, h = 8, size // 4
    for cout, stride in ((16, 2), (24, 1), (32, 2)):
        mid = 8
        y = net.cbr(x, c, mid, 1, group=groups if c % groups == 0 else 1)
        y = shuffle(net, y, mid, groups, h)
        y = net.bn(net.conv(y, mid, mid, 3, stride, group=mid, bias=False), mid)
        h = (h + stride - 1) // stride
        if stride == 2:
            y = net.bn(net.conv(y, mid, cout - c, 1, group=groups, bias=False), cout - c)
            short = net.avgpool(x, 3, 2, 1, include=1)
            x = net.relu(net.op("Concat", [short, y], axis=1))
        else:
            y = net.bn(net.conv(y, mid, cout, 1, group=groups, bias=False), cout)
            short = x if c == cout else net.conv(x, c, cout, 1, bias=False)
            x = net.relu(net.op("Add", [y, short]))
        c = cout
    return net.model(net.head(x, c))


def vgg(size=32, batch=1):
    """VGG: stacks of 3x3 conv-ReLU and 2x2 max pools, then two dense layers with dropout,
    with an AlexNet-style 5x5 stem and LRN."""
    net = Net(3, size, seed=6, batch=batch)
    x = net.op("LRN", [net.relu(net.conv(net.input.name, 3, 8, 5, stride=1))], size=3)
    c = 8
    for cout, n in ((16, 2), (24, 2), (32, 2)):
        for _ in range(n):
            x, c = net.relu(net.conv(x, c, cout, 3)), cout
        x = net.maxpool(x, 2, 2, 0)
    side = size // 8
    x = net.op("Reshape", [x, net.const([0, -1])])          # flatten, as exporters write it
    x = net.op("Dropout", [net.relu(net.gemm(x, c * side * side, 64))])
    return net.model(net.gemm(x, 64, 10))


ARCHITECTURES = {"resnet": resnet, "inception": inception, "squeezenet": squeezenet, "densenet": densenet,
                 "shufflenet": shufflenet, "vgg": vgg}


# ---------------------------------------------------------------- the onnx package's real models

LIGHT = ("bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet", "squeezenet",
         "vgg19", "zfnet512")


def light_model(name, seed=0):
    """One of the 'light' real models the onnx package ships (the published architectures with
    every weight a ConstantOfShape), with random weights in place of the constants and the final
    Softmax cut off (random weights saturate it; the logits are compared)."""
    import os

    import onnx
    path = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light", f"light_{name}.onnx")
    m = onnx.load(path)
    rng = np.random.default_rng(seed)
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    keep = []
    for n in m.graph.node:
        if n.op_type == "ConstantOfShape" and n.input[0] in inits:
            v = numpy_helper.to_array(n.attribute[0].t).reshape(-1)[0]
            shape = tuple(int(d) for d in inits[n.input[0]])
            w = v * rng.uniform(0.5, 1.5, shape) + (v == 0) * 0.01 * rng.standard_normal(shape)
            m.graph.initializer.append(numpy_helper.from_array(w.astype(np.float32), n.output[0]))
        else:
            keep.append(n)
    del m.graph.node[:]
    m.graph.node.extend(keep)
    m.ir_version = max(m.ir_version, 4)       # IR 3 wants every initializer listed as an input
    if keep[-1].op_type == "Softmax":
        del m.graph.node[-1]
        out = m.graph.output[0]
        out.name = keep[-1].input[0]
        del out.type.tensor_type.shape.dim[:]
    return m
