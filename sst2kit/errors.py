"""The two ways a run stops on purpose: bad input, and a run that produced no finding."""


class UsageError(Exception):
    """Bad input from the user: reported as one line naming the fix, exit status 2."""


class Diverged(UsageError):
    """A run whose loss or predictions stopped being finite numbers: no finding can be drawn from
    it."""
