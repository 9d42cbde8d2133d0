"""Two layers written once against the Array API standard (the namespace comes from the input).

``Swish`` is right. ``Scale`` -- ``y = x * w`` with a learned per-feature weight ``w`` -- takes a
``bug`` flag (or ``LAYER_LIBRARY_BUG=1`` in the environment) that sums its weight gradient over
the wrong axis, the kind of mistake xpnet's gradient check names.
"""

import os

from array_api_compat import array_namespace

__all__ = ["Swish", "Scale"]


class Swish:
    """y = x * sigmoid(x); dy/dx = s + x * s * (1 - s)."""

    def forward(self, x):
        xp = array_namespace(x)
        self.x, self.s = x, 1.0 / (1.0 + xp.exp(-x))
        return x * self.s

    def backward(self, dout):
        s = self.s
        return dout * (s + self.x * s * (1.0 - s))


class Scale:
    """y = x * w for x of shape (N, D) and a weight w of shape (D,)."""

    param_names = ("w",)

    def __init__(self, w, bug=None):
        self.w = w
        self.bug = bool(os.environ.get("LAYER_LIBRARY_BUG")) if bug is None else bug

    def forward(self, x):
        self.x = x
        return x * self.w

    def backward(self, dout):
        xp = array_namespace(dout)
        g = dout * self.x
        # right: sum over the batch (axis 0); the bug: a mean, so dw is N times too small
        self.dw = xp.mean(g, axis=0) if self.bug else xp.sum(g, axis=0)
        return dout * self.w
