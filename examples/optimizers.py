"""The digits MLP trained with each optimizer; loss curves to a PNG (matplotlib).

    .venv/bin/python examples/optimizers.py [--epochs 20] [--out docs/optimizers.png]
"""
import argparse
import time

import graphc as gc
from mlp_digits import train

OPTIMIZERS = {
    "SGD": lambda: gc.optim.SGD(lr=0.05),
    "momentum": lambda: gc.optim.SGD(lr=0.05, momentum=0.9),
    "Nesterov": lambda: gc.optim.SGD(lr=0.05, momentum=0.9, nesterov=True),
    "Adagrad": lambda: gc.optim.Adagrad(lr=0.05),
    "RMSprop": lambda: gc.optim.RMSprop(lr=1e-3),
    "Adadelta": lambda: gc.optim.Adadelta(lr=1.0),
    "Adam": lambda: gc.optim.Adam(lr=1e-3),
    "AdamW": lambda: gc.optim.AdamW(lr=1e-3, weight_decay=1e-2),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", default="optimizers.png")
    args = parser.parse_args()
    curves = {}
    for name, make in OPTIMIZERS.items():
        t0 = time.perf_counter()
        accuracy, history, _ = train(args.epochs, optimizer=make(), verbose=False)
        curves[name] = history["loss"]
        print(f"{name:9} test accuracy {accuracy:.4f}  final train loss {history['loss'][-1]:.4f}  "
              f"({time.perf_counter() - t0:.1f} s with compiling)")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, losses in curves.items():
        ax.plot(range(1, len(losses) + 1), losses, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (softmax cross-entropy)")
    ax.set_yscale("log")
    ax.set_title("digits MLP 64-256-128-10, batch 32")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"plot written to {args.out}")


if __name__ == "__main__":
    main()
