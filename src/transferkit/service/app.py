"""FastAPI app factory: JSON API (predict, embed, search, health, report) plus the web page."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Literal

import anyio
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import HTTPException
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image

from transferkit.backbones import Backbone
from transferkit.service.engine import InferenceEngine, ServiceBusy
from transferkit.service.headers import SecurityHeaders
from transferkit.service.schemas import (
    EmbedResponse,
    ErrorResponse,
    Health,
    ImageInfo,
    IndexInfo,
    ModelInfo,
    PredictResponse,
    ReportResponse,
    SearchHit,
    SearchResponse,
    TextHit,
    TextSearchResponse,
)
from transferkit.service.thumbnails import THUMBNAIL_SIZES, ThumbnailNotFound, ThumbnailStore
from transferkit.service.uploads import (
    DEFAULT_MAX_IMAGE_PIXELS,
    MULTIPART_OVERHEAD,
    BodySizeLimit,
    UploadError,
    decode_upload,
)

DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_QUERY_CHARS = 2000  # a paragraph; longer texts are truncated by the encoders anyway
STATIC_DIR = Path(__file__).parent / "static"
REPORT_IMAGES = {"confusion_matrix.png": "confusion_matrix.png",
                 "learning_curve.png": "learning_curve.png"}
log = logging.getLogger("transferkit.service")

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in [(400, "corrupt or empty image"), (413, "upload too large"),
                       (415, "not an image"), (503, "too many requests waiting")]}


def create_app(model_dir: str | os.PathLike | None = None,
               index_path: str | os.PathLike | None = None,
               backbone: str | Backbone = "efficientnet_lite0",
               max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
               max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
               max_pending: int = 64, decode_threads: int = 4,
               text_index_path: str | os.PathLike | None = None) -> FastAPI:
    """Load the model/index once, then serve them; bad inputs get 4xx JSON, never a 500.

    ``backbone`` may be a name or an already-built :class:`Backbone` (shared, e.g. in tests).
    Without ``model_dir`` predictions are the backbone's ImageNet classes. ``text_index_path``
    (from ``transferkit index build --text``) adds text search.
    """
    model = _load_model(model_dir) if model_dir is not None else None
    net = _resolve_backbone(backbone)
    index = _load_index(index_path, net) if index_path is not None else None
    text_index = _load_text_index(text_index_path) if text_index_path is not None else None
    engine = InferenceEngine(net, model=model, index=index, max_pending=max_pending,
                             text_index=text_index)
    thumbs = (ThumbnailStore(dict(zip((int(i) for i in index.ids), index.paths)))
              if index is not None else None)
    decode_limiter = anyio.CapacityLimiter(decode_threads)
    model_info = _model_info(model, model_dir)
    index_info = (IndexInfo(path=str(index_path), size=len(thumbs),
                            backbone=(getattr(index, "spec", None) or {}).get("name"))
                  if index is not None else None)
    text_info = (IndexInfo(path=str(text_index_path), size=len(text_index),
                           backbone=text_index.spec.get("name"))
                 if text_index is not None else None)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        engine.close()

    app = FastAPI(title="transferkit", version=_version(), lifespan=lifespan,
                  docs_url=None, redoc_url=None,  # Swagger UI needs a CDN; we are offline
                  description="Classify, embed and search images with ImageNet backbones, and "
                              "search texts. Uploads are multipart form fields named `file`.")
    app.state.engine = engine
    app.add_middleware(BodySizeLimit, max_body_bytes=max_upload_bytes + MULTIPART_OVERHEAD)
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(UploadError)
    async def _upload_error(_request: Request, exc: UploadError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status_code)

    @app.exception_handler(ServiceBusy)
    async def _busy(_request: Request, exc: ServiceBusy) -> JSONResponse:
        return JSONResponse({"detail": f"service busy: {exc}; retry shortly"}, status_code=503,
                            headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error ({exc.__class__.__name__})"},
                            status_code=500)

    async def read_image(file: UploadFile) -> Image.Image:
        data = await file.read(max_upload_bytes + 1)
        name = os.path.basename(file.filename or "upload")[:120] or "upload"
        if len(data) > max_upload_bytes:
            raise UploadError(413, f"{name}: upload too large (limit {max_upload_bytes:,} bytes)")
        return await anyio.to_thread.run_sync(
            lambda: decode_upload(data, name, engine.draft_size, max_image_pixels),
            limiter=decode_limiter)

    def info(file: UploadFile, image: Image.Image) -> ImageInfo:
        return ImageInfo(filename=os.path.basename(file.filename or "upload")[:120],
                         width=image.width, height=image.height)

    upload = File(..., description="the image (any format Pillow decodes; checked by decoding)")

    # -- JSON API ------------------------------------------------------------------------------
    @app.get("/api/health", response_model=Health, tags=["service"])
    async def health() -> Health:
        """Liveness plus what is loaded (backbone, model classes, index size)."""
        return Health(status="ok", backbone=net.name, model=model_info, index=index_info,
                      text_index=text_info, max_upload_bytes=max_upload_bytes,
                      pending=engine.pending)

    @app.post("/api/predict", response_model=PredictResponse, responses=_ERRORS, tags=["images"])
    async def predict(file: UploadFile = upload,
                      k: int = Query(5, ge=1, le=50, description="how many classes")
                      ) -> PredictResponse:
        """Top-k classes: the trained model's if one is loaded, else ImageNet's."""
        image = await read_image(file)
        start = time.perf_counter()
        source, rows = await engine.run(engine.predict, image, k)
        return PredictResponse(source=source, image=info(file, image), predictions=rows,
                               elapsed_ms=_ms(start))

    @app.post("/api/embed", response_model=EmbedResponse, responses=_ERRORS, tags=["images"])
    async def embed(file: UploadFile = upload) -> EmbedResponse:
        """Pooled penultimate features of the backbone (the transfer-learning embedding)."""
        image = await read_image(file)
        start = time.perf_counter()
        vector = await engine.run(engine.embed, image)
        return EmbedResponse(image=info(file, image), backbone=net.name, dim=len(vector),
                             embedding=vector, elapsed_ms=_ms(start))

    @app.post("/api/search", response_model=SearchResponse,
              responses={**_ERRORS, 404: {"model": ErrorResponse,
                                          "description": "no index loaded"}}, tags=["images"])
    async def search(file: UploadFile = upload,
                     k: int = Query(8, ge=1, le=100, description="how many neighbours")
                     ) -> SearchResponse:
        """Most similar indexed images, nearest first, with thumbnail URLs."""
        if index is None:
            raise HTTPException(404, "search unavailable: the service was started without an "
                                     "index (transferkit serve --index INDEX)")
        image = await read_image(file)
        start = time.perf_counter()
        hits = await engine.run(engine.search, image, k)
        return SearchResponse(image=info(file, image), elapsed_ms=_ms(start), hits=[
            SearchHit(id=int(h.id), name=os.path.basename(str(h.path)), path=str(h.path),
                      distance=float(h.distance), thumbnail_url=f"/thumbnails/{int(h.id)}")
            for h in hits])

    @app.get("/api/search-text", response_model=TextSearchResponse,
             responses={400: {"model": ErrorResponse, "description": "query has no known word"},
                        404: {"model": ErrorResponse, "description": "no text index loaded"}},
             tags=["texts"])
    async def search_text(q: str = Query(..., min_length=1, max_length=MAX_QUERY_CHARS,
                                         description="the query text"),
                          k: int = Query(8, ge=1, le=100, description="how many neighbours")
                          ) -> TextSearchResponse:
        """Most similar indexed texts to the query, nearest first."""
        if text_index is None:
            raise HTTPException(404, "text search unavailable: the service was started "
                                     "without a text index (transferkit serve --text-index "
                                     "INDEX)")
        if not q.strip():
            raise HTTPException(400, "empty query")
        start = time.perf_counter()
        try:
            hits = await engine.run(engine.search_text, q, k)
        except ValueError as exc:  # e.g. TF-IDF: none of the words is in the vocabulary
            raise HTTPException(400, str(exc)) from None
        return TextSearchResponse(query=q, encoder=str(text_index.spec.get("name")),
                                  elapsed_ms=_ms(start), hits=[
            TextHit(id=h.id, text=h.text, distance=h.distance, score=h.score)
            for h in hits])

    @app.get("/thumbnails/{item_id}", tags=["images"],
             responses={200: {"content": {"image/jpeg": {}}},
                        404: {"model": ErrorResponse, "description": "not in the index"}})
    async def thumbnail(item_id: int = PathParam(..., ge=0, description="id from a search hit"),
                        size: int = Query(128, description=f"one of {list(THUMBNAIL_SIZES)}")
                        ) -> Response:
        """JPEG thumbnail of an indexed image (only files of the index, by id)."""
        if thumbs is None:
            raise HTTPException(404, "no index loaded")
        if size not in THUMBNAIL_SIZES:
            raise HTTPException(400, f"size must be one of {list(THUMBNAIL_SIZES)}")
        try:
            data = await anyio.to_thread.run_sync(thumbs.get, item_id, size,
                                                  limiter=decode_limiter)
        except ThumbnailNotFound as exc:
            raise HTTPException(404, str(exc)) from None
        return Response(data, media_type="image/jpeg",
                        headers={"Cache-Control": "public, max-age=3600"})

    @app.get("/api/report", response_model=ReportResponse, tags=["model"],
             responses={404: {"model": ErrorResponse, "description": "no model loaded"}})
    async def report() -> ReportResponse:
        """The trained model's evaluation report (report.json) and links to its pictures."""
        if model_info is None:
            raise HTTPException(404, "no trained model loaded (transferkit serve --model DIR)")
        report_dir = Path(model_info.directory) / "report"
        try:
            data = json.loads((report_dir / "report.json").read_text())
        except (OSError, ValueError) as exc:
            raise HTTPException(404, f"model has no readable report/report.json "
                                     f"({exc.__class__.__name__})") from None
        images = {name.removesuffix(".png"): f"/api/report/{name}"
                  for name in REPORT_IMAGES if (report_dir / name).is_file()}
        return ReportResponse(model=model_info, report=data, images=images)

    @app.get("/api/report/{name}", tags=["model"], responses={200: {"content": {"image/png": {}}}})
    async def report_image(name: Literal["confusion_matrix.png", "learning_curve.png"]
                           ) -> FileResponse:
        """A report picture; only these fixed names are served."""
        if model_info is None:
            raise HTTPException(404, "no trained model loaded")
        path = Path(model_info.directory) / "report" / REPORT_IMAGES[name]
        if not path.is_file():
            raise HTTPException(404, f"model report has no {name}")
        return FileResponse(path, media_type="image/png")

    # -- web page ------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse((STATIC_DIR / "index.html").read_text(encoding="utf-8"))

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 2)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("transferkit")
    except Exception:  # noqa: BLE001 - running from a source tree
        return "dev"


def _load_model(model_dir: str | os.PathLike):
    from transferkit.train import load_model

    return load_model(model_dir)


def _load_text_index(path: str | os.PathLike):
    """A text index with its encoder loaded now, so the first query is not slow."""
    from transferkit.text import TextIndex

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: text index not found")
    index = TextIndex.load(path)
    _ = index.encoder
    return index


def _load_index(index_path: str | os.PathLike, backbone: Backbone):
    """Open the index, sharing the service's backbone when it is the one the index was
    built with; otherwise the index's own model is loaded now (not on the first query)."""
    from transferkit.search import ImageIndex, IncompatibleModelError
    from transferkit.text import is_text_index

    path = Path(index_path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: index not found")
    if is_text_index(path):
        raise ValueError(f"{path}: is a text index; serve it with --text-index "
                         f"(create_app(text_index_path=...))")
    index = ImageIndex.load(path)
    try:
        index.set_backbone(backbone)
    except IncompatibleModelError:
        _ = index.backbone
    return index


def _resolve_backbone(backbone: str | Backbone) -> Backbone:
    if isinstance(backbone, Backbone):
        return backbone
    from transferkit.backbones import create

    return create(backbone)


def _model_info(model: Any | None, model_dir: str | os.PathLike | None) -> ModelInfo | None:
    if model is None:
        return None
    directory = str(getattr(model, "directory", None) or model_dir)
    spec = getattr(model, "spec_", None) or {}
    return ModelInfo(directory=directory, classes=[str(c) for c in model.classes_],
                     backbone=spec.get("name"))
