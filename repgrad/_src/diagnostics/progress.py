"""A progress bar that fits both a terminal and a log file.

On a terminal (``stream.isatty()``) one line is redrawn in place with ``"\\r"`` (at most every
``min_interval`` seconds, so thousands of updates cost little), and ended with a newline when the
work is done. Anywhere else (a log file, a CI job, a pipe) a redrawn line would leave every update
behind as its own line, so the bar writes one line when the work starts, one each time another
``every`` (10%) of it is done, and one when it is done: about a dozen lines whatever the number of
updates. Plain Python, no dependency: tqdm or rich would do the same at the cost of a fourth
runtime dependency beside jax, optax and chex.
"""

from __future__ import annotations

import math
import sys
import time


def progress_bar(stream=None, *, tty: bool | None = None, every: float = 0.1, width: int = 24,
                 min_interval: float = 0.1, clock=time.perf_counter):
    """A ``progress(done, total, label)`` callback for ``compare``, ``compare_estimators``
    and ``select_estimator``: a bar on a terminal, a line every ~10% in a log.

    Args:
      stream: where to write (default ``sys.stderr``, so tables on stdout stay clean).
      tty: force terminal (``True``) or log (``False``) output; default ``stream.isatty()``.
      every: in a log, the fraction of the work between two lines (0.1: a line per 10%).
      width: characters of the bar.
      min_interval: on a terminal, the fewest seconds between two redraws (the first and the
        last update are always drawn).
      clock: the time source (seconds); tests pass a fake one.

    Returns:
      ``progress(done, total, label)``. A call with ``done`` lower than the previous one
      starts a new run (e.g. the next problem of the demo).

    Example:
      >>> import io
      >>> from repgrad.diagnostics import progress_bar
      >>> log = io.StringIO()
      >>> progress = progress_bar(log, tty=False, clock=lambda: 0.0)
      >>> for i in range(1001):
      ...     progress(i, 1000, "rounds")
      >>> len(log.getvalue().splitlines())   # 0%, 10%, ..., 100%: not 1001 lines
      11
    """
    stream = sys.stderr if stream is None else stream
    if tty is None:
        isatty = getattr(stream, "isatty", None)
        tty = bool(isatty()) if callable(isatty) else False
    if not 0 < every <= 1:
        raise ValueError(f"every must be in (0, 1], the fraction of the work between two log lines; got {every!r}.")
    start = clock()
    state = {"last_done": -1, "next_step": 0, "last_draw": -math.inf, "drawn_width": 0, "finished": False}

    def line(done, total, label):
        frac = min(max(done / total, 0.0), 1.0) if total > 0 else 1.0
        filled = int(width * frac)
        bar = "#" * filled + "-" * (width - filled)
        return f"[{bar}] {100 * frac:3.0f}% {label:<32.32} {clock() - start:6.1f}s"

    def progress(done, total, label=""):
        finished = done >= total
        if done < state["last_done"] or (state["finished"] and not finished):  # a new run on the same bar
            state.update(next_step=0, finished=False)
        if finished and state["finished"]:
            return  # the end was written already (e.g. a last "done" after the last round)
        state["last_done"], state["finished"] = done, finished
        if tty:
            now = clock()
            if not (finished or done == 0 or now - state["last_draw"] >= min_interval):
                return
            state["last_draw"] = now
            text = line(done, total, label)
            pad = " " * max(state["drawn_width"] - len(text), 0)  # erase a longer previous line
            state["drawn_width"] = 0 if finished else len(text)
            stream.write("\r" + text + pad + ("\n" if finished else ""))
        else:
            # Step k of the log is reached when done/total ≥ k·every; one line per step crossed,
            # and the last step (done) always gets its line.
            n_steps = math.floor(1 / every + 1e-9)
            step = n_steps + 1 if finished else min(math.floor(done / total / every + 1e-9), n_steps)
            if step < state["next_step"]:
                return
            state["next_step"] = step + 1
            stream.write(line(done, total, label) + "\n")
        stream.flush()

    return progress
