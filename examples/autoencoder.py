"""A dense autoencoder on scikit-learn's 8x8 digits: 64 pixels squeezed through an 8-unit
bottleneck and rebuilt, trained with gc.nn.fit on (x, x) with the mean squared error,
compiled for the CPU. Writes originals above their reconstructions to an image.

    .venv/bin/python examples/autoencoder.py [--epochs 150] [--bottleneck 8] [--out docs/autoencoder.png]

gc.nn.fit needs nothing special for this: the targets are the inputs (pixels already in [0, 1],
as load_digits scales them), the loss is gc.nn.mean_squared_error, and as float targets that
are not one-hot rows carry no accuracy, fit reports only the loss.
"""
import argparse
import time

import numpy as np

import graphc as gc
from graphc.tools.demo import load_digits  # pixels / 16: in [0, 1]


def build_model(bottleneck=8, seed=0):
    encoder = gc.nn.Sequential([gc.nn.Dense(48, "relu", seed=seed), gc.nn.Dense(bottleneck, seed=seed + 2)])
    # sigmoid output: reconstructions stay in [0, 1] like the pixels
    decoder = gc.nn.Sequential([gc.nn.Dense(48, "relu", seed=seed + 4), gc.nn.Dense(64, "sigmoid", seed=seed + 6)])
    return gc.nn.Sequential([encoder, decoder]), encoder


def train(epochs=150, bottleneck=8, backend="cpu", verbose=False, seed=0):
    """Return (test reconstruction MSE, epochs run, trainer, x_test)."""
    x_train, _, x_test, _ = load_digits(seed)
    model, _ = build_model(bottleneck, seed)
    history, trainer = gc.nn.fit(
        model, gc.nn.mean_squared_error, gc.optim.Adam(lr=3e-3), x_train, x_train, epochs=epochs,
        batch_size=32, validation_data=(x_test, x_test), backend=backend, seed=seed, verbose=verbose,
        early_stopping=gc.nn.EarlyStopping(monitor="val_loss", patience=15))
    mse = trainer.evaluate(x_test, x_test)["loss"]
    return mse, len(history["loss"]), trainer, x_test


def plot(x, reconstructed, path, mse, bottleneck, n=10):
    """Row 1: n test digits; row 2: what the autoencoder makes of them."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, n, figsize=(n * 0.9, 2.2))
    for i in range(n):
        for row, images in enumerate((x, reconstructed)):
            ax = axes[row, i]
            ax.imshow(images[i].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
    axes[0, 0].set_ylabel("original", fontsize=8)
    axes[1, 0].set_ylabel("rebuilt", fontsize=8)
    fig.suptitle(f"digits through a {bottleneck}-unit bottleneck (test MSE {mse:.4f})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--bottleneck", type=int, default=8)
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--out", default="docs/autoencoder.png")
    args = parser.parse_args()
    t0 = time.perf_counter()
    mse, epochs, trainer, x_test = train(args.epochs, args.bottleneck, args.backend)
    elapsed = time.perf_counter() - t0
    baseline = float(np.mean((x_test - x_test.mean(axis=0)) ** 2))     # always guessing the mean image
    print(f"test reconstruction MSE {mse:.4f} after {epochs} epochs in {elapsed:.1f} s "
          f"(the mean image alone: {baseline:.4f})")
    if args.out:
        plot(x_test, trainer.predict(x_test), args.out, mse, args.bottleneck)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
