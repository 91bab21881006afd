"""Serper (Google Search) client: one POST per query, a batch of queries in flight at once.

    client = SerperClient(api_key, url=DEFAULT_URL, timeout=30, retry=RetryPolicy(4), cache=QueryCache(p))
    client.search_many(queries, top_k=5)   # {query: [hits]} or {query: SearchFailed(reason)}
    client.close()

Each request is `POST {url}` with header `X-API-KEY` and body `{"q", "gl": "us", "hl": "en"}`.
Rate limits (429), server errors (5xx), timeouts and dropped connections are retried with
realign.limits.RetryPolicy (full-jitter backoff, Retry-After honoured, bounded attempts);
a query that still fails comes back as SearchFailed and the caller carries on. A rejected key
(401/403) stops the run: every other query would fail the same way. So does, before any answer,
a failure no retry fixes (nothing listening, a bad URL, an HTML page, 404, a 400 every query
gets): UsageError naming the endpoint. Later, 10 queries in a row failing the same way trip the
circuit breaker (`breaker.stopped`): the rest come back as SearchFailed without a request.

The key travels only in the request header: no message, exception or cache entry holds it.
"""

import asyncio

import httpx

from realign.endpoint import Breaker, EndpointError, connect_failure, is_html, where
from realign.errors import UsageError
from realign.files import JSON_ERRORS
from realign.limits import RetryPolicy, retry_after_seconds
from realign.search.cache import cache_key
from realign.search.clean import serper_hits

DEFAULT_URL = "https://google.serper.dev/search"
MAX_QUERY_CHARS = 400   # Google reads about 32 words; longer questions are cut at a word boundary


class SearchFailed(Exception):
    """One query that could not be answered after its retries; str() is the reason."""


def shorten(query, limit=MAX_QUERY_CHARS):
    query = " ".join(query.lstrip()[:4 * limit].split())  # cut first: split() of 50 MB is 600 MB of words
    if len(query) <= limit:
        return query
    return query[:limit].rsplit(" ", 1)[0]


class SerperClient:
    def __init__(self, api_key, url=DEFAULT_URL, timeout=30.0, retry=None, cache=None, gl="us", hl="en"):
        self._headers = {"X-API-KEY": api_key, "Content-Type": "application/json"}
        self.url = url
        self.timeout = httpx.Timeout(timeout, connect=min(10.0, timeout))
        self.retry = retry or RetryPolicy(max_retries=4)
        self.cache = cache
        self.gl, self.hl = gl, hl
        self.requests = 0  # HTTP requests sent, retries included
        self.breaker = Breaker()  # stops a run no retry can save (realign.endpoint)
        self._loop = asyncio.new_event_loop()  # batches run one after another on this loop
        self._http = None

    def search_many(self, queries, top_k=5):
        """{query: [hits] | SearchFailed} for each distinct query, fetched concurrently."""
        queries = list(dict.fromkeys(queries))
        replies = self._loop.run_until_complete(self._fetch_all(queries))
        return {q: r if isinstance(r, SearchFailed) else serper_hits(r, top_k) for q, r in zip(queries, replies)}

    async def _fetch_all(self, queries):
        if self._http is None:  # one client for the whole run: connections and TLS are reused
            self._http = httpx.AsyncClient(timeout=self.timeout, headers=self._headers)
        tasks = [asyncio.ensure_future(self._fetch(self._http, q)) for q in queries]
        try:
            return await asyncio.gather(*tasks)
        finally:  # the endpoint refused the run: stop the others, and take their errors too (no stray warnings)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def close(self):
        if self._http is not None:
            self._loop.run_until_complete(self._http.aclose())
        self._loop.close()
        if self.cache is not None:
            self.cache.close()

    async def _fetch(self, http, query):
        body = {"q": shorten(query), "gl": self.gl, "hl": self.hl}
        key = cache_key(self.url, body["q"], self.gl, self.hl)
        if self.cache is not None and (cached := self.cache.get(key)) is not None:
            return cached
        attempts = self.retry.max_retries + 1
        for attempt in range(attempts):
            if self.breaker.stopped:
                return SearchFailed(f"not sent: the run stopped ({self.breaker.stopped})")
            retry_after = None
            try:
                self.requests += 1
                resp = await http.post(self.url, json=body)
            except httpx.TimeoutException:
                reason = f"timed out after {self.timeout.read:g} s"
                if not self.breaker.succeeded:
                    self._failed(EndpointError(reason, cause="no answer", endpoint=where(self.url),
                                               hint="raise --timeout if the server is only slow"))
            except httpx.TransportError as e:
                refused = connect_failure(e)
                if refused:
                    return self._failed(EndpointError(refused[0], cause=refused[0], fatal=True,
                                                      endpoint=where(self.url), hint=refused[1]))
                reason = f"connection failed ({type(e).__name__})"
            else:
                if resp.status_code == 200:
                    return self._accept(resp, key)
                if resp.status_code in (401, 403):
                    raise UsageError(f"Serper refused the API key (HTTP {resp.status_code}); check SERPER_API_KEY")
                reason = f"HTTP {resp.status_code}"
                if not self.retry.should_retry(resp.status_code):
                    reason += self._message(resp)
                    return self._failed(EndpointError(reason, cause=reason, fatal=resp.status_code == 404,
                                                      endpoint=where(self.url),
                                                      hint="check --serper_url" if resp.status_code == 404 else None))
                retry_after = retry_after_seconds(resp.headers)
            if attempt + 1 < attempts:
                await asyncio.sleep(self.retry.delay(attempt, retry_after))
        return SearchFailed(f"{reason} ({attempts} attempts)")

    def _failed(self, err):
        """SearchFailed for a failure no retry fixes, after the breaker has counted it (and raised
        UsageError when the endpoint refuses the run before any answer)."""
        try:
            self.breaker.failure(err)
        except EndpointError:
            raise UsageError(f"the search endpoint refused the run: {err.one_line()}") from None
        return SearchFailed(err.reason)

    @staticmethod
    def _message(resp):
        """': the server's own message' when its error body has one, an HTML page named as such."""
        if is_html(resp.headers.get("content-type"), resp.text):
            return ": an HTML page, not the Serper API"
        try:
            msg = resp.json().get("message")
        except (ValueError, AttributeError):
            return ""
        return f": {' '.join(str(msg).split())[:200]}" if msg else ""

    def _accept(self, resp, key):
        try:
            reply = resp.json()
        except JSON_ERRORS:  # RecursionError too: a reply nested thousands deep
            html = is_html(resp.headers.get("content-type"), resp.text)
            return self._failed(EndpointError("an HTML page, not the Serper API" if html else "reply is not JSON",
                                              cause="not JSON", fatal=True, endpoint=where(self.url),
                                              hint="check --serper_url (https://google.serper.dev/search)"))
        if not isinstance(reply, dict):
            return SearchFailed("reply is not a JSON object")
        self.breaker.success()
        if self.cache is not None:
            self.cache.put(key, reply)
        return reply
