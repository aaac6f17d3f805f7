"""Inline-SVG charts for the self-contained HTML report: no script, no network, no dependency.

Axes get "nice" ticks (1, 2, 2.5 or 5 times a power of ten) and their unit; the legend sits in a
column beside the plot, so it never covers a line; a limit (SLO) is a dashed line, warm-up spans
are shaded, markers (e.g. the largest passing class) are labelled vertical lines. Every chart is
`<svg class="plot" data-points="N">` with N the data points drawn.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

PALETTE = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#8C564B", "#444444")
LIMIT_COLOUR = "#C00000"
MARK_COLOUR = "#1A7F37"
SHADE = "#9AA0A6"
W, H = 1040, 270
PAD_L, PAD_R, PAD_T, PAD_B = 64, 250, 30, 44  # PAD_R holds the legend
LEGEND_CHARS = 34
LEGEND_X = W - PAD_R + 14
FONT = 'font-family="sans-serif"'


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    xs: Sequence[float]
    ys: Sequence[float | None]
    colour: str = ""
    points: bool = False  # draw a dot at each value (few points, e.g. ramp steps)


@dataclass(frozen=True, slots=True)
class Line:
    """A horizontal (limit) or vertical (marker) reference line."""

    at: float
    label: str
    colour: str = LIMIT_COLOUR


@dataclass(slots=True)
class Decor:
    limits: list[Line] = field(default_factory=list)  # horizontal, dashed
    marks: list[Line] = field(default_factory=list)  # vertical, labelled
    spans: list[tuple[float, float]] = field(default_factory=list)  # shaded x ranges
    span_label: str = "warm-up"
    span_texts: list[str] = field(default_factory=list)  # a word over each span (e.g. a ramp step's size)


def nice_step(span: float, target: int = 5, whole: bool = False) -> float:
    """A step of 1, 2, 2.5 or 5 times a power of ten giving about `target` intervals over `span`
    (`whole`: counts, so no 2.5 and nothing below 1)."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / target
    mag = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 5.0, 10.0) if whole else (1.0, 2.0, 2.5, 5.0, 10.0):
        if raw <= m * mag:
            return max(m * mag, 1.0) if whole else m * mag
    return 10 * mag


def nice_ticks(lo: float, hi: float, target: int = 5, whole: bool = False) -> list[float]:
    """Ticks covering [lo, hi], starting and ending on a multiple of a nice step."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    step = nice_step(hi - lo, target, whole)
    start = math.floor(lo / step + 1e-9) * step
    end = math.ceil(hi / step - 1e-9) * step
    count = round((end - start) / step)
    return [round(start + i * step, 10) for i in range(count + 1)]


def tick_labels(ticks: list[float]) -> list[str]:
    """Labels with just the decimals the step needs (2.5 -> one, 0.25 -> two); 12.5k, 2M on big axes."""
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    top = max(abs(t) for t in ticks)
    scale, suffix = (1e6, "M") if top >= 1e6 and step >= 1e5 else (1e3, "k") if top >= 1e4 and step >= 1e3 else (1, "")
    step /= scale
    decimals = next((d for d in range(8) if abs(step * 10**d - round(step * 10**d)) < 1e-6), 8)
    return [f"{t / scale:,.{decimals}f}{suffix}" if t else "0" for t in ticks]


class _Frame:
    """Scales, axes and legend of one chart."""

    def __init__(self, title: str, xticks: list[float], yticks: list[float], xlabel: str, ylabel: str) -> None:
        self.xt, self.yt = xticks, yticks
        self.x0, self.x1 = xticks[0], xticks[-1]
        self.y0, self.y1 = yticks[0], yticks[-1]
        self.legend: list[str] = []
        self._legend_y = 0
        self.title, self.xlabel, self.ylabel = title, xlabel, ylabel

    def px(self, x: float) -> float:
        return PAD_L + (x - self.x0) / (self.x1 - self.x0) * (W - PAD_L - PAD_R)

    def py(self, y: float) -> float:
        return H - PAD_B - (y - self.y0) / (self.y1 - self.y0) * (H - PAD_B - PAD_T)

    def clamp_y(self, y: float) -> float:
        return min(max(y, self.y0), self.y1)

    def axes(self) -> list[str]:
        out = []
        for y, label in zip(self.yt, tick_labels(self.yt), strict=True):
            py = self.py(y)
            out.append(f'<line x1="{PAD_L}" y1="{py:.1f}" x2="{W - PAD_R}" y2="{py:.1f}" stroke="#e6e6e6"/>')
            out.append(f'<text x="{PAD_L - 6}" y="{py + 4:.1f}" text-anchor="end" font-size="11" {FONT}>'
                       f"{escape(label)}</text>")
        for x, label in zip(self.xt, tick_labels(self.xt), strict=True):
            px = self.px(x)
            out.append(f'<line x1="{px:.1f}" y1="{H - PAD_B}" x2="{px:.1f}" y2="{H - PAD_B + 4}" stroke="#444"/>')
            out.append(f'<text x="{px:.1f}" y="{H - PAD_B + 16}" text-anchor="middle" font-size="11" {FONT}>'
                       f"{escape(label)}</text>")
        out.append(f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" stroke="#444"/>')
        out.append(f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{H - PAD_B}" stroke="#444"/>')
        mid_x = (PAD_L + W - PAD_R) / 2
        out.append(f'<text x="{mid_x:.0f}" y="{H - 8}" text-anchor="middle" font-size="12" {FONT}>'
                   f"{escape(self.xlabel)}</text>")
        mid_y = (PAD_T + H - PAD_B) / 2
        out.append(f'<text x="14" y="{mid_y:.0f}" font-size="12" transform="rotate(-90 14 {mid_y:.0f})" '
                   f'text-anchor="middle" {FONT}>{escape(self.ylabel)}</text>')
        return out

    def key(self, colour: str, label: str, style: str = "line") -> None:
        y = PAD_T + 8 + self._legend_y
        if style == "box":
            swatch = f'<rect x="{LEGEND_X}" y="{y - 6}" width="18" height="10" fill="{colour}" opacity="0.35"/>'
        elif style == "dash":
            swatch = (f'<line x1="{LEGEND_X}" y1="{y}" x2="{LEGEND_X + 18}" y2="{y}" stroke="{colour}" '
                      f'stroke-width="2" stroke-dasharray="5 3"/>')
        else:
            swatch = (f'<line x1="{LEGEND_X}" y1="{y}" x2="{LEGEND_X + 18}" y2="{y}" stroke="{colour}" '
                      f'stroke-width="2.5"/>')
        lines = _wrap(label, LEGEND_CHARS)
        spans = "".join(f'<tspan x="{LEGEND_X + 24}" dy="{0 if i == 0 else 13}">{escape(t)}</tspan>'
                        for i, t in enumerate(lines))
        self.legend.append(f'{swatch}<text x="{LEGEND_X + 24}" y="{y + 4}" font-size="11" {FONT}>{spans}</text>')
        self._legend_y += 18 + 13 * (len(lines) - 1)

    def decor_back(self, d: Decor) -> list[str]:
        out = []
        for a, b in d.spans:
            lo, hi = max(a, self.x0), min(b, self.x1)
            if hi > lo:
                out.append(f'<rect class="span" x="{self.px(lo):.1f}" y="{PAD_T}" '
                           f'width="{self.px(hi) - self.px(lo):.1f}" height="{H - PAD_B - PAD_T}" fill="{SHADE}" '
                           'opacity="0.18"/>')
        for (a, _), text in zip(d.spans, d.span_texts, strict=False):
            if self.x0 <= a <= self.x1:
                out.append(f'<text x="{self.px(a) + 3:.1f}" y="{PAD_T + 11}" font-size="10" fill="#57606a" {FONT}>'
                           f"{escape(text)}</text>")
        if d.spans:
            self.key(SHADE, d.span_label, "box")
        return out

    def decor_front(self, d: Decor) -> list[str]:
        out = []
        for ln in d.limits:
            py = self.py(self.clamp_y(ln.at))
            out.append(f'<line class="limit" x1="{PAD_L}" y1="{py:.1f}" x2="{W - PAD_R}" y2="{py:.1f}" '
                       f'stroke="{ln.colour}" stroke-width="1.5" stroke-dasharray="6 4"/>')
            self.key(ln.colour, ln.label, "dash")
        for ln in d.marks:
            if not self.x0 <= ln.at <= self.x1:
                continue
            px = self.px(ln.at)
            out.append(f'<line class="mark" x1="{px:.1f}" y1="{PAD_T}" x2="{px:.1f}" y2="{H - PAD_B}" '
                       f'stroke="{ln.colour}" stroke-width="1.5" stroke-dasharray="2 3"/>')
            self.key(ln.colour, ln.label, "dash")
        return out

    def render(self, body: list[str], points: int) -> str:
        head = (f'<svg class="plot" data-points="{points}" xmlns="http://www.w3.org/2000/svg" width="{W}" '
                f'height="{H}" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(self.title)}">'
                f'<text x="{PAD_L}" y="18" font-size="14" font-weight="bold" {FONT}>{escape(self.title)}</text>')
        return head + "".join(body) + "".join(self.legend) + "</svg>"


def _wrap(text: str, width: int, lines: int = 2) -> list[str]:
    """Legend text in at most `lines` lines of about `width` characters (the rest shortened)."""
    out: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    out.append(line)
    if len(out) > lines:
        out = [*out[: lines - 1], " ".join(out[lines - 1:])]
    return [t if len(t) <= width else t[: width - 1] + "…" for t in out]


def _no_data(title: str, why: str = "no data") -> str:
    return f'<p class="nodata"><em>{escape(title)}: {escape(why)}.</em></p>'


def line_chart(title: str, series: list[Series], *, xlabel: str, ylabel: str, decor: Decor | None = None,
               y_floor: float | None = 0.0, x_range: tuple[float, float] | None = None, counts: bool = False) -> str:
    """Lines over a shared x axis (time, students); y starts at `y_floor` (None: at the data's minimum);
    `counts`: whole-number ticks."""
    d = decor or Decor()
    pts = [(x, y) for s in series for x, y in zip(s.xs, s.ys, strict=False) if y is not None and math.isfinite(y)]
    if not pts:
        return _no_data(title)
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts] + [ln.at for ln in d.limits]
    lo_x, hi_x = x_range or (min(xs), max(xs))
    lo_y = min(ys) if y_floor is None else min(y_floor, *ys)
    f = _Frame(title, nice_ticks(lo_x, hi_x, 8), nice_ticks(lo_y, max(ys), whole=counts), xlabel, ylabel)
    body = f.decor_back(d) + f.axes()
    count = 0
    for n, s in enumerate(series):
        colour = s.colour or PALETTE[n % len(PALETTE)]
        coords = [(f.px(x), f.py(y)) for x, y in zip(s.xs, s.ys, strict=False) if y is not None and math.isfinite(y)]
        if not coords:
            continue
        count += len(coords)
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        body.append(f'<polyline class="series" fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        if s.points or len(coords) == 1:
            body += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}"/>' for x, y in coords]
        f.key(colour, s.label)
    body += f.decor_front(d)
    return f.render(body, count)


def histogram(title: str, edges: Sequence[float], counts: Sequence[int], *, xlabel: str, ylabel: str = "requests",
              decor: Decor | None = None, label: str = "") -> str:
    if not counts or len(edges) < 2 or not any(counts):
        return _no_data(title)
    d = decor or Decor()
    lo, hi = edges[0], edges[-1]
    if hi <= lo:  # every value equal: one bar of width 1 % around it
        pad = abs(lo) * 0.01 or 1.0
        lo, hi = lo - pad, hi + pad
        edges = [lo, hi]
    # A mark far beyond the data (a loose SLO) would squeeze the bars into a corner: it is named, not drawn.
    reach = hi + 2 * (hi - lo)
    far = [ln for ln in d.marks if not lo - (hi - lo) <= ln.at <= reach]
    d = Decor(d.limits, [ln for ln in d.marks if ln not in far], d.spans, d.span_label, d.span_texts)
    marks = [ln.at for ln in d.marks]
    f = _Frame(title, nice_ticks(min([lo, *marks]), max([hi, *marks]), 8), nice_ticks(0, max(counts), whole=True),
               xlabel, ylabel)
    body = f.decor_back(d) + f.axes()
    for i, c in enumerate(counts):
        if not c:
            continue
        left, right = f.px(edges[i]), f.px(edges[min(i + 1, len(edges) - 1)])
        top = f.py(c)
        body.append(f'<rect class="bar" x="{left:.1f}" y="{top:.1f}" width="{max(1.0, right - left - 1):.1f}" '
                    f'height="{H - PAD_B - top:.1f}" fill="{PALETTE[0]}"/>')
    if label:
        f.key(PALETTE[0], label, "box")
    body += f.decor_front(d)
    for ln in far:
        f.key(ln.colour, f"{ln.label} (beyond the axis)", "dash")
    return f.render(body, sum(1 for c in counts if c))


def bars(title: str, groups: list[str], series: list[tuple[str, list[float | None]]], *, ylabel: str,
         decor: Decor | None = None) -> str:
    """Grouped bars on one scale (compare: one bar per report in each group)."""
    values = [v for _, vs in series for v in vs if v is not None and math.isfinite(v)]
    if not values or not groups:
        return _no_data(title)
    d = decor or Decor()
    f = _Frame(title, [0.0, float(len(groups))], nice_ticks(min(0.0, *values), max(values)), "", ylabel)
    body = f.axes()[: 2 * len(f.yt)]  # y grid and labels; the x axis carries group names instead
    body.append(f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" stroke="#444"/>')
    slot = (W - PAD_L - PAD_R) / len(groups)
    width = slot * 0.7 / max(1, len(series))
    count = 0
    for g, name in enumerate(groups):
        cx = PAD_L + slot * (g + 0.5)
        body.append(f'<text x="{cx:.1f}" y="{H - PAD_B + 16}" text-anchor="middle" font-size="11" {FONT}>'
                    f"{escape(name)}</text>")
        for n, (_, vs) in enumerate(series):
            v = vs[g] if g < len(vs) else None
            if v is None or not math.isfinite(v):
                continue
            count += 1
            x = cx - slot * 0.35 + n * width
            top, base = f.py(max(v, 0.0)), f.py(min(v, 0.0))
            body.append(f'<rect class="bar" x="{x:.1f}" y="{top:.1f}" width="{width - 2:.1f}" '
                        f'height="{max(0.5, base - top):.1f}" fill="{PALETTE[n % len(PALETTE)]}"/>')
    for n, (label, _) in enumerate(series):
        f.key(PALETTE[n % len(PALETTE)], label, "box")
    body += f.decor_front(d)
    return f.render(body, count)
