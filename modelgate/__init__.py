"""ModelGate's command line and the small Python client it is built on.

The client speaks the REST API v1 over HTTP and imports nothing of the service, so CI
jobs and scripts can use it with ``requests`` alone::

    from modelgate import Client

    client = Client("https://modelgate.example.com", token)
    version = client.register_version("fraud-detector", run_id=run_id)
    transition = client.request_transition("fraud-detector", version["version"], to="staging")
    transition = client.wait_transition(transition["id"], timeout=600)
"""

from modelgate.client import (
    ApiError,
    Client,
    ConnectionFailed,
    ModelGateError,
    WaitTimeout,
)

__all__ = ["ApiError", "Client", "ConnectionFailed", "ModelGateError", "WaitTimeout"]
__version__ = "0.1.0"
