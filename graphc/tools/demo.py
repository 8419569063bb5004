"""`make demo`: train an MLP on scikit-learn's digits, compiled for the CPU.

It prints the test accuracy and the time per training step interpreted vs
compiled, and writes DOT pictures of the forward and training-step graphs
and the generated kernels into build/.
"""
import os
import shutil
import time

import numpy as np

import graphc as gc


def load_digits(seed=0):
    """(x_train, y_train, x_test, y_test): scikit-learn's bundled 8x8 digits, 80/20 split."""
    from sklearn.datasets import load_digits as sk_load
    from sklearn.model_selection import train_test_split
    data = sk_load()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    return x_train, y_train, x_test, y_test


def build_model():
    return gc.nn.Sequential([gc.nn.Dense(256, "relu", seed=0), gc.nn.Dropout(0.3, seed=1),
                             gc.nn.Dense(128, "relu", seed=2), gc.nn.Dropout(0.3, seed=4),
                             gc.nn.Dense(10, seed=3)])


def time_steps(step, x, y, batch=32, reps=200):
    """Seconds per training step on fixed batches (after one warm-up call)."""
    step(x[:batch], y[:batch])
    t0 = time.perf_counter()
    for k in range(reps):
        i = (k * batch) % (len(x) - batch)
        step(x[i:i + batch], y[i:i + batch])
    return (time.perf_counter() - t0) / reps


def write(out_dir, name, text):
    path = os.path.join(out_dir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def run(out_dir="build"):
    os.makedirs(out_dir, exist_ok=True)
    x_train, y_train, x_test, y_test = load_digits()
    print(f"digits: {len(x_train)} training and {len(x_test)} test images of 8x8 pixels, 10 classes")

    model = build_model()
    t0 = time.perf_counter()
    history, trainer = gc.nn.fit(model, gc.nn.softmax_cross_entropy, gc.optim.Adam(lr=1e-3),
                                 x_train, y_train, epochs=80, batch_size=32, validation_data=(x_test, y_test),
                                 early_stopping=gc.nn.EarlyStopping(patience=15), backend="cpu")
    elapsed = time.perf_counter() - t0
    result = trainer.evaluate(x_test, y_test)
    print(f"compiled training: {len(history['loss'])} epochs in {elapsed:.1f} s (compiling included); "
          f"best epoch {history.best_epoch + 1}")
    print(f"test accuracy {result['accuracy']:.4f}, test loss {result['loss']:.4f}")

    # the same model's train step, interpreted, against the compiled one
    interp = gc.nn.Trainer(model, gc.nn.softmax_cross_entropy, gc.optim.Adam(lr=1e-3), x_train.shape[1:],
                           x_train.dtype, (), y_train.dtype, backend="interp")
    t_cpu = time_steps(trainer.step, x_train, y_train)
    time.sleep(0.2)                 # let the compiled run's BLAS threads go idle first
    t_interp = time_steps(interp.step, x_train, y_train)
    print(f"time per training step (batch 32): interpreted {t_interp * 1e6:.0f} us, "
          f"compiled {t_cpu * 1e6:.0f} us ({t_interp / t_cpu:.1f}x faster)")

    files = [write(out_dir, "digits_forward.dot", gc.to_dot(trainer.out_eval)),
             write(out_dir, "digits_train_step.dot", gc.to_dot(trainer.step)),
             write(out_dir, "digits_train_step_kernels.py", trainer.step.source)]
    report = gc.report(trainer.step, os.path.join(out_dir, "digits_train_step.html"), args=(x_train[:32], y_train[:32]),
                       title="digits MLP: one Adam training step")
    print(f"the training step's report page (open it in a browser): {os.path.abspath(report)}")
    if shutil.which("dot"):
        files.append(gc.render(trainer.out_eval, os.path.join(out_dir, "digits_forward.svg")))
    print("written:", ", ".join(files))


if __name__ == "__main__":
    run()
