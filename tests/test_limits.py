"""realign.limits: Retry-After parsing, backoff bounds, token bucket pacing, AIMD limiter."""

import asyncio
import email.utils
import random
import time

from realign.limits import AdaptiveLimiter, RetryPolicy, ServerPace, TokenBucket, retry_after_seconds


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


def test_limiter_caps_in_flight_and_grows_on_success():
    async def go():
        lim = AdaptiveLimiter(limit=8, start=4)
        peak = 0

        async def job():
            nonlocal peak
            async with lim.slot():
                peak = max(peak, lim.in_flight)
                await asyncio.sleep(0.001)

        await asyncio.gather(*(job() for _ in range(40)))
        return peak, lim.limit

    peak, grown = asyncio.run(go())
    assert peak <= 8 and grown == 8  # slow start doubled it up to the maximum


def test_limiter_starts_at_a_quarter_of_the_maximum():
    assert AdaptiveLimiter(limit=64).limit == 16
    assert AdaptiveLimiter(limit=2).limit == 1


def test_one_burst_of_429s_settles_on_what_the_server_accepted():
    async def go():
        lim = AdaptiveLimiter(limit=20, start=20)
        starts = [await lim.acquire() for _ in range(20)]  # a burst of 20 requests
        for s in starts[:6]:                               # the server rejects 6 of them
            await lim.release(s, overloaded=True)
        after_burst = lim.limit
        for s in starts[6:]:
            await lim.release(s)
        cuts = lim.cuts
        for _ in range(2):                                 # answers flow again for two rounds
            for s in [await lim.acquire() for _ in range(int(lim.limit))]:
                await lim.release(s)
        s = await lim.acquire()                            # a later, isolated 429 (issue 13)
        await lim.release(s, overloaded=True)
        isolated = (lim.limit, lim.cuts)
        starts = [await lim.acquire() for _ in range(int(lim.limit))]  # a new burst: most of it refused
        for s in starts[: 3 * len(starts) // 4]:
            await lim.release(s, overloaded=True)
        return after_burst, cuts, isolated, lim.limit, lim.cuts

    after_burst, cuts, isolated, after_new, cuts_new = asyncio.run(go())
    assert cuts == 1 and 10 <= after_burst <= 16           # 20 out, 6 rejected: one cut, to about 14
    assert isolated[1] == 1 and isolated[0] >= after_burst  # one 429 among successes cuts nothing
    assert cuts_new == 2 and after_new < isolated[0]       # a new burst cuts again


def test_random_429s_do_not_collapse_the_limit_and_a_cut_recovers_fast():
    async def go():
        lim = AdaptiveLimiter(limit=32, start=32)
        rng = random.Random(7)
        out, lows = [], []
        for step in range(2000):                           # a steady stream, 1 in 5 answered 429
            while lim.in_flight < int(lim.limit):
                out.append(await lim.acquire())
            await lim.release(out.pop(0), overloaded=rng.random() < 0.2)
            lows.append(lim.limit)
        return min(lows[100:]), sum(lows) / len(lows)

    low, mean = asyncio.run(go())
    assert low >= 16 and mean >= 24


def test_server_pace_follows_the_headers_from_the_first_answer():
    clock = [0.0]
    pace = ServerPace(clock=lambda: clock[0])
    assert pace.requests is None                           # nothing said yet: no pacing
    pace.observe({"X-RateLimit-Limit-Requests": "600", "x-ratelimit-remaining-requests": "0",
                  "x-ratelimit-reset-requests": "100ms", "x-ratelimit-limit-tokens": "60000",
                  "x-ratelimit-remaining-tokens": "59000"})
    assert pace.exhausted and abs(pace.requests.rate - 0.97 * 10) < 1e-9
    assert pace.requests.try_take() > 0                    # the server said 0 remain: wait
    clock[0] += 1.0
    assert pace.requests.try_take() == 0.0                 # refilled at 97 % of 600/min
    pace.observe({"x-ratelimit-limit-requests": "600", "x-ratelimit-remaining-requests": "500"})
    assert not pace.exhausted


def test_the_first_wave_goes_out_one_launch_at_a_time_until_the_first_answer():
    async def go():
        pace = ServerPace()
        order = []

        async def launch(i):
            held = await pace.acquire()
            order.append(("start", i))
            await asyncio.sleep(0.001)                     # building and sending the request
            order.append(("sent", i))
            pace.launched(held)

        await asyncio.gather(*(launch(i) for i in range(3)))
        pace.observe({})
        held = await pace.acquire()
        return order, held

    order, held = asyncio.run(go())
    assert order == [("start", 0), ("sent", 0), ("start", 1), ("sent", 1), ("start", 2), ("sent", 2)]
    assert held is False                                   # after the first answer: no baton
