"""Findings per account (rows) over event time (x) as an SVG: a bar from first to last call,
a mark at the first, in the colour of its kind; the legend names each kind drawn."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape


@dataclass(frozen=True)
class Mark:
    account: str
    start_ms: int
    end_ms: int
    status: str
    tip: str


@dataclass(frozen=True)
class Kind:
    """How marks of one status are drawn: colour, legend label, and shape."""
    colour: str
    label: str
    shape: str = "dot"  # dot, ring (hollow) or cross (a point in time, no bar)


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


def timeline_svg(marks: list[Mark], kinds: dict[str, Kind], width: int = 1100,
                 empty: str = "no findings to plot", draw_order: tuple[str, ...] = ()) -> str:
    """The plot; ``kinds`` in legend order, drawn in ``draw_order`` (default the same), later
    kinds over earlier ones."""
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
                   f'fill="#57606a">{escape(empty)}</text>')
    low = min((m.start_ms for m in marks), default=0)
    high = max((m.end_ms for m in marks), default=1)
    pad = max((high - low) // 20, 30_000)
    low, high = low - pad, high + pad
    span = high - low

    def x_of(ms: int) -> float:
        return round(left + (ms - low) / span * plot_w, 1)

    axis_y = top + row * max(len(accounts), 1)
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
    order = {status: index for index, status in enumerate(draw_order or tuple(kinds))}
    for mark in sorted(marks, key=lambda m: (order[m.status], m.start_ms, m.tip)):
        y = top + row * accounts.index(mark.account) + row / 2
        kind = kinds[mark.status]
        colour = kind.colour
        x1, x2 = x_of(mark.start_ms), x_of(mark.end_ms)
        tip = f"<title>{escape(mark.tip)}</title>"
        css = escape(mark.status)
        if kind.shape == "cross":
            d = f"M{x1 - 6},{y - 6} L{x1 + 6},{y + 6} M{x1 - 6},{y + 6} L{x1 + 6},{y - 6}"
            out.append(f'<path class="mark {css}" d="{d}" stroke="{colour}" stroke-width="3">'
                       f'{tip}</path>')
            continue
        if x2 - x1 >= 1:
            out.append(f'<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="{colour}" '
                       f'stroke-width="6" stroke-opacity="0.45" stroke-linecap="round"/>')
        fill = "#ffffff" if kind.shape == "ring" else colour
        out.append(f'<circle class="mark {css}" cx="{x1}" cy="{y}" r="7" fill="{fill}" '
                   f'stroke="{colour}" stroke-width="2">{tip}</circle>')
    lx = left
    for kind in kinds.values():
        colour = kind.colour
        if kind.shape == "cross":
            cx, cy = lx + 6, top - 20
            out.append(f'<path d="M{cx - 5},{cy - 5} L{cx + 5},{cy + 5} M{cx - 5},{cy + 5} '
                       f'L{cx + 5},{cy - 5}" stroke="{colour}" stroke-width="3"/>')
        else:
            fill = "#ffffff" if kind.shape == "ring" else colour
            out.append(f'<circle cx="{lx + 6}" cy="{top - 20}" r="6" fill="{fill}" '
                       f'stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{lx + 16}" y="{top - 16}" font-size="12" fill="#1f2328">'
                   f'{escape(kind.label)}</text>')
        lx += 34 + 7 * len(kind.label)
    out.append("</svg>")
    return "\n".join(out)
