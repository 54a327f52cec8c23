"""The data plane of the deployment stage: the serving gateway.

An ASGI app (``serving.app``) that authenticates ``serve``-scoped tokens, routes each
scoring call by the route table the control plane publishes (``lifecycle.deployments.
routing``), forwards it to a replica (MLflow's scoring server), mirrors it to shadows and
hands it to the prediction hook. It reads the database only in the background (the
route table, token checks it then caches), so predictions go on while it is down.
"""
