"""The runner: drives any backend's requests hard but politely, one Outcome per request.

    stats = await run_all(backend, requests, on_done, concurrency=64, rpm=600, check=parse)

An AIMD limiter on requests in flight, optional rpm/tpm token buckets, bounded retries with
backoff that honours Retry-After, a hard timeout per attempt, and a caller-supplied
`check(completions, request)` that may raise `Unusable` to have bad output retried (or, for a
fault that repeats itself, retried at most `Unusable.retries` more times). Every request ends in
exactly one `on_done(Outcome)` call, success or failure, unless a fatal error (bad key,
unknown model) stops the whole run by raising; run_step turns that into the scripts' one-line
error. The interface it drives (Backend, Request, Outcome) is in llm/base.py.
"""

import asyncio
from dataclasses import dataclass

from realign.errors import UsageError
from realign.limits import RPM_BURST_SECONDS, TPM_BURST_SECONDS, AdaptiveLimiter, RetryPolicy, TokenBucket
from realign.llm.base import BackendError, Outcome, Unusable, call_timeout
from realign.redact import scrub


@dataclass
class Stats:
    sent: int = 0          # attempts that reached the backend
    throttled: int = 0     # attempts answered 429 / overloaded
    succeeded: int = 0
    failed: int = 0
    in_flight: int = 0
    limiter: AdaptiveLimiter | None = None

    @property
    def concurrency(self):
        return int(self.limiter.limit) if self.limiter else 0


async def _attempt(backend, request, check, timeout):
    """One try: the result, or raise BackendError/Unusable/TimeoutError."""
    coro = backend.generate(request)
    completions = await (asyncio.wait_for(coro, timeout) if timeout else coro)
    return check(completions, request) if check else completions


async def _one(backend, request, check, *, limiter, policy, rpm, tpm, timeout, stats):
    """Retry one request until it succeeds, fails for good, or retries run out."""
    # `timeout` is per call: a server that ignores `n` is asked up to n times within one attempt
    limit = timeout * request.sampling.n if timeout else None
    for attempt in range(policy.max_retries + 1):
        if rpm:
            for _ in range(backend.calls_per_attempt(request)):
                await rpm.acquire()
        if tpm:
            await tpm.acquire(request.cost_tokens)
        retry_after = None
        async with limiter.slot() as slot:
            stats.sent += 1
            stats.in_flight += 1
            try:
                result = await _attempt(backend, request, check, limit)
                return Outcome(request, result=result)
            except BackendError as e:
                if e.fatal:
                    raise
                if e.overloaded:
                    slot.overloaded()
                    stats.throttled += 1
                reason, retryable, retry_after = e.reason, e.retryable, e.retry_after
            except Unusable as e:
                reason, retryable = scrub(str(e)), e.retries is None or attempt < e.retries
            except asyncio.TimeoutError:
                reason, retryable = f"no answer within {limit:g} s", True
            finally:
                stats.in_flight -= 1
        if not retryable or attempt == policy.max_retries:
            tries = f" (after {attempt + 1} attempts)" if attempt else ""
            return Outcome(request, error=reason + tries)
        await asyncio.sleep(policy.delay(attempt, retry_after))


async def run_all(backend, requests, on_done, *, concurrency=None, policy=None, rpm=None, tpm=None,
                  timeout=None, check=None, stats=None):
    """Drive `requests` (any iterable, consumed lazily) through `backend`; call on_done(Outcome)
    once per request as it finishes. Returns the Stats. Raises BackendError on a fatal error.

    concurrency: most requests in flight (the AIMD limiter starts there and adapts below it).
    rpm / tpm: client-side caps (requests / tokens per minute), None for none.
    timeout: seconds per call, an attempt of n candidates gets n times that (None: the backend's
    request_timeout plus CALL_TIMEOUT_SLACK for backends with timed_calls, none for the others).
    """
    concurrency = concurrency or backend.default_concurrency
    policy = policy or RetryPolicy()
    if timeout is None:
        timeout = call_timeout(backend, backend.config)
    stats = stats or Stats()
    stats.limiter = AdaptiveLimiter(limit=concurrency, start=None if backend.slow_start else concurrency)
    rpm_bucket = TokenBucket.per_minute(rpm, burst_seconds=RPM_BURST_SECONDS) if rpm else None
    tpm_bucket = TokenBucket.per_minute(tpm, burst_seconds=TPM_BURST_SECONDS) if tpm else None
    pending = iter(requests)

    async def worker():
        for request in pending:  # a shared iterator: each request goes to exactly one worker
            outcome = await _one(backend, request, check, limiter=stats.limiter, policy=policy,
                                 rpm=rpm_bucket, tpm=tpm_bucket, timeout=timeout, stats=stats)
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
    return stats


async def run_step(backend, requests, on_done, **options):
    """run_all for a script's whole run: a fatal BackendError (bad key, unknown model) becomes the
    one-line UsageError that the script prints before exiting 2."""
    try:
        return await run_all(backend, requests, on_done, **options)
    except BackendError as e:
        raise UsageError(f"the endpoint refused the run: {e.reason}") from None
