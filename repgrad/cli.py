"""The ``repgrad`` command: a demo, ``repgrad compare`` and ``repgrad select`` (see ``repgrad --help``)."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import os
import sys
import time

DEMO_PROBLEMS = (("quadratic", 2.0), ("cos", 2.0), ("exp", 1.0))
DEMO_COLUMNS = ("estimator", "param", "mean", "exact", "variance", "snr", "time_per_grad", "f_evals", "grad_evals", "var_x_time")

_DESCRIPTION = """\
Monte Carlo gradient estimators side by side.

With no command, runs the demo: for x ~ N(1, 1) and three costs, (x-2)^2, cos(2x) and
exp(-x^2), it estimates d/dmu and d/dsigma of E[f(x)] with the pathwise, score-function
(plain and leave-one-out baseline) and measure-valued estimators and prints, per
estimator and parameter: the mean of the estimates, the exact gradient, the variance of
one estimate, the signal-to-noise ratio, the time per gradient, the evaluations of f and
of its derivative per gradient, and variance x time (lower is better)."""

_EPILOG = """\
examples:
  repgrad                                    the demo (about 10-20 s on 2 CPU cores)
  repgrad compare --problem cos --k 3        one built-in problem, default estimators
  repgrad compare --problem exp --estimators all --plot exp.png
  repgrad compare --function mymod:f --loc 0.5 --scale 2 --estimators pathwise score:loo
  repgrad compare --problem mymod:make_problem --replicates 2000 --json out.json
  repgrad compare --problem cos --equal-cost  N per estimator for equal f + grad-f evaluations
  repgrad compare --estimators pathwise score:loo --num-samples pathwise=16 score:loo=64
  repgrad select --problem cos --k 8         choose the estimator by a pilot run
  repgrad list                               estimators and built-in problems

--function MODULE:NAME  names f(x) -> scalar for a scalar x ~ N(--loc, --scale^2)
    (or --dist laplace|logistic, without reference); MODULE is a dotted module on the
    path or in the current directory, or a path/to/file.py.
    The "exact" column is then a reference computed by 64-node Gauss-Hermite
    quadrature (exact for polynomials of degree <= 127; use --no-reference for
    non-smooth f).
--problem MODULE:NAME   names a repgrad.diagnostics.Problem, a tuple
    (f, dist, params, exact_or_None), or a zero-argument function returning either;
    dist(params) is any distribution, params any pytree.
estimator specs: any name in repgrad.ESTIMATORS, options after a colon:
    score:loo (baseline="loo"), measure_valued:uncoupled, name:key=value,key2=value.
cost: each table ends with one line per estimator over all parameters: N, f + grad-f
    evaluations per gradient, the summed variance, the median time of a compiled call
    (calls interleaved across estimators), var x time (the equal-time comparison: lower
    is better) and its ratio to the best one's with a 95% bootstrap interval. A NaN or
    infinite estimate is never best. --equal-cost compares at equal evaluations too.
progress: a bar on a terminal; in a log or pipe, a line every 10%."""


_SELECT_EPILOG = """\
examples:
  repgrad select --problem cos --k 8                  a built-in problem
  repgrad select --function mymod:f --loc 0.5 --scale 2
  repgrad select --problem mymod:make --num-samples 64 --budget 30 --json choice.json
  repgrad select --problem cos --candidates pathwise score:loo measure_valued

--function and --problem as for `repgrad compare` (see `repgrad compare --help`).
candidates: registry specs (score:loo) or the variant labels of the default set
    (pathwise+delta, score:loo+delta, measure_valued+delta, score:optimal)."""


def _progress_printer(stream=None):
    """A bar on a terminal, a line every 10% in a log (``repgrad.diagnostics.progress_bar``)."""
    from ._src.diagnostics.progress import progress_bar

    return progress_bar(stream)


def _parse_num_samples(tokens, parser):
    """``--num-samples 16`` (every estimator) or ``--num-samples pathwise=32 score:loo=64`` (per spec;
    the last '=' separates the count, since specs may hold key=value options)."""
    if len(tokens) == 1 and "=" not in tokens[0]:
        try:
            return int(tokens[0])
        except ValueError:
            parser.error(f"--num-samples takes an int or SPEC=N pairs (e.g. pathwise=32 score:loo=64); got {tokens[0]!r}")
    out = {}
    for token in tokens:
        spec, sep, n = token.rpartition("=")
        try:
            out[spec] = int(n)
        except ValueError:
            sep = ""
        if not sep or not spec:
            parser.error(f"--num-samples takes an int or SPEC=N pairs (e.g. pathwise=32 score:loo=64); got {token!r}")
    return out


def _load_attr(spec: str, parser):
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        parser.error(f"expected MODULE:NAME (e.g. mymodule:f or path/to/file.py:f), got {spec!r}")
    try:
        if module_name.endswith(".py") or os.sep in module_name:
            name = os.path.splitext(os.path.basename(module_name))[0]
            loader_spec = importlib.util.spec_from_file_location(name, module_name)
            if loader_spec is None or not os.path.exists(module_name):
                parser.error(f"no such file {module_name!r}")
            module = importlib.util.module_from_spec(loader_spec)
            loader_spec.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except ImportError as e:
        parser.error(f"cannot import {module_name!r}: {e}")
    if not hasattr(module, attr):
        parser.error(f"module {module_name!r} has no attribute {attr!r}")
    return getattr(module, attr)


def _quadrature_reference(f, loc, scale, order=64):
    """∂μ, ∂σ of E_{N(μ,σ²)}[f] by Gauss–Hermite: E[f s_μ], E[f s_σ] (no derivative of f)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from numpy.polynomial import hermite_e

    t, w = hermite_e.hermegauss(order)
    w = w / math.sqrt(2.0 * math.pi)
    x = loc + scale * t
    with jax.enable_x64(True):
        values = np.asarray(jax.vmap(f)(jnp.asarray(x, jnp.float64)), np.float64)
    if values.shape != t.shape or not np.all(np.isfinite(values)):
        return None
    return {"loc": float(np.sum(w * values * t) / scale), "scale": float(np.sum(w * values * (t * t - 1.0)) / scale)}


_DISTS = ("normal", "laplace", "logistic")


def _dist_fn(name):
    from ._src.distributions import Laplace, Logistic, Normal

    family = {"normal": Normal, "laplace": Laplace, "logistic": Logistic}[name]
    return lambda p: family(p["loc"], p["scale"])


def _resolve_problem(args, parser):
    import jax.numpy as jnp

    from . import diagnostics as dg

    if args.function is not None and args.problem is not None:
        parser.error("give either --problem or --function, not both")
    if args.function is not None:
        f = _load_attr(args.function, parser)
        if not callable(f):
            parser.error(f"{args.function} is not callable; --function must name f(x) -> scalar")
        params = {"loc": jnp.float32(args.loc), "scale": jnp.float32(args.scale)}
        exact, note = None, ""
        if args.dist == "normal" and not args.no_reference:
            exact = _quadrature_reference(f, args.loc, args.scale)
            note = "exact column: 64-node Gauss-Hermite quadrature reference" if exact else ""
        title = f"E[{args.function}(x)], x ~ {args.dist}(loc={args.loc:g}, scale={args.scale:g})"
        return dg.Problem(args.function, f, _dist_fn(args.dist), params, exact, title), note
    name = args.problem or "cos"
    if ":" in name:
        obj = _load_attr(name, parser)
        if callable(obj) and not isinstance(obj, tuple):
            obj = obj()
        if isinstance(obj, dg.Problem):
            return obj, ""
        if isinstance(obj, tuple) and len(obj) == 4:
            f, dist, params, exact = obj
            return dg.Problem(name, f, dist, params, exact, f"problem {name}"), ""
        parser.error(f"{name} must be a repgrad.diagnostics.Problem or a tuple (f, dist, params, exact_or_None)")
    if name not in dg.COSTS:
        parser.error(f"unknown problem {name!r}; built-in problems: {', '.join(dg.COSTS)} (or MODULE:NAME)")
    loc = 1.0 if args.loc is None else args.loc
    scale = 1.0 if args.scale is None else args.scale
    if not scale > 0:
        parser.error(f"--scale must be > 0, got {scale}")
    problem = dg.gaussian_problem(name, args.k, loc=loc, scale=scale)
    if args.dist != "normal":
        desc = problem.description.replace("x ~ N(", f"x ~ {args.dist}(")
        problem = problem._replace(dist=_dist_fn(args.dist), exact=None, description=desc)
    return problem, ""


def _split_specs(tokens):
    """Estimator specs from CLI tokens: spaces separate specs, and so do commas that
    start a registered estimator name ("pathwise,score:loo"); other commas separate
    options inside a spec ("name:key=1,key2=2"). Each spec is then parsed by the registry
    (``repgrad._src.registry.parse_spec``), the same as ``rg.expectation``'s."""
    from ._src import registry

    specs = []
    for token in tokens:
        for piece in token.replace(";", ",").split(","):
            if not piece:
                continue
            # "pathwise+delta": a variant label of repgrad select's candidates, also a new spec.
            if piece.partition(":")[0].split("+")[0] in registry.ESTIMATORS or piece == "all" or not specs:
                specs.append(piece)
            else:
                specs[-1] += "," + piece
    return "all" if specs == ["all"] else specs


def _run_demo(num_samples, replicates, seed, stream):
    import jax

    from . import diagnostics as dg

    start = time.perf_counter()
    progress = _progress_printer()
    print(
        f"repgrad demo: d/dmu and d/dsigma of E[f(x)], x ~ N(1, 1); {num_samples} samples per gradient, "
        f"statistics over {replicates} independent gradients\n(time/grad: the median of those compiled calls, "
        "interleaved across the estimators).",
        file=stream,
    )
    key = jax.random.key(seed)
    for i, (cost, k) in enumerate(DEMO_PROBLEMS):
        p = dg.gaussian_problem(cost, k)
        table = dg.compare_estimators(
            p.f, p.dist, p.params, jax.random.fold_in(key, i), estimators=dg.DEFAULT_ESTIMATORS,
            num_samples=num_samples, num_replicates=replicates, exact=p.exact, title=p.description,
            progress=progress, vectorize=False,
        )
        print("\n" + table.to_text(DEMO_COLUMNS), file=stream)
    print(
        "\nvariance: of one gradient estimate; var×time: variance × seconds per gradient, the variance of"
        "\n  one second's worth of gradients averaged (lower is better, whatever the number of samples);"
        "\nf evals / ∇f evals: per-sample evaluations of f and of its derivative, counted from the jaxpr;"
        "\n× best: var×time over the best estimator's, with a 95% bootstrap interval."
        f"\nTotal {time.perf_counter() - start:.1f} s. Try `repgrad compare --help` (e.g. --equal-cost).",
        file=stream,
    )
    return 0


def _run_compare(args, parser, stream):
    import jax

    from . import diagnostics as dg

    problem, note = _resolve_problem(args, parser)
    estimators = _split_specs(args.estimators)
    num_samples = _parse_num_samples(args.num_samples, parser)
    try:
        table = dg.compare_estimators(
            problem.f, problem.dist, problem.params, jax.random.key(args.seed), estimators=estimators,
            num_samples=num_samples, equal_cost=args.equal_cost, num_replicates=args.replicates, exact=problem.exact,
            title=problem.description or problem.name, timing_repeats=args.timing_repeats,
            progress=None if args.quiet else _progress_printer(), vectorize=args.vectorize,
        )
    except (TypeError, ValueError) as e:
        parser.error(str(e))
    if note:
        table = table._replace(notes=table.notes + (note,))
    print(table, file=stream)
    if args.plot:
        table.plot(args.plot)
        print(f"wrote {args.plot}", file=stream)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(table.to_dict(), fh, indent=1, default=lambda x: None)
        print(f"wrote {args.json}", file=stream)
    return 0


def _run_select(args, parser, stream):
    import jax

    from ._src.selection.select import select_estimator

    problem, note = _resolve_problem(args, parser)
    if args.num_samples < 1 or args.replicates < 3 or not args.budget > 0:
        parser.error("--num-samples must be >= 1, --replicates >= 3 and --budget > 0")
    candidates = None if args.candidates is None else _split_specs(args.candidates)
    if candidates == "all":
        candidates = None
    try:
        choice = select_estimator(
            problem.f, problem.dist, problem.params, jax.random.key(args.seed), candidates=candidates,
            allow_biased=args.allow_biased, budget_s=args.budget, num_samples=args.num_samples,
            num_replicates=args.replicates, exact=problem.exact, progress=None if args.quiet else _progress_printer(),
        )
    except (TypeError, ValueError) as e:
        parser.error(str(e))
    table = choice.table._replace(title=f"{problem.description or problem.name}: {choice.table.title}")
    if note:
        table = table._replace(notes=table.notes + (note,))
    print(table, file=stream)
    print(f"\nchoice: {choice.label} (num_samples={choice.num_samples}). {choice.reason}", file=stream)
    if args.json:
        out = {"choice": choice.label, "num_samples": choice.num_samples, "reason": choice.reason,
               "excluded": [list(e) for e in choice.excluded], "pilot_s": choice.pilot_s,
               "compile_s": choice.compile_s, "table": table.to_dict()}
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1, default=lambda x: None)
        print(f"wrote {args.json}", file=stream)
    return 0


def _run_list(stream):
    from ._src.diagnostics.compare import registered_estimators
    from ._src.diagnostics.problems import COSTS, DEFAULT_K

    print("estimators (repgrad.ESTIMATORS; options after a colon, e.g. score:loo):", file=stream)
    for name, aliases in registered_estimators().items():
        also = f"  (also: {', '.join(aliases)})" if aliases else ""
        print(f"  {name}{also}", file=stream)
    print("built-in problems (x ~ N(loc, scale^2), default loc=1, scale=1):", file=stream)
    for name, formula in COSTS.items():
        print(f"  {name:<10} {formula}  (default k={DEFAULT_K[name]:g})", file=stream)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="repgrad", description=_DESCRIPTION, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="{demo,compare,select,list}")
    demo = sub.add_parser("demo", help="the default: estimators on three Gaussian problems")
    demo.add_argument("--num-samples", type=int, default=16, help="samples per gradient (default 16)")
    demo.add_argument("--replicates", type=int, default=500, help="independent gradients for the statistics (default 500)")
    demo.add_argument("--seed", type=int, default=0)
    cmp_ = sub.add_parser(
        "compare",
        help="compare estimators on a built-in or your own problem",
        description="Compare gradient estimators: mean, exact, bias/SE, variance, SNR, time, f evaluations.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_problem_arguments(cmp_)
    cmp_.add_argument(
        "--num-samples",
        nargs="+",
        metavar="N|SPEC=N",
        default=["16"],
        help="samples per gradient: one N for all (default 16), or SPEC=N per estimator "
        "(e.g. pathwise=32 score:loo=64)",
    )
    cmp_.add_argument(
        "--equal-cost",
        action="store_true",
        help="give each estimator the N at which its f + grad-f evaluations per gradient match the costliest "
        "estimator's at --num-samples (time is compared by var x time in the summary either way)",
    )
    cmp_.add_argument("--replicates", type=int, default=500, help="independent gradients (default 500)")
    cmp_.add_argument(
        "--estimators",
        nargs="+",
        metavar="SPEC",
        default=["pathwise", "score", "score:loo", "measure_valued"],
        help="estimator specs (space- or comma-separated), or 'all' (default: pathwise score score:loo measure_valued)",
    )
    cmp_.add_argument(
        "--vectorize",
        action="store_true",
        help="replicates as one jax.vmap call (compiles twice per estimator; faster for large R or costly f). "
        "Default: one compiled gradient called R times, those calls timed",
    )
    cmp_.add_argument("--timing-repeats", type=int, default=30, help="with --vectorize: timed calls per estimator (median)")
    cmp_.add_argument("--seed", type=int, default=0)
    cmp_.add_argument("--plot", metavar="OUT.png", help="write a bar chart of variance and variance x time")
    cmp_.add_argument("--json", metavar="OUT.json", help="write the table as JSON")
    cmp_.add_argument("--no-reference", action="store_true", help="with --function: no quadrature reference")
    cmp_.add_argument("--quiet", action="store_true", help="no progress bar")
    sel = sub.add_parser(
        "select",
        help="choose the lowest variance x time estimator for a built-in or your own problem",
        description="Choose an estimator by a pilot run: every estimator that applies (with and without the "
        "variance reduction that applies, unbiased unless --allow-biased) is compiled and run on the same keys, "
        "calls interleaved; the lowest variance x time per gradient wins, and among candidates within each "
        "other's uncertainty the cheaper one. Prints the table, the excluded candidates with the reason, the "
        "pilot's cost and the choice.",
        epilog=_SELECT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_problem_arguments(sel)
    sel.add_argument("--num-samples", type=int, default=16, help="samples per gradient, your training N (default 16)")
    sel.add_argument("--budget", type=float, default=10.0, help="the pilot's budget in seconds, compiling included (default 10)")
    sel.add_argument("--replicates", type=int, default=200, help="gradients per candidate, at most (default 200)")
    sel.add_argument("--candidates", nargs="+", metavar="SPEC", help="candidate specs (default: every one that applies)")
    sel.add_argument("--allow-biased", action="store_true", help="biased estimators too, ranked by MSE")
    sel.add_argument("--seed", type=int, default=0)
    sel.add_argument("--json", metavar="OUT.json", help="write the choice and the table as JSON")
    sel.add_argument("--no-reference", action="store_true", help="with --function: no quadrature reference")
    sel.add_argument("--quiet", action="store_true", help="no progress bar")
    sub.add_parser("list", help="list estimators and built-in problems")
    return parser


def _add_problem_arguments(p):
    p.add_argument("--problem", metavar="NAME", help="quadratic | cos | exp (default cos), or MODULE:NAME")
    p.add_argument("--function", metavar="MODULE:NAME", help="your f(x) -> scalar, for x ~ dist(loc, scale)")
    p.add_argument("--dist", choices=_DISTS, default="normal", help="family of x (default normal)")
    p.add_argument("--k", type=float, default=None, help="the built-in cost's constant k")
    p.add_argument("--loc", type=float, default=None, help="loc of x (default 1; 0 with --function)")
    p.add_argument("--scale", type=float, default=None, help="scale of x (default 1)")


def _version():
    from . import __version__

    return f"repgrad {__version__}"


def main(argv=None) -> int:
    """Entry point of the ``repgrad`` console script and ``python -m repgrad``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    stream = sys.stdout
    if args.command in (None, "demo"):
        num_samples = getattr(args, "num_samples", 16)
        replicates = getattr(args, "replicates", 500)
        if replicates < 2 or num_samples < 2:
            parser.error("--replicates and --num-samples must be >= 2")
        return _run_demo(num_samples, replicates, getattr(args, "seed", 0), stream)
    if args.command in ("compare", "select"):
        if args.function is not None:
            args.loc = 0.0 if args.loc is None else args.loc
            args.scale = 1.0 if args.scale is None else args.scale
            if not args.scale > 0:
                parser.error(f"--scale must be > 0, got {args.scale}")
        return (_run_compare if args.command == "compare" else _run_select)(args, parser, stream)
    return _run_list(stream)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
