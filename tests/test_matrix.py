"""The statistical contract over the whole estimator matrix (issue 16).

Every registered estimator × every option value × every family it takes (and those it must
refuse) × smooth, step, integer-valued and masked f × every derivative operator: each cell is
an unbiased estimate of its exact value (checked at 5 standard errors over independent keys)
or a refusal at trace time with the declared error (``_matrix_rules.py`` declares which).

``make test`` runs a fixed sample: the cells whose id hashes into one slice in
``_matrix_cells.SAMPLE_EVERY`` (one in ``REFUSAL_EVERY`` of the cells that are only refusals:
traced, never compiled);
``REPGRAD_MATRIX=full`` (``make matrix``, CI) runs every cell, ``REPGRAD_MATRIX=slice:k`` slice k.
``REPGRAD_MATRIX_LOG=path`` appends one JSON line per check (and each cell's CPU seconds).
"""

import pytest
from _matrix_cells import CELLS, variants
from _matrix_estimators import OPTION_VALUES, build, factories, keyword_options
from _matrix_families import FAMILIES
from _matrix_rules import ACCEPTS, Raises, expected, first_order, refusal
from _matrix_run import run

import repgrad as rg


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: c.id)
def test_cell(cell):
    outcomes = expected(cell.variant, FAMILIES[cell.family], cell.f, cell.ops)
    refusal_only = all(isinstance(o, Raises) for o in outcomes.values())
    if not cell.in_sample(refusal_only):
        pytest.skip("outside the fixed sample: REPGRAD_MATRIX=full (make matrix) runs it")
    problems = run(cell)
    assert not problems, f"{cell.id}:\n  " + "\n  ".join(problems)


def test_every_registered_factory_and_option_is_declared():
    """Registering an estimator, or giving one a keyword option, puts it in the matrix."""
    names = factories()
    assert set(names) == set(OPTION_VALUES), (
        f"factories {sorted(set(names) ^ set(OPTION_VALUES))} of rg.ESTIMATORS have no entry in "
        "_matrix_estimators.OPTION_VALUES (declare the values of each option) or ACCEPTS in _matrix_rules.py"
    )
    assert set(names) <= set(ACCEPTS)
    run_variants = [v for v, _, _ in variants()]
    for name in names:
        declared = OPTION_VALUES[name]
        assert set(keyword_options(name)) == set(declared), (
            f"rg.{name}'s options {keyword_options(name)} vs declared {sorted(declared)}: declare the values "
            "each option is run with in _matrix_estimators.OPTION_VALUES"
        )
        for option, values in declared.items():
            for value in values[1:]:
                assert any(v.factory == name and (option, value) in v.options for v in run_variants), (name, option, value)
        assert any(c.variant.factory == name for c in CELLS), name


def test_first_order_declarations_match_the_estimators():
    """``_matrix_rules.first_order`` (README's 'derivative orders' column) agrees with ``max_order``."""
    for v, _, _ in variants():
        fam = next((f for f in FAMILIES.values() if refusal(v, f) is None), None)
        if fam is None:
            continue
        est = build(v, fam)
        assert (est.max_order == 1) == first_order(v), (v.id, est.max_order)
        assert isinstance(est, rg.Estimator)
