"""Random faults, many times (``make chaos``): each trial streams the scenarios through two
workers on a local broker, SIGKILLs a worker or the broker at a random point, brings it back,
and checks every finding ``exfilguard detect`` gives is there with its exact count.

Run as ``python tests/integration/chaos.py --trials N``; test_chaos.py runs two trials. A failed
trial's folder (worker, forwarder and broker logs, what was missing) is kept under --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import Deployment  # noqa: E402
from fault_stream import (  # noqa: E402
    CONFIG,
    difference,
    expected_findings,
    start_forward,
    stream_lines,
    wait_for_findings,
    write_chunks,
)
from kafka_broker import ROOT, free_port, start_broker, stop_broker  # noqa: E402

CHUNKS = 8
WORKERS = int(os.environ.get("CHAOS_WORKERS", 2))  # a killed one's partitions move to the other
FAULTS = ("worker", "broker")  # "none": a control trial, the same stream and no fault


@dataclass
class Broker:
    folder: Path
    port: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        pid = int((self.folder / "kafka.pid").read_text().strip())
        os.kill(pid, signal.SIGKILL)
        while Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid):
            time.sleep(0.05)

    def start(self) -> None:
        start_broker(self.folder, self.port)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].split("\n")[0]
    except (OSError, IndexError):
        return "zombie"


@dataclass
class Outcome:
    passed: bool
    story: str
    problem: str = ""


def trial(broker: Broker, folder: Path, rng: random.Random, lines: list[bytes],
          faults: tuple[str, ...] = FAULTS) -> Outcome:
    """One trial in ``folder``: two workers, the stream in chunks, one SIGKILL, the check."""
    d = Deployment(broker.bootstrap, folder, partitions=3)
    config = folder / "config.yaml"
    config.write_text(CONFIG)
    forward_log = folder / "forward.log"
    target = rng.choice(faults)
    at_chunk, delay, pause = rng.randrange(CHUNKS), rng.uniform(0, 1.5), rng.uniform(0, 8)
    story = (f"kill -9 the {target} at chunk {at_chunk + 1}/{CHUNKS} (+{delay:.1f} s)"
             if target != "none" else "no fault (a control)")
    try:
        chunks = write_chunks(folder, lines, CHUNKS)
        expected = expected_findings(d, config, chunks)
        workers = [d.start_worker(f"w{n}", config=str(config)) for n in range(WORKERS)]
        victim = rng.randrange(WORKERS)
        for number, chunk in enumerate(chunks):
            forward = start_forward(d, chunk, forward_log)
            if number == at_chunk and target != "none":
                time.sleep(delay)
                if target == "broker":
                    broker.kill()
                    time.sleep(pause)
                    broker.start()
                    story += f", back after {pause:.1f} s"
                else:
                    workers[victim].kill()
                    workers[victim].wait()
                    time.sleep(pause)
                    story += f" (w{victim}), restarted after {pause:.1f} s"
                    workers[victim] = d.start_worker(f"w{victim}", config=str(config))
            if forward.wait(300) == 3 and "cannot reach Kafka" in forward_log.read_text():
                # It gave up at start on a broker down for more than its 10 s check: run again
                # as its supervisor would; records it had sent are taken once by event id.
                story += f"; forward of chunk {number + 1} gave up (broker down), run again"
                forward = start_forward(d, chunk, forward_log)
                forward.wait(300)
            if forward.returncode != 0:
                return Outcome(False, story, f"forward of chunk {number + 1} exited "
                                             f"{forward.returncode} (forward.log)")
        streamed = wait_for_findings(d, expected, timeout=float(os.environ.get("CHAOS_WAIT", 180)))
        errors = internal_errors(d, folder)
        if streamed != expected:
            (folder / "expected.jsonl").write_bytes(b"\n".join(expected) + b"\n")
            (folder / "streamed.jsonl").write_bytes(b"\n".join(streamed) + b"\n")
            return Outcome(False, story, difference(expected, streamed) + errors)
        if errors:
            return Outcome(False, story, errors.lstrip("; "))
        exited = [f"w{n} exited {w.returncode}" for n, w in enumerate(workers)
                  if w.poll() is not None]
        if exited:
            return Outcome(False, story, ", ".join(exited))
        return Outcome(True, story)
    except Exception as exc:  # a trial that breaks is a failed trial, with its logs kept
        return Outcome(False, story, f"{type(exc).__name__}: {exc}")
    finally:
        d.close()


def internal_errors(d: Deployment, folder: Path) -> str:
    """The dead letters a fault made (reason ``error: ...``: an exception inside the agent, its
    record's state never applied), as a clause of the problem; the malformed ones are the
    stream's hostile lines. The whole list is kept in dlq.json."""
    listed = d.exfilguard("dlq", "list", "--json")
    (folder / "dlq.json").write_bytes(listed.stdout + listed.stderr)
    if listed.returncode != 0:
        return f"; dlq list exited {listed.returncode}: {listed.stderr.decode().strip()}"
    reasons = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
    errors = [f"{r['count']} x {r['reason']}" for r in reasons
              if r["reason"].startswith("error")]
    return f"; dead-lettered by an error: {errors}" if errors else ""


def run(trials: int, seed: int, workdir: Path, keep: Path,
        faults: tuple[str, ...] = FAULTS) -> tuple[int, list[Path]]:
    """Run ``trials`` trials; returns how many passed and the folders of those that failed."""
    rng = random.Random(seed)
    broker = Broker(workdir / "kafka", free_port())
    broker.start()
    lines = stream_lines(workdir)
    passed, failed = 0, []
    try:
        for number in range(1, trials + 1):
            folder = workdir / f"trial-{number:02d}"
            folder.mkdir()
            started = time.monotonic()
            outcome = trial(broker, folder, rng, lines, faults)
            took = time.monotonic() - started
            verdict = "passed" if outcome.passed else f"FAILED: {outcome.problem}"
            print(f"chaos: trial {number}/{trials}: {outcome.story}: {verdict} ({took:.0f} s)",
                  flush=True)
            if outcome.passed:
                passed += 1
                shutil.rmtree(folder, ignore_errors=True)
                continue
            kept = keep / f"trial-{number:02d}-seed-{seed}"
            shutil.rmtree(kept, ignore_errors=True)
            shutil.copytree(folder, kept)
            shutil.copytree(broker.folder / "logs", kept / "broker-logs", dirs_exist_ok=True)
            (kept / "summary.txt").write_text(f"{outcome.story}\n{verdict}\n")
            failed.append(kept)
    finally:
        stop_broker(broker.folder, broker.port)
    return passed, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=int(os.environ.get("CHAOS_TRIALS", 20)))
    parser.add_argument("--seed", type=int, default=None, help="default: a random one, printed")
    parser.add_argument("--keep", type=Path, default=ROOT / ".local" / "chaos",
                        help="where a failed trial's logs are kept (default .local/chaos)")
    parser.add_argument("--faults", default=",".join(FAULTS),
                        help="what a trial may kill: worker, broker, or none (a control)")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"exfilguard-chaos-{seed}-{os.getpid()}"
    workdir.mkdir(parents=True)
    print(f"chaos: {args.trials} trials, seed {seed} (--seed {seed} runs the same faults)",
          flush=True)
    try:
        passed, failed = run(args.trials, seed, workdir, args.keep.resolve(),
                             tuple(args.faults.split(",")))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"chaos: {passed} trials passed / {args.trials} run")
    for folder in failed:
        print(f"chaos: failed trial's logs: {folder}")
    return 0 if passed == args.trials else 1


if __name__ == "__main__":
    sys.exit(main())
