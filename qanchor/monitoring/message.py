"""The words of a drift run: the subject line and the index page (``report.html``).

Rendered from ``summary.json`` alone. The index page lists every item and links the reports
beside it relatively; the alert e-mail (``qanchor.monitoring.mail``) lists only what drifted,
with absolute links.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

_STYLE = (
    "body{font-family:Arial,Helvetica,sans-serif;color:#222;max-width:860px}"
    "table{border-collapse:collapse;margin:6px 0 14px}"
    "th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}"
    "th{background:#f2f2f2}.drift{color:#b00020;font-weight:bold}.ok{color:#1b5e20}"
    "code{background:#f6f6f6;padding:0 3px}"
)


def subject(summary: dict[str, Any]) -> str:
    """E-mail subject naming how many features, embeddings and scenario scores drifted."""
    kinds = _counts(summary)
    parts = [f"{n} {label}" for label, n in kinds.items() if n]
    when = (summary["current"].get("snapshot_ts") or "")[:10]
    what = ", ".join(parts) if parts else "no drift"
    return f"[qanchor] drift detected: {what}" + (f" (snapshot {when})" if when else "")


def _counts(summary: dict[str, Any]) -> dict[str, int]:
    items = summary["drifted_items"]
    return {
        "input features": sum(i.startswith("feature:") for i in items),
        "embeddings": sum(i.startswith("embedding:") for i in items),
        "scenario scores": sum(i.startswith("score:") for i in items),
    }


def render_html(summary: dict[str, Any], title: str | None = None) -> str:
    """A self-contained HTML page describing a drift run (its ``report.html``)."""
    head = escape(title or subject(summary))
    log = summary["thresholds"].get("log_values", False)
    body = [
        f"<h2>{head}</h2>",
        _overview(summary),
        _features(summary["features"], log),
    ]
    if summary.get("embeddings"):
        body.append(_embeddings(summary["embeddings"]))
    if summary.get("scores") and summary["scores"].get("scenarios"):
        body.append(_scores(summary["scores"]))
    body.append(_where(summary))
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{head}</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>\n"
    )


def _overview(s: dict[str, Any]) -> str:
    verdict = (
        f"<p class='drift'>Drift detected in {len(s['drifted_items'])} item(s).</p>"
        if s["drift_detected"]
        else "<p class='ok'>No drift detected.</p>"
    )
    rows = [("reference", s["reference"]), ("current", s["current"])]
    table = "".join(
        f"<tr><th>{k}</th><td><code>{escape(v['path'])}</code></td>"
        f"<td>snapshot {escape(str(v.get('snapshot_ts')))}</td><td>{v.get('users')} users</td></tr>"
        for k, v in rows
    )
    # Named by its identity (the registry version), then where it was read from.
    tag = f"<code>qanchor:{escape(s['model_version'])}</code>, " if s.get("model_version") else ""
    model = (
        f"<p>Model: {tag}directory <code>{escape(s['model'])}</code></p>" if s.get("model") else ""
    )
    return f"{verdict}<table>{table}</table>{model}"


def _features(f: dict[str, Any], log: bool) -> str:
    state = "drifted" if f["drifted"] else "not drifted"
    head = (f"<h3>Input features: {state}</h3><p>{f['drifted_count']} of {f['columns_total']} columns "
            f"drifted: share {f['drift_share']:.2f}; the input counts as drifted from a share of "
            f"{f['threshold_share']:.2f}. Rows compared: {f['rows']['reference']} reference, "
            f"{f['rows']['current']} current.{_LOG_NOTE if log else ''}</p>")  # fmt: skip
    cols = sorted(f["columns"].items(), key=lambda kv: (not kv[1]["drifted"], kv[0]))
    rows = [
        (name, v["drifted"], v["method"], v["score"], v["threshold"], _moved(v)) for name, v in cols
    ]
    skipped = (
        f"<p>Not compared: {escape(', '.join(f'{k} ({v})' for k, v in f['skipped'].items()))}</p>"
        if f.get("skipped")
        else ""
    )
    return (
        head
        + _table(["column", "drifted", "method", "score", "threshold", "reference → current"], rows)
        + skipped
    )


def _embeddings(e: dict[str, Any]) -> str:
    state = "drifted" if e["drifted"] else "not drifted"
    per = list(e["scenarios"].items())
    rows = [(k, v["drifted"], v["method"] + (" (bootstrap)" if v.get("bootstrap") else ""),
             v["score"], v["threshold"], "") for k, v in per]  # fmt: skip
    boot = any(v.get("bootstrap") for v in e["scenarios"].values())
    head = (f"<h3>Embeddings: {state}</h3><p>Per scenario, a sample of {e['rows']['reference']} "
            f"reference and {e['rows']['current']} current users; statistic: {_method_text(e)}"
            + ("; drift = above the 95th percentile of its bootstrap null" if boot else "")
            + ".</p>")  # fmt: skip
    header = ["scenario", "drifted", "method", "statistic", "threshold", ""]
    return head + (_table(header, rows) if per else _none(e["scenarios"]))


def _scores(sc: dict[str, Any]) -> str:
    state = "drifted" if sc["drifted"] else "not drifted"
    per = list(sc["scenarios"].items())
    rows = [
        (k, v["drifted"], v["method"], v["score"], v["threshold"], _moved(v, pct=False))
        for k, v in per
    ]
    head = (f"<h3>Scenario scores: {state}</h3><p>Score = cos(u, positive prototype) − "
            "cos(u, negative prototype) of the tuned scenario; its distribution is compared, "
            "its mean shown.</p>")  # fmt: skip
    header = ["scenario", "drifted", "method", "score", "threshold", "reference → current"]
    return head + (_table(header, rows) if per else _none(sc["scenarios"]))


# The thresholds apply to log1p of non-negative numbers (DriftConfig.log_values).
_LOG_NOTE = " Non-negative numeric columns are compared as log(1 + x); means are in raw units."
_EMBEDDING_STATISTICS = {
    "model": "ROC AUC of a classifier telling the two samples apart",
    "distance": "distance between the samples' mean embeddings",
    "mmd": "maximum mean discrepancy of the samples",
    "ratio": "share of embedding dimensions that drifted",
}


def _method_text(e: dict[str, Any]) -> str:
    methods = {v["method"] for v in e["scenarios"].values()}
    return "; ".join(_EMBEDDING_STATISTICS.get(m, m) for m in sorted(methods))


def _none(items: dict[str, Any]) -> str:
    return f"<p>None of the {len(items)} scenarios drifted.</p>"


def _where(s: dict[str, Any]) -> str:
    # The page sits beside the reports it links, so relative links work wherever it is opened.
    links = [
        f"<li>{escape(name)}: <a href='{escape(Path(path).name)}'><code>{escape(path)}</code></a></li>"
        for name, path in s["reports"].items()
        if name != "index"
    ]
    ws = s.get("workspace")
    if ws:
        links.append(f"<li>Evidently UI: project <b>{escape(ws['project'])}</b> in workspace "
                     f"<code>{escape(ws['path'])}</code> (<code>make monitor-ui</code>)</li>")  # fmt: skip
    links.append(
        f"<li>machine-readable: <code>{escape(str(Path(s['reports']['index']).with_name('summary.json')))}</code></li>"
    )
    return "<h3>Reports</h3><ul>" + "".join(links) + "</ul>"


def _moved(v: dict[str, Any], pct: bool = True) -> str:
    if "reference_mean" in v:
        # A relative change says nothing for a score whose mean sits near zero.
        return (
            f"mean {_fmt(v['reference_mean'])} → {_fmt(v['current_mean'])}{_pct(v) if pct else ''}"
        )
    if "category" in v:
        return f"'{v['category']}': {v['reference_share']:.0%} → {v['current_share']:.0%}"
    return ""


def _pct(v: dict[str, Any]) -> str:
    a, b = v.get("reference_mean"), v.get("current_mean")
    if a is None or b is None or abs(a) < 1e-12:
        return ""
    return f" ({(b - a) / abs(a):+.0%})"


def _fmt(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.3g}" if abs(x) < 1e3 else f"{x:,.0f}"
    return str(x)


def _table(header: list[str], rows: list[tuple]) -> str:
    if not rows:
        return "<p>(none)</p>"
    th = "".join(f"<th>{escape(h)}</th>" for h in header if h)
    body = []
    for row in rows:
        name, drifted, *rest = row
        flag = "<span class='drift'>yes</span>" if drifted else "<span class='ok'>no</span>"
        cells = [escape(str(name)), flag] + [escape(_fmt(c)) for c in rest[:-1]]
        if header[-1]:
            cells.append(escape(str(rest[-1])))
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{th}</tr>{''.join(body)}</table>"
