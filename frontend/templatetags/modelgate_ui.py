"""Small renderers shared by the UI's templates: timestamps, stage badges, gate icons,
numbers, digests, durations, sizes and pagination links."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from django import template
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince

from registry.choices import Stage

register = template.Library()

_STAGE_LABELS = dict(Stage.choices)
_GATE_ICONS = {"passed": ("✓", "passed"), "failed": ("✗", "failed"), "waiting": ("…", "waiting")}


@register.filter
def timestamp(value: datetime | None) -> SafeString | str:
    """``<time>`` in UTC; ``app.js`` rewrites the text in the viewer's local time and
    keeps UTC in the title, shown on hover."""
    if value is None:
        return "—"
    utc = value.astimezone(UTC) if timezone.is_aware(value) else value.replace(tzinfo=UTC)
    text = utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    return format_html('<time datetime="{}" title="{}">{}</time>', utc.isoformat(), text, text)


@register.filter
def age(value: datetime | None) -> str:
    """How long ago, in words: "just now", "3 hours, 2 minutes ago"."""
    if value is None:
        return "—"
    if (timezone.now() - value).total_seconds() < 60:
        return "just now"
    return f"{timesince(value)} ago"


@register.filter
def stage_badge(stage: str | None) -> SafeString | str:
    if not stage:
        return "—"
    return format_html('<span class="badge stage-{}">{}</span>', stage, _STAGE_LABELS.get(stage, stage))


@register.filter
def status_badge(status: str | None) -> SafeString | str:
    if not status:
        return "—"
    return format_html('<span class="badge status-{}">{}</span>', status, status.replace("_", " "))


@register.filter
def gate_icon(status: str) -> SafeString:
    icon, label = _GATE_ICONS.get(status, ("?", status))
    return format_html(
        '<span class="gate-icon gate-{}" aria-label="{}" title="{}">{}</span>', status, label, label, icon
    )


@register.filter
def rule_label(rule: str) -> str:
    """``beats_champion`` → ``Beats champion``."""
    return rule.replace("_", " ").capitalize() if rule else ""


@register.filter
def metric(value: float | None) -> str:
    """A metric value with enough digits to tell close values apart."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.6g}"


@register.filter
def signed(value: float | None) -> str:
    if value is None:
        return "—"
    return ("+" if value > 0 else "") + f"{value:.4g}"


@register.filter
def short_digest(value: str | None) -> SafeString | str:
    if not value:
        return "—"
    return format_html('<code title="{}">{}…</code>', value, value[:12]) if len(value) > 12 else value


@register.filter
def compact_json(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True, ensure_ascii=False)


@register.filter
def mlflow_run_url(run_id: str) -> str:
    """The run's page in MLflow's UI, or "" when no UI address is configured."""
    base = (settings.MLFLOW_UI_URL or "").rstrip("/")
    return f"{base}/#/runs/{run_id}" if base and run_id else ""


@register.filter
def get_item(mapping: Any, key: str) -> Any:
    """``mapping[key]``, or ``None`` when it is not a mapping or has no such key."""
    return mapping.get(key) if isinstance(mapping, dict) else None


@register.filter
def pretty_json(value: Any) -> str:
    """Indented JSON for a ``<pre>`` (specs, results)."""
    return json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True, ensure_ascii=False, indent=2)


@register.filter
def job_seconds(job: Any) -> float | None:
    """How long the job has run: start to finish, or to now while it runs; ``None``
    before it starts."""
    if job.started_at is None:
        return None
    end = job.finished_at or timezone.now()
    return max((end - job.started_at).total_seconds(), 0.0)


@register.filter
def duration(seconds: float | None) -> str:
    """``42s``, ``3m 05s``, ``2h 10m``, ``3d 4h``."""
    if seconds is None:
        return "—"
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


@register.filter
def mebibytes(value: int | None) -> str:
    """A size given in MiB, in the unit people read: ``512 MiB``, ``62.5 GiB``."""
    if value is None:
        return "—"
    if value < 1024:
        return f"{value} MiB"
    return f"{value / 1024:.3g} GiB" if value < 1024 * 1000 else f"{value / 1024 / 1024:.3g} TiB"


@register.filter
def cost(value: float | None) -> str:
    """A cost in the workers' price unit (``--cost-per-hour``), to the cent or three
    significant digits below a cent."""
    if value is None:
        return "—"
    return f"{value:.2f}" if abs(value) >= 0.01 or value == 0 else f"{value:.3g}"


@register.filter
def percent(value: float | None) -> str:
    """A fraction as a whole percentage, rounded down: ``0.425`` → ``42%``."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{math.floor(max(value, 0.0) * 100 + 1e-9)}%"


@register.filter
def weight_percent(value: float | None) -> str:
    """A route's share of live traffic as a percentage, to a tenth where it is not
    whole: ``0.8`` → ``80%``, ``0.125`` → ``12.5%``."""
    if value is None or not math.isfinite(value):
        return "—"
    text = f"{value * 100:.1f}".removesuffix(".0")
    return f"{text}%"


@register.filter
def route_snapshot(snapshot: Any) -> str:
    """A deployment's routes as a revision records them, in words:
    ``v1 primary 80% · v2 canary 20% · v3 shadow``; "—" before the first."""
    if not isinstance(snapshot, dict):
        return "—"
    order = {"primary": 0, "canary": 1, "shadow": 2}
    routes = sorted(snapshot.get("routes") or [], key=lambda route: order.get(route.get("mode"), 3))
    parts = []
    for route in routes:
        text = f"v{route.get('version')} {route.get('mode')}"
        if route.get("mode") != "shadow":
            text += f" {weight_percent(route.get('weight'))}"
        parts.append(text)
    return " · ".join(parts) or "no routes"


@register.simple_tag(takes_context=True)
def page_url(context: template.Context, param: str, number: int) -> str:
    """The current URL's query string with one page parameter changed."""
    query = context["request"].GET.copy()
    query[param] = str(number)
    return "?" + query.urlencode()
