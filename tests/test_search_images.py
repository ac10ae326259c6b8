"""ImageIndex on real photos and Fashion-MNIST with the real Lite0 backbone (64 px for speed)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transferkit.search import (
    ImageIndex,
    IncompatibleModelError,
    build_index,
    contact_sheet,
    find_duplicates,
)

SIZE = 64


@pytest.fixture(scope="module")
def lite0_64():
    """Own instance: image_size changes preprocessing in place, the session one stays 224."""
    from transferkit.backbones import create

    return create("efficientnet_lite0", image_size=SIZE)


@pytest.fixture(scope="module")
def gallery(tmp_path_factory, photos_dir, fashion_mini) -> Path:
    """Photos + 4 Fashion-MNIST classes + two unreadable files."""
    root = tmp_path_factory.mktemp("gallery")
    shutil.copytree(photos_dir, root / "photos")
    for cls in ("Bag", "Sandal", "Trouser", "Coat"):
        shutil.copytree(fashion_mini / cls, root / "fashion" / cls)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (root / "empty.png").write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def built(gallery, lite0_64, tmp_path_factory) -> ImageIndex:
    out = tmp_path_factory.mktemp("idx") / "gallery.tkindex"
    return build_index(gallery, lite0_64, output=out, num_workers=0, chunk_size=20)


def test_build_skips_and_reports_bad_files(built, gallery):
    assert len(built) == 5 + 48
    failed = {Path(p).name: reason for p, reason in built.failures}
    assert set(failed) == {"broken.jpg", "empty.png"}
    assert "empty" in failed["empty.png"]
    assert built.spec["kind"] == "image" and built.spec["preprocessing"]["input_size"] == SIZE
    assert built.path.exists() and not built.contains_path(gallery / "broken.jpg")


def test_query_image_finds_itself_first(built, gallery):
    queries = [gallery / "photos" / "chelsea.jpg", gallery / "photos" / "coffee.jpg",
               *sorted((gallery / "fashion" / "Sandal").iterdir())[:3]]
    for query, hits in zip(queries, built.search_paths(queries, k=5)):
        assert len(hits) == 5
        assert Path(hits[0].path) == query.resolve() and hits[0].distance < 1e-3
        assert hits[0].id == built.id_of(query)
        assert [h.distance for h in hits] == sorted(h.distance for h in hits)
    # a sandal's other neighbours are mostly sandals: the embedding carries meaning
    sandal_hits = built.search_paths([queries[2]], k=6)[0][1:]
    assert sum("Sandal" in h.path for h in sandal_hits) >= 3
    # PIL images through the in-memory path agree with the file path
    pil_hits = built.search_images([Image.open(queries[0])], k=3)[0]
    assert pil_hits[0].path == str(queries[0].resolve())


def test_contains_path_accepts_any_spelling(built, gallery, monkeypatch):
    target = gallery / "photos" / "coffee.jpg"
    assert built.contains_path(target) and built.contains_path(str(target))
    monkeypatch.chdir(gallery)
    assert built.contains_path("photos/coffee.jpg")
    assert not built.contains_path("photos/../broken.jpg")
    assert not built.contains_path("/etc/passwd")


def test_reload_searches_the_same_and_embeds_the_same_way(built, gallery):
    loaded = ImageIndex.load(built.path)  # recreates Lite0 at 64 px from the stored spec
    assert loaded.backbone.preprocessing.input_size == SIZE
    query = [gallery / "fashion" / "Bag" / sorted(os.listdir(gallery / "fashion" / "Bag"))[0]]
    a = [(h.id, round(h.distance, 4)) for h in built.search_paths(query, 5)[0]]
    b = [(h.id, round(h.distance, 4)) for h in loaded.search_paths(query, 5)[0]]
    assert a == b
    assert loaded.paths == built.paths


def test_query_from_another_model_or_preprocessing_is_refused(built, lite0, gallery):
    from transferkit.backbones import create

    image = Image.open(gallery / "photos" / "chelsea.jpg")
    with pytest.raises(IncompatibleModelError, match=r"64px.*224px") as err:
        built.search_images([image], k=3, backbone=lite0)  # same weights, 224 px
    assert "preprocessing" in str(err.value) and built.path.name in str(err.value)
    random_init = create("efficientnet_lite0", pretrained=False, image_size=SIZE)
    with pytest.raises(IncompatibleModelError, match="weights random"):
        built.search_images([image], k=3, backbone=random_init)
    with pytest.raises(IncompatibleModelError, match="text model"):
        built.search_vectors(np.zeros((1, 1280), np.float32), 3,
                             spec={"kind": "text", "name": "all-MiniLM-L6-v2"})
    with pytest.raises(IncompatibleModelError):
        built.set_backbone(lite0)


def test_add_and_remove_paths_without_rebuild(built, gallery, tmp_path, lite0_64):
    index = ImageIndex.load(built.path, backbone=lite0_64)
    faiss_before = index.index.raw_index
    new = tmp_path / "chelsea_small.jpg"
    Image.open(gallery / "photos" / "chelsea.jpg").resize((150, 100)).save(new, quality=60)
    ids = index.add_paths([new, gallery / "photos" / "coffee.jpg"])
    assert len(ids) == 1 and index.skipped[0][1] == "already in the index"
    assert index.index.raw_index is faiss_before and len(index) == len(built) + 1
    top = index.search_paths([new], 2)[0]
    assert top[0].id == int(ids[0])
    assert Path(top[1].path).name == "chelsea.jpg"  # the original is its nearest other
    index.remove_paths([gallery / "photos" / "chelsea.jpg"])
    assert not index.contains_path(gallery / "photos" / "chelsea.jpg")
    assert all(Path(h.path).name != "chelsea.jpg" for h in index.search_paths([new], 10)[0])
    index.save(tmp_path / "edited.tkindex")
    again = ImageIndex.load(tmp_path / "edited.tkindex", backbone=lite0_64)
    assert len(again) == len(built) and again.contains_path(new)
    assert again.index.num_tombstones == 1


def test_failed_build_keeps_previous_index(built, gallery, lite0_64, tmp_path):
    target = tmp_path / "keep.tkindex"
    shutil.copy(built.path, target)
    before = target.read_bytes()

    def abort(done, total):
        raise RuntimeError(f"stop after {done}/{total}")

    with pytest.raises(RuntimeError, match="stop after"):
        build_index(gallery / "fashion", lite0_64, output=target, num_workers=0,
                    chunk_size=8, callback=abort)
    assert target.read_bytes() == before
    assert len(ImageIndex.load(target, backbone=lite0_64)) == len(built)


_KILLED_BUILD = textwrap.dedent("""
    import sys
    from transferkit.search import build_index
    build_index(sys.argv[1], "efficientnet_lite0", image_size=64, output=sys.argv[2],
                num_workers=0, chunk_size=4,
                callback=lambda done, total: print("chunk", done, total, flush=True))
""")


def test_build_killed_midway_leaves_previous_index_usable(built, gallery, tmp_path):
    target = tmp_path / "old.tkindex"
    shutil.copy(built.path, target)
    before = target.read_bytes()
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_BUILD, str(gallery / "fashion"),
                             str(target)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "TRANSFERKIT_QUIET": "1"})
    try:
        line = proc.stdout.readline()
        assert line.startswith("chunk 4 48"), line  # mid-build: 4 of 48 embedded
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert target.read_bytes() == before
    assert len(ImageIndex.load(target)) == len(built)


def test_index_from_embeddings_parquet(gallery, lite0_64, tmp_path):
    from transferkit.features import embed_paths

    files = sorted((gallery / "fashion" / "Trouser").iterdir())[:6]
    emb = embed_paths(files, lite0_64, num_workers=0, show_progress=False)
    emb.save(tmp_path / "emb.parquet")
    index = build_index(tmp_path / "emb.parquet", output=tmp_path / "from_parquet.tkindex")
    assert len(index) == 6 and index.spec["preprocessing"]["input_size"] == SIZE
    index.set_backbone(lite0_64)
    assert index.search_paths([files[2]], 1)[0][0].path == str(files[2])


def test_dedupe_finds_resized_reencoded_copy(gallery, lite0_64, tmp_path):
    folder = tmp_path / "dupes"
    shutil.copytree(gallery / "photos", folder)
    for cls in ("Bag", "Coat"):
        shutil.copytree(gallery / "fashion" / cls, folder / cls)
    Image.open(folder / "coffee.jpg").resize((300, 200)).save(folder / "coffee_copy.png")
    Image.open(folder / "chelsea.jpg").save(folder / "chelsea_q40.jpg", quality=40)
    # 0.1 suits 64 px embeddings (copies measure <= 0.01 here, distinct photos >= 0.5)
    report = find_duplicates(folder, threshold=0.1, backbone=lite0_64, num_workers=0)
    names = [sorted(Path(p).name for p in g.paths) for g in report]
    with_photos = [g for g in names if any(n.endswith((".jpg", "_copy.png")) for n in g)]
    assert sorted(with_photos) == [["chelsea.jpg", "chelsea_q40.jpg"],
                                   ["coffee.jpg", "coffee_copy.png"]]
    for group in report:  # Fashion-MNIST has real near-duplicates; never across classes
        assert len({Path(p).parent.name for p in group.paths}) == 1
        assert group.max_distance <= 0.1
    assert report.num_items == 5 + 2 + 24 and report.failures == []
    assert len(find_duplicates(folder, threshold=1e-7, backbone=lite0_64,
                               num_workers=0)) == 0


def test_contact_sheet_png(built, gallery, tmp_path):
    query = gallery / "photos" / "chelsea.jpg"
    hits = built.search_paths([query], 5)[0]
    out = contact_sheet(Image.open(query), hits, tmp_path / "sheet.png", columns=3)
    with Image.open(out) as sheet:
        assert sheet.format == "PNG" and sheet.width > 300 and sheet.height > 400


def test_text_index_is_not_an_image_index(tmp_path):
    from transferkit.search import VectorIndex

    vectors = VectorIndex(4, spec={"kind": "text", "name": "all-MiniLM-L6-v2"})
    vectors.add(np.eye(4, dtype=np.float32), ["a", "b", "c", "d"])
    vectors.save(tmp_path / "texts.tkindex")
    with pytest.raises(ValueError, match=r"texts.tkindex.*text vectors.*--text"):
        ImageIndex.load(tmp_path / "texts.tkindex")
