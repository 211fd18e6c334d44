"""The drift alert e-mail: what drifted, which model, where to look and what to do next.

    subject, html, text = alert_message(summary, LinkSettings(), retrain=False,
                                        state_path="runs/drift/alert_state.json")

Rendered with jinja2 from ``summary.json`` alone (an alert can be re-sent or previewed without
recomputing anything). Every link is absolute (``LinkSettings``), because a mail client cannot
follow a relative path; the e-mail lists only what drifted (``report.html`` lists every item).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qanchor.monitoring.links import LinkSettings
from qanchor.monitoring.message import _LOG_NOTE, _STYLE, _fmt, _method_text, _moved, subject

HTML = """\
<!DOCTYPE html><html><head><meta charset="utf-8"><title>{{ title }}</title>
<style>{{ style }}</style></head><body>
<h2>{{ title }}</h2>
<p class="drift">Drift detected in {{ items | length }} item(s).</p>
<p>Model: {% if model %}<b><code>{{ model.tag }}</code></b> (model_id {{ model.id }}, the registry version; directory <code>{{ model.path }}</code>){% else %}none given: input features only{% endif %}</p>
<table>{% for side in sides %}<tr><th>{{ side.name }}</th><td><code>{{ side.path }}</code></td><td>snapshot {{ side.snapshot }}</td><td>{{ side.users }} users</td></tr>{% endfor %}</table>
<h3>What to do next</h3>
<ol>
<li>Look: <a href="{{ links.index }}">the drift report</a>{% if links.project %} and <a href="{{ links.project }}">the Evidently project <b>{{ project }}</b></a> (the drift share of every run over time){% endif %}.</li>
<li>{{ next.retrain }}</li>
<li>To retrain: {{ next.trigger }} <a href="{{ links.retrain }}">{{ links.retrain }}</a>
(<b>Trigger</b>), or <code>airflow dags trigger qanchor_retrain</code>. The quality gate promotes the new model only if it is not worse than <code>{{ model.tag if model else "the served model" }}</code>.</li>
<li>To silence: {{ next.silence }} To stop the daily check, pause <a href="{{ links.drift_dag }}">qanchor_drift</a>.</li>
</ol>
{% for part in parts %}<h3>{{ part.title }}</h3><p>{{ part.intro }}</p>
{% if part.rows %}<table><tr>{% for h in part.header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in part.rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</table>{% else %}<p>(none)</p>{% endif %}
{% endfor %}<h3>Links</h3>
<ul>{% for name, url in links.reports %}<li>{{ name }}: <a href="{{ url }}">{{ url }}</a></li>{% endfor %}
{% if links.project %}<li>Evidently project {{ project }}: <a href="{{ links.project }}">{{ links.project }}</a></li>
{% for name, url in links.runs %}<li>Evidently run {{ name }}: <a href="{{ url }}">{{ url }}</a></li>{% endfor %}{% endif %}
<li>machine-readable: <code>{{ summary_path }}</code></li></ul>
</body></html>
"""

TEXT = """\
{{ title }}

Model: {{ model.tag ~ " (directory " ~ model.path ~ ")" if model else "none given: input features only" }}
{% for side in sides %}{{ "%-9s" | format(side.name ~ ":") }} {{ side.path }} (snapshot {{ side.snapshot }}, {{ side.users }} users)
{% endfor %}
Drifted ({{ items | length }}):
{% for line in lines %}  {{ line }}
{% endfor %}
What to do next:
1. Look: {{ links.index }}{% if links.project %}
   Evidently project {{ project }}: {{ links.project }}{% endif %}
2. {{ next.retrain }}
3. To retrain: {{ next.trigger }} {{ links.retrain }} (Trigger),
   or `airflow dags trigger qanchor_retrain`.
4. To silence: {{ next.silence }} To stop the daily check, pause qanchor_drift: {{ links.drift_dag }}
"""

RETRAIN = {
    True: "Retraining was triggered: this qanchor_drift run starts qanchor_retrain now "
    "(its trigger_retrain param is on); watch it in Airflow.",
    False: "No retraining was triggered (the trigger_retrain param of qanchor_drift is off).",
    None: "No retraining was triggered: this alert comes from `qanchor drift`, which never retrains.",
}


def alert_message(
    summary: dict[str, Any],
    links: LinkSettings | None = None,
    retrain: bool | None = None,
    state_path: str | Path | None = None,
) -> tuple[str, str, str]:
    """(subject, html, text) of the alert e-mail of a drift run.

    Args:
        summary: The run's ``summary.json``.
        links: Base URLs of the links (default: from the environment).
        retrain: Whether the run triggers ``qanchor_retrain`` (None: not run by Airflow).
        state_path: The alert state file whose cool-down keeps this drift from being re-sent.
    """
    from jinja2 import Environment, StrictUndefined

    ctx = _context(summary, links or LinkSettings(), retrain, state_path)
    html = Environment(autoescape=True, undefined=StrictUndefined).from_string(HTML).render(**ctx)
    text = Environment(autoescape=False, undefined=StrictUndefined).from_string(TEXT).render(**ctx)
    return ctx["title"], html, text


def _context(
    s: dict[str, Any], links: LinkSettings, retrain: bool | None, state_path: str | Path | None
) -> dict[str, Any]:
    ws = s.get("workspace") or {}
    hours = s["thresholds"]["cooldown_hours"]
    state = f" ({state_path})" if state_path else ""
    project = ws.get("project_id")
    return {
        "title": subject(s),
        "style": _STYLE,
        "items": s["drifted_items"],
        "model": _model(s),
        "sides": [
            {
                "name": k,
                "path": s[k]["path"],
                "snapshot": s[k].get("snapshot_ts"),
                "users": s[k].get("users"),
            }
            for k in ("reference", "current")
        ],  # fmt: skip
        "parts": _parts(s),
        "lines": [_line(s, item) for item in s["drifted_items"]],
        "project": ws.get("project"),
        "summary_path": str(Path(s["reports"]["index"]).with_name("summary.json")),
        "links": {
            "index": links.report(s["reports"]["index"]),
            "reports": [(name, links.report(p)) for name, p in s["reports"].items()],
            "project": links.evidently_project(project) if project else None,
            "runs": [(n, links.evidently_run(project, r)) for n, r in ws.get("runs", {}).items()],
            "retrain": links.airflow_dag("qanchor_retrain"),
            "drift_dag": links.airflow_dag("qanchor_drift"),
        },
        "next": {
            "retrain": RETRAIN[retrain],
            "trigger": "open qanchor_retrain in Airflow",
            "silence": f"this drift is not e-mailed again for {hours:g} h unless what drifted "
            f"changes{state}. For longer, raise cooldown_hours in monitoring/drift.yaml; to stop "
            "watching a column, add it to exclude_columns there.",
        },
    }


def _model(s: dict[str, Any]) -> dict[str, str] | None:
    """The model by its identity, the registry version ``qanchor:<model_id>``."""
    if not s.get("model"):
        return None
    version = s.get("model_version")
    tag = f"qanchor:{version}" if version else "(no model_id recorded)"
    return {"tag": tag, "id": version or "–", "path": s["model"]}


def _parts(s: dict[str, Any]) -> list[dict[str, Any]]:
    f = s["features"]
    parts = [{
        "title": f"Input features: {'drifted' if f['drifted'] else 'not drifted'}",
        "intro": f"{f['drifted_count']} of {f['columns_total']} columns drifted (share "
                 f"{f['drift_share']:.2f}; the input counts as drifted from {f['threshold_share']:.2f}). "
                 f"Rows compared: {f['rows']['reference']} reference, {f['rows']['current']} current."
                 + (_LOG_NOTE if s["thresholds"].get("log_values") else ""),
        "header": ["column", "method", "score", "threshold", "reference → current"],
        "rows": [(c, v["method"], _fmt(v["score"]), _fmt(v["threshold"]), _moved(v))
                 for c, v in sorted(f["columns"].items()) if v["drifted"]],
    }]  # fmt: skip
    if s.get("embeddings"):
        e = s["embeddings"]
        parts.append({
            "title": f"Embeddings: {'drifted' if e['drifted'] else 'not drifted'}",
            "intro": f"Per scenario, {e['rows']['reference']} reference and {e['rows']['current']} "
                     f"current users; statistic: {_method_text(e)}.",
            "header": ["scenario", "method", "statistic", "threshold"],
            "rows": [(k, v["method"] + (" (bootstrap)" if v.get("bootstrap") else ""),
                      _fmt(v["score"]), _fmt(v["threshold"]))
                     for k, v in e["scenarios"].items() if v["drifted"]],
        })  # fmt: skip
    if s.get("scores") and s["scores"].get("scenarios"):
        sc = s["scores"]
        parts.append({
            "title": f"Scenario scores: {'drifted' if sc['drifted'] else 'not drifted'}",
            "intro": "Score = cos(u, positive prototype) − cos(u, negative prototype).",
            "header": ["scenario", "method", "score", "threshold", "reference → current"],
            "rows": [(k, v["method"], _fmt(v["score"]), _fmt(v["threshold"]), _moved(v, pct=False))
                     for k, v in sc["scenarios"].items() if v["drifted"]],
        })  # fmt: skip
    return parts


def _line(s: dict[str, Any], item: str) -> str:
    kind, name = item.split(":", 1)
    v = (s["features"]["columns"] if kind == "feature" else s[kind + "s"]["scenarios"])[name]
    bar = (
        "above its bootstrap null"
        if v.get("bootstrap")
        else f"threshold {_fmt(v.get('threshold'))}"
    )
    return f"{item}: {v.get('method')} {_fmt(v['score'])} ({bar})"
