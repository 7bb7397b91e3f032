"""The progress bar: redrawn in place on a terminal, a line every ~10% in a log (issue 17, item 4)."""

import io

import jax
import pytest

from repgrad import cli
from repgrad import diagnostics as dg


class _Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self._tty = tty

    def isatty(self):
        return self._tty


class _Clock:
    def __init__(self, step):
        self.t, self.step = 0.0, step

    def __call__(self):
        self.t += self.step
        return self.t


def _run(progress, n=1000, label="rounds"):
    for i in range(n + 1):
        progress(i, n, label)


def test_the_cli_bar_does_not_flood_a_log():
    # Before: outside a terminal every update was a new line (1001 lines for 1000 updates).
    log = _Stream(tty=False)
    _run(cli._progress_printer(log))
    lines = log.getvalue().splitlines()
    assert 2 <= len(lines) <= 12, len(lines)
    assert "\r" not in log.getvalue()
    assert lines[0].split("]")[1].strip().startswith("0%") and "100%" in lines[-1]


def test_log_lines_every_tenth_and_the_end_always():
    log = _Stream(tty=False)
    _run(dg.progress_bar(log, clock=_Clock(0.01)))
    pcts = [int(line.split("]")[1].split("%")[0]) for line in log.getvalue().splitlines()]
    assert pcts == list(range(0, 101, 10))
    # A step that does not divide 1: the last line is still written.
    log = _Stream(tty=False)
    _run(dg.progress_bar(log, every=0.3, clock=_Clock(0.01)), n=100)
    pcts = [int(line.split("]")[1].split("%")[0]) for line in log.getvalue().splitlines()]
    assert pcts == [0, 30, 60, 90, 100]
    # Few updates (4 estimators): one line each, no more.
    log = _Stream(tty=False)
    _run(dg.progress_bar(log, clock=_Clock(0.01)), n=4)
    assert len(log.getvalue().splitlines()) == 5


def test_terminal_redraws_in_place_throttled_and_ends_with_one_newline():
    tty = _Stream(tty=True)
    progress = dg.progress_bar(tty, clock=_Clock(0.001), min_interval=0.1)
    _run(progress)
    progress(1000, 1000, "done")  # a second end (compare's last call) adds nothing
    out = tty.getvalue()
    assert out.count("\n") == 1 and out.endswith("\n")
    assert 5 <= out.count("\r") <= 25, out.count("\r")  # ~1 s of fake time at ≥ 0.1 s per redraw
    assert "100%" in out.splitlines()[-1]


def test_a_new_run_on_the_same_bar_starts_over():
    log = _Stream(tty=False)
    progress = dg.progress_bar(log, clock=_Clock(0.01))
    _run(progress, n=50, label="first")
    _run(progress, n=50, label="second")
    lines = log.getvalue().splitlines()
    for label in ("first", "second"):
        mine = [line for line in lines if label in line]
        assert len(mine) == 11 and "]   0%" in mine[0] and "] 100%" in mine[-1]
    tty = _Stream(tty=True)
    progress = dg.progress_bar(tty, clock=_Clock(1.0))
    _run(progress, n=3)
    _run(progress, n=3)
    assert tty.getvalue().count("\n") == 2


def test_tty_is_detected_from_the_stream_and_can_be_forced():
    tty = _Stream(tty=True)
    dg.progress_bar(tty)(0, 10, "x")
    assert tty.getvalue().startswith("\r")
    forced = _Stream(tty=True)
    dg.progress_bar(forced, tty=False)(0, 10, "x")
    assert forced.getvalue().endswith("\n") and "\r" not in forced.getvalue()
    with pytest.raises(ValueError, match="every"):
        dg.progress_bar(tty, every=0.0)


def test_compare_progress_true_writes_a_short_log(capsys):
    p = dg.gaussian_problem("quadratic", 2.0)
    dg.compare_estimators(p.f, p.dist, p.params, jax.random.key(0), estimators=["pathwise", "score"], num_samples=4,
                          num_replicates=200, vectorize=False, progress=True)
    err = capsys.readouterr().err.splitlines()  # pytest's capture is not a terminal
    assert 3 <= len(err) <= 12, err
    assert "compiling pathwise" in err[0] and "100%" in err[-1]
