"""Child process of the fuzz test: loads mutated copies of a model and prints one JSON line per
attempt, so that a crash of the interpreter kills this process, not pytest.

A fixed number of seeded attempts, so every run tries the same mutations (a time budget let a
loaded machine stop before the interesting ones). Two of blazeface's: attempt 242 corrupts an
activation's shape to 28 GB, which made allocate_tensors segfault until edge_runtime refused
tensors larger than the machine's memory; attempt 239 makes XNNPACK take about 10 GiB while
preparing, which this machine grants (it then ends in ModelFileError) and a machine short of
memory answers with the OOM killer."""
import json
import random
import sys

import numpy as np

import edge_runtime


def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice([1, 2, 4, 8, 32])):
        b[rng.randrange(len(b))] = rng.randrange(256)
    if rng.random() < 0.2:
        b = b[: rng.randrange(8, len(b))]
    return bytes(b)


def main(path: str, out_path: str, seed: int, attempts: int) -> None:
    data = open(path, "rb").read()
    rng = random.Random(seed)
    for attempt in range(attempts):
        mutated = mutate(data, rng)
        with open(out_path, "wb") as handle:
            handle.write(mutated)
        print(json.dumps({"attempt": attempt, "status": "started"}), flush=True)
        try:
            model = edge_runtime.load(out_path, device="cpu")
            inputs = [np.zeros(tuple(max(d, 1) if isinstance(d, int) else 1 for d in s.shape), np.float32)
                      if s.quantized else np.zeros(tuple(max(d, 1) if isinstance(d, int) else 1 for d in s.shape), s.dtype)
                      for s in model.inputs]
            model.run(*inputs)
            status = "ok"
        except edge_runtime.EdgeRuntimeError as exc:
            status = type(exc).__name__
        except Exception as exc:  # anything else is a bug: reported, not raised
            status = f"UNEXPECTED {type(exc).__name__}: {str(exc)[:200]}"
        print(json.dumps({"attempt": attempt, "status": status}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
