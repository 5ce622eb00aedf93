"""Reports people read: the per-run `nnaudit/report.html` artifact, the audit's summary page,
and the terminal text of `nnaudit explain`.

Everything is self-contained: the MLflow UI shows HTML artifacts in a sandboxed frame with no
same-origin access, so the pages carry their own styles and draw their charts as inline SVG
(no scripts, no external files, no plotting library: a chart costs well under a millisecond,
which matters when a nightly audit writes one page per run).
"""

from __future__ import annotations

import html
import math
import re
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from mlflow_nnaudit._version import __version__
from mlflow_nnaudit.auditor.catalog import BY_ID
from mlflow_nnaudit.auditor.curves import (
    GRAD_NORM,
    LEARNING_RATE,
    ROLES,
    TRAIN_ACC,
    TRAIN_LOSS,
    VAL_ACC,
    VAL_LOSS,
    VAL_R2,
    Curve,
)

#: most points a chart line is drawn with (min/max per bucket beyond that, so spikes stay visible)
MAX_DRAWN_POINTS = 600
#: points kept per run for the summary page's sparklines
SPARK_POINTS = 48

STATUS_ORDER = {"failed": 0, "warning": 1, "inconclusive": 2, "healthy": 3}
STATUS_COLOURS = {"failed": "#c62828", "warning": "#ef6c00", "inconclusive": "#607d8b", "healthy": "#2e7d32"}
_SERIES_COLOURS = ("#1565c0", "#d81b60", "#6a1b9a", "#00897b")

#: the charts of a run report: title, roles drawn on it
CHARTS = (
    ("Loss", (TRAIN_LOSS, VAL_LOSS)),
    ("Accuracy", (TRAIN_ACC, VAL_ACC)),
    ("R²", (VAL_R2,)),
    ("Learning rate", (LEARNING_RATE,)),
    ("Gradient norm", (GRAD_NORM,)),
)


@dataclass
class Mark:
    """Something found, drawn on a chart: a step range (shaded) or a step (a vertical line)."""

    x0: float
    x1: float
    label: str
    colour: str = "#c62828"


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _code_spans(text: str) -> str:
    """Escape, then render `backticks` as <code> (recommendations name code that way)."""
    parts = _esc(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _fmt(v: float) -> str:
    if not math.isfinite(v):
        return str(v)
    a = abs(v)
    if a != 0 and (a >= 1e5 or a < 1e-3):
        return f"{v:.2g}"
    return f"{v:.4g}"


def _step(v: float) -> str:
    """A step for reading: 12,345 (steps are whole numbers; anything else as a number)."""
    if math.isfinite(v) and float(v).is_integer():
        return f"{int(v):,}"
    return _fmt(v)


def _thin(x: np.ndarray, y: np.ndarray, max_points: int = MAX_DRAWN_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most `max_points` points: the min and the max of each bucket, in step order, so that
    a spike or a NaN-eve blow-up survives the thinning."""
    n = len(y)
    if n <= max_points:
        return x, y
    buckets = max_points // 2
    edges = np.linspace(0, n, buckets + 1).astype(int)
    xs, ys = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        if hi <= lo:
            continue
        seg = y[lo:hi]
        i, j = lo + int(np.argmin(seg)), lo + int(np.argmax(seg))
        for k in sorted((i, j)) if i != j else (i,):
            xs.append(x[k])
            ys.append(y[k])
    return np.asarray(xs), np.asarray(ys)


def _points(xs: np.ndarray, ys: np.ndarray) -> str:
    """'x,y x,y ...' with one decimal: one C-level format call for the whole line (a per-point
    f-string was most of a report's cost)."""
    coords = np.column_stack((xs, ys)).ravel()
    return ("%.1f,%.1f " * len(xs) % tuple(coords.tolist())).rstrip()


def svg_chart(
    series: Sequence[tuple[str, Curve]],
    marks: Sequence[Mark] = (),
    title: str = "",
    width: int = 660,
    height: int = 230,
) -> str:
    """One chart as inline SVG: each curve a line (log scale when the values are positive and
    span two decades or more), its first non-finite value a red line, and the marks on top."""
    left, right, top, bottom = 62, 12, 26, 30
    pw, ph = width - left - right, height - top - bottom
    finite_sets = []
    first_bad: list[tuple[str, float]] = []
    for label, c in series:
        x = c.x()
        ok = c.finite
        finite_sets.append((label, x[ok], c.values[ok]))
        if not ok.all():
            first_bad.append((label, float(x[np.argmax(~ok)])))
    all_x = np.concatenate([s[1] for s in finite_sets] + [np.asarray([b for _, b in first_bad])]) if series else []
    all_y = np.concatenate([s[2] for s in finite_sets]) if finite_sets else np.zeros(0)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_esc(title)}">',
        f'<text x="{left}" y="16" class="ct">{_esc(title)}</text>',
    ]
    if len(all_x) == 0 or len(all_y) == 0:
        out.append(f'<text x="{left + 10}" y="{top + ph / 2}" class="ax">no finite values</text></svg>')
        return "".join(out)
    log = bool(np.all(all_y > 0) and all_y.max() / all_y.min() >= 100)
    ty = np.log10 if log else (lambda v: v)
    y_lo, y_hi = float(ty(all_y).min()), float(ty(all_y).max())
    if y_hi - y_lo <= 1e-12 * max(abs(y_hi), 1e-300):  # flat: centre it, with a span of its own scale
        half = max(abs(y_hi) * 0.5, 1e-12)
        y_lo, y_hi = y_lo - half, y_hi + half
    pad = (y_hi - y_lo) * 0.05
    y_lo, y_hi = y_lo - pad, y_hi + pad
    x_lo, x_hi = float(np.min(all_x)), float(np.max(all_x))
    if x_hi <= x_lo:
        x_hi = x_lo + 1

    def px(v):
        return left + (np.asarray(v, dtype=float) - x_lo) / (x_hi - x_lo) * pw

    def py(v):
        return top + ph - (ty(np.asarray(v, dtype=float)) - y_lo) / (y_hi - y_lo) * ph

    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="pa"/>')
    for t in np.linspace(y_lo + pad, y_hi - pad, 4):  # y ticks
        yy = top + ph - (t - y_lo) / (y_hi - y_lo) * ph
        val = 10**t if log else t
        out.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{yy:.1f}" y2="{yy:.1f}" class="gr"/>'
            f'<text x="{left - 4}" y="{yy + 4:.1f}" class="ax" text-anchor="end">{_fmt(val)}</text>'
        )
    for t in np.linspace(x_lo, x_hi, 5):  # x ticks
        xx = float(px(t))
        out.append(f'<text x="{xx:.1f}" y="{top + ph + 16}" class="ax" text-anchor="middle">{_step(round(t))}</text>')
    out.append(f'<text x="{left + pw}" y="{height - 2}" class="ax" text-anchor="end">step</text>')
    if log:
        out.append(f'<text x="2" y="{top - 4}" class="ax">log scale</text>')
    for m in marks:  # shaded ranges and lines under the curves
        a, b = sorted((m.x0, m.x1))
        if b < x_lo or a > x_hi:  # outside this chart's steps
            continue
        a, b = max(a, x_lo), min(b, x_hi)
        xa, xb = float(px(a)), float(px(b))
        if xb - xa >= 2:
            out.append(
                f'<rect x="{xa:.1f}" y="{top}" width="{xb - xa:.1f}" height="{ph}" fill="{m.colour}" '
                f'fill-opacity="0.12"><title>{_esc(m.label)}</title></rect>'
            )
        else:
            out.append(
                f'<line x1="{xa:.1f}" x2="{xa:.1f}" y1="{top}" y2="{top + ph}" stroke="{m.colour}" '
                f'stroke-width="1.5" stroke-dasharray="4 3"><title>{_esc(m.label)}</title></line>'
            )
        out.append(f'<text x="{xa + 3:.1f}" y="{top + 11}" class="mk" fill="{m.colour}">{_esc(m.label[:40])}</text>')
    legend_x = left + 8 + 7.5 * len(title)
    for i, (label, x, y) in enumerate(finite_sets):
        colour = _SERIES_COLOURS[i % len(_SERIES_COLOURS)]
        if len(y):
            xs, ys = _thin(x, y)
            pts = _points(px(xs), py(ys))
            out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.4"/>')
            if len(y) <= 60:  # few points (per-epoch curves): show where they are
                out.append(
                    "".join(
                        f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.2" fill="{colour}"/>' for a, b in zip(px(xs), py(ys))
                    )
                )
        out.append(f'<text x="{legend_x:.0f}" y="16" class="lg" fill="{colour}">— {_esc(label)}</text>')
        legend_x += 22 + 6.3 * len(label)
    for label, at in first_bad:
        xa = float(px(at))
        out.append(
            f'<line x1="{xa:.1f}" x2="{xa:.1f}" y1="{top}" y2="{top + ph}" stroke="#b71c1c" stroke-width="2">'
            f"<title>{_esc(label)} non-finite from step {_step(at)}</title></line>"
            f'<text x="{xa - 3:.1f}" y="{top + 24}" class="mk" fill="#b71c1c" text-anchor="end">'
            f"NaN/Inf at {_step(at)}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def sparkline(curve: Curve | None, n: int = SPARK_POINTS) -> list[float]:
    """A run's loss reduced to `n` block medians (NaN where a block has no finite value), for the
    summary page. Small enough to keep for every run of an audit."""
    if curve is None or len(curve) == 0:
        return []
    v = np.asarray(curve.values, dtype=float)
    edges = np.linspace(0, len(v), min(n, len(v)) + 1).astype(int)
    # all blocks at once (one median per row of a NaN-padded table), not one np.median call per
    # block: ~2 ms a run otherwise, 20 s of CPU in an audit of 10,000 runs
    sizes = np.diff(edges)
    table = np.full((len(sizes), int(sizes.max())), np.nan)
    rows = np.repeat(np.arange(len(sizes)), sizes)
    cols = np.arange(len(v)) - np.repeat(edges[:-1], sizes)
    finite = np.isfinite(v)
    table[rows, cols] = np.where(finite, v, np.nan)
    table.sort(axis=1)  # NaN last: each row's finite values first, in order
    count = np.bincount(rows, weights=finite, minlength=len(sizes)).astype(int)
    r = np.arange(len(sizes))
    hi = table[r, np.maximum(count // 2, 0)]
    lo = table[r, np.maximum(count // 2 - 1, 0)]
    with np.errstate(all="ignore"):
        medians = np.where(count % 2 == 1, hi, (lo + hi) / 2)  # as np.median: the mean of the middle two
    return [round(float(m), 6) if c else float("nan") for m, c in zip(medians, count)]


def svg_sparkline(values: Sequence[float], width: int = 120, height: int = 28, colour: str = "#1565c0") -> str:
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v)
    if ok.sum() < 2:
        return ""
    lo, hi = float(v[ok].min()), float(v[ok].max())
    span = hi - lo or 1.0
    xs = np.arange(len(v)) / max(len(v) - 1, 1) * (width - 4) + 2
    ys = height - 2 - (v - lo) / span * (height - 4)
    pts = _points(xs[ok], ys[ok])
    bad = ""
    if not ok[-1]:  # ended non-finite: a red tail marker
        first = int(np.argmax(~ok[np.argmax(ok) :]) + np.argmax(ok))
        bad = f'<line x1="{xs[first]:.1f}" x2="{xs[first]:.1f}" y1="2" y2="{height - 2}" stroke="#b71c1c" stroke-width="2"/>'
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
        f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.2"/>{bad}</svg>'
    )


_CSS = """
body{font:14px/1.45 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:16px 20px;color:#212121;max-width:1080px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:22px 0 8px}h3{font-size:15px;margin:0 0 6px}
.meta{color:#616161;font-size:12px}.badge{display:inline-block;padding:2px 9px;border-radius:10px;color:#fff;
font-weight:600;font-size:13px}.chip{display:inline-block;background:#eceff1;border-radius:8px;padding:0 7px;margin:1px;
font-size:12px}.finding{border-left:4px solid #b0bec5;padding:6px 12px;margin:10px 0;background:#fafafa}
.finding.failed{border-color:#c62828}.finding.warning{border-color:#ef6c00}.finding.advisory{border-color:#1565c0}.fix{background:#e8f5e9;padding:6px 10px;
border-radius:4px;margin:6px 0}table{border-collapse:collapse;font-size:12px;margin:4px 0}td,th{border:1px solid #e0e0e0;
padding:3px 7px;text-align:left;vertical-align:top}th{background:#f5f5f5}code{background:#eceff1;padding:0 3px;
border-radius:3px;font-size:12.5px}.charts{display:flex;flex-wrap:wrap;gap:8px}svg .ct{font-size:13px;font-weight:600}
svg .ax{font-size:10px;fill:#616161}svg .lg{font-size:11px;font-weight:600}svg .mk{font-size:10px}
svg .pa{fill:#fff;stroke:#bdbdbd}svg .gr{stroke:#eeeeee}
"""


#: how a page of ours begins (`nnaudit audit --report` overwrites only a file that begins so)
PAGE_START = '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>nnaudit'


def is_our_page(head: str) -> bool:
    """Whether a file's first characters are those of a page this module wrote."""
    return head.startswith(PAGE_START)


def _page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
        f"<style>{_CSS}</style></head><body>{body}"
        f'<p class="meta">Written by mlflow-nnaudit {_esc(__version__)}.</p></body></html>'
    )


def _badge(status: str) -> str:
    return f'<span class="badge" style="background:{STATUS_COLOURS.get(status, "#607d8b")}">{_esc(status)}</span>'


def _marks_for(result, keys: Iterable[str]) -> list[Mark]:
    """Each finding's evidence that names a step range on one of these curves (or on no curve
    in particular) becomes a mark labelled with its cause."""
    keys = set(keys)
    marks = []
    for f in result.findings:
        colour = (
            STATUS_COLOURS["failed"] if f.severity == "failed" and f.confidence != "low" else STATUS_COLOURS["warning"]
        )
        for e in f.evidence:
            if e.steps is None or (e.curve is not None and e.curve not in keys):
                continue
            a, b = (float(s) for s in e.steps)
            if not (math.isfinite(a) and math.isfinite(b)):
                continue
            marks.append(Mark(a, b, f"{f.cause}: {e.test}", colour))
    return marks


#: items of a list or dict shown in evidence at most (the rest is counted, or summarised)
MAX_ITEMS = 8
#: entries of a histogram named in its summary
TOP_K = 5
#: characters of one evidence value shown at most
MAX_CHARS = 300


def _histogram_text(counts: list) -> str:
    """A long histogram (label counts by class index) as count, top-k and entropy."""
    total = float(sum(counts))
    if total <= 0:
        return f"{len(counts)} bins, all empty"
    order = sorted(range(len(counts)), key=lambda i: -counts[i])[:TOP_K]
    top = ", ".join(f"{i}: {counts[i] / total:.2%}" for i in order)
    probs = [c / total for c in counts if c > 0]
    entropy = -sum(p * math.log2(p) for p in probs)
    return (
        f"{len(counts)} bins ({len(probs)} non-empty, total {_fmt(total)}), top {len(order)}: {top}; "
        f"entropy {entropy:.2f} bits of {math.log2(len(counts)):.2f}"
    )


def _bounded(v, key: str = "", depth: int = 0) -> str:
    """One evidence value for reading, bounded: floats shortened, long lists and dicts cut to
    MAX_ITEMS (a long list of counts summarised as a histogram), long text cut."""
    if isinstance(v, float):
        return _fmt(v)
    if isinstance(v, dict):
        items = list(v.items())
        if depth >= 2:
            return f"{{{len(items)} entries}}"
        text = ", ".join(f"{k}: {_bounded(x, str(k), depth + 1)}" for k, x in items[:MAX_ITEMS])
        more = f", ... ({len(items) - MAX_ITEMS} more)" if len(items) > MAX_ITEMS else ""
        return "{" + text + more + "}"
    if isinstance(v, (list, tuple)):
        numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
        if len(v) > MAX_ITEMS and numeric and ("count" in key or "hist" in key):
            return _histogram_text(list(v))
        if depth >= 2 and len(v) > MAX_ITEMS:
            return f"[{len(v)} items]"
        text = ", ".join(_bounded(x, "", depth + 1) for x in v[:MAX_ITEMS])
        more = f", ... ({len(v) - MAX_ITEMS} more)" if len(v) > MAX_ITEMS else ""
        return "[" + text + more + "]"
    text = str(v)
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS] + f"... ({len(text)} chars)"


def _values_text(values: dict) -> str:
    """Evidence values for reading, bounded (see `_bounded`): a histogram of 33,000 labels is
    summarised, not printed."""
    items = list(values.items())
    out = [f"{k}={_bounded(v, str(k))}" for k, v in items[: MAX_ITEMS * 2]]
    if len(items) > MAX_ITEMS * 2:
        out.append(f"... ({len(items) - MAX_ITEMS * 2} more)")
    return ", ".join(out)


def _evidence_table(finding) -> str:
    rows = []
    for e in finding.evidence:
        d = e.to_dict()
        values = _values_text(d["values"])
        steps = "" if d["steps"] is None else f"{_step(float(d['steps'][0]))} – {_step(float(d['steps'][1]))}"
        rows.append(
            f"<tr><td>{_esc(d['test'])}</td><td>{_esc(d['curve'] or '')}</td>"
            f"<td>{_esc(values)}</td><td>{_esc(steps)}</td></tr>"
        )
    if not rows:
        return ""
    return "<table><tr><th>test</th><th>curve</th><th>values</th><th>steps</th></tr>" + "".join(rows) + "</table>"


def run_report_html(result, curves: dict[str, Curve]) -> str:
    """The `nnaudit/report.html` of one run: status, each finding with its evidence and fix,
    and the run's curves with what was found drawn on them. `curves` maps roles to curves."""
    causes = "".join(f'<span class="chip">{_esc(c)}</span>' for c in result.causes) or "none"
    advisories = "".join(f'<span class="chip">{_esc(c)}</span>' for c in result.advisories)
    head = (
        f"<h1>{_esc(result.run_name or result.run_id)} {_badge(result.status)}</h1>"
        f'<div class="meta">run {_esc(result.run_id)} · experiment {_esc(result.experiment_name)} · '
        f"audited {_esc(result.audited_at)}</div><p>Causes: {causes}</p>"
        + (f"<p>Advisories (set-up risks; the run showed no harm from them): {advisories}</p>" if advisories else "")
    )
    if result.harm is not None:
        head += f"<p><b>Outcome:</b> {_esc(result.harm.summary)}.</p>"
    if result.reason:
        head += f"<p><b>Not enough to judge:</b> {_esc(result.reason)}.</p>"
    charts = []
    for title, roles in CHARTS:
        series = [(curves[r].key, curves[r]) for r in roles if r in curves and len(curves[r])]
        if series:
            charts.append(svg_chart(series, _marks_for(result, (c.key for _, c in series)), title))
    parts = [head]
    if charts:
        parts.append('<h2>Curves</h2><div class="charts">' + "".join(charts) + "</div>")
    if result.findings:
        parts.append(
            "<h2>What was found</h2>"
            if result.causes
            else "<h2>Advisories</h2><p class='meta'>Set-up risks on a run that showed no harm: worth a look, "
            "not a cause of anything.</p>"
        )
    for f in result.findings:
        cat = BY_ID.get(f.cause)
        level = "advisory" if f.advisory else (f.severity if f.confidence != "low" else "warning")
        parts.append(
            f'<div class="finding {_esc(level)}">'
            f"<h3>{_esc(f.title)} <span class='chip'>{_esc(f.cause)}</span> "
            f"<span class='chip'>{_esc(f.confidence)} confidence</span>"
            + (" <span class='chip'>advisory</span>" if f.advisory else "")
            + "</h3>"
            f"<div>{_code_spans(f.summary)}</div>"
            f'<div class="fix"><b>Fix:</b> {_code_spans(f.advice)}</div>'
            + (f'<div class="meta">Why it hurts: {_code_spans(cat.why_it_hurts)}</div>' if cat else "")
            + _evidence_table(f)
            + "</div>"
        )
    if not result.findings and not result.reason:
        parts.append("<p>Nothing wrong was found: the run trained as a healthy run does.</p>")
    if result.roles:
        used = ", ".join(f"{_esc(r)} = <code>{_esc(k)}</code>" for r, k in result.roles.items())
        parts.append(f'<p class="meta">Curves read: {used}.</p>')
    if result.notes:
        parts.append('<p class="meta">Notes: ' + "; ".join(_esc(n) for n in result.notes) + "</p>")
    return _page(f"nnaudit: {result.run_name or result.run_id}", "".join(parts))


def _bars(counts: Sequence[tuple[str, int]], colours: dict[str, str] | None = None, width: int = 520) -> str:
    if not counts:
        return ""
    top = max(n for _, n in counts) or 1
    row, label_w = 20, 230
    h = row * len(counts) + 4
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}">']
    for i, (label, n) in enumerate(counts):
        y = 2 + i * row
        w = (width - label_w - 50) * n / top
        colour = (colours or {}).get(label, "#546e7a")
        out.append(
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" font-size="12">{_esc(label)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{max(w, 1):.1f}" height="{row - 6}" fill="{colour}"/>'
            f'<text x="{label_w + w + 5:.1f}" y="{y + 14}" font-size="12">{n}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def summarize(results) -> dict:
    """Counts by status and by cause, and the runs worst first (for --format json and the page)."""
    by_status = Counter(r.status for r in results)
    by_cause = Counter(c for r in results if r.status in ("failed", "warning") for c in r.causes)
    by_advisory = Counter(c for r in results for c in getattr(r, "advisories", ()))
    return {
        "runs": len(results),
        "audited": sum(not r.skipped for r in results),
        "skipped_unchanged": sum(r.skipped for r in results),
        "by_status": {s: by_status[s] for s in STATUS_ORDER if by_status[s]},
        "by_cause": dict(by_cause.most_common()),
        # set-up risks on runs that showed no harm (their status stays healthy)
        "by_advisory": dict(by_advisory.most_common()),
        # runs whose verdict is in their tags but whose nnaudit/ artifacts could not be written
        "artifacts_not_written": [r.run_id for r in results if getattr(r, "artifacts_error", None)],
    }


def worst_first(results) -> list:
    return sorted(results, key=lambda r: (STATUS_ORDER.get(r.status, 9), r.experiment_name, r.run_name, r.run_id))


#: what to type in the MLflow UI's run search box to see the failed runs
FAILED_FILTER = "tags.nnaudit.status = 'failed'"


def ui_runs_url(ui_url: str, experiment_id: str, search_filter: str = FAILED_FILTER) -> str:
    """The MLflow UI's runs list of an experiment with a search filter applied (the routes of
    MLflow 3.x's UI: `#/experiments/<id>/runs?searchFilter=...`; the bare `#/experiments/<id>`
    can open a GenAI overview instead of the runs)."""
    return (
        f"{ui_url.rstrip('/')}/#/experiments/{urllib.parse.quote(str(experiment_id), safe='')}/runs"
        f"?searchFilter={urllib.parse.quote(search_filter, safe='')}"
    )


def ui_run_url(ui_url: str, experiment_id: str, run_id: str) -> str:
    """The MLflow UI's page of one run."""
    q = urllib.parse.quote
    return f"{ui_url.rstrip('/')}/#/experiments/{q(str(experiment_id), safe='')}/runs/{q(run_id, safe='')}"


def summary_html(results, tracking_uri: str = "", max_rows: int = 2000, ui_url: str | None = None) -> str:
    """The audit's summary page: counts by status and by cause, then the runs worst first, each
    with a sparkline of its loss, its causes and its main recommendation. With `ui_url` (the
    MLflow UI's address), run names link to their pages and each experiment with failed runs
    links to its runs list filtered on them."""
    s = summarize(results)
    status_counts = [(k, v) for k, v in s["by_status"].items()]
    parts = [
        f"<h1>nnaudit: {s['runs']} runs</h1>",
        f'<div class="meta">store {_esc(tracking_uri)} · {s["audited"]} audited now, '
        f"{s['skipped_unchanged']} unchanged since their last audit"
        + (
            f" · artifacts not written for {len(s['artifacts_not_written'])} run(s) (their tags were)"
            if s["artifacts_not_written"]
            else ""
        )
        + "</div>",
    ]
    if ui_url:
        failed_in = Counter((r.experiment_id, r.experiment_name) for r in results if r.status == "failed")
        if failed_in:
            parts.append(
                "<p>Failed runs in the MLflow UI: "
                + ", ".join(
                    f'<a href="{_esc(ui_runs_url(ui_url, eid))}">{_esc(name or eid)} ({n})</a>'
                    for (eid, name), n in sorted(failed_in.items(), key=lambda kv: str(kv[0][1]))
                )
                + "</p>"
            )
    parts += ["<h2>By status</h2>", _bars(status_counts, STATUS_COLOURS)]
    if s["by_cause"]:
        parts += ["<h2>Causes of failed and warning runs</h2>", _bars(list(s["by_cause"].items())[:30])]
    rows = []
    ordered = worst_first(results)
    for r in ordered[:max_rows]:
        chips = "".join(f'<span class="chip">{_esc(c)}</span>' for c in r.causes)
        spark = svg_sparkline(getattr(r, "sparkline", None) or [], colour=STATUS_COLOURS.get(r.status, "#1565c0"))
        name = _esc(r.run_name or "-")
        if ui_url:
            name = f'<a href="{_esc(ui_run_url(ui_url, r.experiment_id, r.run_id))}">{name}</a>'
        rows.append(
            f"<tr><td>{_badge(r.status)}</td><td>{name}<div class='meta'>"
            f"{_esc(r.run_id)}</div></td><td>{_esc(r.experiment_name)}</td><td>{spark}</td>"
            f"<td>{chips}</td><td>{_code_spans(r.recommendation[:300])}</td></tr>"
        )
    parts.append(
        "<h2>Runs, worst first</h2><table><tr><th>status</th><th>run</th><th>experiment</th>"
        "<th>loss</th><th>causes</th><th>what to do</th></tr>" + "".join(rows) + "</table>"
    )
    if len(ordered) > max_rows:
        parts.append(
            f"<p class='meta'>{len(ordered) - max_rows} more runs not listed (all healthy or "
            f"inconclusive ones come last); `--format json` lists every run.</p>"
        )
    return _page("nnaudit summary", "".join(parts))


# --- the terminal ---------------------------------------------------------------------------
_BLOCKS = "▁▂▃▄▅▆▇█"
#: characters a terminal acts on instead of showing: C0 and C1 controls (newline, ESC, ...), and the
#: Unicode line separators and direction overrides that reorder or split what is shown
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: object) -> str:
    """`text` safe to print on a terminal: every control character shown as an escape (`\\x1b`,
    `\\n`, ...), so that a run named with a newline cannot forge a table row, nor an ESC sequence
    clear the screen or set the window title. Run and experiment names, metric keys and error
    messages come from whoever can log to the store."""

    def escape(m: re.Match) -> str:
        c = ord(m.group())
        return {9: "\\t", 10: "\\n", 13: "\\r"}.get(c) or (f"\\x{c:02x}" if c < 256 else f"\\u{c:04x}")

    return _CONTROL.sub(escape, str(text))


def text_sparkline(values: Sequence[float], width: int = 48) -> str:
    v = np.asarray(values, dtype=float)
    if len(v) > width:
        v = np.asarray(sparkline(Curve("", np.arange(len(v)), v), width))
    ok = np.isfinite(v)
    if not ok.any():
        return "×" * len(v)
    lo, hi = float(v[ok].min()), float(v[ok].max())
    span = hi - lo or 1.0
    return "".join(_BLOCKS[int(round((x - lo) / span * 7))] if k else "×" for x, k in zip(v, ok))


def explain_text(result, curves: dict[str, Curve]) -> str:
    """What `nnaudit explain RUN_ID` prints: the report in plain text."""
    lines = [
        f"{result.run_name or result.run_id}  [{result.status}]",
        f"run {result.run_id} · experiment {result.experiment_name}",
    ]
    if result.reason:
        lines.append(f"Not enough to judge: {result.reason}.")
    for role in ROLES:
        c = curves.get(role)
        if c is None or not len(c):
            continue
        fin = c.values[c.finite]
        rng = f"{_fmt(float(fin[0]))} → {_fmt(float(fin[-1]))}" if len(fin) else "no finite value"
        bad = "" if c.finite.all() else f"  non-finite from step {_step(float(c.x()[np.argmax(~c.finite)]))}"
        lines.append(f"  {role:<10} {text_sparkline(sparkline(c, 48))}  {c.key}: {rng} ({len(c)} points){bad}")
    if result.harm is not None:
        lines.append(f"Outcome: {result.harm.summary}.")
    # a blank line is its own entry: every entry is made printable, which escapes a newline
    if not result.findings:
        lines += [] if result.reason else ["", "Nothing wrong was found."]
    elif not result.causes:
        lines += ["", "Nothing harmed the run; advisories (set-up risks worth a look):"]
    for i, f in enumerate(result.findings, 1):
        what = "advisory" if f.advisory else f.severity
        lines += [
            "",
            f"{i}. {f.title} ({f.cause}, {f.confidence} confidence, {what})",
            f"   Seen: {f.summary}",
            f"   Fix:  {f.advice.replace('`', '')}",
        ]
        for e in f.evidence:
            d = e.to_dict()
            values = _values_text(d["values"])
            where = "" if d["steps"] is None else f" steps {_step(float(d['steps'][0]))}-{_step(float(d['steps'][1]))}"
            lines.append(f"   - {d['test']}{' on ' + d['curve'] if d['curve'] else ''}{where}: {values}")
    if result.notes:
        lines += ["", "Notes: " + "; ".join(result.notes)]
    return "\n".join(printable(line) for line in lines)  # each is one line: names cannot add any
