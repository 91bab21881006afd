"""The runner: drives any backend's requests hard but politely, one Outcome per request.

    stats = await run_all(backend, requests, on_done, concurrency=64, rpm=600, check=parse)

An AIMD limiter on requests in flight, optional rpm/tpm token buckets, pacing by the server's
own x-ratelimit-* headers, bounded retries with backoff that honours Retry-After, a hard timeout
per attempt, and a caller-supplied `check(completions, request)` that may raise `Unusable` to have
bad output retried (a fault that repeats itself at most `Unusable.retries` more times). Transient
failures are retried; the rest feed a circuit breaker (realign.endpoint.Breaker):
at the start of a run a misconfigured endpoint raises its BackendError within seconds, later K
requests in a row failing the same way stop the run (stats.stopped), and so do transient
failures with no success (a server answering 500 to everything). While transient failures alone
come back the server is down: requests go one probe at a time, spaced out, and the others wait
without spending their retries, so a blip of seconds at the start or of half a minute later
fails no record (Breaker.may_send). A server that answers nothing
at all is asked once, PROBE_AFTER seconds in, whether it answers anything (backend.probe): if not,
the run is refused then, not after the request timeouts. A record the server refuses for what
it holds (too long for its context, too large, a content filter) fails alone, at once, and
counts nowhere: such records can never stop a run, first in the file or not. Every request ends in exactly
one `on_done(Outcome)` call, success or failure, unless the endpoint refused the run; run_step
turns that into the scripts' one-line error. The interface it drives (Backend, Request, Outcome)
is in llm/base.py.
"""

import asyncio
from dataclasses import dataclass

from realign.endpoint import Breaker
from realign.errors import UsageError
from realign.limits import RPM_BURST_SECONDS, TPM_BURST_SECONDS, AdaptiveLimiter, RetryPolicy, ServerPace, TokenBucket
from realign.llm.base import BackendError, Outcome, Unusable, call_timeout
from realign.redact import scrub

PROBE_AFTER = 10.0   # s without any answer before asking the backend whether the server answers at all
_NAP = 0.25          # s: a backoff wait looks this often whether the run has stopped


@dataclass
class Stats:
    sent: int = 0          # attempts that reached the backend
    throttled: int = 0     # attempts answered 429 / overloaded
    succeeded: int = 0
    failed: int = 0
    in_flight: int = 0
    answered: int = 0      # attempts the server answered, in any way (an HTTP status, a reply)
    stopped: str | None = None  # why the circuit breaker stopped the run, when it did
    limiter: AdaptiveLimiter | None = None

    @property
    def concurrency(self):
        return int(self.limiter.limit) if self.limiter else 0


def _silent(reason, endpoint, hint="raise --request_timeout if it is only slow"):
    """The error for timeouts before any answer: a server that accepts connections and never answers."""
    return BackendError(reason, cause="no answer", endpoint=endpoint,
                        hint=f"the server accepts connections but does not answer; {hint}")


async def _nap(seconds, breaker):
    """Sleep `seconds`, waking early when the run stops."""
    end = asyncio.get_running_loop().time() + seconds
    while not breaker.stopped:
        left = end - asyncio.get_running_loop().time()
        if left <= 0:
            return
        await asyncio.sleep(min(_NAP, left))


async def _attempt(backend, request, check, timeout):
    """One try: the result, or raise BackendError/Unusable/TimeoutError."""
    coro = backend.generate(request)
    completions = await (asyncio.wait_for(coro, timeout) if timeout else coro)
    return check(completions, request) if check else completions


async def _one(backend, request, check, *, limiter, policy, rpm, tpm, pace, breaker, timeout, stats):
    """Retry one request until it succeeds, fails for good, retries run out, or the run stops."""
    # `timeout` is per call: a server that ignores `n` is asked up to n times within one attempt
    limit = timeout * request.sampling.n if timeout else None
    reason = None
    for attempt in range(policy.max_retries + 1):
        while not breaker.may_send():  # the server is down: one probe at a time, the rest wait here
            if breaker.stopped:
                tries = f" (after {attempt} attempts)" if attempt > 1 else ""
                return Outcome(request, error=reason + tries if reason else
                               f"not sent: the run stopped ({breaker.stopped})")
            await asyncio.sleep(_NAP)
        calls = backend.calls_per_attempt(request)
        if rpm:
            for _ in range(calls):
                await rpm.acquire()
        if tpm:
            await tpm.acquire(request.cost_tokens)
        held = await pace.acquire(calls, request.cost_tokens)
        retry_after = None
        async with limiter.slot() as slot:
            pace.launched(held)
            stats.sent += 1
            stats.in_flight += 1
            try:
                result = await _attempt(backend, request, check, limit)
                breaker.success()
                stats.answered += 1
                return Outcome(request, result=result)
            except BackendError as e:
                stats.answered += e.status is not None
                if e.overloaded:
                    if not pace.exhausted:  # a 429 the server's own rate headers explain is paced, not cut
                        slot.overloaded()
                    stats.throttled += 1
                if e.timed_out and not breaker.succeeded:
                    breaker.failure(_silent(e.reason, e.endpoint))
                breaker.failure(e)
                if e.retryable and not e.overloaded:
                    breaker.transient(e)
                reason, retryable, retry_after = e.reason, e.retryable, e.retry_after
            except Unusable as e:
                breaker.success()  # the server answered
                stats.answered += 1
                reason, retryable = scrub(str(e)), e.retries is None or attempt < e.retries
            except asyncio.TimeoutError:
                reason, retryable = f"no answer within {limit:g} s", True
                endpoint = getattr(backend.config, "base_url", None)
                if not breaker.succeeded:
                    breaker.failure(_silent(reason, endpoint))
                breaker.transient(BackendError(reason, retryable=True, endpoint=endpoint))
            finally:
                stats.in_flight -= 1
                pace.answered = True
        tries = f" (after {attempt + 1} attempts)" if attempt else ""
        if not retryable or attempt == policy.max_retries or breaker.stopped:
            return Outcome(request, error=reason + tries)
        await _nap(policy.delay(attempt, retry_after), breaker)
        if breaker.stopped:
            return Outcome(request, error=reason + tries)


async def _watch_silence(backend, stats):
    """Before any answer, PROBE_AFTER s in: a backend that can tell (HTTP) is asked whether the
    server answers anything at all; raises the refusal when it does not."""
    await asyncio.sleep(PROBE_AFTER)
    if stats.answered or not stats.sent:
        return
    alive = await backend.probe()
    if alive is False and not stats.answered:
        raise _silent(f"no answer to any of {stats.sent} requests in {PROBE_AFTER:g} s, nor to a GET /models probe",
                      getattr(backend.config, "base_url", None), hint="is it stuck, or another kind of service?")


async def run_all(backend, requests, on_done, *, concurrency=None, policy=None, rpm=None, tpm=None,
                  timeout=None, check=None, stats=None, breaker=None):
    """Drive `requests` (any iterable, consumed lazily) through `backend`; call on_done(Outcome)
    once per request as it finishes. Returns the Stats. Raises BackendError when the endpoint
    refuses the run (see realign.endpoint.Breaker); when the breaker stops a run later, the requests not sent end
    as failures "not sent: ..." and stats.stopped says why.

    concurrency: most requests in flight (the AIMD limiter starts there and adapts below it).
    rpm / tpm: client-side caps (requests / tokens per minute), None for none; the server's own
    x-ratelimit-* headers pace the run as well (realign.limits.ServerPace).
    timeout: seconds per call, an attempt of n candidates gets n times that (None: the backend's
    request_timeout plus CALL_TIMEOUT_SLACK for backends with timed_calls, none for the others).
    """
    concurrency = concurrency or backend.default_concurrency
    policy = policy or RetryPolicy()
    breaker = breaker or Breaker()
    if timeout is None:
        timeout = call_timeout(backend, backend.config)
    stats = stats or Stats()
    # No slow start: a server that has refused nothing is not made to wait; 429s cut from there.
    stats.limiter = AdaptiveLimiter(limit=concurrency, start=concurrency)
    pace = ServerPace(wait_first_answer=backend.slow_start)
    if hasattr(backend, "pace"):
        backend.pace = pace
    rpm_bucket = TokenBucket.per_minute(rpm, burst_seconds=RPM_BURST_SECONDS) if rpm else None
    tpm_bucket = TokenBucket.per_minute(tpm, burst_seconds=TPM_BURST_SECONDS) if tpm else None
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
    workers = asyncio.gather(*tasks)
    watch = asyncio.ensure_future(_watch_silence(backend, stats))
    try:
        done, _ = await asyncio.wait({workers, watch}, return_when=asyncio.FIRST_COMPLETED)
        if workers not in done:
            watch.result()  # the server answers nothing: raises its refusal
            await workers
        workers.result()
    finally:
        for t in [*tasks, watch]:
            t.cancel()
        await asyncio.gather(*tasks, workers, watch, return_exceptions=True)
        stats.stopped = breaker.stopped
    return stats

async def run_step(backend, requests, on_done, **options):
    """run_all for a script's whole run: the endpoint refusing the run (see realign.endpoint.Breaker)
    becomes the one-line UsageError, naming the endpoint, that the script prints before exiting 2.
    What the backend changed to fit the server (llm/shape.py) is printed once, when the run ends."""
    try:
        stats = await run_all(backend, requests, on_done, **options)
    except BackendError as e:
        raise UsageError(f"the endpoint refused the run: {e.one_line()}") from None
    for note in backend.adaptations:
        print(f"adapted to the server: {scrub(note)}")
    return stats
