"""Faults a user's machine really has: SIGKILL mid-job and a full disk.

Each job runs as a real ``transferkit`` process and is killed with SIGKILL at a point that
is watched for (a checkpoint or a temporary artefact appearing on disk) or after a delay.
Afterwards the previous artefact must load exactly as before (or, killed after the rename,
be the complete new one), and running the command again (``--resume`` where the command has
one) must finish the job. Disk-full runs under a file-size limit (``RLIMIT_FSIZE``, which a
full disk looks like to the writer) and must end with one ``error:`` line and no partial
file.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ENV = {**os.environ, "PYTHONPATH": str(SRC), "TRANSFERKIT_QUIET": "1"}
KILLS: list[tuple[str, str, bool]] = []  # (job, kill point, killed before it finished)


def transferkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "transferkit", *args]


def run_and_kill(command: list[str], kill_when: Callable[[float], bool],
                 timeout: float = 240) -> bool:
    """Run ``command``; SIGKILL it as soon as ``kill_when(seconds since start)`` is true.
    Returns whether it was killed (False: it finished first)."""
    proc = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    start = time.monotonic()
    try:
        while proc.poll() is None:
            elapsed = time.monotonic() - start
            if elapsed > timeout:
                raise AssertionError(f"{command} still running after {timeout} s")
            if kill_when(elapsed):
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.002)
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def temp_of(target: Path) -> Callable[[float], bool]:
    """True once ``atomic_path`` has started writing ``target`` (its temp name exists)."""
    return lambda _elapsed: any(target.parent.glob(f".{target.name}.*.tmp"))


def after(seconds: float) -> Callable[[float], bool]:
    return lambda elapsed: elapsed >= seconds


def digest(path: Path) -> str:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    sha = hashlib.sha256()
    for file in files:
        sha.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        sha.update(file.read_bytes())
    return sha.hexdigest()


def run_ok(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(transferkit(*args), env=ENV, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def images(tmp_path_factory, fashion_mini) -> tuple[Path, Path]:
    """Two disjoint folders of real images: one to build from, one to add."""
    root = tmp_path_factory.mktemp("fault-images")
    first, second = root / "first", root / "second"
    for n, png in enumerate(sorted(fashion_mini.glob("*/*.png"))):
        target = (first if n % 2 else second) / png.parent.name / png.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(png, target)
    return first, second


# -- SIGKILL ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_sigkill_during_index_add_keeps_the_index_and_a_rerun_completes(images, tmp_path):
    from transferkit.search import ImageIndex

    first, second = images
    index = tmp_path / "images.tkindex"
    run_ok("index", "build", str(first), "-o", str(index), "--image-size", "64")
    size_before, digest_before = len(ImageIndex.load(index)), digest(index)
    for point, kill_when in (("while embedding", after(3.0)), ("mid-save", temp_of(index))):
        killed = run_and_kill(transferkit("index", "add", str(index), str(second)), kill_when)
        KILLS.append(("index add", point, killed))
        reopened = ImageIndex.load(index)  # loads: never a half-written file
        if len(reopened) == size_before:
            assert digest(index) == digest_before, point
        else:  # killed after the rename: the whole new index
            assert not killed or point == "mid-save"
            assert len(reopened) == size_before + 60
            break
    run_ok("index", "add", str(index), str(second))
    final = ImageIndex.load(index)
    assert len(final) == size_before + 60 and len(set(final.paths)) == len(final)
    again = run_ok("index", "add", str(index), str(second))
    assert "added 0 images" in again.stdout and "skipped 60 already-indexed" in again.stdout


@pytest.mark.slow
def test_sigkill_during_frozen_train_keeps_the_previous_model(fashion_mini, tmp_path):
    from transferkit.train import load_model

    model_dir = tmp_path / "model"
    common = ("train", str(fashion_mini), "-o", str(model_dir), "--image-size", "64")
    run_ok(*common, "--strategy", "logreg")
    before = digest(model_dir)
    for point, kill_when in (("while fitting", after(4.0)), ("mid-save", temp_of(model_dir))):
        killed = run_and_kill(transferkit(*common, "--strategy", "linear"), kill_when)
        KILLS.append(("train logreg -> linear", point, killed))
        if digest(model_dir) != before:  # finished or renamed before the kill landed
            assert load_model(model_dir).manifest["strategy"] == "linear"
            break
        assert load_model(model_dir).manifest["strategy"] == "logreg"
    run_ok(*common, "--strategy", "linear")
    assert load_model(model_dir).manifest["strategy"] == "linear"


def _checkpoint_epoch(checkpoint: Path) -> int:
    try:
        return json.loads((checkpoint / "state.json").read_text())["epoch"]
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.slow
def test_sigkill_during_finetune_then_resume_continues(fashion_mini, tmp_path):
    from transferkit.train import load_model

    model_dir = tmp_path / "ft"
    checkpoint = tmp_path / "ft.ckpt"
    run_ok("train", str(fashion_mini), "-o", str(model_dir), "--image-size", "48",
           "--strategy", "logreg")  # the previous artefact the killed run must not touch
    before = digest(model_dir)
    command = ("train", str(fashion_mini), "-o", str(model_dir), "--strategy", "finetune",
               "--image-size", "48", "--epochs", "3", "--head-epochs", "10",
               "--max-steps-per-epoch", "2", "--batch-size", "16", "--patience", "9")
    killed = run_and_kill(transferkit(*command),
                          lambda _elapsed: _checkpoint_epoch(checkpoint) >= 1)
    KILLS.append(("train finetune", "after epoch 1's checkpoint", killed))
    assert killed and digest(model_dir) == before
    epoch = _checkpoint_epoch(checkpoint)
    assert 1 <= epoch < 3
    run_ok(*command, "--resume")
    manifest = load_model(model_dir).manifest
    assert manifest["strategy"] == "finetune"
    assert manifest["training"]["resumed_from_epoch"] == epoch
    assert manifest["training"]["epochs_run"] == 3
    assert not checkpoint.exists()


@pytest.mark.slow
def test_sigkill_during_autoencoder_training_keeps_the_previous_model(tmp_path):
    from transferkit.autoencoders import load_autoencoder

    model_dir = tmp_path / "ae"
    common = ("autoencoder", "train", "-o", str(model_dir), "--limit", "600",
              "--bottleneck", "8")
    run_ok(*common, "--epochs", "1")
    before = digest(model_dir)
    for point, kill_when in (("while training", after(4.0)), ("mid-save", temp_of(model_dir))):
        killed = run_and_kill(transferkit(*common, "--epochs", "2"), kill_when)
        KILLS.append(("autoencoder train", point, killed))
        if digest(model_dir) != before:
            break
        assert load_autoencoder(model_dir).epochs == 1
    run_ok(*common, "--epochs", "2")
    assert load_autoencoder(model_dir).epochs == 2


@pytest.fixture(scope="module")
def dense_fixture(tmp_path_factory) -> Path:
    """Images + masks + boxes.csv (Fashion-MNIST items and drawn shapes) per split."""
    from transferkit.dense import write_fixture

    root = tmp_path_factory.mktemp("dense") / "data"
    write_fixture(root, n=24, size=64, seed=0)
    return root


def _checkpoint_history(checkpoint: Path) -> list[dict]:
    try:
        return json.loads((checkpoint / "state.json").read_text())["history"]
    except (OSError, ValueError, KeyError):
        return []


DENSE_JOBS = {
    "segment": lambda data, out: ("segment", "train", str(data / "train"), "--val",
                                  str(data / "val"), "-o", str(out), "--image-size", "64",
                                  "--batch-size", "8", "--patience", "20", "--binary"),
    "localize": lambda data, out: ("localize", "train", str(data / "train" / "boxes.csv"),
                                   "--val", str(data / "val" / "boxes.csv"), "-o", str(out),
                                   "--image-size", "64", "--batch-size", "8",
                                   "--patience", "20", "--no-augment"),
}


@pytest.mark.slow
@pytest.mark.parametrize("job", sorted(DENSE_JOBS))
def test_sigkill_during_dense_train_keeps_the_model_and_resume_continues(job, dense_fixture,
                                                                         tmp_path):
    """segment/localize train: killed after an epoch's checkpoint, the previous model is
    untouched and ``--resume`` carries on from that epoch (its history kept, not re-run)."""
    from transferkit import load

    model_dir = tmp_path / job
    checkpoint = tmp_path / f"{job}.ckpt"
    command = DENSE_JOBS[job](dense_fixture, model_dir)
    run_ok(*command, "--epochs", "1")  # the previous artefact
    before = digest(model_dir)
    killed = run_and_kill(transferkit(*command, "--epochs", "12"),
                          lambda _elapsed: len(_checkpoint_history(checkpoint)) >= 1)
    KILLS.append((f"{job} train", "after epoch 1's checkpoint", killed))
    assert killed and digest(model_dir) == before
    load(model_dir)  # still opens
    done_before_kill = _checkpoint_history(checkpoint)
    assert 1 <= len(done_before_kill) < 12
    run_ok(*command, "--epochs", "12", "--resume")
    history = json.loads((model_dir / "manifest.json").read_text())["history"]
    assert len(history) == 12
    # the epochs run before the kill are the checkpoint's (their timings), not run again
    assert history[:len(done_before_kill)] == done_before_kill
    assert not checkpoint.exists()


def test_every_kill_point_was_reached():
    """Runs after the kill tests (when they ran): each kill landed before its job ended."""
    if not KILLS:
        pytest.skip("the kill tests did not run (-m 'not slow')")
    assert all(killed for job, point, killed in KILLS if point != "mid-save"), KILLS
    print("kill points:", KILLS)


# -- disk full -------------------------------------------------------------------------------
def _with_file_size_limit(limit: int) -> Callable[[], None]:
    def limit_writes() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_writes


@pytest.mark.parametrize("args,output_name,limit", [
    (("embed", "{images}", "-o", "{out}", "--engine", "torch", "--image-size", "64"),
     "emb.parquet", 4096),
    (("index", "build", "{images}", "-o", "{out}", "--image-size", "64"), "images.tkindex",
     16384),
    (("train", "{images}", "-o", "{out}", "--image-size", "64", "--strategy", "logreg"),
     "model", 16384),
])
def test_disk_full_is_one_clear_line_and_leaves_nothing_behind(images, tmp_path, args,
                                                               output_name, limit):
    first, _ = images
    output = tmp_path / "out" / output_name
    output.parent.mkdir()
    command = [a.format(images=first, out=output) for a in args]
    from transferkit.utils import cache_dir

    env = {**ENV, "TRANSFERKIT_CACHE": str(tmp_path / "cache")}  # its writes hit the limit too
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "weights").symlink_to(cache_dir("weights"))  # read, never written
    result = subprocess.run(transferkit(*command), env=env, capture_output=True, text=True,
                            timeout=300, preexec_fn=_with_file_size_limit(limit))
    assert result.returncode == 2, (result.stdout, result.stderr)
    # one error line; the only other line allowed is the engine + precision notice
    lines = [line for line in result.stderr.splitlines()
             if line.strip() and not line.startswith("engine: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "no space left on the device or over the file-size limit" in lines[0]
    assert "Traceback" not in result.stderr
    assert list(output.parent.iterdir()) == []  # no artefact, no temp file
