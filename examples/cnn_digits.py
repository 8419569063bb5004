"""A small CNN on scikit-learn's digits (8x8 images, 10 classes, bundled: no download),
trained with graphc compiled for the CPU: two 3x3 convolutions with max pooling, then a
dense layer. The images are fed as NCHW, (N, 1, 8, 8).

    .venv/bin/python examples/cnn_digits.py [--epochs 40] [--backend cpu]
"""
import argparse
import time

import graphc as gc
from graphc.tools.demo import load_digits  # scikit-learn's digits, split 80/20 (shared with make demo)


def build_model(seed=0):
    return gc.nn.Sequential([
        gc.nn.Conv2D(16, 3, padding="same", activation="relu", kernel_init="he_uniform", seed=seed),
        gc.nn.MaxPool2D(2),                                                    # (16, 4, 4)
        gc.nn.Conv2D(32, 3, padding="same", activation="relu", kernel_init="he_uniform", seed=seed + 2),
        gc.nn.MaxPool2D(2),                                                    # (32, 2, 2)
        gc.nn.Flatten(),
        gc.nn.Dense(64, "relu", seed=seed + 4),
        gc.nn.Dropout(0.3, seed=seed + 6),
        gc.nn.Dense(10, seed=seed + 7),
    ])


def train(epochs=40, backend="cpu", batch_size=32, verbose=True, seed=0):
    """Train on 80% of the digits; return (test accuracy, history, trainer)."""
    x_train, y_train, x_test, y_test = load_digits(seed)
    x_train, x_test = x_train.reshape(-1, 1, 8, 8), x_test.reshape(-1, 1, 8, 8)
    history, trainer = gc.nn.fit(
        build_model(seed), gc.nn.softmax_cross_entropy, gc.optim.Adam(lr=2e-3), x_train, y_train,
        epochs=epochs, batch_size=batch_size, validation_data=(x_test, y_test), backend=backend, seed=seed,
        early_stopping=gc.nn.EarlyStopping(monitor="val_loss", patience=10), verbose=verbose)
    accuracy = trainer.evaluate(x_test, y_test)["accuracy"]
    return accuracy, history, trainer


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--backend", default="cpu")
    args = parser.parse_args()
    t0 = time.perf_counter()
    accuracy, history, trainer = train(args.epochs, args.backend, verbose=False)
    print(f"trained {len(history['loss'])} epochs (best epoch {history.best_epoch + 1}) "
          f"in {time.perf_counter() - t0:.1f} s")
    print(f"test accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
