"""Drift monitoring: input features, embeddings and per-scenario scores against a reference.

    qanchor drift --reference data/built-train --current data/built-latest --out runs/drift/today \
        [--model runs/model] [--smtp env]

Modules:
    config     ``DriftConfig``: thresholds, sample sizes, presets (tiny | small | paper)
    features   input-feature frames from built datasets (aggregates + profile) and their drift
    embeddings embeddings and per-scenario scores of a user sample, and their drift
    reports    running Evidently reports, reading their results, HTML, the Evidently workspace
    job        one drift run: reports, ``summary.json``, the index page, the workspace
    message    the alert e-mail (subject, HTML and text) and the index page, from a summary
    alert      SMTP settings, sending, and de-duplication of an ongoing drift

Evidently, torch and the model are imported inside functions, so an Airflow DAG can import this
package at parse time for free.
"""
