"""Evaluation: linear probes, AUC/KS, baselines, metrics.json and the report.

Modules:
    metrics        ``auc_ks``: ROC AUC and KS (max TPR - FPR) from scikit-learn;
                   ``paired_bootstrap``: interval of a mean-AUC difference over test users
    probe          ``linear_probe`` / ``probe_scenarios``: one logistic regression per scenario,
                   trained on train+val users, scored on test users
    bag_baselines  ``tfidf_lr``: logistic regression on the whole-history TF-IDF bag
    baselines      ``gbdt_features`` (LightGBM on aggregates + profile) and
                   ``text_mean_pool_features`` / ``text_mean_pool_recent_features`` (mean of
                   cached event-encoder vectors: whole history / capped recent events)
    llm_baseline   ``llm_untrained``: the backbone reading events as text with the query
    verdict        ``verdict``: the line that opens report.md (winner, margin, interval, preset)
    report         ``write_metrics`` (metrics.json, DESIGN.md section 4; eval_details.json) and
                   ``write_report`` (report.md)
    charts         the report's PNG charts: AUC/KS bars and ROC curves
    evaluate       ``qanchor evaluate``: all of the above for a model
"""
