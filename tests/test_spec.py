"""Tests for symbp.spec: valid specs load, and every kind of bad spec is refused
with a SpecError (or ExpressionError) whose message names the field."""

from __future__ import annotations

import pytest
from conftest import EXAMPLES, VALID_SPEC

from symbp.errors import ExpressionError, SpecError, SymbpError
from symbp.spec import MAX_UNITS, TRAINING_DEFAULTS, Dense, Network, load_spec, network_from_dict

HEAD = """
name = "net"
inputs = 3
loss = "{loss}"
"""
LAYER = """
[[layers]]
units = {units}
activation = "{activation}"
"""


def spec(*layers, loss="mse", head=None, tail=""):
    """A TOML spec: ``layers`` are (units, activation) pairs, ``units`` as TOML text."""
    text = (head if head is not None else HEAD.format(loss=loss))
    text += "".join(LAYER.format(units=u, activation=a) for u, a in layers)
    return text + tail


GOOD_LAYERS = (("4", "tanh"), ("2", "sigmoid"))

# (id, TOML text, expected error class, substrings the message must contain)
BAD_SPECS = [
    ("unknown-activation", spec(("4", "tanhh"), ("2", "sigmoid")), SpecError,
     ["layers[1].activation", "tanhh"]),
    ("unknown-output-activation", spec(("4", "tanh"), ("2", "sigmod")), SpecError,
     ["layers[2].activation", "sigmod"]),
    ("unknown-loss", spec(*GOOD_LAYERS, loss="mae"), SpecError, ["loss", "mae"]),
    ("softmax-not-last", spec(("4", "softmax"), ("2", "softmax"), loss="cross_entropy"),
     SpecError, ["layers[1].activation", "softmax"]),
    ("cross-entropy-without-softmax", spec(*GOOD_LAYERS, loss="cross_entropy"), SpecError,
     ["loss", "cross_entropy", "softmax", "layers[2]"]),
    ("bce-without-sigmoid", spec(("4", "tanh"), ("2", "identity"), loss="bce"), SpecError,
     ["loss", "bce", "sigmoid", "layers[2]"]),
    ("bce-with-softmax", spec(("4", "tanh"), ("2", "softmax"), loss="bce"), SpecError,
     ["loss", "bce", "sigmoid"]),
    ("units-zero", spec(("4", "tanh"), ("0", "sigmoid")), SpecError, ["layers[2].units", "0"]),
    ("units-negative", spec(("-3", "tanh"), ("2", "sigmoid")), SpecError,
     ["layers[1].units", "-3"]),
    ("units-float", spec(("2.5", "tanh"), ("2", "sigmoid")), SpecError,
     ["layers[1].units", "2.5"]),
    ("units-bool", spec(("true", "tanh"), ("2", "sigmoid")), SpecError,
     ["layers[1].units", "True"]),
    ("units-string", spec(('"4"', "tanh"), ("2", "sigmoid")), SpecError, ["layers[1].units"]),
    ("units-too-large", spec((str(MAX_UNITS + 1), "tanh"), ("2", "sigmoid")), SpecError,
     ["layers[1].units"]),
    ("inputs-zero", spec(*GOOD_LAYERS, head='inputs = 0\nloss = "mse"\n'), SpecError,
     ["inputs"]),
    ("inputs-float", spec(*GOOD_LAYERS, head='inputs = 3.0\nloss = "mse"\n'), SpecError,
     ["inputs"]),
    ("missing-inputs", spec(*GOOD_LAYERS, head='loss = "mse"\n'), SpecError,
     ["inputs", "missing"]),
    ("missing-loss", spec(*GOOD_LAYERS, head="inputs = 3\n"), SpecError, ["loss", "missing"]),
    ("missing-layers", 'inputs = 3\nloss = "mse"\n', SpecError, ["layers", "missing"]),
    ("empty-layers", 'inputs = 3\nloss = "mse"\nlayers = []\n', SpecError, ["layers"]),
    ("layers-not-array", 'inputs = 3\nloss = "mse"\n[layers]\nunits = 2\n', SpecError,
     ["layers"]),
    ("loss-not-string", spec(*GOOD_LAYERS, head="inputs = 3\nloss = 3\n"), SpecError,
     ["loss"]),
    ("name-not-identifier", spec(*GOOD_LAYERS, head='name = "2fast"\ninputs = 3\nloss = "mse"\n'),
     SpecError, ["name", "2fast"]),
    ("name-keyword", spec(*GOOD_LAYERS, head='name = "class"\ninputs = 3\nloss = "mse"\n'),
     SpecError, ["name", "class"]),
    ("name-with-dash", spec(*GOOD_LAYERS, head='name = "my-net"\ninputs = 3\nloss = "mse"\n'),
     SpecError, ["name", "my-net"]),
    ("unknown-top-level-key",
     spec(*GOOD_LAYERS, head='inputs = 3\nloss = "mse"\nlearning_rate = 0.1\n'),
     SpecError, ["learning_rate"]),
    ("top-level-typo", spec(*GOOD_LAYERS, head='inputs = 3\nlos = "mse"\n'), SpecError,
     ["los"]),
    ("unknown-layer-key", spec(*GOOD_LAYERS) + '[[layers]]\nunits = 2\nactivaton = "tanh"\n',
     SpecError, ["layers[3]", "activaton"]),
    ("missing-layer-units", spec(*GOOD_LAYERS) + '[[layers]]\nactivation = "tanh"\n',
     SpecError, ["layers[3].units", "missing"]),
    ("unknown-layer-type", spec(*GOOD_LAYERS) + '[[layers]]\ntype = "lstm"\n', SpecError,
     ["layers[3].type", "lstm"]),
    ("eps-zero", spec(*GOOD_LAYERS) + '[[layers]]\ntype = "layer_norm"\neps = 0\n', SpecError,
     ["layers[3].eps"]),
    ("dropout-rate-one", spec(*GOOD_LAYERS) + '[[layers]]\ntype = "dropout"\nrate = 1\n',
     SpecError, ["layers[3].rate"]),
    ("residual-later-layer", spec(*GOOD_LAYERS) + '[[layers]]\ntype = "residual"\nfrom = "h"\n'
     '[[layers]]\ntype = "activation"\nactivation = "tanh"\nname = "h"\n', SpecError,
     ["layers[3].from", "'h'"]),
    ("residual-shape", spec(*GOOD_LAYERS) + '[[layers]]\ntype = "residual"\nfrom = "input"\n',
     SpecError, ["layers[3].from", "'input' has shape (3,)"]),
    ("key-of-another-type", spec(*GOOD_LAYERS) + '[[layers]]\ntype = "dropout"\nrate = 0.1\n'
     "units = 3\n", SpecError, ["layers[3]", "'units'", "dropout"]),
    ("activation-named-like-an-op", spec(*GOOD_LAYERS, tail='[activations]\ndropout = "x"\n'),
     SpecError, ["activations.dropout", "names an op"]),
    ("negative-weight-decay", spec(*GOOD_LAYERS, tail="[training]\nweight_decay = -1\n"),
     SpecError, ["training.weight_decay"]),
    ("activation-not-string", spec(("4", "tanh")) + "[[layers]]\nunits = 2\nactivation = 3\n",
     SpecError, ["layers[2].activation"]),
    ("unknown-training-key", spec(*GOOD_LAYERS, tail="[training]\nlearning_rte = 0.1\n"),
     SpecError, ["training", "learning_rte"]),
    ("bad-optimizer", spec(*GOOD_LAYERS, tail='[training]\noptimizer = "adagrad"\n'),
     SpecError, ["training.optimizer", "adagrad"]),
    ("learning-rate-zero", spec(*GOOD_LAYERS, tail="[training]\nlearning_rate = 0\n"),
     SpecError, ["training.learning_rate"]),
    ("learning-rate-negative", spec(*GOOD_LAYERS, tail="[training]\nlearning_rate = -0.1\n"),
     SpecError, ["training.learning_rate"]),
    ("learning-rate-string", spec(*GOOD_LAYERS, tail='[training]\nlearning_rate = "fast"\n'),
     SpecError, ["training.learning_rate"]),
    ("learning-rate-nan", spec(*GOOD_LAYERS, tail="[training]\nlearning_rate = nan\n"),
     SpecError, ["training.learning_rate"]),
    ("learning-rate-inf", spec(*GOOD_LAYERS, tail="[training]\nlearning_rate = inf\n"),
     SpecError, ["training.learning_rate"]),
    ("learning-rate-bool", spec(*GOOD_LAYERS, tail="[training]\nlearning_rate = true\n"),
     SpecError, ["training.learning_rate"]),
    ("batch-size-zero", spec(*GOOD_LAYERS, tail="[training]\nbatch_size = 0\n"), SpecError,
     ["training.batch_size"]),
    ("epochs-float", spec(*GOOD_LAYERS, tail="[training]\nepochs = 1.5\n"), SpecError,
     ["training.epochs"]),
    ("seed-negative", spec(*GOOD_LAYERS, tail="[training]\nseed = -1\n"), SpecError,
     ["training.seed"]),
    ("training-not-table", spec(*GOOD_LAYERS, head='inputs = 3\nloss = "mse"\ntraining = 3\n'),
     SpecError, ["training"]),
    ("custom-activation-bad-name",
     spec(*GOOD_LAYERS, tail='[activations]\n"my-act" = "x"\n'), SpecError,
     ["activations.my-act"]),
    ("custom-activation-redefines-builtin",
     spec(*GOOD_LAYERS, tail='[activations]\nrelu = "x"\n'), SpecError, ["activations.relu"]),
    ("custom-activation-not-string",
     spec(*GOOD_LAYERS, tail="[activations]\nf = 3\n"), ExpressionError, ["activations.f"]),
    ("custom-activation-syntax-error",
     spec(*GOOD_LAYERS, tail='[activations]\nf = "x*(1 +"\n'), ExpressionError,
     ["activations.f", "column"]),
    ("custom-activation-unknown-name",
     spec(*GOOD_LAYERS, tail='[activations]\nf = "x + z"\n'), ExpressionError,
     ["activations.f", "'z'", "column 5"]),
    ("custom-loss-without-prediction",
     spec(*GOOD_LAYERS, loss="zero", tail='[losses]\nzero = "y**2"\n'), SpecError,
     ["losses.zero"]),
    ("custom-loss-redefines-builtin",
     spec(*GOOD_LAYERS, tail='[losses]\nmse = "(a - y)**2"\n'), SpecError, ["losses.mse"]),
    ("custom-loss-uses-x",
     spec(*GOOD_LAYERS, loss="odd", tail='[losses]\nodd = "a*x"\n'), ExpressionError,
     ["losses.odd", "'x'", "column 3"]),
    ("activations-not-table",
     spec(*GOOD_LAYERS, head='inputs = 3\nloss = "mse"\nactivations = "x"\n'),
     SpecError, ["activations"]),
]


@pytest.mark.parametrize("text, error, fragments",
                         [case[1:] for case in BAD_SPECS], ids=[case[0] for case in BAD_SPECS])
def test_bad_spec_is_refused_naming_the_field(write_spec, text, error, fragments):
    path = write_spec(text)
    with pytest.raises(error) as info:
        load_spec(path)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert isinstance(info.value, SymbpError)  # the CLI turns it into exit 2


def test_there_are_many_kinds_of_bad_spec():
    assert len({case[0] for case in BAD_SPECS}) >= 15


def test_invalid_toml_names_the_file_and_position(write_spec):
    path = write_spec('inputs = 3\nloss = "mse\n')
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert str(path) in message and "invalid TOML" in message and "line 2" in message


def test_duplicate_key_is_invalid_toml(write_spec):
    path = write_spec('inputs = 3\ninputs = 4\nloss = "mse"\n')
    with pytest.raises(SpecError, match="invalid TOML"):
        load_spec(path)


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(SpecError, match="nope.toml"):
        load_spec(path)


def test_non_utf8_file_is_a_spec_error(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "caf\u00e9"\n'.encode("latin-1"))
    with pytest.raises(SpecError, match="latin1.toml"):
        load_spec(path)


def test_directory_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match=str(tmp_path.name)):
        load_spec(tmp_path)


# --------------------------------------------------------------- valid specs
def test_valid_spec_loads_with_defaults(write_spec):
    network = load_spec(write_spec(VALID_SPEC))
    assert network.name == "tiny"
    assert network.widths == [3, 4, 2]
    assert network.depth == 2
    assert [layer.activation for layer in network.layers] == ["tanh", "sigmoid"]
    assert network.training == TRAINING_DEFAULTS
    assert network.task == "binary"
    assert network.activation_of(1).name == "tanh"
    assert network.loss_definition.name == "mse"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_load_and_round_trip(path):
    network = load_spec(path)
    assert network.name == path.stem
    again = network_from_dict(network.to_dict())
    assert again.to_dict() == network.to_dict()
    assert again.widths == network.widths


def test_training_overrides_only_given_keys(write_spec):
    network = load_spec(write_spec(VALID_SPEC + '\n[training]\noptimizer = "adam"\nepochs = 3\n'))
    assert network.training == {**TRAINING_DEFAULTS, "optimizer": "adam", "epochs": 3}


def test_custom_activation_and_loss_are_resolved(write_spec):
    network = load_spec(write_spec("""
        inputs = 2
        loss = "logcosh"
        [activations]
        mish = "x*tanh(log(1 + exp(x)))"
        [losses]
        logcosh = "log(cosh(a - y))"
        [[layers]]
        units = 3
        activation = "mish"
        [[layers]]
        units = 1
        activation = "identity"
    """))
    mish = network.activation_of(1)
    assert not mish.builtin and not mish.is_softmax
    assert network.loss_definition.name == "logcosh" and not network.loss_definition.builtin
    assert network.task == "regression"


def test_task_follows_output_activation():
    def task(output, loss):
        return Network(inputs=2, layers=[Dense(3, "tanh"), Dense(2, output)], loss=loss).task

    assert task("softmax", "cross_entropy") == "classification"
    assert task("sigmoid", "bce") == "binary"
    assert task("identity", "mse") == "regression"


# ------------------------------------------------------------ the Python API
@pytest.mark.parametrize("kwargs, fragment", [
    (dict(inputs=True), "inputs"),
    (dict(inputs=0), "inputs"),
    (dict(layers=[]), "layers"),
    (dict(layers=[Dense(0, "tanh")]), "layers[1].units"),
    (dict(layers=[{"units": 2, "activation": "tanh", "dropout": 0.5}]), "dropout"),
    (dict(layers=[("2", "tanh")]), "layers[1]"),
    (dict(layers=[Dense(2, "relu"), Dense(2, "nope")]), "layers[2].activation"),
    (dict(loss="huber"), "loss"),
    (dict(name="with space"), "name"),
    (dict(training={"optimizer": "rmsprop"}), "training.optimizer"),
    (dict(activations={"f": "x.real"}), "activations.f"),
], ids=lambda value: str(value)[:40] if isinstance(value, dict) else None)
def test_python_api_validates_like_toml(kwargs, fragment):
    arguments = dict(inputs=3, layers=[Dense(2, "tanh")], loss="mse", **{})
    arguments.update(kwargs)
    with pytest.raises(SymbpError) as info:
        Network(**arguments)
    assert fragment in str(info.value)


def test_network_from_dict_rejects_non_table_layer():
    with pytest.raises(SpecError, match=r"layers\[1\]"):
        network_from_dict({"inputs": 2, "loss": "mse", "layers": [3]})
