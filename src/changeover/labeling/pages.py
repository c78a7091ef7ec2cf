"""The server-rendered pages: login by link, the labelling page, corrections, the admin's progress and review."""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from changeover.labeling.accounts import Annotator, authenticate, list_accounts
from changeover.labeling.api import export_response
from changeover.labeling.auth import COOKIE, guarded, html, unauthorized_page
from changeover.labeling.gold import LOW_GOLD
from changeover.labeling.progress import LOW_WEIGHT
from changeover.labeling.review import disagreements, flagged
from changeover.labeling.service import LabelingService
from changeover.labeling.tasks import Task


def _service(request: Request) -> LabelingService:
    return request.app.state.service


def login(request: Request) -> Response:
    """``/login?token=...``: keep the token in a cookie and go to the work page."""
    token = request.query_params.get("token")
    who = authenticate(_service(request).store, token)
    if who is None:
        return unauthorized_page(request)
    response = RedirectResponse("/progress" if who.is_admin else "/", status_code=303)
    response.set_cookie(
        COOKIE,
        token or "",
        max_age=30 * 24 * 3600,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https" or request.app.state.secure_cookies,
    )
    return response


def logout(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


def _label_page(
    request: Request,
    who: Annotator,
    task: Task | None,
    corrects: str | None = None,
    previous: dict[str, int | None] | None = None,
) -> Response:
    service = _service(request)
    return html(
        request,
        "label.html",
        {
            "who": who,
            "task": task,
            "corrects": corrects,
            "previous": previous or {},
            "client_id": uuid.uuid4().hex,
            "dimensions": [(d, service.rubric(d)) for d in service.dimensions],
            "guidelines": [(d, service.guidelines(d)) for d in service.dimensions if service.guidelines(d)],
            "progress": service.progress(who.name),
        },
    )


@guarded()
def label_page(request: Request, who: Annotator) -> Response:
    return _label_page(request, who, _service(request).next_task(who.name))


@guarded()
def correct_page(request: Request, who: Annotator) -> Response:
    """Show one of the annotator's submissions again (the last, or ``?submission=``); what they send supersedes it."""
    wanted = request.query_params.get("submission")
    past = _service(request).submission(who.name, wanted[:100] if wanted else None)
    if past is None:
        return RedirectResponse("/history" if wanted else "/", status_code=303)
    return _label_page(request, who, past.task, corrects=past.client_id, previous=past.verdicts)


@guarded()
def history_page(request: Request, who: Annotator) -> Response:
    """The annotator's recent submissions, each one correctable."""
    service = _service(request)
    return html(
        request,
        "history.html",
        {"who": who, "history": service.history(who.name), "dimensions": service.dimensions},
    )


@guarded(admin=True)
def progress_page(request: Request, who: Annotator) -> Response:
    service = _service(request)
    accounts = list_accounts(service.store)  # tokens are stored hashed: the page names accounts, never links
    return html(
        request,
        "progress.html",
        {
            "who": who,
            "p": service.progress(None),
            "low_gold": LOW_GOLD,
            "low_weight": LOW_WEIGHT,
            "accounts": accounts,
            "spec": service.spec,
            "dimensions": service.dimensions,
        },
    )


@guarded(admin=True)
def review_page(request: Request, who: Annotator) -> Response:
    """Flagged responses with their notes, and skips with their reasons (admin)."""
    service = _service(request)
    catalogue = service.catalogue
    return html(
        request,
        "review.html",
        {
            "who": who,
            "flags": flagged(service.store, catalogue, "flag"),
            "skips": flagged(service.store, catalogue, "skip"),
            "disagreements": disagreements(service.store, catalogue),
            "dimensions": service.dimensions,
        },
    )


@guarded(admin=True)
def export_page(request: Request, who: Annotator) -> Response:
    return export_response(_service(request), request.path_params["fmt"])
