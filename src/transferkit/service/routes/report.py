"""The trained model's evaluation report and its pictures (a fixed list of file names)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse

from transferkit.service.http_errors import INVALID, error_doc
from transferkit.service.mistakes import Evaluated, EvaluationPredictions
from transferkit.service.schemas import EvaluatedImage, EvaluatedResponse, ReportResponse
from transferkit.service.state import ServiceState, ServiceStateDep

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


NO_PREDICTIONS = error_doc("no model loaded, or its report has no saved predictions (models "
                           "trained before they were saved, fine-tuned models)")


def _predictions(state: ServiceState) -> EvaluationPredictions:
    if state.model_info is None:
        raise HTTPException(404, "no trained model loaded (transferkit serve --model DIR)")
    if state.predictions is None:
        raise HTTPException(404, "the model's report has no predictions.json (retrain it with "
                                 "this version to see its mistakes)")
    return state.predictions


def _evaluated(state: ServiceState, rows: list[Evaluated], split: str, offset: int,
               limit: int) -> EvaluatedResponse:
    items = []
    for row in rows[offset:offset + limit]:
        item_id = state.catalog.id_of_path(row.path) if state.catalog is not None else None
        items.append(EvaluatedImage(
            id=item_id, name=os.path.basename(row.path), true=row.true,
            predicted=row.predicted, probability_true=row.probability_true,
            probability_predicted=row.probability_predicted, loss=row.loss,
            thumbnail_url=f"/thumbnails/{item_id}" if item_id is not None else None))
    return EvaluatedResponse(split=split, total=len(rows), items=items)


OFFSET = Query(0, ge=0, le=2 ** 31, description="first image to list")
LIMIT = Query(60, ge=1, le=1000, description="how many images")


@router.get("/api/report/mistakes", response_model=EvaluatedResponse, tags=["model"],
            responses={404: NO_PREDICTIONS, **INVALID})
async def mistakes(state: ServiceStateDep, offset: int = OFFSET, limit: int = LIMIT
                   ) -> EvaluatedResponse:
    """Evaluation images the model got wrong, highest loss first, with true vs predicted
    class and their probabilities (thumbnails when the image is also indexed)."""
    found = _predictions(state)
    return _evaluated(state, found.mistakes(), found.split, offset, limit)


@router.get("/api/report/confusion", response_model=EvaluatedResponse, tags=["model"],
            responses={404: NO_PREDICTIONS, 400: error_doc("a class the model does not have"),
                       **INVALID})
async def confusion_cell(state: ServiceStateDep,
                         true: str = Query(..., max_length=500, description="true class"),
                         pred: str = Query(..., max_length=500, description="predicted class"),
                         offset: int = OFFSET, limit: int = LIMIT) -> EvaluatedResponse:
    """The evaluation images of one confusion-matrix cell (true class x predicted class)."""
    found = _predictions(state)
    try:
        rows = found.cell(true, pred)
    except KeyError as exc:
        raise HTTPException(400, str(exc.args[0])) from None
    return _evaluated(state, rows, found.split, offset, limit)


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
