"""The experiment estimator never prints a meaningless interval (issue 30): a design that
cannot reach 5 % says so, small designs are enumerated exactly, large ones sampled with
the Monte Carlo error stated. The exact p-values are checked against a brute force
written here independently of the estimator."""

from __future__ import annotations

import itertools
import math

from shared.domain.indicators.experiment import EXACT_ASSIGNMENTS_MAX, UnitChange, assignment_count, estimate

SIX = [5.0, 7.0, 2.0, 1.0, -1.0, 0.5]  # the first three treated


def units_of(changes: list[float], treated: int) -> list[UnitChange]:
    return [UnitChange(f"u{i}", i < treated, "", c) for i, c in enumerate(changes)]


def brute_force_p(changes: list[float], treated: int, tau: float = 0.0) -> float:
    """Every way to treat `treated` of the units: how many give a difference (after taking
    `tau` off the actually treated units) at least as far from zero as the observed."""
    shifted = [c - tau if i < treated else c for i, c in enumerate(changes)]

    def difference(chosen: tuple[int, ...]) -> float:
        inside = [shifted[i] for i in chosen]
        outside = [shifted[i] for i in range(len(shifted)) if i not in chosen]
        return sum(inside) / len(inside) - sum(outside) / len(outside)

    observed = abs(difference(tuple(range(treated))))
    draws = list(itertools.combinations(range(len(changes)), treated))
    return sum(abs(difference(c)) >= observed - 1e-9 for c in draws) / len(draws)


def test_three_of_six_treated_says_no_effect_can_be_significant_instead_of_an_endless_interval() -> None:
    result = estimate("x", units_of(SIX, 3), stratified=False, seed=1)
    assert result.low_points is None
    assert result.high_points is None
    assert not result.reachable
    assert result.assignments == math.comb(6, 3) == 20
    assert result.interval_text() == ("with 3 of 6 units treated no effect is significant at 5 %: 20 assignments, "
                                      "the smallest p is 0.100")


def test_a_design_that_can_be_enumerated_is_enumerated_and_its_p_value_is_exact() -> None:
    result = estimate("x", units_of(SIX, 3), stratified=False, seed=1)
    assert result.exact
    assert result.permutations == 20
    assert result.p_value == brute_force_p(SIX, 3)  # 0.1000, where 2,000 samples gave 0.1029
    assert result.monte_carlo_error is None
    assert result.p_value_text() == "permutation p = 0.100 (exact, 20 assignments)"


def test_the_interval_ends_where_the_exact_test_starts_rejecting_and_is_bounded() -> None:
    changes = [9.0, 11.0, 8.5, 12.0, 10.0, 1.0, -0.5, 0.0, 2.0, 1.5]
    result = estimate("x", units_of(changes, 5), stratified=False, seed=1)
    assert result.exact
    assert result.assignments == 252
    assert result.low_points is not None
    assert result.high_points is not None
    assert result.low_points < result.effect_points < result.high_points
    spread = max(changes) - min(changes)
    assert result.effect_points - 2 * spread < result.low_points
    assert result.high_points < result.effect_points + 2 * spread
    # Within a millionth of each end, the brute force accepts inside and rejects outside.
    step = 1e-6
    for end, outward in ((result.low_points, -step), (result.high_points, step)):
        assert brute_force_p(changes, 5, end - outward) >= 0.05
        assert brute_force_p(changes, 5, end + outward) < 0.05


def test_a_design_beyond_the_bound_is_sampled_and_states_its_monte_carlo_error() -> None:
    changes = [float((i * 37) % 11) + (3.0 if i < 10 else 0.0) for i in range(20)]
    units = units_of(changes, 10)
    assert assignment_count(units, stratified=False) == math.comb(20, 10) > EXACT_ASSIGNMENTS_MAX
    result = estimate("x", units, stratified=False, seed=1, permutations=999)
    assert not result.exact
    assert result.permutations == 999
    assert result.monte_carlo_error is not None
    assert math.isclose(result.monte_carlo_error, math.sqrt(result.p_value * (1 - result.p_value) / 999))
    assert "±" in result.p_value_text()
    assert "sampled of 184,756 assignments" in result.p_value_text()


def test_strata_multiply_the_assignments_and_are_enumerated_within_each() -> None:
    units = [UnitChange(f"u{i}", i % 4 < 2, f"s{i // 4}", float(i % 5)) for i in range(12)]
    assert assignment_count(units, stratified=True) == 6 ** 3
    result = estimate("x", units, stratified=True, seed=1)
    assert result.exact
    assert result.permutations == 216


def test_the_command_prints_the_reason_and_no_interval(capsys: object) -> None:
    from cli.experiment import _print

    _print([estimate("x", units_of(SIX, 3), stratified=False, seed=1)], [])
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "no effect is significant at 5 %" in out
    assert "interval [" not in out
