"""Charts as inline SVG, drawn on the server: no script, no CDN, readable without JavaScript."""

from datetime import UTC, datetime
from html import escape

from markupsafe import Markup

from ops.queries import Bucket

WIDTH, HEIGHT, AXIS = 720, 140, 18


def throughput_chart(buckets: list[Bucket], *, label_every: int, time_format: str, title: str) -> Markup:
    """Stacked bars: succeeded below, failed above, one bar per bucket, hover for the numbers."""
    peak = max((b.succeeded + b.failed for b in buckets), default=0) or 1
    slot = WIDTH / max(len(buckets), 1)
    plot = HEIGHT - AXIS
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">',
        f'<line x1="0" y1="{plot}" x2="{WIDTH}" y2="{plot}" class="axis"/>',
        f'<text x="2" y="10" class="peak">{peak}</text>',
    ]
    for i, b in enumerate(buckets):
        x = i * slot + 1
        ok_h = plot * b.succeeded / peak
        failed_h = plot * b.failed / peak
        when = datetime.fromtimestamp(b.start, UTC).strftime(time_format)
        parts.append(
            f"<g><title>{when} UTC: {b.succeeded} succeeded, {b.failed} failed, {b.retried} retried</title>"
            f'<rect x="{x:.1f}" y="{plot - ok_h:.1f}" width="{slot - 2:.1f}" height="{ok_h:.1f}" class="ok"/>'
            f'<rect x="{x:.1f}" y="{plot - ok_h - failed_h:.1f}" width="{slot - 2:.1f}" '
            f'height="{failed_h:.1f}" class="failed"/></g>'
        )
        if i % label_every == 0:
            parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 4}" class="label">{when}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
