"""Backup, restore and verification of a whole installation: the database, the
artifacts of every version and MLflow's registry (``manage.py backup``, ``restore``,
``verify``; docs/operations.md)."""
