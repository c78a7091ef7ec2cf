"""The Starlette application: routes, templates, static files, and the ranking thread's lifetime."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from changeover.labeling import api, pages
from changeover.labeling.render import render
from changeover.labeling.service import LabelingService

HERE = Path(__file__).parent
SECURITY_HEADERS = [  # rendered answers are untrusted text: no script, style or image from anywhere but the app
    (b"content-security-policy", b"default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),  # a login URL carries a token
]


class SecurityHeaders:
    """ASGI middleware: the headers above on every HTTP response."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(service: LabelingService, background: bool = True, public_url: str | None = None) -> Starlette:
    """The labelling app on ``service``; ``background`` runs the re-ranking thread while serving.

    ``public_url``: the address annotators use (default: the one each request came to);
    when it is https the login cookie is ``Secure`` even though requests arrive over
    plain HTTP, as they do behind a TLS-terminating proxy. Otherwise the cookie is
    ``Secure`` on https requests.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if background:
            service.refresher.start()
        try:
            yield
        finally:
            service.refresher.stop()

    routes = [
        Route("/", pages.label_page),
        Route("/login", pages.login),
        Route("/logout", pages.logout),
        Route("/correct", pages.correct_page),
        Route("/history", pages.history_page),
        Route("/progress", pages.progress_page),
        Route("/review", pages.review_page),
        Route("/export.{fmt}", pages.export_page),
        Route("/api/next", api.next_task),
        Route("/api/labels", api.post_label, methods=["POST"]),
        Route("/api/resolve", api.post_resolution, methods=["POST"]),
        Route("/api/progress", api.progress),
        Route("/api/export", api.export),
        Route("/api/flags", api.flags),
        Route("/api/disagreements", api.disagreements_list),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(SecurityHeaders)])
    app.state.service = service
    app.state.public_url = public_url.rstrip("/") if public_url else None
    app.state.secure_cookies = bool(public_url) and urlsplit(public_url).scheme.lower() == "https"
    app.state.templates = Jinja2Templates(directory=HERE / "templates")
    app.state.templates.env.filters["render"] = render
    return app
