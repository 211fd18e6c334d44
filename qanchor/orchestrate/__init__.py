"""Orchestration glue: the stages that Kubeflow components and Airflow tasks call.

``chain`` declares the stages in order; ``stages`` holds one function per stage (inputs and
outputs are paths under the run directory of ``rundir``, results are small JSON-able dicts);
``outcome`` reports what a run decided; ``gate`` decides whether a candidate may replace the serving model; ``notice``
writes the rejection e-mail; ``console`` condenses a run's log for the person watching it. The
shells that call these live outside the library: ``components/runner.py`` runs a component
locally or on a Kubeflow Pipelines endpoint, ``dags/local.py`` runs the DAGs embedded
(``make run``, ``make airflow``), ``services/launch.py`` starts the BentoML service.
"""
