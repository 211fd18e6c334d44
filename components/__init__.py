"""Kubeflow Pipelines v2 components of qanchor (one per stage) and the pipeline that chains them.

``components.stages`` defines the components, ``components.pipeline`` the pipeline; compile it
with ``make compile`` (writes ``components/qanchor_pipeline.yaml``).
"""
