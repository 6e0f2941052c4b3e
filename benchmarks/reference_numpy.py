"""A careful hand-written NumPy MLP: the peer that symbp's generated code is
measured against.

Network: tanh hidden layers, softmax output, cross-entropy loss averaged over
the batch, plain SGD. Notation and parameter layout as in CONVENTIONS §5:
``W{l}`` has shape ``(n_l, n_{l-1})``, ``b{l}`` shape ``(n_l,)``; rows are
samples, ``Z_l = A_{l-1} W_l^T + b_l``.

What makes it "careful" (what an expert would write by hand):

* every intermediate lives in a buffer allocated once in ``__init__`` and
  reused by every step (``np.matmul(..., out=)``, in-place ufuncs); a smaller
  final batch uses row-slices (views) of the same buffers;
* transposes are views handed to BLAS, never copies;
* the tanh derivative comes from the cached output, ``1 - a*a``;
* softmax subtracts the row maximum, then exponentiates and normalises in place;
* the output delta of softmax + cross-entropy is ``P - Y``, and the factor
  ``lr / B`` (mean over the batch and learning rate) is folded into it once:
  every later quantity (``dW = Delta^T A``, ``db = sum(Delta)``,
  ``Delta_{l-1} = (Delta_l W_l) * (1 - A^2)``) is linear in it, so the update
  is a plain ``W -= dW``;
* ``dA_{l-1} = Delta_l W_l`` is computed before ``W_l`` is updated, and no
  ``dA`` is formed for the input layer;
* in float32 mode nothing is upcast: the scale is a ``float32`` scalar and
  mismatched inputs are refused rather than silently promoted.
"""

from __future__ import annotations

import numpy as np


class ReferenceMLP:
    """Hand-written training step. ``params`` is updated in place."""

    def __init__(self, params: dict, batch_size: int, dtype=np.float64):
        self.dtype = np.dtype(dtype)
        if len(params) % 2 or not params:
            raise ValueError("params must hold W1, b1, ..., WL, bL")
        self.n_layers = L = len(params) // 2
        self.params = params
        self.W = [None] + [params[f"W{layer}"] for layer in range(1, L + 1)]
        self.b = [None] + [params[f"b{layer}"] for layer in range(1, L + 1)]
        for name, arr in params.items():
            if arr.dtype != self.dtype:
                raise TypeError(f"{name} has dtype {arr.dtype}, expected {self.dtype}")
            if not arr.flags.c_contiguous:
                raise ValueError(f"{name} must be C-contiguous")
        self.sizes = [self.W[1].shape[1]] + [self.W[layer].shape[0] for layer in range(1, L + 1)]
        self.batch_size = batch_size
        self._allocate(batch_size)

    def _allocate(self, B: int) -> None:
        L, dt, n = self.n_layers, self.dtype, self.sizes
        # A[l]: activation of layer l (A[L] holds the softmax probabilities)
        self.A = [None] + [np.empty((B, n[layer]), dtype=dt) for layer in range(1, L + 1)]
        # D[l]: first dA_l = Delta_{l+1} W_{l+1}, then Delta_l (scaled by lr/B)
        self.D = [None] + [np.empty((B, n[layer]), dtype=dt) for layer in range(1, L + 1)]
        # T[l]: scratch for the tanh derivative 1 - A_l^2 (hidden layers only)
        self.T = [None] + [np.empty((B, n[layer]), dtype=dt) for layer in range(1, L)]
        self.row = np.empty((B, 1), dtype=dt)  # row max / row sum of the softmax
        self.dW = [None] + [np.empty_like(self.W[layer]) for layer in range(1, L + 1)]
        self.db = [None] + [np.empty_like(self.b[layer]) for layer in range(1, L + 1)]
        self.capacity = B

    def buffers(self) -> dict[str, np.ndarray]:
        """Every array the stepper owns (for the dtype assertions)."""
        out = {}
        for kind in ("A", "D", "T", "dW", "db"):
            for layer, arr in enumerate(getattr(self, kind)):
                if arr is not None:
                    out[f"{kind}{layer}"] = arr
        out["row"] = self.row
        return out

    def _check_input(self, X, Y):
        if X.dtype != self.dtype or Y.dtype != self.dtype:
            raise TypeError(f"X/Y have dtype {X.dtype}/{Y.dtype}, expected {self.dtype}")
        if X.shape[0] > self.capacity:
            self._allocate(X.shape[0])

    def forward(self, X):
        """Softmax probabilities for ``X`` (a view into an internal buffer)."""
        self._check_input(X, X)
        B = X.shape[0]
        L = self.n_layers
        A_prev = X
        for layer in range(1, L + 1):
            Z = self.A[layer][:B]
            np.matmul(A_prev, self.W[layer].T, out=Z)
            Z += self.b[layer]
            if layer < L:
                np.tanh(Z, out=Z)
            A_prev = Z
        P = A_prev
        row = self.row[:B]
        np.max(P, axis=1, keepdims=True, out=row)
        P -= row
        np.exp(P, out=P)
        np.sum(P, axis=1, keepdims=True, out=row)
        P /= row
        return P

    def step(self, X, Y, lr: float) -> None:
        """One SGD step on the batch ``(X, Y)``; ``Y`` is one-hot, float."""
        self._check_input(X, Y)
        B = X.shape[0]
        L = self.n_layers
        P = self.forward(X)

        # ---- backward: Delta_L = (P - Y) * lr / B, folded in once ----
        D = self.D[L][:B]
        np.subtract(P, Y, out=D)
        D *= self.dtype.type(lr / B)
        for layer in range(L, 0, -1):
            A_prev = X if layer == 1 else self.A[layer - 1][:B]
            dW, db = self.dW[layer], self.db[layer]
            np.matmul(D.T, A_prev, out=dW)  # lr * dL/dW_l
            np.sum(D, axis=0, out=db)  # lr * dL/db_l
            if layer > 1:
                D_prev = self.D[layer - 1][:B]
                np.matmul(D, self.W[layer], out=D_prev)  # dA_{layer-1}, before W_l changes
                T = self.T[layer - 1][:B]
                np.multiply(A_prev, A_prev, out=T)
                np.subtract(1, T, out=T)  # tanh' = 1 - a^2
                D_prev *= T
            # ---- update ----
            self.W[layer] -= dW
            self.b[layer] -= db
            if layer > 1:
                D = D_prev

    def loss(self, X, Y) -> float:
        """Mean cross-entropy of the batch (not used by ``step``)."""
        self.forward(X)
        return self.batch_loss(Y)

    def batch_loss(self, Y) -> float:
        """Mean cross-entropy of the batch that the last ``step`` (or ``forward``) saw,
        from the probabilities it left in its buffer: no second forward pass."""
        P = self.A[self.n_layers][: Y.shape[0]]
        tiny = np.finfo(self.dtype).tiny
        return float(-np.sum(Y * np.log(np.maximum(P, tiny))) / Y.shape[0])

    def predict(self, X):
        return np.argmax(self.forward(X), axis=1)
