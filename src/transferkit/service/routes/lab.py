"""The lab gallery (``transferkit gallery -o DIR``, served with ``serve --gallery DIR``):
its index.html at /lab/ and its PNGs at /lab/NAME.png, files of that one folder only.

Open like the page itself: a browser's ``<img>`` cannot send a bearer token, and the gallery
holds only pictures the gallery command made."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse

from transferkit.service.http_errors import INVALID, error_doc
from transferkit.service.state import ServiceStateDep

router = APIRouter()
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}\.png$"
NO_GALLERY = "no gallery loaded (transferkit gallery -o DIR; transferkit serve --gallery DIR)"


def _gallery(state) -> Path:
    if state.gallery_dir is None:
        raise HTTPException(404, NO_GALLERY)
    return Path(state.gallery_dir)


@router.get("/lab/", response_class=HTMLResponse, tags=["lab"],
            responses={200: {"content": {"text/html": {}}},
                       404: error_doc("no gallery loaded, or it has no index.html")})
async def lab_page(state: ServiceStateDep) -> HTMLResponse:
    """The gallery page (its images are relative links, served below)."""
    page = _gallery(state) / "index.html"
    if not page.is_file():
        raise HTTPException(404, "the gallery has no index.html")
    return HTMLResponse(page.read_text(encoding="utf-8"))


@router.get("/lab/{name}", tags=["lab"],
            responses={200: {"content": {"image/png": {}}},
                       404: error_doc("no gallery loaded, or no such picture"), **INVALID})
async def lab_picture(state: ServiceStateDep,
                      name: str = PathParam(..., pattern=NAME_PATTERN,
                                            description="a PNG of the gallery folder")
                      ) -> FileResponse:
    """A gallery picture, by file name (no sub-folders)."""
    folder = _gallery(state)
    path = folder / name
    if ".." in name or not path.is_file() or path.resolve().parent != folder.resolve():
        raise HTTPException(404, f"the gallery has no {name}")
    return FileResponse(path, media_type="image/png")
