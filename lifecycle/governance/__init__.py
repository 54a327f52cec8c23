"""Governance: promotion policies and their gates, transitions, approvals, rollback, audit, outbox and webhooks."""
