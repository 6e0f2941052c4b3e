"""Spec validation of the convolutional layer types (issue 11, CONVENTIONS §3).

``conv1d``/``conv2d`` (``channels``, ``kernel``, ``stride``, ``padding``,
``activation``), ``max_pool1d/2d``/``avg_pool1d/2d`` (``kernel``, ``stride``),
``flatten``, and ``inputs = [channels, length]`` / ``[channels, height,
width]``. Every bad spec goes through the command line in-process
(:func:`symbp.cli.main`), as a TOML file: exit 2, one line
``symbp: error: ...`` that names the field (``layers[2].padding``,
``inputs[1]``), no traceback, and no output file written. Valid specs load
with the per-sample shapes torch's formula gives, computed here independently.
"""

from __future__ import annotations

import json
import math

import pytest

from symbp.cli import main
from symbp.spec import load_spec


# ------------------------------------------------------------------ TOML text
def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


def toml_spec(inputs, *layers, loss="mse", output=True) -> str:
    """A spec of ``layers`` (dicts) on ``inputs``, ending in a dense output of 2 units."""
    lines = ['name = "cnn"', f"inputs = {toml_value(inputs)}", f'loss = "{loss}"']
    for layer in [*layers, *([{"units": 2}] if output else [])]:
        lines += ["", "[[layers]]"] + [f"{key} = {toml_value(value)}"
                                       for key, value in layer.items()]
    return "\n".join(lines) + "\n"


def conv2d(**options):
    return {"type": "conv2d", "channels": 2, "kernel": 3, **options}


def conv1d(**options):
    return {"type": "conv1d", "channels": 2, "kernel": 3, **options}


def pool(kind="max_pool2d", **options):
    return {"type": kind, "kernel": 2, **options}


IMAGE, SIGNAL = [1, 8, 8], [2, 9]

# id: (spec text, the field the message names, other fragments it must hold)
BAD = {
    # kernel
    "kernel a string": (toml_spec(IMAGE, conv2d(kernel="3")), "layers[1].kernel", ["'3'"]),
    "kernel 0": (toml_spec(IMAGE, conv2d(kernel=0)), "layers[1].kernel", ["got 0"]),
    "kernel negative": (toml_spec(IMAGE, conv2d(kernel=-2)), "layers[1].kernel", ["-2"]),
    "kernel a float": (toml_spec(IMAGE, conv2d(kernel=2.5)), "layers[1].kernel", ["2.5"]),
    "kernel a bool": (toml_spec(IMAGE, conv2d(kernel=True)), "layers[1].kernel", ["True"]),
    "kernel an empty list": (toml_spec(IMAGE, conv2d(kernel=[])), "layers[1].kernel", ["[]"]),
    "kernel three entries on conv2d": (toml_spec(IMAGE, conv2d(kernel=[3, 3, 3])),
                                       "layers[1].kernel", ["[3, 3, 3]"]),
    "kernel two entries on conv1d": (toml_spec(SIGNAL, conv1d(kernel=[3, 3])),
                                     "layers[1].kernel", ["one per spatial axis"]),
    "kernel a list of floats": (toml_spec(IMAGE, conv2d(kernel=[3.0, 3.0])),
                                "layers[1].kernel", []),
    "kernel a nested list": (toml_spec(IMAGE, conv2d(kernel=[[3], 3])), "layers[1].kernel", []),
    "kernel too large a number": (toml_spec(IMAGE, conv2d(kernel=10**9)), "layers[1].kernel",
                                  []),
    "kernel missing": (toml_spec(IMAGE, {"type": "conv2d", "channels": 2}), "layers[1].kernel",
                       ["missing"]),
    "kernel larger than the input": (toml_spec([1, 4, 4], conv2d(kernel=5)), "layers[1].kernel",
                                     ["5", "4"]),
    "kernel larger than the width only": (toml_spec([1, 8, 4], conv2d(kernel=[3, 5])),
                                          "layers[1].kernel", ["5", "width 4"]),
    "kernel larger than the height only": (toml_spec([1, 4, 8], conv2d(kernel=[5, 3])),
                                           "layers[1].kernel", ["5", "height 4"]),
    "kernel larger than the padded input": (toml_spec([1, 3], conv1d(kernel=6, padding=1)),
                                            "layers[1].kernel", ["6", "length 3 padded by 1"]),
    # stride
    "stride 0": (toml_spec(IMAGE, conv2d(stride=0)), "layers[1].stride", ["got 0"]),
    "stride negative": (toml_spec(IMAGE, conv2d(stride=-1)), "layers[1].stride", ["-1"]),
    "stride a string": (toml_spec(IMAGE, conv2d(stride="2")), "layers[1].stride", ["'2'"]),
    "stride three entries": (toml_spec(IMAGE, conv2d(stride=[1, 1, 1])), "layers[1].stride", []),
    "stride two entries on conv1d": (toml_spec(SIGNAL, conv1d(stride=[1, 2])),
                                     "layers[1].stride", ["one per spatial axis"]),
    # padding
    "padding negative": (toml_spec(IMAGE, conv2d(padding=-1)), "layers[1].padding", ["-1"]),
    "padding 'same'": (toml_spec(IMAGE, conv2d(padding="same")), "layers[1].padding",
                       ["'same'"]),
    "padding equal to the kernel": (toml_spec(IMAGE, conv2d(padding=3)), "layers[1].padding",
                                    ["3", "kernel"]),
    "padding above the kernel on one axis": (toml_spec(IMAGE, conv2d(kernel=[3, 2],
                                                                     padding=[1, 2])),
                                             "layers[1].padding", ["2", "kernel's width 2"]),
    "padding three entries": (toml_spec(IMAGE, conv2d(padding=[0, 0, 0])), "layers[1].padding",
                              []),
    "padding two entries on conv1d": (toml_spec(SIGNAL, conv1d(padding=[1, 1])),
                                      "layers[1].padding", ["one per spatial axis"]),
    # channels and activation
    "channels 0": (toml_spec(IMAGE, conv2d(channels=0)), "layers[1].channels", ["0"]),
    "channels a float": (toml_spec(IMAGE, conv2d(channels=2.0)), "layers[1].channels", ["2.0"]),
    "channels a list": (toml_spec(IMAGE, conv2d(channels=[2])), "layers[1].channels", []),
    "channels missing": (toml_spec(IMAGE, {"type": "conv2d", "kernel": 3}),
                         "layers[1].channels", ["missing"]),
    "activation unknown": (toml_spec(IMAGE, conv2d(activation="tanhh")), "layers[1].activation",
                           ["tanhh"]),
    "activation softmax on a conv": (toml_spec(IMAGE, conv2d(activation="softmax")),
                                     "layers[1].activation", ["softmax"]),
    # the shape a layer needs
    "conv2d on a flat input": (toml_spec(64, conv2d()), "layers[1]", ["conv2d", "[64]"]),
    "conv2d on [channels, length]": (toml_spec(SIGNAL, conv2d()), "layers[1]",
                                     ["[channels, height, width]", "[2, 9]"]),
    "conv1d on [channels, height, width]": (toml_spec(IMAGE, conv1d()), "layers[1]",
                                            ["[channels, length]", "[1, 8, 8]"]),
    "conv2d after flatten": (toml_spec(IMAGE, {"type": "flatten"}, conv2d()), "layers[2]",
                             ["conv2d", "[64]"]),
    "conv2d after a dense layer": (toml_spec(IMAGE, {"units": 4}, conv2d()), "layers[2]",
                                   ["conv2d", "[4]"]),
    "a residual across a shape change": (
        toml_spec(IMAGE, conv2d(name="h"), conv2d(), {"type": "residual", "from": "h"}),
        "layers[3].from", ["(2, 6, 6)", "(2, 4, 4)"]),
    # unknown keys
    "conv2d with dilation": (toml_spec(IMAGE, conv2d(dilation=2)), "layers[1]",
                             ["'dilation'", "conv2d"]),
    "conv1d with units": (toml_spec(SIGNAL, conv1d(units=3)), "layers[1]", ["'units'"]),
    "a pool with padding": (toml_spec(IMAGE, pool(padding=1)), "layers[1]",
                            ["'padding'", "max_pool2d"]),
    "a pool with channels": (toml_spec(IMAGE, pool("avg_pool2d", channels=2)), "layers[1]",
                             ["'channels'", "avg_pool2d"]),
    "flatten with units": (toml_spec(IMAGE, {"type": "flatten", "units": 3}), "layers[1]",
                           ["'units'", "flatten"]),
    "a misspelt layer type": (toml_spec(IMAGE, {"type": "conv_2d", "channels": 2,
                                                "kernel": 3}), "layers[1].type", ["conv_2d"]),
    # pooling
    "pool kernel 0": (toml_spec(IMAGE, pool(kernel=0)), "layers[1].kernel", ["got 0"]),
    "pool kernel missing": (toml_spec(IMAGE, {"type": "max_pool2d"}), "layers[1].kernel",
                            ["missing"]),
    "pool stride 0": (toml_spec(IMAGE, pool(stride=0)), "layers[1].stride", ["got 0"]),
    "pool stride a float": (toml_spec(IMAGE, pool(stride=1.5)), "layers[1].stride", ["1.5"]),
    "pool window larger than the input": (toml_spec([1, 3, 3], pool("avg_pool2d", kernel=4)),
                                          "layers[1].kernel", ["4", "3"]),
    "pool window larger than the width only": (
        toml_spec([1, 8, 3], pool("avg_pool2d", kernel=[2, 4])), "layers[1].kernel",
        ["4", "width 3"]),
    "pool window larger than the conv output": (toml_spec(IMAGE, conv2d(), pool(kernel=7)),
                                                "layers[2].kernel", ["7", "6"]),
    "pool kernel three entries": (toml_spec(IMAGE, pool(kernel=[2, 2, 2])), "layers[1].kernel",
                                  []),
    "max_pool1d on a flat input": (toml_spec(8, pool("max_pool1d")), "layers[1]",
                                   ["max_pool1d", "[8]"]),
    "max_pool1d on [channels, height, width]": (toml_spec(IMAGE, pool("max_pool1d")),
                                                "layers[1]", ["[channels, length]"]),
    "avg_pool2d on [channels, length]": (toml_spec(SIGNAL, pool("avg_pool2d")), "layers[1]",
                                         ["[channels, height, width]"]),
    # inputs
    "inputs an empty list": (toml_spec([], conv2d()), "inputs", ["list of 0"]),
    "inputs four entries": (toml_spec([1, 2, 8, 8], conv2d()), "inputs", ["list of 4"]),
    "inputs a zero channel count": (toml_spec([0, 8, 8], conv2d()), "inputs[0]", ["0"]),
    "inputs a zero length": (toml_spec([1, 0], conv1d()), "inputs[1]", ["0"]),
    "inputs a negative height": (toml_spec([1, -8, 8], conv2d()), "inputs[1]", ["-8"]),
    "inputs a float width": (toml_spec([1, 8, 8.0], conv2d()), "inputs[2]", ["8.0"]),
    "inputs a string entry": (toml_spec([1, "8", 8], conv2d()), "inputs[1]", ["'8'"]),
    "inputs a bool entry": (toml_spec([True, 8, 8], conv2d()), "inputs[0]", ["True"]),
    "inputs a nested list": (toml_spec([1, [8], 8], conv2d()), "inputs[1]", ["[8]"]),
    "inputs a string": (toml_spec("1x8x8", conv2d()), "inputs", ["'1x8x8'"]),
    "inputs too many entries per sample": (toml_spec([1000, 1000, 1000], conv2d()), "inputs",
                                           ["1000000000"]),
    # limits
    "too many conv parameters": (toml_spec([1000, 8, 8], conv2d(channels=20000)), "layers",
                                 ["181,460,002 parameters"]),
    "a conv output of 10^8 entries per sample": (
        toml_spec([1, 1000, 1000], conv2d(channels=100, kernel=1)), "layers[1]",
        ["100,000,000 entries per sample", "[100, 1000, 1000]"]),
    # the output
    "the network's output a feature map": (toml_spec(IMAGE, conv2d(), output=False),
                                           "layers[1]", ["one vector per sample", "[2, 6, 6]"]),
    "the network's output pooled": (toml_spec(IMAGE, conv2d(), pool(), output=False),
                                    "layers[2]", ["one vector per sample", "[2, 3, 3]"]),
}


def assert_error(code, err, field, fragments):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("symbp: error: "), err
    message = lines[0][len("symbp: error: "):]
    assert message.startswith(field + ":") or message.startswith(field + " "), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert "Traceback" not in err


@pytest.mark.parametrize("case", BAD)
def test_a_bad_cnn_spec_is_one_error_line_naming_the_field(tmp_path, capsys, case):
    text, field, fragments = BAD[case]
    path = tmp_path / "cnn.toml"
    path.write_text(text, encoding="utf-8")
    output = tmp_path / "cnn_module.py"
    code = main(["generate", str(path), "-o", str(output)])
    out, err = capsys.readouterr()
    assert_error(code, err, field, fragments)
    assert out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn.toml"]  # nothing written


COMMANDS = {"derive": ["derive"], "check": ["check"], "train": ["train", "--data", "digits"],
            "verify": ["verify", "--claim", r"\delta^{(2)} = a^{(2)} - y"]}
SAMPLE = ("padding equal to the kernel", "conv2d on a flat input", "inputs a float width",
          "a pool with padding")


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", SAMPLE)
def test_every_command_refuses_a_bad_cnn_spec_the_same_way(tmp_path, capsys, monkeypatch,
                                                           command, case):
    text, field, fragments = BAD[case]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cnn.toml").write_text(text, encoding="utf-8")
    argv = COMMANDS[command]
    code = main([argv[0], "cnn.toml", *argv[1:]])
    _, err = capsys.readouterr()
    assert_error(code, err, field, fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn.toml"]


# ------------------------------------------------------------------ valid specs
def torch_extent(size, kernel, stride, padding):
    """PyTorch's output size of a window (nn.Conv*, F.*_pool*), written out here."""
    return math.floor((size + 2 * padding - kernel) / stride) + 1


GOOD = {  # id: (inputs, layers, the per-sample shapes of the input and each layer's output)
    "conv2d, ints for every option": (
        [1, 8, 8], [conv2d(stride=1, padding=1)],
        [(1, 8, 8), (2, torch_extent(8, 3, 1, 1), torch_extent(8, 3, 1, 1))]),
    "conv2d, a list per axis": (
        [3, 9, 7], [conv2d(channels=4, kernel=[3, 2], stride=[2, 1], padding=[1, 0])],
        [(3, 9, 7), (4, torch_extent(9, 3, 2, 1), torch_extent(7, 2, 1, 0))]),
    "conv2d, a one-entry list applies to both axes": (
        [1, 8, 6], [conv2d(kernel=[3], stride=[2])],
        [(1, 8, 6), (2, torch_extent(8, 3, 2, 0), torch_extent(6, 3, 2, 0))]),
    "conv1d, stride 3 leaves the end out": (
        [2, 10], [conv1d(channels=5, kernel=2, stride=3)], [(2, 10), (5, torch_extent(10, 2, 3, 0))]),
    "a pool's stride defaults to its kernel": (
        [1, 7, 7], [pool(kernel=[2, 3])],
        [(1, 7, 7), (1, torch_extent(7, 2, 2, 0), torch_extent(7, 3, 3, 0))]),
    "a window that fits exactly": ([1, 3, 3], [pool("avg_pool2d", kernel=3)],
                                   [(1, 3, 3), (1, 1, 1)]),
    "a padded window larger than the input": ([1, 3], [conv1d(kernel=4, padding=1)],
                                              [(1, 3), (2, torch_extent(3, 4, 1, 1))]),
    "flatten": ([2, 3, 4], [{"type": "flatten"}], [(2, 3, 4), (24,)]),
    "a conv output of exactly 10^6 entries per sample": (
        [1, 1000, 1000], [conv2d(channels=1, kernel=1)], [(1, 1000, 1000), (1, 1000, 1000)]),
    "inputs of one entry is a feature count": ([5], [{"units": 3}], [(5,), (3,)]),
}


@pytest.mark.parametrize("case", GOOD)
def test_a_valid_cnn_spec_loads_with_torchs_shapes(tmp_path, case):
    inputs, layers, shapes = GOOD[case]
    path = tmp_path / "cnn.toml"
    path.write_text(toml_spec(inputs, *layers), encoding="utf-8")
    network = load_spec(path)
    assert network.shapes == [*shapes, (2,)]
    assert network.widths == [math.prod(shape) for shape in network.shapes]
    assert network.input_shape == tuple(inputs)
