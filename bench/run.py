"""``make bench``: measure the detection core, the stream end to end, its state and its scaling;
write bench/results.json and print a table. ``python -m bench.run --help`` lists the knobs.

core     the detection core over the records in one process, as ``exfilguard detect`` runs it
         (files of JSON Lines → inputs → decode → sort → Detector), against the ceiling measured
         in the same run: only splitting and decoding the same lines with the fastest decoder at
         hand (msgspec or orjson). Best of a few repeats each.
e2e      a local broker, one ``exfilguard worker`` on one partition. The records are the
         messages the forwarder makes (``streams.kafka.forwarder.messages``: batches of up to 500
         records, same producer settings), produced as fast as the client takes them; records/s
         is the worker's own counter (exfilguard_records_total) between 10% and 90% of the
         records. The same records one per message (any other producer's format) are measured
         too, on a deployment of their own. Latency curve: the worker's capacity while a
         producer keeps feeding it, then background batches at 10–95% of it, and every 0.2 s a
         call with a known instance key from outside AWS, alone in its message as a real-time
         source sends it; the time from producing it to its finding on the output topic.
forwarder ``forward`` over the files into 4 partitions, against the msgspec decode ceiling
         measured before each run; CPU-s per million from /proc.
cost     forwarder + worker CPU-s per million records, at an on-demand vCPU price.
--repeat runs the forwarder and e2e figures (3; quick 1): medians, with min and max.
state    bench/state.py: N live credentials (distinct keys and instances). Their changelog is
         written as the worker writes it (the same Detector calls over tables that behave like
         Faust's), then a worker with no local state recovers it: seconds from spawn to /readyz,
         RocksDB bytes and RSS growth per credential, restart with the local state kept. A
         smaller number is also fed through a worker's agents to check the changelog matches
         and to give the issuance rate. Then a simulated year of an organisation's instance
         traffic (hourly keys, instances ending, thefts) through the detector: every table's
         size, flat after warm-up (``python -m bench.state`` runs that part alone).
scaling  two partitions: one worker, then two, each on a fresh deployment.
offline  peak memory (VmHWM) of an ``exfilguard detect`` child over 1 and 10 million generated
         records (quick: 20,000 and 80,000), written to a temporary directory and streamed:
         ``offline.peak_rss_bytes`` per size (bench/offline.py).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from bench import harness
from bench.generator import (
    GENERATOR_VERSION,
    Generator,
    credential,
    ids_for,
    issuance_record,
    sized,
    theft_record,
)
from bench.harness import log
from streams.kafka.batches import BATCH_RECORDS

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
FILE_RECORDS = 10_000  # records per generated file (a CloudTrail delivery file holds fewer)
# Broker and worker files of this run: per process, so runs side by side never share a broker
RUN = OUT / f"run-{os.getpid()}"

TARGETS = {
    "forwarder_events_per_s": 150_000,
    "forwarder_ratio": 0.5,
    "one_per_message_events_per_s": 50_000,
    "core_ratio": 0.5,
    "e2e_events_per_s": 20_000,
    "p99_ms": 1000,
    "recovery_s": 60,
    "bytes_per_credential": 1024,
}

FULL = {"events": 1_000_000, "e2e_events": 200_000, "latency_s": 20, "credentials": 1_000_000,
        "fed_credentials": 30_000, "scaling_events": 100_000, "repeats": 2, "repeat": 3,
        "forwarder_events": 500_000}
QUICK = {"events": 100_000, "e2e_events": 50_000, "latency_s": 5, "credentials": 50_000,
         "fed_credentials": 20_000, "scaling_events": 50_000, "repeats": 3, "repeat": 1,
         "forwarder_events": 100_000}
# The latency curve's steps: fractions of the capacity measured with the producer running.
LATENCY_STEPS = (0.10, 0.25, 0.50, 0.65, 0.80, 0.95)
FORWARDER_PARTITIONS = 4  # the forwarder places every record by its key's partition
# The price CPU time is costed at: AWS m7i.large on-demand in us-east-1, $0.1008 an hour for
# 2 vCPUs (a vCPU being one hyperthread, as one of this machine's cores may be).
VCPU_HOUR_USD = 0.0504
GUARDDUTY_USD_PER_MILLION = 4.00  # GuardDuty's published price per million CloudTrail
# management events (the first 500 million a month; less beyond)


def spread(values: list[float | None]) -> dict[str, Any]:
    """Median, min and max of a figure's runs (None where a run measured nothing)."""
    measured = [v for v in values if v is not None]
    if not measured:
        return {"median": None, "min": None, "max": None, "runs": len(values)}
    largest = max(measured)
    digits = 3 if largest < 10 else 1 if largest < 1000 else None
    return {"median": round(statistics.median(measured), digits),
            "min": round(min(measured), digits), "max": round(max(measured), digits),
            "runs": len(values)}


def cpu_seconds(pid: int | str = "self") -> float:
    """User plus system CPU time of a process so far (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def decode_ceiling(files: list[Path], decode) -> tuple[float, int]:
    """Seconds to read, split and decode every line of the files; the records."""
    gc.collect()
    count = 0
    start = time.perf_counter()
    for f in files:
        for line in f.read_bytes().split(b"\n"):
            if line:
                decode(line)
                count += 1
    return time.perf_counter() - start, count


# -- data -------------------------------------------------------------------------------------


def dataset(seed: int, events: int) -> list[Path]:
    """The first ``events`` records of the seeded stream, as files of FILE_RECORDS lines, made
    once under bench/out and reused (the stream is prefix-stable: more files extend it)."""
    folder = OUT / f"cloudtrail-seed{seed}-v{GENERATOR_VERSION}"
    folder.mkdir(parents=True, exist_ok=True)
    count = -(-events // FILE_RECORDS)
    files = [folder / f"part-{i:05d}.jsonl" for i in range(count)]
    missing = [i for i, f in enumerate(files) if not f.exists()]
    if missing:
        first = missing[0]
        log(f"generating records {first * FILE_RECORDS:,}–{count * FILE_RECORDS:,} "
            f"(seed {seed}) into {folder.relative_to(ROOT)}")
        records = Generator(seed).records(count * FILE_RECORDS, start=first * FILE_RECORDS)
        for index, batch in enumerate(harness.chunks(records, FILE_RECORDS), start=first):
            temporary = files[index].with_suffix(f".{os.getpid()}.tmp")
            temporary.write_bytes(b"".join(line + b"\n" for line in batch))
            temporary.rename(files[index])
    return files


def routed(files: list[Path], partitions: int,
           batch_records: int = BATCH_RECORDS) -> list[harness.Message]:
    """The messages ``exfilguard forward`` produces for the files (its ``messages``)."""
    from streams.kafka.forwarder import ForwardStats, messages, sorted_batches
    from streams.sources.files import iter_items

    batches = sorted_batches(iter_items([str(f) for f in files], runs=True), ForwardStats())
    return list(messages(batches, partitions, batch_records))


# -- core -------------------------------------------------------------------------------------


def core_phase(files: list[Path], repeats: int, profile: bool) -> dict[str, Any]:
    import orjson

    from streams.aws.ipranges import load_aws_ranges
    from streams.config.loader import load_config
    from streams.geo import enricher_for
    from streams.offline.run import detect
    from streams.sources.files import iter_items

    loaded = load_config(None)
    aws = load_aws_ranges(loaded.detection)
    enrich = enricher_for(loaded)
    paths = [str(f) for f in files]
    for f in files:  # the page cache holds them for every contender alike
        f.read_bytes()

    def run_core() -> tuple[float, Any]:
        gc.collect()
        start = time.perf_counter()
        findings, stats, detector = detect(iter_items(paths), loaded.detection, aws, enrich)
        return time.perf_counter() - start, (findings, stats, detector)

    decoders = {"msgspec": msgspec.json.Decoder().decode, "orjson": orjson.loads}
    core_times, ceilings = [], {name: [] for name in decoders}
    result = None
    records = 0
    for repeat in range(repeats):
        elapsed, result = run_core()
        core_times.append(elapsed)
        for name, decode in decoders.items():
            seconds, records = decode_ceiling(files, decode)
            ceilings[name].append(seconds)
        log(f"core repeat {repeat + 1}/{repeats}: core {records / elapsed:,.0f}/s, "
            + ", ".join(f"{n} {records / min(t):,.0f}/s" for n, t in ceilings.items()))
    findings, stats, detector = result
    best_decoder = min(ceilings, key=lambda n: min(ceilings[n]))
    # Each run's core against the fastest decoder of that run: the machine's load moves both.
    rates = [stats.records / t for t in core_times]
    ceiling_rates = [records / min(ceilings[n][i] for n in ceilings) for i in range(repeats)]
    ratios = [r / c for r, c in zip(rates, ceiling_rates, strict=True)]
    out = {
        "events": stats.records,
        "events_per_s": round(statistics.median(rates)),
        "events_per_s_spread": spread(rates),
        "decode_ceiling_events_per_s": round(statistics.median(ceiling_rates)),
        "ratio": round(statistics.median(ratios), 3),
        "ratio_spread": spread(ratios),
        "decoder": best_decoder,
        "decoders_events_per_s": {n: round(records / min(t)) for n, t in ceilings.items()},
        "repeats": repeats,
        "bytes": sum(f.stat().st_size for f in files),
        "relevant": stats.relevant,
        "bad": stats.bad,
        "findings": len(findings),
        "detector": vars(detector.counters),
    }
    if profile:
        out["profile"] = profile_core(paths, loaded, aws, enrich)
    return out


def profile_core(paths: list[str], loaded, aws, enrich) -> str | None:
    try:
        from pyinstrument import Profiler
    except ImportError:
        log("pyinstrument is not installed (.venv/bin/pip install pyinstrument): no profile")
        return None
    from streams.offline.run import detect
    from streams.sources.files import iter_items

    profiler = Profiler(interval=0.0005)
    profiler.start()
    detect(iter_items(paths), loaded.detection, aws, enrich)
    profiler.stop()
    target = OUT / "profile-core.txt"
    target.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    log(f"core profile: {target.relative_to(ROOT)}")
    return str(target.relative_to(ROOT))


# -- forwarder --------------------------------------------------------------------------------


def forwarder_phase(broker: harness.Broker, files: list[Path], repeat: int,
                    profile: bool) -> dict[str, Any]:
    """``exfilguard forward``'s own rate over the files into a topic of FORWARDER_PARTITIONS
    (no worker running), against the decode ceiling measured just before each run: reading,
    splitting and decoding the same lines with msgspec. CPU time from /proc (librdkafka's
    threads included)."""
    from streams.kafka.forwarder import forward
    from streams.sources.files import iter_items

    paths = [str(f) for f in files]
    decode = msgspec.json.Decoder().decode
    deployment = harness.Deployment(broker, RUN / "forwarder", FORWARDER_PARTITIONS, "f")
    rates, ratios, ceilings, cpu_per_million = [], [], [], []
    records = messages = 0
    for run in range(repeat):
        seconds, count = decode_ceiling(files, decode)
        ceilings.append(count / seconds)
        cpu, start = cpu_seconds(), time.monotonic()
        stats = forward(iter_items(paths, runs=True), deployment.settings,
                        deployment.settings.topic_input, FORWARDER_PARTITIONS)
        elapsed, cpu = time.monotonic() - start, cpu_seconds() - cpu
        if stats.failed:
            raise RuntimeError(f"forwarder: {stats.failed} not delivered: {stats.first_failure}")
        records, messages = stats.records, stats.messages
        rates.append(records / elapsed)
        ratios.append(rates[-1] / ceilings[-1])
        cpu_per_million.append(cpu / records * 1e6)
        log(f"forwarder run {run + 1}/{repeat}: {rates[-1]:,.0f} records/s, decode ceiling "
            f"{ceilings[-1]:,.0f}/s, ratio {ratios[-1]:.2f}, {cpu_per_million[-1]:.1f} "
            "CPU-s per million")
    out = {
        "events": records,
        "messages": messages,
        "partitions": FORWARDER_PARTITIONS,
        "events_per_s": round(statistics.median(rates)),
        "events_per_s_spread": spread(rates),
        "decode_ceiling_events_per_s": round(statistics.median(ceilings)),
        "decode_ceiling_spread": spread(ceilings),
        "ratio": round(statistics.median(ratios), 3),
        "ratio_spread": spread(ratios),
        "cpu_s_per_million": round(statistics.median(cpu_per_million), 2),
        "cpu_s_per_million_spread": spread(cpu_per_million),
    }
    if profile:
        out["profile"] = profile_forwarder(paths)
    return out


def profile_forwarder(paths: list[str]) -> str | None:
    """The forwarder's records to messages (no Kafka) under pyinstrument."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        log("pyinstrument is not installed (.venv/bin/pip install pyinstrument): no profile")
        return None
    from streams.kafka.forwarder import ForwardStats, messages, sorted_batches
    from streams.sources.files import iter_items

    profiler = Profiler(interval=0.0005)
    profiler.start()
    for _ in messages(sorted_batches(iter_items(paths, runs=True), ForwardStats()),
                      FORWARDER_PARTITIONS):
        pass
    profiler.stop()
    target = OUT / "profile-forwarder.txt"
    target.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    log(f"forwarder profile: {target.relative_to(ROOT)}")
    return str(target.relative_to(ROOT))


# -- end to end -------------------------------------------------------------------------------


def drain(deployment: harness.Deployment, workers: list[harness.Worker],
          messages: list[harness.Message], profile_seconds: float = 0,
          pace: harness.Pace = harness.FULL_PACE) -> dict[str, Any]:
    """Produce the messages as fast as the client takes them; the workers' sustained rate."""
    topic = deployment.settings.topic_input
    before = [w.metrics() for w in workers]
    base = sum(m.get("exfilguard_records_total", 0) for m in before)
    n = harness.records_once(messages, deployment.partitions)
    spy = None
    with harness.Sampler(workers) as sampler:
        start = time.monotonic()
        if profile_seconds:
            spy = start_py_spy(workers[0], profile_seconds)
        harness.produce_all(deployment.settings, topic, messages)
        produced = time.monotonic() - start

        def records() -> float:
            return sum(w.metrics().get("exfilguard_records_total", 0) for w in workers) - base

        harness.wait_until(lambda: records() >= n, timeout=max(600, n / 200), every=0.5,
                           what=f"{n} records consumed")
        judged = [-1.0]

        def settled() -> bool:  # the second agent has judged every call passed to it
            value = sum(w.metrics().get("exfilguard_calls_judged_total", 0) for w in workers)
            done = value == judged[0]
            judged[0] = value
            return done

        harness.wait_until(settled, timeout=300, every=pace.settle_poll_s,
                           what="calls judged")
        finished = time.monotonic() - start
    series = [(t, v - base) for t, v in sampler.total("exfilguard_records_total")]
    t10, t90 = harness.crossing(series, 0.1 * n), harness.crossing(series, 0.9 * n)
    rate = 0.8 * n / (t90 - t10) if t10 is not None and t90 is not None and t90 > t10 else None
    per_worker = []
    for index in range(len(workers)):
        worker_series = [(t, values[index].get("exfilguard_records_total", 0))
                         for t, values in sampler.samples]
        window = [(t, v) for t, v in worker_series if t10 <= t <= t90] if rate else []
        if len(window) >= 2:
            per_worker.append(round((window[-1][1] - window[0][1])
                                    / (window[-1][0] - window[0][0])))
    result = {"messages": len(messages), "records": n,
              "events_per_s": round(rate) if rate else None,
              "drain_s": round(finished, 2), "produce_s": round(produced, 2),
              "per_worker_events_per_s": per_worker}
    if spy is not None:
        result["profile"] = finish_py_spy(spy)
    return result


def start_py_spy(worker: harness.Worker, seconds: float):
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        log("py-spy is not installed (.venv/bin/pip install py-spy): no worker profile")
        return None
    target = OUT / "profile-worker.txt"
    process = harness.subprocess.Popen(
        [py_spy, "record", "--pid", str(worker.process.pid), "--duration", str(int(seconds)),
         "--format", "raw", "--output", str(target), "--nonblocking", "--rate", "200"],
        stdout=harness.subprocess.DEVNULL, stderr=harness.subprocess.PIPE)
    return process, target


def finish_py_spy(spy) -> str | None:
    process, target = spy
    try:
        _, err = process.communicate(timeout=120)
    except harness.subprocess.TimeoutExpired:
        process.kill()
        return None
    if process.returncode != 0 or not target.exists():
        log(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
        return None
    summary = OUT / "profile-worker-summary.txt"
    summary.write_text(summarise_collapsed(target.read_text()))
    log(f"worker profile: {target.relative_to(ROOT)}, {summary.relative_to(ROOT)}")
    return str(summary.relative_to(ROOT))


def summarise_collapsed(text: str, top: int = 40) -> str:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].rsplit(":", 1)[0] + ")"
                  if " (" in f else f for f in stack.split(";")]
        own[frames[-1]] = own.get(frames[-1], 0) + samples
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + samples
    lines = [f"{total} samples", "", "self %   function"]
    for frame, samples in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * samples / total:6.1f}   {frame}")
    lines += ["", "inclusive %   function"]
    for frame, samples in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * samples / total:6.1f}   {frame}")
    return "\n".join(lines) + "\n"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency(deployment: harness.Deployment, worker: harness.Worker,
            background: list[harness.Message], rate: float, seconds: float,
            every: float = 0.2, seed: int = 424242,
            pace: harness.Pace = harness.FULL_PACE) -> dict[str, Any]:
    """Background at ``rate``; every ``every`` s a theft with a known key; finding latency.
    Each ``seed`` its own keys: steps of a curve never meet another step's findings."""
    settings = deployment.settings
    topic = settings.topic_input
    injections = max(1, int(seconds / every))
    creds = [credential(index, seed=seed) for index in range(injections)]
    ids = ids_for(seed)  # event ids of its own: a repeated one is a re-delivery
    event_time = background[0][3] / 1000
    issued = []
    for c in creds:
        record = issuance_record(ids, event_time, c.instance_id, c.key, c.role, c.account,
                                 c.role_id)
        issued.append(harness.Message(c.instance_id.encode(), sized(ids.rng, ids, record), None,
                                      int(event_time * 1000)))
    before = worker.metrics().get("exfilguard_issuances_total", 0)
    harness.produce_all(settings, topic, issued)
    harness.wait_until(lambda: worker.metrics().get("exfilguard_issuances_total", 0)
                       >= before + len(creds), timeout=120, what="injected issuances")
    client = harness.producer(settings)
    produced_at: dict[str, float] = {}
    sent = 0  # background records
    index = 0  # background messages
    injected = 0
    with harness.FindingWatcher(deployment) as watcher:
        time.sleep(pace.watcher_start_s)  # the watcher's consumer has its partitions
        start = time.monotonic()
        next_injection = start + every / 2
        while True:
            now = time.monotonic()
            elapsed = now - start
            if elapsed >= seconds:
                break
            due = int(rate * elapsed)
            while sent < due:
                key, value, partition, timestamp, headers = background[index % len(background)]
                kwargs = {"partition": partition} if partition is not None else {}
                if headers:
                    kwargs["headers"] = headers
                try:
                    client.produce(topic, value=value, key=key, timestamp=timestamp, **kwargs)
                except BufferError:
                    client.poll(0.01)
                    continue
                event_time = max(event_time, timestamp / 1000)
                sent += harness.records_in(background[index % len(background)])
                index += 1
            if now >= next_injection and injected < len(creds):
                c = creds[injected]
                record = theft_record(ids, event_time, c.instance_id, c.key, c.role, c.account,
                                      c.role_id, f"203.0.113.{injected % 250 + 1}",
                                      issued=background[0][3] / 1000)
                produced_at[c.key] = time.monotonic()
                client.produce(topic, value=sized(ids.rng, ids, record),
                               key=c.instance_id.encode(), timestamp=int(event_time * 1000))
                injected += 1
                next_injection += every
            client.poll(0)
            time.sleep(0.001)
        client.flush(60)
        try:
            harness.wait_until(lambda: all(k in watcher.arrivals for k in produced_at),
                               timeout=30, what="every injected finding")
        except TimeoutError:
            pass
        arrivals = dict(watcher.arrivals)
    latencies = [1000 * (arrivals[k] - t) for k, t in produced_at.items() if k in arrivals]
    return {
        "rate_events_per_s": round(rate), "seconds": seconds, "background_sent": sent,
        "injected": injected, "findings_seen": len(latencies),
        "latency_ms": ({"p50": round(percentile(latencies, 0.5), 1),
                        "p99": round(percentile(latencies, 0.99), 1),
                        "max": round(max(latencies), 1)} if latencies else None),
    }


def capacity(deployment: harness.Deployment, worker: harness.Worker,
             background: list[harness.Message], offered: float, seconds: float,
             pace: harness.Pace = harness.FULL_PACE) -> float | None:
    """The worker's records/s while a producer keeps feeding it (the background, cycled, at
    ``offered`` records/s, above what it takes): the load the latency curve's steps are fractions
    of. The backlog is drained before it returns."""
    settings = deployment.settings
    client = harness.producer(settings)
    counts = [harness.records_in(m) for m in background]
    stop = time.monotonic() + seconds
    sent = index = 0
    with harness.Sampler([worker]) as sampler:
        start = time.monotonic()
        while (now := time.monotonic()) < stop:
            while sent < offered * (now - start):
                key, value, partition, timestamp, headers = background[index % len(background)]
                kwargs = {"partition": partition} if partition is not None else {}
                try:
                    client.produce(settings.topic_input, value=value, key=key,
                                   timestamp=timestamp, headers=headers, **kwargs)
                except BufferError:
                    client.poll(0.01)
                    continue
                sent += counts[index % len(background)]
                index += 1
            client.poll(0)
            time.sleep(0.002)
    client.flush(120)
    series = sampler.total("exfilguard_records_total")
    # From the first second on (the worker has started fetching) to the producer's end.
    window = [(t, v) for t, v in series if t >= start + 1.0]
    rate = ((window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])
            if len(window) >= 2 and window[-1][0] > window[0][0] else None)
    last = [-1.0]

    def caught_up() -> bool:
        value = worker.metrics().get("exfilguard_records_total", 0)
        done, last[0] = value == last[0], value
        return done

    harness.wait_until(caught_up, timeout=max(300, sent / 2000), every=pace.drained_poll_s,
                       what="the capacity run's backlog drained")
    return rate


def e2e_phase(broker: harness.Broker, files: list[Path], latency_files: list[Path],
              latency_s: float, profile: bool, repeat: int = 1,
              pace: harness.Pace = harness.FULL_PACE,
              one_per_message: int | None = None) -> dict[str, Any]:
    log("e2e: one record per message (the format of any other producer), one worker")
    # The first ``one_per_message`` records (messages) of the stream, or all of it.
    single = routed(files, 1, batch_records=1)[:one_per_message]
    baseline = harness.Deployment(broker, RUN / "e2e-single", 1, "s")
    try:
        worker = baseline.start_worker("w0")
        singles = [drain(baseline, [worker], single, pace=pace)["events_per_s"]
                   for _ in range(repeat)]
    finally:
        baseline.close()
    log(f"e2e: {singles} records/s one per message")
    deployment = harness.Deployment(broker, RUN / "e2e", 1, "e")
    try:
        messages = routed(files, 1)
        worker = deployment.start_worker("w0")
        log(f"e2e: {len(messages):,} messages (batches of up to {BATCH_RECORDS} records, as "
            "the forwarder sends them), one worker draining them")
        drains = []
        for run in range(repeat):
            cpu = cpu_seconds(worker.process.pid)
            drained = drain(deployment, [worker], messages,
                            profile_seconds=15 if profile and run == 0 else 0, pace=pace)
            drained["cpu_s_per_million"] = ((cpu_seconds(worker.process.pid) - cpu)
                                            / drained["records"] * 1e6)
            drains.append(drained)
            log(f"e2e run {run + 1}/{repeat}: {drained['events_per_s']} records/s sustained, "
                f"{drained['cpu_s_per_million']:.1f} worker CPU-s per million")
        rates = [d["events_per_s"] for d in drains]
        background = routed(latency_files, 1)
        no_producer = statistics.median([r for r in rates if r] or [1000])
        loaded = capacity(deployment, worker, background, 1.5 * no_producer,
                          max(pace.capacity_min_s, latency_s / 2), pace=pace)
        log(f"e2e: capacity with the producer running {loaded or 0:,.0f} records/s "
            f"({no_producer:,.0f}/s draining a topic filled beforehand)")
        curve = []
        for step, fraction in enumerate(LATENCY_STEPS):
            rate = fraction * (loaded or no_producer)
            log(f"e2e: latency at {fraction:.0%}: {rate:,.0f} records/s for {latency_s:.0f} s")
            lat = latency(deployment, worker, background, rate, latency_s,
                          seed=424242 + step, pace=pace)
            ms = lat["latency_ms"] or {}
            curve.append({"fraction": fraction, "offered_per_s": round(rate),
                          "p50_ms": ms.get("p50"), "p99_ms": ms.get("p99"),
                          "max_ms": ms.get("max"), "findings_seen": lat["findings_seen"],
                          "injected": lat["injected"]})
        half = curve[LATENCY_STEPS.index(0.50)]
        return {
            "events": drains[0]["records"],
            "events_per_s": round(statistics.median([r for r in rates if r])) if any(rates)
            else None,
            "events_per_s_spread": spread(rates),
            "capacity_with_producer_events_per_s": round(loaded) if loaded else None,
            "latency_ms": {"p50": half["p50_ms"], "p99": half["p99_ms"],
                           "max": half["max_ms"]},
            "latency_curve": curve,
            "batch_records": BATCH_RECORDS,
            "messages": drains[0]["messages"],
            "one_per_message_events_per_s": (round(statistics.median([r for r in singles if r]))
                                             if any(singles) else None),
            "one_per_message_spread": spread(singles),
            "one_per_message_events": len(single),  # one record a message
            "worker_cpu_s_per_million": round(statistics.median(
                [d["cpu_s_per_million"] for d in drains]), 2),
            "worker_cpu_s_per_million_spread": spread([d["cpu_s_per_million"] for d in drains]),
            "drain_s": drains[0]["drain_s"],
            "produce_s": drains[0]["produce_s"],
            "worker_rss_bytes": worker.rss(),
            **({"profile": drains[0]["profile"]} if "profile" in drains[0] else {}),
        }
    finally:
        deployment.close()


def draw_latency(curve: list[dict[str, Any]], target: Path) -> None:
    """The latency curve as an SVG: offered records/s across, p99 (and p50) ms up."""
    points = [c for c in curve if c["p99_ms"] is not None]
    width, height, left, bottom, top, right = 640, 400, 70, 50, 30, 20
    x_max = max([c["offered_per_s"] for c in curve] + [1]) * 1.05
    y_max = max([c["p99_ms"] for c in points] + [1]) * 1.15

    def x(value: float) -> float:
        return left + (width - left - right) * value / x_max

    def y(value: float) -> float:
        return height - bottom - (height - bottom - top) * value / y_max

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="14">finding latency '
             "under load (one worker, make bench)</text>",
             f'<line x1="{left}" y1="{y(0)}" x2="{width - right}" y2="{y(0)}" stroke="black"/>',
             f'<line x1="{left}" y1="{y(0)}" x2="{left}" y2="{top}" stroke="black"/>']
    for i in range(6):
        xv, yv = x_max / 1.05 * i / 5, y_max / 1.15 * i / 5
        parts += [f'<text x="{x(xv)}" y="{y(0) + 18}" text-anchor="middle">{xv:,.0f}</text>',
                  f'<text x="{left - 6}" y="{y(yv) + 4}" text-anchor="end">{yv:,.0f}</text>',
                  f'<line x1="{left}" y1="{y(yv)}" x2="{width - right}" y2="{y(yv)}" '
                  'stroke="#ddd"/>']
    parts += [f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">'
              "offered records/s</text>",
              f'<text x="16" y="{(top + height - bottom) / 2}" text-anchor="middle" '
              f'transform="rotate(-90 16 {(top + height - bottom) / 2})">latency, ms</text>']
    for key, colour in (("p99_ms", "#c0392b"), ("p50_ms", "#2874a6")):
        line = " ".join(f"{x(c['offered_per_s']):.1f},{y(c[key]):.1f}" for c in points)
        parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" '
                     'stroke-width="2"/>')
        parts += [f'<circle cx="{x(c["offered_per_s"]):.1f}" cy="{y(c[key]):.1f}" r="3" '
                  f'fill="{colour}"><title>{c["fraction"]:.0%}: {c[key]} ms</title></circle>'
                  for c in points]
    parts += [f'<text x="{width - right - 4}" y="{top + 14}" text-anchor="end" '
              'fill="#c0392b">p99</text>',
              f'<text x="{width - right - 4}" y="{top + 30}" text-anchor="end" '
              'fill="#2874a6">p50</text>', "</svg>"]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(parts) + "\n")


def cost(results: dict[str, Any]) -> dict[str, Any] | None:
    """CPU-seconds per million records (forwarder + worker, measured) and their price."""
    forwarder = (results.get("forwarder") or {}).get("cpu_s_per_million")
    worker = (results.get("e2e") or {}).get("worker_cpu_s_per_million")
    if forwarder is None or worker is None:
        return None
    total = forwarder + worker
    return {
        "cpu_s_per_million": {"forwarder": forwarder, "worker": worker,
                              "total": round(total, 2)},
        "vcpu_hour_usd": VCPU_HOUR_USD,
        "price_basis": "AWS m7i.large on-demand, us-east-1: $0.1008/h for 2 vCPUs",
        "usd_per_million": round(total / 3600 * VCPU_HOUR_USD, 6),
        "guardduty_usd_per_million": GUARDDUTY_USD_PER_MILLION,
        "note": "CPU time only (forwarder and one worker, from /proc); the Kafka cluster and "
                "its storage are not in it",
    }


# -- state ------------------------------------------------------------------------------------


def state_phase(broker: harness.Broker, count: int, fed_count: int,
                quick: bool = False) -> dict[str, Any]:
    from bench import state

    pace = harness.QUICK_PACE if quick else harness.FULL_PACE
    fed = state.fed(broker, RUN, fed_count, pace=pace)
    big = state.million(broker, RUN, count, pace=pace)
    log("state: a simulated year of an organisation's instance traffic through the detector")
    year = state.year(state.QUICK_YEAR if quick else state.YearShape())
    return {
        "credentials": big["credentials"],
        "bytes_per_credential": big["rocksdb_bytes_per_credential"],
        "recovery_s": big["recovery_s"],
        "memory_bytes_per_credential": big["memory_bytes_per_credential"],
        "changelog_bytes_per_credential": big["changelog_bytes_per_credential"],
        "restart_with_local_state_s": big["restart_with_local_state_s"],
        "recovered_credential_detected": big["recovered_credential_detected"],
        "method": "changelog of the credentials written as the worker writes it (same Detector "
                  "calls, Faust's JSON key/value), then a worker with no local state recovers "
                  "it; 'fed' is the same through the worker's agents",
        "million": big,
        "fed": fed,
        "year": year,
    }


# -- scaling ----------------------------------------------------------------------------------


def scaling_phase(broker: harness.Broker, files: list[Path],
                  pace: harness.Pace = harness.FULL_PACE) -> dict[str, Any]:
    messages = routed(files, 2)
    results = {}
    for workers in (1, 2):
        deployment = harness.Deployment(broker, RUN / f"scaling{workers}", 2,
                                        f"x{workers}")
        try:
            started = [deployment.start_worker(f"w{i}", wait=False) for i in range(workers)]
            for worker in started:
                worker.wait_ready()
            time.sleep(pace.group_settle_s)  # the group settles: one partition each
            for worker in started:
                worker.wait_ready()
            log(f"scaling: {workers} worker(s), {len(messages):,} messages on 2 partitions")
            results[workers] = drain(deployment, started, messages, pace=pace)
            log(f"scaling: {workers} worker(s): {results[workers]['events_per_s']} records/s")
        finally:
            deployment.close()
    return {
        "events": sum(map(harness.records_in, messages)),
        "messages": len(messages),
        "workers_1_events_per_s": results[1]["events_per_s"],
        "workers_2_events_per_s": results[2]["events_per_s"],
        "speedup": (round(results[2]["events_per_s"] / results[1]["events_per_s"], 2)
                    if results[1]["events_per_s"] and results[2]["events_per_s"] else None),
        "workers_2_per_worker_events_per_s": results[2]["per_worker_events_per_s"],
    }


# -- machine, table, main ---------------------------------------------------------------------


def machine() -> tuple[str, dict[str, Any]]:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    except OSError:
        pass
    details = {"cpu": model, "cores": os.cpu_count(), "memory_bytes": memory,
               "python": platform.python_version(), "system": platform.platform(),
               "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    summary = (f"{model}, {os.cpu_count()} cores, {memory / 2**30:.1f} GiB, "
               f"Python {platform.python_version()}, {platform.system()} {platform.release()}")
    return summary, details


def verdict(value: float | None, target: float, higher_is_better: bool) -> str:
    if value is None:
        return "not measured"
    ok = value >= target if higher_is_better else value <= target
    return "met" if ok else "MISSED"


def targets(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    forwarder = results.get("forwarder")
    if forwarder:
        rows.append(("forwarder records/s, one process", f"{forwarder['events_per_s']:,}",
                     f">= {TARGETS['forwarder_events_per_s']:,}",
                     verdict(forwarder["events_per_s"], TARGETS["forwarder_events_per_s"],
                             True)))
        rows.append(("forwarder ratio to decode ceiling", f"{forwarder['ratio']:.2f}",
                     f">= {TARGETS['forwarder_ratio']}",
                     verdict(forwarder["ratio"], TARGETS["forwarder_ratio"], True)))
    core = results.get("core")
    if core:
        rows.append(("core ratio to decode ceiling", f"{core['ratio']:.2f}",
                     f">= {TARGETS['core_ratio']}",
                     verdict(core["ratio"], TARGETS["core_ratio"], True)))
    e2e = results.get("e2e")
    if e2e:
        rows.append(("e2e records/s, one worker", f"{e2e['events_per_s'] or 0:,}",
                     f">= {TARGETS['e2e_events_per_s']:,}",
                     verdict(e2e["events_per_s"], TARGETS["e2e_events_per_s"], True)))
        rows.append(("e2e records/s, one record per message",
                     f"{e2e['one_per_message_events_per_s'] or 0:,}",
                     f">= {TARGETS['one_per_message_events_per_s']:,}",
                     verdict(e2e["one_per_message_events_per_s"],
                             TARGETS["one_per_message_events_per_s"], True)))
        p99 = (e2e["latency_ms"] or {}).get("p99")
        rows.append(("e2e p99 latency at half load", f"{p99} ms",
                     f"<= {TARGETS['p99_ms']} ms", verdict(p99, TARGETS["p99_ms"], False)))
        worst = [c["p99_ms"] for c in e2e.get("latency_curve", []) if c["fraction"] <= 0.8]
        worst_p99 = None if not worst or None in worst else max(worst)
        rows.append(("e2e p99 latency up to 80% load", f"{worst_p99} ms",
                     f"<= {TARGETS['p99_ms']} ms",
                     verdict(worst_p99, TARGETS["p99_ms"], False)))
    state = results.get("state")
    if state:
        full = state["credentials"] >= 1_000_000
        note = "" if full else f" ({state['credentials']:,} only)"
        rows.append((f"recovery of the table{note}", f"{state['recovery_s']} s",
                     f"<= {TARGETS['recovery_s']} s at 1M",
                     verdict(state["recovery_s"], TARGETS["recovery_s"], False) if full
                     else "n/a below 1M"))
        for label, key in (("RocksDB bytes per credential", "bytes_per_credential"),
                           ("worker memory per credential", "memory_bytes_per_credential")):
            rows.append((label, f"{state[key]:,} B", f"< {TARGETS['bytes_per_credential']} B",
                         verdict(state[key], TARGETS["bytes_per_credential"] - 1, False)))
    return rows


def table(results: dict[str, Any]) -> str:
    lines = [f"machine: {results['machine']}", f"mode: {results['mode']}", ""]
    core = results.get("core")
    if core:
        lines += [f"core     {core['events']:,} records: {core['events_per_s']:,}/s; decode "
                  f"ceiling ({core['decoder']}) {core['decode_ceiling_events_per_s']:,}/s; "
                  f"ratio {core['ratio']:.2f}; {core['findings']} findings"]
    forwarder = results.get("forwarder")
    if forwarder:
        rates = forwarder["events_per_s_spread"]
        lines += [f"forward  {forwarder['events']:,} records to {forwarder['partitions']} "
                  f"partitions: {forwarder['events_per_s']:,}/s (min {rates['min']:,.0f}, max "
                  f"{rates['max']:,.0f}, {rates['runs']} runs); decode ceiling "
                  f"{forwarder['decode_ceiling_events_per_s']:,}/s; ratio "
                  f"{forwarder['ratio']:.2f}; {forwarder['cpu_s_per_million']} CPU-s per million"]
    e2e = results.get("e2e")
    if e2e:
        lat = e2e["latency_ms"] or {}
        rates = e2e["events_per_s_spread"]
        lines += [f"e2e      {e2e['events']:,} records: {e2e['events_per_s'] or 0:,}/s one "
                  f"worker in batches of {e2e.get('batch_records', 1)} (min {rates['min']}, max "
                  f"{rates['max']}; {e2e.get('one_per_message_events_per_s') or 0:,}/s one per "
                  "message); with the producer running "
                  f"{e2e['capacity_with_producer_events_per_s']}/s; at half of that p50 "
                  f"{lat.get('p50')} ms p99 {lat.get('p99')} ms",
                  "         latency curve: " + "; ".join(
                      f"{c['fraction']:.0%} {c['offered_per_s']:,}/s p99 {c['p99_ms']} ms "
                      f"({c['findings_seen']}/{c['injected']})" for c in e2e["latency_curve"])]
    cost_ = results.get("cost")
    if cost_:
        cpu = cost_["cpu_s_per_million"]
        lines += [f"cost     {cpu['total']} CPU-s per million records (forwarder "
                  f"{cpu['forwarder']}, worker {cpu['worker']}): ${cost_['usd_per_million']} "
                  f"at ${cost_['vcpu_hour_usd']}/vCPU-hour; GuardDuty "
                  f"${cost_['guardduty_usd_per_million']:.2f}"]
    state = results.get("state")
    if state:
        fed = state["fed"]
        lines += [f"state    {state['credentials']:,} credentials: RocksDB "
                  f"{state['bytes_per_credential']:,} B, memory "
                  f"{state['memory_bytes_per_credential']:,} B, changelog "
                  f"{state['changelog_bytes_per_credential']:,} B each; recovery "
                  f"{state['recovery_s']} s, restart with local state "
                  f"{state['restart_with_local_state_s']} s; recovered key detected: "
                  f"{state['recovered_credential_detected']}",
                  f"         fed through a worker: {fed['credentials']:,} issuances at "
                  f"{fed['issuances_per_s']:,}/s; RocksDB {fed['rocksdb_bytes_per_credential']:,}"
                  f" B, memory {fed['memory_bytes_per_credential']:,} B, changelog "
                  f"{fed['changelog_bytes_per_credential']:,} B each; recovery "
                  f"{fed['recovery_s']} s"]
    scaling = results.get("scaling")
    if scaling:
        lines += [f"scaling  {scaling['events']:,} records on 2 partitions: 1 worker "
                  f"{scaling['workers_1_events_per_s'] or 0:,}/s, 2 workers "
                  f"{scaling['workers_2_events_per_s'] or 0:,}/s (x{scaling['speedup']})"]
    offline = results.get("offline")
    if offline:
        peaks = ", ".join(f"{int(size):,} records {peak / 2**20:.0f} MiB"
                          for size, peak in offline["peak_rss_bytes"].items())
        lines += [f"offline  detect peak RSS: {peaks} (x{offline['growth']})"]
    rows = targets(results)
    if rows:
        width = max(len(r[0]) for r in rows)
        lines += ["", f"{'target':<{width}}  {'measured':>14}  {'target':>16}  verdict"]
        lines += [f"{r[0]:<{width}}  {r[1]:>14}  {r[2]:>16}  {r[3]}" for r in rows]
        missed = [r[0] for r in rows if r[3] == "MISSED"]
        lines += ["", "MISSED: " + "; ".join(missed) if missed else "every target met"]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", default=bool(os.environ.get(
        "BENCH_QUICK")), help="small sizes for a check of the harness ($BENCH_QUICK)")
    parser.add_argument("--events", type=int, default=os.environ.get("BENCH_EVENTS"),
                        help="core records (default 1,000,000; quick 100,000; $BENCH_EVENTS)")
    parser.add_argument("--e2e-events", type=int, help="records the worker drains")
    parser.add_argument("--one-per-message-events", type=int,
                        help="records the worker drains one per message (default: as many as "
                             "--e2e-events)")
    parser.add_argument("--latency-seconds", type=float,
                        help="length of each step of the latency curve (20 s, quick 5 s)")
    parser.add_argument("--credentials", type=int, default=os.environ.get("BENCH_CREDENTIALS"),
                        help="live credentials in the state run ($BENCH_CREDENTIALS)")
    parser.add_argument("--fed-credentials", type=int,
                        help="credentials fed through a worker's agents in the state run")
    parser.add_argument("--scaling-events", type=int, help="records per scaling run")
    parser.add_argument("--repeats", type=int, help="core repeats (the median taken)")
    parser.add_argument("--repeat", type=int, help="runs of the forwarder and e2e figures "
                                                   "(medians, min and max; 3, quick 1)")
    parser.add_argument("--forwarder-events", type=int, help="records the forwarder sends")
    parser.add_argument("--offline-records", help="comma-separated record counts detect's peak "
                                                  "memory is measured at (1,000,000 and "
                                                  "10,000,000; quick 20,000 and 80,000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", default="core,forwarder,e2e,state,scaling,offline",
                        help="comma-separated phases (core, forwarder, e2e, state, scaling, "
                             "offline)")
    parser.add_argument("--profile", action="store_true",
                        help="pyinstrument the core, py-spy the worker (bench/out/profile-*)")
    parser.add_argument("--output", help="results file (default bench/results.json, quick: "
                                         "bench/out/results-quick.json)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    for name in ("events", "e2e_events", "latency_seconds", "credentials", "fed_credentials",
                 "scaling_events", "repeats", "repeat", "forwarder_events"):
        key = "latency_s" if name == "latency_seconds" else name
        if getattr(args, name) is None:
            setattr(args, name, sizes[key])
        setattr(args, name, type(sizes[key])(getattr(args, name)))
    args.phases = [p.strip() for p in args.only.split(",") if p.strip()]
    from bench.offline import FULL_SIZES, QUICK_SIZES

    args.offline_records = (tuple(int(n) for n in args.offline_records.split(",") if n.strip())
                            if args.offline_records
                            else QUICK_SIZES if args.quick else FULL_SIZES)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [name for name in ("orjson",) if importlib.util.find_spec(name) is None]
    if missing:
        print(f"bench: {', '.join(missing)} not installed: `make bench` installs the bench "
              "extra (or .venv/bin/pip install -e '.[bench]')", file=sys.stderr)
        return 2
    summary, details = machine()
    results: dict[str, Any] = {"machine": summary}
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    files_needed = max(args.events, args.e2e_events * 2, args.scaling_events,
                       args.forwarder_events)
    # The offline phase writes its own records (to a temporary directory).
    files = (dataset(args.seed, files_needed)
             if {"core", "forwarder", "e2e", "scaling"} & set(args.phases) else [])
    core_files = files[: -(-args.events // FILE_RECORDS)]
    if "core" in args.phases:
        log(f"core: {args.events:,} records")
        results["core"] = core_phase(core_files, args.repeats, args.profile)
    if "offline" in args.phases:
        from bench.offline import offline_phase

        results["offline"] = offline_phase(args.offline_records, args.seed)
    pace = harness.QUICK_PACE if args.quick else harness.FULL_PACE
    broker_phases = [p for p in args.phases if p not in ("core", "offline")]
    if broker_phases:
        shutil.rmtree(RUN, ignore_errors=True)
        with harness.Broker(RUN / "kafka") as broker:
            log(f"broker on {broker.bootstrap}")
            e2e_count = -(-args.e2e_events // FILE_RECORDS)
            if "forwarder" in args.phases:
                results["forwarder"] = forwarder_phase(
                    broker, files[: -(-args.forwarder_events // FILE_RECORDS)], args.repeat,
                    args.profile)
            if "e2e" in args.phases:
                results["e2e"] = e2e_phase(broker, files[:e2e_count],
                                           files[e2e_count:2 * e2e_count],
                                           args.latency_seconds, args.profile, args.repeat,
                                           pace, args.one_per_message_events)
            if "state" in args.phases:
                results["state"] = state_phase(broker, args.credentials, args.fed_credentials,
                                               args.quick)
            if "scaling" in args.phases:
                results["scaling"] = scaling_phase(
                    broker, files[: -(-args.scaling_events // FILE_RECORDS)], pace)
        shutil.rmtree(RUN, ignore_errors=True)
    if cost(results):
        results["cost"] = cost(results)
    results["mode"] = "quick" if args.quick else "full"
    results["repeat"] = args.repeat
    results["machine_details"] = details
    results["seed"] = args.seed
    results["generator_version"] = GENERATOR_VERSION
    results["targets"] = {r[0]: {"measured": r[1], "target": r[2], "verdict": r[3]}
                          for r in targets(results)}
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    output = Path(args.output) if args.output else (
        OUT / "results-quick.json" if args.quick else ROOT / "bench" / "results.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    if "e2e" in results:
        # README shows the full run's; a quick run's or another output's sits beside its file.
        plot = (OUT / "latency.svg" if output == ROOT / "bench" / "results.json"
                else output.with_suffix(".svg"))
        draw_latency(results["e2e"]["latency_curve"], plot)
        print(f"latency curve: {plot}")
    print(table(results))
    print(f"\nresults: {output}  ({results['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

