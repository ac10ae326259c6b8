"""`transferkit serve` as a user runs it: a real process answering on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
from _service_support import write_gallery
from typer.testing import CliRunner


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_starts_answers_and_stops(photos_dir, tmp_path):
    write_gallery(tmp_path / "gallery")
    port = free_port()
    env = {**os.environ, "TRANSFERKIT_QUIET": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "transferkit", "serve", "--port", str(port),
                             "--max-upload-mb", "1", "--log-level", "warning",
                             "--gallery", str(tmp_path / "gallery")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        base, deadline, health = f"http://127.0.0.1:{port}", time.monotonic() + 120, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(base + "/api/health", timeout=2).json()
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert health is not None, f"server did not come up (exit code {proc.poll()})"
        assert health["max_upload_bytes"] == 1024 * 1024 and health["index"] is None
        files = {"file": ("coffee.jpg", (photos_dir / "coffee.jpg").read_bytes())}
        body = httpx.post(base + "/api/predict?k=3", files=files, timeout=60).json()
        assert "espresso" in [p["label"] for p in body["predictions"]]
        assert httpx.get(base + "/", timeout=10).text.startswith("<!doctype html>")
        assert httpx.get(base + "/api/lab", timeout=10).json()["pictures"][0]["key"] == "svd"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            output, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
    assert f"http://127.0.0.1:{port}/" in output
    assert f"lab gallery on http://127.0.0.1:{port}/lab/" in output
    assert proc.returncode == 0, output


def test_serve_names_a_missing_model_or_index(tmp_path):
    from transferkit.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["serve", "--model", str(tmp_path / "no-such-model")])
    assert result.exit_code == 2
    assert "no-such-model" in result.output and "not found" in result.output
    result = runner.invoke(app, ["serve", "--index", str(tmp_path / "gone.tkindex")])
    assert result.exit_code == 2 and "gone.tkindex" in result.output


def test_serve_refuses_to_bind_beyond_loopback_without_a_token():
    from transferkit.cli import app

    env = {k: v for k, v in os.environ.items() if k != "TRANSFERKIT_TOKEN"}
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--port", "1"], env=env)
    assert result.exit_code == 2, result.output
    assert "refusing to serve beyond this machine without authentication" in result.output
    assert "--token" in result.output
