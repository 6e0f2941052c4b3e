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
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def median_wall(command: list[str], repeats: int) -> float:
    return statistics.median(wall(command) for _ in range(repeats))


def slope(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares line through (depth, seconds): (intercept, seconds per layer)."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    per_layer = (sum((x - mean_x) * (y - mean_y) for x, y in points)
                 / sum((x - mean_x) ** 2 for x, _ in points))
    return mean_y - per_layer * mean_x, per_layer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cases = [(1, 32), (3, 32), (3, 1024), (10, 32), (20, 32), (20, 1024), (30, 32), (50, 32),
             (50, 1024)]
    floor = median_wall([sys.executable, "-c", "import sympy, numpy"], args.repeats)
    print(f"Python start-up + `import sympy, numpy` alone: {floor:.2f} s\n")
    print("| depth | width | derive (s) | generate (s) |")
    print("|---:|---:|---:|---:|")
    timings = {}
    with tempfile.TemporaryDirectory() as directory:
        for depth, width in cases:
            spec = Path(directory) / f"net_{depth}_{width}.toml"
            spec.write_text(spec_text(depth, width))
            out = Path(directory) / "out.py"
            derive = median_wall([sys.executable, "-m", "symbp", "derive", str(spec)],
                                 args.repeats)
            generate = median_wall([sys.executable, "-m", "symbp", "generate", str(spec),
                                    "-o", str(out), "--force"], args.repeats)
            timings[depth, width] = (derive, generate)
            print(f"| {depth} | {width} | {derive:.2f} | {generate:.2f} |", flush=True)
    for column, name in enumerate(("derive", "generate")):
        points = [(depth, times[column]) for (depth, width), times in timings.items()
                  if width == 32]
        intercept, per_layer = slope(points)
        print(f"\n{name}: {intercept:.2f} s + {per_layer * 1000:.0f} ms per layer "
              "(least squares over the width-32 rows)", end="")
    print()


if __name__ == "__main__":
    main()
