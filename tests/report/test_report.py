"""The backtest's HTML report in a real browser: Debian's chromium, headless.

A screenshot must show the page (not one flat colour) with each mark of the timeline plot drawn
in its colour where the page's layout puts it; a probe page (the report plus a script that
measures the layout) must find the plot and every table laid out with content.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

EXFILGUARD = str(Path(sys.executable).with_name("exfilguard"))
MIXED = Path(__file__).resolve().parents[1] / "fixtures" / "labels" / "mixed"
WIDTH, HEIGHT = 1200, 1600
COLOURS = {"TP": (0x1A, 0x7F, 0x37), "FP": (0xCF, 0x22, 0x2E), "FN": (0xBC, 0x4C, 0x00)}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian's chromium is not installed (apt-get install -y chromium); `make test` "
           "installs it")

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


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--hide-scrollbars", "--force-device-scale-factor=1",
         f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}", *args],
        capture_output=True, timeout=180, check=False,
        env={**os.environ, "HOME": str(profile)})


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


def read_png(path: Path) -> tuple[int, int, list[bytes], int]:
    """(width, height, rows of pixel bytes, bytes per pixel) of an 8-bit RGB(A) PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, []
    width = height = bpp = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        line = bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:
            for x in range(bpp, stride):
                line[x] = (line[x] + line[x - bpp]) & 255
        elif kind == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev, strict=True))
        elif kind == 3:
            for x in range(stride):
                left = line[x - bpp] if x >= bpp else 0
                line[x] = (line[x] + ((left + prev[x]) >> 1)) & 255
        elif kind == 4:
            for x in range(stride):
                a = line[x - bpp] if x >= bpp else 0
                b, c = prev[x], (prev[x - bpp] if x >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, rows, bpp


def pixel(shot, x: float, y: float) -> tuple[int, int, int]:
    _, _, rows, bpp = shot
    row = rows[round(y)]
    at = round(x) * bpp
    return tuple(row[at:at + 3])


def near(colour, expected, tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected, strict=True))


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
