"""The table `make bench` prints, from the results it also writes as JSON."""

from typing import Any

from bench.flows import ORDER_EVENTS

BUDGET_MS = 500


def fmt(value: float | None) -> str:
    return f"{value:8.1f}" if value is not None else "       -"


def step_at(steps: list[dict[str, Any]], rate: float | None) -> dict[str, Any] | None:
    """The last step run at `rate` (a search may come back to one)."""
    found = [step for step in steps if step["offered_rate"] == rate]
    return found[-1] if found else None


def cpu_at(steps: list[dict[str, Any]], rate: float | None, part: str) -> float | None:
    step = step_at(steps, rate)
    return step["cpu_ms_per_request"].get(part) if step else None


def machine_ms(steps: list[dict[str, Any]], rate: float | None) -> float | None:
    """All the CPU a request cost on this machine at `rate`: the API's, PostgreSQL's, RabbitMQ's,
    the fake gateway's and the load generator's."""
    step = step_at(steps, rate)
    if step is None:
        return None
    return float(sum(step["cpu_ms_per_request"].values()) + step["generator_cpu_ms_per_request"])


def print_table(results: dict[str, Any]) -> None:
    print(
        f"\nmake bench  ({'smoke' if results['smoke'] else 'full'}; {results['machine']['cpus']} CPUs)"
    )
    print("\ncheckout, open loop (POST /orders, gateway 50 ms); cpu = CPU ms per answered request")
    print(
        f"{'offered/s':>10} {'achieved/s':>11} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8} {'errors':>7} {'gen cpu':>8} {'gen ms':>7} {'api ms':>7} {'pg ms':>6}"
    )

    def row(r: dict[str, Any], label: str = "") -> None:
        errs = sum(r["errors"].values())
        cpu = r["cpu_ms_per_request"]
        print(
            f"{r['offered_rate']:>10} {r['achieved_rate']:>11} {fmt(r['p50_ms'])} {fmt(r['p90_ms'])} {fmt(r['p99_ms'])} {fmt(r['max_ms'])} {errs:>7} {r['generator_cpu_pct']:>7}% {r['generator_cpu_ms_per_request']:>7} {cpu['api']:>7} {cpu.get('postgres', '-'):>6}{label}"
        )

    for r in results["checkout_open_loop"]:
        row(r)
    row(results["checkout_gateway_0ms"], "  <- gateway answering at once")
    c = results["capacity"]
    orders_cap, insert_cap = (
        c["orders_rps_at_p99_within_budget"],
        c["insert_floor_rps_at_p99_within_budget"],
    )
    print(
        f"\ncapacity at p99 <= {BUDGET_MS} ms: POST /orders {orders_cap}/s,"
        f" insert-one-row floor {insert_cap}/s, ratio {c['ratio']};"
        f" bare checkout {c['bare_checkout_rps_at_p99_within_budget']}/s"
    )
    print(
        f"  API CPU per request there: POST /orders {cpu_at(c['orders_steps'], orders_cap, 'api')} ms,"
        f" insert-one-row {cpu_at(c['insert_steps'], insert_cap, 'api')} ms"
    )
    cpus = results["machine"]["cpus"]
    limits = []
    for name, steps, cap in (
        ("POST /orders", c["orders_steps"], orders_cap),
        ("insert-one-row", c["insert_steps"], insert_cap),
        ("bare checkout", c["bare_steps"], c["bare_checkout_rps_at_p99_within_budget"]),
    ):
        if (ms := machine_ms(steps, cap)) is not None:
            limits.append(f"{name} {ms:.2f} ms ({1000 * cpus / ms:.0f}/s)")
    print(
        f"  all CPU per request there (API, PostgreSQL, fake gateway, generator); {cpus} CPUs allow:"
    )
    print("    " + ", ".join(limits))
    print_checkout_targets(results)
    n = results["naive_render_in_request"]
    print(
        f"naive (invoice rendered in the request) at {n['offered_rate']}/s:"
        f" p50 {fmt(n['p50_ms']).strip()} ms, p99 {fmt(n['p99_ms']).strip()} ms"
    )
    p = results["pipeline"]
    layouts = p["layouts"]
    print(
        f"\npipeline: {layouts[0]['orders']} orders per layout; median render {p['median_render_ms']} ms;"
        " render limit = processes taking the invoices queue / median render"
    )
    print(
        f"  {'layout':9} {'workers: name(queues x processes)':46} {'done/s':>7} {'limit/s':>8} {'share':>6} {'202->completed p50, p99 ms':>27}"
    )
    for f in layouts:
        workers = " ".join(f"{name}({queues} x{n})" for name, queues, n in f["workers"])
        print(
            f"  {f['layout']:9} {workers:46} {f['completed_per_s']:>7} {f['render_limit_per_s']:>8} {f['share_of_render_limit']:>6.0%} {f['p50_202_to_completed_ms']:>18}, {f['p99_202_to_completed_ms']}"
        )
    cpus = results["machine"]["cpus"]
    for f in layouts:
        spent = f["cpu_ms_per_order"]
        total = sum(spent.values())
        parts = ", ".join(f"{k} {v}" for k, v in sorted(spent.items(), key=lambda kv: -kv[1]))
        print(
            f"  {f['layout']:9} CPU ms per order: {parts}; total {total:.0f}"
            f" -> {cpus} CPUs allow {1000 * cpus / total:.1f} orders/s"
        )
    print_targets(results)
    w, split = results["webhooks"], next(f for f in layouts if f["layout"] == "split")
    with_webhooks, without = (
        sum(w["cpu_ms_per_order"].values()),
        sum(split["cpu_ms_per_order"].values()),
    )
    parts = ", ".join(
        f"{k} {v}" for k, v in sorted(w["cpu_ms_per_order"].items(), key=lambda kv: -kv[1])
    )
    print(
        f"\nwebhooks: the split layout's burst with an endpoint on all five events of an order"
        f" ({w['deliveries']} deliveries, sent in batches per endpoint, {w['delivered_per_s']}/s)"
    )
    print(
        f"  CPU ms per order {with_webhooks:.0f} with them, {without:.0f} without"
        f" ({(with_webhooks - without) / len(ORDER_EVENTS):.1f} ms a delivery): {parts}"
    )
    bursts = results["burst"]
    print(
        f"\nburst: {bursts[0]['orders']} orders placed at once, split layout;"
        " 202 -> completed per order, and the first completion after the burst began"
    )
    print(f"  {'queue':11} {'done/s':>7} {'first ms':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for b in bursts:
        print(
            f"  {b['mode']:11} {b['completed_per_s']:>7} {b['first_completed_after_ms']:>9}"
            f" {b['p50_202_to_completed_ms']:>8} {b['p95_202_to_completed_ms']:>8}"
            f" {b['p99_202_to_completed_ms']:>8}"
        )
    print_streams(results["streams"])
    print()
    for name, m in results["memory"].items():
        print(
            f"memory {name:7}: start {m['start_mb']} MB, peak {m['peak_mb']} MB, end {m['end_mb']} MB"
        )


def print_checkout_targets(results: dict[str, Any]) -> None:
    """Issue 18's targets: what a checkout costs against the insert-one-row floor, in this run."""
    fast, floor = results["checkout_gateway_0ms"], results["insert_floor_same_rate"]
    api, api_floor = fast["cpu_ms_per_request"]["api"], floor["cpu_ms_per_request"]["api"]
    bare = results["bare_checkout_same_rate"]["cpu_ms_per_request"]
    c = results["capacity"]
    trips = results["round_trips_per_checkout"]
    rows = [
        (
            f"API CPU per checkout / insert floor, both at {fast['offered_rate']}/s",
            f"{api} / {api_floor} ms = {api / api_floor:.1f}x",
            "<= 3x",
        ),
        (
            "PostgreSQL CPU per checkout (same run)",
            f"{fast['cpu_ms_per_request'].get('postgres', '-')} ms",
            "<= 1 ms",
        ),
        (
            "  the bare checkout's: API, PostgreSQL",
            f"{bare['api']} ms, {bare.get('postgres', '-')} ms",
            "(shown)",
        ),
        ("capacity at p99 <= 500 ms / the floor's", f"{c['ratio'] or 0:.0%}", ">= 40%"),
        (
            "  the bare checkout's / the floor's",
            f"{c['bare_checkout_rps_at_p99_within_budget']}/s: {c['bare_ratio'] or 0:.0%}",
            "(shown)",
        ),
        (
            f"p99 at {fast['offered_rate']}/s, gateway answering at once",
            f"{fmt(fast['p99_ms']).strip()} ms",
            "<= 50 ms",
        ),
        (
            "database round trips per checkout (prices not kept)",
            f"{trips['count']} ({trips['prices_not_kept']['count']})",
            "<= 6",
        ),
    ]
    print("\ncheckout targets (gateway answering at once; the floor: bench.app's insert-one-row;")
    print("the bare checkout: two one-statement writes, the gateway called between them)")
    for name, measured, target in rows:
        print(f"  {name:52} {measured:>22}   target {target}")
    cold = trips["prices_not_kept"]["statements"]
    print(f"  round trips: {' '.join(trips['statements'])} (prices not kept: {' '.join(cold)})")


def print_targets(results: dict[str, Any]) -> None:
    """Issue 15's targets for the split layout: the CPU around the render against the render's
    own (its median time in a process of its own, single-threaded: its CPU), the pipeline against
    what the machine's CPUs allow, and 202 -> completed at a steady rate."""
    p = results["pipeline"]
    render = p["median_render_ms"]
    split = next(f for f in p["layouts"] if f["layout"] == "split")
    spent = split["cpu_ms_per_order"]
    total = sum(spent.values())
    machine_limit = 1000 * results["machine"]["cpus"] / total
    s = results["steady"]
    rows = [
        ("CPU per order outside the render", f"{total - render:.1f} ms", f"<= {render:.1f} ms"),
        (
            "render worker CPU per order",
            f"{spent['render']:.1f} ms",
            f"<= {1.3 * render:.1f} ms",
        ),
        (
            "pipeline / machine limit (CPUs / CPU per order)",
            f"{split['completed_per_s'] / machine_limit:.0%} of {machine_limit:.1f}/s",
            ">= 80%",
        ),
        (
            f"steady {s['offered_rate']}/s open loop, 202 -> completed p95",
            f"{s['p95_202_to_completed_ms']} ms (p50 {s['p50_202_to_completed_ms']})",
            "<= 2000 ms",
        ),
    ]
    print(f"\ntargets (split layout; median render {render} ms, CPU per order {total:.0f} ms)")
    for name, measured, target in rows:
        print(f"  {name:52} {measured:>22}   target {target}")


def print_streams(r: dict[str, Any]) -> None:
    print(
        f"\nstreams: {r['opened']} of {r['streams']} order streams open on one API process;"
        f" checkout at {r['offered_rate']}/s for {r['seconds']} s without, then with them"
    )
    print(
        f"  API memory {r['rss_before_mb']} -> {r['rss_with_streams_mb']} MB:"
        f" {r['kb_per_stream']} KB per open stream"
    )
    change = r["p99_change_pct"]
    verdict = (
        "" if change is None else ("  (met: <= +20 %)" if change <= 20 else "  (not met: > +20 %)")
    )
    print(
        f"  checkout p99 {fmt(r['p99_without_ms']).strip()} ms without,"
        f" {fmt(r['p99_with_ms']).strip()} ms with"
        f" ({'-' if change is None else f'{change:+.1f} %'}){verdict};"
        f" errors {r['errors_without']} / {r['errors_with']}"
    )
