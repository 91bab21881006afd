"""Being a polite, fast client: retry/backoff, client-side rate caps, the server's own limits,
adaptive concurrency.

Provider-agnostic; used by the LLM runner (realign.llm.runner) and by the Serper client.

    policy = RetryPolicy(max_retries=5, base=1.0, cap=60.0)
    policy.delay(attempt, retry_after=retry_after_seconds(headers))   # seconds to wait
    policy.should_retry(status)                                       # 429, 408, 409, 5xx

    bucket = TokenBucket.per_minute(600)       # --rpm 600
    await bucket.acquire()                     # or acquire(n) for --tpm

    pace = ServerPace()                        # x-ratelimit-* headers: pace.observe(headers)
    pace.launched(await pace.acquire())        # before each request

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


# ---------------------------------------------------------------- the server's own limits

def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class ServerPace:
    """Paces requests by the limits a server announces in its `x-ratelimit-*` headers.

        held = await pace.acquire(calls=1, tokens=cost)   # before each attempt
        pace.launched(held)                                # right before the request goes out
        pace.observe(response.headers)                     # after every answer, 200 or 429

    Until the first answer nothing is known: requests go out one launch at a time (each waits for
    the previous one to reach the network, which costs nothing on a single event loop), so the
    429s of a server that allows only a small burst, which come back at once, are read before the
    next launch instead of after a whole blind wave. From the first answer carrying
    `x-ratelimit-limit-requests` (per minute, as OpenAI sends it) requests go through a token
    bucket at `margin` times that rate, synced down to `x-ratelimit-remaining-requests`; the
    same for `-tokens` with each request's token estimate. Without such headers it does nothing.
    (`x-ratelimit-reset-*` is not needed: for a token bucket it is (limit - remaining) / rate.)
    """

    def __init__(self, margin=0.97, clock=time.monotonic, wait_first_answer=True, gap=0.001):
        self.requests = None   # TokenBucket once the server has said its request limit
        self.tokens = None     # TokenBucket once it has said its token limit
        self.answered = not wait_first_answer
        self.exhausted = False  # the last answer said a limit is used up (its 429s are about rate)
        self.margin = margin
        self._clock = clock
        self._baton = None
        self._gap = gap       # seconds between launches until the first answer
        self._next = 0.0

    def observe(self, headers):
        """Read one answer's headers (any mapping; case-insensitive)."""
        self.answered = True
        lower = {str(k).lower(): v for k, v in dict(headers).items() if str(k).lower().startswith("x-ratelimit")}
        self.exhausted = False
        for kind, burst in (("requests", 1.0), ("tokens", 6.0)):
            limit = _number(lower.get(f"x-ratelimit-limit-{kind}"))
            remaining = _number(lower.get(f"x-ratelimit-remaining-{kind}"))
            if not limit or limit <= 0:
                continue
            bucket = getattr(self, kind)
            rate = self.margin * limit / 60.0
            if bucket is None or abs(bucket.rate - rate) > 1e-9:
                bucket = TokenBucket(rate, capacity=max(1.0, rate * burst), clock=self._clock)
                setattr(self, kind, bucket)
            if remaining is not None:
                bucket._refill()
                bucket._tokens = min(bucket._tokens, max(0.0, remaining))
                self.exhausted |= remaining < 1

    async def acquire(self, calls=1, tokens=1):
        """Wait for the server's limits; returns whether this caller holds the first-wave baton
        (hand that to launched())."""
        held = False
        if not self.answered:
            if self._baton is None:
                self._baton = asyncio.Lock()
            await self._baton.acquire()
            held = True
            wait = self._next - self._clock()
            if wait > 0 and not self.answered:
                await asyncio.sleep(wait)
            self._next = self._clock() + self._gap
        if self.requests is not None:
            for _ in range(calls):
                await self.requests.acquire()
        if self.tokens is not None:
            await self.tokens.acquire(tokens)
        return held

    def launched(self, held):
        if held:
            self._baton.release()


# ---------------------------------------------------------------- adaptive concurrency

class AdaptiveLimiter:
    """How many requests may be in flight, adapted to what the server accepts.

    Slow start only when asked for (`start` below the maximum; default a quarter of it): the
    limit grows by one per success until the first overload. The runner starts HTTP runs at the
    maximum: a server that has refused nothing is not made to wait.

    Then AIMD, cut once per burst: a 429 cuts the limit only when 429s are not isolated (at
    least `threshold` of the last answers, a window of about two round trips) and it came from a
    request sent after the previous cut. The cut keeps the share the server accepted (at most
    `decrease` of the limit): a server that takes 24 of 32 lands on 24. Successes add 1/limit
    each (about +1 per round trip), three times that below the level of the last cut, so a burst
    is forgotten within a few round trips once answers flow.
    """

    def __init__(self, limit, min_limit=1, max_limit=None, decrease=0.8, start=None, threshold=1 / 3):
        self.max_limit = float(max_limit if max_limit is not None else limit)
        self.min_limit = float(min_limit)
        start = max(1.0, self.max_limit // 4) if start is None else start
        self.limit = float(min(max(start, min_limit), self.max_limit))
        self.decrease = decrease
        self.threshold = threshold
        self.in_flight = 0
        self.cuts = 0
        self.slow_start = self.limit < self.max_limit
        self._recover_to = 0.0  # the level before the last cut: recover quickly up to there
        self._last_cut = float("-inf")
        self._recent = []  # the last answers, True for a 429
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
            self._recent.append(overloaded)
            del self._recent[: max(0, len(self._recent) - max(16, 2 * int(self.limit)))]
            if overloaded:
                self._on_overload(started)
            else:
                self._on_success()
            # wake only as many waiters as there is room for: notify_all would wake every one of
            # hundreds of waiting workers on each answer, only to send all but one back to sleep
            cond.notify(max(0, max(1, int(self.limit)) - self.in_flight))

    def _on_success(self):
        if self.slow_start:
            step = 1.0
        else:
            step = (3.0 if self.limit < self._recover_to else 1.0) / self.limit
        self.limit = min(self.max_limit, self.limit + step)
        self.slow_start = self.slow_start and self.limit < self.max_limit

    def _on_overload(self, started):
        self.slow_start = False
        share = sum(self._recent) / max(8, len(self._recent))  # a first 429 alone is no burst
        if started < self._last_cut or share < self.threshold:
            return  # the same burst (already cut for), or an isolated 429
        self._recover_to = self.limit
        self.limit = max(self.min_limit, self.limit * min(self.decrease, 1.0 - share))
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
