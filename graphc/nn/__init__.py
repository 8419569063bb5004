"""gc.nn: the training library -- everything the seed texts teach about training a network,
built from ordinary graph nodes.

  layers.py        Dense, Dropout, BatchNorm, Sequential; activations by name
  conv_layers.py   Conv2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D, Flatten, BatchNorm2D (NCHW)
  rnn_layers.py    SimpleRNN, LSTM, GRU and their one-step cells
  losses.py        MSE, RMSE, cross-entropies, NLL (also gc.losses)
  optim.py         SGD, momentum, Adagrad, RMSprop, Adadelta, Adam; schedules (gc.optim)
  init.py          initializers (gc.init)
  regularizers.py  L1, L2 (gc.regularizers)
  train.py         fit / evaluate / predict, early stopping, save / load

May import: graphc.core, graphc.api (the op functions), graphc.ops.random, graphc.function,
graphc.passes.autodiff. Nothing in core/, ops/, passes/ or runtime/ imports this package.
"""
from .layers import *  # noqa: F401,F403
from .layers import ACTIVATIONS  # noqa: F401
from .conv_layers import *  # noqa: F401,F403  (Conv2D, MaxPool2D, ..., BatchNorm2D)
from .losses import *  # noqa: F401,F403  (gc.nn.softmax_cross_entropy, ...)
from .regularizers import l1, l2  # noqa: F401
from .rnn_layers import *  # noqa: F401,F403  (SimpleRNN, LSTM, GRU and their cells)
from .train import EarlyStopping, History, Trainer, fit, load, save  # noqa: F401
