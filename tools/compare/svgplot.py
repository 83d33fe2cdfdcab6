"""Hand-written SVG bar charts for tools/compare/compare.py (no matplotlib needed).

`bar_panels` draws one panel per scenario (each with its own y scale, since µs/req for a
2-byte response and µs/MiB for an upload differ by orders of magnitude), one bar per proxy,
the value printed on each bar. Output is a standalone SVG string.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

COLORS = {
    "ringway": "#d9480f",
    "nginx": "#2b8a3e",
    "haproxy": "#1c7ed6",
    "envoy": "#7048e8",
    "direct": "#868e96",
}
FALLBACK = ("#495057", "#e67700", "#0b7285", "#a61e4d")


def _nice_max(x: float) -> float:
    """Smallest 1/2/2.5/5 × 10^k that is >= x (for the axis top)."""
    if x <= 0:
        return 1.0
    k = 1.0
    while k * 10 <= x:
        k *= 10
    while k > x:
        k /= 10
    for m in (1, 2, 2.5, 5, 10):
        if m * k >= x:
            return m * k
    return 10 * k


def bar_panels(
    title: str,
    panels: list[tuple[str, str, dict[str, float]]],
    order: list[str],
    note: str = "",
) -> str:
    """panels: (panel title, y-axis unit, {proxy: value}); order: proxies left to right."""
    pw, ph, gap, top, left = 230, 260, 20, 56, 44
    cols = min(len(panels), 4) or 1
    rows = (len(panels) + cols - 1) // cols or 1
    width = left + cols * (pw + gap)
    height = top + rows * (ph + gap) + 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">'
        f"{escape(title)}</text>",
    ]
    if note:
        out.append(f'<text x="{width / 2}" y="40" text-anchor="middle" fill="#555">{escape(note)}</text>')
    for i, (ptitle, unit, values) in enumerate(panels):
        x0 = left + (i % cols) * (pw + gap)
        y0 = top + (i // cols) * (ph + gap)
        names = [n for n in order if n in values and values[n] == values[n]]  # drop NaN
        plot_top, plot_bottom = y0 + 24, y0 + ph - 40
        out.append(
            f'<text x="{x0 + pw / 2}" y="{y0 + 12}" text-anchor="middle" font-weight="bold">'
            f"{escape(ptitle)}</text>"
        )
        ymax = _nice_max(max((values[n] for n in names), default=1.0) * 1.1)
        for t in range(5):
            v = ymax * t / 4
            y = plot_bottom - (plot_bottom - plot_top) * t / 4
            out.append(f'<line x1="{x0}" x2="{x0 + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e9ecef"/>')
            label = f"{v:,.0f}" if ymax >= 20 else f"{v:,.1f}"
            out.append(f'<text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{label}</text>')
        out.append(
            f'<text x="{x0 + 2}" y="{plot_top - 6}" fill="#555" font-size="10">{escape(unit)}</text>'
        )
        if names:
            slot = pw / len(names)
            bw = min(40.0, slot * 0.7)
            for j, n in enumerate(names):
                v = values[n]
                h = (plot_bottom - plot_top) * (v / ymax) if ymax > 0 else 0
                bx = x0 + j * slot + (slot - bw) / 2
                color = COLORS.get(n, FALLBACK[j % len(FALLBACK)])
                out.append(
                    f'<rect x="{bx:.1f}" y="{plot_bottom - h:.1f}" width="{bw:.1f}" height="{h:.1f}" '
                    f'fill="{color}"><title>{escape(n)}: {v:,.2f} {escape(unit)}</title></rect>'
                )
                txt = f"{v:,.0f}" if v >= 100 else f"{v:,.1f}" if v >= 10 else f"{v:,.2f}"
                out.append(
                    f'<text x="{bx + bw / 2:.1f}" y="{plot_bottom - h - 3:.1f}" text-anchor="middle">'
                    f"{txt}</text>"
                )
                out.append(
                    f'<text x="{bx + bw / 2:.1f}" y="{plot_bottom + 14}" text-anchor="middle">'
                    f"{escape(n)}</text>"
                )
        out.append(
            f'<line x1="{x0}" x2="{x0 + pw}" y1="{plot_bottom}" y2="{plot_bottom}" stroke="#333"/>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"
