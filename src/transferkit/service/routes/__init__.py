"""The service's routes, one router per concern.

``ROUTERS`` is in the order the routes are matched and listed in the OpenAPI spec.
"""

from transferkit.service.routes import audio, inference, pages, report, search, thumbnails

ROUTERS = (pages.router, inference.router, search.router, audio.router, thumbnails.router,
           report.router)

__all__ = ["ROUTERS"]
