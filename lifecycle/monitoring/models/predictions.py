"""The prediction log keeps no table of its own: predictions and ground-truth labels are
Parquet batches on the artifact store (``lifecycle.monitoring.prediction_log``), so the
gateway writes them while the database is down and millions of rows cost no database
space. What the database holds for it is each deployment's sample rate
(``Deployment.log_sample_rate``) and the model's ``"pii"`` policy, both published to the
gateway in the route table."""
