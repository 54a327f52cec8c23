"""Signals sent by registry services inside their transaction.

The lifecycle app subscribes to write audit records and outbox events in the same
transaction as the change, without the registry importing the lifecycle app.
"""

from django.dispatch import Signal

# Sent with: action (str), actor (User | None), target (model instance),
# before (dict | None), after (dict | None), reason (str).
registry_changed = Signal()
