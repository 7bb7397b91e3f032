"""Smoke tests: benchmarks/higher_order.py and benchmarks/measure_valued_memory.py run end to
end on their tiny --small grids.

Run in-process (as test_bench_smoke_overhead.py does), so the scripts also run under the strict
promotion rules of conftest.py. higher_order.py itself checks that repgrad's and the
hand-written gradients and Hessian-vector products agree before timing them.
"""

import math

from _bench import load


def test_higher_order_small(tmp_path):
    out = tmp_path / "higher_order.md"
    rows = load("higher_order").main(["--small", "--out", str(out)])
    assert {(r[0], r[1]) for r in rows} == {(e, w) for e in ("score", "pathwise") for w in ("grad", "hvp")}
    for _, _, _, _, ratio, lo, hi, t_hand, rounds in rows:
        assert math.isfinite(ratio) and lo <= ratio <= hi and t_hand > 0 and rounds > 0
    assert "repgrad / hand" in out.read_text()


def test_measure_valued_memory_small(tmp_path):
    out = tmp_path / "measure_valued_memory.md"
    rows = load("measure_valued_memory").main(["--small", "--out", str(out)])
    assert len(rows) == 2
    (_, _, _, evals, default_mib, _, _, default_s), (_, _, chunk, _, chunked_mib, _, _, chunked_s) = rows
    assert chunk == 16 and evals == 4 * 64 * 4 + 64
    assert 0 < chunked_mib <= default_mib  # a smaller chunk never needs more temporaries
    assert math.isfinite(default_s) and math.isfinite(chunked_s)
    assert "temporaries MiB" in out.read_text()
