"""Optimizers and learning-rate schedules, as graph updates.

An optimizer computes nothing itself: `opt.updates(loss, params)` builds the
new value of every parameter, and of the optimizer's own state (velocities,
running averages, a step count), as nodes of the loss's graph, from the
gradients `gc.grad` builds. The dict goes to gc.function, so a training step
is one call, interpreted or compiled, with no Python arithmetic per step:

    opt = Adam(lr=1e-3)
    step = gc.function([x, y], loss, updates=opt.updates(loss, [W, b]), backend="cpu")

gc.function computes all updates from the old values, then assigns them
together. So every rule reads the variables' old values only; where a rule
needs a state's new value (Adadelta's second average uses this step's delta)
it uses that state's new-value node, never the variable.

The learning rate is a scalar variable, not a constant baked into the code:
`opt.lr = 0.01`, or one of the schedules at the end of this file, changes the
next step of an already compiled function without recompiling it.

The rules and their defaults follow PyTorch's torch.optim (eps defaults follow
Keras); each class's docstring gives its rule. `eps` is added outside the
square root, as in the Adam paper, except in Adadelta, whose rule needs it
inside (see there).
"""
import math

import numpy as np

import graphc.api as F
from graphc.core.errors import ForeignNodeError, GraphError, where
from graphc.core.graph import Node, user_location
from graphc.passes.autodiff import grad


class Optimizer:
    """Base class: the learning-rate variable, per-parameter state, the update dict.

    A subclass implements `_param_updates(p, g, lr) -> {variable: new value}`
    for one parameter (p and its state; `_state(p, name)` makes a state
    variable), and may implement `_shared_updates()` for state that all
    parameters share (Adam's step count); it runs first.
    """

    def __init__(self, lr):
        self._lr = _hyper("lr", lr, low=0.0)
        self.lr_var = None      # made by the first updates() call, in the loss's graph
        self.graph = None
        self.state = {}         # param -> {state name: variable}

    @property
    def lr(self):
        """The current learning rate, a Python float (what the next step uses)."""
        if self.lr_var is None:
            return self._lr
        value = self.lr_var.graph.store[self.lr_var]
        # the float that was set, unless the variable was changed behind our back (gc.set_value)
        return self._lr if value == np.asarray(self._lr, value.dtype) else float(value)

    @lr.setter
    def lr(self, value):
        self._lr = _hyper("lr", value, low=0.0)
        if self.lr_var is not None:
            F.set_value(self.lr_var, self._lr)

    def updates(self, loss, params):
        """{variable: new value node} for every param and every state variable of this optimizer.

        loss: a scalar float node. params: a variable or a list of float variables of
        loss's graph. The state is made on the first call and reused by later calls for
        the same params; the learning rate takes the widest dtype of the first call's params.
        """
        params = self._check(loss, params)
        grads = grad(loss, params)
        with loss.graph:
            if self.lr_var is None:
                dtype = np.result_type(*[p.dtype for p in params])
                self.lr_var = F.variable(np.array(self._lr, dtype), name=f"{type(self).__name__}/lr")
                self.graph = loss.graph
            updates = self._shared_updates()
            for p, g in zip(params, grads):
                lr = self.lr_var if self.lr_var.dtype == p.dtype else F.cast(self.lr_var, p.dtype)
                updates.update(self._param_updates(p, g, lr))
        return updates

    def variables(self):
        """The optimizer's own variables (learning rate, shared and per-parameter state)."""
        own = [self.lr_var] if self.lr_var is not None else []
        return own + self._shared_variables() + [v for slots in self.state.values() for v in slots.values()]

    def _state(self, p, name, init=0.0):
        """The state variable `name` of param p ("W/m"), made on first use with p's shape and dtype."""
        slots = self.state.setdefault(p, {})
        if name not in slots:
            slots[name] = F.variable(np.full(p.shape, init, p.dtype), name=f"{p.name}/{name}")
        return slots[name]

    def _shared_updates(self):
        return {}

    def _shared_variables(self):
        return []

    def _param_updates(self, p, g, lr):
        raise NotImplementedError

    def _check(self, loss, params):
        loc = user_location()
        if not isinstance(loss, Node):
            raise GraphError(f"{type(self).__name__}.updates: loss must be a graph node, got {loss!r}{where(loc)}")
        if self.graph is not None and loss.graph is not self.graph:
            raise ForeignNodeError(f"{type(self).__name__}.updates: this optimizer already updates "
                                   f"{self.graph.name}; the loss belongs to {loss.graph.name}. Make one "
                                   f"optimizer per graph{where(loc)}")
        params = [params] if isinstance(params, Node) else list(params)
        if not params:
            raise GraphError(f"{type(self).__name__}.updates: no params to update{where(loc)}")
        for p in params:
            if not (isinstance(p, Node) and p.op.name == "variable"):
                raise GraphError(f"{type(self).__name__}.updates: {getattr(p, 'name', p)!r} is not a variable"
                                 f"{where(getattr(p, 'loc', None))}; only variables can be updated{where(loc)}")
            if p.dtype.kind != "f":
                raise GraphError(f"{type(self).__name__}.updates: {p.name}{where(p.loc)} is {p.dtype}; only "
                                 f"float variables have gradients{where(loc)}")
        return list(dict.fromkeys(params))      # a param listed twice (shared weights) is updated once


class SGD(Optimizer):
    """Stochastic gradient descent with momentum mu, Nesterov momentum and L2 weight decay wd.

        g <- g + wd * p                 L2 decay: the gradient of (wd / 2) * ||p||^2 added to g,
                                        so it also goes through the momentum
        v <- mu * v + g                 velocity, starts at 0 (no velocity at all when mu = 0)
        p <- p - lr * v                 nesterov: p <- p - lr * (g + mu * v), with the new v

    This is PyTorch's torch.optim.SGD (dampening 0): lr multiplies the velocity
    rather than being folded into it, so changing lr takes effect at once.
    For decay that bypasses the gradient statistics of adaptive methods, see AdamW.
    """

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(lr)
        self.momentum = _hyper("momentum", momentum, low=0.0)
        self.nesterov = bool(nesterov)
        self.weight_decay = _hyper("weight_decay", weight_decay, low=0.0)
        if self.nesterov and self.momentum == 0:
            raise GraphError("SGD: nesterov=True needs momentum > 0")

    def _param_updates(self, p, g, lr):
        if self.weight_decay:
            g = g + self.weight_decay * p
        if not self.momentum:
            return {p: p - lr * g}
        v = self._state(p, "velocity")
        v_new = self.momentum * v + g
        step = g + self.momentum * v_new if self.nesterov else v_new
        return {p: p - lr * step, v: v_new}


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011): each coordinate's step shrinks with its summed squared gradients.

        a <- a + g^2                    a starts at initial_accumulator (default 0)
        p <- p - lr * g / (sqrt(a) + eps)

    Keras starts a at 0.1 and puts eps inside the root; pass initial_accumulator=0.1
    for the first. With a = 0 a zero gradient gives 0 / eps = 0, not nan.
    """

    def __init__(self, lr=0.01, eps=1e-7, initial_accumulator=0.0):
        super().__init__(lr)
        self.eps = _hyper("eps", eps, low=0.0)
        self.initial_accumulator = _hyper("initial_accumulator", initial_accumulator, low=0.0)

    def _param_updates(self, p, g, lr):
        a = self._state(p, "accumulator", self.initial_accumulator)
        a_new = a + g * g
        return {p: p - lr * g / (F.sqrt(a_new) + self.eps), a: a_new}


class RMSprop(Optimizer):
    """RMSprop (Hinton, Coursera lecture 6e): Adagrad with a decaying average instead of a sum.

        s <- rho * s + (1 - rho) * g^2  s starts at 0
        p <- p - lr * g / (sqrt(s) + eps)
    """

    def __init__(self, lr=0.001, rho=0.9, eps=1e-7):
        super().__init__(lr)
        self.rho = _hyper("rho", rho, low=0.0, below=1.0)
        self.eps = _hyper("eps", eps, low=0.0)

    def _param_updates(self, p, g, lr):
        s = self._state(p, "square_avg")
        s_new = self.rho * s + (1 - self.rho) * g * g
        return {p: p - lr * g / (F.sqrt(s_new) + self.eps), s: s_new}


class Adadelta(Optimizer):
    """Adadelta (Zeiler, 2012): the step's scale comes from past steps, so lr = 1 works.

        Eg  <- rho * Eg + (1 - rho) * g^2              both averages start at 0
        d   <- sqrt(Edx + eps) / sqrt(Eg + eps) * g    (with the new Eg)
        Edx <- rho * Edx + (1 - rho) * d^2             (with this step's d)
        p   <- p - lr * d

    eps sits inside the roots here: Edx starts at 0, and sqrt(eps) is what makes
    the first steps nonzero (of size about sqrt(eps) / sqrt(1 - rho)).
    """

    def __init__(self, lr=1.0, rho=0.95, eps=1e-6):
        super().__init__(lr)
        self.rho = _hyper("rho", rho, low=0.0, below=1.0)
        self.eps = _hyper("eps", eps, low=0.0)

    def _param_updates(self, p, g, lr):
        rho, eps = self.rho, self.eps
        eg, edx = self._state(p, "square_avg"), self._state(p, "delta_avg")
        eg_new = rho * eg + (1 - rho) * g * g
        d = F.sqrt(edx + eps) / F.sqrt(eg_new + eps) * g
        edx_new = rho * edx + (1 - rho) * d * d
        return {p: p - lr * d, eg: eg_new, edx: edx_new}


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015): momentum on g and on g^2, with bias correction.

        t <- t + 1                                     one int64 step count for all params
        m <- beta1 * m + (1 - beta1) * g               m, v start at 0
        v <- beta2 * v + (1 - beta2) * g^2
        m_hat = m / (1 - beta1^t)                      bias correction: undoes the pull of the
        v_hat = v / (1 - beta2^t)                      zero start on the first steps
        p <- p - lr * m_hat / (sqrt(v_hat) + eps)

    Weight decay belongs in AdamW; L2 in the loss (graphc.regularizers.l2) gets
    rescaled by 1 / sqrt(v_hat) like the rest of the gradient.
    """

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-7):
        super().__init__(lr)
        self.beta1 = _hyper("beta1", beta1, low=0.0, below=1.0)
        self.beta2 = _hyper("beta2", beta2, low=0.0, below=1.0)
        self.eps = _hyper("eps", eps, low=0.0)
        self.step_var = None

    def _shared_updates(self):
        if self.step_var is None:
            self.step_var = F.variable(np.array(0, np.int64), name=f"{type(self).__name__}/step")
        self._t = self.step_var + 1
        return {self.step_var: self._t}

    def _shared_variables(self):
        return [self.step_var] if self.step_var is not None else []

    def _adam_step(self, p, g):
        """(m_hat / (sqrt(v_hat) + eps), {m: new m, v: new v})."""
        b1, b2 = self.beta1, self.beta2
        m, v = self._state(p, "m"), self._state(p, "v")
        m_new = b1 * m + (1 - b1) * g
        v_new = b2 * v + (1 - b2) * g * g
        t = F.cast(self._t, p.dtype)
        m_hat = m_new / (1 - b1 ** t)
        v_hat = v_new / (1 - b2 ** t)
        return m_hat / (F.sqrt(v_hat) + self.eps), {m: m_new, v: v_new}

    def _param_updates(self, p, g, lr):
        step, state = self._adam_step(p, g)
        return {p: p - lr * step, **state}


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay wd.

        p <- p - lr * wd * p - lr * m_hat / (sqrt(v_hat) + eps)    (m_hat, v_hat as in Adam)

    The decay shrinks p directly, outside m and v, so every weight decays at the
    same rate whatever its gradient history; L2 added to the loss would instead
    be divided by sqrt(v_hat). lr multiplies wd, as in PyTorch's AdamW.
    """

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-7, weight_decay=0.01):
        super().__init__(lr, beta1, beta2, eps)
        self.weight_decay = _hyper("weight_decay", weight_decay, low=0.0)

    def _param_updates(self, p, g, lr):
        step, state = self._adam_step(p, g)
        decayed = p - lr * self.weight_decay * p
        return {p: decayed - lr * step, **state}


def _hyper(name, value, low=None, below=None):
    """A hyperparameter as a finite float, checked against its range."""
    if isinstance(value, Node):
        raise GraphError(f"{name} must be a number, got graph node {value.name}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise GraphError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or (low is not None and value < low) or (below is not None and value >= below):
        bounds = f"in [{low}, {below})" if below is not None else f">= {low}"
        raise GraphError(f"{name} must be finite and {bounds}, got {value}")
    return value

# ---------------------------------------------------------------- learning-rate schedules
# Plain Python: call .step() once at the end of every epoch; it sets opt.lr for the next one.
# `epoch` is the 0-based index of the epoch that just ended (what graphc.train.fit passes);
# without it the schedule counts its own calls.


class _Schedule:
    def __init__(self, opt):
        if not isinstance(opt, Optimizer):
            raise GraphError(f"{type(self).__name__}: expected an optimizer, got {opt!r}")
        self.opt = opt
        self.initial_lr = opt.lr
        self.last_epoch = -1          # no epoch has ended yet

    def step(self, epoch=None, metric=None):
        """End of an epoch: set opt.lr for the next one and return it."""
        self.last_epoch = self.last_epoch + 1 if epoch is None else int(epoch)
        self.opt.lr = self.lr_at(self.last_epoch + 1)
        return self.opt.lr


class StepDecay(_Schedule):
    """lr of epoch e = initial_lr * gamma ** (e // step_size): times gamma every step_size epochs."""

    def __init__(self, opt, step_size, gamma=0.1):
        super().__init__(opt)
        if isinstance(step_size, bool) or not isinstance(step_size, (int, np.integer)) or step_size < 1:
            raise GraphError(f"StepDecay: step_size must be an int >= 1, got {step_size!r}")
        self.step_size = int(step_size)
        self.gamma = _hyper("gamma", gamma, low=0.0)

    def lr_at(self, epoch):
        return self.initial_lr * self.gamma ** (epoch // self.step_size)


class ExponentialDecay(_Schedule):
    """lr of epoch e = initial_lr * gamma ** e."""

    def __init__(self, opt, gamma):
        super().__init__(opt)
        self.gamma = _hyper("gamma", gamma, low=0.0)

    def lr_at(self, epoch):
        return self.initial_lr * self.gamma ** epoch


class ReduceLROnPlateau(_Schedule):
    """Multiply lr by `factor` when `metric` has stopped improving.

    An epoch improves when its metric beats the best so far by more than
    threshold * |best| (relative, so it works for any scale and sign; mode "max"
    for metrics that grow, like accuracy). After `patience` epochs in a row
    without improvement, the next one without improvement cuts lr (PyTorch's
    rule: patience=2 tolerates 2 bad epochs, cuts after the 3rd), and the count
    starts again. lr never goes below min_lr. step() needs metric=.
    """

    def __init__(self, opt, factor=0.1, patience=10, min_lr=0.0, mode="min", threshold=1e-4):
        super().__init__(opt)
        self.factor = _hyper("factor", factor, low=0.0, below=1.0)
        if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) or patience < 0:
            raise GraphError(f"ReduceLROnPlateau: patience must be an int >= 0, got {patience!r}")
        if mode not in ("min", "max"):
            raise GraphError(f"ReduceLROnPlateau: mode must be 'min' or 'max', got {mode!r}")
        self.patience, self.mode = int(patience), mode
        self.min_lr = _hyper("min_lr", min_lr, low=0.0)
        self.threshold = _hyper("threshold", threshold, low=0.0)
        self.best = None
        self.bad_epochs = 0

    def step(self, epoch=None, metric=None):
        if metric is None:
            raise GraphError("ReduceLROnPlateau.step needs metric= (the monitored value, "
                             "e.g. the validation loss)")
        self.last_epoch = self.last_epoch + 1 if epoch is None else int(epoch)
        metric = float(metric)
        if self._improved(metric):
            self.best, self.bad_epochs = metric, 0
        else:                       # nan never improves
            self.bad_epochs += 1
            if self.bad_epochs > self.patience:
                self.bad_epochs = 0
                reduced = max(self.opt.lr * self.factor, self.min_lr)
                if reduced < self.opt.lr:
                    self.opt.lr = reduced
        return self.opt.lr

    def _improved(self, metric):
        if self.best is None:
            return not math.isnan(metric)
        margin = self.threshold * abs(self.best)
        return metric < self.best - margin if self.mode == "min" else metric > self.best + margin
