"""`graphc bench` as a program: its help, its errors, its --busy helper process, and the
choice of BLAS threads per compiled step (runtime/cpu/config.py). No benchmark timing here:
the thread choice is fed made-up timings."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from graphc.runtime.cpu import config
from graphc.tools import bench, busy, cli, peers
from graphc.tools.workloads import DESCRIPTIONS, WORKLOADS, w3_train_step, w4_forward


def children_spinning():
    """pids of this process's children running busy.py's spinning loop (from /proc)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if int(stat[1]) == os.getpid() and stat[0] != "Z" and b"getppid" in cmd:
            found.append(int(pid))
    return found


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# ---------------------------------------------------------------- the command line


@pytest.mark.parametrize("main", [bench.main, lambda argv: cli.main(["bench", *argv])])
def test_help_lists_every_workload_with_its_description(main, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name, text in bench.known_workloads().items():
        assert f"{name:4} {text}" in out
    assert "--busy" in out


@pytest.mark.parametrize("main", [bench.main, lambda argv: cli.main(["bench", *argv])])
def test_unknown_workload_is_a_clear_error_naming_the_known_ones(main, capsys):
    with pytest.raises(SystemExit) as e:
        main(["W3", "W9"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown workload 'W9'" in err and "W1, W2, W3, W4, W5, W6, W6b, W7" in err
    assert "KeyError" not in err


def test_unknown_workload_from_the_shell_exits_2():
    p = subprocess.run([sys.executable, "-m", "graphc", "bench", "nope"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2 and "unknown workload 'nope'" in p.stderr and "Traceback" not in p.stderr


def test_busy_defaults_to_w3():
    assert bench.parse_args(["--busy"]).workloads == ["W3"]
    assert bench.parse_args([]).workloads == bench.DEFAULT


def test_every_workload_has_a_description_and_peers_only_known_ones():
    assert set(DESCRIPTIONS) == set(WORKLOADS)
    for table in (peers.JAX, peers.TORCH, peers.PYTENSOR):
        assert set(table) <= set(WORKLOADS)
    for name in WORKLOADS:
        assert all(peers.installed(col) for col in peers.available(name))


# ---------------------------------------------------------------- --busy and its helper


def test_busy_helper_runs_inside_the_block_and_is_stopped_after():
    with busy.competing(1) as pids:
        assert len(pids) == 1 and alive(pids[0])
    assert not alive(pids[0]) and not children_spinning()


def test_busy_helper_is_stopped_when_the_block_fails():
    with pytest.raises(KeyboardInterrupt):
        with busy.competing(2) as pids:
            assert all(map(alive, pids))
            raise KeyboardInterrupt
    assert not any(map(alive, pids)) and not children_spinning()


def test_busy_bench_run_that_fails_leaves_no_helper(monkeypatch, tmp_path, capsys):
    started = []
    real_start = busy.start
    monkeypatch.setattr(busy, "start", lambda n=1: started.extend(real_start(n)) or started)

    def failing(name, reps, progress=None, backend="cpu"):
        assert children_spinning() == [p.pid for p in started]      # it runs beside the helper
        raise RuntimeError("a column failed")
    monkeypatch.setattr(bench, "bench_workload", failing)
    monkeypatch.setattr(bench, "machine_info", lambda: {})
    with pytest.raises(RuntimeError, match="a column failed"):
        bench.main(["W3", "--busy", "--keep-env", "--reps", "1", "--json", str(tmp_path / "b.json")])
    assert len(started) == 1 and not alive(started[0].pid) and not children_spinning()
    assert "BUSY" in capsys.readouterr().out


def test_busy_report_says_it_was_busy(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(bench, "bench_workload", lambda name, reps, progress=None, backend="cpu": (
        {"numpy": (1e-3, 0.0), "cpu": (1e-3, 0.0)}, {}))
    monkeypatch.setattr(bench, "machine_info", lambda: {})
    assert bench.main(["W3", "--busy", "--keep-env", "--reps", "1", "--json", str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    assert "BUSY run" in out and "W3" in out and not children_spinning()
    assert "busy" in (tmp_path / "b.json").read_text()


def test_busy_helper_ends_by_itself_when_its_parent_is_killed():
    code = ("import sys, time; from graphc.tools import busy; p = busy.start(1)[0]; "
            "print(p.pid, flush=True); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        helper = int(parent.stdout.readline())
        assert alive(helper)
    finally:
        parent.send_signal(signal.SIGKILL)             # no finally, no atexit runs in it
        parent.wait()
    deadline = time.monotonic() + 10
    while alive(helper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(helper)


# ---------------------------------------------------------------- BLAS threads per step


def test_blas_threads_for_small_and_large_gemms():
    assert config.blas_threads_for(128, 10, 256) == (1,)          # W3's small products: never split
    assert config.blas_threads_for(1, 256, 784) == (1,)           # W4 at batch 1
    assert config.blas_threads_for(64, 64, 64) == (1,)
    assert config.blas_threads_for(64, 64, 127) == (1,)           # just below OpenBLAS's split
    assert config.blas_threads_for(64, 64, 129) == (1, 2)         # just above: timed
    assert config.blas_threads_for(128, 256, 784) == (1, 2)       # W3's big ones: timed, 1 or 2
    assert config.blas_threads_for(128, 256, 256) == (1, 2)
    assert config.blas_threads_for(128, 256, 784, cores=4) == (1, 4)
    assert config.blas_threads_for(128, 256, 784, cores=1) == (1,)


class FakeBlas:
    def __init__(self, threads=2):
        self.threads, self.calls = threads, []

    def get(self):
        return self.threads

    def set(self, n):
        self.calls.append(n)
        self.threads = n


def _types(w):
    f = w.function("interp")
    return f, f._specialize({x: a for x, a in zip(f.inputs, w.data)})


def test_gemm_sizes_of_w3_and_which_steps_choose(monkeypatch):
    monkeypatch.delenv("GRAPHC_BLAS_THREADS", raising=False)
    monkeypatch.setattr(config, "_numba_blas", [FakeBlas(2)])
    f, types = _types(w3_train_step())
    sizes = sorted(config.gemm_sizes(f.nodes, types))
    assert (128, 256, 784) in sizes and (784, 256, 128) in sizes and (128, 10, 256) in sizes
    assert len(sizes) == 8
    f4, types4 = _types(w4_forward())
    assert all(config.blas_threads_for(*s) == (1,) for s in config.gemm_sizes(f4.nodes, types4))
    step = lambda *a: None                                          # noqa: E731
    assert config.blas_step(step, f4.nodes, types4) is step          # nothing to choose: no wrapper
    f8, types8 = _types(w4_forward(batch=8))                         # 8x784x256: OpenBLAS splits it
    assert config.blas_step(step, f8.nodes, types8).choice.counts == (1, 2)
    assert config.blas_step(step, f.nodes, types).choice.counts == (1, 2)


def test_gemm_sizes_count_convolutions_also_fused_with_their_epilogue(monkeypatch):
    """A CNN step's GEMMs are its convolutions: (output channels per group, positions, C/g*kh*kw),
    but not those the blocked kernel takes (constant float32 weights: no GEMM, no BLAS)."""
    import graphc as gc
    monkeypatch.setattr(config, "_numba_blas", [FakeBlas(2)])
    for make, sizes in ((gc.variable, [(16, 28 * 28, 64), (32, 56 * 56, 288)]), (gc.constant, [])):
        with gc.Graph():
            x = gc.placeholder((1, 64, 56, 56), name="x")
            w = make(np.ones((64, 32, 3, 3), np.float32))
            y = gc.relu(gc.conv2d(x, w, padding=1, groups=2))         # fused with its relu
            z = gc.conv2d(y, make(np.ones((16, 64, 1, 1), np.float32)), stride=2)
            f = gc.function([x], [z, y], backend="cpu")
        types = f._specialize({x: np.zeros((1, 64, 56, 56), np.float32)})
        assert sorted(config.gemm_sizes(f.nodes, types)) == sizes
        assert f.parallel == (not sizes)
    with gc.Graph():
        x = gc.placeholder((1, 64, 56, 56), name="x")
        w = gc.variable(np.ones((64, 32, 3, 3), np.float32))
        f = gc.function([x], [gc.relu(gc.conv2d(x, w, padding=1, groups=2))], backend="cpu")
    types = f._specialize({x: np.zeros((1, 64, 56, 56), np.float32)})
    assert config.blas_step(lambda *a: None, f.nodes, types).choice.counts == (1, 2)
    assert config.blas_step(lambda *a: None, f.nodes, types, parallel=True).choice.count == 1


def test_step_runs_with_the_chosen_count_and_sets_it_back(monkeypatch):
    monkeypatch.delenv("GRAPHC_BLAS_THREADS", raising=False)
    f, types = _types(w3_train_step())
    blas = FakeBlas(2)
    monkeypatch.setattr(config, "_numba_blas", [blas])
    seen = []
    step = config.blas_step(lambda: seen.append(blas.threads), f.nodes, types)
    assert step.choice.counts == (1, 2)
    for _ in range(10):
        step()
    assert set(seen) == {1, 2} and blas.threads == 2                 # tried both, left it as it was

    def failing():
        seen.append(blas.threads)
        raise ValueError("boom")
    step = config.blas_step(failing, f.nodes, types)
    step.choice.best, step.choice.recent = 1, {1: [1.0], 2: [5.0]}    # 1 thread the faster
    with pytest.raises(ValueError):
        step()
    assert seen[-1] == 1 and blas.threads == 2
    blas.threads = 1                                                 # the user asked for 1 thread
    step = config.blas_step(lambda: seen.append(blas.threads), f.nodes, types)
    step()
    assert seen[-1] == 1


@pytest.mark.parametrize("mode, expect", [("off", None), ("1", 1), ("2", 2)])
def test_graphc_blas_threads_setting(monkeypatch, mode, expect):
    f, types = _types(w3_train_step())
    monkeypatch.setattr(config, "_numba_blas", [FakeBlas(2)])
    monkeypatch.setenv("GRAPHC_BLAS_THREADS", mode)
    step = lambda: None                                              # noqa: E731
    wrapped = config.blas_step(step, f.nodes, types)
    assert (wrapped is step) if expect is None else wrapped.choice.pick() == expect


def simulate(choice, cost, calls):
    """Run `calls` calls of made-up cost(count, k); returns the counts used, in order."""
    used = []
    for k in range(calls):
        n = choice.pick()
        choice.record(n, cost(n, k))
        used.append(n)
    return used


def test_thread_choice_keeps_two_threads_on_a_quiet_machine():
    rng = np.random.default_rng(0)
    used = simulate(config.ThreadChoice((1, 2)), lambda n, k: (1.3 if n == 1 else 1.0) * rng.uniform(0.9, 1.1), 2000)
    assert used[-1] == 2 and used.count(1) / len(used) < 0.05


def test_thread_choice_does_not_count_the_warm_up_call():
    # the first call (fresh buffers, cold caches) takes 1.6x as long: it must not make 1 thread win
    cost = lambda n, k: 1.6 if k == 0 else (1.3 if n == 1 else 1.0)      # noqa: E731
    used = simulate(config.ThreadChoice((1, 2)), cost, 50)
    assert used[:4] == [2, 2, 2, 2] and used[4:7] == [1, 1, 1] and set(used[7:]) == {2}


def test_thread_choice_under_contention_and_back():
    # 2 threads 30x slower while busy (calls 0-2999), then quiet again
    cost = lambda n, k: (30.0 if n == 2 else 2.0) if k < 3000 else (1.0 if n == 2 else 1.3)    # noqa: E731
    choice = config.ThreadChoice((1, 2))
    used = simulate(choice, cost, 6000)
    busy_time = [cost(n, k) for k, n in enumerate(used[:3000])]
    wasted = sum(t for t, n in zip(busy_time, used) if n == 2)
    assert wasted / sum(busy_time) < 0.06                            # ~BUDGET spent trying 2 threads
    assert used[2999] == 1 and used[-1] == 2 and used[-500:].count(2) > 450


def test_numba_blas_is_scipys_openblas_where_it_has_its_own():
    blas = config.numba_blas()
    if blas is None:
        pytest.skip("no BLAS library found for Numba's np.dot here")
    assert blas.get() >= 1
    path = blas.controller.filepath
    if "numpy" in path:
        pytest.fail(f"picked numpy's BLAS {path}")
