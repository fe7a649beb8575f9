"""The offline benchmark: peak memory of ``exfilguard detect`` over 1 and 10 million records.

The seeded generator's records are written once, as files of ``FILE_RECORDS`` JSON Lines, to a
temporary directory (streamed out, never held); ``detect`` runs in a child process over the
first N of them for each size, and the child reports its own peak resident set, VmHWM from
/proc/self/status (not ru_maxrss, which a child inherits across exec from a large parent). Flat
figures from 1M to 10M show the reorder window, not the input, sets the memory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import harness
from bench.generator import Generator
from bench.harness import log

FILE_RECORDS = 10_000
FULL_SIZES = (1_000_000, 10_000_000)
QUICK_SIZES = (20_000, 80_000)

# Runs detect in this process and prints its own peak RSS last on stderr.
_PEAK = """
import re, sys
from streams.cli.main import main
code = main(sys.argv[1:])
hwm = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)
print("peak_kb", hwm, file=sys.stderr)
sys.exit(code)
"""


def write_records(folder: Path, count: int, seed: int = 1,
                  per_file: int = FILE_RECORDS) -> list[Path]:
    """The first ``count`` records of the seeded stream as files of ``per_file`` lines."""
    files = []
    records = Generator(seed).records(count)
    for index, batch in enumerate(harness.chunks(records, per_file)):
        path = folder / f"part-{index:05d}.jsonl"
        with path.open("wb") as out:
            out.writelines(line + b"\n" for line in batch)
        files.append(path)
    return files


def detect_peak(paths: list[Path], config: Path, nice: int = 0) -> dict[str, Any]:
    """One ``detect`` child over the files: its peak RSS, time, findings and notes."""
    command = [sys.executable, "-c", _PEAK, "detect", "--config", str(config),
               *map(str, paths)]
    if nice:
        command = ["nice", "-n", str(nice), *command]
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, check=False)
    elapsed = time.monotonic() - started
    stderr = result.stderr.decode(errors="replace")
    if result.returncode != 0:
        raise RuntimeError(f"detect failed ({result.returncode}): {stderr[-2000:]}")
    peak = re.search(r"peak_kb (\d+)", stderr)
    summary = re.search(r"(\d+) records, (\d+) relevant, (\d+) bad, (\d+) findings", stderr)
    late = re.search(r"(\d+) events came more than", stderr)
    return {
        "peak_rss_bytes": int(peak.group(1)) * 1024 if peak else None,
        "seconds": round(elapsed, 1),
        "records": int(summary.group(1)) if summary else None,
        "relevant": int(summary.group(2)) if summary else None,
        "findings": int(summary.group(4)) if summary else None,
        "late": int(late.group(1)) if late else 0,
        "findings_sha256_16": _digest(result.stdout),
    }


def _digest(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()[:16]


def offline_phase(sizes: tuple[int, ...] = FULL_SIZES, seed: int = 1,
                  nice: int = 0) -> dict[str, Any]:
    """Peak RSS of detect per size, over one generated data set (the sizes are its prefixes)."""
    root = Path(tempfile.mkdtemp(prefix="exfilguard-bench-offline-"))
    try:
        config = root / "config.yaml"
        config.write_text("geoip: false\n")  # an enrichment database's load is not detect's
        folder = root / "records"
        folder.mkdir()
        started = time.monotonic()
        log(f"offline: writing {max(sizes):,} records to {folder}")
        per_file = min(FILE_RECORDS, *sizes)  # each size a whole number of files
        files = write_records(folder, max(sizes), seed, per_file)
        log(f"offline: written in {time.monotonic() - started:.0f} s "
            f"({sum(f.stat().st_size for f in files) / 2**30:.1f} GiB)")
        runs = {}
        for size in sorted(sizes):
            run = detect_peak(files[: -(-size // per_file)], config, nice)
            log(f"offline: detect over {size:,} records: peak RSS "
                f"{run['peak_rss_bytes'] / 2**20:.0f} MiB in {run['seconds']} s")
            runs[str(size)] = run
    finally:
        shutil.rmtree(root, ignore_errors=True)
    peaks = {size: run["peak_rss_bytes"] for size, run in runs.items()}
    smallest, largest = str(min(sizes)), str(max(sizes))
    return {
        "peak_rss_bytes": peaks,
        "growth": round(peaks[largest] / peaks[smallest], 3),
        "runs": runs,
        "file_records": per_file,
    }


if __name__ == "__main__":  # python -m bench.offline [SIZE ...]
    chosen = tuple(int(a) for a in sys.argv[1:]) or FULL_SIZES
    print(json.dumps(offline_phase(chosen, nice=int(os.environ.get("BENCH_NICE", "0"))),
                     indent=2))
