"""Ray as the engine beyond one machine: the embedding job on Ray Data (local or a cluster)."""

from transferkit.distributed.ray_embed import BatchEmbedder, connect, decode_batch, embed_paths_ray

__all__ = ["BatchEmbedder", "connect", "decode_batch", "embed_paths_ray"]
