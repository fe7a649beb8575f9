"""The backtest's HTML report in a real browser: Debian's chromium, headless.

A screenshot must show the page (not one flat colour) with each mark of the timeline plot drawn
in its colour where the page's layout puts it; a probe page (the report plus a script that
measures the layout) must find the plot and every table laid out with content.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from browser import CHROMIUM, HEIGHT, MISSING, WIDTH, chromium, near, pixel, read_png  # noqa: E402

EXFILGUARD = str(Path(sys.executable).with_name("exfilguard"))
MIXED = Path(__file__).resolve().parents[1] / "fixtures" / "labels" / "mixed"
COLOURS = {"TP": (0x1A, 0x7F, 0x37), "FP": (0xCF, 0x22, 0x2E), "FN": (0xBC, 0x4C, 0x00)}

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=MISSING)

PROBE = """
<script>
window.addEventListener("load", () => {
  const box = (e) => { const r = e.getBoundingClientRect();
                       return {x: r.left, y: r.top, w: r.width, h: r.height}; };
  const svg = document.querySelector("svg#timeline");
  const out = {
    svg: svg ? box(svg) : null,
    marks: [...document.querySelectorAll("svg .mark")].map((m) => ({
      status: [...m.classList].find((c) => c !== "mark"), ...box(m)})),
    axisLabels: [...document.querySelectorAll("svg text")].map((t) => t.textContent),
    tables: [...document.querySelectorAll("table")].map((t) => ({
      cls: t.className, rows: t.rows.length, ...box(t),
      text: t.innerText.slice(0, 400)})),
  };
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    result = subprocess.run(
        [EXFILGUARD, "backtest", "--labels", str(MIXED / "labels.csv"), "--baseline-config",
         str(MIXED / "tuned.yaml"), "--report", str(folder), str(MIXED / "records.jsonl")],
        capture_output=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr.decode()
    return folder / "report.html"


@pytest.fixture(scope="module")
def layout(report, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("probe")
    probe = folder / "probe.html"
    probe.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    result = chromium("--dump-dom", probe.as_uri(), profile=folder / "profile")
    dom = result.stdout.decode()
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, f"no probe output; chromium said: {result.stderr.decode()[-2000:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&")
                      .replace("&lt;", "<").replace("&gt;", ">"))


@pytest.fixture(scope="module")
def screenshot(report, tmp_path_factory) -> tuple[int, int, list[bytes], int]:
    folder = tmp_path_factory.mktemp("shot")
    png = folder / "report.png"
    result = chromium(f"--screenshot={png}", report.as_uri(), profile=folder / "profile")
    assert png.exists(), f"no screenshot; chromium said: {result.stderr.decode()[-2000:]}"
    return read_png(png)


def test_the_screenshot_shows_a_page_not_a_blank(screenshot):
    width, height, rows, bpp = screenshot
    assert (width, height) == (WIDTH, HEIGHT)
    colours = {row[i:i + 3] for row in rows[:800:4] for i in range(0, len(row), bpp * 4)}
    assert len(colours) > 20, f"{len(colours)} colours: a blank page"
    dark = sum(1 for row in rows[:400] for i in range(0, len(row), bpp) if row[i] < 80)
    assert dark > 2000, "no text drawn"


def test_the_plot_is_laid_out_with_one_mark_per_finding_and_missed_key(layout):
    svg = layout["svg"]
    assert svg is not None and svg["w"] >= 1000 and svg["h"] >= 100
    counts: dict[str, int] = {}
    for mark in layout["marks"]:
        counts[mark["status"]] = counts.get(mark["status"], 0) + 1
        assert mark["w"] > 5 and mark["h"] > 5
        assert svg["x"] <= mark["x"] and mark["x"] + mark["w"] <= svg["x"] + svg["w"]
        assert svg["y"] <= mark["y"] and mark["y"] + mark["h"] <= svg["y"] + svg["h"]
    # TP: three keys; FP: the red team's; FN: the quiet key (the absent key has no call)
    assert counts == {"TP": 3, "FP": 1, "FN": 1}
    labels = " ".join(layout["axisLabels"])
    assert "event time (UTC" in labels and "account" in labels
    assert "111122223333" in labels and "444455556666" in labels


def test_each_mark_is_drawn_in_its_colour_where_it_is_laid_out(layout, screenshot):
    for mark in layout["marks"]:
        x, y = mark["x"] + mark["w"] / 2, mark["y"] + mark["h"] / 2
        seen = pixel(screenshot, x, y)
        assert near(seen, COLOURS[mark["status"]]), (mark, seen)


def test_the_tables_are_rendered_with_their_rows(layout, screenshot):
    tables = {t["cls"]: t for t in layout["tables"]}
    assert {"metrics", "outcomes tp", "outcomes fp", "outcomes fn", "ttd", "calls",
            "comparison", "changes"} <= set(tables)
    metrics = tables["metrics"]
    assert metrics["rows"] == 2 and metrics["w"] > 300 and metrics["h"] > 20
    assert "0.750" in metrics["text"] and "0.600" in metrics["text"]
    assert tables["outcomes tp"]["rows"] == 4 and tables["outcomes fn"]["rows"] == 3
    assert "ASIAKEY2PENTEST00002" in tables["outcomes fp"]["text"]
    assert "no call with this key in the input" in tables["outcomes fn"]["text"]
    # The metrics table is on screen: its header's background and dark text are drawn.
    _, _, rows, bpp = screenshot
    top, left = round(metrics["y"]), round(metrics["x"])
    band = rows[top + 2:top + round(metrics["h"]) - 2]
    seen = {row[i:i + 3] for row in band
            for i in range(left * bpp, (left + round(metrics["w"])) * bpp, bpp)}
    assert any(near(c, (0xF6, 0xF8, 0xFA), 3) for c in seen), "no header background"
    assert any(max(c) < 80 for c in seen), "no text in the metrics table"
