"""Throughput of the `clip` and `clap` encoders at their default sizes, with random weights.

No pretrained weights are needed: ViT-L-14 (open_clip) and HTSAT-base + roberta-base
(laion_clap) are built by their own libraries with random weights, saved to a temporary
checkpoint, and loaded back through the encoders exactly as a user's checkpoint would be,
so the load time and the forward passes measured are the real ones (random weights cost
the same arithmetic as trained ones).

    python benchmarks/bench_clip_clap.py [--device cpu] [--iters 3] [--only clip|clap]

Writes benchmarks/results/clip_clap.json and prints images/s (224 px, batch 8) and
10 s windows/s (batch 8, and one window at a time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED_TOKENIZER = HERE.parent.parent / "shared" / "models" / "roberta-base-tokenizer"


def _machine(device: str) -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "processor": platform.processor() or platform.machine(), "device": device,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _timed(fn, iters: int) -> list[float]:
    out = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def bench_clip(tmp: Path, device: str, iters: int, batch: int = 8) -> dict:
    import numpy as np
    import open_clip
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    from deltav2a_plugins.encoders.clip import ClipImageEncoder

    t0 = time.perf_counter()
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-L-14", pretrained_text=False)
    build_s = time.perf_counter() - t0
    path = tmp / "vit_l_14_random.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    params = sum(p.numel() for p in model.parameters())
    del model

    enc = ClipImageEncoder(model="ViT-L-14", pretrained="openai", checkpoint=str(path),
                           device=device, batch_size=batch)
    t0 = time.perf_counter()
    enc.load()
    load_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8))
              for _ in range(batch)]
    enc.encode_images(images)  # warm-up
    times = _timed(lambda: enc.encode_images(images), iters)
    best = min(times)
    return {"model": "ViT-L-14 (openai tag: QuickGELU)", "params_millions": round(params / 1e6, 1),
            "checkpoint_mb": round(path.stat().st_size / 2**20), "build_random_s": round(build_s, 2),
            "load_through_encoder_s": round(load_s, 2), "batch": batch, "image_px": 224,
            "iters": iters, "seconds_per_batch": [round(t, 3) for t in times],
            "images_per_s": round(batch / best, 2), "dim": enc.dim}


def bench_clap(tmp: Path, device: str, iters: int, batch: int = 8) -> dict:
    import numpy as np
    import torch
    from transformers import RobertaConfig

    from deltav2a_plugins.encoders import clap as clap_mod

    t0 = time.perf_counter()
    laion = clap_mod.import_clap_module()
    import_s = time.perf_counter() - t0
    laion_model = sys.modules["clap_module.model"]
    original = laion_model.RobertaModel
    laion_model.RobertaModel = clap_mod._ConfiguredRoberta(RobertaConfig(**clap_mod.ROBERTA_BASE))
    try:
        torch.manual_seed(0)
        t0 = time.perf_counter()
        model, _ = laion.create_model("HTSAT-base", "roberta", precision="fp32",
                                      device=torch.device("cpu"), enable_fusion=False)
        build_s = time.perf_counter() - t0
    finally:
        laion_model.RobertaModel = original
    params = sum(p.numel() for p in model.parameters())
    audio_params = sum(p.numel() for p in model.audio_branch.parameters())
    path = tmp / "clap_htsat_base_random.pt"
    torch.save({"epoch": 0, "state_dict": {"module." + k: v for k, v in model.state_dict().items()}},
               path)
    del model

    text_dir = str(SHARED_TOKENIZER) if (SHARED_TOKENIZER / "vocab.json").is_file() else None
    enc = clap_mod.ClapAudioEncoder(checkpoint=str(path), text_model_dir=text_dir, device=device,
                                    batch_size=batch)
    t0 = time.perf_counter()
    enc.load()
    load_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    clips = [(0.1 * rng.standard_normal((1, 480000))).astype(np.float32) for _ in range(batch)]
    enc.encode_audio(clips[:2], 48000)  # warm-up
    batched = _timed(lambda: enc.encode_audio(clips, 48000), iters)
    single = _timed(lambda: enc.encode_audio(clips[:1], 48000), iters)
    long_clip = (0.1 * rng.standard_normal((2, 20 * 44100))).astype(np.float32)
    long_times = _timed(lambda: enc.encode_audio([long_clip], 44100), max(1, iters - 1))
    return {"model": "HTSAT-base + roberta-base (music checkpoint layout)",
            "params_millions": round(params / 1e6, 1),
            "audio_params_millions": round(audio_params / 1e6, 1),
            "checkpoint_mb": round(path.stat().st_size / 2**20),
            "import_clap_module_s": round(import_s, 2), "build_random_s": round(build_s, 2),
            "load_through_encoder_s": round(load_s, 2), "batch": batch, "iters": iters,
            "seconds_per_batch": [round(t, 3) for t in batched],
            "windows_per_s_batched": round(batch / min(batched), 3),
            "seconds_per_single_window": [round(t, 3) for t in single],
            "windows_per_s_single": round(1 / min(single), 3),
            "seconds_per_20s_stereo_44k1_clip": [round(t, 3) for t in long_times],
            "dim": enc.dim}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--only", choices=("clip", "clap"))
    ap.add_argument("--out", default=str(HERE / "results" / "clip_clap.json"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # random weights: nothing to fetch
    results: dict = {"machine": _machine(args.device), "note": "random weights, real loading path"}
    with tempfile.TemporaryDirectory(prefix="deltav2a-bench-") as tmp:
        if args.only in (None, "clip"):
            results["clip"] = bench_clip(Path(tmp), args.device, args.iters)
            print(f"clip ViT-L-14: {results['clip']['images_per_s']} images/s "
                  f"(224 px, batch 8); load {results['clip']['load_through_encoder_s']} s")
        if args.only in (None, "clap"):
            results["clap"] = bench_clap(Path(tmp), args.device, args.iters)
            c = results["clap"]
            print(f"clap HTSAT-base: {c['windows_per_s_batched']} windows/s (batch 8), "
                  f"{c['windows_per_s_single']} windows/s (one at a time); load "
                  f"{c['load_through_encoder_s']} s")
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and args.only:
        merged = json.loads(out.read_text())
        merged.update(results)
        results = merged
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
