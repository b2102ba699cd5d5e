"""`deltav2a serve` in a real browser: Debian's Chromium, headless, driven by Playwright.

Each server is the installed entry point started on 127.0.0.1 with a free port (`--port 0`;
the bound address is read from its first line). Screenshots go to $DELTAV2A_SCREENSHOTS
(default /tmp/deltav2a-screenshots) for a person to look at.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import run_cli, shared_data_path

CHROMIUM = os.environ.get("DELTAV2A_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(os.environ.get("DELTAV2A_SCREENSHOTS", "/tmp/deltav2a-screenshots"))


class Server:
    """A `deltav2a serve` subprocess; `url` once it answers, `ready_s` once the model is loaded."""

    def __init__(self, *args: str, port: int = 0, env: dict | None = None) -> None:
        exe = Path(sys.executable).with_name("deltav2a")
        self.log = open(SHOTS.parent / f"deltav2a-serve-{os.getpid()}-{time.time_ns()}.log", "w+")
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen([str(exe), "serve", "--port", str(port), *args], stdout=self.log,
                                     stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        self.url = None
        deadline = time.time() + 120
        while self.url is None:
            if self.proc.poll() is not None or time.time() > deadline:
                raise AssertionError(f"server did not start: {self.output()}")
            m = re.search(r"http://127\.0\.0\.1:(\d+)/", self.output())
            if m:
                self.url = f"http://127.0.0.1:{m.group(1)}"
            time.sleep(0.05)
        self.listening_s = time.perf_counter() - self.t0

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def wait_ready(self, timeout: float = 180) -> float:
        deadline = time.time() + timeout
        while time.time() < deadline:
            code, body = self.get("/api/health")
            if code == 200 and json.loads(body).get("ready"):
                return time.perf_counter() - self.t0
            assert self.proc.poll() is None, self.output()
            time.sleep(0.05)
        raise AssertionError(f"model not ready after {timeout} s: {self.output()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:  # pragma: no cover
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def browser():
    SHOTS.mkdir(parents=True, exist_ok=True)
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: run scripts/setup.sh (installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """An image, a 10 s clip (a real one from ../shared/data when present) and bad files."""
    import numpy as np
    import soundfile as sf

    from deltav2a.media.examples import groove, landscape_image

    d = tmp_path_factory.mktemp("web-media")
    landscape_image(seed=3).save(d / "photo.png")
    shared = shared_data_path()
    clips = sorted((shared / "music").glob("*.ogg")) if shared else []
    if clips:
        shutil.copy(clips[0], d / "clip.ogg")
        clip = d / "clip.ogg"
    else:
        clip = d / "clip.wav"
        sf.write(clip, groove(seconds=10.0, seed=1).T, 44_100, subtype="PCM_16")
    good = (d / "photo.png").read_bytes()
    (d / "corrupt.png").write_bytes(good[:200] + bytes(range(256)) * 4)  # PNG header, garbage body
    (d / "notes.wav").write_text("this is text, not audio\n" * 50)
    rng = np.random.default_rng(0)
    (d / "huge.wav").write_bytes(b"RIFF" + rng.integers(0, 256, 3 * 2**20, dtype=np.uint8).tobytes())
    return {"image": d / "photo.png", "clip": clip, "corrupt": d / "corrupt.png", "text": d / "notes.wav",
            "huge": d / "huge.wav"}


@pytest.fixture(scope="module")
def server():
    s = Server("--max-upload-mb", "2")
    ready = s.wait_ready()
    print(f"\nserve: listening after {s.listening_s:.2f} s, model ready after {ready:.2f} s")
    yield s
    s.stop()


def _transfer(page, timeout=180_000):
    page.click("#run")
    page.wait_for_function("document.getElementById('run').disabled === false && "
                           "(!document.getElementById('error').classList.contains('hidden') || "
                           "document.body.dataset.resultId)", timeout=timeout)


def test_transfer_page_end_to_end(browser, server, media, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server.url + "/")
    page.wait_for_function("!document.getElementById('run').disabled")
    assert "perceptual-image" in page.inner_text("#status")
    page.set_input_files("#image", str(media["image"]))
    page.select_option("#effect", "motion_blur")
    page.fill("#intensity", "0.8")
    page.set_input_files("#audio", str(media["clip"]))
    t0 = time.perf_counter()
    _transfer(page)
    took = time.perf_counter() - t0
    print(f"\ntransfer of a 10 s clip through the page: {took:.2f} s ({page.inner_text('#status')})")
    assert page.is_hidden("#error"), page.inner_text("#error")
    assert page.is_visible("#result")
    # A' plays: the element loads the WAV and knows its length
    page.wait_for_function("document.getElementById('player_processed').duration > 0", timeout=30_000)
    dur = page.evaluate("document.getElementById('player_processed').duration")
    dur_a = page.evaluate("(async () => { const a = document.getElementById('player_original');"
                          " while (!(a.duration > 0)) await new Promise(r => setTimeout(r, 50)); return a.duration; })()")
    assert dur > 1.0 and abs(dur_a - 10.0) < 0.05
    page.evaluate("document.getElementById('player_processed').play()")
    page.wait_for_function("document.getElementById('player_processed').currentTime > 0", timeout=30_000)
    # images and spectrograms decoded
    for img in ("img_original", "img_edited", "spec_original", "spec_processed"):
        assert page.evaluate(f"document.getElementById('{img}').naturalWidth") > 50, img
    assert len(page.query_selector_all("#bars .bar")) == 10
    meters = page.inner_text("#meters")
    assert re.search(r"strength \d\.\d\d · confidence \d\.\d\d", meters), meters
    # downloads: the sidecar parses and matches what the page shows; A' is a WAV of that length
    with page.expect_download() as dl:
        page.click("#dl_sidecar")
    sidecar = json.loads(Path(dl.value.path()).read_text())
    assert sidecar["image_effect"] == "motion_blur" and sidecar["intensity"] == pytest.approx(0.8)
    shown = [r.inner_text() for r in page.query_selector_all("#effects td:first-child")]
    assert sorted(set(shown)) == sorted({e["effect"] for e in sidecar["effects"]})
    assert f"{sidecar['style']['confidence']:.2f}" in meters
    with page.expect_download() as dl:
        page.click("#dl_audio")
    import soundfile as sf

    info = sf.info(dl.value.path())
    assert info.samplerate == sidecar["sample_rate"] and info.duration == pytest.approx(dur, abs=0.05)
    page.screenshot(path=str(SHOTS / "transfer.png"), full_page=True)
    # the edited image can be uploaded instead of an effect: I and I' identical -> no direction
    page.check("input[name=image_src][value=upload]")
    page.set_input_files("#edited", str(media["image"]))
    _transfer(page)
    assert page.is_hidden("#error"), page.inner_text("#error")
    assert "‖δ‖ 0.000" in page.inner_text("#meters")
    page.close()


@pytest.mark.parametrize("field, key, message", [
    ("#image", "corrupt", "original image: corrupt or truncated image"),
    ("#audio", "text", "audio clip: not an audio file"),
    ("#audio", "huge", "larger than the limit of 2 MB"),
    ("#edited", "text", "edited image: not an image"),
])
def test_bad_upload_shows_a_message_and_the_server_keeps_running(browser, server, media, field, key, message):
    page = browser.new_page(viewport={"width": 1280, "height": 700})
    page.goto(server.url + "/")
    page.wait_for_function("!document.getElementById('run').disabled")
    page.set_input_files(field, str(media[key]))
    _transfer(page)
    assert page.is_visible("#error")
    assert message in page.inner_text("#error")
    page.screenshot(path=str(SHOTS / f"bad_upload_{key}_{field[1:]}.png"))
    # still serving: the next (example) transfer on the same page works
    page.check("input[name=image_src][value=example]")
    page.check("input[name=edit_src][value=effect]")
    page.check("input[name=audio_src][value=example]")
    _transfer(page)
    assert page.is_hidden("#error") and page.evaluate("!!document.body.dataset.resultId")
    page.close()


def test_requests_never_reach_the_file_system_unchecked(server):
    for path in ("/api/result/../../etc/passwd", "/api/result/" + "0" * 32 + "/sidecar.json",
                 "/api/result/..%2f..%2fetc/passwd", "/static/..%2fapp.py", "/static/app.py",
                 "/api/example/..%2f..%2fetc%2fpasswd", "/study/media/c01/original.png"):
        code, body = server.get(path)
        assert code == 404, path
        assert b"root:" not in body and b"import" not in body
    code, _ = server.get("/static/transfer.js")
    assert code == 200
    assert server.proc.poll() is None


def test_serve_binds_localhost_by_default(server):
    out = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout if shutil.which("ss") else ""
    port = server.url.rsplit(":", 1)[1]
    assert server.url.startswith("http://127.0.0.1:")
    if out:
        lines = [ln for ln in out.splitlines() if f":{port} " in ln]
        assert lines and all("127.0.0.1:" in ln for ln in lines), lines


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    """A small study built by the real command from generated media and the shipped model."""
    import soundfile as sf

    from deltav2a.media.examples import groove, landscape_image, sample_photo

    d = tmp_path_factory.mktemp("study")
    (d / "images").mkdir()
    (d / "audio").mkdir()
    for i in range(4):
        landscape_image(width=256, height=192, seed=i).save(d / "images" / f"land{i}.png")
    photo = sample_photo()
    if photo is not None:
        photo.resize((192, 256)).save(d / "images" / "photo.png")
    for i in range(3):
        sf.write(d / "audio" / f"groove{i}.wav", groove(seconds=3.0, seed=i).T, 44_100, subtype="PCM_16")
    res = run_cli("study", "build", "--images", str(d / "images"), "--audio", str(d / "audio"), "-o", str(d / "s"),
                  "--candidates", "16", "--n-high", "2", "--n-low", "1", "--n-one", "1", "--n-two", "1",
                  "--seconds", "3", "--allow-short", "--seed", "1")
    assert res.returncode == 0, res.stderr
    return d / "s"


def _answer_case(page, q1: int, want_edited: bool) -> dict:
    """Answer the case on screen; returns what the page showed."""
    case = page.evaluate("document.body.dataset.case")
    left = page.get_attribute("#q2_left_img", "src")
    right = page.get_attribute("#q2_right_img", "src")
    edited_side = "left" if left.endswith("/edited.png") else "right"
    assert {left.rsplit("/", 1)[1], right.rsplit("/", 1)[1]} == {"edited.png", "original.png"}
    page.wait_for_function("document.getElementById('audio_processed').duration > 0")
    page.check(f"input[name=q1][value='{q1}']")
    side = edited_side if want_edited else ("left" if edited_side == "right" else "right")
    page.click(f"#q2_{side}")
    page.click("#submit")
    page.wait_for_function(f"document.body.dataset.case !== '{case}' || document.body.dataset.done === '1'")
    return {"case": case, "edited_side": edited_side, "side": side}


@pytest.mark.slow
def test_study_two_raters_answer_every_case(browser, study_dir, tmp_path):
    man = json.loads((study_dir / "study.json").read_text())
    cases = {c["id"]: c for c in man["cases"]}
    n = len(cases)
    assert n >= 3 and {c["group"] for c in cases.values()} >= {"high_delta", "low_delta"}
    for c in cases.values():
        for f in ("original.png", "edited.png", "original.wav", "processed.wav", "sidecar.json"):
            assert (study_dir / "cases" / c["id"] / f).stat().st_size > 0

    def rule(cid):  # known answers: both raters agree
        high = cases[cid]["group"] == "high_delta"
        return (5 if high else 2), high

    s = Server("--study", str(study_dir), "--seed", "11")
    shown = {}
    try:
        t_ready = s.wait_ready()
        print(f"\nserve --study: answering after {t_ready:.2f} s")
        ctx = [browser.new_context(viewport={"width": 1200, "height": 1000}) for _ in range(2)]
        pages = [c.new_page() for c in ctx]
        for p in pages:
            p.goto(s.url + "/")
            p.wait_for_function("document.body.dataset.case")
        raters = [p.evaluate("document.body.dataset.rater") for p in pages]
        assert raters[0] != raters[1] and all(re.fullmatch(r"r[0-9a-f]{16}", r) for r in raters)
        pages[0].screenshot(path=str(SHOTS / "study_case.png"), full_page=True)
        db = sqlite3.connect(study_dir / "answers.sqlite")
        answered = 0
        half = n // 2
        for i in range(half):  # interleaved: the two raters at the same time
            for r, p in zip(raters, pages):
                shown.setdefault(r, []).append(_answer_case(p, *rule(p.evaluate("document.body.dataset.case"))))
                answered += 1
                # one row per answer, on disk at once
                assert db.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == answered
    finally:
        s.stop()
    # a restart (same address) loses nothing: the same browsers resume where they stopped
    s = Server("--study", str(study_dir), "--seed", "11", port=int(s.url.rsplit(":", 1)[1]))
    try:
        s.wait_ready()
        for r, p in zip(raters, pages):
            p.goto(s.url + "/")
            p.wait_for_function("document.body.dataset.case || document.body.dataset.done")
            assert p.evaluate("document.body.dataset.rater") == r
            assert p.inner_text("#progress") == f"Case {half + 1} of {n}"
            while p.evaluate("document.body.dataset.done") != "1":
                shown[r].append(_answer_case(p, *rule(p.evaluate("document.body.dataset.case"))))
            assert "Thank you" in p.inner_text("#done")
        pages[1].screenshot(path=str(SHOTS / "study_done.png"))
        # a repeated or malformed answer is refused with a message; the server keeps running
        first = shown[raters[0]][0]
        for body, msg in [({"rater": raters[0], "case": first["case"], "q1": 3, "q2": "left"}, "already answered"),
                          ({"rater": raters[0], "case": "../../etc", "q1": 3, "q2": "left"}, "not in this study"),
                          ("[1, 2", "not valid JSON")]:
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
            req = urllib.request.Request(s.url + "/api/study/answers", data=data,
                                         headers={"Content-Type": "application/json"})
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(req, timeout=30)
            assert err.value.code == 400 and msg in json.loads(err.value.read())["error"]
        code, _ = s.get("/api/health")
        assert code == 200
    finally:
        s.stop()
        for c in ctx:
            c.close()
    rows = db.execute("SELECT rater_id, case_id, position, q1, q2_edited_side, q2_side, q2_choice FROM answers "
                      "ORDER BY id").fetchall()
    plans = {r: json.loads(p) for r, p in db.execute("SELECT rater_id, plan FROM raters")}
    db.close()
    assert len(rows) == 2 * n
    for r in raters:
        mine = [x for x in rows if x[0] == r]
        plan = plans[r]
        assert [x[1] for x in mine] == [p["case"] for p in plan] == [x["case"] for x in shown[r]]
        assert [x[2] for x in mine] == list(range(n))
        # the Q2 side recorded is the side the page showed, and the choice follows from it
        assert [x[4] for x in mine] == [p["edited_side"] for p in plan] == [x["edited_side"] for x in shown[r]]
        for _, cid, _, q1, _, side, choice in mine:
            assert (q1, choice == "edited") == rule(cid)
    # randomisation: per-rater orders and sides (the fixed seed makes this deterministic)
    p0, p1 = plans[raters[0]], plans[raters[1]]
    assert [p["case"] for p in p0] != [p["case"] for p in p1] or [p["edited_side"] for p in p0] != [
        p["edited_side"] for p in p1]
    assert {p["edited_side"] for p in p0 + p1} == {"left", "right"}
    # export and analyze on these known answers
    res = run_cli("study", "export", str(study_dir))
    assert res.returncode == 0, res.stderr
    res = run_cli("study", "analyze", str(study_dir))
    assert res.returncode == 0, res.stderr
    out = json.loads((study_dir / "analysis.json").read_text())
    h = 2 * sum(c["group"] == "high_delta" for c in cases.values())
    assert out["answers"] == 2 * n and out["q2"]["edited"] == h
    assert out["q1"]["mean"] == pytest.approx((5 * h + 2 * (2 * n - h)) / (2 * n))
    import math

    assert out["q2"]["p_greater"] == pytest.approx(sum(math.comb(2 * n, i) for i in range(h, 2 * n + 1)) / 2 ** (2 * n))
    assert out["agreement"]["q2_krippendorff_nominal"]["alpha"] == pytest.approx(1.0)
    shutil.copy(study_dir / "analysis.png", SHOTS / "study_analysis.png")


def test_a_model_that_cannot_load_is_reported_on_the_page(browser, tmp_path):
    from deltav2a.transfer.pipeline import DEFAULT_MODEL

    model = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, model)
    meta = json.loads((model / "controller.json").read_text())
    meta["encoders"]["audio"]["fingerprint"] = "clap/HTSAT-base/sha256:0000"
    (model / "controller.json").write_text(json.dumps(meta))
    s = Server("--model", str(model))
    try:
        page = browser.new_page()
        page.goto(s.url + "/")
        page.wait_for_selector("#error:not(.hidden)", timeout=180_000)
        assert "The model could not be loaded" in page.inner_text("#error")
        assert "audio encoder" in page.inner_text("#error")
        assert page.evaluate("document.getElementById('run').disabled")
        assert s.proc.poll() is None
        page.close()
    finally:
        s.stop()
