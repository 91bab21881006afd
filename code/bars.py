"""The one progress bar every step draws: on stderr, and only when stderr is a terminal.

Redirected to a log or a pipe, a step draws nothing; its summary line says what happened.
"""

import sys

from tqdm import tqdm


def progress_bar(total, unit, desc=None, enabled=True, **kw):
    """A tqdm bar on stderr; `enabled=False` (e.g. --quiet) or a non-terminal stderr draws nothing."""
    return tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, disable=None if enabled else True,
                dynamic_ncols=True, mininterval=0.5, **kw)
