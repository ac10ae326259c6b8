"""HTTP service and web page: classify, embed and search uploaded images on localhost."""

from transferkit.errors import ServiceBusy
from transferkit.service.app import DEFAULT_MAX_UPLOAD_BYTES, create_app
from transferkit.service.engine import InferenceEngine
from transferkit.service.uploads import UploadError, decode_upload

__all__ = ["create_app", "DEFAULT_MAX_UPLOAD_BYTES", "InferenceEngine", "ServiceBusy",
           "UploadError", "decode_upload"]
