"""What every step script shares at its edges: the exit-code contract and small flag helpers.

Exit codes: 0 all done, 1 some records failed (listed in a failures file), 2 bad input or
usage (one line on stderr, no traceback, no output written), 130 interrupted.
"""

import os
import sys

from realign.records import DataError, UsageError


def run(main):
    """Call main(); map user errors to one line and exit 2. Bugs keep their traceback."""
    try:
        code = main()
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    sys.exit(code or 0)


def first_n(items, n=10):
    """'a, b, c … (+7 more)' for error messages about many ids."""
    items = list(items)
    shown = ", ".join(repr(x) for x in items[:n])
    return shown + (f" … (+{len(items) - n} more)" if len(items) > n else "")


def check_not_input(outputs, inputs):
    """UsageError when an output path (flag name -> path) would overwrite an input path."""
    ins = {os.path.realpath(p): p for p in inputs if p}
    for flag, path in outputs.items():
        if path and os.path.realpath(path) in ins:
            raise UsageError(f"{path}: {flag} would overwrite the input {ins[os.path.realpath(path)]}; "
                             f"choose another path")


def check_flags(args, at_least=None, positive=()):
    """UsageError for a numeric flag under its least value ({name: least}) or, for `positive`
    ones, not above 0 (0 would silently mean "no cap" or "no time"). None means unset."""
    for name, least in (at_least or {}).items():
        value = getattr(args, name)
        if value is not None and value < least:
            raise UsageError(f"--{name} must be >= {least}, got {value}")
    for name in positive:
        value = getattr(args, name)
        if value is not None and not value > 0:
            raise UsageError(f"--{name} must be positive, got {value:g}")
