"""The worker's live view in headless chromium: `/` shows the open findings of the findings
topic, newest first, with the timeline, and refreshes itself as findings arrive."""

from __future__ import annotations

import html
import json
import re
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from test_pipeline import read_findings
from test_scenarios_stream import merged_records

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from browser import CHROMIUM, MISSING, chromium, near, pixel, read_png  # noqa: E402

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=MISSING)
HIGH = (0xCF, 0x22, 0x2E)

# Appended to the served page: once the page has refreshed twice, the layout as chromium drew it.
PROBE = """
<script>
const probe = setInterval(() => {
  if (Number(document.getElementById("refreshes").textContent) < 2) return;
  clearInterval(probe);
  const box = (e) => { const r = e.getBoundingClientRect();
                       return {x: r.left, y: r.top, w: r.width, h: r.height}; };
  const out = {
    refreshes: Number(document.getElementById("refreshes").textContent),
    rows: [...document.querySelectorAll("#findings tr.finding")].map((r) => ({
      id: r.dataset.id, level: r.className.split(" ")[1],
      cells: [...r.cells].map((c) => c.textContent), ...box(r)})),
    marks: [...document.querySelectorAll("svg#timeline .mark")].map((m) => ({
      level: [...m.classList].find((c) => c !== "mark"), ...box(m)})),
  };
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}, 200);
</script>
"""


def get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.read().decode()


def test_the_live_view_shows_every_open_finding_newest_first(deployment, tmp_path):
    d = deployment(EXFILGUARD_WEB_LIVE_VIEW="true")
    config = tmp_path / "config.yaml"
    config.write_text("finding_update_interval_seconds: 0\n")  # every version published at once
    worker = d.start_worker(config=str(config))
    port = worker.web_port
    assert "no open findings" in get(port, "/live/fragment")
    records = merged_records(tmp_path)
    assert d.exfilguard("forward", str(records)).returncode == 0
    expected = [json.loads(line) for line in d.exfilguard("detect", str(records)).stdout.split(
        b"\n") if line.strip()]
    open_ids = {f["id"] for f in expected if not f["service"]["archived"]}
    assert len(open_ids) >= 15
    read_findings(d, len(expected))
    # The fragment follows the topic: every open finding at its latest version (last seen).
    final = {f["id"]: f["service"]["eventLastSeen"] for f in expected if f["id"] in open_ids}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        shown = dict(re.findall(r'data-id="([0-9a-f]+)"><td>([^<]+)</td>',
                                get(port, "/live/fragment")))
        if shown == final:
            break
        time.sleep(1)
    assert shown == final

    # The page as served holds no finding: chromium must fetch them, refreshing in place.
    served = get(port, "/")
    assert "data-id" not in served
    probe_page = tmp_path / "probe.html"
    probe_page.write_text(served.replace("</body>", PROBE + "</body>")
                          .replace('fetch("live/fragment"',
                                   f'fetch("http://127.0.0.1:{port}/live/fragment"')
                          .replace("setInterval(refresh, 5 * 1000)", "setInterval(refresh, 500)"))
    dom = chromium("--dump-dom", "--virtual-time-budget=20000", "--disable-web-security",
                   probe_page.as_uri(), profile=tmp_path / "profile").stdout.decode()
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    layout = json.loads(html.unescape(found.group(1)))
    assert layout["refreshes"] >= 2
    rows = layout["rows"]
    assert {r["id"] for r in rows} == open_ids
    by_id = {f["id"]: f for f in expected}
    updated = [by_id[r["id"]]["updatedAt"] for r in rows]
    assert updated == sorted(updated, reverse=True), "not newest first"
    for row in rows:
        finding = by_id[row["id"]]
        assert row["cells"][1] == finding["type"].rsplit(".", 1)[-1]
        assert row["cells"][3] == finding["resource"]["accessKeyDetails"]["accessKeyId"]
        assert row["level"] == ("high" if finding["severity"] >= 7 else "medium")
        assert row["h"] > 5 and row["w"] > 300
    assert len(layout["marks"]) == len(rows)

    # And drawn: a screenshot with the high findings' marks in their colour where laid out.
    png = tmp_path / "live.png"
    chromium(f"--screenshot={png}", "--virtual-time-budget=20000", "--disable-web-security",
             probe_page.as_uri(), profile=tmp_path / "profile2")
    shot = read_png(png)
    highs = [m for m in layout["marks"] if m["level"] == "high"]
    assert highs
    for mark in highs:
        x, y = mark["x"] + mark["w"] / 2, mark["y"] + mark["h"] / 2
        if y < shot[1]:
            assert near(pixel(shot, x, y), HIGH), (mark, pixel(shot, x, y))


def test_the_live_view_is_off_unless_asked_for(deployment):
    d = deployment()
    worker = d.start_worker()
    with pytest.raises(urllib.error.HTTPError) as refused:
        get(worker.web_port, "/live/fragment")
    assert refused.value.code == 404
