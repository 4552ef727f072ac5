"""The offline synthetic speech builder (train/speech/): real espeak-ng, flite and festival, tiny sizes."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import require_system

from train.speech import (EngineMissing, KwsClips, Request, Voice, augment, build_clips, make_backgrounds,
                          negative_stream, running_speech, split_voices, synthesize, synthesize_requests, voices)
from train.speech import streams, text
from train.speech.synth import SAMPLE_RATE_HZ, speech_bounds

ENGINES = ("espeak-ng", "flite", "festival")
WORDS = ("yes", "no")


def require_engines(*names):
    for name in names or ENGINES:
        require_system(shutil.which(name) is not None, f"{name} (Debian package {name})")


def small_voices() -> list[Voice]:
    """Two speakers of each of flite and festival, six espeak-ng voices (two accents x three variants)."""
    require_engines()
    found = voices()
    espeak = [v for v in found if v.engine == "espeak-ng" and v.name in ("en-us", "en-gb-x-rp")
              and v.variant in ("", "f3", "m3")]
    return espeak + [Voice("flite", "slt"), Voice("flite", "awb"), Voice("festival", "kal_diphone"),
                     Voice("festival", "ked_diphone")]


def energy_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


@pytest.mark.parametrize("engine", ENGINES)
def test_each_engine_speaks_a_trimmed_word_at_16khz(engine, tmp_path):
    require_engines(engine)
    found = voices(engines=(engine,))
    assert found and all(v.engine == engine for v in found)
    [utt] = synthesize(["seven"], found[:1], cache_dir=tmp_path)
    assert utt.audio.dtype == np.float32 and utt.voice == found[0].id and utt.text == "seven"
    assert 0.25 < utt.seconds < 1.5, utt.seconds  # a word, not a second of silence around it
    start, end = speech_bounds(utt.audio)
    assert start <= 80 and end >= len(utt.audio) - 80  # trimmed: speech from the first frame to the last
    assert np.max(np.abs(utt.audio)) > 0.05


def test_voice_inventory_per_engine():
    require_engines()
    found = voices()
    by_engine = {e: [v for v in found if v.engine == e] for e in ENGINES}
    assert len({v.name for v in by_engine["espeak-ng"]}) == 8  # English accents, no mbrola voices
    assert {v.name for v in by_engine["flite"]} == {"kal16", "awb", "rms", "slt"}
    assert {v.name for v in by_engine["festival"]} == {"kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts"}
    assert len(set(found)) == len(found) and Voice.parse("espeak-ng:en-us+f3") == Voice("espeak-ng", "en-us", "f3")


def test_espeak_accents_and_variants_really_differ(tmp_path):
    """espeak-ng 1.51 drops the variant of '-v en-gb+f3' and speaks en-us-nyc as en-us; our voices must not."""
    require_engines("espeak-ng")
    ids = ["espeak-ng:en-gb", "espeak-ng:en-gb+f3", "espeak-ng:en-us", "espeak-ng:en-us-nyc"]
    audio = [u.audio for u in synthesize(["water"], [Voice.parse(i) for i in ids], cache_dir=tmp_path)]
    for i in range(len(audio)):
        for j in range(i + 1, len(audio)):
            assert len(audio[i]) != len(audio[j]) or not np.array_equal(audio[i], audio[j]), (ids[i], ids[j])


def test_missing_engine_is_a_one_line_error_naming_the_package(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    for engine in ENGINES:
        with pytest.raises(EngineMissing) as err:
            voices(engines=(engine,))
        message = str(err.value)
        assert "\n" not in message and f"apt-get install {engine}" in message


def test_split_holds_out_whole_voices_accents_variants_and_speakers():
    require_engines()
    found = voices()
    for seed in range(5):
        train, val = split_voices(found, val_fraction=0.2, seed=seed)
        assert set(train).isdisjoint(val) and set(train) | set(val) == set(found)
        assert {v.engine for v in val} == set(ENGINES) and {v.engine for v in train} == set(ENGINES)
        assert {v.speaker for v in train}.isdisjoint({v.speaker for v in val})  # flite slt vs festival slt
        accents, variants = {v.name for v in train if v.engine == "espeak-ng"}, \
            {v.variant for v in train if v.engine == "espeak-ng"}
        for v in val:
            if v.engine == "espeak-ng":
                assert v.name not in accents or v.variant not in variants, v.id
        assert 0.1 < len(val) / len(found) < 0.35
        assert split_voices(list(reversed(found)), seed=seed)[1] == tuple(reversed(val))  # order-free choice


def test_synthesis_cache_is_reused_and_a_changed_option_renders_again(tmp_path, monkeypatch):
    require_engines("espeak-ng", "flite")
    voice_list = [Voice("espeak-ng", "en-us", "f3"), Voice("flite", "slt")]
    first = synthesize(["three", "four"], voice_list, cache_dir=tmp_path, speeds=(1.1,), pitches=(1.0,))
    entries = sorted(tmp_path.rglob("*.npy"))
    assert len(entries) == 4

    def no_engine(*args, **kwargs):
        raise AssertionError("rendered although every utterance is cached")

    monkeypatch.setattr("train.speech.synth.render", no_engine)
    again = synthesize(["three", "four"], voice_list, cache_dir=tmp_path, speeds=(1.1,), pitches=(1.0,))
    assert all(np.array_equal(a.audio, b.audio) for a, b in zip(first, again))
    with pytest.raises(AssertionError, match="rendered"):
        synthesize(["three"], voice_list[:1], cache_dir=tmp_path, speeds=(1.1,), pitches=(2.0,))
    monkeypatch.undo()
    shifted = synthesize(["three"], voice_list[1:], cache_dir=tmp_path, speeds=(1.1,), pitches=(3.0,))
    assert len(sorted(tmp_path.rglob("*.npy"))) == 5
    assert not np.array_equal(shifted[0].audio[:1000], first[1].audio[:1000])


def test_festival_batch_speed_and_pitch_take_effect(tmp_path):
    require_engines("festival")
    slow, fast, high = synthesize_requests(
        [Request(Voice("festival", "cmu_us_slt_arctic_hts"), "seven", 0.8, 0.0),
         Request(Voice("festival", "cmu_us_slt_arctic_hts"), "seven", 1.25, 0.0),
         Request(Voice("festival", "kal_diphone"), "seven", 1.0, 3.0)], cache_dir=tmp_path)
    assert slow.seconds > 1.3 * fast.seconds
    [plain] = synthesize_requests([Request(Voice("festival", "kal_diphone"), "seven", 1.0, 0.0)], cache_dir=tmp_path)
    assert abs(high.seconds - plain.seconds) < 0.15 * plain.seconds  # pitch moved, duration kept


@pytest.fixture(scope="module")
def backgrounds(tmp_path_factory):
    """Small background tracks (the default build makes a dozen of 8 s each)."""
    require_engines()
    return make_backgrounds(WORDS, small_voices()[:3], seed=0, cache_dir=tmp_path_factory.mktemp("bg"),
                            music_tracks=2, babble_tracks=2, track_seconds=2.0)


def tiny_build(cache_dir, backgrounds, seed=0, **options):
    return build_clips(WORDS, seed=seed, cache_dir=cache_dir, voices=small_voices(), augment_copies=1,
                       per_voice={"espeak-ng": 1, "flite": 2, "festival": 2}, unknown_words=0.5,
                       backgrounds=backgrounds, **options)


@pytest.fixture(scope="module")
def built(tmp_path_factory, backgrounds):
    """A tiny build and the cache folder it was made in (with the progress stages it reported)."""
    folder = tmp_path_factory.mktemp("kws")
    stages = []
    clips = tiny_build(folder, backgrounds, progress=lambda stage, done, total: stages.append(stage))
    return clips, folder, stages


def test_engines_are_deterministic(tmp_path):
    require_engines()
    requests = [Request(v, "seven", 1.1, 1.0) for v in small_voices()]
    first = synthesize_requests(requests, cache_dir=tmp_path / "a")
    again = synthesize_requests(requests, cache_dir=tmp_path / "b")
    assert all(np.array_equal(a.audio, b.audio) for a, b in zip(first, again))


def test_build_is_bit_identical_for_a_seed_and_cached(built, backgrounds, tmp_path):
    first, folder, stages = built
    shutil.copytree(folder / "utterances", tmp_path / "utterances")  # speech cached, clips built afresh
    fresh = tiny_build(tmp_path, backgrounds)
    for name in ("audio", "labels", "voices", "split", "texts"):
        assert np.array_equal(getattr(first, name), getattr(fresh, name)), name
    assert np.array_equal(first.end_s, fresh.end_s, equal_nan=True) and first.clip_seconds == fresh.clip_seconds
    assert {"keywords", "unknown", "clips"} <= set(stages) and "cache" not in stages
    stages = []
    cached = tiny_build(folder, backgrounds, progress=lambda stage, done, total: stages.append(stage))
    assert stages == ["cache"] and np.array_equal(cached.audio, first.audio)
    assert np.array_equal(cached.texts, first.texts) and cached.classes == first.classes
    other = tiny_build(tmp_path, backgrounds, seed=1)  # another seed is another cache entry
    assert len(list((tmp_path / "clips").glob("*.npz"))) == 2
    assert other.audio.shape != first.audio.shape or not np.array_equal(other.audio, first.audio)
    tiny_build(tmp_path, backgrounds, partial_fraction=0.2)  # so is a changed option
    assert len(list((tmp_path / "clips").glob("*.npz"))) == 3


def test_clips_made_on_threads_are_the_same(built, backgrounds, tmp_path, monkeypatch):
    first, folder, _ = built
    shutil.copytree(folder / "utterances", tmp_path / "utterances")
    monkeypatch.setattr("train.speech.clips.PARALLEL_MIN_CLIPS", 0)
    monkeypatch.setattr("train.speech.clips.CHUNK_CLIPS", 16)  # several chunks a thread
    parallel = tiny_build(tmp_path, backgrounds, jobs=2)
    assert np.array_equal(parallel.audio, first.audio) and np.array_equal(parallel.labels, first.labels)
    assert np.array_equal(parallel.end_s, first.end_s, equal_nan=True)


def test_clips_classes_layout_and_leave_voices_out(built):
    clips = built[0]
    assert clips.classes == ("_silence_", "_unknown_", "yes", "no")
    assert clips.audio.dtype == np.float32 and clips.audio.shape[1] == round(clips.clip_seconds * SAMPLE_RATE_HZ)
    assert clips.clip_seconds >= 1.0 and np.abs(clips.audio).max() <= 1.0
    counts = clips.counts()
    for part in ("train", "val"):
        assert all(counts[part][c] > 0 for c in clips.classes), counts
    split = clips.voice_split()
    assert split["val"] and set(split["train"]).isdisjoint(split["val"])
    train, val = clips.subset("train"), clips.subset("val")
    assert len(train) + len(val) == len(clips) and set(val.voices[val.voices != ""]) == set(split["val"])
    assert set(clips.voices[clips.labels == 0]) == {""}
    keyword = clips.labels >= 2
    assert np.all(np.isfinite(clips.end_s[keyword])) and np.all(clips.end_s[keyword] <= clips.clip_seconds)
    assert set(clips.texts[keyword]) == set(WORDS)
    unknown = clips.texts[clips.labels == 1]
    assert any("[" in t for t in unknown)  # cut-off keywords
    assert not any(t in WORDS for t in unknown)
    with pytest.raises(ValueError, match="classes"):
        KwsClips(clips.audio, clips.labels, ("yes", "no"), clips.voices, clips.split, clips.clip_seconds)


def test_unknown_words_and_negative_text_hold_no_keyword():
    digits = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    words = text.unknown_words(digits, 400, np.random.default_rng(0))
    assert len(set(words)) == 400 and all(w.isalpha() and w.islower() for w in words)
    assert not any(d in w for w in words for d in digits) and not {"won", "too", "ate", "fore"} & set(words)
    assert sum(len(w) <= 4 for w in words) >= 80  # some short words
    assert sum(w[:3] in {d[:3] for d in digits} for w in words) >= 60  # some sharing a first syllable
    sentences = text.fortune_sentences(digits)
    assert len(sentences) > 1000
    for s in sentences:
        assert not any(ch.isdigit() for ch in s)
        assert not any(d in t for t in text.tokens(s) for d in digits), s


def test_augment_keeps_length_and_range_and_is_seeded(backgrounds):
    clip = np.zeros(16000, np.float32)
    clip[4000:9000] = 0.3 * np.sin(np.arange(5000) * 0.2)
    outs = [augment(clip, np.random.default_rng(s), backgrounds=backgrounds) for s in (1, 1, 2)]
    assert all(o.shape == clip.shape and o.dtype == np.float32 and np.abs(o).max() <= 1.0 for o in outs)
    assert np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[0], outs[2])


def test_running_speech_word_times_match_the_audio(tmp_path):
    stream, said = running_speech(WORDS, voices=small_voices(), seconds=30.0, seed=3, cache_dir=tmp_path)
    assert stream.shape == (30 * SAMPLE_RATE_HZ,) and stream.dtype == np.float32
    assert len(said) >= 3 and {w.word for w in said} <= set(WORDS)
    ms = SAMPLE_RATE_HZ // 1000
    for w in said:
        a, b = int(round(w.start_s * SAMPLE_RATE_HZ)), int(round(w.end_s * SAMPLE_RATE_HZ))
        assert 0.15 < w.seconds < 1.2
        assert energy_db(stream[a:b]) > -50  # the word is there
        assert not np.any(stream[a - 60 * ms:a]) and not np.any(stream[b:b + 60 * ms])  # pauses around it
        # the span is the trimmed word: sound within one 10 ms trim frame + the 5 ms margin of each end
        assert np.any(stream[a:a + 16 * ms]) and np.any(stream[b - 16 * ms:b])


def test_negative_stream_says_no_keyword(tmp_path, monkeypatch, backgrounds):
    digits = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    require_engines()
    said = []
    real = streams.synthesize_requests

    def spy(requests, **kwargs):
        said.extend(r.text for r in requests)
        return real(requests, **kwargs)

    monkeypatch.setattr(streams, "synthesize_requests", spy)
    audio = negative_stream(digits, seconds=20.0, seed=0, cache_dir=tmp_path, voices=small_voices(),
                            backgrounds=backgrounds)
    assert audio.shape == (20 * SAMPLE_RATE_HZ,) and np.abs(audio).max() <= 1.0
    assert energy_db(audio) > -45  # speech and background, not silence
    assert len(said) >= 3
    for sentence in said:
        assert not any(d in t for t in text.tokens(sentence) for d in digits), sentence
        assert not {"won", "too", "ate", "fore"} & set(text.tokens(sentence))
