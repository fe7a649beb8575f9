"""``exfilguard backtest``: detection over files or a topic range, scored against labels."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from streams.aws.ipranges import load_aws_ranges
from streams.cli.common import (
    add_config_option,
    add_kafka_options,
    loaded_config,
    note_late,
    time_range,
)
from streams.cli.replay import add_source_options, describe_source, read_source
from streams.config.loader import load_config
from streams.errors import UserError
from streams.geo import enricher_for
from streams.offline.backtest import (
    Comparison,
    FirstCalls,
    compare,
    read_labels,
    score,
    text_report,
)
from streams.offline.run import run_detections


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "backtest", help="run detection over labelled data and score it: precision, recall, F1",
        description="Run detection as `detect` (PATHs) or `replay` (--topic with --start and "
                    "--end) does, and score the findings against LABELS.csv (header "
                    "accessKeyId,type; one row per finding that should be raised; type "
                    "OutsideAWS or InsideAWS). Any other (key, type) raised is a false "
                    "positive; archived findings are not raised unless --include-archived. A "
                    "ratio with nothing to divide is 1.0.")
    parser.add_argument("--labels", required=True, metavar="LABELS.csv",
                        help="the findings that should be raised")
    add_config_option(parser)
    parser.add_argument("--baseline-config", metavar="FILE",
                        help="also run this config and show the findings --config adds and "
                             "removes compared with it")
    add_kafka_options(parser)
    parser.add_argument("--json", action="store_true",
                        help="print only the metrics, as one JSON object")
    parser.add_argument("--report", metavar="DIR",
                        help="write DIR/report.html: timeline plot and tables, self-contained")
    parser.add_argument("--include-archived", action="store_true",
                        help="score archived (suppressed) findings as raised")
    add_source_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    loaded = loaded_config(args)
    time_range(args)
    labels = read_labels(args.labels)
    baseline_loaded = None
    if args.baseline_config:
        baseline_loaded = load_config(args.baseline_config)
    if not args.paths and not args.topic:
        raise UserError("give the PATHs to backtest, or --topic with --start and --end")
    report_dir = Path(args.report) if args.report else None
    if report_dir is not None and report_dir.exists() and not report_dir.is_dir():
        raise UserError(f"--report {report_dir}: exists and is not a directory")
    configs = [loaded] if baseline_loaded is None else [loaded, baseline_loaded]
    # One pass for both configs, ordered within the wider of their windows.
    events, stats = read_source(args, loaded, "backtest", max(
        c.detection.late_arrival_grace_seconds for c in configs))
    first = FirstCalls({key for key, _ in labels.pairs})
    runs = run_detections(first.noting(events), [
        (c.detection, load_aws_ranges(c.detection), enricher_for(c)) for c in configs])
    result = score(runs[0], labels, first.calls, args.include_archived)
    comparison: Comparison | None = None
    if baseline_loaded is not None:
        comparison = compare(score(runs[1], labels, first.calls, args.include_archived), result,
                             labels, args.include_archived)
    source = describe_source(args, loaded)
    if report_dir is not None:
        from streams.offline.report import render_report

        page = render_report(result, labels, comparison, source=source,
                             labels_name=args.labels, config_name=loaded.path or "(defaults)",
                             baseline_name=args.baseline_config or "")
        try:
            report_dir.mkdir(parents=True, exist_ok=True)
            (report_dir / "report.html").write_text(page, encoding="utf-8")
        except OSError as exc:
            raise UserError(f"--report {report_dir}: cannot write ({exc.strerror or exc})"
                            ) from None
    if args.json:
        payload = result.metrics()
        if comparison is not None:
            payload["comparison"] = comparison.as_dict()
        sys.stdout.write(json.dumps(payload, sort_keys=False) + "\n")
    else:
        sys.stdout.write(text_report(result, labels, comparison, source=source,
                                     baseline_name=args.baseline_config or ""))
        if report_dir is not None:
            sys.stdout.write(f"report: {report_dir / 'report.html'}\n")
    sys.stdout.flush()
    print(f"exfilguard backtest: {stats.records} records, {stats.relevant} relevant, "
          f"{stats.bad} bad, {len(result.findings)} findings", file=sys.stderr)
    note_late("backtest", stats, loaded.detection.late_arrival_grace_seconds)
    return 0
