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


def test_bad_schedules_are_user_errors():
  with pytest.raises(UserError):
    schedules.CyclicalKL(cycle_steps=0)
  with pytest.raises(UserError):
    schedules.LinearWarmupKL(warmup_steps=0)
