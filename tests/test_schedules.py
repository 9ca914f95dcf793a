"""KL-weight and learning-rate schedules."""
import numpy as np
import pytest

from pm_zoo.errors import UserError
from pm_zoo.training import schedules


def test_constant_and_warmup():
  assert float(schedules.ConstantKL(0.3)(1000)) == pytest.approx(0.3)
  warm = schedules.LinearWarmupKL(warmup_steps=100, final=2.0)
  np.testing.assert_allclose([float(warm(s)) for s in (0, 50, 100, 500)],
                             [0.0, 1.0, 2.0, 2.0])


def test_cyclical_ramps_then_holds_each_cycle():
  kl = schedules.CyclicalKL(cycle_steps=100, ramp_fraction=0.5, maximum=1.0)
  values = [float(kl(s)) for s in (0, 25, 50, 99, 100, 125, 175)]
  np.testing.assert_allclose(values, [0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0])


def test_exponential_decay_is_staircase():
  lr = schedules.exponential_decay(1e-3, 0.9, 5000, True)
  np.testing.assert_allclose([float(lr(s)) for s in (0, 4999, 5000, 10000)],
                             [1e-3, 1e-3, 9e-4, 8.1e-4], rtol=1e-5)


def test_cosine_decay_warms_up_then_reaches_its_floor_at_total_steps():
  lr = schedules.cosine_decay(peak=4e-4, total_steps=1100, warmup_steps=100,
                              final_fraction=0.25)
  values = [float(lr(s)) for s in (0, 50, 100, 600, 1100, 5000)]
  # Half-way through the cosine (step 600) the rate is the mean of peak and floor.
  np.testing.assert_allclose(values, [0.0, 2e-4, 4e-4, 2.5e-4, 1e-4, 1e-4],
                             rtol=1e-5, atol=1e-9)
  no_warmup = schedules.cosine_decay(peak=1e-3, total_steps=10)
  np.testing.assert_allclose([float(no_warmup(s)) for s in (0, 5, 10)],
                             [1e-3, 5e-4, 0.0], atol=1e-9)


def test_bad_schedules_are_user_errors():
  with pytest.raises(UserError, match='warmup_steps < total_steps'):
    schedules.cosine_decay(total_steps=100, warmup_steps=100)
  with pytest.raises(UserError, match='final_fraction'):
    schedules.cosine_decay(final_fraction=1.5)
  with pytest.raises(UserError):
    schedules.CyclicalKL(cycle_steps=0)
  with pytest.raises(UserError):
    schedules.LinearWarmupKL(warmup_steps=0)
