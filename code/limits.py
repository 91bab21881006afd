"""Being a polite, fast client: retry/backoff, client-side rate caps, adaptive concurrency.

Provider-agnostic; used by the LLM runner (realign.llm.runner) and by the Serper client.

    policy = RetryPolicy(max_retries=5, base=1.0, cap=60.0)
    policy.delay(attempt, retry_after=retry_after_seconds(headers))   # seconds to wait
    policy.should_retry(status)                                       # 429, 408, 409, 5xx

    bucket = TokenBucket.per_minute(600)       # --rpm 600
    await bucket.acquire()                     # or acquire(n) for --tpm

    limiter = AdaptiveLimiter(limit=32)        # AIMD on requests in flight
    async with limiter.slot() as slot:
        ...                                    # on a 429: slot.overloaded()

Every wait here is bounded: delays are capped, Retry-After is capped, and an oversized
token request is clamped to the bucket size rather than waiting forever.
"""

import asyncio
import email.utils
import random
import time

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
MAX_RETRY_AFTER = 120.0  # never trust a server to park us longer than this per attempt
CALL_TIMEOUT_SLACK = 5.0  # s on top of a backend's request_timeout for the hard bound on one call:
                          # the HTTP client's own timeout, with its clearer message, fires first
RPM_BURST_SECONDS = 1.0   # an --rpm cap lets one second's worth of requests go at once
TPM_BURST_SECONDS = 6.0   # a --tpm cap lets six seconds' worth of tokens go at once


# ---------------------------------------------------------------- retry policy

def retry_after_seconds(headers, now=None):
    """Seconds a response asks us to wait, or None.

    Reads `retry-after-ms` (OpenAI style), then `Retry-After` as seconds or an HTTP date.
    `headers` is any mapping; lookup is case-insensitive.
    """
    if not headers:
        return None
    lower = {str(k).lower(): v for k, v in dict(headers).items()}
    ms = lower.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = lower.get("retry-after")
    if value is None:
        return None
    value = str(value).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


class RetryPolicy:
    """How many times to retry and how long to wait before attempt `attempt` (0-based).

    Without a hint the wait is "full jitter" exponential backoff: uniform(0, min(cap,
    base * 2**attempt)), which spreads a crowd of failing clients apart. With a server's
    Retry-After the wait is that value plus up to 10 % jitter (capped at MAX_RETRY_AFTER).
    """

    def __init__(self, max_retries=5, base=1.0, cap=60.0, rng=None):
        self.max_retries = max_retries
        self.base = base
        self.cap = cap
        self._rng = rng or random.Random()

    def should_retry(self, status):
        """True for HTTP statuses worth another try (rate limits, timeouts, server errors)."""
        return status in RETRYABLE_STATUS or (status is not None and status >= 500)

    def delay(self, attempt, retry_after=None):
        if retry_after is not None:
            wait = min(float(retry_after), MAX_RETRY_AFTER)
            return wait + self._rng.uniform(0, 0.1 * wait + 0.05)
        return self._rng.uniform(0, min(self.cap, self.base * (2 ** attempt)))


# ---------------------------------------------------------------- token bucket

class TokenBucket:
    """Refills `rate` tokens a second up to `capacity`; `acquire(n)` waits until n are there.

    Waiters are served one at a time in arrival order, so a big request is not starved.
    """

    def __init__(self, rate, capacity=None, clock=time.monotonic):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.capacity = float(capacity if capacity is not None else max(1.0, rate))
        self._tokens = self.capacity
        self._clock = clock
        self._stamp = clock()
        self._lock = None  # created lazily inside the running loop

    @classmethod
    def per_minute(cls, amount, burst_seconds=1.0):
        """A bucket for "amount per minute" holding at most `burst_seconds` worth (>= 1 token)."""
        rate = amount / 60.0
        return cls(rate, capacity=max(1.0, rate * burst_seconds))

    def _refill(self):
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def try_take(self, amount=1.0):
        """Take `amount` now if available; returns the seconds to wait otherwise (0.0 = taken)."""
        amount = min(float(amount), self.capacity)
        self._refill()
        if self._tokens >= amount:
            self._tokens -= amount
            return 0.0
        return (amount - self._tokens) / self.rate

    async def acquire(self, amount=1.0):
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            while True:
                wait = self.try_take(amount)
                if wait == 0.0:
                    return
                await asyncio.sleep(wait)


# ---------------------------------------------------------------- adaptive concurrency

class AdaptiveLimiter:
    """How many requests may be in flight, adapted to what the server accepts.

    Slow start: the limit begins at `start` (default a quarter of the maximum) and grows by
    one per success, doubling each round trip, until the first overload or the maximum; a
    blind first burst of the full maximum would mostly come back 429.

    Then AIMD: each success adds 1/limit (about +1 per round trip), slowed to a quarter near
    the level where the last overload happened, so the limit creeps up to the ceiling instead
    of crashing into it. The first overload of a burst cuts the limit to `decrease` times
    the requests out at that moment; each later overload from that same burst only lowers the
    limit to the burst's size minus its 429s so far (what the server actually accepted), so a
    burst of 429s lands on the server's real capacity instead of cutting again and again.
    """

    def __init__(self, limit, min_limit=1, max_limit=None, decrease=0.8, start=None):
        self.max_limit = float(max_limit if max_limit is not None else limit)
        self.min_limit = float(min_limit)
        start = max(1.0, self.max_limit // 4) if start is None else start
        self.limit = float(min(max(start, min_limit), self.max_limit))
        self.decrease = decrease
        self.in_flight = 0
        self.cuts = 0
        self.slow_start = self.limit < self.max_limit
        self._ceiling = None  # the level that overloaded last
        self._burst = self._rejected = 0  # requests out at the last cut, and how many came back 429
        self._last_cut = float("-inf")
        self._cond = None

    def _condition(self):
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    async def acquire(self):
        """Wait for room; returns the start stamp to hand back to release()."""
        cond = self._condition()
        async with cond:
            await cond.wait_for(lambda: self.in_flight < max(1, int(self.limit)))
            self.in_flight += 1
        return time.monotonic()

    async def release(self, started, overloaded=False):
        cond = self._condition()
        async with cond:
            self.in_flight -= 1
            if overloaded:
                self._on_overload(started)
            else:
                self._on_success()
            cond.notify_all()

    def _on_success(self):
        if self.slow_start:
            step = 1.0
        else:
            step = 1.0 / self.limit
            if self._ceiling is not None and self.limit >= 0.9 * self._ceiling:
                step *= 0.25
        self.limit = min(self.max_limit, self.limit + step)
        self.slow_start = self.slow_start and self.limit < self.max_limit

    def _on_overload(self, started):
        self.slow_start = False
        if started < self._last_cut:  # same burst: settle on what the server accepted of it
            self._rejected += 1
            accepted = max(self.min_limit, self._burst - self._rejected)
            self.limit = min(self.limit, accepted)
            self._ceiling = min(self._ceiling, accepted + 1)
            return
        self._burst, self._rejected = self.in_flight + 1, 1  # requests out when this 429 came back
        self._ceiling = min(self.limit, float(self._burst))
        self.limit = max(self.min_limit, self._ceiling * self.decrease)
        self._last_cut = time.monotonic()
        self.cuts += 1

    def slot(self):
        """`async with limiter.slot() as s:` … call `s.overloaded()` on a 429."""
        return _Slot(self)


class _Slot:
    def __init__(self, limiter):
        self._limiter = limiter
        self._overloaded = False
        self._started = None

    def overloaded(self):
        self._overloaded = True

    async def __aenter__(self):
        self._started = await self._limiter.acquire()
        return self

    async def __aexit__(self, *exc):
        await self._limiter.release(self._started, self._overloaded)
        return False
