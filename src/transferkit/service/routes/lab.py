"""The lab gallery (``transferkit gallery -o DIR``, served with ``serve --gallery DIR``):
its index.html at /lab/, its PNGs at /lab/NAME.png (files of that one folder only), and its
``gallery.json`` as /api/lab, which the page's Lab tab draws.

Open like the page itself: a browser's ``<img>`` cannot send a bearer token, and the gallery
holds only pictures the gallery command made."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse

from transferkit.service.http_errors import INVALID, error_doc
from transferkit.service.schemas import LabFigure, LabPicture, LabResponse
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


@router.get("/api/lab", response_model=LabResponse, tags=["lab"],
            responses={404: error_doc("no gallery loaded, or it has no readable gallery.json")})
async def lab_pictures(state: ServiceStateDep) -> LabResponse:
    """The gallery's pictures: title, command, figure URLs with captions, measured numbers
    (figures whose file is missing are left out)."""
    folder = _gallery(state)
    try:
        entries = json.loads((folder / "gallery.json").read_text(encoding="utf-8"))["pictures"]
        return LabResponse(pictures=[_picture(folder, key, entry)
                                     for key, entry in entries.items()])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise HTTPException(404, f"the gallery has no readable gallery.json "
                                 f"({exc.__class__.__name__})") from None


def _picture(folder: Path, key: str, entry: dict) -> LabPicture:
    figures = [LabFigure(url=f"/lab/{name}", caption=str(caption))
               for name, caption in entry.get("figures", [])
               if re.match(NAME_PATTERN, str(name)) and (folder / str(name)).is_file()]
    return LabPicture(key=str(key), title=str(entry.get("title", key)),
                      command=str(entry.get("command", "")), figures=figures,
                      numbers=dict(entry.get("numbers") or {}), seconds=entry.get("seconds"))
