"""The Starlette application: routes, templates, static files, and the ranking thread's lifetime."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from changeover.labeling import api, pages
from changeover.labeling.service import LabelingService

HERE = Path(__file__).parent


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
        Route("/progress", pages.progress_page),
        Route("/export.{fmt}", pages.export_page),
        Route("/api/next", api.next_task),
        Route("/api/labels", api.post_label, methods=["POST"]),
        Route("/api/progress", api.progress),
        Route("/api/export", api.export),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.service = service
    app.state.public_url = public_url.rstrip("/") if public_url else None
    app.state.secure_cookies = bool(public_url) and urlsplit(public_url).scheme.lower() == "https"
    app.state.templates = Jinja2Templates(directory=HERE / "templates")
    return app
