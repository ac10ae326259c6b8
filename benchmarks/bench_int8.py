"""Would int8 be worth offering? NNCF post-training quantisation of the backbone vs OpenVINO
f32 and bf16, speed and faithfulness measured in the same run.

Run:  .venv/bin/pip install nncf==3.4.0      (not a transferkit dependency)
      .venv/bin/python benchmarks/bench_int8.py          (about 2 minutes on 2 idle cores)

The int8 model is what ``nncf.quantize`` makes of the cached ONNX export, calibrated on 128 of
the benchmark photos (``bench_embed``'s folder), with each preset; the rows are model-only
images/s on a batch of 32 other benchmark photos (best of interleaved 3 s rounds) and, against
OpenVINO f32, the ImageNet top-1 agreement and embedding cosine on the agreement set of
``bench_transfer`` (scikit-image's photos + the Fashion-MNIST fixture). issue #15 asks for
int8 only if it measures faster; this is the measurement.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

os.environ.setdefault("TRANSFERKIT_QUIET", "1")
ROUND_SECONDS = 3.0


def quantized_models(onnx_path, calibration: np.ndarray) -> dict:
    """``{name: ov.Model}``: the f32 export and its int8 quantisations, one per preset."""
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(onnx_path))
    data = nncf.Dataset([calibration[i:i + 1] for i in range(len(calibration))])
    models = {"f32": model}
    for preset in (nncf.QuantizationPreset.PERFORMANCE, nncf.QuantizationPreset.MIXED):
        models[f"int8 {preset.value}"] = nncf.quantize(model, data, preset=preset,
                                                       subset_size=len(calibration))
    return models


def compile_all(models: dict, bf16: bool) -> dict:
    """Compiled models by row name; int8 also with bf16 for the ops it leaves in float."""
    import openvino as ov

    core, compiled = ov.Core(), {}
    for name, model in models.items():
        for precision in ["f32", "bf16"] if bf16 else ["f32"]:
            # rows: f32, bf16, "int8 <preset>", "int8 <preset> bf16"
            label = name if precision == "f32" else "bf16" if name == "f32" else f"{name} bf16"
            compiled[label] = core.compile_model(model, "CPU", {
                "INFERENCE_PRECISION_HINT": precision, "NUM_STREAMS": 1,
                "INFERENCE_NUM_THREADS": os.cpu_count() or 1})
    return compiled


def outputs(compiled, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings, logits) of ``batch`` in chunks of 32."""
    request, embs, logits = compiled.create_infer_request(), [], []
    for start in range(0, len(batch), 32):
        request.infer({0: batch[start:start + 32]})
        found = [request.get_output_tensor(i).data.copy() for i in range(len(compiled.outputs))]
        embs += [o for o in found if o.shape[1] != 1000]
        logits += [o for o in found if o.shape[1] == 1000]
    return np.concatenate(embs), np.concatenate(logits)


def throughput(compiled, batch: np.ndarray) -> float:
    request = compiled.create_infer_request()
    request.infer({0: batch})
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < ROUND_SECONDS:
        request.infer({0: batch})
        n += len(batch)
    return n / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        import nncf  # noqa: F401
    except ImportError:
        print("bench_int8 skipped: it needs NNCF, which transferkit does not depend on "
              "(.venv/bin/pip install nncf==3.4.0)", file=sys.stderr)
        return 0
    from bench_embed import DATA_VERSION, hardware_line, make_photo_folder
    from bench_transfer import agreement_images

    from transferkit.backbones import create
    from transferkit.data import load_image
    from transferkit.features import preprocess_images
    from transferkit.runtime import cpu_has_bf16, export_cached
    from transferkit.utils import cache_dir

    lite0 = create("efficientnet_lite0")
    photos = make_photo_folder(cache_dir("bench", f"photos-{DATA_VERSION}-256"), 256)
    pixels = preprocess_images([load_image(p) for p in photos[:160]], lite0).numpy()
    agreement = preprocess_images([load_image(p) for p in agreement_images()], lite0).numpy()
    started = time.perf_counter()
    compiled = compile_all(quantized_models(export_cached(lite0), pixels[:128]), cpu_has_bf16())
    print(f"quantise + compile: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    speed = {name: 0.0 for name in compiled}
    for round_no in range(args.rounds):
        for name, model in compiled.items():
            speed[name] = max(speed[name], throughput(model, pixels[128:160]))
        print(f"round {round_no + 1}/{args.rounds}: " + ", ".join(
            f"{k} {v:.0f}" for k, v in speed.items()), file=sys.stderr)
    emb32, logits32 = outputs(compiled["f32"], agreement)
    print(f"\nint8 post-training quantisation (NNCF), efficientnet_lite0 at 224px, batch 32\n"
          f"{hardware_line()}\nagreement set: {len(agreement)} images (photos + fashion-mini)")
    print(f"{'model':22s} {'images/s':>9s} {'vs f32':>7s} {'top-1 = f32':>12s} "
          f"{'cosine min':>11s} {'median':>7s}")
    for name, model in compiled.items():
        emb, logits = outputs(model, agreement)
        cosine = (emb * emb32).sum(1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(emb32,
                                                                                     axis=1)
        agree = (logits.argmax(1) == logits32.argmax(1)).mean()
        print(f"{name:22s} {speed[name]:9.1f} {speed[name] / speed['f32']:6.2f}x "
              f"{agree:12.1%} {cosine.min():11.4f} {np.median(cosine):7.4f}")
    fastest = max((k for k in speed if k.startswith("int8")), key=speed.get)
    rival = "bf16" if "bf16" in speed else "f32"
    print(f"\nfastest int8 ({fastest}) vs {rival}: {speed[fastest] / speed[rival]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
