"""Two processes, one job: ``jax.distributed`` on the CPU backend (localhost coordinator,
gloo collectives), 2 CPU devices per process, 4 in the global mesh.

tests/_multiprocess_worker.py runs in each process a sharded-sample ``rg.expectation``
gradient (pathwise, and score with a leave-one-out baseline) and a data-parallel SGD
step of a Flipout Bayesian MLP whose batch is split across the processes. Both must give
the numbers one process computes unsharded (same key ⇒ same samples and the same
per-example Flipout signs), up to float32 rounding of sums taken in a different order:
at most a few ulps per addend over 64 samples or examples, so the bound is rtol 2e-5
plus atol 2e-6 for entries near zero (observed: at most 3e-6 relative, on a near-zero
entry). Not statistical: no chance failures.

About 10 s (three processes import jax and compile the same few programs); marked slow.
The timeout only guards against a hung coordinator.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import _multiprocess_worker as worker
import numpy as np
import pytest

NUM_PROCESSES = 2
TIMEOUT_S = 180
RTOL, ATOL = 2e-5, 2e-6


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_workers():
    port = _free_port()
    script = Path(worker.__file__).resolve()
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(i), str(NUM_PROCESSES), str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(NUM_PROCESSES)
    ]  # fmt: skip
    outs = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=TIMEOUT_S)
            if p.returncode:
                raise AssertionError(f"worker exited with {p.returncode}:\n{stderr[-3000:]}")
            # gloo prints connection notices on stdout; the result is the last line
            outs.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    return outs


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results():
    outs = _run_workers()
    return outs, worker.reference()


def _close(got, want, what):
    assert len(got) == len(want), what
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=RTOL, atol=ATOL, err_msg=f"{what}, leaf {i}")


def test_processes_form_one_mesh(results):
    outs, _ = results
    assert sorted(o["process_index"] for o in outs) == list(range(NUM_PROCESSES))
    assert {o["device_count"] for o in outs} == {NUM_PROCESSES * worker.LOCAL_DEVICES}
    # the batch is split between the processes: disjoint row blocks covering it
    rows = sorted(tuple(o["rows"]) for o in outs)
    assert rows == [(0, worker.BATCH // 2), (worker.BATCH // 2, worker.BATCH)]


@pytest.mark.parametrize("estimator", ["pathwise", "score"])
def test_sharded_expectation_gradient_matches_one_process(results, estimator):
    outs, ref = results
    for o in outs:
        assert o[estimator + "_hlo_all_reduce"], "the sample mean should be all-reduced across processes"
        _close(o[estimator], ref[estimator], f"process {o['process_index']}, {estimator}")


def test_data_parallel_flipout_training_matches_one_process(results):
    outs, ref = results
    for o in outs:
        _close(o["bnn"], ref["bnn"], f"process {o['process_index']}, Flipout MLP after {worker.STEPS} step(s)")
