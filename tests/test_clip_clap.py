"""The `clip` and `clap` encoders, through the loading code a user runs, without real weights.

Models are built by open_clip and laion_clap from their own code with random weights
(small architectures), saved to disk in the formats real checkpoints use, and loaded back
through the encoders. Reference vectors come from the in-memory models the files were
saved from, so a test fails if loading, preprocessing, windowing or batching changes
what the model sees.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

from deltav2a.errors import DeltaV2AError  # noqa: E402
from deltav2a_plugins.encoders import clap as clap_mod  # noqa: E402
from deltav2a_plugins.encoders.clap import ClapAudioEncoder, quantise_int16, repeat_pad  # noqa: E402
from deltav2a_plugins.encoders.clip import ClipImageEncoder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SR = 48000
TINY_CLIP = "DeltaV2A-Tiny-ViT"
TINY_CLIP_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
GENUINE_TOKENIZER = [Path(os.environ.get("DELTAV2A_ROBERTA_TOKENIZER", "/nonexistent")),
                     ROOT.parent / "shared" / "models" / "roberta-base-tokenizer"]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (what byte-level BPE vocabularies use)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def _write_tokenizer(folder: Path) -> int:
    """The genuine roberta-base tokenizer when present, else a byte-level one (no merges)."""
    for src in GENUINE_TOKENIZER:
        if (src / "vocab.json").is_file() and (src / "merges.txt").is_file():
            shutil.copy(src / "vocab.json", folder / "vocab.json")
            shutil.copy(src / "merges.txt", folder / "merges.txt")
            return len(json.loads((folder / "vocab.json").read_text()))
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for ch in _bytes_to_unicode().values():
        vocab[ch] = len(vocab)
    vocab["<mask>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return len(vocab)


# ------------------------------------------------------------------ fixtures: CLAP


@pytest.fixture(scope="module")
def clap_files(tmp_path_factory):
    """A random HTSAT-tiny CLAP saved the ways real checkpoints are saved."""
    from transformers import RobertaConfig

    root = tmp_path_factory.mktemp("clap")
    text_dir = root / "roberta"
    text_dir.mkdir()
    vocab_size = _write_tokenizer(text_dir)
    cfg = RobertaConfig(**{**clap_mod.ROBERTA_BASE, "vocab_size": vocab_size,
                           "num_hidden_layers": 1, "intermediate_size": 256})
    cfg.save_pretrained(text_dir)

    laion = clap_mod.import_clap_module()
    laion_model = sys.modules["clap_module.model"]
    original = laion_model.RobertaModel
    laion_model.RobertaModel = clap_mod._ConfiguredRoberta(cfg)
    try:
        torch.manual_seed(1234)
        model, _ = laion.create_model("HTSAT-tiny", "roberta", precision="fp32",
                                      device=torch.device("cpu"), enable_fusion=False)
    finally:
        laion_model.RobertaModel = original
    model.eval()
    sd = model.state_dict()
    assert "text_branch.embeddings.position_ids" not in sd  # transformers >= 4.31

    # as released: DDP 'module.' prefix, the legacy position_ids buffer, training metadata
    released = {"module." + k: v for k, v in sd.items()}
    released["module.text_branch.embeddings.position_ids"] = torch.arange(514).unsqueeze(0)
    pt = root / "clap_tiny.pt"
    torch.save({"epoch": 15, "state_dict": released}, pt)
    from safetensors.torch import save_file

    st = root / "clap_tiny.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(st))
    unsafe = root / "clap_tiny_with_args.pt"
    torch.save({"epoch": 15, "state_dict": released,
                "args": argparse.Namespace(amodel="HTSAT-tiny")}, unsafe)
    yield {"model": model, "pt": pt, "safetensors": st, "unsafe": unsafe, "text_dir": text_dir,
           "root": root}
    shutil.rmtree(root, ignore_errors=True)  # ~1 GB of checkpoints; pytest would keep 3 runs


@pytest.fixture(scope="module")
def clap_enc(clap_files):
    enc = ClapAudioEncoder(amodel="HTSAT-tiny", checkpoint=str(clap_files["pt"]),
                           text_model_dir=str(clap_files["text_dir"]), device="cpu", batch_size=4)
    enc.load()
    return enc


def _ref_windows(model, windows: list[np.ndarray]) -> np.ndarray:
    """What laion's CLAP says about already prepared 10 s windows, in one forward pass."""
    with torch.inference_mode():
        batch = [{"waveform": torch.from_numpy(w), "longer": torch.tensor([False])} for w in windows]
        return model.get_audio_embedding(batch).numpy()


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _noise(seconds: float, seed: int, channels: int = 1, sr: int = SR) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    tone = 0.3 * np.sin(2 * np.pi * (220 + 40 * seed) * t)
    return (tone + 0.1 * rng.standard_normal((channels, n))).astype(np.float32)


# ------------------------------------------------------------------ CLAP tests


def test_clap_shapes_and_reference_vectors(clap_enc, clap_files):
    clip = _noise(10.0, 1)
    e = clap_enc.encode_audio([clip], SR)
    assert e.shape == (1, 512) and e.dtype == np.float32 and clap_enc.dim == 512
    assert abs(float(np.linalg.norm(e[0])) - 1.0) < 1e-5
    # one full window: exactly laion's model on the int16-quantised waveform
    ref = _ref_windows(clap_files["model"], [quantise_int16(clip[0])])
    assert np.array_equal(e, ref)


def test_clap_is_deterministic_bit_for_bit(clap_enc):
    clip = _noise(0.5, 2)
    assert np.array_equal(clap_enc.encode_audio([clip], SR), clap_enc.encode_audio([clip], SR))


def test_clap_batch_versus_one_by_one(clap_enc):
    clips = [_noise(3.0, 4), _noise(12.0, 5), _noise(0.5, 7)]  # 4 windows: one forward pass
    batched = clap_enc.encode_audio(clips, SR)
    single = np.concatenate([clap_enc.encode_audio([c], SR) for c in clips])
    np.testing.assert_allclose(batched, single, rtol=0, atol=1e-6)
    old = clap_enc.batch_size
    clap_enc.batch_size = 1  # every window alone: the grouping cannot matter at all
    try:
        batched1 = clap_enc.encode_audio(clips[::2], SR)
    finally:
        clap_enc.batch_size = old
    # those two clips are one window each, so their one-by-one runs above were batches of 1 too
    assert np.array_equal(batched1, single[::2])


def test_clap_long_audio_is_windowed_and_truncated(clap_enc, clap_files):
    model = clap_files["model"]
    x = _noise(25.0, 8)
    q = quantise_int16(x[0])
    # 25 s -> first 20 s -> two consecutive 10 s windows, equal weight
    w1, w2 = q[:10 * SR], q[10 * SR:20 * SR]
    ref = _ref_windows(model, [w1, w2]).astype(np.float64)
    got = clap_enc.encode_audio([x], SR)[0]
    np.testing.assert_allclose(got, _unit(ref.mean(axis=0)), atol=1e-6)
    # what lies past max_duration never reaches the model, and no random crop is taken:
    # the same first 20 s give the same vector bit for bit
    other_tail = np.concatenate([x[:, :20 * SR], _noise(5.0, 99)], axis=1)
    assert np.array_equal(clap_enc.encode_audio([other_tail], SR)[0], got)
    # 15 s -> the same first window + 5 s repeat-padded, weighted 10:5
    y = x[:, :15 * SR]
    wins, weights = clap_enc.windows(y, SR)
    assert [len(w) for w in wins] == [10 * SR, 10 * SR] and weights == [10.0, 5.0]
    tail = repeat_pad(q[10 * SR:15 * SR], 10 * SR)
    assert np.array_equal(wins[0], w1) and np.array_equal(wins[1], tail)
    ref_tail = _ref_windows(model, [tail])[0].astype(np.float64)
    np.testing.assert_allclose(clap_enc.encode_audio([y], SR)[0],
                               _unit((10 * ref[0] + 5 * ref_tail) / 15), atol=1e-6)


def test_clap_repeat_pad_is_laions_rule():
    x = np.arange(1, 8, dtype=np.float32)
    assert repeat_pad(x, 16).tolist() == [1, 2, 3, 4, 5, 6, 7, 1, 2, 3, 4, 5, 6, 7, 0, 0]
    assert repeat_pad(x, 5).tolist() == [1, 2, 3, 4, 5]
    q = quantise_int16(np.array([-2.0, -1.0, 0.49999, 1.5], np.float32))
    assert q.dtype == np.float32 and q.tolist() == pytest.approx([-1.0, -1.0, 16383 / 32767, 1.0])


def test_clap_short_stereo_and_resampled_input(clap_enc, clap_files):
    st = _noise(2.5, 10, channels=2)
    ref = _ref_windows(clap_files["model"],
                       [repeat_pad(quantise_int16(st.mean(axis=0)), 10 * SR)])
    assert np.array_equal(clap_enc.encode_audio([st], SR), ref)  # channel mean, repeat-pad
    from deltav2a.media.io import resample

    at44 = _noise(3.0, 11, sr=44100)
    assert np.array_equal(clap_enc.encode_audio([at44], 44100),
                          clap_enc.encode_audio([resample(at44, 44100, SR)], SR))


def test_clap_rejects_unusable_audio(clap_enc):
    with pytest.raises(DeltaV2AError, match="zero length"):
        clap_enc.encode_audio([np.zeros((1, 0), np.float32)], SR)
    with pytest.raises(DeltaV2AError, match="NaN"):
        clap_enc.encode_audio([np.full((1, 100), np.nan, np.float32)], SR)
    with pytest.raises(DeltaV2AError, match="sample_rate"):
        clap_enc.encode_audio([_noise(1.0, 1)], 0)
    assert clap_enc.encode_audio([], SR).shape == (0, 512)


def test_clap_text_matches_laion_text_branch(clap_enc, clap_files):
    from transformers import RobertaTokenizer

    texts = ["warm analog tape saturation", "a bright, airy mix", ""]
    got = clap_enc.encode_text(texts)
    assert got.shape == (3, 512)
    tok = RobertaTokenizer.from_pretrained(str(clap_files["text_dir"]))
    enc = tok(texts, padding="max_length", truncation=True, max_length=77, return_tensors="pt")
    with torch.inference_mode():
        ref = clap_files["model"].get_text_embedding(
            {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-6)


def test_clap_safetensors_without_prefix_or_position_ids_loads_the_same(clap_enc, clap_files):
    enc = ClapAudioEncoder(amodel="HTSAT-tiny", checkpoint=str(clap_files["safetensors"]),
                           text_model_dir=str(clap_files["text_dir"]), device="cpu", batch_size=4)
    clip = _noise(6.0, 13)
    ref = _ref_windows(clap_files["model"], [repeat_pad(quantise_int16(clip[0]), 10 * SR)])
    assert np.array_equal(enc.encode_audio([clip], SR), ref)
    assert enc.fingerprint() != clap_enc.fingerprint()  # different file, different hash


def test_clap_pickled_checkpoint_needs_explicit_permission(clap_enc, clap_files):
    kw = dict(amodel="HTSAT-tiny", checkpoint=str(clap_files["unsafe"]),
              text_model_dir=str(clap_files["text_dir"]), device="cpu", batch_size=4)
    with pytest.raises(DeltaV2AError, match="allow_unsafe_checkpoint"):
        ClapAudioEncoder(**kw).load()
    enc = ClapAudioEncoder(allow_unsafe_checkpoint=True, **kw)
    clip = _noise(10.0, 14)
    ref = _ref_windows(clap_files["model"], [quantise_int16(clip[0])])
    assert np.array_equal(enc.encode_audio([clip], SR), ref)


def test_clap_tiny_checkpoint_in_base_architecture_is_named(clap_files):
    enc = ClapAudioEncoder(checkpoint=str(clap_files["pt"]), text_model_dir=str(clap_files["text_dir"]))
    assert enc.amodel == "HTSAT-base"
    with pytest.raises(DeltaV2AError, match="looks like a HTSAT-tiny model.*set amodel: HTSAT-tiny"):
        enc.load()


def test_clap_without_text_folder_uses_roberta_base_shape(clap_files, monkeypatch):
    """Audio needs no tokenizer: the text branch is built as roberta-base (laion's only
    choice). The test checkpoint's 1-layer text branch therefore does not fit, and says so."""
    monkeypatch.setenv("DELTAV2A_OFFLINE", "1")
    monkeypatch.delenv("DELTAV2A_CLAP_TEXT_MODEL", raising=False)
    enc = ClapAudioEncoder(amodel="HTSAT-tiny", checkpoint=str(clap_files["pt"]))
    with pytest.raises(DeltaV2AError, match="text branch differs from the RoBERTa config "
                                            r"\(roberta-base defaults\)"):
        enc.load()


def test_clap_options_and_fingerprint(clap_enc, clap_files, monkeypatch):
    with pytest.raises(DeltaV2AError, match="no option 'windows'"):
        ClapAudioEncoder(windows=3)
    with pytest.raises(DeltaV2AError, match="tmodel"):
        ClapAudioEncoder(tmodel="bert")
    with pytest.raises(DeltaV2AError, match="window_seconds"):
        ClapAudioEncoder(window_seconds=0)
    with pytest.raises(DeltaV2AError, match="checkpoint not found"):
        ClapAudioEncoder(checkpoint=str(clap_files["root"] / "missing.pt")).load()
    fp = clap_enc.fingerprint()
    assert fp.startswith("clap/HTSAT-tiny/sha256:") and fp.endswith("w10-max20-sr48000-q16/r1")
    monkeypatch.setenv("DELTAV2A_CLAP_CHECKPOINT", str(clap_files["pt"]))
    monkeypatch.setenv("DELTAV2A_CLAP_TEXT_MODEL", str(clap_files["text_dir"]))
    from_env = ClapAudioEncoder(amodel="HTSAT-tiny")
    assert from_env.fingerprint() == fp and from_env.text_model_dir == clap_files["text_dir"]
    assert ClapAudioEncoder(amodel="HTSAT-tiny", max_duration=30).fingerprint() != fp


@pytest.mark.slow
def test_clap_matches_laion_clap_module_and_avoids_its_random_crop(clap_enc, clap_files, monkeypatch):
    """Our path against laion_clap.CLAP_Module itself, with its downloads pointed at local files."""
    from transformers import BartTokenizer, BertTokenizer, RobertaTokenizer

    text_dir = str(clap_files["text_dir"])
    real_from_pretrained = RobertaTokenizer.from_pretrained.__func__
    monkeypatch.setattr(RobertaTokenizer, "from_pretrained", classmethod(
        lambda cls, *a, **k: real_from_pretrained(cls, text_dir)))
    monkeypatch.setattr(BertTokenizer, "from_pretrained", classmethod(lambda cls, *a, **k: None))
    monkeypatch.setattr(BartTokenizer, "from_pretrained", classmethod(lambda cls, *a, **k: None))
    import laion_clap

    laion_model = sys.modules["clap_module.model"]
    cfg = ClapAudioEncoder(text_model_dir=text_dir)._text_config()
    monkeypatch.setattr(laion_model, "RobertaModel", clap_mod._ConfiguredRoberta(cfg))
    module = laion_clap.CLAP_Module(enable_fusion=False, device="cpu", amodel="HTSAT-tiny")
    module.load_ckpt(str(clap_files["pt"]), verbose=False)

    clips = [_noise(10.0, 20)[0], _noise(3.0, 21)[0]]
    theirs = module.get_audio_embedding_from_data(clips)
    old = clap_enc.batch_size
    clap_enc.batch_size = 2  # one forward pass of two windows, as laion batches them
    try:
        ours = clap_enc.encode_audio([c[None, :] for c in clips], SR)
    finally:
        clap_enc.batch_size = old
    assert np.array_equal(ours, theirs)
    texts = ["dark reverb", "crisp highs"]
    np.testing.assert_allclose(clap_enc.encode_text(texts), module.get_text_embedding(texts),
                               atol=1e-6)
    # laion's own handling of a 25 s clip takes a random 10 s crop: calls disagree
    long = _noise(25.0, 22)[0]
    np.random.seed(0)
    a = module.get_audio_embedding_from_data([long])
    np.random.seed(1)
    b = module.get_audio_embedding_from_data([long])
    assert not np.array_equal(a, b)


# ------------------------------------------------------------------ fixtures: CLIP


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip")
    cfg_file = root / f"{TINY_CLIP}.json"
    cfg_file.write_text(json.dumps(TINY_CLIP_CFG))
    open_clip.add_model_config(cfg_file)  # a model given as data, as open_clip's own configs are
    torch.manual_seed(4321)
    model = open_clip.create_model(TINY_CLIP, pretrained_text=False).eval()
    sd = model.state_dict()
    pt = root / "tiny_state_dict.pt"
    torch.save(sd, pt)
    folder = root / "tiny_open_clip_folder"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP_CFG,
                                                              "preprocess_cfg": {}}))
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in sd.items()}, str(folder / "open_clip_model.safetensors"))
    unsafe = root / "tiny_with_args.pt"
    torch.save({"state_dict": sd, "args": argparse.Namespace(model=TINY_CLIP)}, unsafe)
    return {"model": model, "pt": pt, "folder": folder, "unsafe": unsafe, "root": root}


@pytest.fixture(scope="module")
def clip_enc(clip_files):
    enc = ClipImageEncoder(model=TINY_CLIP, pretrained="", checkpoint=str(clip_files["pt"]),
                           device="cpu", batch_size=4)
    enc.load()
    return enc


def _images(n: int, seed: int = 0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        arr = rng.integers(0, 256, (40 + 13 * i, 90 - 7 * i, 3), dtype=np.uint8)
        out.append(Image.fromarray(arr))
    out.append(Image.fromarray(rng.integers(0, 256, (30, 30), dtype=np.uint8), "L"))
    return out


def _clip_ref(enc, model, images) -> np.ndarray:
    from deltav2a.media.io import ensure_rgb

    with torch.inference_mode():
        x = torch.stack([enc._preprocess(ensure_rgb(im)) for im in images])
        return model.encode_image(x, normalize=True).numpy()


# ------------------------------------------------------------------ CLIP tests


def test_clip_shapes_and_reference_vectors(clip_enc, clip_files):
    ims = _images(3)
    e = clip_enc.encode_images(ims)
    assert e.shape == (4, 32) and e.dtype == np.float32 and clip_enc.dim == 32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(e, _clip_ref(clip_enc, clip_files["model"], ims))
    assert not clip_enc._model.training


def test_clip_is_deterministic_and_batch_independent(clip_enc):
    ims = _images(6, seed=1)
    a = clip_enc.encode_images(ims)
    assert np.array_equal(a, clip_enc.encode_images(ims))
    single = np.concatenate([clip_enc.encode_images([im]) for im in ims])
    np.testing.assert_allclose(a, single, rtol=0, atol=1e-6)
    old = clip_enc.batch_size
    clip_enc.batch_size = 1
    try:
        assert np.array_equal(clip_enc.encode_images(ims), single)
    finally:
        clip_enc.batch_size = old


def test_clip_open_clip_folder_and_text(clip_enc, clip_files):
    enc = ClipImageEncoder(checkpoint=str(clip_files["folder"]), device="cpu", batch_size=4)
    ims = _images(2, seed=2)
    assert np.array_equal(enc.encode_images(ims), clip_enc.encode_images(ims))
    assert enc.fingerprint().startswith("clip/open_clip-folder/sha256:")
    texts = ["a blurry photo", "a sharp photo"]
    t = clip_enc.encode_text(texts)
    assert t.shape == (2, 32)
    with torch.inference_mode():
        ref = clip_files["model"].encode_text(open_clip.get_tokenizer(TINY_CLIP)(texts),
                                              normalize=True).numpy()
    assert np.array_equal(t, ref)
    assert np.array_equal(enc.encode_text(texts), t)


def test_clip_quick_gelu_follows_the_weights():
    assert ClipImageEncoder()._resolved_quick_gelu() is True  # ViT-L-14 + openai
    assert ClipImageEncoder(pretrained="laion2b_s32b_b82k")._resolved_quick_gelu() is False
    assert ClipImageEncoder(model="ViT-B-32-quickgelu",
                            pretrained="laion400m_e32")._resolved_quick_gelu() is True
    assert ClipImageEncoder(quick_gelu=False)._resolved_quick_gelu() is False


def test_clip_quick_gelu_override_changes_the_built_model(clip_enc, clip_files):
    from open_clip.transformer import QuickGELU

    enc = ClipImageEncoder(model=TINY_CLIP, pretrained="", checkpoint=str(clip_files["pt"]),
                           quick_gelu=True, device="cpu")
    ims = _images(1, seed=3)
    e = enc.encode_images(ims)
    assert any(isinstance(m, QuickGELU) for m in enc._model.modules())
    assert not any(isinstance(m, QuickGELU) for m in clip_enc._model.modules())
    assert not np.array_equal(e, clip_enc.encode_images(ims))
    assert enc.fingerprint() != clip_enc.fingerprint()


def test_clip_tag_describes_a_local_file(clip_files):
    """A checkpoint file named as OpenAI weights is built with QuickGELU and OpenAI's
    normalisation; the same architecture named as LAION-2B weights is not."""
    from open_clip.constants import (INCEPTION_MEAN, INCEPTION_STD, OPENAI_DATASET_MEAN,
                                     OPENAI_DATASET_STD)

    openai = ClipImageEncoder(checkpoint=str(clip_files["pt"])).build_kwargs()
    assert openai == {"quick_gelu": True, "image_mean": OPENAI_DATASET_MEAN,
                      "image_std": OPENAI_DATASET_STD, "image_interpolation": "bicubic",
                      "image_resize_mode": "shortest"}
    laion = ClipImageEncoder(pretrained="laion2b_s32b_b82k",
                             checkpoint=str(clip_files["pt"])).build_kwargs()
    assert laion["quick_gelu"] is False
    assert (laion["image_mean"], laion["image_std"]) == (INCEPTION_MEAN, INCEPTION_STD)
    # an open_clip folder carries its own config: nothing is forced on it
    assert ClipImageEncoder(checkpoint=str(clip_files["folder"])).build_kwargs() == {}


def test_clip_torchscript_archive_loads_like_openai_files(clip_enc, clip_files, tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(clip_files["model"])
    path = tmp_path / "ViT-tiny.pt"
    scripted.save(str(path))
    enc = ClipImageEncoder(model=TINY_CLIP, pretrained="", checkpoint=str(path), device="cpu",
                           batch_size=4)
    ims = _images(2, seed=4)
    assert np.array_equal(enc.encode_images(ims), clip_enc.encode_images(ims))


def test_clip_pickled_checkpoint_needs_explicit_permission(clip_enc, clip_files):
    kw = dict(model=TINY_CLIP, pretrained="", checkpoint=str(clip_files["unsafe"]), device="cpu",
              batch_size=4)
    with pytest.raises(DeltaV2AError, match="allow_unsafe_checkpoint"):
        ClipImageEncoder(**kw).load()
    ims = _images(1, seed=5)
    enc = ClipImageEncoder(allow_unsafe_checkpoint="true", **kw)
    assert np.array_equal(enc.encode_images(ims), clip_enc.encode_images(ims))


def test_clip_errors_are_one_line(clip_files, tmp_path):
    with pytest.raises(DeltaV2AError, match="no option"):
        ClipImageEncoder(modle="ViT-B-32")
    with pytest.raises(DeltaV2AError, match="does not fit"):
        ClipImageEncoder(model="ViT-S-32", pretrained="", checkpoint=str(clip_files["pt"])).load()
    with pytest.raises(DeltaV2AError, match="not an open_clip weights tag"):
        ClipImageEncoder(pretrained="imaginary-tag").load()
    with pytest.raises(DeltaV2AError, match="unknown open_clip model"):
        ClipImageEncoder(model="ViT-Imaginary", pretrained="", checkpoint=str(clip_files["pt"])).load()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(DeltaV2AError, match="not a readable PyTorch checkpoint"):
        ClipImageEncoder(model=TINY_CLIP, pretrained="", checkpoint=str(junk)).load()
    with pytest.raises(DeltaV2AError, match="not a readable PyTorch checkpoint"):
        ClapAudioEncoder(checkpoint=str(junk)).load()
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(DeltaV2AError, match="not a readable checkpoint"):
        ClipImageEncoder(model=TINY_CLIP, pretrained="", checkpoint=str(broken)).load()
    with pytest.raises(DeltaV2AError, match="device"):
        ClipImageEncoder(device="tpu")
    with pytest.raises(DeltaV2AError, match="not a Pillow image"):
        ClipImageEncoder(model=TINY_CLIP, pretrained="", checkpoint=str(clip_files["pt"])
                         ).encode_images([np.zeros((4, 4, 3))])


# ------------------------------------------------------------------ no network, cheap import


_OFFLINE_SCRIPT = r"""
import json, os, socket, sys
attempts = []
def refuse(*args, **kwargs):
    attempts.append(repr(args)[:80])
    raise OSError("network blocked by test")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse

import numpy as np
from PIL import Image
from deltav2a.errors import DeltaV2AError
from deltav2a_plugins.encoders.clap import ClapAudioEncoder
from deltav2a_plugins.encoders.clip import ClipImageEncoder
import open_clip

a = json.loads(sys.argv[1])
open_clip.add_model_config(a["clip_cfg"])
clip = ClipImageEncoder(model=a["clip_model"], pretrained="", checkpoint=a["clip_pt"])
img = clip.encode_images([Image.new("RGB", (50, 40), (200, 30, 10))])
txt = clip.encode_text(["a photo"])
clap = ClapAudioEncoder(amodel="HTSAT-tiny", checkpoint=a["clap_pt"], text_model_dir=a["text_dir"])
rng = np.random.default_rng(0)
aud = clap.encode_audio([rng.standard_normal((2, 48000 * 12)).astype(np.float32) * 0.1], 48000)
t2 = clap.encode_text(["a warm sound"])
fps = [clip.fingerprint(), clap.fingerprint()]
# defaults with empty caches: a clear error, not a connection attempt
errors = []
for make in (lambda: ClipImageEncoder(model="ViT-B-32", pretrained="openai"),
             lambda: ClapAudioEncoder()):
    try:
        enc = make()
        enc.encode_images([Image.new("RGB", (8, 8))]) if hasattr(enc, "encode_images") \
            else enc.encode_audio([np.zeros((1, 100), np.float32)], 48000)
        errors.append("no error")
    except DeltaV2AError as exc:
        errors.append(str(exc))
clean = list(attempts)
# control: an ordinary HTTPS request is seen (and stopped) by the blocker
import urllib.request
try:
    urllib.request.urlopen("https://huggingface.co/api/models/lukewys/laion_clap", timeout=5)
    errors.append("no error")
except Exception as exc:
    errors.append(f"blocked: {exc}")
control = len(attempts) - len(clean)
attempts = clean
print(json.dumps({"attempts": attempts, "control_attempts": control,
                  "shapes": [img.shape, txt.shape, aud.shape, t2.shape],
                  "errors": errors, "laion_loaded": "clap_module" in sys.modules}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("offline_env", [True, False], ids=["HF_HUB_OFFLINE", "no-offline-env"])
@pytest.mark.slow
def test_nothing_opens_a_connection(clap_files, clip_files, tmp_path, offline_env):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "TRANSFORMERS_", "DELTAV2A_CL", "DELTAV2A_OFFLINE"))}
    env.update(HOME=str(home), HF_HOME=str(home / "hf"), XDG_CACHE_HOME=str(home / "cache"))
    if offline_env:
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    else:
        env["DELTAV2A_OFFLINE"] = "1"  # our own switch only: the libraries are not told
    args = {"clip_cfg": str(clip_files["root"] / f"{TINY_CLIP}.json"), "clip_model": TINY_CLIP,
            "clip_pt": str(clip_files["pt"]), "clap_pt": str(clap_files["pt"]),
            "text_dir": str(clap_files["text_dir"])}
    proc = subprocess.run([sys.executable, "-c", _OFFLINE_SCRIPT, json.dumps(args)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["attempts"] == []
    assert out["shapes"] == [[1, 32], [1, 32], [1, 512], [1, 512]]
    assert out["laion_loaded"]
    clip_err, clap_err, control_err = out["errors"]
    assert "not in open_clip's cache" in clip_err and "checkpoint" in clip_err
    assert "DELTAV2A_CLAP_CHECKPOINT" in clap_err
    assert "network blocked by test" in control_err and out["control_attempts"] > 0


def test_importing_the_plugins_stays_cheap():
    code = ("import sys, deltav2a_plugins.encoders.clip as a, deltav2a_plugins.encoders.clap as b;"
            "heavy = [m for m in ('torch', 'numpy', 'open_clip', 'laion_clap', 'clap_module', "
            "'transformers') if m in sys.modules]; print(heavy);"
            "print(a.ClipImageEncoder.name, b.ClapAudioEncoder.name)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["[]", "clip clap"]


@pytest.mark.slow
def test_one_config_switch_runs_the_style_command_with_clip_and_clap(clip_files, clap_files, tmp_path):
    """The same `style` command, the encoders swapped by config alone (random weights)."""
    import subprocess

    import soundfile as sf
    import yaml

    from deltav2a.render.chain import AudioChain, ChainSettings
    from deltav2a.media.examples import groove, landscape_image
    from deltav2a.api.registry import get

    cfg = tmp_path / "clip_clap.yaml"
    cfg.write_text(yaml.safe_dump({"encoders": {
        "image": {"name": "clip", "options": {"checkpoint": str(clip_files["folder"]), "device": "cpu"}},
        "audio": {"name": "clap", "options": {"amodel": "HTSAT-tiny", "checkpoint": str(clap_files["pt"]),
                                              "text_model_dir": str(clap_files["text_dir"]), "device": "cpu"}},
    }}))
    img = landscape_image(128, 96)
    img.save(tmp_path / "a.png")
    get("image_effect", "motion_blur")().apply(img, 0.8).save(tmp_path / "b.png")
    x = groove(2.0, 48000)
    sf.write(tmp_path / "a.wav", x.T, 48000)
    sf.write(tmp_path / "b.wav", AudioChain(ChainSettings.parse(["lowpass:cutoff_hz=500"]), tail="cut").render(x, 48000).audio.T, 48000)
    exe = str(Path(sys.executable).with_name("deltav2a"))
    env = {**os.environ, "DELTAV2A_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    for kind, a, b, name in (("--image", "a.png", "b.png", "clip"), ("--audio", "a.wav", "b.wav", "clap")):
        res = subprocess.run([exe, "style", "-c", str(cfg), kind, str(tmp_path / a), "--edited", str(tmp_path / b),
                              "--json"], capture_output=True, text=True, env=env, timeout=600)
        assert res.returncode == 0, res.stderr
        out = json.loads(res.stdout)
        assert out["encoder"] == name and len(out["label"]) == 24
        assert out["delta_norm"] > 0 and abs(sum(out["label"].values()) - 1) < 1e-4
