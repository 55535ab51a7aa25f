"""Audio loading: formats, sample formats, channels, resampling, edge cases and user errors."""

from __future__ import annotations

import re

import av
import numpy as np
import pytest
import soundfile as sf

from adamesh.audio import SAMPLE_RATE, frame_count, load_audio, resample, times_real_time
from adamesh.errors import AdameshError


def sine(freq: float, rate: int, n: int, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.float32)


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def user_error(path) -> re.Pattern:
    """An AdameshError naming the file."""
    return pytest.raises(AdameshError, match=re.escape(str(path)))


# Resampling


@pytest.mark.parametrize("rate", [44100, 48000, 8000, 22050])
def test_resampling_keeps_frequency_length_and_level(tmp_path, rate):
    n = rate + 37  # about 1 s, not a whole number of output samples
    path = tmp_path / f"tone{rate}.wav"
    sf.write(path, sine(440, rate, n), rate, subtype="FLOAT")
    x, got_rate = load_audio(path)
    assert got_rate == SAMPLE_RATE
    assert x.dtype == np.float32 and x.ndim == 1 and x.flags.c_contiguous
    assert len(x) == round(n * SAMPLE_RATE / rate)
    assert abs(peak_hz(x, SAMPLE_RATE) - 440) < 2
    inner = x[400:-400]  # away from the filter's start-up at the edges
    assert rms(inner) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


def test_tone_above_target_nyquist_is_filtered_not_aliased(tmp_path):
    rate, n = 44100, 44100
    path = tmp_path / "high.wav"
    sf.write(path, sine(11000, rate, n), rate, subtype="FLOAT")  # would alias to 5 kHz
    x, _ = load_audio(path)
    assert rms(x[400:-400]) < 0.01 * (0.5 / np.sqrt(2))


def test_sample_rate_none_keeps_the_file_rate(tmp_path):
    path = tmp_path / "keep.wav"
    sf.write(path, sine(440, 22050, 2205), 22050, subtype="FLOAT")
    x, rate = load_audio(path, sample_rate=None)
    assert rate == 22050 and len(x) == 2205
    np.testing.assert_allclose(x, sine(440, 22050, 2205), atol=1e-7)


def test_resample_matches_a_rational_ratio():
    y = resample(sine(440, 44100, 4410), 44100, 16000)
    assert y.dtype == np.float32 and len(y) == 1600
    assert resample(np.zeros(1, np.float32), 48000, 16000).shape == (1,)


# Channels and sample formats


def test_opposite_stereo_channels_cancel(tmp_path):
    left = sine(440, SAMPLE_RATE, 1600)
    path = tmp_path / "cancel.wav"
    sf.write(path, np.stack([left, -left], axis=1), SAMPLE_RATE, subtype="FLOAT")
    x, _ = load_audio(path)
    assert np.abs(x).max() < 1e-6


def test_left_only_stereo_gives_half_amplitude(tmp_path):
    left = sine(440, SAMPLE_RATE, 1600, amp=0.8)
    path = tmp_path / "left.wav"
    sf.write(path, np.stack([left, np.zeros_like(left)], axis=1), SAMPLE_RATE, subtype="FLOAT")
    x, _ = load_audio(path)
    np.testing.assert_allclose(x, left / 2, atol=1e-7)


def test_multichannel_is_averaged(tmp_path):
    data = np.tile(np.array([0.6, 0.3, 0.0, -0.3, 0.9, 0.3], np.float32), (100, 1))
    path = tmp_path / "six.wav"
    sf.write(path, data, SAMPLE_RATE, subtype="FLOAT")
    x, _ = load_audio(path)
    np.testing.assert_allclose(x, np.full(100, 0.3), atol=1e-7)


@pytest.mark.parametrize(
    ("subtype", "step"),
    [
        ("PCM_U8", 2**-7),
        ("PCM_16", 2**-15),
        ("PCM_24", 2**-23),
        ("PCM_32", 2**-31),
        ("FLOAT", 1e-7),
        ("DOUBLE", 1e-7),
    ],
)
def test_sample_formats_read_at_full_scale(tmp_path, subtype, step):
    values = np.array([0.0, 0.5, -0.5, -1.0, 0.25, -0.125], np.float64)
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, values, SAMPLE_RATE, subtype=subtype)
    x, _ = load_audio(path)
    np.testing.assert_allclose(x, values, atol=step)


def test_int16_extremes_map_to_full_scale(tmp_path):
    path = tmp_path / "int16.wav"
    sf.write(path, np.array([32767, -32768, 16384, 0], np.int16), SAMPLE_RATE, subtype="PCM_16")
    x, _ = load_audio(path)
    np.testing.assert_allclose(x, [32767 / 32768, -1.0, 0.5, 0.0], atol=1e-7)


@pytest.mark.parametrize("subtype", ["ULAW", "ALAW", "PCM_16"])
def test_8khz_telephone_audio(tmp_path, subtype):
    path = tmp_path / f"phone-{subtype}.wav"
    sf.write(path, sine(440, 8000, 8000), 8000, subtype=subtype)
    x, rate = load_audio(path)
    assert rate == SAMPLE_RATE and len(x) == 16000
    assert abs(peak_hz(x, SAMPLE_RATE) - 440) < 2


# Compressed formats


def test_flac_is_lossless(tmp_path):
    tone = sine(440, SAMPLE_RATE, 8000)
    path = tmp_path / "tone.flac"
    sf.write(path, tone, SAMPLE_RATE, subtype="PCM_16")
    x, _ = load_audio(path)
    np.testing.assert_allclose(x, tone, atol=2**-15)


@pytest.mark.parametrize(
    ("suffix", "fmt", "subtype"),
    [
        ("ogg", "OGG", "VORBIS"),
        ("opus", "OGG", "OPUS"),
        ("mp3", "MP3", "MPEG_LAYER_III"),
    ],
)
def test_lossy_formats_keep_their_content(tmp_path, suffix, fmt, subtype):
    rate = 48000  # opus only encodes 8/12/16/24/48 kHz
    path = tmp_path / f"tone.{suffix}"
    sf.write(path, sine(440, rate, rate), rate, format=fmt, subtype=subtype)
    x, got_rate = load_audio(path)
    assert got_rate == SAMPLE_RATE
    assert abs(len(x) - SAMPLE_RATE) < 0.1 * SAMPLE_RATE  # codecs pad a few frames
    assert abs(peak_hz(x, SAMPLE_RATE) - 440) < 3
    assert rms(x[1600:-1600]) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)


# Files libsndfile cannot read: FFmpeg (PyAV) fallback


def write_with_pyav(
    path, channels: np.ndarray, rate: int, codec: str, sample_format: str, video: bool = False
) -> None:
    """Encode (channels, samples) float audio, optionally next to a few video frames."""
    layout = {1: "mono", 2: "stereo"}[len(channels)]
    with av.open(str(path), "w") as out:
        # Every stream is added before the first packet: the muxer writes its header then.
        v = out.add_stream("mpeg4", rate=25) if video else None
        a = out.add_stream(codec, rate=rate, layout=layout)
        a.format = sample_format
        if v:
            v.width, v.height, v.pix_fmt = 64, 64, "yuv420p"
            black = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            for _ in range(5):
                out.mux(v.encode(black))
            out.mux(v.encode(None))
        to_codec = av.AudioResampler(
            format=sample_format, layout=layout, rate=rate, frame_size=a.codec_context.frame_size or 1024
        )
        source = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(channels, np.float32), format="fltp", layout=layout
        )
        source.sample_rate = rate
        for frame in to_codec.resample(source) + to_codec.resample(None):
            out.mux(a.encode(frame))
        out.mux(a.encode(None))


@pytest.mark.parametrize(
    ("codec", "sample_format"),
    [
        ("pcm_s16le", "s16"),
        ("pcm_s32le", "s32"),
        ("pcm_f32le", "flt"),
        ("pcm_f64le", "dbl"),
    ],
)
def test_fallback_converts_packed_sample_formats(tmp_path, codec, sample_format):
    left = sine(440, SAMPLE_RATE, 4000, amp=0.8)
    right = sine(1000, SAMPLE_RATE, 4000, amp=0.4)
    path = tmp_path / f"{sample_format}.mkv"
    write_with_pyav(path, np.stack([left, right]), SAMPLE_RATE, codec, sample_format)
    with pytest.raises(sf.SoundFileError):  # the fallback is what reads it
        sf.info(path)
    x, rate = load_audio(path)
    assert rate == SAMPLE_RATE
    # Packed samples read as planar would scramble left and right instead of averaging them.
    np.testing.assert_allclose(x, (left + right) / 2, atol=2**-14)


def test_m4a_aac_through_the_fallback(tmp_path):
    rate = 44100
    tone = sine(440, rate, rate)
    path = tmp_path / "speech.m4a"
    write_with_pyav(path, np.stack([tone, np.zeros_like(tone)]), rate, "aac", "fltp")
    x, got_rate = load_audio(path)
    assert got_rate == SAMPLE_RATE
    assert abs(len(x) - SAMPLE_RATE) < 0.1 * SAMPLE_RATE
    assert abs(peak_hz(x, SAMPLE_RATE) - 440) < 3
    assert rms(x[1600:-1600]) == pytest.approx(0.25 / np.sqrt(2), rel=0.1)  # left only: half


def test_audio_track_of_a_video(tmp_path):
    tone = sine(440, 48000, 24000)
    path = tmp_path / "talk.mp4"
    write_with_pyav(path, tone[None], 48000, "aac", "fltp", video=True)
    x, _ = load_audio(path)
    assert abs(len(x) - 8000) < 1600
    assert abs(peak_hz(x, SAMPLE_RATE) - 440) < 3


def test_video_without_audio_is_a_clear_error(tmp_path):
    path = tmp_path / "silent-film.mp4"
    with av.open(str(path), "w") as out:
        v = out.add_stream("mpeg4", rate=25)
        v.width, v.height, v.pix_fmt = 64, 64, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
        out.mux(v.encode(frame))
        out.mux(v.encode(None))
    with user_error(path) as e:
        load_audio(path)
    assert "has no audio track" in str(e.value)


# Edge cases that must load


def test_silence_loads(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(44100, np.float32), 44100, subtype="PCM_16")
    x, _ = load_audio(path)
    assert len(x) == 16000 and not x.any()


@pytest.mark.parametrize(("rate", "n", "expected"), [(44100, 1, 1), (16000, 1, 1), (8000, 80, 160)])
def test_very_short_audio_loads(tmp_path, rate, n, expected):
    path = tmp_path / "short.wav"
    sf.write(path, np.full(n, 0.5, np.float32), rate, subtype="PCM_16")
    x, _ = load_audio(path)
    assert len(x) == expected and np.isfinite(x).all()


def test_out_of_range_and_non_finite_float_samples(tmp_path):
    path = tmp_path / "hot.wav"
    samples = np.array([2.0, -3.0, 1.0, -1.0, 0.5, np.nan, np.inf, -np.inf])
    sf.write(path, samples, SAMPLE_RATE, subtype="FLOAT")
    x, _ = load_audio(path)
    np.testing.assert_array_equal(x, [1.0, -1.0, 1.0, -1.0, 0.5, 0.0, 0.0, 0.0])


def test_nan_in_one_channel_keeps_the_other(tmp_path):
    path = tmp_path / "half-bad.wav"
    sf.write(path, np.array([[np.nan, 0.5], [0.2, 0.4]]), SAMPLE_RATE, subtype="FLOAT")
    x, _ = load_audio(path)
    np.testing.assert_allclose(x, [0.25, 0.3], atol=1e-7)


def test_clipped_square_wave_stays_in_range_after_resampling(tmp_path):
    square = np.sign(sine(200, 44100, 44100)).astype(np.float32)  # at full scale: the filter rings past it
    path = tmp_path / "clipped.wav"
    sf.write(path, square, 44100, subtype="PCM_16")
    x, _ = load_audio(path)
    assert np.abs(x).max() <= 1.0
    assert np.abs(x[400:-400]).max() == 1.0  # ringing was clipped, not the level lowered


# User errors


def test_empty_wav(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros((0, 1), np.float32), SAMPLE_RATE)
    with user_error(path) as e:
        load_audio(path)
    assert "contains no audio samples" in str(e.value)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "nothing.wav"
    path.touch()
    with user_error(path) as e:
        load_audio(path)
    assert "empty" in str(e.value)


@pytest.mark.parametrize("suffix", ["wav", "mp3", "m4a"])
def test_garbage_is_a_clear_error(tmp_path, suffix):
    path = tmp_path / f"notes.{suffix}"
    path.write_bytes(b"these are not the samples you are looking for\n" * 50)
    with user_error(path) as e:
        load_audio(path)
    assert "corrupt or not an audio or video file" in str(e.value)


def test_truncated_flac_is_a_clear_error(tmp_path):
    path = tmp_path / "cut.flac"
    sf.write(path, sine(440, SAMPLE_RATE, 16000), SAMPLE_RATE)
    path.write_bytes(path.read_bytes()[:30])  # header cut short
    with user_error(path):
        load_audio(path)


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.wav"
    with user_error(path) as e:
        load_audio(path)
    assert "does not exist" in str(e.value)


def test_directory(tmp_path):
    with user_error(tmp_path) as e:
        load_audio(tmp_path)
    assert "is a directory" in str(e.value)


# Frames


@pytest.mark.parametrize(
    ("n_samples", "fps", "frames"),
    [
        (48000, 25, 75),
        (48000 + 320, 25, 76),
        (48000 + 319, 25, 75),
        (1, 25, 1),
        (0, 25, 1),
        (16000, 30000 / 1001, 30),
    ],
)
def test_frame_count(n_samples, fps, frames):
    assert frame_count(n_samples, SAMPLE_RATE, fps) == frames


@pytest.mark.parametrize("rate", [1, 2000])
def test_rates_too_low_for_speech_are_refused(tmp_path, rate):
    path = tmp_path / "low.wav"
    sf.write(path, np.zeros(max(rate, 10), np.float32), rate)
    with pytest.raises(AdameshError, match=f"sampled at {rate} Hz, too low to hold speech"):
        load_audio(path)


def test_speeds_read_as_people_read_them():
    assert [times_real_time(x) for x in (0.042, 0.42, 3.14, 9.96, 33.4, 120.0)] == [
        "0.042x", "0.42x", "3.1x", "10x", "33x", "120x"]  # fmt: skip
