"""Who is asking: a token from the login link (kept in a cookie) or an ``Authorization: Bearer`` header.

``guarded`` wraps an endpoint so that without a valid token it answers 401
(JSON for the API, a short page otherwise), 403 when an annotator asks for an
admin page, and 413 for a body over ``MAX_BODY``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from changeover.labeling.accounts import Annotator, authenticate

COOKIE = "changeover_label_token"
MAX_BODY = 1 << 20  # a label is a few hundred bytes; a bigger body is refused before anything else

Endpoint = Callable[[Request, Annotator], Response]


def request_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(COOKIE)


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _refuse(request: Request, status: int, message: str) -> Response:
    if _is_api(request):
        return JSONResponse(
            {"error": message}, status_code=status, headers={"WWW-Authenticate": "Bearer"} if status == 401 else None
        )
    templates = request.app.state.templates
    return templates.TemplateResponse(
        request, "refused.html", {"status": status, "message": message}, status_code=status
    )


def guarded(admin: bool = False) -> Callable[[Endpoint], Callable[[Request], Awaitable[Response]]]:
    """Require a valid token (and the admin role when ``admin``); the endpoint gets the account.

    The endpoint itself is plain blocking code (store queries): it runs in the
    thread pool, with the request body already read into ``request.state.body``.
    """

    def wrap(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        def blocking(request: Request) -> Response:
            who = authenticate(request.app.state.service.store, request_token(request))
            if who is None:
                return _refuse(
                    request,
                    401,
                    "A valid token is needed: open the login link you were given "
                    "(or send 'Authorization: Bearer <token>').",
                )
            if admin and not who.is_admin:
                return _refuse(request, 403, "This page is for the admin token only.")
            return endpoint(request, who)

        @wraps(endpoint)
        async def checked(request: Request) -> Response:
            body = await _read_body(request)
            if body is None:
                return _refuse(request, 413, f"The request body is larger than {MAX_BODY // 1024} KiB.")
            request.state.body = body
            return await run_in_threadpool(blocking, request)

        return checked

    return wrap


async def _read_body(request: Request) -> bytes | None:
    """The body, or None when it exceeds MAX_BODY (read before the token is checked, so it is capped)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    return bytes(body)


def unauthorized_page(request: Request) -> Response:
    return _refuse(request, 401, "This login link is not valid (any more). Ask for a new one.")


def html(request: Request, name: str, context: dict, status: int = 200) -> HTMLResponse:
    return request.app.state.templates.TemplateResponse(request, name, context, status_code=status)
