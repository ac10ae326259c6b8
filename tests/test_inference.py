"""Fast CPU path: ONNX export + ONNX Runtime agree with PyTorch on real photos; the file
pipeline's engines agree; exports are cached by weights; transfer models export whole."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from transferkit.backbones import imagenet_labels
from transferkit.data import load_image
from transferkit.features import embed_folder, embed_paths, preprocess_images
from transferkit.features.pipeline import decode_file, iter_pixel_batches, normalize_pixels
from transferkit.runtime import (
    ENGINES,
    OnnxBackbone,
    backbone_fingerprint,
    choose_engine,
    engine_available,
    export_backbone,
    inference_model,
    make_runner,
    onnx_backbone,
    run_in_order,
    runs_files,
)
from transferkit.train import export_transfer_model
from transferkit.utils import available_cores


def _rel_err(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture()
def mixed_folder(photos_dir, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for path in sorted(photos_dir.glob("*.jpg")):
        shutil.copy(path, folder / path.name)
    (folder / "broken.jpg").write_bytes((photos_dir / "coffee.jpg").read_bytes()[:2000])
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.png").write_text("not an image")
    return folder


def test_onnx_matches_pytorch_on_photos(lite0, photos_dir, tmp_path, cat_classes):
    files = sorted(photos_dir.glob("*.jpg"))
    batch = preprocess_images([load_image(p) for p in files], lite0)
    lite0.eval()
    with torch.inference_mode():
        emb_ref, logits_ref = lite0.embed(batch).numpy(), lite0(batch).numpy()
    session = OnnxBackbone(export_backbone(lite0, tmp_path / "lite0.onnx"), threads=1)
    emb, logits = session.embed(batch).numpy(), session.forward(batch).numpy()
    assert emb.shape == (len(files), 1280) and logits.shape == (len(files), 1000)
    assert _rel_err(emb, emb_ref) < 1e-4
    assert _rel_err(logits, logits_ref) < 1e-4
    assert (logits.argmax(1) == logits_ref.argmax(1)).all()
    top = session.predict_topk(batch[[i for i, p in enumerate(files) if p.stem == "chelsea"]], 1)
    assert imagenet_labels()[top[0][0][0]] in cat_classes
    assert session.spec() == lite0.spec() and session.threads == 1
    # The TorchScript exporter folds batch norm in place; the caller's model must not change.
    with torch.inference_mode():
        assert np.array_equal(lite0.embed(batch).numpy(), emb_ref)
    with pytest.raises(ValueError, match=r"expected a batch of shape \(N, 3, 224, 224\)"):
        session.embed(batch[:, :, :100, :100])


def _cosine(a, b) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


BATCH_ENGINES = [name for name in ENGINES.list() if not runs_files(name)]


@pytest.mark.parametrize("engine", BATCH_ENGINES)
def test_every_engine_gives_pytorchs_outputs_at_f32(engine, lite0, photos_dir, cat_classes):
    """One parity bar for every registered batch engine (torch, onnx, openvino, and any a
    plugin adds): its per-image model, its long-job runner (batch split across cores) and the
    file pipeline on it all give eager PyTorch's vectors and classes."""
    files = sorted(photos_dir.glob("*.jpg"))
    batch = preprocess_images([load_image(p, draft_size=lite0.preprocessing.resize_size)
                               for p in files], lite0)
    lite0.eval()
    with torch.inference_mode():
        emb_ref, logits_ref = lite0.embed(batch).numpy(), lite0(batch).numpy()
    model = inference_model(engine, lite0, "f32")
    with torch.inference_mode():
        emb, logits = np.asarray(model.embed(batch)), np.asarray(model.forward(batch))
    assert _cosine(emb, emb_ref).min() >= 0.99999 and _rel_err(emb, emb_ref) < 1e-4
    assert _rel_err(logits, logits_ref) < 1e-4
    assert (logits.argmax(1) == logits_ref.argmax(1)).all()
    chelsea = [i for i, p in enumerate(files) if p.stem == "chelsea"]
    assert imagenet_labels()[int(logits[chelsea].argmax())] in cat_classes
    runner = make_runner(engine, lite0, threads=2, n_batches=8)
    assert (runner.engine, runner.precision) == (engine, "f32")
    split = np.concatenate([v for _, v in run_in_order(runner.embed, [(0, batch[:3]),
                                                                      (1, batch[3:])],
                                                       runner.parallel)])
    assert _cosine(split, emb_ref).min() >= 0.99999
    table = embed_paths(files, lite0, engine=engine, show_progress=False)
    assert table.runtime == {"engine": engine, "precision": "f32"}
    assert _cosine(table.vectors, emb_ref).min() >= 0.99999


def test_pipeline_pixels_are_bit_identical_to_the_eval_transform(lite0, photos_dir):
    files = sorted(photos_dir.glob("*.jpg"))
    prep = lite0.preprocessing
    reference = preprocess_images([load_image(p, draft_size=prep.resize_size) for p in files],
                                  lite0)
    batches = list(iter_pixel_batches(files, prep, batch_size=2, workers=2))
    assert [i for b in batches for i in b.indices] == list(range(len(files)))
    pixels = np.concatenate([b.pixels for b in batches])
    for channels_last in (True, False):
        batch = normalize_pixels(pixels, prep, channels_last=channels_last)
        assert batch.is_contiguous(memory_format=torch.channels_last) == channels_last
        assert torch.equal(batch, reference)
    assert decode_file(files[0], prep).shape == (224, 224, 3)


def test_process_workers_give_the_same_batches(lite0, mixed_folder):
    files = sorted(mixed_folder.iterdir())
    prep = lite0.preprocessing
    inline = list(iter_pixel_batches(files, prep, batch_size=3, workers=0))
    forked = list(iter_pixel_batches(files, prep, batch_size=3, workers=2, processes=True))
    assert [b.indices for b in inline] == [b.indices for b in forked]
    assert [b.failures for b in inline] == [b.failures for b in forked]
    assert sum(len(b.failures) for b in forked) == 3
    for a, b in zip(inline, forked):
        assert (a.pixels is None and b.pixels is None) or np.array_equal(a.pixels, b.pixels)


def test_engines_agree_and_skip_bad_files(lite0, mixed_folder):
    by_torch = embed_folder(mixed_folder, lite0, engine="torch", batch_size=3, num_workers=0)
    by_onnx = embed_folder(mixed_folder, lite0, engine="onnx", batch_size=3, num_workers=2)
    names = [p.rsplit("/", 1)[-1] for p in by_onnx.paths]
    assert names == ["astronaut.jpg", "camera.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg"]
    assert by_torch.paths == by_onnx.paths and by_torch.spec == by_onnx.spec == lite0.spec()
    assert by_torch.failures == by_onnx.failures
    assert sorted((p.rsplit("/", 1)[-1], r) for p, r in by_onnx.failures) == [
        ("broken.jpg", "truncated or corrupt image data"), ("empty.png", "empty file (0 bytes)"),
        ("notes.png", "not an image (unrecognised format)")]
    assert _rel_err(by_onnx.vectors, by_torch.vectors) < 1e-4
    # a long job (>= 2 batches per core) splits each batch over single-threaded session calls
    split = embed_folder(mixed_folder, lite0, engine="onnx", batch_size=2, threads=2)
    assert split.paths == by_onnx.paths and split.failures == by_onnx.failures
    assert _rel_err(split.vectors, by_onnx.vectors) < 1e-5
    # "auto" takes the fastest installed exporting engine (OpenVINO, else ONNX Runtime) once
    # this backbone's export is cached, torch for a small first job, and refuses unknown
    # engines.
    from transferkit.backbones import create

    fastest = "openvino" if engine_available("openvino") else "onnx"
    assert choose_engine("auto", lite0, 1) == fastest
    assert choose_engine("auto", copy.deepcopy(lite0), 1) == fastest  # same weights, same file
    untrained = create("efficientnet_lite0", pretrained=False)
    assert choose_engine("auto", untrained, 1) == "torch"
    assert choose_engine("auto", untrained, 64) == fastest
    with pytest.raises(ValueError, match="engine must be one of"):
        choose_engine("tensorrt", lite0, 1)


def test_export_cache_is_keyed_by_weights(lite0, tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERKIT_CACHE", str(tmp_path))
    model = copy.deepcopy(lite0)
    first = onnx_backbone(model)
    assert onnx_backbone(model) is first  # in-memory hit, no re-export
    assert first.path.parent == tmp_path / "onnx" and first.path.name.startswith(
        "efficientnet_lite0-224px-")
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    before = first.forward(x).numpy()
    fingerprint = backbone_fingerprint(model)
    with torch.no_grad():
        model.model.classifier.bias.add_(1.0)  # an in-place update, as an optimiser makes
    assert backbone_fingerprint(model) != fingerprint
    second = onnx_backbone(model)
    assert second is not first and second.path != first.path
    np.testing.assert_allclose(second.forward(x).numpy(), before + 1.0, atol=1e-3)
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 2
    assert not list((tmp_path / "onnx").glob(".*tmp"))


def test_bad_onnx_files_and_thread_settings(tmp_path, monkeypatch):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"definitely not protobuf")
    with pytest.raises(ValueError, match="junk.onnx"):
        OnnxBackbone(junk)
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        OnnxBackbone(tmp_path / "missing.onnx")
    monkeypatch.setenv("TRANSFERKIT_THREADS", "3")
    assert available_cores() == 3
    monkeypatch.setenv("TRANSFERKIT_THREADS", "many")
    with pytest.raises(ValueError, match="TRANSFERKIT_THREADS"):
        available_cores()


def test_transfer_model_exports_backbone_and_head(lite0, fashion_mini, tmp_path):
    from transferkit.backbones import create
    from transferkit.heads import LinearHead, RandomForestHead
    from transferkit.train import TransferModel, load_model

    backbone = create("efficientnet_lite0", image_size=64)
    files = sorted(fashion_mini.glob("*/*.png"))[::3]
    labels = [p.parent.name for p in files]
    feats = embed_paths(files, backbone, engine="torch").vectors
    images = [load_image(p) for p in files[:12]]
    batch = preprocess_images(images, backbone)
    for head, included in ((LinearHead(epochs=15), True),
                           (RandomForestHead(n_estimators=10), False)):
        head.fit(feats, labels)
        directory = TransferModel([backbone], [head], sorted(set(labels))).save(
            tmp_path / head.kind)
        model = load_model(directory)
        path, head_included = export_transfer_model(directory, tmp_path / f"{head.kind}.onnx")
        assert head_included is included
        session = OnnxBackbone(path)
        assert session.spec() == backbone.spec()
        if included:
            assert session.output_names == ["embedding", "logits", "probabilities"]
            expected = model.predict_proba_images(images)
            cols = [model.classes_.index(c) for c in session.class_names]
            got = session.run(batch)["probabilities"]
            np.testing.assert_allclose(got, expected[:, cols], atol=1e-4)
        else:
            assert session.output_names == ["embedding"]
            assert "random_forest head is not in this graph" in session.metadata["note"]
            with pytest.raises(ValueError, match="no 'logits' output"):
                session.forward(batch)


def test_cli_export_and_embed_engine(tmp_path, photos_dir, cat_classes):
    out = tmp_path / "lite0.onnx"
    result = subprocess.run([sys.executable, "-m", "transferkit", "export", "efficientnet_lite0",
                             "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "outputs: embedding, logits" in result.stdout
    assert "check: embeddings match PyTorch" in result.stdout
    session = OnnxBackbone(out)
    batch = normalize_pixels(decode_file(photos_dir / "chelsea.jpg", session.preprocessing)[None],
                             session.preprocessing, channels_last=False)
    assert imagenet_labels()[session.predict_topk(batch, 1)[0][0][0]] in cat_classes
    bad = subprocess.run([sys.executable, "-m", "transferkit", "embed", str(photos_dir), "-o",
                          str(tmp_path / "e.parquet"), "--engine", "tensorrt"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "engine must be one of" in bad.stderr


def test_resize_crop_has_torchvision_geometry_and_near_identical_pixels(lite0, photos_dir):
    """Our resize + centre crop (torch's uint8 antialiased kernel; one Pillow call on the crop's
    source region for other filters) against torchvision's Resize + CenterCrop on PIL."""
    import skimage.data
    from PIL import Image
    from torchvision import transforms as T

    from transferkit.backbones import Preprocessing

    photo = Image.fromarray(skimage.data.astronaut())
    preps = (Preprocessing(224), Preprocessing(64, crop_pct=1.0), Preprocessing(97, "bilinear"),
             Preprocessing(80, "lanczos"))
    for prep in preps:
        two_step = T.Compose([T.Resize(prep.resize_size, interpolation=T.InterpolationMode(
            prep.interpolation)), T.CenterCrop(prep.input_size)])
        for size in [(300, 300), (257, 500), (640, 427), (50, 31), (prep.resize_size, 999)]:
            image = photo.resize(size)
            ours = np.asarray(prep.resize_crop()(image), dtype=int)
            assert np.array_equal(prep.resize_crop().pixels(image), ours)
            ref = np.asarray(two_step(image), dtype=int)
            assert ours.shape == ref.shape == (prep.input_size, prep.input_size, 3), size
            diff = np.abs(ours - ref)
            if prep.interpolation in ("bicubic", "bilinear"):  # rounding: +-1, rarely
                assert diff.max() <= 2 and diff.mean() < 0.02, (prep, size)
            else:  # Pillow's pass order: rare, small, ~10 at a hard edge at most
                assert diff.mean() < 0.3 and np.percentile(diff, 99.9) <= 4, (prep, size)
                assert diff.max() <= 12, (prep, size)
    gray = photo.convert("L").resize((300, 200))
    assert prep.resize_crop()(gray).size == (80, 80)

    # On real photos the vectors are the same for every practical purpose.
    prep = lite0.preprocessing
    two_step = T.Compose([T.Resize(prep.resize_size, interpolation=T.InterpolationMode.BICUBIC),
                          T.CenterCrop(prep.input_size), T.ToTensor(),
                          T.Normalize(prep.mean, prep.std)])
    images = [load_image(p, draft_size=prep.resize_size) for p in sorted(photos_dir.glob("*.jpg"))]
    with torch.inference_mode():
        ours = lite0.embed(preprocess_images(images, lite0))
        ref = lite0.embed(torch.stack([two_step(i) for i in images]))
    assert torch.nn.functional.cosine_similarity(ours, ref).min() > 0.999


def test_onnx_engine_leaves_torch_threads_as_it_found_them(lite0, photos_dir):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        embed_folder(photos_dir, lite0, engine="onnx", batch_size=2, show_progress=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_torch_runner_made_in_inference_mode_leaves_the_backbone_trainable(lite0):
    """The service builds its runner inside torch.inference_mode(); the channels_last copy of
    the weights must still be ordinary tensors, or the shared backbone can never train."""
    from transferkit.runtime import make_runner

    backbone = copy.deepcopy(lite0)
    with torch.inference_mode():
        make_runner("torch", backbone)
    assert not any(p.is_inference() for p in backbone.model.parameters())
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    backbone.model.forward_features(x).sum().backward()  # raised before the fix
    assert x.grad is not None
