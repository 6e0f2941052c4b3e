"""Derivation speed: wall time of `symbp derive` and `symbp generate` from the shell.

Measures whole commands (Python start-up and imports included) for networks
of increasing depth and width, to show that the time grows linearly with
depth and not at all with width. Prints a markdown table of medians.

    python benchmarks/derive_time.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ACTIVATIONS = ("tanh", "relu", "sigmoid", "softplus")


def spec_text(depth: int, width: int) -> str:
    lines = ['name = "bench"', "inputs = 16", 'loss = "cross_entropy"']
    for layer in range(depth - 1):
        lines += ["[[layers]]", f"units = {width}",
                  f'activation = "{ACTIVATIONS[layer % len(ACTIVATIONS)]}"']
    lines += ["[[layers]]", "units = 10", 'activation = "softmax"']
    return "\n".join(lines) + "\n"


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cases = [(3, 32), (3, 1024), (10, 32), (20, 32), (20, 1024), (50, 32)]
    print("| depth | width | derive (s) | generate (s) |")
    print("|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as directory:
        for depth, width in cases:
            spec = Path(directory) / f"net_{depth}_{width}.toml"
            spec.write_text(spec_text(depth, width))
            out = Path(directory) / "out.py"
            derive = [wall([sys.executable, "-m", "symbp", "derive", str(spec)])
                      for _ in range(args.repeats)]
            generate = [wall([sys.executable, "-m", "symbp", "generate", str(spec),
                              "-o", str(out), "--force"]) for _ in range(args.repeats)]
            print(f"| {depth} | {width} | {statistics.median(derive):.2f} | "
                  f"{statistics.median(generate):.2f} |", flush=True)


if __name__ == "__main__":
    main()
