r"""Deep Taylor decomposition with a trained *min-max relevance model*.

Montavon et al., "Explaining nonlinear classification decisions with deep Taylor
decomposition", *Pattern Recognition* 65 (2017), section 5: where the relevance of a
layer's neurons depends on what happens above them, approximate it by a small trained
*relevance model* of the activations below, and decompose that model instead of the
layer. For the neurons :math:`k` of a chosen layer, with the ReLU activations
:math:`x_i \ge 0` of the layer below as input and the relevances :math:`R_l` of the
layer above as context:

.. math::

    y_j = \max\big(0, \textstyle\sum_i x_i v_{ij} + a_j\big), \qquad
    a_j = \min\big(0, \textstyle\sum_l R_l v'_{lj} + d_j\big), \qquad
    \hat R_k = \textstyle\sum_{j \in \mathrm{pool}(k)} y_j

(``pool_size`` detection neurons :math:`j` per neuron :math:`k`; for a convolution,
:math:`v` is a kernel of the layer's own window, strides, padding and dilation, and a
detection neuron is a position and a detection channel, each with its own
:math:`v'_{\cdot j}, d_j`). The parameters :math:`v, v', d` are fitted by least
squares so that :math:`\hat R_k` matches the *true* relevance :math:`R_k` on training
data (Keras ``fit``).

What "true relevance" is here: the relevance arriving at the layer's output from the
training-free DTD of the layers above it (:class:`~dtd_keras.DTD`, the rule of each
layer's input domain), for the explained neuron (by default each sample's top logit).
The context :math:`R_l` is the relevance of the output of the next rule-taking layer
above (for the last hidden layer: the output layer's relevance, the one-hot explained
logit).

Backward pass through a fitted relevance model: sum pooling passes :math:`\hat R_k` to
its detection neurons in proportion to :math:`y_j` (so detection neuron :math:`j`
receives :math:`y_j`), then the rule of the layer's input domain (the z⁺-rule for ReLU
activations, :func:`dtd_keras.rules.propagate`) takes :math:`y_j` onto :math:`x_i`.
Since :math:`a_j \le 0` always, a detection neuron with :math:`y_j > 0` has
:math:`\sum_i x_i v^+_{ij} \ge \sum_i x_i v_{ij} > -a_j \ge 0`: its z⁺ denominator is
positive, so the relevance model's layer is conservative and positive (seed
Proposition 2). What is conserved is :math:`\sum_k \hat R_k` (the relevance model's
output), not the explained logit: the heatmap's total differs from :math:`f(x)` by the
fit error :math:`\sum_k (\hat R_k - R_k)` (see :meth:`MinMaxDTD.relevance_fit`).
``redistribute="incoming"`` instead splits the relevance :math:`R_k` arriving from above
in proportion to :math:`y_j` (:math:`R_j = y_j R_k / \hat R_k`), conserving it wherever
:math:`\hat R_k > 0`.

Several modelled layers stack: they are fitted top-down, each to the relevance that the
backward pass through the fitted models above it delivers (training-free DTD between
them), and the context of a layer whose upper neighbour is modelled is that model's
output (its :math:`\hat R`, or the split incoming relevance). Explaining runs the same
pass, so every modelled layer shapes the maps.

Modules: :mod:`.layer` (the relevance model as a Keras layer, :func:`r_squared`,
:func:`r_squared_of_totals`), :mod:`.placement` (which layers, their shapes),
:mod:`.steps` (how it replaces a layer's rule in the backward pass), :mod:`.collecting`
(the ``(x, R, context)`` the fit reads, collected in batches; :math:`\hat R` on them),
:mod:`.fitting` (held-out split, seeded training, the R²s), :mod:`.saving` (the ``.npz``
file, read back checked), :mod:`.arguments` (argument checks), :mod:`.analyzer`
(:class:`MinMaxDTD`).
"""

from __future__ import annotations

from .analyzer import MinMaxDTD
from .fitting import FitScores
from .layer import MinMaxRelevance, NotFittedError, r_squared, r_squared_of_totals

__all__ = ["FitScores", "MinMaxDTD", "MinMaxRelevance", "NotFittedError", "r_squared",
           "r_squared_of_totals"]
