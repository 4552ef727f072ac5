"""One training process for tests/test_train_distributed.py: ``python distributed_child.py MODE DATA OUT [ARGS]``.

MODE ``mirrored`` splits the CPU into two logical devices first (before TensorFlow starts, as it
must be) and trains with MirroredStrategy over them; MODE ``multiworker`` trains as the worker
that ``TF_CONFIG`` (set by the test) names."""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(mode: str, data: str, out: str, *extra: str) -> int:
    if mode == "multiworker":  # as a user starts each worker: the command line, with TF_CONFIG set
        from edgepilot.cli import main as edgepilot

        return edgepilot(["train", "classifier", "--data", data, "--out", out, "--epochs", "2", "--batch-size", "8",
                          "--patience", "0", "--no-augment", "--distribute", "multiworker", "--seed", "3", "--quiet",
                          *extra])
    import tensorflow as tf

    if mode == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from train.classifier import train_classifier
    from train.options import TrainOptions

    result = train_classifier(TrainOptions(data=data, out=out, epochs=2, batch_size=8, patience=0, augment=False,
                                           distribute=mode, verbose=0, seed=3), progress=print)
    print("RESULT", result.record["replicas"], result.record["strategy"], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
