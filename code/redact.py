"""Keep secrets out of everything we print or write.

Call `add_secret(key)` as soon as a key is known (llm.base.api_key does it for a backend's key,
retrieval.py for the Serper key); `scrub(text)` then replaces every registered secret, plus
anything shaped like a provider key or a bearer token, with `***`. Every failure reason,
log line and error message built from a server's answer goes through `scrub`.

Model replies go through `scrub_secrets` instead (llm.base.completion_from_choice, where every
reply is read): the registered keys only, so that a proxy or model echoing the Authorization
header cannot put the key into a shard, merged file or report, while an answer that shows
`Authorization: Bearer <token>` or `api_key = "..."` in its own code example stays as it is.
"""

import re

_SECRETS = set()
_KEY_SHAPES = re.compile(
    r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"      # Authorization: Bearer xyz
    r"|\bsk-[A-Za-z0-9_-]{8,}"                 # OpenAI-style keys
    r"|\b(?:api[_-]?key|x-api-key)(\s*[=:]\s*)['\"]?[A-Za-z0-9._-]{8,}"
)
MASK = "***"


def add_secret(secret):
    """Register a secret (ignored when empty or too short to match safely)."""
    if secret and len(secret) >= 6:
        _SECRETS.add(secret)


def scrub_secrets(text):
    """`text` with the registered secrets masked (nothing else touched)."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def scrub(text):
    """`text` with registered secrets and key-shaped strings masked."""
    return _KEY_SHAPES.sub(MASK, scrub_secrets(str(text)))
