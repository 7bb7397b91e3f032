"""Smoke test: benchmarks/overhead.py runs end to end on its tiny --small grid.

Runs in-process, so the benchmark also runs under the strict promotion rules of
conftest.py. The script itself checks that every repgrad transform and its hand-written
counterpart return the same gradient from the same key before timing them.
"""

import math

from _bench import load


def test_overhead_small(tmp_path, capsys):
    bench = load("overhead")
    out = tmp_path / "overhead.md"
    rows = bench.main(["--small", "--out", str(out)])
    names = {r["name"] for r in rows}
    assert {"pathwise_grad", "score_grad", "score_grad loo", "measure_valued_grad"} <= names
    assert any("expectation pathwise" in n for n in names) and any("expectation score" in n for n in names)
    for r in rows:
        assert "skipped" not in r
        assert r["ms_a"] > 0 and r["ms_b"] > 0 and math.isfinite(r["ratio"])
        # --small keeps timing until the ratio's 95% CI is within ±5% (or the cell's budget
        # is spent): at least 30 rounds, each the mean of calls grouped to ≥ 1 ms; stopped
        # on the CI, the reported interval is well within ±10%
        assert r["reps"] >= 30 and r["inner"] >= 1
        assert r["stop"] in ("ci", "budget", "reps")
        if r["stop"] == "ci":
            assert r["ci_ok"]
        assert r["peak_a"] > 0 and r["peak_b"] > 0
        assert not r["flag"], f"{r['name']}: temporaries far above the N·D floor"
        assert not r["above_hand"], f"{r['name']}: more temporary memory than hand-written"
    text = out.read_text()
    assert "| transform | N | D | repgrad ms | hand ms | ratio |" in text
    assert "jax " in text  # machine line
    assert text.count("\n| ") == len(rows) + 1  # header + one row per cell
    assert "repgrad overhead" in capsys.readouterr().out
