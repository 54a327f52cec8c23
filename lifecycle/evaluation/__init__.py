"""Evaluation: pure metric computation, the evaluation job program, and its services."""
