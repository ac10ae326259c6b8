"""`build_gallery(out)`: every lab picture (ideal classes, layer atlas, top images, an
adversarial flip, SVD, autoencoders, denoising, interpolation, face search) as PNGs plus one
self-contained ``index.html`` naming the command and the numbers of each.

Resumable: ``gallery.json`` records each picture's parameters; a picture whose parameters are
unchanged and whose files exist is not made again.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from transferkit.utils import atomic_path, atomic_write_text, progress

MANIFEST = "gallery.json"


@dataclass
class Made:
    """What a picture maker returns: (file, caption) pairs and the numbers to show."""

    figures: list[tuple[str, str]]
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass
class Picture:
    key: str
    title: str
    command: str
    params: dict[str, Any]
    make: Callable[[GalleryContext, dict[str, Any]], Made]


@dataclass
class GalleryContext:
    out: Path
    backbone_name: str
    images: str | None
    _backbone: Any = None

    @property
    def backbone(self):
        if self._backbone is None:
            from transferkit.backbones import create

            self._backbone = create(self.backbone_name)
        return self._backbone

    def save(self, image: Image.Image, name: str) -> str:
        with atomic_path(self.out / name, suffix=".png") as tmp:
            image.save(tmp, format="PNG")
        return name


def _ideal(ctx: GalleryContext, p: dict[str, Any]) -> Made:
    from transferkit.explain import neighbour_difference, saturated_fraction, visualize

    vis = visualize(ctx.backbone, f"class:{p['cls']}", steps=p["steps"], seed=p["seed"],
                    show_progress=False)
    name = ctx.save(vis.image, f"ideal-{p['cls']}.png")
    top = ", ".join(f"{label.split(',')[0]} {prob:.1%}" for label, prob in vis.top5)
    return Made([(name, f"the ideal {p['cls']}: {p['steps']} steps from noise")],
                {"top-5 (re-classified from the PNG)": top,
                 "saturated pixels": f"{saturated_fraction(vis.image):.1%}",
                 "neighbour difference": f"{neighbour_difference(vis.image):.1f} grey levels"})


def _atlas(ctx: GalleryContext, p: dict[str, Any]) -> Made:
    from transferkit.explain import layer_atlas, load_atlas_images

    images, names = load_atlas_images(ctx.images)
    atlas = layer_atlas(ctx.backbone, images, names, channels_per_layer=p["channels"],
                        steps=p["steps"], show_progress=False)
    name = ctx.save(atlas.render(), "atlas.png")
    rows, cols = atlas.grid_shape
    return Made([(name, "one row per stage; each channel's visualisation above the three "
                        "images that excite it most")],
                {"stages": rows, "channels per stage": cols, "images ranked": len(images),
                 "channels": {layer: atlas.channels[layer] for layer in atlas.layers}})


def _top_images(ctx: GalleryContext, p: dict[str, Any]) -> Made:
    from transferkit.explain import top_activating, visualize

    source = ctx.images or _fashion_fixture() or str(_photos_dir(ctx.out))
    result = top_activating(ctx.backbone, source, p["layer"], p["channel"], p["k"],
                            show_progress=False)
    grid = result.save_grid(ctx.out / "top-images.png").name
    vis = visualize(ctx.backbone, f"channel:{p['layer']}:{p['channel']}", steps=p["steps"],
                    show_progress=False)
    ideal = ctx.save(vis.image, "top-images-channel.png")
    return Made([(grid, f"the {p['k']} images (of {source}) with the highest mean activation"
                        f" of channel {p['channel']} of {p['layer']}"),
                 (ideal, "what the same channel maximises (activation maximisation)")],
                {"scores": [round(s, 3) for s in result.scores],
                 "images": [Path(n).name for n in result.names]})


def _attack(ctx: GalleryContext, p: dict[str, Any]) -> Made:
    from transferkit.data import sample_photo
    from transferkit.explain import attack
    from transferkit.lab.pictures import panel

    res = attack(ctx.backbone, sample_photo(p["photo"]), p["target"], "pgd", p["eps"],
                 p["steps"], show_progress=False)
    o, a = res.original_top1, res.adversarial_top1
    picture = panel([res.original, res.adversarial, res.perturbation],
                    [f"original: {o[0].split(',')[0]}\n{o[1]:.1%}",
                     f"adversarial: {a[0].split(',')[0]}\n{a[1]:.1%} (8-bit PNG)",
                     f"perturbation x{127.5 / max(res.eps * 255, 1):.0f}\nL-inf "
                     f"{res.eps_used * 255:.0f}/255"], tile=224)
    name = ctx.save(picture, "attack.png")
    return Made([(name, f"PGD, {p['steps']} steps, targeted to {p['target']}")],
                {"epsilon": f"{res.eps * 255:.0f}/255", "before": f"{o[0]} {o[1]:.1%}",
                 "after": f"{a[0]} {a[1]:.1%}",
                 "target probability": f"{res.target_probability:.1%}",
                 "success": res.success})


def _svd(ctx: GalleryContext, p: dict[str, Any]) -> Made:
    from transferkit.data import sample_photo
    from transferkit.lab.pictures import panel, svd_compress

    photo = sample_photo(p["photo"])
    photo = photo.resize((p["size"], round(p["size"] * photo.height / photo.width)))
    shown, captions, numbers = [photo], ["original"], {}
    for k in p["ks"]:
        image, ratio, mse = svd_compress(photo, k)
        shown.append(image)
        captions.append(f"k = {k}: {ratio:.1f}x smaller\nMSE {mse:.4f}")
        numbers[f"k={k}"] = f"compression {ratio:.1f}x, MSE {mse:.4f}"
    name = ctx.save(panel(shown, captions, tile=180), "svd.png")
    return Made([(name, f"{p['photo']} at {photo.width}x{photo.height}, each colour channel "
                        f"keeping its k largest singular values")], numbers)


def _autoencoders(ctx: GalleryContext, p: dict[str, Any]) -> Made:
    from transferkit.autoencoders.report import compare_autoencoders

    work = ctx.out / "autoencoders"
    report = compare_autoencoders(work, p["train"], p["test"], p["bottleneck"], p["epochs"],
                                  batch_size=p["batch"], save_models=False)
    for src, dest in (("reconstructions.png", "ae-reconstructions.png"),
                      ("interpolations.png", "ae-interpolations.png"),
                      ("pca_curve.png", "ae-pca-curve.png")):
        shutil.copyfile(work / src, ctx.out / dest)
    rows = {r["model"]: r for r in report["models"]}
    return Made([("ae-reconstructions.png", "rows: originals, PCA, conv nearest / maxunpool / "
                  "transposed, denoising; then the noisy input and what the plain and the "
                  "denoising model make of it"),
                 ("ae-pca-curve.png", "PCA's MSE against its number of components; the conv "
                  "models at their bottleneck")],
                {"test MSE": {m: round(r["test_mse"], 4) for m, r in rows.items()},
                 "noisy -> clean MSE": {m: round(r["denoise_mse"], 4) for m, r in rows.items()},
                 "train / test images, epochs": f"{p['train']} / {p['test']}, {p['epochs']}",
                 "note": "a short run: here the conv models only match PCA; trained on 12 000 "
                         "images for 6 epochs (docs/lab.md) they beat it by ~25 %"})


def _ae_report(ctx: GalleryContext, p: dict[str, Any]) -> dict[str, Any]:
    """The autoencoder run's report, making the run first when it is missing (--only)."""
    path = ctx.out / "autoencoders" / "report.json"
    if not path.exists() or not (ctx.out / "ae-interpolations.png").exists():
        _autoencoders(ctx, p)
    return json.loads(path.read_text())


def _denoising(ctx: GalleryContext, p: dict[str, Any]) -> Made:
    report = _ae_report(ctx, p)
    rows = {r["model"]: r["denoise_mse"] for r in report["models"]}
    return Made([("ae-reconstructions.png", "last three rows: noisy input (std "
                  f"{report['denoise_std']}), the plain nearest model, the denoising model")],
                {"noisy -> clean MSE, plain": round(rows["conv-nearest"], 4),
                 "noisy -> clean MSE, denoising": round(rows["conv-nearest-denoise"], 4)})


def _interpolation(ctx: GalleryContext, p: dict[str, Any]) -> Made:
    _ae_report(ctx, p)
    return Made([("ae-interpolations.png", "decoding points on the straight line between two "
                  "codes, one row per model")], {"steps": 10})


def _face_search(ctx: GalleryContext, p: dict[str, Any]) -> Made:
    import skimage.data

    from transferkit.autoencoders import ConvAutoencoder
    from transferkit.features import embed_images
    from transferkit.lab.pictures import precision_at_k, search_rows

    faces = skimage.data.lfw_subset()  # 200 images: 100 faces then 100 non-faces
    labels = np.r_[np.ones(100, int), np.zeros(len(faces) - 100, int)]
    pil = [Image.fromarray((f * 255).round().astype(np.uint8)) for f in faces]
    small = np.stack([np.asarray(im.resize((28, 28))) for im in pil])
    ae = ConvAutoencoder(p["bottleneck"], "nearest", epochs=p["epochs"], batch_size=32,
                         verbose=False).fit(small)
    codes = ae.transform(small)
    embeddings = embed_images([im.convert("RGB") for im in pil], ctx.backbone)
    k = p["k"]
    ae_precision, ae_hits = precision_at_k(codes, labels, k, metric="l2")
    bb_precision, bb_hits = precision_at_k(embeddings, labels, k, metric="cosine")
    queries = [0, 1, 2, 100, 101, 102]
    picture = search_rows(pil, labels, queries, {"autoencoder codes": ae_hits,
                                                 "backbone embeddings": bb_hits})
    name = ctx.save(picture, "face-search.png")
    return Made([(name, f"queries from skimage.data.lfw_subset(), their {k} nearest others; "
                        f"green = same kind (face / non-face), red = the other")],
                {f"precision@{k}, autoencoder codes ({p['bottleneck']} numbers)":
                     round(ae_precision, 3),
                 f"precision@{k}, backbone embeddings ({embeddings.shape[1]} numbers)":
                     round(bb_precision, 3)})


def gallery_pictures(quick: bool = False) -> list[Picture]:
    """The gallery's pictures in page order; ``quick`` shrinks every knob (tests)."""
    q = quick
    vis_steps = 6 if q else 256
    ae_command = ("transferkit autoencoder report --train-size 3000 --test-size 500 "
                  "--epochs 5 --batch-size 32")
    autoencoders = {"train": 200 if q else 3000, "test": 50 if q else 500, "bottleneck": 32,
                    "epochs": 1 if q else 5, "batch": 32}
    return [
        Picture("ideal-tabby", "The ideal tabby cat", "transferkit visualize tabby",
                {"cls": "tabby", "steps": vis_steps, "seed": 0}, _ideal),
        Picture("ideal-zebra", "The ideal zebra", "transferkit visualize zebra",
                {"cls": "zebra", "steps": vis_steps, "seed": 0}, _ideal),
        Picture("atlas", "Layer atlas", "transferkit atlas -o atlas.png",
                {"channels": 2 if q else 6, "steps": 3 if q else 64}, _atlas),
        Picture("top-images", "Top-activating images",
                "transferkit top-images blocks.5 3 FOLDER -k 9; transferkit visualize "
                "channel:blocks.5:3",
                {"layer": "blocks.5", "channel": 3, "k": 9, "steps": 4 if q else 128},
                _top_images),
        Picture("attack", "Adversarial flip: coffee to tabby",
                "transferkit attack coffee --target tabby --eps 8/255",
                {"photo": "coffee", "target": "tabby", "eps": "8/255", "steps": 3 if q else 20},
                _attack),
        Picture("svd", "SVD of a photo", "transferkit.lab.svd_compress(photo, k)",
                {"photo": "astronaut", "size": 96 if q else 256, "ks": [1, 2, 10, 50]}, _svd),
        Picture("autoencoders", "PCA vs three conv autoencoders", ae_command, autoencoders,
                _autoencoders),
        # the next two show files of the run above: same parameters, so they are redone with it
        Picture("denoising", "Denoising autoencoder", ae_command, autoencoders, _denoising),
        Picture("interpolation", "Interpolation in code space", ae_command, autoencoders,
                _interpolation),
        Picture("face-search", "Face search: autoencoder codes vs backbone embeddings",
                "transferkit gallery (lab.pictures.precision_at_k)",
                {"bottleneck": 32, "epochs": 2 if q else 40, "k": 5}, _face_search),
    ]


def _fashion_fixture() -> str | None:
    fixture = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "fashion-mini"
    return str(fixture) if fixture.is_dir() else None


def _photos_dir(out: Path) -> Path:
    from transferkit.data import write_sample_photos

    folder = out / "photos"
    write_sample_photos(folder)
    return folder


def build_gallery(output: str | os.PathLike = "out/gallery", quick: bool = False,
                  backbone: str = "efficientnet_lite0", images: str | os.PathLike | None = None,
                  only: list[str] | None = None, show_progress: bool = True) -> dict[str, Any]:
    """Make the missing or changed pictures under ``output`` and (re)write ``index.html``;
    ``images`` is the folder ranked for the atlas and top images (default: bundled photos +
    Fashion-MNIST). Returns the manifest."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / MANIFEST
    done = json.loads(manifest_path.read_text()).get("pictures", {}) \
        if manifest_path.exists() else {}
    ctx = GalleryContext(out, backbone, None if images is None else str(images))
    todo = [p for p in gallery_pictures(quick) if only is None or p.key in only]
    for pic in (progress(todo, desc="gallery", unit="picture") if show_progress else todo):
        params = {**pic.params, "backbone": backbone, "images": ctx.images}
        previous = done.get(pic.key)
        if previous and previous["params"] == params and all(
                (out / f).exists() for f, _ in previous["figures"]):
            previous.update(title=pic.title, command=pic.command)
            continue
        start = time.perf_counter()
        made = pic.make(ctx, pic.params)
        done[pic.key] = {"title": pic.title, "command": pic.command, "params": params,
                         "figures": [list(f) for f in made.figures], "numbers": made.numbers,
                         "seconds": round(time.perf_counter() - start, 1)}
        atomic_write_text(manifest_path, json.dumps({"pictures": done}, indent=2))
    atomic_write_text(manifest_path, json.dumps({"pictures": done}, indent=2))
    order = [p.key for p in gallery_pictures(quick)]
    atomic_write_text(out / "index.html", render_html(done, order, out))
    return {"pictures": done}


def render_html(done: dict[str, Any], order: list[str], out: Path) -> str:
    """One page, no scripts, no network: images by relative name, numbers as lists."""
    sections = []
    for key in [k for k in order if k in done] + [k for k in done if k not in order]:
        entry = done[key]
        figures = "".join(
            f'<figure><img src="{html.escape(f)}" alt="{html.escape(c)}">'
            f"<figcaption>{html.escape(c)}</figcaption></figure>"
            for f, c in entry["figures"] if (out / f).exists())
        numbers = "".join(f"<li><b>{html.escape(str(k))}</b>: {html.escape(_fmt(v))}</li>"
                          for k, v in entry["numbers"].items())
        sections.append(f'<section id="{html.escape(key)}"><h2>{html.escape(entry["title"])}'
                        f"</h2><pre>{html.escape(entry['command'])}</pre>{figures}"
                        f"<ul>{numbers}</ul><p class=t>made in {entry['seconds']} s</p>"
                        f"</section>")
    return ("<!doctype html><html lang=en><head><meta charset=utf-8><title>transferkit lab"
            "</title><style>body{font:15px system-ui,sans-serif;max-width:1200px;margin:auto;"
            "padding:1em}img{max-width:100%;image-rendering:auto}pre{background:#f4f4f4;"
            "padding:.4em}figure{margin:.5em 0}.t{color:#777;font-size:12px}</style></head>"
            "<body><h1>transferkit lab gallery</h1><p>Made by <code>transferkit gallery</code>"
            "; every picture names the command that makes it.</p>"
            + "".join(sections) + "</body></html>\n")


def _fmt(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value)
    return str(value)
