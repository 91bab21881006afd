"""The two errors a user can cause, and the helpers that raise them; every layer imports this.

Scripts print either on one line and exit 2 (realign.cli.run); bugs stay tracebacks.
"""

import importlib


class DataError(Exception):
    """Bad input the user can fix; scripts print it on one line and exit 2."""


class UsageError(DataError):
    """Bad flags or paths; handled like DataError."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where a step asked for it (files.all_or_nothing) so clean-up runs
    as for Ctrl-C; scripts exit 128 + the signal's number."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def import_extra(module, missing):
    """`module` imported now, when a run first needs it (vllm, xllamacpp, ray are optional extras);
    UsageError(`missing`, which says what to install) when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(missing) from None


def first_n(items, n=10):
    """'a, b, c … (+7 more)' for error messages about many ids."""
    items = list(items)
    shown = ", ".join(repr(x) for x in items[:n])
    return shown + (f" … (+{len(items) - n} more)" if len(items) > n else "")
