"""The FastAPI application behind `deltav2a serve`.

Safety, by construction:
- request paths never become file paths: results and study media are looked up in
  dictionaries (result ids the server made, case ids from the manifest, a fixed set of file
  kinds); static files are a fixed list shipped with the package;
- request bodies are capped by a small ASGI middleware (413 with a readable message), and
  uploads are judged by content (`uploads.py`);
- a `DeltaV2AError` (anything a user can cause) becomes a JSON `{"error": ...}` the page
  shows; the server keeps running.
"""

import json
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DeltaV2AError

STATIC = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"app.css": "text/css", "transfer.js": "text/javascript", "study.js": "text/javascript"}
RESULT_FILES = {  # kind -> (file name, media type, download name or None)
    "original.png": ("original.png", "image/png", None),
    "edited.png": ("edited.png", "image/png", None),
    "original.wav": ("original.wav", "audio/wav", None),
    "processed.wav": ("processed.wav", "audio/wav", "processed.wav"),
    "spec_original.png": ("spec_original.png", "image/png", None),
    "spec_processed.png": ("spec_processed.png", "image/png", None),
    "sidecar.json": ("sidecar.json", "application/json", "processed.json"),
}
CASE_FILES = {"original.png": "image/png", "edited.png": "image/png",
              "original.wav": "audio/wav", "processed.wav": "audio/wav"}
RESULT_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_SIDE = 768  # uploads are shrunk to this longest side: effects and encoders stay fast


@dataclass
class Limits:
    max_upload_bytes: int = 32 * 2**20
    max_audio_seconds: float = 60.0
    max_image_pixels: int = 40_000_000
    keep_results: int = 32


class BodyLimit:
    """Refuse request bodies over `limit` bytes with a 413 the page can show.

    An over-long body is read to its end and dropped (not buffered), so the browser gets the
    message instead of a reset connection."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        over = declared is not None and declared.isdigit() and int(declared) > self.limit
        seen = 0
        if not over:
            async def counted():
                nonlocal seen, over
                msg = await receive()
                if msg["type"] == "http.request":
                    seen += len(msg.get("body", b""))
                    if seen > self.limit:
                        over = True
                        raise _TooLarge
                return msg
            try:
                return await self.app(scope, counted, send)
            except _TooLarge:
                pass
        more = True
        while more:  # drain what is left of the body
            msg = await receive()
            more = msg["type"] == "http.request" and msg.get("more_body", False)
        body = json.dumps({"error": f"the upload is larger than the limit of {self.limit / 2**20:.0f} MB"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class ModelHolder:
    """Loads the model (and the examples) in a thread, so the server answers at once."""

    def __init__(self, model_dir: Path | None, work: Path) -> None:
        self.model_dir, self.work = model_dir, work
        self.ready = threading.Event()
        self.error: str | None = None
        self.model: Any = None
        self.timings: dict[str, float] = {}
        self.examples: dict[str, dict] = {}
        self.lock = threading.Lock()  # one transfer at a time: CPU-bound, and the model is shared
        threading.Thread(target=self._load, daemon=True, name="deltav2a-model").start()

    def _load(self) -> None:
        try:
            from ..transfer.view import load_model

            t0 = time.perf_counter()
            self.model = load_model(self.model_dir)
            t1 = time.perf_counter()
            self.examples = _write_examples(self.work / "examples")
            t2 = time.perf_counter()
            _warm_up(self.model, self.examples, self.work / "warm-up")
            t3 = time.perf_counter()
            self.timings = {"model": t1 - t0, "examples": t2 - t1, "warm_up": t3 - t2}
            print(f"deltav2a: model ready (load {t1 - t0:.2f} s, examples {t2 - t1:.2f} s, "
                  f"warm-up {t3 - t2:.2f} s)", file=sys.stderr, flush=True)
        except DeltaV2AError as exc:
            self.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - shown on the page instead of a dead server
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            if self.error:
                print(f"deltav2a: error: the model could not be loaded: {self.error}", file=sys.stderr, flush=True)
            self.ready.set()

    def get(self, timeout: float = 120.0) -> Any:
        if not self.ready.wait(timeout):
            raise DeltaV2AError("the model is still loading; try again in a moment")
        if self.error:
            raise DeltaV2AError(f"the model could not be loaded: {self.error}")
        return self.model


def _write_examples(folder: Path) -> dict[str, dict]:
    """Generated examples (nothing downloaded): two images and a 10 s groove."""
    from ..media.examples import groove, landscape_image, sample_photo
    from ..media.io import save_audio, save_image

    out: dict[str, dict] = {}
    images = {"landscape": ("Generated landscape", landscape_image(seed=0)), "photo": ("Sample photo", sample_photo())}
    for key, (title, img) in images.items():
        if img is not None:
            img = _shrink(img)
            out[key] = {"kind": "image", "title": title, "path": save_image(img, folder / f"{key}.png"), "image": img}
    x = groove(seconds=10.0, seed=0)
    out["groove"] = {"kind": "audio", "title": "Generated groove (10 s)", "path": save_audio(x, 44_100, folder / "groove.wav"),
                     "audio": (x, 44_100)}
    return out


def _warm_up(model, examples: dict, folder: Path) -> None:
    """One small transfer and spectrogram at start-up, so the first visitor does not pay for
    lazy imports and first-call set-up (several seconds on a busy machine)."""
    from ..transfer.view import run_transfer

    img = next((e["image"] for e in examples.values() if e["kind"] == "image"), None)
    x, sr = examples["groove"]["audio"]
    if img is not None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            view = run_transfer(model, img, img, x[:, : sr // 2], sr)
        _spectrogram_png(view.audio, sr, folder / "spec.png")
    shutil.rmtree(folder, ignore_errors=True)


def _shrink(img):
    if max(img.size) <= MAX_SIDE:
        return img
    img = img.copy()
    img.thumbnail((MAX_SIDE, MAX_SIDE))
    return img


def _spectrogram_png(audio, sr: int, path: Path, width: int = 640, height: int = 160) -> None:
    """Log-magnitude spectrogram (0 to sr/2 bottom to top, 0 dB to -90 dB) as a magma PNG.

    Drawn with numpy + Pillow through matplotlib's colour table, without a figure: ~10x
    cheaper than a matplotlib plot, which kept a 10 s transfer from its time budget."""
    import numpy as np
    from matplotlib import colormaps
    from PIL import Image

    from ..atomic import atomic_path

    mono = np.asarray(audio, dtype=np.float32).mean(axis=0)
    n_fft = 1024
    hop = max(n_fft // 4, mono.size // (2 * width))
    if mono.size < n_fft:
        mono = np.pad(mono, (0, n_fft - mono.size))
    frames = np.lib.stride_tricks.sliding_window_view(mono, n_fft)[::hop] * np.hanning(n_fft).astype(np.float32)
    spec = 20 * np.log10(np.abs(np.fft.rfft(frames, axis=1)).T + 1e-6)
    spec = np.clip((spec - spec.max() + 90.0) / 90.0, 0.0, 1.0)[::-1]  # low frequencies at the bottom
    lut = (colormaps["magma"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)
    img = Image.fromarray(lut[(spec * 255).astype(np.uint8)], "RGB").resize((width, height), Image.BILINEAR)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def create_app(model_dir: Path | None = None, study: Path | None = None, work_dir: Path | None = None,
               limits: Limits | None = None, seed: int | None = None):
    """The app; with `study` it serves the listening study instead of the transfer page."""
    from fastapi import FastAPI, File, Form, Request, UploadFile
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

    limits = limits or Limits()
    if work_dir is None:  # results live for the server's lifetime only
        import atexit

        work = Path(tempfile.mkdtemp(prefix="deltav2a-serve-"))
        atexit.register(shutil.rmtree, work, ignore_errors=True)
    else:
        work = Path(work_dir)
    app = FastAPI(title="DeltaV2A", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(DeltaV2AError)
    async def _user_error(request: Request, exc: DeltaV2AError):
        return JSONResponse({"error": str(exc)}, status_code=getattr(exc, "status", 400))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        import traceback

        traceback.print_exception(exc)
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); the server keeps running"},
                            status_code=500)

    @app.get("/static/{name}")
    def static(name: str):
        if name not in STATIC_FILES:
            return JSONResponse({"error": "not found"}, status_code=404)
        return FileResponse(STATIC / name, media_type=STATIC_FILES[name])

    if study is not None:
        _study_routes(app, Path(study), seed)
        app.add_middleware(BodyLimit, limit=64 * 1024)  # answers are tiny
        return app

    holder = ModelHolder(model_dir, work)
    results: OrderedDict[str, Path] = OrderedDict()
    results_lock = threading.Lock()

    @app.get("/", response_class=HTMLResponse)
    def index():
        return (STATIC / "transfer.html").read_text(encoding="utf-8")

    @app.get("/api/health")
    def health():
        return {"ready": holder.ready.is_set() and holder.error is None, "error": holder.error}

    @app.get("/api/info")
    def info():
        from ..api.registry import get_registry

        model = holder.get()
        from ..transfer.view import image_effect_names

        trained = image_effect_names(model)
        others = [n for n in get_registry().names("image_effect") if n not in trained]
        return {"model": str(model.model_dir),
                "encoders": {"image": model.image_encoder.name, "audio": model.audio_encoder.name},
                "image_effects": trained + others, "trained_image_effects": trained,
                "examples": {k: {"kind": v["kind"], "title": v["title"], "url": f"/api/example/{k}"}
                             for k, v in holder.examples.items()},
                "limits": {"max_upload_mb": limits.max_upload_bytes / 2**20,
                           "max_audio_seconds": limits.max_audio_seconds}}

    @app.get("/api/example/{key}")
    def example(key: str):
        holder.get()
        ex = holder.examples.get(key)
        if ex is None:
            return JSONResponse({"error": "no such example"}, status_code=404)
        return FileResponse(ex["path"], media_type="image/png" if ex["kind"] == "image" else "audio/wav")

    @app.post("/api/transfer")
    def transfer(image: UploadFile | None = File(None), image_example: str = Form(""),
                 edited: UploadFile | None = File(None), effect: str = Form(""), intensity: str = Form("0.5"),
                 audio: UploadFile | None = File(None), audio_example: str = Form("")):
        from ..media.io import save_audio, save_image
        from ..api.registry import get
        from ..transfer.view import run_transfer
        from .uploads import read_audio, read_image

        t0 = time.perf_counter()
        timings: dict[str, float] = {}

        def lap(name: str) -> None:
            timings[name] = round(time.perf_counter() - t0 - sum(timings.values()), 4)

        model = holder.get()
        if _has(image):
            before = read_image(image.file.read(), "original image", limits.max_image_pixels)
        elif image_example in holder.examples and holder.examples[image_example]["kind"] == "image":
            before = holder.examples[image_example]["image"]
        else:
            raise DeltaV2AError("choose an original image: upload one or pick an example")
        if _has(edited):
            after = read_image(edited.file.read(), "edited image", limits.max_image_pixels)
            if after.size != before.size:
                raise DeltaV2AError(f"the edited image is {after.size[0]}x{after.size[1]} but the original is "
                                    f"{before.size[0]}x{before.size[1]}: they must be the same size")
            before, after = _shrink(before), _shrink(after)
            edit = {"edited": "uploaded image"}
        elif effect:
            before = _shrink(before)
            fx = get("image_effect", effect)()
            try:
                level = float(intensity)
            except ValueError:
                raise DeltaV2AError(f"intensity must be a number, got '{intensity[:20]}'") from None
            fx.param("intensity").validate(level, effect)
            after = fx.apply(before, level, seed=0)
            edit = {"image_effect": effect, "intensity": level}
        else:
            raise DeltaV2AError("choose an image effect, or upload the edited image")
        lap("images")
        if _has(audio):
            x, sr = read_audio(audio.file.read(), "audio clip", limits.max_audio_seconds)
        elif audio_example in holder.examples and holder.examples[audio_example]["kind"] == "audio":
            x, sr = holder.examples[audio_example]["audio"]
        else:
            raise DeltaV2AError("choose an audio clip: upload one or pick an example")
        lap("audio_decode")
        with holder.lock:
            view = run_transfer(model, before, after, x, sr)
        lap("transfer")
        rid = uuid.uuid4().hex
        folder = work / "results" / rid
        sidecar = {**view.sidecar, **edit}
        save_image(before, folder / "original.png")
        save_image(after, folder / "edited.png")
        save_audio(x, sr, folder / "original.wav")
        save_audio(view.audio, view.sample_rate, folder / "processed.wav")
        from ..atomic import write_json

        write_json(folder / "sidecar.json", sidecar)
        lap("save")
        _spectrogram_png(x, sr, folder / "spec_original.png")
        _spectrogram_png(view.audio, view.sample_rate, folder / "spec_processed.png")
        lap("spectrograms")
        with results_lock:
            results[rid] = folder
            while len(results) > limits.keep_results:  # bounded disk use: oldest results go
                _, old = results.popitem(last=False)
                shutil.rmtree(old, ignore_errors=True)
        return {"id": rid, "seconds": time.perf_counter() - t0, "timings": timings,
                "urls": {k: f"/api/result/{rid}/{k}" for k in RESULT_FILES},
                "style": {"top": view.top, "label": view.label, "delta_norm": view.delta_norm,
                          "confidence": view.confidence, "strength": view.strength},
                "effects": view.effects.to_records(), "edit": edit,
                "durations": {"original": x.shape[1] / sr, "processed": view.audio.shape[1] / view.sample_rate},
                "nyquist_khz": view.sample_rate / 2000,
                "activity": view.sidecar.get("controller", {}).get("activity", {}),
                "thresholds": view.sidecar.get("controller", {}).get("thresholds", {})}

    @app.get("/api/result/{rid}/{kind}")
    def result_file(rid: str, kind: str):
        with results_lock:
            folder = results.get(rid) if RESULT_ID.fullmatch(rid) else None
        if folder is None or kind not in RESULT_FILES:
            return JSONResponse({"error": "no such result (results are kept for the latest "
                                          f"{limits.keep_results} transfers)"}, status_code=404)
        name, media, download = RESULT_FILES[kind]
        return FileResponse(folder / name, media_type=media, filename=download,
                            content_disposition_type="attachment" if download else "inline")

    @app.get("/favicon.ico")
    def favicon():
        return Response(status_code=204)

    app.add_middleware(BodyLimit, limit=limits.max_upload_bytes)
    return app


def _has(upload) -> bool:
    return upload is not None and bool(getattr(upload, "filename", ""))


def _study_routes(app, study: Path, seed: int | None) -> None:
    from fastapi import Request
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

    from ..study.store import Store

    store = Store(study, seed=seed)

    @app.get("/", response_class=HTMLResponse)
    def index():
        return (STATIC / "study.html").read_text(encoding="utf-8")

    @app.get("/api/health")
    def health():
        return {"ready": True, "study": str(study), "cases": len(store.cases)}

    @app.post("/api/study/raters")
    def new_rater():
        return {"rater": store.new_rater(), "cases": len(store.cases)}

    @app.get("/api/study/raters/{rater}/next")
    def next_case(rater: str):
        plan, done = store.progress(rater)
        todo = [(i, p) for i, p in enumerate(plan) if p["case"] not in done]
        if not todo:
            return {"done": True, "answered": len(done), "total": len(plan)}
        pos, p = todo[0]
        cid = p["case"]
        media = {k: f"/study/media/{cid}/{k}" for k in CASE_FILES}
        left, right = ("edited.png", "original.png") if p["edited_side"] == "left" else ("original.png", "edited.png")
        return {"done": False, "position": pos, "answered": len(done), "total": len(plan), "case": cid,
                "media": media, "q2_left": media[left], "q2_right": media[right]}

    @app.post("/api/study/answers")
    async def answer(request: Request):
        try:
            body = await request.json()
        except ValueError:
            raise DeltaV2AError("the answer is not valid JSON") from None
        if not isinstance(body, dict):
            raise DeltaV2AError("the answer must be a JSON object")
        return store.answer(str(body.get("rater", "")), str(body.get("case", "")), body.get("q1"),
                            str(body.get("q2", "")))

    @app.get("/study/media/{case}/{kind}")
    def media(case: str, kind: str):
        if case not in store.cases or kind not in CASE_FILES:
            return JSONResponse({"error": "not found"}, status_code=404)
        return FileResponse(study / "cases" / case / kind, media_type=CASE_FILES[kind])
