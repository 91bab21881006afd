"""A Serper-shaped search server for tests: `POST /search` with an `X-API-KEY` header.

    with SerperFake(api_key="k", answers={"query": {...reply...}}) as srv:
        ... --serper_url {srv.url}/search ...

A query not in `answers` gets a small default reply (an answer box and three organic results
derived from the query). Knobs, all off by default:
    rate_limited=n    the first n requests get 429 with `Retry-After: retry_after`
    server_errors=n   the next n requests get 500
    failing=set()     queries that always get 500
    delay=s           every answer waits s seconds first (a slow server)
    html=True         every request gets a 200 HTML page (a proxy's login page)
    refuse=(status, message), refuse_after=n   after n answers, every request gets that error
A wrong or missing key gets 403, as the real service answers.
"""

import json
import time

from tests.servers.base import FakeServer


def default_reply(query):
    return {
        "searchParameters": {"q": query, "gl": "us", "hl": "en", "type": "search"},
        "answerBox": {"title": query, "answer": f"Short answer about {query}"},
        "organic": [{"title": f"Page {i}", "link": f"https://example.org/{i}",
                     "snippet": f"Result {i} about {query}.", "position": i} for i in (1, 2, 3)],
    }


class SerperFake(FakeServer):
    def __init__(self, api_key="test-serper-key", answers=None, rate_limited=0, retry_after=1,
                 server_errors=0, failing=(), delay=0.0, html=False, refuse=None, refuse_after=0, **kw):
        super().__init__(**kw)
        self.html, self.refuse, self.refuse_after, self._answered = html, refuse, refuse_after, 0
        self.api_key = api_key
        self.answers = answers or {}
        self.rate_limited = rate_limited
        self.retry_after = retry_after
        self.server_errors = server_errors
        self.failing = set(failing)
        self.delay = delay

    def queries(self):
        """The `q` of every request received, in arrival order (retries repeat)."""
        return [json.loads(r["body"])["q"] for r in self.requests if r["body"]]

    def respond(self, method, path, headers, body):
        if self.html:
            return 200, {"Content-Type": "text/html"}, b"<!doctype html><html><title>Log in</title></html>"
        if method != "POST" or path != "/search":
            return self.json_body({"message": "not found"}, 404)
        key = {k.lower(): v for k, v in headers.items()}.get("x-api-key")
        if key != self.api_key:
            return self.json_body({"message": "Unauthorized.", "statusCode": 403}, 403)
        query = json.loads(body)["q"]
        with self.lock:
            if self.refuse and self._answered >= self.refuse_after:
                return self.json_body({"message": self.refuse[1], "statusCode": self.refuse[0]}, self.refuse[0])
            self._answered += 1
            if self.rate_limited > 0:
                self.rate_limited -= 1
                return self.json_body({"message": "Too many requests"}, 429, {"Retry-After": self.retry_after})
            if self.server_errors > 0:
                self.server_errors -= 1
                return self.json_body({"message": "Internal error"}, 500)
        if query in self.failing:
            return self.json_body({"message": "Internal error"}, 500)
        if self.delay:
            time.sleep(self.delay)
        return self.json_body(self.answers.get(query) or default_reply(query))
