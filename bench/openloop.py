"""An open-loop load generator: requests leave on schedule whether or not earlier ones answered,
so queueing shows in the latency instead of hiding in a slower send rate.

    python -m bench.openloop --url http://127.0.0.1:8000/orders --rate 200 --seconds 15

Latency is measured from each request's scheduled time. Prints one JSON line, with the
generator's own CPU use so it can be shown not to be the bottleneck.
"""

import argparse
import asyncio
import json
import resource
import time
import uuid

import httpx

from tests.support import make_cart


def percentile(sorted_ms: list[float], p: float) -> float | None:
    if not sorted_ms:
        return None
    return sorted_ms[min(len(sorted_ms) - 1, round(p / 100 * (len(sorted_ms) - 1)))]


MAX_IN_FLIGHT = 512  # past this the server is saturated; further requests are shed and counted


async def run(url: str, rate: float, seconds: float, timeout_s: float) -> dict[str, object]:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    body = make_cart()
    in_flight = 0
    # Requests beyond the pool wait for a connection: that wait counts, as latency is measured
    # from each request's scheduled time.
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(limits=limits, timeout=timeout_s) as client:

        async def one(scheduled: float) -> None:
            nonlocal in_flight
            in_flight += 1
            try:
                response = await client.post(
                    url, json=body, headers={"Idempotency-Key": str(uuid.uuid4())}
                )
                if response.status_code >= 400:
                    errors[str(response.status_code)] = errors.get(str(response.status_code), 0) + 1
                    return
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                return
            finally:
                in_flight -= 1
            latencies.append((time.perf_counter() - scheduled) * 1000)

        total = int(rate * seconds)
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter() + 0.05
        tasks = []
        for i in range(total):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if in_flight >= MAX_IN_FLIGHT:
                errors["shed"] = errors.get("shed", 0) + 1
                continue
            tasks.append(asyncio.create_task(one(scheduled)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    ms = sorted(latencies)
    return {
        "offered_rate": rate,
        "achieved_rate": round(len(ms) / elapsed, 1),
        "sent": total,
        "ok": len(ms),
        "errors": errors,
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": ms[-1] if ms else None,
        "generator_cpu_pct": round(100 * cpu / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--timeout", type=float, default=10)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.url, args.rate, args.seconds, args.timeout))))


if __name__ == "__main__":
    main()
