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
         too, on a deployment of their own; the forwarder's own rate separately. Latency:
         background batches at half the batched rate, and every 0.2 s a call with a known
         instance key from outside AWS, alone in its message as a real-time source sends it;
         the time from producing it to its finding on the output topic.
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
    "core_ratio": 0.5,
    "e2e_events_per_s": 20_000,
    "p99_ms": 1000,
    "recovery_s": 60,
    "bytes_per_credential": 1024,
}

FULL = {"events": 1_000_000, "e2e_events": 200_000, "latency_s": 60, "credentials": 1_000_000,
        "fed_credentials": 30_000, "scaling_events": 100_000, "repeats": 2}
QUICK = {"events": 100_000, "e2e_events": 50_000, "latency_s": 20, "credentials": 50_000,
         "fed_credentials": 20_000, "scaling_events": 50_000, "repeats": 3}


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

    def run_decoder(decode) -> tuple[float, int]:
        gc.collect()
        count = 0
        start = time.perf_counter()
        for f in files:
            for line in f.read_bytes().split(b"\n"):
                if line:
                    decode(line)
                    count += 1
        return time.perf_counter() - start, count

    decoders = {"msgspec": msgspec.json.Decoder().decode, "orjson": orjson.loads}
    core_times, ceilings = [], {name: [] for name in decoders}
    result = None
    records = 0
    for repeat in range(repeats):
        elapsed, result = run_core()
        core_times.append(elapsed)
        for name, decode in decoders.items():
            seconds, records = run_decoder(decode)
            ceilings[name].append(seconds)
        log(f"core repeat {repeat + 1}/{repeats}: core {records / elapsed:,.0f}/s, "
            + ", ".join(f"{n} {records / min(t):,.0f}/s" for n, t in ceilings.items()))
    findings, stats, detector = result
    best_decoder = min(ceilings, key=lambda n: min(ceilings[n]))
    core_rate = stats.records / min(core_times)
    ceiling_rate = records / min(ceilings[best_decoder])
    out = {
        "events": stats.records,
        "events_per_s": round(core_rate),
        "decode_ceiling_events_per_s": round(ceiling_rate),
        "ratio": round(core_rate / ceiling_rate, 3),
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


# -- end to end -------------------------------------------------------------------------------


def drain(deployment: harness.Deployment, workers: list[harness.Worker],
          messages: list[harness.Message], profile_seconds: float = 0) -> dict[str, Any]:
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

        harness.wait_until(settled, timeout=300, every=1.0, what="calls judged")
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
            every: float = 0.2) -> dict[str, Any]:
    """Background at ``rate``; every ``every`` s a theft with a known key; finding latency."""
    settings = deployment.settings
    topic = settings.topic_input
    injections = int(seconds / every)
    creds = [credential(index, seed=424242) for index in range(injections)]
    ids = ids_for(424242)
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
        time.sleep(1.0)  # the watcher's consumer has its partitions
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


def e2e_phase(broker: harness.Broker, files: list[Path], latency_files: list[Path],
              latency_s: float, profile: bool) -> dict[str, Any]:
    from streams.kafka.forwarder import forward
    from streams.sources.files import iter_items

    log("e2e: one record per message (the format of any other producer), one worker")
    single = routed(files, 1, batch_records=1)
    baseline = harness.Deployment(broker, RUN / "e2e-single", 1, "s")
    try:
        drained_single = drain(baseline, [baseline.start_worker("w0")], single)
    finally:
        baseline.close()
    log(f"e2e: {drained_single['events_per_s']} records/s one per message")
    deployment = harness.Deployment(broker, RUN / "e2e", 1, "e")
    try:
        messages = routed(files, 1)
        log("e2e: the forwarder's own rate (into a scratch topic, no worker running)")
        start = time.monotonic()
        stats = forward(iter_items([str(f) for f in files], runs=True), deployment.settings,
                        f"{deployment.app_id}-forward-scratch", 1)
        forward_rate = stats.records / (time.monotonic() - start)
        log(f"e2e: forwarder {forward_rate:,.0f} records/s")
        worker = deployment.start_worker("w0")
        log(f"e2e: {len(messages):,} messages (batches of up to {BATCH_RECORDS} records, as "
            "the forwarder sends them), one worker draining them")
        drained = drain(deployment, [worker], messages,
                        profile_seconds=15 if profile else 0)
        log(f"e2e: {drained['events_per_s']} records/s sustained")
        rate = (drained["events_per_s"] or 1000) / 2
        background = routed(latency_files, 1)
        log(f"e2e: latency at {rate:,.0f} records/s for {latency_s:.0f} s")
        lat = latency(deployment, worker, background, rate, latency_s)
        rss = worker.rss()
        return {
            "events": drained["records"],
            "events_per_s": drained["events_per_s"],
            "latency_ms": lat["latency_ms"],
            "batch_records": BATCH_RECORDS,
            "messages": drained["messages"],
            "one_per_message_events_per_s": drained_single["events_per_s"],
            "forwarder_events_per_s": round(forward_rate),
            "drain_s": drained["drain_s"],
            "produce_s": drained["produce_s"],
            "latency": lat,
            "worker_rss_bytes": rss,
            **({"profile": drained["profile"]} if "profile" in drained else {}),
        }
    finally:
        deployment.close()


# -- state ------------------------------------------------------------------------------------


def state_phase(broker: harness.Broker, count: int, fed_count: int,
                quick: bool = False) -> dict[str, Any]:
    from bench import state

    fed = state.fed(broker, RUN, fed_count)
    big = state.million(broker, RUN, count)
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


def scaling_phase(broker: harness.Broker, files: list[Path]) -> dict[str, Any]:
    messages = routed(files, 2)
    results = {}
    for workers in (1, 2):
        deployment = harness.Deployment(broker, RUN / f"scaling{workers}", 2,
                                        f"x{workers}")
        try:
            started = [deployment.start_worker(f"w{i}", wait=False) for i in range(workers)]
            for worker in started:
                worker.wait_ready()
            time.sleep(3)  # the group settles: one partition each
            for worker in started:
                worker.wait_ready()
            log(f"scaling: {workers} worker(s), {len(messages):,} messages on 2 partitions")
            results[workers] = drain(deployment, started, messages)
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
        p99 = (e2e["latency_ms"] or {}).get("p99")
        rows.append(("e2e p99 latency at half load", f"{p99} ms",
                     f"<= {TARGETS['p99_ms']} ms", verdict(p99, TARGETS["p99_ms"], False)))
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
    e2e = results.get("e2e")
    if e2e:
        lat = e2e["latency_ms"] or {}
        lines += [f"e2e      {e2e['events']:,} records: {e2e['events_per_s'] or 0:,}/s one "
                  f"worker in batches of {e2e.get('batch_records', 1)} "
                  f"({e2e.get('one_per_message_events_per_s') or 0:,}/s one per message); "
                  f"forwarder {e2e['forwarder_events_per_s']:,}/s; latency at "
                  f"{e2e['latency']['rate_events_per_s']:,}/s p50 {lat.get('p50')} ms p99 "
                  f"{lat.get('p99')} ms ({e2e['latency']['findings_seen']}/"
                  f"{e2e['latency']['injected']} findings)"]
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
    parser.add_argument("--latency-seconds", type=float, help="length of the latency run")
    parser.add_argument("--credentials", type=int, default=os.environ.get("BENCH_CREDENTIALS"),
                        help="live credentials in the state run ($BENCH_CREDENTIALS)")
    parser.add_argument("--fed-credentials", type=int,
                        help="credentials fed through a worker's agents in the state run")
    parser.add_argument("--scaling-events", type=int, help="records per scaling run")
    parser.add_argument("--repeats", type=int, help="core repeats (best taken)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", default="core,e2e,state,scaling,offline",
                        help="comma-separated phases (core, e2e, state, scaling, offline)")
    parser.add_argument("--profile", action="store_true",
                        help="pyinstrument the core, py-spy the worker (bench/out/profile-*)")
    parser.add_argument("--output", help="results file (default bench/results.json, quick: "
                                         "bench/out/results-quick.json)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    for name in ("events", "e2e_events", "latency_seconds", "credentials", "fed_credentials",
                 "scaling_events", "repeats"):
        key = "latency_s" if name == "latency_seconds" else name
        if getattr(args, name) is None:
            setattr(args, name, sizes[key])
        setattr(args, name, type(sizes[key])(getattr(args, name)))
    args.phases = [p.strip() for p in args.only.split(",") if p.strip()]
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
    files_needed = max(args.events, args.e2e_events * 2, args.scaling_events)
    # The offline phase writes its own records (to a temporary directory).
    files = (dataset(args.seed, files_needed)
             if {"core", "e2e", "scaling"} & set(args.phases) else [])
    core_files = files[: -(-args.events // FILE_RECORDS)]
    if "core" in args.phases:
        log(f"core: {args.events:,} records")
        results["core"] = core_phase(core_files, args.repeats, args.profile)
    if "offline" in args.phases:
        from bench.offline import FULL_SIZES, QUICK_SIZES, offline_phase

        results["offline"] = offline_phase(QUICK_SIZES if args.quick else FULL_SIZES, args.seed)
    broker_phases = [p for p in args.phases if p not in ("core", "offline")]
    if broker_phases:
        shutil.rmtree(RUN, ignore_errors=True)
        with harness.Broker(RUN / "kafka") as broker:
            log(f"broker on {broker.bootstrap}")
            e2e_count = -(-args.e2e_events // FILE_RECORDS)
            if "e2e" in args.phases:
                results["e2e"] = e2e_phase(broker, files[:e2e_count],
                                           files[e2e_count:2 * e2e_count],
                                           args.latency_seconds, args.profile)
            if "state" in args.phases:
                results["state"] = state_phase(broker, args.credentials, args.fed_credentials,
                                               args.quick)
            if "scaling" in args.phases:
                results["scaling"] = scaling_phase(
                    broker, files[: -(-args.scaling_events // FILE_RECORDS)])
        shutil.rmtree(RUN, ignore_errors=True)
    results["mode"] = "quick" if args.quick else "full"
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
    print(table(results))
    print(f"\nresults: {output}  ({results['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

