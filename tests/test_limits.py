"""realign.limits: Retry-After parsing, backoff bounds, token bucket pacing, AIMD limiter."""

import asyncio
import email.utils
import random
import time

from realign.limits import AdaptiveLimiter, RetryPolicy, TokenBucket, retry_after_seconds


def test_retry_after_forms():
    assert retry_after_seconds({"Retry-After": "3"}) == 3.0
    assert retry_after_seconds({"retry-after": "0.5"}) == 0.5
    assert retry_after_seconds({"retry-after-ms": "250", "Retry-After": "9"}) == 0.25
    date = email.utils.formatdate(1000.0 + 7, usegmt=True)
    assert abs(retry_after_seconds({"Retry-After": date}, now=1000.0) - 7) < 1e-6
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({}) is None
    assert retry_after_seconds(None) is None


def test_backoff_is_jittered_and_capped():
    policy = RetryPolicy(max_retries=5, base=1.0, cap=8.0, rng=random.Random(0))
    for attempt in range(10):
        d = policy.delay(attempt)
        assert 0 <= d <= min(8.0, 2 ** attempt)
    waits = {round(policy.delay(3), 6) for _ in range(20)}
    assert len(waits) > 10  # jitter spreads clients apart


def test_retry_after_is_honoured_with_small_jitter():
    policy = RetryPolicy(rng=random.Random(1))
    for _ in range(50):
        d = policy.delay(0, retry_after=2.0)
        assert 2.0 <= d <= 2.0 + 0.25
    assert policy.delay(0, retry_after=10_000) <= 130  # a hostile header cannot park us


def test_should_retry_statuses():
    policy = RetryPolicy()
    assert all(policy.should_retry(s) for s in (429, 500, 502, 503, 504, 408))
    assert not any(policy.should_retry(s) for s in (400, 401, 403, 404, 422))


def test_token_bucket_paces_requests():
    async def go():
        bucket = TokenBucket(rate=50, capacity=5)  # burst of 5, then 50/s
        t0 = time.monotonic()
        for _ in range(30):
            await bucket.acquire()
        return time.monotonic() - t0

    elapsed = asyncio.run(go())
    assert 0.4 <= elapsed <= 1.0  # 25 tokens beyond the burst at 50/s ≈ 0.5 s


def test_token_bucket_clamps_oversized_requests():
    async def go():
        bucket = TokenBucket(rate=1000, capacity=10)
        await asyncio.wait_for(bucket.acquire(10_000), 1.0)

    asyncio.run(go())


def test_per_minute_bucket():
    b = TokenBucket.per_minute(600)
    assert b.rate == 10 and b.capacity == 10


def test_limiter_caps_in_flight_and_adapts():
    async def go():
        lim = AdaptiveLimiter(limit=4, max_limit=8)
        peak = 0

        async def job():
            nonlocal peak
            async with lim.slot():
                peak = max(peak, lim.in_flight)
                await asyncio.sleep(0.001)

        await asyncio.gather(*(job() for _ in range(40)))
        grown = lim.limit
        # a burst of overloads from requests started together cuts once, not per 429
        starts = [await lim.acquire() for _ in range(3)]
        for s in starts:
            await lim.release(s, overloaded=True)
        return peak, grown, lim.limit, lim.cuts

    peak, grown, after, cuts = asyncio.run(go())
    assert peak <= 8
    assert grown > 4
    assert cuts == 1 and abs(after - grown * 0.8) < 1e-9
