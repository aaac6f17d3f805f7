"""Tiny inline-SVG charts for the self-contained HTML report (no JavaScript, no network)."""

from html import escape

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
W, H, PAD_L, PAD_B, PAD_T, PAD_R = 640, 240, 56, 36, 24, 16


def _fmt(v: float) -> str:
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.0f}"
    return f"{v:.2g}"


def _frame(title: str, xs: tuple[float, float], ys: tuple[float, float], xlabel: str, ylabel: str) -> list[str]:
    x0, x1 = xs
    y0, y1 = ys
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
             f'role="img" aria-label="{escape(title)}">',
             f'<text x="{W / 2}" y="15" text-anchor="middle" font-size="13">{escape(title)}</text>',
             f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" stroke="#444"/>',
             f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{H - PAD_B}" stroke="#444"/>']
    for i in range(5):
        fy = y0 + (y1 - y0) * i / 4
        py = H - PAD_B - (H - PAD_B - PAD_T) * i / 4
        parts.append(f'<text x="{PAD_L - 4}" y="{py + 4:.1f}" text-anchor="end" font-size="10">{_fmt(fy)}</text>')
        parts.append(f'<line x1="{PAD_L}" y1="{py:.1f}" x2="{W - PAD_R}" y2="{py:.1f}" stroke="#eee"/>')
        fx = x0 + (x1 - x0) * i / 4
        px = PAD_L + (W - PAD_L - PAD_R) * i / 4
        parts.append(f'<text x="{px:.1f}" y="{H - PAD_B + 14}" text-anchor="middle" font-size="10">{_fmt(fx)}</text>')
    parts.append(f'<text x="{W / 2}" y="{H - 4}" text-anchor="middle" font-size="11">{escape(xlabel)}</text>')
    parts.append(f'<text x="12" y="{H / 2}" font-size="11" transform="rotate(-90 12 {H / 2})" '
                 f'text-anchor="middle">{escape(ylabel)}</text>')
    return parts


def line_chart(title: str, series: list[tuple[str, list[float], list[float | None]]], xlabel: str,
               ylabel: str) -> str:
    points = [(x, y) for _, xs, ys in series for x, y in zip(xs, ys, strict=False) if y is not None]
    if not points:
        return f"<p><em>{escape(title)}: no data.</em></p>"
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y1 = max(p[1] for p in points)
    x1 = x1 if x1 > x0 else x0 + 1
    y1 = y1 if y1 > 0 else 1.0
    parts = _frame(title, (x0, x1), (0.0, y1), xlabel, ylabel)
    sx = (W - PAD_L - PAD_R) / (x1 - x0)
    sy = (H - PAD_B - PAD_T) / y1
    for n, (label, xs, ys) in enumerate(series):
        colour = COLOURS[n % len(COLOURS)]
        pts = " ".join(f"{PAD_L + (x - x0) * sx:.1f},{H - PAD_B - y * sy:.1f}"
                       for x, y in zip(xs, ys, strict=False) if y is not None)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{pts}"/>')
        parts.append(f'<text x="{W - PAD_R - 4}" y="{PAD_T + 12 + 12 * n}" text-anchor="end" font-size="10" '
                     f'fill="{colour}">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram(title: str, edges: list[float], counts: list[int], xlabel: str) -> str:
    if not counts or len(edges) < 2:
        return f"<p><em>{escape(title)}: no data.</em></p>"
    x0, x1 = edges[0], edges[-1]
    x1 = x1 if x1 > x0 else x0 + 1
    top = max(counts) or 1
    parts = _frame(title, (x0, x1), (0.0, float(top)), xlabel, "requests / gaps")
    sx = (W - PAD_L - PAD_R) / (x1 - x0)
    sy = (H - PAD_B - PAD_T) / top
    for i, c in enumerate(counts):
        left = PAD_L + (edges[i] - x0) * sx
        width = max(1.0, (edges[min(i + 1, len(edges) - 1)] - edges[i]) * sx - 1)
        parts.append(f'<rect x="{left:.1f}" y="{H - PAD_B - c * sy:.1f}" width="{width:.1f}" '
                     f'height="{c * sy:.1f}" fill="{COLOURS[0]}"/>')
    parts.append("</svg>")
    return "".join(parts)
