"""The two errors a user can cause, and the helper their messages share; every layer imports this.

Scripts print either on one line and exit 2 (realign.cli.run); bugs stay tracebacks.
"""


class DataError(Exception):
    """Bad input the user can fix; scripts print it on one line and exit 2."""


class UsageError(DataError):
    """Bad flags or paths; handled like DataError."""


def first_n(items, n=10):
    """'a, b, c … (+7 more)' for error messages about many ids."""
    items = list(items)
    shown = ", ".join(repr(x) for x in items[:n])
    return shown + (f" … (+{len(items) - n} more)" if len(items) > n else "")
