"""The detector's --average-weights keeps the moving average of its weights: what validation, checkpoints and the saved
model see, and how an interrupted run resumes."""
from __future__ import annotations

import numpy as np
import pytest


def _data():
    x = np.linspace(-1, 1, 64 * 4, dtype=np.float32).reshape(64, 4)
    return x, (x @ np.array([[1.0], [-2.0], [0.5], [3.0]], np.float32)) + 0.1


def _model(keras, momentum):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.05, use_ema=momentum > 0, ema_momentum=momentum), loss="mse")
    return model


def _fit(keras, folder, epochs, stop_at=None, use_average=True):
    from train.detector import AveragedWeights

    model = _model(keras, 0.9 if use_average else 0.0)
    x, y = _data()

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == stop_at:
                raise KeyboardInterrupt

    callbacks = [AveragedWeights(keras, folder)] if use_average else []
    callbacks += [keras.callbacks.BackupAndRestore(str(folder), delete_checkpoint=False), Interrupt()]
    model.fit(x, y, batch_size=8, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks)
    return model


def test_the_kept_weights_are_the_average_and_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path):
    keras = pytest.importorskip("keras")
    straight = _fit(keras, tmp_path / "a", 6)
    with pytest.raises(KeyboardInterrupt):
        _fit(keras, tmp_path / "b", 6, stop_at=3)
    resumed = _fit(keras, tmp_path / "b", 6)
    last_step = _fit(keras, tmp_path / "c", 6, use_average=False)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # (Keras' own SwapEMAWeights resumed 0.30 away: it trained on from the average)
    # the average lags the trained weights: it is not the last step's weights
    assert max(float(np.abs(a - b).max()) for a, b in zip(straight.get_weights(), last_step.get_weights())) > 1e-3



def test_a_checkpoint_without_the_average_is_refused_rather_than_resumed_from_zeros(tmp_path):
    keras = pytest.importorskip("keras")
    with pytest.raises(KeyboardInterrupt):
        _fit(keras, tmp_path / "old", 6, stop_at=3, use_average=False)  # as an edgepilot before the average
    with pytest.raises(ValueError, match=f"{tmp_path / 'old'}: --resume could not load the optimizer state"):
        _fit(keras, tmp_path / "old", 6)


def test_early_stopping_keeps_the_best_epochs_average(tmp_path):
    """The detector's own callback list (train.fit.callbacks): the average swapped in first, then
    the validation metric, checkpoints and early stopping, which restores the best epoch's weights."""
    keras = pytest.importorskip("keras")
    from train import fit
    from train.detector import AveragedWeights
    from train.options import TrainOptions

    options = TrainOptions(data="unused", out=tmp_path / "run", epochs=8, patience=2)
    fit.prepare_out(options)
    scores, kept = [0.1, 0.5, 0.3, 0.2, 0.4, 0.1, 0.0, 0.0], []

    class Validation(keras.callbacks.Callback):  # stands in for ValidationMAP: a score and the weights it saw
        def on_epoch_end(self, epoch, logs=None):
            logs["score"] = scores[epoch]
            kept.append(self.model.get_weights())

    model = _model(keras, 0.9)
    x, y = _data()
    extra = [AveragedWeights(keras, options.out / fit.CHECKPOINTS), Validation()]
    model.fit(x, y, batch_size=8, epochs=options.epochs, shuffle=False, verbose=0,
              callbacks=fit.callbacks(keras, options, "score", extra))
    assert len(kept) == 4  # stopped two epochs after the best, epoch 2
    for a, b in zip(model.get_weights(), kept[1]):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(kept[1][0], kept[3][0])


def test_the_average_spans_200_steps_or_a_tenth_of_a_short_run():
    from train.detector import averaging_momentum

    assert averaging_momentum(50 * 62) == pytest.approx(1 - 1 / 200)  # the benchmark's run
    assert averaging_momentum(300) == pytest.approx(1 - 1 / 30)
    assert averaging_momentum(10) == averaging_momentum(1) == 0.0  # a few test steps: the trained weights


def test_the_average_is_opt_in_and_a_resume_keeps_the_runs_choice(tmp_path):
    import json

    from edgepilot.cli import build_parser
    from train.detector import _check_resume_choices, _record_choices
    from train.options import TrainOptions

    parse = build_parser().parse_args
    assert parse(["train", "detector", "--data", "d", "--out", "o"]).average_weights is False
    assert parse(["train", "detector", "--data", "d", "--out", "o", "--average-weights"]).average_weights is True
    assert TrainOptions(data="d", out=tmp_path).average_weights is False

    # a run that finished before checkpoints/run.json existed: its training.json says what it chose
    old = tmp_path / "old"
    (old / "checkpoints").mkdir(parents=True)
    (old / "training.json").write_text(json.dumps({"options": {"average_weights": True}}))
    _check_resume_choices(TrainOptions(data="d", out=old, resume=True, average_weights=True))
    with pytest.raises(ValueError, match=f"{old}: --resume: this run was trained with --average-weights; "
                                         "resume it with the option too"):
        _check_resume_choices(TrainOptions(data="d", out=old, resume=True))

    # an interrupted run (no training.json yet): the choices it wrote when it started
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    _record_choices(TrainOptions(data="d", out=run, average_weights=True, head="decoupled", width=2.0))
    assert json.loads((run / "checkpoints" / "run.json").read_text()) == {
        "average_weights": True, "head": "decoupled", "width": 2.0}
    with pytest.raises(ValueError, match="trained with --average-weights; resume it with the option too"):
        _check_resume_choices(TrainOptions(data="d", out=run, resume=True, head="decoupled", width=2.0))
    with pytest.raises(ValueError, match=r"trained with --head decoupled; resume it with --head decoupled \(got shared\)"):
        _check_resume_choices(TrainOptions(data="d", out=run, resume=True, average_weights=True, width=2.0))
    with pytest.raises(ValueError, match=r"trained with --width 2.0; resume it with --width 2.0 \(got 1.0\)"):
        _check_resume_choices(TrainOptions(data="d", out=run, resume=True, average_weights=True, head="decoupled"))
    _check_resume_choices(TrainOptions(data="d", out=run, resume=True, average_weights=True, head="decoupled", width=2.0))
