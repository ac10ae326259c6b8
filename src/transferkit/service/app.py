"""FastAPI app factory: JSON API (predict, embed, search, health, report) plus the web page."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi

from transferkit.backbones import Backbone
from transferkit.service.auth import Unauthorized, require_token, unauthorized
from transferkit.service.headers import SecurityHeaders, ServerTiming
from transferkit.service.http_errors import UNAUTHORIZED, install_error_handlers
from transferkit.service.priority import lower_other_threads
from transferkit.service.routes import OPEN_ROUTERS, PROTECTED_ROUTERS
from transferkit.service.routes.pages import mount_static
from transferkit.service.shedding import ShedWhenBusy
from transferkit.service.startup import load_state
from transferkit.service.uploads import DEFAULT_MAX_IMAGE_PIXELS, MULTIPART_OVERHEAD, BodySizeLimit
from transferkit.utils import existing_objects_frozen

DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024


def create_app(model_dir: str | os.PathLike | None = None,
               index_path: str | os.PathLike | None = None,
               backbone: str | Backbone = "efficientnet_lite0",
               max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
               max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
               max_pending: int = 64, decode_threads: int = 4,
               text_index_path: str | os.PathLike | None = None,
               token: str | None = None, engine: str = "torch",
               precision: str = "f32",
               audio_index_path: str | os.PathLike | None = None,
               audio_model_dir: str | os.PathLike | None = None,
               map_method: str = "pca",
               gallery_dir: str | os.PathLike | None = None,
               segmenter_dir: str | os.PathLike | None = None,
               localizer_dir: str | os.PathLike | None = None) -> FastAPI:
    """Load the model/index once, then serve them; bad inputs get 4xx JSON, never a 500.

    ``backbone`` may be a name or an already-built :class:`Backbone` (shared, e.g. in tests).
    Without ``model_dir`` predictions are the backbone's ImageNet classes. ``text_index_path``
    (from ``transferkit index build --text``) adds text search; ``audio_index_path`` (``index
    build --audio``) and ``audio_model_dir`` (``train --audio``) add /api/search-audio and
    /api/predict-audio. With ``token`` every API route but the health check needs
    ``Authorization: Bearer <token>``. ``engine`` / ``precision`` run every image model call
    (see :func:`transferkit.runtime.choose_engine`). ``map_method`` projects the index for
    /api/map: ``pca`` (scikit-learn) or ``umap`` (needs umap-learn).
    ``gallery_dir`` (from ``transferkit gallery``) is served at /lab/ (and listed at
    /api/lab). ``segmenter_dir`` (``transferkit segment train``) adds /api/segment,
    ``localizer_dir`` (``transferkit localize train``) /api/localize; ``model_dir`` may name
    either of those too (the kind is read from its manifest).
    """
    if gallery_dir is not None and not Path(gallery_dir).is_dir():
        raise FileNotFoundError(f"{gallery_dir}: gallery folder not found")
    state = load_state(model_dir, index_path, backbone, text_index_path,
                       max_upload_bytes=max_upload_bytes, max_image_pixels=max_image_pixels,
                       max_pending=max_pending, decode_threads=decode_threads,
                       engine=engine, precision=precision,
                       audio_index_path=audio_index_path, audio_model_dir=audio_model_dir,
                       map_method=map_method, segmenter_dir=segmenter_dir,
                       localizer_dir=localizer_dir)
    app = FastAPI(title="transferkit", version=_version(), lifespan=_stop_engine_at_shutdown,
                  docs_url=None, redoc_url=None,  # Swagger UI needs a CDN; we are offline
                  description="Classify, embed and search images with ImageNet backbones, and "
                              "search texts. Uploads are multipart form fields named `file`.")
    state = dataclasses.replace(state, gallery_dir=None if gallery_dir is None
                                else str(gallery_dir))
    app.state.service = state
    app.state.engine = state.engine  # kept for callers that reach the engine directly
    app.state.token = token or None
    app.add_middleware(BodySizeLimit, max_body_bytes=max_upload_bytes + MULTIPART_OVERHEAD)
    app.add_middleware(ShedWhenBusy, engine=state.engine, model_paths=_model_paths())
    app.add_middleware(SecurityHeaders)
    app.add_middleware(ServerTiming)  # outermost: its time covers every other layer
    install_error_handlers(app)
    app.add_exception_handler(Unauthorized, unauthorized)
    for router in OPEN_ROUTERS:
        app.include_router(router)
    guard = dict(dependencies=[Depends(require_token)], responses=UNAUTHORIZED) if token else {}
    for router in PROTECTED_ROUTERS:
        app.include_router(router, **guard)
    mount_static(app)
    _document_upload_rules(app, max_upload_bytes, max_image_pixels)
    return app


def _model_paths() -> set[str]:
    """Routes that wait for the model: the ones whose documented answers include 503."""
    return {route.path for router in (*OPEN_ROUTERS, *PROTECTED_ROUTERS)
            for route in router.routes if 503 in (getattr(route, "responses", None) or {})}


def _document_upload_rules(app: FastAPI, max_bytes: int, max_pixels: int) -> None:
    """Put the upload limits into the OpenAPI document: a non-empty file of at most
    ``max_bytes``, decoded to at most ``max_pixels`` (the last is checked by decoding)."""

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            for name, component in schema.get("components", {}).get("schemas", {}).items():
                field = component.get("properties", {}).get("file")
                if name.startswith("Body_") and field is not None:
                    field.update(minLength=1, maxLength=max_bytes, description=(
                        f"the image, 1 to {max_bytes:,} bytes, at most {max_pixels:,} pixels "
                        f"once decoded (JPEGs after DCT scaling); any format Pillow decodes, "
                        f"judged by decoding, never by name or content type"))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


@contextlib.asynccontextmanager
async def _stop_engine_at_shutdown(app: FastAPI) -> AsyncIterator[None]:
    """Stop the inference thread when the server stops (a later start makes a new one).

    With ``app.state.worker_nice`` set (``transferkit serve`` sets it), every thread but the
    event loop's, and the inference thread started later, run at that much lower priority.
    """
    nice = getattr(app.state, "worker_nice", 0)
    if nice > 0:
        app.state.service.engine.worker_nice = nice
        lower_other_threads(nice)
    # What was loaded at start stays out of the collector's full passes while serving.
    with existing_objects_frozen():
        yield
    app.state.service.engine.close()


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("transferkit")
    except Exception:  # noqa: BLE001 - running from a source tree
        return "dev"
