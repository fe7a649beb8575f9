"""``make soak``: one worker fed an organisation's instance traffic at a steady rate for a while
(event time runs fast: keys rotate, instances end, keys are stolen), its RSS sampled and printed;
flat is what a year of running needs. ``python -m bench.soak --help`` lists the knobs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from itertools import islice
from pathlib import Path

from bench import harness
from bench.state import YearShape, year_records

OUT = Path(__file__).resolve().parent / "out" / "soak"


def feed(seconds: float, rate: int, sample_every: float, partitions: int) -> dict:
    from streams.kafka.forwarder import ForwardStats, messages, sorted_batches
    from streams.sources.files import Record

    shutil.rmtree(OUT, ignore_errors=True)
    records = year_records(YearShape(days=3650))
    samples: list[tuple[float, int, float]] = []  # (seconds in, RSS bytes, records judged)
    with harness.Broker(OUT / "kafka") as broker:
        deployment = harness.Deployment(broker, OUT, partitions, "s")
        try:
            worker = deployment.start_worker("w0")
            client = harness.producer(deployment.settings)
            topic = deployment.settings.topic_input
            started = time.monotonic()
            sent = 0
            next_sample = started
            while time.monotonic() - started < seconds:
                second = time.monotonic()
                chunk = [Record(f"soak:{sent + n}", raw) for n, raw in
                         enumerate(islice(records, rate))]
                for message in messages(sorted_batches(chunk, ForwardStats()), partitions):
                    kwargs = {"partition": message.partition} if message.partition is not None \
                        else {}
                    client.produce(topic, value=message.value, key=message.key,
                                   timestamp=message.timestamp, headers=message.headers,
                                   **kwargs)
                client.poll(0)
                sent += len(chunk)
                if time.monotonic() >= next_sample:
                    judged = worker.metrics().get("exfilguard_records_total", 0.0)
                    samples.append((round(time.monotonic() - started), worker.rss(), judged))
                    print(f"soak: {samples[-1][0]:>6} s  RSS {samples[-1][1] / 2**20:7.1f} MiB"
                          f"  records read {int(judged):,} of {sent:,} sent", flush=True)
                    next_sample += sample_every
                time.sleep(max(0.0, 1.0 - (time.monotonic() - second)))
            client.flush(120)
            worker.stop()
        finally:
            deployment.close()
    shutil.rmtree(OUT, ignore_errors=True)
    rss = [s[1] for s in samples]
    settled = rss[len(rss) // 4:] or rss
    return {
        "seconds": seconds, "rate_records_per_s": rate, "records_sent": sent,
        "records_read": int(samples[-1][2]) if samples else 0,
        "rss_mib": {"first": round(rss[0] / 2**20, 1), "min_after_first_quarter":
                    round(min(settled) / 2**20, 1), "max_after_first_quarter":
                    round(max(settled) / 2**20, 1), "last": round(rss[-1] / 2**20, 1)},
        "samples": [{"s": s, "rss_mib": round(r / 2**20, 1), "read": int(j)}
                    for s, r, j in samples],
        "traffic": "bench/state.py's organisation (instance records only), event time "
                   "running one simulated hour per ~75 records",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=1800.0,
                        help="how long to feed (default 1800; $SOAK_SECONDS in make soak)")
    parser.add_argument("--rate", type=int, default=300,
                        help="records a second (default 300; every one concerns an instance, "
                             "so each costs the worker two agent hops)")
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between RSS samples")
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--output", help="also write the figures here (JSON), e.g. under "
                                         "bench/results.json's soak key with --into-results")
    parser.add_argument("--into-results", action="store_true",
                        help="write the figures into bench/results.json under 'soak'")
    args = parser.parse_args(argv)
    result = feed(args.seconds, args.rate, args.sample, args.partitions)
    rss = result["rss_mib"]
    print(f"soak: {result['records_sent']:,} records in {args.seconds:.0f} s; RSS first "
          f"{rss['first']} MiB, after the first quarter {rss['min_after_first_quarter']} .. "
          f"{rss['max_after_first_quarter']} MiB, last {rss['last']} MiB")
    targets = [Path(args.output)] if args.output else []
    if args.into_results:
        targets.append(Path(__file__).resolve().parent / "results.json")
    for target in targets:
        results = json.loads(target.read_text()) if target.exists() else {}
        results["soak"] = result
        target.write_text(json.dumps(results, indent=2) + "\n")
        print(f"written: {target} (soak)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
