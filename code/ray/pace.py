"""One rate cap for a whole Ray cluster: a named actor that every worker books its requests from.

With `--engine ray` the requests leave from several worker processes (often on several
machines). A token bucket inside each worker would multiply `--rpm` by the number of workers,
so the driver starts a single `Pace` actor under a name instead, and each worker, before each
request, books a send time from it:

    pace = ray.get_actor(name)                      # once, in the worker
    delay = await pace.book.remote(cost_tokens)     # per request: seconds until it may go
    await asyncio.sleep(delay)

Booking is a reservation (GCRA: the bucket may run into debt), so one round trip per request
is enough, nobody polls, and requests leave in the order they booked. The caps mean what they
mean in a local run (code/limits.py / code/llm/runner.py run_all): the same bursts
(limits.RPM_BURST_SECONDS, limits.TPM_BURST_SECONDS), a request's `cost_tokens` clamped to
the burst. How long a booking can ask a worker to wait is bounded by what is in flight: at most
(requests in flight) x 60 / rpm seconds.

`limits.TokenBucket` waits inside the caller's event loop, which a remote bucket cannot do; the
schedule below is the same bucket written as "earliest send time" arithmetic.
"""

import time

from realign.limits import RPM_BURST_SECONDS, TPM_BURST_SECONDS


class Schedule:
    """A token bucket of `rate` units/s holding at most `burst` units, as send times.

    `full_at` is when the bucket would be full again if nothing more were booked; a booking of
    `amount` may go once the bucket holds `amount`, i.e. at `full_at - (burst - amount) / rate`.
    """

    def __init__(self, rate, burst):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.burst = max(1.0, float(burst))
        self.full_at = float("-inf")

    @classmethod
    def per_minute(cls, amount, burst_seconds):
        rate = amount / 60.0
        return cls(rate, rate * burst_seconds)

    def earliest(self, not_before, amount):
        """The first time at or after `not_before` when `amount` units are available."""
        amount = min(float(amount), self.burst)
        return max(not_before, self.full_at - (self.burst - amount) / self.rate)

    def commit(self, at, amount):
        """Take `amount` units at time `at` (which earliest() said was fine)."""
        amount = min(float(amount), self.burst)
        self.full_at = max(self.full_at, at) + amount / self.rate


class Pace:
    """The cluster-wide caps (run as a Ray actor; plain class so it can be tested alone)."""

    def __init__(self, rpm=None, tpm=None, clock=time.monotonic):
        self._requests = Schedule.per_minute(rpm, RPM_BURST_SECONDS) if rpm else None
        self._tokens = Schedule.per_minute(tpm, TPM_BURST_SECONDS) if tpm else None
        self._clock = clock

    def book(self, cost_tokens=1):
        """Seconds the caller must wait before sending one request that costs `cost_tokens`."""
        now = self._clock()
        plan = [(s, a) for s, a in ((self._requests, 1), (self._tokens, cost_tokens)) if s is not None]
        at = now
        for schedule, amount in plan:  # max over both bounds = the first time both allow it
            at = schedule.earliest(at, amount)
        for schedule, amount in plan:
            schedule.commit(at, amount)
        return at - now


def start_pace(name, rpm=None, tpm=None):
    """Start the named Pace actor (no CPU reserved; restarted if its process dies)."""
    import ray

    actor = ray.remote(Pace).options(name=name, num_cpus=0, max_restarts=3, max_task_retries=3)
    return actor.remote(rpm=rpm, tpm=tpm)
