"""The e-mail sent when the quality gate rejects a candidate: what was compared, the numbers,
and what an operator can do next.

    subject, html, text = rejection_message(summary)   # summary: outcome.summarize(run)
"""

from __future__ import annotations

from typing import Any

TEXT = """\
The candidate of run {{ s.run }} was NOT promoted: the served model stays.

{{ g.reason }}

Compared on the candidate's test users, {{ g.scenarios | length }} scenario(s):
{% for name, p in g.per_scenario.items() %}  {{ name }}: candidate {{ "%.4f" | format(p.candidate) }}, served {{ "%.4f" | format(p.serving) }}
{% endfor %}{% if g.interval %}Mean difference {{ "%+.4f" | format(g.interval.diff) }}, 95% interval [{{ "%+.4f" | format(g.interval.low) }}, {{ "%+.4f" | format(g.interval.high) }}] (paired bootstrap over test users).
{% endif %}{% if g.serving_recorded_auc is not none %}The served model's own evaluation (its older build) recorded mean AUC {{ "%.4f" | format(g.serving_recorded_auc) }}: not used for the decision.
{% endif %}{% if b %}Against its best baseline ({{ b.baseline }}): {{ "%+.4f" | format(b.margin) }} mean AUC.
{% endif %}
Served model: {{ g.serving_tag }}
Metrics: {{ metrics }}
Report:  {{ report }}
Runs in Airflow: {{ airflow }}

Next: nothing is required; the served model keeps serving. To promote this candidate anyway,
register it and promote its tag (qanchor.registry.register / promote); to accept smaller drops,
trigger qanchor_retrain with a larger `tolerance`.
"""

HTML = """\
<p><b>The candidate of run <code>{{ s.run }}</code> was not promoted</b>: the served model
<code>{{ g.serving_tag }}</code> stays.</p>
<p>{{ g.reason }}</p>
<table border="1" cellpadding="4" cellspacing="0">
<tr><th>scenario</th><th>candidate AUC</th><th>served AUC</th></tr>
{% for name, p in g.per_scenario.items() %}<tr><td>{{ name }}</td><td>{{ "%.4f" | format(p.candidate) }}</td><td>{{ "%.4f" | format(p.serving) }}</td></tr>
{% endfor %}</table>
{% if b %}<p>Against its best baseline (<code>{{ b.baseline }}</code>): {{ "%+.4f" | format(b.margin) }} mean AUC.</p>{% endif %}
<p>Metrics: <a href="{{ metrics }}">{{ metrics }}</a><br>Report: <a href="{{ report }}">{{ report }}</a><br>
Runs in Airflow: <a href="{{ airflow }}">{{ airflow }}</a></p>
<p>Next: nothing is required. To promote this candidate anyway, register and promote its tag;
to accept smaller drops, trigger <code>qanchor_retrain</code> with a larger <code>tolerance</code>.</p>
"""


def rejection_message(summary: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, html, text) of the rejection e-mail for a run summary whose gate rejected."""
    from pathlib import Path

    from jinja2 import Environment

    from qanchor.monitoring.links import LinkSettings

    g = summary["gate"]
    # A mail client follows only absolute links: file URIs where the run directory is mounted.
    files = {k: Path(summary[k]).resolve().as_uri() if summary.get(k) else "-" for k in ("metrics", "report")}  # fmt: skip
    ctx = {"s": summary, "g": g, "b": g.get("versus_baseline"), **files,
           "airflow": LinkSettings().airflow_dag("qanchor_retrain")}  # fmt: skip
    text = Environment(autoescape=False, trim_blocks=False).from_string(TEXT).render(**ctx)
    html = Environment(autoescape=True).from_string(HTML).render(**ctx)
    subject = f"qanchor: candidate rejected by the quality gate ({summary['run']})"
    return subject, html, text
