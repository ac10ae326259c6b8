"""Response shapes: they make the OpenAPI spec precise and keep the JSON stable."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Prediction(BaseModel):
    label: str
    probability: float = Field(ge=0, le=1)
    index: int | None = Field(None, description="ImageNet class index (ImageNet mode only)")


class ImageInfo(BaseModel):
    filename: str
    width: int
    height: int


class PredictResponse(BaseModel):
    source: str = Field(description="'imagenet' (backbone's own head) or 'model' (trained)")
    image: ImageInfo
    predictions: list[Prediction]
    elapsed_ms: float


class EmbedResponse(BaseModel):
    image: ImageInfo
    backbone: str
    dim: int
    embedding: list[float]
    elapsed_ms: float


class SearchHit(BaseModel):
    id: int
    name: str = Field(description="file name of the indexed image")
    path: str = Field(description="path as recorded in the index")
    distance: float
    thumbnail_url: str


class SearchResponse(BaseModel):
    image: ImageInfo
    hits: list[SearchHit]
    elapsed_ms: float


class TextHit(BaseModel):
    id: int
    text: str
    distance: float
    score: float = Field(description="cosine similarity (cosine index), else 1/(1+distance)")


class TextSearchResponse(BaseModel):
    query: str
    encoder: str
    hits: list[TextHit]
    elapsed_ms: float


class AudioSearchHit(BaseModel):
    id: int
    path: str
    distance: float
    score: float = Field(description="cosine similarity (cosine index), else 1/(1+distance)")


class AudioSearchResponse(BaseModel):
    name: str
    encoder: str
    hits: list[AudioSearchHit]
    elapsed_ms: float
    licence_note: str | None = Field(None, description="set when the encoder's weights carry "
                                                       "a restrictive licence (speech)")


class AudioPrediction(BaseModel):
    name: str
    encoder: str
    top_k: list[dict[str, Any]]
    elapsed_ms: float
    licence_note: str | None = None


class ModelInfo(BaseModel):
    directory: str
    classes: list[str]
    backbone: str | None = None


class IndexInfo(BaseModel):
    path: str
    size: int
    backbone: str | None = None


class Health(BaseModel):
    status: str
    backbone: str
    model: ModelInfo | None
    index: IndexInfo | None
    text_index: IndexInfo | None = Field(None, description="text index (backbone = encoder)")
    audio_index: IndexInfo | None = Field(None, description="audio index (backbone = encoder)")
    audio_model: ModelInfo | None = Field(None, description="audio classifier (backbone = "
                                                            "encoder)")
    segmenter: ModelInfo | None = Field(None, description="segmentation model (/api/segment)")
    localizer: ModelInfo | None = Field(None, description="localisation model (/api/localize)")
    max_upload_bytes: int
    pending: int = Field(description="requests waiting for the model right now")


class ReportResponse(BaseModel):
    model: ModelInfo
    report: dict[str, Any]
    images: dict[str, str] = Field(description="name -> URL of report pictures that exist")


class ErrorResponse(BaseModel):
    detail: str


class Item(BaseModel):
    id: int
    name: str = Field(description="file name")
    label: str | None = Field(description="the folder the file is in, when the index spans "
                                          "several folders (class-folder layout); else null")


class ItemsResponse(BaseModel):
    total: int = Field(description="items matching the filters")
    offset: int
    labels: dict[str, int] = Field(description="label -> number of indexed items (unfiltered)")
    items: list[Item]


class ItemDetail(Item):
    path: str = Field(description="path relative to the folder all indexed files share "
                                  "(never the server's absolute path)")
    thumbnail_url: str


class SimilarResponse(BaseModel):
    item: ItemDetail
    hits: list[SearchHit] = Field(description="nearest first, the item itself left out; "
                                              "paths relative, as in ItemDetail")
    elapsed_ms: float


class MapPoint(BaseModel):
    id: int
    x: float
    y: float
    label: str | None
    name: str = Field(description="file name of the indexed image")


class MapResponse(BaseModel):
    status: str = Field(description="'ready' (points set), 'computing' (answered with 202; "
                                    "ask again) or 'failed'")
    method: str = Field(description="projection: 'pca' or 'umap'")
    progress: float = Field(ge=0, le=1)
    cached: bool = Field(False, description="read from the cache file beside the index")
    points: list[MapPoint] = Field(default_factory=list)


class DuplicateGroupInfo(BaseModel):
    size: int = Field(description="images in the group")
    items: list[ItemDetail] = Field(description="its first per_group images, by id")
    max_distance: float


class DuplicatesResponse(BaseModel):
    threshold: float
    total_groups: int
    groups: list[DuplicateGroupInfo] = Field(description="largest groups first, at most limit")
    elapsed_ms: float


class EvaluatedImage(BaseModel):
    id: int | None = Field(description="index id when the image is indexed (has a thumbnail)")
    name: str
    true: str
    predicted: str
    probability_true: float
    probability_predicted: float
    loss: float = Field(description="cross-entropy, -log p(true class)")
    thumbnail_url: str | None


class EvaluatedResponse(BaseModel):
    split: str
    total: int
    items: list[EvaluatedImage]


class ClassFraction(BaseModel):
    label: str
    fraction: float = Field(ge=0, le=1, description="share of the image's pixels")


class SegmentResponse(BaseModel):
    image: ImageInfo
    classes: list[str] = Field(description="class names, index 0 the background")
    fractions: list[ClassFraction] = Field(description="every class, in class order")
    threshold: float | None = Field(description="foreground probability cut (binary models)")
    overlay_png: str = Field(description="base64 PNG: the image with the mask drawn over it "
                                         "(at most 1024 px a side)")
    mask_png: str = Field(description="base64 PNG: the mask at the image's size, pixel value "
                                      "= class index")
    elapsed_ms: float


class Box(BaseModel):
    x: float = Field(description="left edge, pixels of the uploaded image")
    y: float = Field(description="top edge")
    w: float = Field(description="width")
    h: float = Field(description="height")


class LocalizeResponse(BaseModel):
    image: ImageInfo
    label: str
    probability: float = Field(ge=0, le=1)
    box: Box
    classes: list[str]
    overlay_png: str = Field(description="base64 PNG: the image with the box and label drawn "
                                         "(at most 1024 px a side; small images enlarged to "
                                         "320 px on the short side)")
    elapsed_ms: float


class LabFigure(BaseModel):
    url: str = Field(description="/lab/NAME.png")
    caption: str


class LabPicture(BaseModel):
    key: str
    title: str
    command: str = Field(description="the command that makes the picture")
    figures: list[LabFigure]
    numbers: dict[str, Any] = Field(description="what the picture measured")
    seconds: float | None = None


class LabResponse(BaseModel):
    pictures: list[LabPicture] = Field(description="in the gallery's page order")
