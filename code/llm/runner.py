"""The runner: drives any backend's requests hard but politely, one Outcome per request.

    stats = await run_all(backend, requests, on_done, concurrency=64, rpm=600, check=parse)

An AIMD limiter on requests in flight, optional rpm/tpm token buckets, pacing by the server's
own x-ratelimit-* headers, bounded retries with backoff that honours Retry-After, a hard timeout
per attempt, and a caller-supplied `check(texts)` that may raise `Unusable` to have bad output
retried. Transient failures are retried; the rest feed a circuit breaker (Breaker): at the start
of a run a misconfigured endpoint raises its BackendError within seconds, later K requests in a
row failing the same way stop the run (stats.stopped). Every request ends in exactly one
`on_done(Outcome)` call, success or failure, unless the endpoint refused the run. The backends
themselves are in llm/base.py.
"""

import asyncio
from dataclasses import dataclass

from realign.limits import AdaptiveLimiter, RetryPolicy, ServerPace, TokenBucket
from realign.llm.base import BackendError, Outcome, Unusable
from realign.redact import scrub

BREAKER_AT_START = 3   # the same non-transient failure this many times before any success: refused
BREAKER_LATER = 10     # ... this many times in a row later in a run: stop, keep what is done


@dataclass
class Stats:
    sent: int = 0          # attempts that reached the backend
    calls: int = 0         # HTTP requests really made (more than `sent` when a server ignores n)
    throttled: int = 0     # attempts answered 429 / overloaded
    retried: int = 0
    succeeded: int = 0
    failed: int = 0
    in_flight: int = 0
    stopped: str | None = None  # why the circuit breaker stopped the run, when it did
    limiter: AdaptiveLimiter | None = None

    @property
    def concurrency(self):
        return int(self.limiter.limit) if self.limiter else 0


class Breaker:
    """Stops a run that no retry can save.

    Before the first success, a fatal failure (nothing listening, a bad URL, a rejected key, an
    unknown model, a spent quota) is raised at once, and so is any other non-transient failure
    (a 400) or a timeout once `at_start` requests in a row got it: the caller reports "the
    endpoint refused the run" and exits 2. After a success, `later` requests in a row failing
    with the same non-transient cause set `stopped`: the runner sends nothing more and the
    caller keeps what is finished (exit 1; a rerun resumes). A success resets the count.
    """

    def __init__(self, at_start=BREAKER_AT_START, later=BREAKER_LATER):
        self.at_start, self.later = at_start, later
        self.succeeded = False
        self.cause, self.count = None, 0
        self.stopped = None

    def success(self):
        self.succeeded = True
        self.cause, self.count = None, 0

    def failure(self, err):
        """Count one failed attempt (BackendError); raises it when the run must not go on."""
        if err.cause is None:
            return
        if not self.succeeded and err.fatal:
            raise err
        self.count = self.count + 1 if err.cause == self.cause else 1
        self.cause = err.cause
        if not self.succeeded and self.count >= self.at_start:
            raise err
        if self.succeeded and self.count >= self.later and self.stopped is None:
            self.stopped = f"{self.count} requests in a row failed: {err.one_line()}"


def _silent(reason, endpoint):
    """The error for timeouts before any answer: a server that accepts connections and never answers."""
    return BackendError(reason, cause="no answer", endpoint=endpoint,
                        hint="the server accepts connections but does not answer; "
                             "raise --request_timeout if it is only slow")


async def _attempt(backend, request, check, timeout):
    """One try: the result, or raise BackendError/Unusable/TimeoutError."""
    coro = backend.generate(request)
    texts = await (asyncio.wait_for(coro, timeout) if timeout else coro)
    return check(texts) if check else texts


async def _one(backend, request, check, *, limiter, policy, rpm, tpm, pace, breaker, timeout, stats):
    """Retry one request until it succeeds, fails for good, retries run out, or the run stops."""
    # `timeout` is per call: a server that ignores `n` is asked up to n times within one attempt
    limit = timeout * request.sampling.n if timeout else None
    for attempt in range(policy.max_retries + 1):
        calls = backend.calls_per_attempt(request)
        if rpm:
            for _ in range(calls):
                await rpm.acquire()
        if tpm:
            await tpm.acquire(request.cost_tokens)
        await pace.acquire(calls, request.cost_tokens)
        retry_after = None
        async with limiter.slot() as slot:
            stats.sent += 1
            stats.in_flight += 1
            try:
                result = await _attempt(backend, request, check, limit)
                breaker.success()
                return Outcome(request, result=result, attempts=attempt + 1)
            except BackendError as e:
                if e.overloaded:
                    if not pace.exhausted:  # a 429 the server's own rate headers explain is paced, not cut
                        slot.overloaded()
                    stats.throttled += 1
                if e.timed_out and not breaker.succeeded:
                    breaker.failure(_silent(e.reason, e.endpoint))
                breaker.failure(e)
                reason, retryable, retry_after = e.reason, e.retryable, e.retry_after
            except Unusable as e:
                breaker.success()  # the server answered
                reason, retryable = scrub(str(e)), True
            except asyncio.TimeoutError:
                reason, retryable = f"no answer within {limit:g} s", True
                if not breaker.succeeded:
                    breaker.failure(_silent(reason, getattr(backend.config, "base_url", None)))
            finally:
                stats.in_flight -= 1
                pace.answered = True
        if not retryable or attempt == policy.max_retries or breaker.stopped:
            tries = f" (after {attempt + 1} attempts)" if attempt else ""
            return Outcome(request, error=reason + tries, attempts=attempt + 1)
        stats.retried += 1
        await asyncio.sleep(policy.delay(attempt, retry_after))


async def run_all(backend, requests, on_done, *, concurrency=None, policy=None, rpm=None, tpm=None,
                  timeout=None, check=None, stats=None, breaker=None):
    """Drive `requests` (any iterable, consumed lazily) through `backend`; call on_done(Outcome)
    once per request as it finishes. Returns the Stats. Raises BackendError when the endpoint
    refuses the run (see Breaker); when the breaker stops a run later, the requests not sent end
    as failures "not sent: ..." and stats.stopped says why.

    concurrency: most requests in flight (the AIMD limiter starts there and adapts below it).
    rpm / tpm: client-side caps (requests / tokens per minute), None for none; the server's own
    x-ratelimit-* headers pace the run as well (realign.limits.ServerPace).
    timeout: seconds per call, an attempt of n candidates gets n times that (None: the backend's
    request_timeout plus 5 s for network backends, none for in-process engines).
    """
    concurrency = concurrency or backend.default_concurrency
    policy = policy or RetryPolicy()
    breaker = breaker or Breaker()
    if timeout is None and backend.network:
        timeout = backend.config.request_timeout + 5.0  # the HTTP client's own timeout fires first
    stats = stats or Stats()
    # No slow start: a server that has refused nothing is not made to wait; 429s cut from there.
    stats.limiter = AdaptiveLimiter(limit=concurrency, start=concurrency)
    pace = ServerPace(first_wave=concurrency if backend.network else 1, ramp=0.02 if backend.network else 0.0)
    if hasattr(backend, "pace"):
        backend.pace = pace
    rpm_bucket = TokenBucket.per_minute(rpm) if rpm else None
    tpm_bucket = TokenBucket.per_minute(tpm, burst_seconds=6.0) if tpm else None
    pending = iter(requests)

    async def worker():
        for request in pending:  # a shared iterator: each request goes to exactly one worker
            if breaker.stopped:
                outcome = Outcome(request, error=f"not sent: the run stopped ({breaker.stopped})")
            else:
                outcome = await _one(backend, request, check, limiter=stats.limiter, policy=policy,
                                     rpm=rpm_bucket, tpm=tpm_bucket, pace=pace, breaker=breaker,
                                     timeout=timeout, stats=stats)
            if outcome.ok:
                stats.succeeded += 1
            else:
                stats.failed += 1
            on_done(outcome)

    # Twice as many workers as slots, so requests sleeping in backoff do not idle the slots.
    tasks = [asyncio.ensure_future(worker()) for _ in range(2 * concurrency)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stats.stopped = breaker.stopped
        stats.calls = getattr(backend, "calls", None) or stats.sent
    return stats
