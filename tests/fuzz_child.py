"""Child process of the fuzz test: loads mutated copies of a model and prints one JSON line per
attempt, so that a crash of the interpreter kills this process, not pytest."""
import json
import random
import sys
import time

import numpy as np

import edge_runtime


def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice([1, 2, 4, 8, 32])):
        b[rng.randrange(len(b))] = rng.randrange(256)
    if rng.random() < 0.2:
        b = b[: rng.randrange(8, len(b))]
    return bytes(b)


def main(path: str, out_path: str, seed: int, seconds: float) -> None:
    data = open(path, "rb").read()
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    attempt = 0
    while time.monotonic() < deadline:
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
        attempt += 1


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
