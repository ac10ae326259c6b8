"""The web page, its static files, and the health check the page (and monitoring) asks first."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from transferkit.service.schemas import Health
from transferkit.service.state import ServiceStateDep

STATIC_DIR = Path(__file__).parent.parent / "static"

router = APIRouter()


@router.get("/api/health", response_model=Health, tags=["service"])
async def health(state: ServiceStateDep) -> Health:
    """Liveness plus what is loaded (backbone, model classes, index size)."""
    return Health(status="ok", backbone=state.backbone_name, model=state.model_info,
                  index=state.index_info, text_index=state.text_index_info,
                  audio_index=state.audio_index_info, audio_model=state.audio_model_info,
                  segmenter=state.segmenter_info, localizer=state.localizer_info,
                  max_upload_bytes=state.max_upload_bytes, pending=state.engine.pending)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> HTMLResponse:
    """The single page; plain HTML whose script and style come from /static (no CDN)."""
    return HTMLResponse((STATIC_DIR / "index.html").read_text(encoding="utf-8"))


def mount_static(app: FastAPI) -> None:
    """Serve the page's JS and CSS; a mount, because routers cannot carry one into an app."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
