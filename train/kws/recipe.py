"""``edgepilot train kws``: command words learned from synthetic voices, as a streaming int8 model.

1. Clips of the words, of other words (``_unknown_``) and of noise (``_silence_``), spoken by the
   TTS voices of Debian main and augmented (:mod:`train.speech`); whole voices are held out for
   validation, so the figures say how the model does on speakers it never heard.
   Windows of synthetic running speech without the words (sentences training may use, training
   voices, over noise and music) join ``_unknown_`` as hard negatives, and the words said inside
   such sentences join their classes (keywords in context).
2. Features from the one frontend the app streams with (:mod:`apps.speech.frontend`).
3. The non-streaming network (:mod:`train.kws.architecture`) trained with Adam, a cosine
   schedule and SpecAugment-style masks; the best epoch on held-out voices is kept.
4. Its streaming form converted by convert's own TFLite path to ``kws_stream_fp32.tflite`` and a
   full-integer ``kws_stream_int8.tflite`` calibrated on consecutive steps of training streams,
   both measured on the held-out clips by streaming them (as ``listen`` does).

``DIR`` then holds ``model.keras``, ``saved_model/`` (the non-streaming float model, with
``calib.npz`` / ``eval.npz`` so ``edgepilot convert DIR`` gives the window model as TFLite or
ONNX), ``kws_stream/`` (the streaming SavedModel), the two streaming .tflite files with their
sidecars, and ``training.json``. ``--qat`` adds ``kws_stream_qat_int8.tflite``
(:mod:`train.kws.qat`)."""
from __future__ import annotations

import io
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from train.kws.architecture import (
    KwsArchitecture,
    build_model,
    count_params,
    save_streaming,
)
from train.kws.options import KwsOptions
from train.kws.streaming import (
    STREAM_STEM,
    convert_streaming,
    kws_metadata,
    streaming_accuracy,
)


@dataclass(frozen=True)
class KwsResult:
    out: Path
    metrics: dict
    record: dict

    def summary(self) -> str:
        m = self.metrics
        text = (f"{self.out}: held-out voices top-1 float {m['val_top1_float']:.2f}%, streaming fp32 "
                f"{m['val_top1_stream_fp32']:.2f}%, streaming int8 {m['val_top1_stream_int8']:.2f}%")
        if "val_top1_stream_qat_int8" in m:
            text += f", streaming int8 after QAT {m['val_top1_stream_qat_int8']:.2f}%"
        return text


def clip_features(audio: np.ndarray, progress=None) -> np.ndarray:
    """[N, samples] clips -> [N, frames, 40] features, each clip from a fresh frontend."""
    from apps.speech.frontend import features

    out = None
    for i, clip in enumerate(audio):
        f = features(clip)
        if out is None:
            out = np.empty((len(audio),) + f.shape, np.float32)
        out[i] = f
        if progress and (i + 1) % 5000 == 0:
            progress(f"features: {i + 1}/{len(audio)} clips")
    return out


def _limit(clips, limit: int | None, seed: int):
    """At most ``limit`` clips per class and split (quick runs)."""
    if limit is None:
        return np.arange(len(clips.labels))
    rng = np.random.default_rng(seed)
    keep = []
    for split in ("train", "val"):
        for label in range(len(clips.classes)):
            idx = np.flatnonzero((clips.labels == label) & (clips.split == split))
            keep.extend(rng.permutation(idx)[:limit])
    return np.sort(np.asarray(keep, np.int64))


def _dataset(tf, x, y, batch: int, seed: int, spec_augment: bool):
    """Shuffled batches; with ``spec_augment`` one time mask (up to 10 frames) and one frequency
    mask (up to 6 bins) per clip, set to the clip's mean, as in SpecAugment."""
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)

    def mask(features, label):
        frames, bins = features.shape
        t0 = tf.random.uniform([], 0, frames, tf.int32)
        tw = tf.random.uniform([], 0, 11, tf.int32)
        f0 = tf.random.uniform([], 0, bins, tf.int32)
        fw = tf.random.uniform([], 0, 7, tf.int32)
        t = tf.range(frames)[:, None]
        f = tf.range(bins)[None, :]
        hide = ((t >= t0) & (t < t0 + tw)) | ((f >= f0) & (f < f0 + fw))
        return tf.where(hide, tf.reduce_mean(features), features), label

    if spec_augment:
        ds = ds.map(mask, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch).prefetch(tf.data.AUTOTUNE)


class _KeepBest:
    """Keras callback: remember the weights of the epoch with the best validation accuracy, and
    report each epoch through ``say``."""

    def __new__(cls, keras, say=None):
        class KeepBest(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.best, self.weights, self.epoch = -1.0, None, -1

            def on_epoch_end(self, epoch, logs=None):
                logs = logs or {}
                if say is not None:  # on stderr: stdout carries the result only
                    say(f"epoch {epoch + 1}: loss {logs.get('loss', float('nan')):.4f}, accuracy "
                        f"{logs.get('accuracy', float('nan')):.4f}, held-out voices {logs.get('val_accuracy', float('nan')):.4f}")
                acc = float(logs.get("val_accuracy", -1))
                if acc > self.best:
                    self.best, self.weights, self.epoch = acc, self.model.get_weights(), epoch

        return KeepBest()


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _calibration_streams(clips, x_idx: np.ndarray, seed: int, arch: KwsArchitecture, count: int = 240) -> np.ndarray:
    """Consecutive streaming steps of one long stream made of ``count`` training clips played
    back to back: what the int8 model's activations and states see when it listens."""
    from apps.speech.frontend import features

    rng = np.random.default_rng(seed)
    pick = rng.choice(x_idx, size=min(count, len(x_idx)), replace=False)
    stream = np.concatenate([clips.audio[i] for i in pick])
    from train.kws.architecture import stream_steps

    return stream_steps(features(stream), arch)


NEGATIVE_HOP_FRAMES = 8  # one hard-negative window every 80 ms of running speech


def _hard_negatives(options: KwsOptions, voices: list[str], arch: KwsArchitecture, minutes: float, say) -> np.ndarray:
    """Windows of synthetic running speech without the words, as the streaming model sees them:
    features of the whole stream from one frontend (its noise estimate and gain settle as they
    do when listening), cut every :data:`NEGATIVE_HOP_FRAMES` frames."""
    from apps.speech.frontend import features
    from train.speech import negative_stream

    if minutes <= 0:
        return np.zeros((0, arch.window_frames, 40), np.float32)
    say(f"hard negatives: {minutes:g} min of running speech without the words (training voices)")
    audio = negative_stream(options.words, seconds=minutes * 60, seed=options.seed + 7919, cache_dir=options.cache_dir,
                            voices=voices, part="train")
    frames = features(audio)
    starts = range(0, len(frames) - arch.window_frames + 1, NEGATIVE_HOP_FRAMES)
    return np.stack([frames[s:s + arch.window_frames] for s in starts]).astype(np.float32)


CONTEXT_OFFSETS_S = (0.05, 0.15, 0.25, 0.35)  # window ends this long after a keyword's end


def _context_positives(options: KwsOptions, voices: list[str], arch: KwsArchitecture, minutes: float,
                       say) -> tuple[np.ndarray, np.ndarray]:
    """Keywords said inside sentences (training voices, training sentences), as the streaming
    model sees them: features of the whole stream from one frontend, a window ending at each of
    :data:`CONTEXT_OFFSETS_S` after the word's end, kept when the whole word is inside it.
    Without these, hard negatives teach the model that words inside running speech are unknown."""
    from apps.speech.frontend import STEP_SAMPLES, WINDOW_SAMPLES, features
    from train.speech import running_speech

    if minutes <= 0:
        return np.zeros((0, arch.window_frames, 40), np.float32), np.zeros(0, np.int32)
    say(f"keywords in context: {minutes:g} min of sentences with the words inside (training voices)")
    audio, spoken = running_speech(options.words, voices=voices, seconds=minutes * 60, seed=options.seed + 104729,
                                   cache_dir=options.cache_dir, keyword_share=1.0, part="train")
    frames = features(audio)
    rate = 16000
    x, y = [], []
    for said in spoken:
        for offset in CONTEXT_OFFSETS_S:
            # frame e's window ends at sample e * STEP + WINDOW: the last frame ending by end_s + offset
            last = int(((said.end_s + offset) * rate - WINDOW_SAMPLES) // STEP_SAMPLES)
            first = last - arch.window_frames + 1
            if first < 0 or last >= len(frames) or first * STEP_SAMPLES > said.start_s * rate:
                continue
            x.append(frames[first:last + 1])
            y.append(options.classes.index(said.word))
    if not x:
        return np.zeros((0, arch.window_frames, 40), np.float32), np.zeros(0, np.int32)
    return np.stack(x).astype(np.float32), np.asarray(y, np.int32)


def train_kws(options: KwsOptions, progress=None) -> KwsResult:
    import keras
    import tensorflow as tf

    from convert.files import write_atomic
    from convert.metadata_io import sidecar_json
    from train.speech import build_clips

    say = progress or (lambda message: None)
    if options.qat:  # before minutes of training, not after
        from edge_runtime.deps import require

        require("tf_keras", "--qat")
        require("tensorflow_model_optimization", "--qat")
    out = options.out
    if out.exists() and any(out.iterdir()) and not options.force:
        raise FileExistsError(f"{out}: the output folder is not empty; pass --force to replace it, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    say(f"data: synthetic voices saying {list(options.words)} (cached after the first run)")
    def stage(name: str, done: int, total: int) -> None:
        if done == total or done % max(1, total // 4) == 0:
            say(f"data: {name} {done}/{total}")

    # Renderings per voice: espeak-ng has about a hundred voices, flite and festival a few each,
    # so those few say every word many times (each at its own speed and pitch).
    build = {"seed": options.seed, "cache_dir": options.cache_dir, "progress": stage,
             "per_voice": {"espeak-ng": 4, "flite": 40, "festival": 40}, "augment_copies": 3}
    if options.limit is not None:  # a quick run: few renderings per voice, so few to synthesize
        build.update(per_voice={"espeak-ng": 1, "flite": 2, "festival": 2}, unknown_words=0.5, augment_copies=1)
    if options.augment_copies is not None:
        build["augment_copies"] = options.augment_copies
    clips = build_clips(options.words, **build)
    if tuple(clips.classes) != options.classes:
        raise RuntimeError(f"the data builder's classes {clips.classes} differ from {options.classes}")
    keep = _limit(clips, options.limit, options.seed)
    data_s = time.perf_counter() - started
    say(f"features of {len(keep)} clips ({clips.clip_seconds:.1f} s each)")
    x_all = clip_features(clips.audio[keep], say)
    y_all, split = clips.labels[keep].astype(np.int32), clips.split[keep]
    arch = KwsArchitecture.for_clip(x_all.shape[1], first_channels=options.channels, channels=options.channels)
    x_all = x_all[:, -arch.window_frames:]
    train_i, val_i = np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
    if len(val_i) == 0 or len(train_i) == 0:
        raise RuntimeError("the data builder gave no held-out voices (or no training voices); cannot validate")
    minutes = options.negative_minutes if options.limit is None else min(options.negative_minutes, 1.0)
    x_neg = _hard_negatives(options, sorted(set(clips.voices[keep][train_i]) - {""}), arch, minutes, say)
    train_voices = sorted(set(clips.voices[keep][train_i]) - {""})
    x_ctx, y_ctx = _context_positives(options, train_voices, arch, minutes * 2, say)
    x_train = np.concatenate([x_all[train_i], x_neg, x_ctx])
    y_train = np.concatenate([y_all[train_i], np.full(len(x_neg), options.classes.index("_unknown_"), np.int32), y_ctx])

    model = build_model(arch, len(options.classes), seed=options.seed)
    steps = int(np.ceil(len(x_train) / options.batch_size)) * options.epochs
    schedule = keras.optimizers.schedules.CosineDecay(options.lr, steps, alpha=0.01)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    say(f"model: {count_params(model)} parameters, window {arch.window_frames} frames, "
        f"{len(train_i)} training clips + {len(x_neg)} running-speech windows + {len(x_ctx)} keywords in context "
        f"/ {len(val_i)} held-out-voice clips")
    keep_best = _KeepBest(keras, say)
    fit_start = time.perf_counter()
    history = model.fit(_dataset(tf, x_train, y_train, options.batch_size, options.seed,
                                 options.spec_augment),
                        validation_data=(x_all[val_i], y_all[val_i]), epochs=options.epochs,
                        verbose=0, shuffle=False, callbacks=[keep_best])
    fit_s = time.perf_counter() - fit_start
    model.set_weights(keep_best.weights)
    val_prob = model.predict(x_all[val_i], batch_size=512, verbose=0)
    float_top1 = float((val_prob.argmax(1) == y_all[val_i]).mean() * 100)

    meta = kws_metadata(options.words, options.classes, arch, streaming=False)
    stream_meta = kws_metadata(options.words, options.classes, arch, streaming=True)
    model.save(str(out / ".model.tmp.keras"))
    (out / ".model.tmp.keras").replace(out / "model.keras")
    write_atomic(out / "model.json", sidecar_json(meta), force=True)
    for folder, save in (("saved_model", lambda d: model.export(d, format="tf_saved_model", verbose=False)),
                         (STREAM_STEM, lambda d: save_streaming(model, arch, d))):
        staging = out / f".{folder}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        save(str(staging))
        shutil.rmtree(out / folder, ignore_errors=True)
        staging.rename(out / folder)
    write_atomic(out / "saved_model.json", sidecar_json(meta), force=True)
    rng = np.random.default_rng(options.seed)
    calib_pick = np.sort(rng.choice(train_i, size=min(400, len(train_i)), replace=False))
    write_atomic(out / "calib.npz", _npz(x=x_all[calib_pick], y=y_all[calib_pick], labels=np.array(options.classes)),
                 force=True)
    write_atomic(out / "eval.npz", _npz(x=x_all[val_i], y=y_all[val_i], labels=np.array(options.classes)), force=True)

    say("converting the streaming model: fp32 and full-integer int8")
    work = Path(tempfile.mkdtemp(prefix="edgepilot-kws-"))
    try:
        calib_steps = _calibration_streams(clips, keep[train_i], options.seed, arch)
        written = convert_streaming(out / STREAM_STEM, out, calib_steps, stream_meta, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say("measuring the streaming models on the held-out voices")
    stream = {v: streaming_accuracy(p, x_all[val_i], y_all[val_i], arch) for v, p in written.items()}

    val_voices = sorted(set(clips.voices[keep][val_i]) - {""})
    metrics = {"val_top1_float": float_top1, "val_top1_stream_fp32": stream["fp32"]["top1"],
               "val_top1_stream_int8": stream["int8"]["top1"], "val_clips": len(val_i),
               "train_clips": len(train_i), "hard_negative_windows": len(x_neg),
               "context_positive_windows": len(x_ctx), "parameters": count_params(model),
               "best_epoch": keep_best.epoch + 1}
    record = {"task": "keyword_spotting", "options": options.to_dict(), "classes": list(options.classes),
              "architecture": {**arch.to_dict(), "final_kernel": arch.final_kernel},
              "frontend": json.loads(meta.extra["frontend"]), "metrics": metrics,
              "validation": "leave-voices-out: the held-out voices never appear in training",
              "voices": {"train": train_voices, "val": val_voices},
              "per_class_val_top1_int8": _per_class(stream["int8"]["predictions"], y_all[val_i], options.classes),
              "counts": {name: int((y_all == i).sum()) for i, name in enumerate(options.classes)},
              "seconds": {"data": round(data_s, 1), "fit": round(fit_s, 1),
                          "total": round(time.perf_counter() - started, 1)},
              "files": {f"streaming_{v}": p.name for v, p in written.items()}}
    history_dict = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    from train.fit import write_record

    write_record(out, record, history_dict)
    result = KwsResult(out, metrics, record)
    if options.qat:  # after the float results are on disk: a failed QAT loses none of them
        result = _qat(result, model, arch, (x_train, y_train), (x_all[val_i], y_all[val_i]), calib_steps,
                      stream_meta, options, say)
    return result


def _qat(result: KwsResult, model, arch, train, val, calib_steps, stream_meta, options: KwsOptions, say) -> KwsResult:
    """``--qat``: fine-tune, convert the streaming form to ``kws_stream_qat_int8.tflite``, measure it
    on the held-out voices and add it to ``training.json``."""
    from train.fit import update_record
    from train.kws.qat import qat_fine_tune

    work = Path(tempfile.mkdtemp(prefix="edgepilot-kws-qat-"))
    try:
        tuned = qat_fine_tune(model, arch, train[0].astype(np.float16), train[1], val[0], val[1],
                              epochs=options.qat_epochs, lr=options.lr / 10, batch_size=options.batch_size,
                              seed=options.seed, progress=say)
        save_streaming(tuned, arch, str(work / "qat_stream"))
        say("converting the QAT streaming model: full-integer int8")
        path = convert_streaming(work / "qat_stream", result.out, calib_steps, stream_meta, work, qat=True)["int8"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say("measuring the QAT streaming model on the held-out voices")
    measured = streaming_accuracy(path, val[0], val[1], arch)
    added = {"metrics": dict(result.metrics, val_top1_stream_qat_int8=measured["top1"], qat_epochs=options.qat_epochs),
             "files": dict(result.record["files"], streaming_qat_int8=path.name),
             "per_class_val_top1_qat_int8": _per_class(measured["predictions"], val[1], options.classes)}
    update_record(result.out, **added)
    return KwsResult(result.out, added["metrics"], dict(result.record, **added))


def _per_class(predictions: np.ndarray, labels: np.ndarray, classes) -> dict:
    return {name: round(float((predictions[labels == i] == i).mean() * 100), 2)
            for i, name in enumerate(classes) if (labels == i).any()}
