"""Who may scrape ``/metrics`` (the API's and the gateway's). Pure (no Django).

With ``MODELGATE_METRICS_TOKEN`` set, a scrape must send ``Authorization: Bearer <token>``
(Prometheus: ``authorization: {credentials: …}`` or ``bearer_token_file``); without it,
``/metrics`` answers anyone who reaches it, as most exporters do."""

from __future__ import annotations

import hmac

UNAUTHORIZED = {
    "error": {
        "code": "not_authenticated",
        "message": "this /metrics needs 'Authorization: Bearer <MODELGATE_METRICS_TOKEN>'",
        "details": {},
    }
}


def scrape_allowed(authorization: str | None, token: str) -> bool:
    """Whether a scrape with this ``Authorization`` header may read the metrics."""
    if not token:
        return True
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode(), token.encode())
