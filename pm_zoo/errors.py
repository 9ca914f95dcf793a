"""Errors a user can cause, reported as one line that says what to fix."""


class UserError(ValueError):
  """A mistake in the input, flags or configuration, not a bug in pm_zoo.

  Launchers catch it, print ``error: <message>`` on one line and exit with
  status 2, so the message must say both what is wrong and what to do.
  """
