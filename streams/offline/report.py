"""The backtest as one self-contained HTML page (a timeline SVG and the tables): no script, nothing
fetched, every value escaped, and a pure function of its inputs."""

from __future__ import annotations

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
from streams.view.timeline import Kind, Mark, timeline_svg

COLOURS = {"TP": "#1a7f37", "FP": "#cf222e", "FN": "#bc4c00", "archived": "#8c959f"}
LABELS = {"TP": "true positive", "FP": "false positive", "FN": "false negative (first call)",
          "archived": "archived, not scored"}
KINDS = {status: Kind(COLOURS[status], LABELS[status], shape)
         for status, shape in (("TP", "dot"), ("FP", "dot"), ("FN", "cross"),
                               ("archived", "ring"))}

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
    parts.append(timeline_svg(marks_of(result), KINDS, draw_order=("archived", "FP", "TP", "FN"),
                              empty="no findings and no missed keys to plot"))
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
