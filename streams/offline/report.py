"""The backtest as one self-contained HTML page (a timeline SVG and the tables): no script, nothing
fetched, every value escaped, and a pure function of its inputs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from streams.core.times import format_time, parse_time
from streams.offline.backtest import (
    Comparison,
    Labels,
    Outcome,
    Score,
    change_note,
    describe_evidence,
    fmt,
    fmt_seconds,
    short_type,
)

COLOURS = {"TP": "#1a7f37", "FP": "#cf222e", "FN": "#bc4c00", "archived": "#8c959f"}
LABELS = {"TP": "true positive", "FP": "false positive", "FN": "false negative (first call)",
          "archived": "archived, not scored"}

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px;
       color: #1f2328; background: #ffffff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
p.meta { color: #57606a; margin: 2px 0; font-size: 13px; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
td.TP { color: #1a7f37; font-weight: 600; } td.FP { color: #cf222e; font-weight: 600; }
td.FN { color: #bc4c00; font-weight: 600; } td.archived { color: #8c959f; }
.metrics td.num { font-size: 16px; font-weight: 600; }
.empty { color: #57606a; font-style: italic; }
svg text { font-family: system-ui, sans-serif; }
"""


@dataclass(frozen=True)
class Mark:
    account: str
    start_ms: int
    end_ms: int
    status: str
    tip: str


def marks_of(result: Score) -> list[Mark]:
    marks = []
    status = {d.finding_id: d.status for d in result.detections}
    for finding in result.findings:
        first = _ms(finding["service"]["eventFirstSeen"])
        last = _ms(finding["service"]["eventLastSeen"])
        kind = status.get(finding["id"], "archived")
        key = finding["resource"]["accessKeyDetails"]["accessKeyId"]
        tip = (f"{LABELS[kind]}: {short_type(finding['type'])} {key}, "
               f"{finding['service']['count']} call(s) {format_time(first)} .. "
               f"{format_time(last)}")
        marks.append(Mark(finding["accountId"], first, last, kind, tip))
    for outcome in result.false_negatives:
        if outcome.evidence is not None and outcome.account:
            tip = (f"missed: {short_type(outcome.finding_type)} {outcome.access_key}, first call "
                   f"{format_time(outcome.evidence.time_ms)}")
            marks.append(Mark(outcome.account, outcome.evidence.time_ms,
                              outcome.evidence.time_ms, "FN", tip))
    return marks


def _ms(text: str) -> int:
    return parse_time(text)


def _ticks(low: int, high: int, count: int = 6) -> list[int]:
    """Round tick times (UTC) covering [low, high]."""
    span = max(high - low, 1)
    steps = [s * 1000 for s in (1, 5, 10, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
                                43200, 86400, 172800, 604800, 2592000)]
    step = next((s for s in steps if span / s <= count), steps[-1])
    first = -(-low // step) * step
    return list(range(first, high + 1, step))


def _tick_label(ms: int, span: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    if span <= 2 * 86400_000:
        return moment.strftime("%H:%M:%S" if span < 600_000 else "%H:%M")
    return moment.strftime("%Y-%m-%d %H:%M")


def timeline_svg(marks: list[Mark], width: int = 1100) -> str:
    """Findings per account (rows) over event time (x); a bar from first to last call."""
    accounts = sorted({m.account for m in marks})
    row, left, right, top, bottom = 36, 150, 30, 40, 70
    height = top + bottom + row * max(len(accounts), 1)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" id="timeline" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="findings per account over event time">',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>']
    plot_w = width - left - right
    if not marks:
        out.append(f'<text x="{width // 2}" y="{top + row // 2}" text-anchor="middle" '
                   f'fill="#57606a">no findings and no missed keys to plot</text>')
    low = min((m.start_ms for m in marks), default=0)
    high = max((m.end_ms for m in marks), default=1)
    pad = max((high - low) // 20, 30_000)
    low, high = low - pad, high + pad
    span = high - low

    def x_of(ms: int) -> float:
        return round(left + (ms - low) / span * plot_w, 1)

    axis_y = top + row * max(len(accounts), 1)
    # grid, ticks, axes
    if marks:
        for tick in _ticks(low, high):
            x = x_of(tick)
            out.append(f'<line x1="{x}" y1="{top}" x2="{x}" y2="{axis_y}" stroke="#eaeef2"/>')
            out.append(f'<line x1="{x}" y1="{axis_y}" x2="{x}" y2="{axis_y + 5}" '
                       f'stroke="#57606a"/>')
            out.append(f'<text x="{x}" y="{axis_y + 18}" font-size="11" text-anchor="middle" '
                       f'fill="#57606a">{escape(_tick_label(tick, span))}</text>')
    out.append(f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" '
               f'stroke="#57606a"/>')
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{axis_y}" stroke="#57606a"/>')
    first_day = datetime.fromtimestamp(low / 1000, tz=UTC).strftime("%Y-%m-%d")
    out.append(f'<text x="{left + plot_w / 2}" y="{axis_y + 40}" font-size="13" '
               f'text-anchor="middle" fill="#1f2328">event time (UTC, from {first_day})</text>')
    out.append(f'<text x="16" y="{top + (axis_y - top) / 2}" font-size="13" text-anchor="middle" '
               f'fill="#1f2328" transform="rotate(-90 16 {top + (axis_y - top) / 2})">'
               f'account</text>')
    for index, account in enumerate(accounts):
        y = top + row * index + row / 2
        out.append(f'<text x="{left - 8}" y="{y + 4}" font-size="12" text-anchor="end" '
                   f'fill="#1f2328">{escape(account)}</text>')
        out.append(f'<line x1="{left}" y1="{y}" x2="{left + plot_w}" y2="{y}" '
                   f'stroke="#d0d7de" stroke-dasharray="2,4"/>')
    order = {"archived": 0, "FP": 1, "TP": 2, "FN": 3}
    for mark in sorted(marks, key=lambda m: (order[m.status], m.start_ms, m.tip)):
        y = top + row * accounts.index(mark.account) + row / 2
        colour = COLOURS[mark.status]
        x1, x2 = x_of(mark.start_ms), x_of(mark.end_ms)
        tip = f"<title>{escape(mark.tip)}</title>"
        if mark.status == "FN":
            d = f"M{x1 - 6},{y - 6} L{x1 + 6},{y + 6} M{x1 - 6},{y + 6} L{x1 + 6},{y - 6}"
            out.append(f'<path class="mark FN" d="{d}" stroke="{colour}" stroke-width="3">'
                       f'{tip}</path>')
            continue
        if x2 - x1 >= 1:
            out.append(f'<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="{colour}" '
                       f'stroke-width="6" stroke-opacity="0.45" stroke-linecap="round"/>')
        fill = "#ffffff" if mark.status == "archived" else colour
        out.append(f'<circle class="mark {mark.status}" cx="{x1}" cy="{y}" r="7" fill="{fill}" '
                   f'stroke="{colour}" stroke-width="2">{tip}</circle>')
    # legend
    lx = left
    for status in ("TP", "FP", "FN", "archived"):
        colour = COLOURS[status]
        if status == "FN":
            cx, cy = lx + 6, top - 20
            out.append(f'<path d="M{cx - 5},{cy - 5} L{cx + 5},{cy + 5} M{cx - 5},{cy + 5} '
                       f'L{cx + 5},{cy - 5}" stroke="{colour}" stroke-width="3"/>')
        else:
            fill = "#ffffff" if status == "archived" else colour
            out.append(f'<circle cx="{lx + 6}" cy="{top - 20}" r="6" fill="{fill}" '
                       f'stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{lx + 16}" y="{top - 16}" font-size="12" fill="#1f2328">'
                   f'{escape(LABELS[status])}</text>')
        lx += 34 + 7 * len(LABELS[status])
    out.append("</svg>")
    return "\n".join(out)


def _table(headers: list[str], rows: list[list[str]], css: str = "", empty: str = "none"
           ) -> str:
    """``rows`` hold HTML already escaped."""
    if not rows:
        return f'<p class="empty">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(rows_cell) + "</tr>"
                     for rows_cell in ([_cell(c) for c in r] for r in rows))
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>'


def _cell(value: str) -> str:
    if value.startswith("<td"):
        return value
    return f"<td>{value}</td>"


def _num(value: str) -> str:
    return f'<td class="num">{escape(value)}</td>'


def _outcome_rows(outcomes: list[Outcome]) -> list[list[str]]:
    rows = []
    for o in outcomes:
        evidence = "—" if o.evidence is None else (
            f"<code>{escape(o.evidence.event_id)}</code> "
            f"{escape(format_time(o.evidence.time_ms))} ({escape(o.evidence.detail)})")
        if o.evidence is None and o.status == "FN":
            evidence = escape(describe_evidence(o))
        rows.append([escape(short_type(o.finding_type)), f"<code>{escape(o.access_key)}</code>",
                     escape(o.account or "—"), evidence,
                     " ".join(f"<code>{escape(i)}</code>" for i in o.finding_ids) or "—"])
    return rows


def _calls_row(finding: dict) -> list[str]:
    action = finding["service"]["action"]["awsApiCallAction"]
    ip = action["remoteIpDetails"]
    remote = (action["remoteAccountDetails"] or {}).get("accountId") or ip["ipAddressV4"] \
        or ip["ipAddressV6"] or "—"
    calls = []
    for call in (finding["service"].get("additionalInfo") or {}).get("apiCalls") or []:
        text = escape(f"{call['serviceName']}:{call['name']} ×{call['count']}")
        errors = ", ".join(f"{code} ×{n}" for code, n in call["errorCodes"].items())
        text += f" ({escape(errors)})" if errors else ""
        calls.append(f"<strong>{text}</strong>" if call["sensitive"] else text)
    return [f"<code>{escape(finding['id'])}</code>",
            f"<code>{escape(finding['resource']['accessKeyDetails']['accessKeyId'])}</code>",
            escape(remote), ", ".join(calls) or "—"]


def render_report(result: Score, labels: Labels, comparison: Comparison | None = None, *,
                  source: str = "", labels_name: str = "", config_name: str = "",
                  baseline_name: str = "") -> str:
    m = result.metrics()
    ttd = result.time_to_detect()
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>exfilguard backtest</title>", f"<style>{CSS}</style></head><body>",
             "<h1>exfilguard backtest</h1>"]
    for label, value in (("input", source), ("labels", labels_name), ("config", config_name),
                         ("baseline config", baseline_name)):
        if value:
            parts.append(f'<p class="meta">{escape(label)}: <code>{escape(value)}</code></p>')
    parts.append(f'<p class="meta">{labels.rows - labels.duplicates} labels, '
                 f"{len(result.findings) - len(result.archived)} findings raised, "
                 f"{len(result.archived)} archived (not scored)</p>")
    parts.append("<h2>Metrics</h2>")
    parts.append(_table(
        ["precision", "recall", "F1", "true positives", "false positives", "false negatives",
         "median time to detect", "max time to detect"],
        [[_num(fmt(m["precision"])), _num(fmt(m["recall"])), _num(fmt(m["f1"])),
          _num(str(m["true_positives"])), _num(str(m["false_positives"])),
          _num(str(m["false_negatives"])), _num(fmt_seconds(ttd["median"])),
          _num(fmt_seconds(ttd["max"]))]], css="metrics"))
    parts.append("<h2>Findings per account over event time</h2>")
    parts.append(timeline_svg(marks_of(result)))
    evidence_headers = ["type", "access key", "account", "first evidence event", "findings"]
    parts.append(f"<h2>True positives ({len(result.true_positives)})</h2>")
    parts.append(_table(evidence_headers, _outcome_rows(result.true_positives), "outcomes tp"))
    parts.append(f"<h2>False positives ({len(result.false_positives)})</h2>")
    parts.append(_table(evidence_headers, _outcome_rows(result.false_positives), "outcomes fp"))
    parts.append(f"<h2>False negatives ({len(result.false_negatives)})</h2>")
    parts.append(_table(["type", "access key", "account", "first call with the key", "findings"],
                        _outcome_rows(result.false_negatives), "outcomes fn"))
    parts.append("<h2>Time to detect</h2>")
    parts.append('<p class="meta">Event time from a finding\'s first offending event to the '
                 "event-time watermark when it was raised (the wait for late issuances "
                 "included); median and max over true positives.</p>")
    parts.append(_table(
        ["status", "type", "access key", "finding", "first event", "detected at", "time"],
        [[f'<td class="{escape(d.status)}">{escape(d.status)}</td>',
          escape(short_type(d.finding_type)), f"<code>{escape(d.access_key)}</code>",
          f"<code>{escape(d.finding_id)}</code>", escape(format_time(d.first_ms)),
          escape(format_time(d.detected_ms)), _num(fmt_seconds(d.seconds))]
         for d in result.detections], "ttd", empty="no findings"))
    parts.append("<h2>What each key did</h2>")
    parts.append('<p class="meta">The calls each finding counts (its key, from its remote '
                 "account or address), the most frequent first; sensitive ones in bold.</p>")
    parts.append(_table(["finding", "access key", "remote", "calls"],
                        [_calls_row(f) for f in result.findings], "calls", empty="no findings"))
    if comparison is not None:
        b = comparison.baseline.metrics()
        parts.append(f"<h2>Compared with the baseline config: {len(comparison.added)} added, "
                     f"{len(comparison.removed)} removed</h2>")
        parts.append(_table(
            ["", "precision", "recall", "F1", "true positives", "false positives",
             "false negatives"],
            [[escape(name), _num(fmt(x["precision"])), _num(fmt(x["recall"])),
              _num(fmt(x["f1"])), _num(str(x["true_positives"])),
              _num(str(x["false_positives"])), _num(str(x["false_negatives"]))]
             for name, x in (("baseline", b), ("this config", m))], "comparison"))
        rows = [[sign, escape(short_type(e["type"])), f"<code>{escape(e['accessKeyId'])}</code>",
                 escape(e["remote"]), escape(change_note(sign, e))]
                for sign, entries in (("+", comparison.added), ("-", comparison.removed))
                for e in entries]
        parts.append(_table(["", "type", "access key", "remote", "meaning"], rows, "changes",
                            empty="the two configs raise the same findings"))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
