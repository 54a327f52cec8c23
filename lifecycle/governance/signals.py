"""Signals governance sends to the stages above it, which it never imports."""

from django.dispatch import Signal

# Sent when a transition is blocked by a gate that needs a fresh evaluation, with
# ``version`` and ``actor`` (the requester). A receiver that starts an evaluation
# returns its Job; the evaluation stage connects one when the app starts.
evaluation_wanted = Signal()
