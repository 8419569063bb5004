"""The user-facing op functions, by the names users write: gc.exp, gc.sum, gc.where, ...

Each function is defined next to its op in ops/ (numpy names, numpy semantics,
graph nodes out); this module only gathers them in one namespace.
"""
from graphc.core.graph import FUNCTION_NAMES
from graphc.ops.base import as_node  # noqa: F401
from graphc.ops.binary import (add, divide, equal, greater, greater_equal, less, less_equal,  # noqa: F401
                               logical_and, logical_or, maximum, minimum, multiply, not_equal, power,
                               subtract, where)
from graphc.ops.broadcast import broadcast_like, broadcast_to, concatenate, pad, split  # noqa: F401
from graphc.ops.conv import conv2d, conv2d_grad_input, conv2d_grad_weight  # noqa: F401
from graphc.ops.linalg import matmul  # noqa: F401
from graphc.ops.nn import log_softmax, one_hot, softmax  # noqa: F401
from graphc.ops.pool import (avg_pool2d, avg_pool2d_grad, global_avg_pool2d, max_pool2d,  # noqa: F401
                             max_pool2d_grad, max_pool2d_select)
from graphc.ops.scan import scan  # noqa: F401
from graphc.passes import scan_grad  # noqa: F401  (installs scan's gradient rule: ops/ may not import passes/)
from graphc.ops.reductions import argmax, argmin, max, mean, min, prod, sum  # noqa: F401
from graphc.ops.shape import expand_dims, reshape, reshape_like, size, squeeze, transpose  # noqa: F401
from graphc.ops.slicing import getitem, unslice  # noqa: F401
from graphc.ops.rounding import ceil, floor, fmod, isinf, isnan, mod, round  # noqa: F401
from graphc.ops.special import erf  # noqa: F401
from graphc.ops.sources import constant, get_value, placeholder, set_value, variable  # noqa: F401
from graphc.ops.unary import (abs, cast, elu, exp, leaky_relu, log, logical_not, negative,  # noqa: F401
                              reciprocal, relu, sigmoid, sign, softplus, sqrt, square, tanh)

OP_FUNCTIONS = sorted(name for name, f in dict(globals()).items()
                      if callable(f) and not name.startswith("_") and name != "as_node")
FUNCTION_NAMES.update(OP_FUNCTIONS)      # so that np.exp(node) can say "use gc.exp(...)"
