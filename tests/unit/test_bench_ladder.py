"""The step phase's arithmetic: the ladder, one step from Postgres samples, and when the
pipeline stops keeping up (bench.ladder)."""

from __future__ import annotations

import pytest

from bench.ladder import (
    Rule,
    Sample,
    Step,
    held_or_lower,
    judge,
    measure,
    misses,
    rates,
    slope,
)


def _step(offered: float, completed: float, growth: float = 0.0, accepted: float = -1) -> Step:
    return Step(
        offered_per_s=offered,
        accepted_per_s=offered if accepted < 0 else accepted,
        completed_per_s=completed,
        backlog_start=100,
        backlog_end=int(100 + growth * 10),
        backlog_growth_per_s=growth,
        window_s=10.0,
    )


def _simulate(offered: list[float], capacity: float, step_s: int = 15) -> list[Step]:
    """A pipeline that completes at most `capacity` orders a second (after a 2 s delay), fed
    one ladder step after another; sampled once a second like the phase does."""
    accepted = done = 0.0
    samples: list[Sample] = []
    arrivals: list[float] = []
    steps: list[Step] = []
    t = 0
    for rate in offered:
        for _ in range(step_s):
            t += 1
            accepted += rate
            arrivals.append(accepted)
            ready = arrivals[-3] if len(arrivals) >= 3 else 0.0  # accepted 2 s ago
            done = min(done + capacity, ready)
            samples.append(Sample(float(t), round(accepted), round(done)))
        step = measure(samples, t - step_s + 5, t, rate)
        assert step is not None
        steps.append(step)
    return steps


def test_rates_climb_by_the_increment_up_to_the_cap() -> None:
    assert rates(100, 60, 400) == [100, 160, 220, 280, 340, 400]
    assert rates(100, 60, 99) == []
    # or a share of the rate, when that is more: 400 + 60, 460 + 69, 529 + 79.4
    assert rates(100, 60, 700, growth=0.15)[5:] == [400, 460, 529, 608.4, 699.6]
    with pytest.raises(ValueError):
        rates(0, 60, 400)


def test_slope_is_least_squares() -> None:
    assert slope([(0, 1), (1, 3), (2, 5)]) == pytest.approx(2.0)
    assert slope([(0, 5), (1, 9), (2, 5), (3, 9)]) == pytest.approx(0.8)
    assert slope([(1, 5)]) == 0.0
    assert slope([(1, 5), (1, 7)]) == 0.0


def test_measure_takes_the_samples_inside_the_window() -> None:
    samples = [Sample(float(t), 200 * t, 180 * t - 50) for t in range(0, 20)]
    step = measure(samples, 5.0, 15.0, 200.0)
    assert step is not None
    assert step.window_s == 10.0
    assert step.accepted_per_s == pytest.approx(200.0)
    assert step.completed_per_s == pytest.approx(180.0)
    assert step.backlog_start == 5 * 20 + 50
    assert step.backlog_end == 15 * 20 + 50
    assert step.backlog_growth_per_s == pytest.approx(20.0)
    assert step.t_from == 5.0
    assert "t_from" not in step.as_dict()
    assert measure(samples, 5.0, 5.5, 200.0) is None  # one sample: no rate


def test_a_step_that_follows_the_offered_rate_keeps_up() -> None:
    assert misses(_step(300, 296, growth=3), Rule()) == []
    assert misses(_step(300, 275, growth=20), Rule()) == []  # lumpy batches, within tolerance


def test_each_way_of_falling_behind_is_a_miss() -> None:
    assert "completed" in misses(_step(480, 376), Rule())[0]
    assert "backlog" in misses(_step(480, 460, growth=60), Rule())[0]
    assert "accepted" in misses(_step(480, 470, accepted=400), Rule())[0]


def test_saturation_needs_consecutive_misses_and_is_the_best_completed_rate() -> None:
    steps = [_step(100, 99), _step(160, 161), _step(220, 150), _step(280, 279), _step(340, 338)]
    verdict = judge(steps, Rule())
    assert not verdict.saturated  # one miss (a neighbour's burst) and the ladder went on
    assert verdict.misses == 1
    steps += [_step(400, 355, growth=45), _step(460, 376, growth=84)]
    verdict = judge(steps, Rule())
    assert verdict.saturated
    assert verdict.completed_per_s == 376
    assert verdict.at_step == 6
    assert judge(steps[:-1], Rule(confirm=1)).saturated


def test_a_step_working_off_an_earlier_backlog_counts_at_its_offered_rate() -> None:
    steps = [_step(100, 40, growth=60), _step(160, 230, growth=-70), _step(220, 150, growth=70)]
    verdict = judge(steps, Rule())
    assert verdict.completed_per_s == 160  # not 230: that step also drained the first one's
    assert verdict.at_step == 1


def test_a_step_taking_in_less_than_it_completes_counts_at_its_accepted_rate() -> None:
    # the last three steps of run 20261204-055058: the 608/s step accepted 454/s, completed
    # 512/s, and its backlog fell by 100/s (the 529/s step's)
    steps = [
        _step(460, 457.9, growth=-20, accepted=453.9),
        _step(529, 390.2, growth=114, accepted=470.6),
        _step(608.4, 512.4, growth=-100.6, accepted=454.2),
    ]
    verdict = judge(steps, Rule())
    assert verdict.saturated
    assert verdict.completed_per_s == pytest.approx(454.2)  # not 512.4
    assert verdict.at_step == 2


def test_no_steps_no_saturation() -> None:
    verdict = judge([], Rule())
    assert not verdict.saturated and verdict.at_step is None and verdict.completed_per_s == 0


def test_a_simulated_pipeline_saturates_at_its_capacity() -> None:
    ladder = rates(100, 60, 700)
    steps: list[Step] = []
    for n in range(1, len(ladder) + 1):  # the phase judges after each step
        steps = _simulate(ladder[:n], capacity=410)
        if judge(steps, Rule()).saturated:
            break
    verdict = judge(steps, Rule())
    assert verdict.saturated
    assert verdict.completed_per_s == pytest.approx(410, abs=1)
    assert [s.offered_per_s for s in steps][-2:] == [460, 520]  # 400 kept up; 460 and 520 not


def test_a_held_rate_that_keeps_up_is_confirmed_and_one_that_does_not_is_lowered() -> None:
    assert held_or_lower(_step(700, 690, growth=5), Rule()) is None
    # the 2026-12-06 run's 90 % point: 830/s offered, 717/s completed for 20 s
    assert held_or_lower(_step(830, 717, growth=110), Rule()) == round(0.95 * 717, 1)
    assert held_or_lower(_step(830, 820, accepted=700), Rule()) == round(0.95 * 700, 1)


def test_holding_the_ladders_point_finds_what_a_pipeline_sustains() -> None:
    """A pipeline that works off a burst for a few seconds (its queue) but sustains 600/s: the
    ladder's 10 s windows see more, a 20 s hold at that rate does not keep up (the rule's
    tolerances let a hold within 10 % of the capacity pass), and the rate it then holds is
    below what it sustains."""
    ladder_point = 700.0
    [held] = _simulate([ladder_point], capacity=600.0, step_s=20)
    lower = held_or_lower(held, Rule())
    assert lower is not None and lower < 600.0
    [again] = _simulate([lower], capacity=600.0, step_s=20)
    assert held_or_lower(again, Rule()) is None
