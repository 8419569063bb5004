"""An MLP on scikit-learn's digits (8x8 images, 10 classes, bundled: no download),
trained with graphc compiled for the CPU.

    .venv/bin/python examples/mlp_digits.py [--epochs 80] [--backend cpu]
"""
import argparse
import time

import graphc as gc
from graphc.tools.demo import load_digits  # scikit-learn's digits, split 80/20 (shared with make demo)


def build_model(seed=0):
    return gc.nn.Sequential([
        gc.nn.Dense(256, "relu", seed=seed),
        gc.nn.Dropout(0.3, seed=seed + 1),
        gc.nn.Dense(128, "relu", seed=seed + 2),
        gc.nn.Dropout(0.3, seed=seed + 4),
        gc.nn.Dense(10, seed=seed + 3),
    ])


def train(epochs=80, backend="cpu", optimizer=None, batch_size=32, verbose=True, seed=0):
    """Train on 80% of the digits; return (test accuracy, history, trainer)."""
    x_train, y_train, x_test, y_test = load_digits(seed)
    model = build_model(seed)
    optimizer = optimizer or gc.optim.Adam(lr=1e-3)
    history, trainer = gc.nn.fit(
        model, gc.nn.softmax_cross_entropy, optimizer, x_train, y_train, epochs=epochs,
        batch_size=batch_size, validation_data=(x_test, y_test), backend=backend, seed=seed,
        early_stopping=gc.nn.EarlyStopping(monitor="val_loss", patience=15), verbose=verbose)
    accuracy = trainer.evaluate(x_test, y_test)["accuracy"]
    return accuracy, history, trainer


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--backend", default="cpu")
    args = parser.parse_args()
    t0 = time.perf_counter()
    accuracy, history, trainer = train(args.epochs, args.backend)
    print(f"test accuracy {accuracy:.4f} after {len(history['loss'])} epochs "
          f"(best epoch {history.best_epoch + 1}) in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
