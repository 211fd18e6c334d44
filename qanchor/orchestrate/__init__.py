"""Orchestration glue: the stages that Kubeflow components and Airflow tasks call.

``stages`` holds one function per pipeline stage (inputs and outputs are paths, results are small
JSON-able dicts); ``gate`` decides whether a candidate may replace the serving model;
``kfp_runner`` runs a component locally or on a Kubeflow Pipelines endpoint; ``airflow_local``
runs the DAGs embedded (``make run``, ``make airflow``). Heavy and orchestrator libraries are
imported inside functions only.
"""
