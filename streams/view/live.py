"""The live view's content: the open findings (latest version of each, newest first) as a table
and the findings timeline. The page is a shell whose script fetches the fragment and replaces it,
so it refreshes without a reload; every value is escaped."""

from __future__ import annotations

from html import escape
from typing import Any

from streams.core.times import parse_time
from streams.view.timeline import Kind, Mark, timeline_svg

KINDS = {"high": Kind("#cf222e", "high (7-8.9)"), "medium": Kind("#bc4c00", "medium (4-6.9)"),
         "low": Kind("#57606a", "low")}
COLUMNS = ["last seen", "type", "severity", "access key", "instance", "remote address",
           "remote account", "calls", "first seen", "API calls", "finding id"]


def _level(severity: float) -> str:
    return "high" if severity >= 7 else "medium" if severity >= 4 else "low"


class Board:
    """The latest version of each finding read (a finding's versions share its key, so one
    partition holds them in order); archived ones leave it. At most ``limit``, the most
    recently updated kept."""

    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self.findings: dict[str, dict[str, Any]] = {}

    def update(self, finding: dict[str, Any]) -> None:
        finding_id = str(finding.get("id"))
        if finding.get("service", {}).get("archived"):
            self.findings.pop(finding_id, None)
            return
        self.findings[finding_id] = finding
        if len(self.findings) > self.limit:
            for stale in sorted(self.findings, key=lambda i: _version(self.findings[i]))[
                    :len(self.findings) - self.limit]:
                del self.findings[stale]

    def newest_first(self) -> list[dict[str, Any]]:
        return sorted(self.findings.values(), key=lambda f: (_version(f), f["id"]), reverse=True)


def _version(finding: dict[str, Any]) -> tuple[str, int]:
    return str(finding.get("updatedAt", "")), int(finding.get("service", {}).get("count") or 0)


def _row(finding: dict[str, Any]) -> str:
    service = finding.get("service", {})
    action = service.get("action", {}).get("awsApiCallAction", {}) or {}
    remote = action.get("remoteIpDetails") or {}
    account = (action.get("remoteAccountDetails") or {}).get("accountId")
    resource = finding.get("resource", {})
    calls = service.get("additionalInfo", {}).get("apiCalls") or []
    api = ", ".join(f"{c.get('name')} ×{c.get('count')}" for c in calls[:5]) \
        or str(action.get("api") or "")
    severity = float(finding.get("severity", 0))
    cells = [service.get("eventLastSeen"), str(finding.get("type", "")).rsplit(".", 1)[-1],
             f"{severity:g}", resource.get("accessKeyDetails", {}).get("accessKeyId"),
             (resource.get("instanceDetails") or {}).get("instanceId"),
             remote.get("ipAddressV4") or remote.get("ipAddressV6"), account,
             service.get("count"), service.get("eventFirstSeen"), api, finding.get("id")]
    tds = "".join(f"<td>{escape(str(c)) if c is not None else '–'}</td>" for c in cells)
    finding_id = escape(str(finding.get("id")))
    return f'<tr class="finding {_level(severity)}" data-id="{finding_id}">{tds}</tr>'


def fragment(board: Board) -> str:
    """The part the page replaces on each refresh: a count, the table, the timeline."""
    findings = board.newest_first()
    marks = []
    for finding in findings:
        service = finding.get("service", {})
        try:
            first = parse_time(service["eventFirstSeen"])
            last = parse_time(service["eventLastSeen"])
        except (KeyError, TypeError, ValueError):
            continue
        key = finding.get("resource", {}).get("accessKeyDetails", {}).get("accessKeyId")
        marks.append(Mark(str(finding.get("accountId")), first, last,
                          _level(float(finding.get("severity", 0))),
                          f"{finding.get('type')} {key}, {service.get('count')} call(s)"))
    head = "".join(f"<th>{escape(c)}</th>" for c in COLUMNS)
    rows = "".join(_row(f) for f in findings) or \
        f'<tr><td class="empty" colspan="{len(COLUMNS)}">no open findings</td></tr>'
    return (f'<p class="meta" id="count">{len(findings)} open finding(s)</p>'
            f'<table id="findings"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
            f'<h2>Timeline</h2>{timeline_svg(marks, KINDS, empty="no open findings")}')


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>exfilguard: open findings</title>
<style>
body { font-family: system-ui, sans-serif; margin: 24px; color: #1f2328; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 24px 0 8px; }
p.meta { color: #57606a; margin: 2px 0; font-size: 13px; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; }
th { background: #f6f8fa; } tr.high td:nth-child(3) { color: #cf222e; font-weight: 600; }
tr.medium td:nth-child(3) { color: #bc4c00; font-weight: 600; } .empty { color: #57606a; }
</style></head>
<body><h1>exfilguard: open findings</h1>
<p class="meta">Read from the findings topic by this worker; refreshed every
<span id="every">REFRESH</span> s (<span id="refreshes">0</span> refreshes,
<span id="status">loading</span>).</p>
<div id="live"></div>
<script>
let refreshes = 0;
async function refresh() {
  try {
    const response = await fetch("live/fragment", {cache: "no-store"});
    if (!response.ok) throw new Error(response.status);
    document.getElementById("live").innerHTML = await response.text();
    document.getElementById("refreshes").textContent = ++refreshes;
    document.getElementById("status").textContent = "updated " + new Date().toISOString();
  } catch (e) {
    document.getElementById("status").textContent = "refresh failed: " + e;
  }
}
refresh();
setInterval(refresh, REFRESH * 1000);
</script></body></html>
"""


def page(refresh_seconds: int = 5) -> str:
    return PAGE.replace("REFRESH", str(int(refresh_seconds)))
