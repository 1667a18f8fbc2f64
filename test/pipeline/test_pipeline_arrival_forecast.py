"""ArrivalForecast: a camera's period and jitter window from its arrivals, and its next slot."""

from __future__ import annotations

import pytest

from togethernet_ros.pipeline.arrival_forecast import ArrivalForecast

PERIOD = 1 / 30


def feed(forecast: ArrivalForecast, camera: str, times: list[float]) -> None:
    for arrived_at in times:
        forecast.record(camera, arrived_at)


def test_rhythm_is_unknown_until_enough_intervals():
    forecast = ArrivalForecast(min_intervals=3)
    feed(forecast, "front", [10.0, 10.0 + PERIOD, 10.0 + 2 * PERIOD])
    assert forecast.rhythm("front") is None and forecast.next_slot("front", 10.1) is None
    forecast.record("front", 10.0 + 3 * PERIOD)
    period, window = forecast.rhythm("front")
    assert period == pytest.approx(PERIOD) and window == pytest.approx(0.001)  # the floor
    assert forecast.rhythm("rear") is None  # never seen


def test_next_slot_is_a_period_after_the_last_frame():
    forecast = ArrivalForecast()
    feed(forecast, "front", [10.0 + k * PERIOD for k in range(5)])
    last = 10.0 + 4 * PERIOD
    earliest, latest = forecast.next_slot("front", last + 0.005)
    assert earliest == pytest.approx(last + PERIOD - 0.001)
    assert latest == pytest.approx(last + PERIOD + 0.001)


def test_an_overdue_frame_counts_as_lost_and_the_next_slot_is_a_period_on():
    forecast = ArrivalForecast()
    feed(forecast, "front", [10.0 + k * PERIOD for k in range(5)])
    last = 10.0 + 4 * PERIOD
    _, latest = forecast.next_slot("front", last + PERIOD)
    earliest, latest_after = forecast.next_slot("front", latest)  # exactly at the slot's end
    assert earliest == pytest.approx(last + 2 * PERIOD - 0.001) and latest_after > latest
    earliest, _ = forecast.next_slot("front", last + 3.5 * PERIOD)  # three slots missed
    assert earliest == pytest.approx(last + 4 * PERIOD - 0.001)


def test_jitter_widens_the_window_and_a_lost_frame_does_not_move_the_period():
    forecast = ArrivalForecast()
    jitter = [0.0, 0.002, -0.002, 0.001, -0.001, 0.002, -0.002, 0.0]
    feed(forecast, "front", [10.0 + k * PERIOD + j for k, j in enumerate(jitter)])
    forecast.record("front", 10.0 + 9 * PERIOD)  # frame 8 lost on the way: one double interval
    period, window = forecast.rhythm("front")
    assert period == pytest.approx(PERIOD, abs=0.0025)
    assert 0.002 < window < PERIOD / 2


def test_a_camera_too_irregular_to_forecast_has_no_rhythm():
    forecast = ArrivalForecast()
    intervals = [0.005, 0.06, 0.01, 0.05, 0.02, 0.07, 0.005, 0.04]
    times = [10.0]
    for interval in intervals:
        times.append(times[-1] + interval)
    feed(forecast, "front", times)
    assert forecast.rhythm("front") is None


def test_a_pause_longer_than_max_interval_starts_the_rhythm_afresh():
    forecast = ArrivalForecast(max_interval_s=1.0)
    feed(forecast, "front", [10.0 + k * PERIOD for k in range(6)])
    assert forecast.rhythm("front") is not None
    forecast.record("front", 20.0)
    assert forecast.rhythm("front") is None
    feed(forecast, "front", [20.0 + k * 0.1 for k in range(1, 4)])  # back at 10 Hz
    assert forecast.rhythm("front")[0] == pytest.approx(0.1)


def test_frames_in_the_same_clock_tick_do_not_count_as_an_interval():
    forecast = ArrivalForecast()
    feed(forecast, "front", [10.0, 10.0, 10.0, 10.1, 10.2])
    assert forecast.rhythm("front") is None  # two intervals so far, not four
    forecast.record("front", 10.3)
    assert forecast.rhythm("front")[0] == pytest.approx(0.1)


@pytest.mark.parametrize(
    "arguments, problem",
    [
        ({"history": 2, "min_intervals": 3}, "min_intervals <= history"),
        ({"min_intervals": 0}, "min_intervals <= history"),
        ({"min_window_s": -0.001}, "min_window_s"),
        ({"max_interval_s": float("nan")}, "max_interval_s"),
    ],
)
def test_bad_settings_are_refused_by_name(arguments, problem):
    with pytest.raises(ValueError, match=problem):
        ArrivalForecast(**arguments)


def test_the_next_slot_is_never_overdue_even_at_whole_periods_past_a_window():
    # Float rounding once moved such a slot one period short, so a waiting batcher spun.
    for base in (0.0, 393_353.0, 987_654.321):
        forecast = ArrivalForecast(min_window_s=0.0 if base else 0.001)
        feed(forecast, "front", [base + k * PERIOD for k in range(5)])
        period, window = forecast.rhythm("front")
        for whole in range(30):
            now = base + 4 * PERIOD + period + window + whole * period
            earliest, latest = forecast.next_slot("front", now)
            assert latest > now and latest - earliest == pytest.approx(2 * window)


def test_one_late_frame_does_not_move_the_next_slot():
    forecast = ArrivalForecast()
    on_time = [10.0 + k * PERIOD for k in range(9)]
    feed(forecast, "front", [*on_time[:8], on_time[8] + 0.004])  # frame 8 arrives 4 ms late
    earliest, latest = forecast.next_slot("front", on_time[8] + 0.005)
    assert (earliest + latest) / 2 == pytest.approx(10.0 + 9 * PERIOD, abs=1e-4)


def test_a_clock_going_backwards_starts_the_rhythm_afresh():
    forecast = ArrivalForecast()
    feed(forecast, "front", [10.0 + k * PERIOD for k in range(6)])
    forecast.record("front", 5.0)  # a looping bag's log time jumps back
    assert forecast.rhythm("front") is None
