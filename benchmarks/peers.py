"""The peers that symbp's generated training step is timed against.

Each peer is a stepper object with the API of ``ReferenceMLP``:
``step(X, Y, lr)`` does one full training step (forward, backward, plain SGD
update) on the NumPy batch ``X`` (``(B, n_0)``) with one-hot float targets
``Y`` (``(B, n_L)``), and ``numpy_params()`` returns the current parameters
as a dict of NumPy arrays in the layout of CONVENTIONS §5 (``W{l}`` of shape
``(n_l, n_{l-1})``, ``b{l}`` of shape ``(n_l,)``), for the correctness check.

All peers start from the same NumPy-made parameters (copied in), run tanh
hidden layers, a softmax output and cross-entropy averaged over the batch.

* ``TorchStepper``   PyTorch eager on the CPU, autograd + ``torch.optim.SGD``.
* ``JaxStepper``     JAX, the whole step (value_and_grad + update) under ``jit``.
* ``SklearnStepper`` scikit-learn ``MLPClassifier(solver="sgd")``, one
  ``partial_fit`` per batch (alpha=0, momentum=0, constant learning rate).
* ``GemmBound``      only the matrix products a dense backward pass must do
  (forward ``Z = A W^T`` per layer, ``dW = Delta^T A``, ``dA = Delta W``
  except for the first layer), into preallocated outputs: a lower bound,
  it computes nothing meaningful and has no correctness check.

The optional frameworks are imported lazily; ``available()`` says which are
installed and why not.
"""

from __future__ import annotations

import importlib
import warnings

import numpy as np


def _layers(params) -> int:
    return len(params) // 2


def available() -> dict[str, str | None]:
    """Peer name -> None if usable, else the reason it is not."""
    out = {}
    for peer, module in (("torch", "torch"), ("jax", "jax"), ("sklearn", "sklearn")):
        try:
            importlib.import_module(module)
            out[peer] = None
        except Exception as exc:  # ImportError, or a broken install
            out[peer] = f"{module} not importable ({type(exc).__name__}: {exc})"
    return out


# --------------------------------------------------------------------------
# PyTorch eager
# --------------------------------------------------------------------------
class TorchStepper:
    name = "torch"

    def __init__(self, params: dict, batch_size: int, dtype, lr: float):
        import torch

        self.torch = torch
        self.dtype = np.dtype(dtype)
        self.L = _layers(params)
        # copies, so the NumPy originals are not shared with torch
        self.W = [
            torch.tensor(params[f"W{layer}"], requires_grad=True) for layer in range(1, self.L + 1)
        ]
        self.b = [
            torch.tensor(params[f"b{layer}"], requires_grad=True) for layer in range(1, self.L + 1)
        ]
        self.opt = torch.optim.SGD(self.W + self.b, lr=lr, momentum=0.0)
        self.lr = lr
        for t in self.W + self.b:
            assert t.dtype == getattr(torch, self.dtype.name), t.dtype

    def step(self, X, Y, lr: float) -> None:
        torch = self.torch
        if lr != self.lr:
            for group in self.opt.param_groups:
                group["lr"] = lr
            self.lr = lr
        x = torch.from_numpy(X)  # zero-copy views of the NumPy batch
        y = torch.from_numpy(Y)
        a = x
        for layer in range(self.L - 1):
            a = torch.tanh(torch.addmm(self.b[layer], a, self.W[layer].t()))
        logits = torch.addmm(self.b[-1], a, self.W[-1].t())
        # probability targets: softmax + cross-entropy fused, mean over batch
        loss = torch.nn.functional.cross_entropy(logits, y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def numpy_params(self) -> dict:
        out = {}
        for layer in range(1, self.L + 1):
            out[f"W{layer}"] = self.W[layer - 1].detach().numpy().copy()
            out[f"b{layer}"] = self.b[layer - 1].detach().numpy().copy()
        return out


# --------------------------------------------------------------------------
# JAX with jit
# --------------------------------------------------------------------------
_JAX_STEP = None


def _jax_step_fn():
    """Build (once) the jitted SGD step; float64 needs jax_enable_x64."""
    global _JAX_STEP
    if _JAX_STEP is None:
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)

        def loss_fn(params, x, y):
            a = x
            for W, b in params[:-1]:
                a = jnp.tanh(a @ W.T + b)
            W, b = params[-1]
            logp = jax.nn.log_softmax(a @ W.T + b, axis=1)
            return -jnp.sum(y * logp) / x.shape[0]

        def step(params, x, y, lr):
            grads = jax.grad(loss_fn)(params, x, y)
            return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)

        _JAX_STEP = jax.jit(step)
    return _JAX_STEP


class JaxStepper:
    name = "jax"

    def __init__(self, params: dict, batch_size: int, dtype, lr: float):
        import jax

        self.jax = jax
        self.fn = _jax_step_fn()
        self.dtype = np.dtype(dtype)
        self.L = _layers(params)
        self.params = tuple(
            (
                jax.device_put(np.array(params[f"W{layer}"])),
                jax.device_put(np.array(params[f"b{layer}"])),
            )
            for layer in range(1, self.L + 1)
        )
        for W, b in self.params:
            assert W.dtype == self.dtype and b.dtype == self.dtype, (W.dtype, b.dtype)

    def step(self, X, Y, lr: float) -> None:
        # X, Y arrive as NumPy arrays, as in a NumPy-fed training loop;
        # the learning rate is cast so float32 stays float32
        self.params = self.fn(self.params, X, Y, self.dtype.type(lr))
        self.jax.block_until_ready(self.params)

    def numpy_params(self) -> dict:
        out = {}
        for layer, (W, b) in enumerate(self.params, start=1):
            out[f"W{layer}"] = np.asarray(W).copy()
            out[f"b{layer}"] = np.asarray(b).copy()
        return out


# --------------------------------------------------------------------------
# scikit-learn MLPClassifier, partial_fit per batch
# --------------------------------------------------------------------------
def make_sklearn_classifier(
    hidden, batch_size, lr, *, shuffle=False, random_state=0, max_iter=1, warm_start=False
):
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(
        hidden_layer_sizes=tuple(hidden),
        activation="tanh",
        solver="sgd",
        alpha=0.0,
        batch_size=batch_size,
        learning_rate="constant",
        learning_rate_init=lr,
        momentum=0.0,
        nesterovs_momentum=False,
        shuffle=shuffle,
        early_stopping=False,
        random_state=random_state,
        max_iter=max_iter,
        warm_start=warm_start,
        tol=0.0,
        n_iter_no_change=10**9,
    )


def sklearn_set_params(clf, params: dict) -> None:
    """Overwrite an initialised MLPClassifier's weights with ours (W -> W^T)."""
    L = _layers(params)
    if len(clf.coefs_) != L:
        raise ValueError("layer count mismatch")
    for layer in range(1, L + 1):
        W, b = params[f"W{layer}"], params[f"b{layer}"]
        if clf.coefs_[layer - 1].shape != W.T.shape:
            raise ValueError(
                f"W{layer}: sklearn has {clf.coefs_[layer - 1].shape}, ours {W.T.shape}"
            )
        # in place: the arrays stay the ones sklearn's optimizer updates
        clf.coefs_[layer - 1][...] = W.T
        clf.intercepts_[layer - 1][...] = b


def sklearn_get_params(clf) -> dict:
    out = {}
    for layer, (C, c) in enumerate(zip(clf.coefs_, clf.intercepts_, strict=True), start=1):
        out[f"W{layer}"] = np.ascontiguousarray(C.T)
        out[f"b{layer}"] = np.array(c)
    return out


class SklearnStepper:
    name = "sklearn"

    def __init__(self, params: dict, batch_size: int, dtype, lr: float, X=None, Y=None):
        L = _layers(params)
        sizes = [params["W1"].shape[1]] + [
            params[f"W{layer}"].shape[0] for layer in range(1, L + 1)
        ]
        self.n_classes = sizes[-1]
        self.classes = np.arange(self.n_classes)
        self.lr = lr
        self.clf = make_sklearn_classifier(sizes[1:-1], batch_size, lr)
        # one partial_fit to build the model (its own random init), then our weights
        if X is None:
            X = np.zeros((batch_size, sizes[0]), dtype=dtype)
            labels = np.arange(batch_size) % self.n_classes
        else:
            labels = np.argmax(Y, axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.clf.partial_fit(X, labels, classes=self.classes)
        sklearn_set_params(self.clf, params)
        for arr in self.clf.coefs_ + self.clf.intercepts_:
            assert arr.dtype == np.dtype(dtype), arr.dtype

    def step(self, X, Y, lr: float) -> None:
        if lr != self.lr:
            self.clf._optimizer.learning_rate = lr  # SGDOptimizer keeps the rate here
            self.lr = lr
        self.clf.partial_fit(X, np.argmax(Y, axis=1))

    def numpy_params(self) -> dict:
        return sklearn_get_params(self.clf)


# --------------------------------------------------------------------------
# GEMM-only lower bound
# --------------------------------------------------------------------------
class GemmBound:
    """Only the matrix products of a dense forward + backward pass.

    Per layer l = 1..L: forward ``Z_l = A_{l-1} W_l^T``; backward
    ``dW_l = Delta_l^T A_{l-1}`` and, for l > 1, ``dA_{l-1} = Delta_l W_l``.
    Outputs go to preallocated buffers; the activations and deltas are fixed
    random arrays (values do not matter for the cost of a GEMM).
    """

    name = "gemm-bound"

    def __init__(self, params: dict, batch_size: int, dtype, lr: float = 0.0):
        dt = np.dtype(dtype)
        self.L = L = _layers(params)
        self.W = [None] + [np.array(params[f"W{layer}"]) for layer in range(1, L + 1)]
        n = [self.W[1].shape[1]] + [self.W[layer].shape[0] for layer in range(1, L + 1)]
        rng = np.random.default_rng(0)
        B = batch_size
        self.Z = [None] + [np.empty((B, n[layer]), dtype=dt) for layer in range(1, L + 1)]
        self.A = [None] + [
            rng.standard_normal((B, n[layer])).astype(dt) for layer in range(1, L + 1)
        ]
        self.D = [None] + [
            rng.standard_normal((B, n[layer])).astype(dt) for layer in range(1, L + 1)
        ]
        self.dA = [None] + [np.empty((B, n[layer]), dtype=dt) for layer in range(1, L)]
        self.dW = [None] + [np.empty_like(self.W[layer]) for layer in range(1, L + 1)]

    def buffers(self) -> dict:
        out = {}
        for kind in ("W", "Z", "A", "D", "dA", "dW"):
            for layer, arr in enumerate(getattr(self, kind)):
                if arr is not None:
                    out[f"{kind}{layer}"] = arr
        return out

    def step(self, X, Y=None, lr: float = 0.0) -> None:
        L, W, A, D = self.L, self.W, self.A, self.D
        np.matmul(X, W[1].T, out=self.Z[1])
        for layer in range(2, L + 1):
            np.matmul(A[layer - 1], W[layer].T, out=self.Z[layer])
        for layer in range(L, 0, -1):
            np.matmul(D[layer].T, X if layer == 1 else A[layer - 1], out=self.dW[layer])
            if layer > 1:
                np.matmul(D[layer], W[layer], out=self.dA[layer - 1])

    def numpy_params(self) -> dict:
        raise NotImplementedError("the GEMM bound computes no update")


PEER_CLASSES = {
    "torch": TorchStepper,
    "jax": JaxStepper,
    "sklearn": SklearnStepper,
    "gemm-bound": GemmBound,
}
