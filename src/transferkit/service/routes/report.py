"""The trained model's evaluation report and its pictures (a fixed list of file names)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from transferkit.service.http_errors import INVALID, error_doc
from transferkit.service.schemas import ReportResponse
from transferkit.service.state import ServiceStateDep

REPORT_IMAGES = {"confusion_matrix.png": "confusion_matrix.png",
                 "learning_curve.png": "learning_curve.png"}

router = APIRouter()


@router.get("/api/report", response_model=ReportResponse, tags=["model"],
            responses={404: error_doc("no model loaded, or it has no readable report")})
async def report(state: ServiceStateDep) -> ReportResponse:
    """The trained model's evaluation report (report.json) and links to its pictures."""
    if state.model_info is None:
        raise HTTPException(404, "no trained model loaded (transferkit serve --model DIR)")
    report_dir = Path(state.model_info.directory) / "report"
    try:
        data = json.loads((report_dir / "report.json").read_text())
    except (OSError, ValueError) as exc:
        raise HTTPException(404, f"model has no readable report/report.json "
                                 f"({exc.__class__.__name__})") from None
    images = {name.removesuffix(".png"): f"/api/report/{name}"
              for name in REPORT_IMAGES if (report_dir / name).is_file()}
    return ReportResponse(model=state.model_info, report=data, images=images)


@router.get("/api/report/{name}", tags=["model"],
            responses={200: {"content": {"image/png": {}}},
                       404: error_doc("no model loaded, or its report lacks this picture"),
                       **INVALID})
async def report_image(state: ServiceStateDep,
                       name: Literal["confusion_matrix.png", "learning_curve.png"]
                       ) -> FileResponse:
    """A report picture; only these fixed names are served."""
    if state.model_info is None:
        raise HTTPException(404, "no trained model loaded")
    path = Path(state.model_info.directory) / "report" / REPORT_IMAGES[name]
    if not path.is_file():
        raise HTTPException(404, f"model report has no {name}")
    return FileResponse(path, media_type="image/png")
