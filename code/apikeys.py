"""API keys: read from a flag, a file or the environment, checked before any request, and
registered with realign.redact so that no text we print or write shows them.

    key = find_key("--openai_key", flag_value, key_file=path, env="OPENAI_API_KEY")

A key is stripped of the whitespace around it (a file's trailing newline, a `\\r` pasted from
Windows). One that still holds a control character or a character outside ASCII (a look-alike
dash or quote copied from a web page, a no-break space) would never reach a server: HTTP headers
cannot carry it. It is refused on one line, naming the source and the position, never the key.
A key given as a flag is readable by every local user in `ps` for the whole run: a one-line
warning says so and names the two ways that are not.
"""

import os
import sys
import unicodedata

from realign.errors import UsageError
from realign.redact import add_secret


def read_key_file(path, flag):
    """The key in file `path` (given as `flag`), stripped; UsageError when it cannot be read or is empty."""
    try:
        with open(path, encoding="utf-8") as f:
            key = f.read().strip()
    except FileNotFoundError:
        raise UsageError(f"{flag} {path}: file not found") from None
    except IsADirectoryError:
        raise UsageError(f"{flag} {path}: is a folder, expected a file holding the key") from None
    except UnicodeDecodeError:
        raise UsageError(f"{flag} {path}: not UTF-8 text; the file must hold the key and nothing else") from None
    except OSError as e:
        raise UsageError(f"{flag} {path}: cannot read it ({e.strerror})") from None
    if not key:
        raise UsageError(f"{flag} {path}: the file is empty")
    if "\n" in key:
        raise UsageError(f"{flag} {path}: holds more than one line; the file must hold the key and nothing else")
    return key


def _what(ch):
    name = unicodedata.name(ch, "")
    if ord(ch) < 32 or ord(ch) == 127:
        return f"a control character (U+{ord(ch):04X}{', ' + name if name else ''})"
    return f"a character outside ASCII (U+{ord(ch):04X}{' ' + name if name else ''})"


def check_key(key, source):
    """`key` without the whitespace around it; UsageError naming `source` and the position of a
    control or non-ASCII character inside it (never the key itself)."""
    key = key.strip()
    for i, ch in enumerate(key):
        if ord(ch) < 32 or ord(ch) >= 127:
            raise UsageError(f"the API key from {source} has {_what(ch)} at position {i + 1} of {len(key)}; "
                             f"API keys are plain ASCII: copy it again from the provider's page")
    return key


def find_key(flag, given=None, *, key_file=None, env=None, file_flag=None):
    """The key from `given` (the value of `flag`), the file `key_file` (`file_flag`, default
    FLAG_file) or the environment variable `env`, in that order; None when there is none.
    Checked (check_key) and registered for scrubbing; a key given on the command line is warned about."""
    file_flag = file_flag or f"{flag}_file"
    if given and key_file:
        raise UsageError(f"give {flag} or {file_flag}, not both")
    if key_file:
        key, source = read_key_file(key_file, file_flag), f"{file_flag} {key_file}"
    elif given:
        key, source = given, flag
        print(f"warning: {flag} is readable by every user of this machine (ps, /proc) while the run lasts; "
              f"prefer {f'the {env} environment variable or ' if env else ''}{file_flag}", file=sys.stderr)
    else:
        key, source = (os.environ.get(env) if env else None), env
    if not key or not key.strip():
        return None
    add_secret(key)  # as given too: an echo of the unstripped value is masked as well
    key = check_key(key, source)
    add_secret(key)
    return key
