"""The Starlette application: routes, templates, static files, and the ranking thread's lifetime."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from changeover.labeling import api, pages
from changeover.labeling.service import LabelingService

HERE = Path(__file__).parent


def create_app(service: LabelingService, background: bool = True, secure_cookies: bool = False) -> Starlette:
    """The labelling app on ``service``; ``background`` runs the re-ranking thread while serving.

    ``secure_cookies``: mark the login cookie ``Secure`` even when requests arrive over
    plain HTTP, as they do behind a TLS-terminating proxy (``label serve`` sets it when
    ``--public-url`` is https). Without it the cookie is ``Secure`` on https requests only.
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
    app.state.secure_cookies = secure_cookies
    app.state.templates = Jinja2Templates(directory=HERE / "templates")
    return app
