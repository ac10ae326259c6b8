"""A model's identity (its ``spec``) and refusing inputs embedded differently.

Every artefact records the ``spec()`` of the model that made its vectors: name, weights,
preprocessing and kind. An index, a trained head or a text model only makes sense for
vectors from that same model; neighbours or predictions would otherwise be silently wrong.
"""

from __future__ import annotations

from typing import Any

from transferkit.errors import IncompatibleModelError

# What decides how an input becomes a vector; ``source`` (pip, dir:…) does not change it.
IDENTITY_KEYS = ("kind", "name", "arch", "weights_id", "num_features", "preprocessing")


def incompatible(index_spec: dict[str, Any] | None, query_spec: dict[str, Any] | None,
                 where: str = "index") -> IncompatibleModelError:
    """The error for a query embedded unlike the artefact: both models named, and the fix."""
    index_spec, query_spec = index_spec or {}, query_spec or {}
    diff = [k for k in IDENTITY_KEYS if index_spec.get(k) != query_spec.get(k)]
    return IncompatibleModelError(
        f"{where}: built with {describe_spec(index_spec)} but the query is embedded "
        f"with {describe_spec(query_spec)} (differs in: {', '.join(diff) or 'spec'}); "
        f"query with the index's own model, or rebuild the index with the new one")


def describe_spec(spec: dict[str, Any] | None) -> str:
    """One line naming a model: ``efficientnet_lite0 (weights …, 224px bicubic)``."""
    if not spec:
        return "an unknown model"
    prep = spec.get("preprocessing") or {}
    bits = [f"weights {spec.get('weights_id', '?')}"]
    if prep:
        bits.append(f"{prep.get('input_size', '?')}px {prep.get('interpolation', '')}".strip())
    kind = spec.get("kind")
    name = spec.get("name", "?")
    return f"{kind + ' model ' if kind else ''}{name} ({', '.join(bits)})"


def identity(spec: dict[str, Any] | None) -> dict[str, Any]:
    spec = spec or {}
    return {k: spec.get(k) for k in IDENTITY_KEYS if k in spec}


def ensure_compatible(index_spec: dict[str, Any] | None, query_spec: dict[str, Any] | None,
                      where: str = "index") -> None:
    """Raise :class:`IncompatibleModelError` unless both specs embed inputs the same way.

    An index without a spec (plain vectors) accepts anything.
    """
    if not index_spec:
        return
    mine, theirs = identity(index_spec), identity(query_spec)
    for ident in (mine, theirs):
        if "kind" not in ident and "preprocessing" in ident:
            ident["kind"] = "image"  # a bare backbone spec() is an image model
    if mine != theirs:
        raise incompatible(index_spec, query_spec, where)


__all__ = ["IDENTITY_KEYS", "IncompatibleModelError", "describe_spec", "ensure_compatible",
           "identity", "incompatible"]
