"""Audio uploads: clips similar to an uploaded one, and an audio model's top-k for it.

The upload is written to a private temporary file (the decoders read files) and decoded by
the same policy as the CLI (``transferkit.audio.load_audio``); a clip it refuses is a 400
whose message names the upload and the reason.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from fastapi import APIRouter, File, HTTPException, Query, UploadFile

from transferkit.service.http_errors import UPLOAD_ERRORS, error_doc
from transferkit.service.routes.common import elapsed_ms
from transferkit.service.schemas import AudioPrediction, AudioSearchHit, AudioSearchResponse
from transferkit.service.state import ServiceState, ServiceStateDep
from transferkit.service.uploads import UploadError

AUDIO_FILE = File(..., description="the clip (wav, flac, ogg, mp3; mono-mixed, 16 kHz)")
router = APIRouter()


async def _clip_file(file: UploadFile, state: ServiceState) -> tuple[Path, str]:
    data = await file.read(state.max_upload_bytes + 1)
    name = os.path.basename(file.filename or "upload")[:120] or "upload"
    if len(data) > state.max_upload_bytes:
        raise UploadError(413, f"{name}: upload too large (limit {state.max_upload_bytes:,} "
                               f"bytes)")
    suffix = Path(name).suffix.lower()[:8] or ".wav"
    handle, temporary = tempfile.mkstemp(prefix="transferkit-clip-", suffix=suffix)
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    return Path(temporary), name


async def _on_clip(state: ServiceState, file: UploadFile, run, k: int
                   ) -> tuple[list, str, float]:
    """``run([clip], k)`` on the inference thread for the uploaded clip, its temporary file
    removed afterwards: (rows, upload name, start time); a clip the decoder refuses is a 400."""
    path, name = await _clip_file(file, state)
    start = time.perf_counter()
    try:
        rows, failures = await state.engine.run(run, [path], k)
    finally:
        path.unlink(missing_ok=True)
    if failures:
        raise HTTPException(400, f"{name}: {failures[0][1]}")
    return rows, name, start


@router.post("/api/search-audio", response_model=AudioSearchResponse,
             responses={**UPLOAD_ERRORS, 404: error_doc("no audio index loaded")},
             tags=["audio"])
async def search_audio(state: ServiceStateDep, file: UploadFile = AUDIO_FILE,
                       k: int = Query(8, ge=1, le=100, description="how many neighbours")
                       ) -> AudioSearchResponse:
    """Most similar indexed clips, nearest first."""
    index = state.engine.audio_index
    if index is None:
        raise HTTPException(404, "audio search unavailable: the service was started without "
                                 "an audio index (transferkit serve --audio-index INDEX)")
    rows, name, start = await _on_clip(state, file, index.search_paths, k)
    return AudioSearchResponse(name=name, encoder=str(index.spec.get("name")),
                               elapsed_ms=elapsed_ms(start),
                               licence_note=index.encoder.licence_note(),
                               hits=[AudioSearchHit(**hit) for hit in rows[0]["hits"]])


@router.post("/api/predict-audio", response_model=AudioPrediction,
             responses={**UPLOAD_ERRORS, 404: error_doc("no audio model loaded")},
             tags=["audio"])
async def predict_audio(state: ServiceStateDep, file: UploadFile = AUDIO_FILE,
                        k: int = Query(3, ge=1, le=100, description="how many classes")
                        ) -> AudioPrediction:
    """The audio model's top-k classes for the clip."""
    model = state.engine.audio_model
    if model is None:
        raise HTTPException(404, "audio prediction unavailable: the service was started "
                                 "without an audio model (transferkit serve --audio-model DIR)")
    results, name, start = await _on_clip(state, file, model.predict_paths, k)
    return AudioPrediction(name=name, encoder=model.encoder.name, top_k=results[0]["top_k"],
                           elapsed_ms=elapsed_ms(start),
                           licence_note=model.encoder.licence_note())
