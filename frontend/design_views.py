"""The web UI of the design stage: the model card's edit page, completing design, and
the card's Markdown export (for the model and for one version).

What a user sees comes from ``lifecycle.design.selectors``; what they do goes through
the services the REST API calls (``design_card_update``, ``model_design_complete``),
which check the role again. A refused edit (a stale revision, a malformed field) shows
the page again with what was typed and the reason, so nothing typed is lost.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from frontend.design_cards import card_from_form, form_from_card
from frontend.forms import DesignCardForm, DesignCompleteForm, form_data
from frontend.views import page_view
from lifecycle.design import selectors as design_selectors
from lifecycle.design import services as design_services
from registry import selectors as registry_selectors
from registry.choices import Role
from registry.errors import Conflict, InvalidInput
from registry.permissions import require_role


def _markdown(text: str, filename: str) -> HttpResponse:
    response = HttpResponse(text, content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_http_methods(["GET", "POST"])
@page_view
def design_edit(request: HttpRequest, name: str) -> HttpResponse:
    """Edit the model card (developers and above); a save makes a new revision."""
    model = registry_selectors.model_get(user=request.user, name=name)
    require_role(request.user, model.team, Role.DEVELOPER, action="editing a model card")
    state = design_selectors.design_state(model=model)
    if request.method == "GET":
        form = DesignCardForm(initial=form_from_card(state.card, revision=state.revision))
        return render(
            request, "frontend/design_edit.html", {"nav": "models", "model": model, "state": state, "form": form}
        )
    form = DesignCardForm(request.POST)
    problem, status = None, 200
    try:
        data = form_data(DesignCardForm, request.POST)
        design_services.design_card_update(
            model=model,
            card=card_from_form(data),
            actor=request.user,
            expected_revision=data["revision"],
            reason=data["reason"],
        )
    except (InvalidInput, Conflict) as error:
        problem, status = error, error.status
    if problem is None:
        messages.success(request, f"Saved the card of {model.name}.")
        return redirect("frontend:model-detail", name=model.name)
    return render(
        request,
        "frontend/design_edit.html",
        {"nav": "models", "model": model, "state": state, "form": form, "problem": problem},
        status=status,
    )


@require_POST
@page_view
def design_complete(request: HttpRequest, name: str) -> HttpResponse:
    """Leave design; an incomplete card is refused with the fields it lacks."""
    model = registry_selectors.model_get(user=request.user, name=name)
    data = form_data(DesignCompleteForm, request.POST)
    design_services.model_design_complete(model=model, actor=request.user, reason=data["reason"])
    messages.success(request, f"Design of {model.name} completed: versions may now be trained and registered.")
    return redirect("frontend:model-detail", name=model.name)


@require_GET
@page_view
def design_markdown(request: HttpRequest, name: str) -> HttpResponse:
    model = registry_selectors.model_get(user=request.user, name=name)
    return _markdown(design_selectors.design_card_markdown(model=model), f"{model.name}-card.md")


@require_GET
@page_view
def version_card_markdown(request: HttpRequest, name: str, number: int) -> HttpResponse:
    model = registry_selectors.model_get(user=request.user, name=name)
    version = registry_selectors.version_get(model=model, version=number)
    return _markdown(design_selectors.version_card_markdown(version=version), f"{model.name}-v{number}-card.md")
