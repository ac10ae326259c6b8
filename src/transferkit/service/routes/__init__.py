"""The service's routes, one router per concern.

``ROUTERS`` is in the order the routes are matched and listed in the OpenAPI spec;
``PROTECTED_ROUTERS`` are the ones a token (``create_app(token=...)``) guards.
"""

from transferkit.service.routes import (
    audio,
    browse,
    dense,
    inference,
    lab,
    pages,
    report,
    search,
    thumbnails,
)

OPEN_ROUTERS = (pages.router, lab.router)
PROTECTED_ROUTERS = (inference.router, search.router, audio.router, dense.router,
                     thumbnails.router, report.router, browse.router)
ROUTERS = OPEN_ROUTERS + PROTECTED_ROUTERS

__all__ = ["OPEN_ROUTERS", "PROTECTED_ROUTERS", "ROUTERS"]
