"""β and GAN schedules at chosen generator steps."""

import math

import pytest

from vaegan.core.schedules import BetaSchedule, GanSchedule


def test_constant_is_beta_from_step_zero():
    s = BetaSchedule("constant", beta=0.3)
    assert s(0) == 0.3 and s(10_000) == 0.3


def test_linear_warmup_then_ramp():
    s = BetaSchedule("linear", beta=1.0, warmup_steps=100, ramp_steps=200)
    assert s(0) == 0.0 and s(100) == 0.0
    assert s(200) == pytest.approx(0.5)
    assert s(300) == pytest.approx(1.0) and s(5000) == pytest.approx(1.0)


def test_cyclical_restarts_each_cycle():
    s = BetaSchedule("cyclical", beta=2.0, cycles=4, ratio=0.5, total_steps=400)
    # period 100: ramp over 50 steps then hold
    assert s(0) == 0.0
    assert s(25) == pytest.approx(1.0)
    assert s(75) == pytest.approx(2.0)
    assert s(100) == 0.0 and s(125) == pytest.approx(1.0)


def test_sigmoid_midpoint_and_tails():
    s = BetaSchedule("sigmoid", beta=1.0, warmup_steps=10, ramp_steps=100, sharpness=10)
    assert s(5) == 0.0
    assert s(60) == pytest.approx(0.5)
    assert s(110) == pytest.approx(1 / (1 + math.exp(-5)))


def test_capacity_ramps_target_not_weight():
    s = BetaSchedule("capacity", beta=0.01, warmup_steps=0, ramp_steps=100, capacity_max=50)
    assert s(0) == 0.01 and s(80) == 0.01
    assert s.capacity(0) == 0.0 and s.capacity(50) == pytest.approx(25.0)
    assert s.capacity(1000) == pytest.approx(50.0)
    assert BetaSchedule("linear").capacity(10) is None


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"kind": "exponential"}, "schedule.kind"),
        ({"beta": -1.0}, "beta"),
        ({"kind": "linear", "ramp_steps": 0}, "ramp_steps"),
        ({"kind": "cyclical", "ratio": 1.5}, "ratio"),
        ({"kind": "cyclical", "cycles": 0}, "cycles"),
    ],
)
def test_bad_schedule_names_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        BetaSchedule(**kwargs)


def test_gan_off_before_start_then_ramps():
    g = GanSchedule(gan_start=10, ramp_steps=4)
    assert not g.active(9) and g(9) == 0.0
    assert g.active(10) and g(10) == pytest.approx(0.25)
    assert g(13) == pytest.approx(1.0) and g(100) == 1.0
    assert GanSchedule(gan_start=0)(0) == 1.0
    assert not GanSchedule(gan_start=0, enabled=False).active(50)
    with pytest.raises(ValueError, match="gan_start"):
        GanSchedule(gan_start=-1)
