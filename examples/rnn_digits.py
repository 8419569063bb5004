"""An LSTM and a GRU reading scikit-learn's 8x8 digits row by row (8 time steps of 8 pixels),
then Dense(10) on the last state; trained with gc.nn.fit, compiled for the CPU.

    .venv/bin/python examples/rnn_digits.py [--epochs 30] [--units 64] [--backend cpu] [--unroll]

The time loop is gc.scan (one loop node), or with --unroll the unrolled graph (one cell per
row); the output says which.
"""
import argparse
import time

import graphc as gc
from graphc.tools.demo import load_digits  # scikit-learn's digits, split 80/20 (shared with make demo)


def build_model(kind, units=64, unroll=False, seed=0):
    rnn = {"LSTM": gc.nn.LSTM, "GRU": gc.nn.GRU}[kind](units, unroll=unroll, seed=seed)
    return gc.nn.Sequential([rnn, gc.nn.Dense(10, seed=seed + 2)]), rnn


def train(kind, epochs=30, units=64, backend="cpu", unroll=False, verbose=False, seed=0):
    """Train on 80% of the digits; return (test accuracy, epochs run, whether gc.scan was used)."""
    x_train, y_train, x_test, y_test = load_digits(seed)
    rows = lambda x: x.reshape(len(x), 8, 8)         # noqa: E731  image -> 8 steps of 8 pixels
    model, rnn = build_model(kind, units, unroll, seed)
    history, trainer = gc.nn.fit(
        model, gc.nn.softmax_cross_entropy, gc.optim.Adam(lr=5e-3), rows(x_train), y_train,
        epochs=epochs, batch_size=32, validation_data=(rows(x_test), y_test), backend=backend,
        seed=seed, early_stopping=gc.nn.EarlyStopping(monitor="val_loss", patience=8), verbose=verbose)
    return trainer.evaluate(rows(x_test), y_test)["accuracy"], len(history["loss"]), rnn.used_scan


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--unroll", action="store_true", help="build the unrolled graph (one cell per row) instead of gc.scan")
    args = parser.parse_args()
    for kind in ("LSTM", "GRU"):
        t0 = time.perf_counter()
        accuracy, epochs, used_scan = train(kind, args.epochs, args.units, args.backend, args.unroll)
        loop = "gc.scan" if used_scan else "unrolled (8 cells)"
        print(f"{kind} test accuracy {accuracy:.4f} after {epochs} epochs, time loop {loop}, "
              f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
