"""Derivation speed: wall time of `symbp derive` and `symbp generate` from the shell.

Measures whole commands (Python start-up and imports included) for networks
of increasing depth and width, to show that the time grows linearly with
depth and not at all with width, and (issue 10) for graphs of every op: a
10-layer graph of dense, batch norm, dropout, layer norm and residual layers
with weight decay (target: under 2 s), next to a plain 3-layer MLP (about
1 s). Prints markdown tables of medians.

    python benchmarks/derive_time.py [--repeats 3] [--graphs-only]
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


GRAPH_LAYERS = (  # 10 layers, every op of issue 10
    '[[layers]]\nunits = 32\nactivation = "relu"\nname = "h"',
    '[[layers]]\ntype = "batch_norm"',
    '[[layers]]\ntype = "dropout"\nrate = 0.1',
    '[[layers]]\nunits = 32\nactivation = "tanh"',
    '[[layers]]\ntype = "layer_norm"',
    '[[layers]]\ntype = "residual"\nfrom = "h"',
    '[[layers]]\nunits = 32\nactivation = "gelu"',
    '[[layers]]\ntype = "batch_norm"',
    '[[layers]]\ntype = "dropout"\nrate = 0.2',
    '[[layers]]\nunits = 10\nactivation = "softmax"',
)


def graph_spec_text() -> str:
    return "\n".join(['name = "graph"', "inputs = 16", 'loss = "cross_entropy"',
                      *GRAPH_LAYERS, "[training]\nweight_decay = 0.0001"]) + "\n"


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


def commands(spec: Path, out: Path) -> tuple[list[str], list[str]]:
    return ([sys.executable, "-m", "symbp", "derive", str(spec)],
            [sys.executable, "-m", "symbp", "generate", str(spec), "-o", str(out), "--force"])


def graph_table(directory: str, repeats: int) -> None:
    """Commands that fail (a command not yet supporting a graph) show their exit code."""
    print("| network | layers | derive (s) | generate (s) | target |")
    print("|---|---:|---:|---:|---|")
    cases = (("graph of every op, weight decay", 10, graph_spec_text(), "< 2 s"),
             ("plain MLP", 3, spec_text(3, 32), "about 1 s"))
    for label, depth, text, target in cases:
        spec = Path(directory) / f"{label.split()[0]}.toml"
        spec.write_text(text)
        cells = []
        for command in commands(spec, Path(directory) / "out.py"):
            code = subprocess.run(command, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL).returncode
            cells.append(f"{median_wall(command, repeats):.2f}" if code == 0 else f"exit {code}")
        print(f"| {label} | {depth} | {' | '.join(cells)} | {target} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--graphs-only", action="store_true",
                        help="only the issue-10 table (a graph of every op, a plain MLP)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        graph_table(directory, args.repeats)
    if args.graphs_only:
        return
    print()
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
