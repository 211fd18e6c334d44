"""qanchor: scenario-adaptive user embeddings after "Query as Anchor" (Q-Anchor).

The package is the whole library; Airflow DAGs, KFP components, the BentoML service and the drift
jobs are thin shells over it. Importing it is cheap: heavy dependencies load inside functions.
"""

__version__ = "0.1.0"
