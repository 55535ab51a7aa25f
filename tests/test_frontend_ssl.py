"""HuBERT / wav2vec2 front-end (adamesh.frontends.ssl) on tiny randomly initialised local models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
import transformers

from adamesh.audio import SAMPLE_RATE, frame_count
from adamesh.errors import AdameshError
from adamesh.frontends import FeatureCache, load_frontend, make_frontend, save_frontend
from adamesh.frontends.ssl import SSLFrontEnd

# The standard 7-layer conv stack (stride 320: 50 Hz) with tiny widths; 2 transformer layers.
TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "conv_dim": (16,) * 7,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 4,
}


def save_model(folder, kind="hubert", seed=0, **overrides):
    torch.manual_seed(seed)
    if kind == "hubert":  # base style: group-norm conv stack, no preprocessor config (raw audio)
        model = transformers.HubertModel(transformers.HubertConfig(**TINY, **overrides))
    else:  # large style: layer-norm conv stack, normalised input
        config = transformers.Wav2Vec2Config(
            **TINY, feat_extract_norm="layer", do_stable_layer_norm=True, **overrides
        )
        model = transformers.Wav2Vec2Model(config)
        transformers.Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(folder)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def hubert_dir(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("hubert"))


@pytest.fixture(scope="module")
def wav2vec2_dir(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("wav2vec2"), "wav2vec2", seed=1)


def noise(seconds, seed=0):
    return np.random.default_rng(seed).normal(0, 0.1, round(seconds * SAMPLE_RATE)).astype(np.float32)


def test_frame_geometry_of_the_standard_conv_stack(hubert_dir):
    fe = SSLFrontEnd("hubert", hubert_dir)
    assert (fe.stride, fe.field, fe.rate, fe.offset, fe.dim) == (320, 400, 50.0, 0.0125, 32)
    assert fe.n_units == 0 and fe.name == "hubert"


@pytest.mark.parametrize("seconds", [0.0, 0.01, 0.0249, 1.0, 3.33])
def test_exact_row_count(hubert_dir, seconds):
    audio = noise(seconds)
    feats = SSLFrontEnd("hubert", hubert_dir)(audio)
    assert feats.features.shape == (frame_count(len(audio), SAMPLE_RATE, 25), 32)
    assert np.isfinite(feats.features).all() and not feats.units.any()


def test_long_file_in_windows_has_exact_row_count(wav2vec2_dir):
    audio = noise(61.3)
    fe = SSLFrontEnd("wav2vec2", wav2vec2_dir, window_s=5.0)
    assert len(fe.encode(audio)) == (len(audio) - 400) // 320 + 1
    assert len(fe(audio, fps=25)) == frame_count(len(audio), SAMPLE_RATE, 25) == 1533
    assert len(fe(audio, fps=30)) == frame_count(len(audio), SAMPLE_RATE, 30)


def test_windows_stitch_without_seams(hubert_dir, wav2vec2_dir):
    audio = noise(9.71, seed=3)
    # Context covering the whole file: every window sees the same input, so stitching must be exact.
    whole = SSLFrontEnd("hubert", hubert_dir, window_s=100).encode(audio)
    windowed = SSLFrontEnd("hubert", hubert_dir, window_s=1.3, context_s=20).encode(audio)
    np.testing.assert_allclose(windowed, whole, atol=1e-4)
    # Layer 0 of a layer-norm model is local (conv field + positional conv of +-8 frames), so 1 s of
    # context already gives the single-pass frames everywhere, seams included.
    whole = SSLFrontEnd("wav2vec2", wav2vec2_dir, layer=0, window_s=100).encode(audio)
    windowed = SSLFrontEnd("wav2vec2", wav2vec2_dir, layer=0, window_s=2.0, context_s=1.0).encode(audio)
    np.testing.assert_allclose(windowed, whole, atol=1e-4)


def test_layers(hubert_dir):
    audio = noise(1.0)
    feats = [SSLFrontEnd("hubert", hubert_dir, layer=k)(audio).features for k in (0, 1, 2)]
    assert not np.allclose(feats[0], feats[1]) and not np.allclose(feats[1], feats[2])
    np.testing.assert_array_equal(SSLFrontEnd("hubert", hubert_dir, layer=-1)(audio).features, feats[2])
    for bad in (3, -4):
        with pytest.raises(AdameshError, match="choose from -3 to 2"):
            SSLFrontEnd("hubert", hubert_dir, layer=bad)


def test_input_normalisation_follows_the_preprocessor_config(hubert_dir, wav2vec2_dir):
    audio = noise(1.0)
    w2v = SSLFrontEnd("wav2vec2", wav2vec2_dir)
    assert w2v.normalize
    np.testing.assert_allclose(w2v(audio * 3 + 0.01).features, w2v(audio).features, atol=1e-4)
    hub = SSLFrontEnd("hubert", hubert_dir)
    assert not hub.normalize and not np.allclose(hub(audio * 3).features, hub(audio).features, atol=1e-3)


def test_bad_model_folders(tmp_path, hubert_dir, wav2vec2_dir):
    with pytest.raises(AdameshError, match="needs a local model folder"):
        SSLFrontEnd("hubert")
    with pytest.raises(AdameshError, match="is not a model folder"):
        SSLFrontEnd("hubert", tmp_path / "missing")
    with pytest.raises(AdameshError, match="is not a model folder"):
        SSLFrontEnd("hubert", tmp_path)
    (tmp_path / "config.json").write_text((hubert_dir / "config.json").read_text())
    with pytest.raises(AdameshError, match="is not a model folder"):  # config without weights
        SSLFrontEnd("hubert", tmp_path)
    with pytest.raises(AdameshError, match="holds a 'wav2vec2' model, not a 'hubert' one"):
        SSLFrontEnd("hubert", wav2vec2_dir)
    with pytest.raises(AdameshError, match="unknown"):
        SSLFrontEnd("whisper", hubert_dir)


def test_bad_weights_are_found_on_first_use(tmp_path):
    short = save_model(tmp_path / "short")
    config = json.loads((short / "config.json").read_text())
    (short / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 3}))
    with pytest.raises(AdameshError, match="lack 16 tensors"):
        SSLFrontEnd("hubert", short)(noise(0.1))
    broken = save_model(tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"not a model" * 100)
    with pytest.raises(AdameshError, match="cannot load the hubert model"):
        SSLFrontEnd("hubert", broken)(noise(0.1))


def test_make_save_load_round_trip(tmp_path, hubert_dir):
    fe = make_frontend("hubert", model_dir=hubert_dir, layer=1)
    fe.fit_units([fe(noise(1.0, seed=s)) for s in range(3)], k=4)
    save_frontend(fe, tmp_path)
    again = load_frontend(tmp_path)
    assert isinstance(again, SSLFrontEnd) and again.options() == fe.options() and again.n_units == 4
    assert json.loads((tmp_path / "frontend.json").read_text())["options"]["model_dir"] == str(hubert_dir)
    audio = noise(2.0, seed=7)
    a, b = fe(audio), again(audio)
    np.testing.assert_array_equal(a.features, b.features)
    np.testing.assert_array_equal(a.units, b.units)
    assert a.units.max() > 0


def test_config_follows_the_weights(tmp_path, hubert_dir):
    folder = save_model(tmp_path / "m")
    key = SSLFrontEnd("hubert", folder).key()
    assert key == SSLFrontEnd("hubert", hubert_dir).key()  # same content in another folder
    assert key != SSLFrontEnd("hubert", folder, layer=1).key()
    model = transformers.HubertModel.from_pretrained(folder)
    with torch.no_grad():
        model.encoder.layers[0].feed_forward.output_dense.weight[0, 0] += 1e-3
    model.save_pretrained(folder)
    assert SSLFrontEnd("hubert", folder).key() != key


def test_feature_cache_skips_the_model(tmp_path, hubert_dir, monkeypatch):
    wav = tmp_path / "a.wav"
    sf.write(wav, noise(1.5), SAMPLE_RATE, subtype="FLOAT")
    cache = FeatureCache(tmp_path / "cache")
    fe = SSLFrontEnd("hubert", hubert_dir)
    first = fe.from_file(wav, cache=cache)

    def fail(*args, **kwargs):
        raise AssertionError("the model ran again")

    monkeypatch.setattr(SSLFrontEnd, "compute", fail)
    second = SSLFrontEnd("hubert", hubert_dir).from_file(wav, cache=cache)
    np.testing.assert_array_equal(first.features, second.features)
    assert len(second) == frame_count(round(1.5 * SAMPLE_RATE), SAMPLE_RATE, 25)
