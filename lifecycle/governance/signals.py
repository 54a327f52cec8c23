"""Signals governance sends to the stages above it, which it never imports."""

from django.dispatch import Signal

# Sent when a transition is blocked by a gate that needs a fresh evaluation, with
# ``version`` and ``actor`` (the requester). A receiver that starts an evaluation
# returns its Job; the evaluation stage connects one when the app starts.
evaluation_wanted = Signal()

# Sent inside the transaction that puts a version into production (a promotion or a
# rollback), with ``model``, ``version``, ``actor`` and ``reason``: a receiver's writes
# commit or roll back with the stage change itself.
production_changed = Signal()

# Sent while the gates of a transition are read, with ``version``: a receiver returns
# when the version's canary started serving live traffic (or None), which the
# ``canary_soak`` rule measures.
canary_start_wanted = Signal()

# Sent when a retraining schedule or a monitoring alert asks for an update by a derivation
# method instead of a full retrain, with ``model``, ``method`` (onnx, quantize, prune,
# distill, incremental), ``params``, ``actor`` and ``reason``. The update stage's receiver
# derives from the production version and returns the Job (or None when it cannot start;
# with ``strict=True`` it raises the refusal instead, for a caller that records it).
derivation_wanted = Signal()
