"""Batch inference over a disk-backed array larger than you would like in memory, on Dask.

A compiled MLP (256 -> 128 -> 10, softmax; backend "cpu") scores every row of a .npy
file written to a temporary folder (2 GB by default; --gb for less), first in one
process (a loop over memory-mapped chunks), then on a dask.distributed LocalCluster with
gc.dask.map_batches over gc.dask.from_npy (each worker opens the file itself and reads
only its chunks), with a progress bar. It reports rows per second for both, checks
that they agree, and deletes the file.

    python examples/dask_inference.py --gb 0.5 --workers 2
"""
import argparse
import os
import shutil
import tempfile
import time

import numpy as np

import graphc as gc

FEATURES = 256


def model_function():
    with gc.Graph():
        x = gc.placeholder((None, FEATURES), gc.float32, name="x")
        model = gc.nn.Sequential([gc.nn.Dense(128, "relu", seed=1), gc.nn.Dense(10, seed=2)])
        return gc.function([x], gc.nn.softmax(model(x)), backend="cpu")


def write_data(path, rows, chunk_rows):
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, FEATURES))
    rng = np.random.default_rng(0)
    for i in range(0, rows, chunk_rows):
        n = min(chunk_rows, rows - i)
        mm[i:i + n] = rng.standard_normal((n, FEATURES), dtype=np.float32)
    mm.flush()
    del mm


def single_process(fn, path, chunk_rows):
    data = np.load(path, mmap_mode="r")
    total = np.zeros(10, np.float64)
    for i in range(0, len(data), chunk_rows):
        total += fn(np.array(data[i:i + chunk_rows])).sum(axis=0)
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=2.0, help="size of the data file in GB (default 2)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chunk-rows", type=int, default=32768)
    args = ap.parse_args()
    from dask.distributed import Client, LocalCluster, progress

    rows = int(args.gb * 1e9) // (FEATURES * 4)
    folder = tempfile.mkdtemp(prefix="graphc-dask-")
    path = os.path.join(folder, "x.npy")
    try:
        t = time.perf_counter()
        write_data(path, rows, args.chunk_rows)
        print(f"wrote {rows:,} rows x {FEATURES} float32 = {os.path.getsize(path) / 1e9:.2f} GB to {path} "
              f"in {time.perf_counter() - t:.1f} s")
        fn = model_function()
        fn(np.zeros((args.chunk_rows, FEATURES), np.float32))            # compile outside the timings
        t = time.perf_counter()
        want = single_process(fn, path, args.chunk_rows)
        single = time.perf_counter() - t
        print(f"single process: {rows / single:,.0f} rows/s ({single:.1f} s)")

        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            x = gc.dask.from_npy(path, args.chunk_rows)
            probs = gc.dask.map_batches(fn, x)
            # each worker compiles its copy on its first chunk (and again for the smaller last chunk's
            # shape): warm them up outside the timing on a few chunks and the last one
            warm = x.blocks[list(range(min(2 * args.workers, x.numblocks[0]))) + [x.numblocks[0] - 1]]
            client.compute(gc.dask.map_batches(fn, warm).sum(), sync=True)
            t = time.perf_counter()
            future = client.compute(probs.sum(axis=0))
            progress(future)
            got = future.result()
            spread = time.perf_counter() - t
            print(f"\ndask, {args.workers} worker processes, {probs.numblocks[0]} chunks: "
                  f"{rows / spread:,.0f} rows/s ({spread:.1f} s), {single / spread:.2f}x the single process")
        np.testing.assert_allclose(got, want, rtol=1e-4)
        print(f"column sums agree (max relative difference {np.max(np.abs(got - want) / want):.1e}); "
              f"mean probabilities {np.round(got / rows, 3)}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        print(f"deleted {folder}")


if __name__ == "__main__":
    main()
