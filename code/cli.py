"""What every step script shares at its edges: the exit-code contract and small flag helpers.

Exit codes: 0 all done, 1 some records failed (listed in a failures file), 2 bad input or
usage (one line on stderr, no traceback, no output written), 130 interrupted (Ctrl-C), 143
terminated (SIGTERM where a step catches it).
"""

import os
import signal
import sys

from realign.errors import DataError, Terminated, UsageError
from realign.files import is_file_error, os_error


def run(main):
    """Call main(); map user errors, and OS errors on files (files.os_error), to one line and
    exit 2. Bugs keep their traceback."""
    try:
        code = main()
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        code = 2
    except OSError as e:  # disk full, read-only, no permission… on a file no helper wrapped: still one line
        if not is_file_error(e):
            raise
        print(f"error: {os_error(e, doing='read or write')}", file=sys.stderr)
        code = 2
    except Terminated as e:
        print(f"terminated ({signal.Signals(e.signum).name})", file=sys.stderr)
        code = 128 + e.signum
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    if code and code >= 128:
        _leave_at_once(code)
    sys.exit(code or 0)


def _leave_at_once(code):
    """After Ctrl-C or SIGTERM, once every `finally` of the step has run (temp files removed, journals
    saved): exit without waiting for worker threads to finish work nobody will read (an encoder
    batch, a model call) or for the interpreter to free its memory, which under load took seconds.
    Not when Ray was loaded: its cluster is stopped at exit."""
    if "ray" in sys.modules:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def check_not_input(outputs, inputs):
    """UsageError when an output path (flag name -> path) would overwrite an input path."""
    ins = {os.path.realpath(p): p for p in inputs if p}
    for flag, path in outputs.items():
        if path and os.path.realpath(path) in ins:
            raise UsageError(f"{path}: {flag} would overwrite the input {ins[os.path.realpath(path)]}; "
                             f"choose another path")


def check_flags(args, at_least=None, positive=(), within=None):
    """UsageError for a numeric flag under its least value ({name: least}), for `positive` ones
    not above 0 (0 would silently mean "no cap" or "no time"), or outside its range ({name: (low,
    high)}, both included: a typo such as --temperature 5 would otherwise be refused by one
    server and silently replaced by another). None means unset."""
    for name, least in (at_least or {}).items():
        value = getattr(args, name)
        if value is not None and value < least:
            raise UsageError(f"--{name} must be >= {least}, got {value}")
    for name, (low, high) in (within or {}).items():
        value = getattr(args, name)
        if value is not None and not low <= value <= high:
            raise UsageError(f"--{name} must be between {low:g} and {high:g}, got {value:g}")
    for name in positive:
        value = getattr(args, name)
        if value is not None and not value > 0:
            raise UsageError(f"--{name} must be positive, got {value:g}")


def add_ray_flags(parser, tensor_parallel_size=True):
    """The flag group both scripts share; harmless when Ray is not installed. `tensor_parallel_size`:
    add that flag too (False for a script that has its own)."""
    from realign.ray.backend import DEFAULT_HTTP_WORKERS  # here: steps without Ray flags skip its imports

    g = parser.add_argument_group("Ray cluster (optional: pip install -e .[ray])")
    g.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process does all the work; ray: spread it over a Ray cluster")
    g.add_argument("--ray_address", default=None,
                   help="cluster to join, e.g. auto or HEAD_IP:6379 (default: $RAY_ADDRESS, else start a local "
                        "cluster on this machine)")
    g.add_argument("--ray_workers", "--replicas", dest="ray_workers", type=int, default=None,
                   help=f"worker actors, i.e. model replicas for vllm (default: {DEFAULT_HTTP_WORKERS} for HTTP, "
                        "cluster GPUs / tensor_parallel_size for vllm, CPUs for the embedded classifier)")
    if tensor_parallel_size:
        g.add_argument("--tensor_parallel_size", type=int, default=None, help="GPUs per vLLM replica (default 1)")


def ray_settings(args):
    """The RaySettings that add_ray_flags' flags ask for."""
    from realign.ray.backend import RaySettings

    return RaySettings(address=args.ray_address, workers=args.ray_workers,
                       tensor_parallel_size=args.tensor_parallel_size)
