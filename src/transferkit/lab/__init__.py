"""The lab gallery: every picture of the representations lab (explain, autoencoders, search)
built into PNGs and one offline ``index.html``. Above explain, autoencoders and search, which
are peers and may not import each other."""

from transferkit.lab.gallery import build_gallery, gallery_pictures, render_html
from transferkit.lab.pictures import precision_at_k, svd_compress

__all__ = ["build_gallery", "gallery_pictures", "render_html", "precision_at_k", "svd_compress"]
