"""What an HTTP endpoint's failure means: worth a retry or not, where it happened, and a hint.

Shared by the OpenAI-compatible backend (realign.llm.openai_http) and the Serper client, so a
misconfigured endpoint reads the same everywhere:

    where("http://user:pw@host:8000/v1/chat/completions?api-version=x")  # 'http://host:8000/v1/chat/completions'
    connect_failure(exc)   # (cause, hint) for an httpx error raised before any answer came
    status_hint(status, message, path)   # a hint for a refused status, or None
    is_html(content_type, text)          # an HTML page where JSON was expected (a login page, a proxy)

Transient (retried, backoff): timeouts, 5xx, 429 rate limits, dropped connections. Not transient
(no retry can fix them): connection refused, unknown host, a bad scheme or URL, HTML instead of
JSON, 401/403/404, a spent quota. The runner stops a run on those (realign.llm.runner).
"""

from urllib.parse import urlsplit

import httpx


def where(url):
    """scheme://host:port/path of a URL: no user info, no query (keys hide there), no fragment."""
    try:
        u = urlsplit(str(url))
        host = u.hostname or ""
        port = u.port
    except ValueError:
        return str(url).split("?")[0].split("@")[-1]
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(u.scheme)
    port = port or default
    return f"{u.scheme}://{host}{f':{port}' if port else ''}{u.path}"


def connect_failure(exc):
    """(cause, hint) for an httpx exception raised before any answer, or None when it is transient
    (a timeout, a dropped connection: retry those)."""
    text = " ".join(str(exc).split())
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return f"bad URL ({text})", "the URL must start with http:// or https://"
    if isinstance(exc, httpx.ConnectError):
        low = text.lower()
        if "name or service not known" in low or "nodename nor servname" in low or "no address" in low \
                or "temporary failure in name resolution" in low or "getaddrinfo" in low:
            return "unknown host", "check the host name in the URL"
        if "certificate" in low or "ssl" in low:
            return f"TLS failed ({text[:120]})", "http:// vs https://? a self-signed certificate?"
        return "connection refused", "is the server running, and on this port?"
    return None


def is_html(content_type, text):
    """True for an HTML page (a login page, a proxy's error page) where a JSON reply was expected."""
    head = (text or "")[:200].lstrip().lower()
    return "html" in (content_type or "").lower() or head.startswith(("<!doctype", "<html"))


def status_hint(status, message, path):
    """A hint for a refused status, from the server's own message where it says more; or None."""
    low = (message or "").lower()
    if "chat/completions" in low and not path.rstrip("/").endswith("chat/completions"):
        return "this is a chat model: did you mean v1/chat/completions? try --chat"
    if "insufficient_quota" in low or "exceeded your current quota" in low:
        return "the account's quota is spent: add credit, or use another key"
    if status == 401:
        return "check the API key (OPENAI_API_KEY / --openai_key, AZURE_OPENAI_API_KEY with --api_type azure)"
    if status == 403:
        return "this key may not use this model or endpoint"
    if status == 404:
        if "/v1/" not in path and "/openai/" not in path:
            return "the base URL of an OpenAI-compatible server usually ends in /v1"
        return "check --model and --base_url"
    return None
