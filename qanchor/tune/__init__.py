"""Scenario adaptation: cluster-based soft prompt tuning (backbone and encoder frozen).

Modules:
    adapters   a scenario's small artifact (soft prompt + class prototypes), saved beside the model
    prompt     ``qanchor tune``: learn prompts and prototypes per scenario or per scenario cluster
    clusters   group scenarios by the similarity of their queries
"""
