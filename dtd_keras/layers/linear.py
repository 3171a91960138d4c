"""Linear layers: ``activation(f(x; W) + b)``. The rule does the relevance.

Each class here only says how to compute its linear map ``f(a; kernel) + bias`` with
*any* weights (:meth:`Linear.linear`) and which live variables are its weights
(:meth:`Linear.weights`); every rule in :mod:`dtd_keras.rules` then works for it.
A fused activation is applied forward; relevance crosses it unchanged (ReLU exactly,
other activations with a warning, except under the attention analyzers, whose identity
rule for elementwise non-linearities this is).

BatchNormalization that directly follows a linear layer is folded into it
(:mod:`dtd_keras.engine.canonizers`): ``W' = W · γ/√(σ²+ε)`` per output channel and
``b' = (b − μ) · γ/√(σ²+ε) + β``, computed from the live variables at every call.
A BatchNormalization on its own is the per-channel affine map ``x · s + t``: each output
has one input. Under DTD it uses the w²-rule, which on a one-input neuron passes the
relevance unchanged (``w²/w² = 1``; the bias is left out, as everywhere in DTD), so DTD
conserves through it. Under LRP it uses the ε-rule (bias in the denominator, as LRP
does) unless ``layer_rules`` says otherwise.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from ..engine.domains import POSITIVE, REAL
from ..engine.graph import Call, Graph
from ..engine.propagation import propagate
from ..errors import UnsupportedLayerError
from ..rules import W2, Epsilon, ZFlat
from .activations import HEAD_ACTIVATIONS, NONNEGATIVE, activation_name, check_activation
from .base import LayerRelevance, map_domains

__all__ = ["AffineBatchNorm", "AveragePool", "ConvLinear", "ConvTransposeLinear",
           "DenseLinear", "DepthwiseLinear", "EinsumDenseLinear", "Linear", "SeparableLinear",
           "batchnorm_affine", "bias_absorbs"]

Tensor = Any
BATCHNORM_EPSILON_RULE = Epsilon(1e-6)


def bias_absorbs(rule: Any) -> bool:
    """Whether ``rule`` puts a bias in its denominator (ε, αβ, γ: read from its own
    terms), so that a layer's bias absorbs part of the relevance, or stabilises it with
    ε > 0 (which absorbs the share ε/(z ± ε)). The DTD rules leave the bias out."""
    if rule is None:
        return False
    if getattr(rule, "epsilon", 0) > 0:
        return True
    return any(term.bias is not None for group in rule.groups(REAL) for term in group.terms)


def batchnorm_affine(bn: Any) -> tuple[Tensor, Tensor]:
    """``(scale, shift)`` with ``bn(x) = x · scale + shift`` at inference (live variables)."""
    variance = tf.convert_to_tensor(bn.moving_variance)
    scale = tf.math.rsqrt(variance + bn.epsilon)
    if bn.scale:
        scale = scale * tf.convert_to_tensor(bn.gamma)
    shift = -tf.convert_to_tensor(bn.moving_mean) * scale
    if bn.center:
        shift = shift + tf.convert_to_tensor(bn.beta)
    return scale, shift


class Linear(LayerRelevance):
    """A layer computing ``activation(f(x; W) + b)``; its rule does the relevance."""

    needs_rule = True
    mixes_inputs = True  # learned weights: a hidden one on ℝ gets DTD's hidden_real_rule
    row_separable = False  # True: f sums x's last axis against kernel rows (Dense)

    def __init__(self, call: Call, graph: Graph, **options: Any) -> None:
        super().__init__(call, graph, **options)
        self.head = bool(options.get("head", False))
        self.activation = activation_name(getattr(self.layer, "activation", None))
        check_activation(call, self.activation, HEAD_ACTIVATIONS if self.head else ())
        if self.activation not in ("relu", "linear") and not options.get("attention") and not (
                self.head and self.activation in HEAD_ACTIVATIONS):
            self.warning = f"{call.name} ({self.activation})"
        if getattr(self.layer, "quantization_mode", None):
            raise UnsupportedLayerError(
                f"layer {call.description} is quantized ({self.layer.quantization_mode}); "
                "explain the float model")
        self.folded = call.folded  # a BatchNormalization folded into this layer, or None
        self.padding = call.padding  # a ZeroPadding layer folded in front of it, or None

    def absorbs(self, rule: Any) -> bool:
        """Whether ``rule`` lets this layer's bias (or ε) absorb relevance here."""
        if not bias_absorbs(rule):
            return False
        has_bias = self.raw_weights()[1] is not None or self.folded is not None
        return has_bias or getattr(rule, "epsilon", 0) > 0

    # What a subclass provides -------------------------------------------------
    def linear(self, a: Tensor, kernel: Tensor, bias: Tensor | None) -> Tensor:
        """``f(a; kernel) + bias``: the layer's linear map with any weights."""
        raise NotImplementedError

    def raw_weights(self) -> tuple[Tensor, Tensor | None]:
        """The layer's own (kernel, bias), as live tensors."""
        bias = self.layer.bias if getattr(self.layer, "use_bias", True) else None
        return (tf.convert_to_tensor(self.layer.kernel),
                None if bias is None else tf.convert_to_tensor(bias))

    def scale_kernel(self, kernel: Tensor, scale: Tensor) -> Tensor:
        """Multiply each output channel's weights by ``scale`` (for BatchNorm folding)."""
        return kernel * scale

    def stack_axes(self) -> tuple[int, int] | None:
        """``(input axis, kernel axis)`` that :meth:`linear` sums over, if concatenating
        inputs and kernels along them adds their maps (lets a rule's several terms share
        one pass); None where it does not (depthwise, grouped, pooling)."""
        return None

    # Shared machinery ------------------------------------------------------------
    def weights(self) -> tuple[Tensor, Tensor | None]:
        """Live (kernel, bias), with a folded BatchNormalization applied."""
        kernel, bias = self.raw_weights()
        if self.folded is None:
            return kernel, bias
        scale, shift = batchnorm_affine(self.folded)
        bias = shift if bias is None else bias * scale + shift
        return self.scale_kernel(kernel, scale), bias

    def apply(self, a: Tensor, kernel: Tensor, bias: Tensor | None) -> Tensor:
        """:meth:`linear` after a folded ZeroPadding, if any (what the rules see)."""
        if self.padding is not None:
            a = self.padding(a)
        return self.linear(a, kernel, bias)

    def preactivation(self, a: Tensor) -> Tensor:
        """The forward pass before the activation (overridable for a faster route)."""
        kernel, bias = self.weights()
        return self.apply(a, kernel, bias)

    def forward(self, inputs):
        return self.forward_keeping(inputs)[0]

    def forward_keeping(self, inputs):
        """The outputs, and the pre-activation ``z = f(x; W) + b`` kept for the rules
        whose denominator it is (ε, LRP-0): they need no second forward pass."""
        z = self.preactivation(inputs[0])
        if self.activation == "linear" or (self.head and self.activation in HEAD_ACTIVATIONS):
            return [z], z  # the head's softmax/sigmoid is stripped: we explain the logit
        if self.activation == "relu":
            return [tf.nn.relu(z)], z
        return [self.layer.activation(z)], z

    def domains(self, domains):
        return [POSITIVE if self.activation in NONNEGATIVE else REAL]

    def relevance(self, inputs, outputs, relevances, rule=None, kept=None):
        return self.relevance_many(inputs, outputs, relevances, rule, None, kept)

    def relevance_many(self, inputs, outputs, relevances, rule, copies, kept=None):
        """The rule's denominators once per sample, the backward pass per copy;
        ``kept``: the pre-activation :meth:`forward_keeping` kept."""
        kernel, bias = self.weights()
        domain = self.options.get("domain")
        return [propagate(rule, self.apply, kernel, bias, inputs[0], relevances[0], domain,
                          row_separable=self.row_separable, copies=copies,
                          preactivation=kept, stack=self.stack_axes())]


def _bias_shape(layer: Any) -> tuple[int, ...]:
    if layer.data_format == "channels_last":
        return (1,) * (layer.rank + 1) + (-1,)
    return (1, -1) + (1,) * layer.rank


class DenseLinear(Linear):
    """Dense: ``a @ W + b`` over the last axis."""

    row_separable = True

    def linear(self, a, kernel, bias):
        z = keras.ops.matmul(a, kernel)
        return z if bias is None else z + bias

    def stack_axes(self):
        return (-1, 0)


def _channel_axis(layer: Any) -> int:
    return -1 if layer.data_format == "channels_last" else 1


class ConvLinear(Linear):
    """Conv1D/2D/3D: any strides, padding (incl. causal), dilation, groups, data format."""

    def stack_axes(self):
        if getattr(self.layer, "groups", 1) != 1:
            return None
        return (_channel_axis(self.layer), -2)

    def linear(self, a, kernel, bias):
        layer = self.layer
        if layer.padding == "causal":
            a = keras.ops.pad(a, layer._compute_causal_padding())
            z = keras.ops.conv(a, kernel, strides=list(layer.strides), padding="valid",
                               dilation_rate=layer.dilation_rate, data_format=layer.data_format)
        else:
            z = layer.convolution_op(a, kernel)
        return z if bias is None else z + keras.ops.reshape(bias, _bias_shape(layer))


class DepthwiseLinear(Linear):
    """DepthwiseConv1D/2D: kernel ``(*window, in_channels, multiplier)``."""

    def linear(self, a, kernel, bias):
        layer = self.layer
        z = keras.ops.depthwise_conv(a, kernel, strides=layer.strides, padding=layer.padding,
                                     dilation_rate=layer.dilation_rate,
                                     data_format=layer.data_format)
        return z if bias is None else z + keras.ops.reshape(bias, _bias_shape(layer))

    def scale_kernel(self, kernel, scale):
        return kernel * tf.reshape(scale, tf.shape(kernel)[-2:])


class SeparableLinear(ConvLinear):
    """SeparableConv1D/2D as the one linear map it is: a conv with the effective kernel
    ``K[..., c, o] = Σ_m D[..., c, m] · P[c·M + m, o]``, so rules see its true weights."""

    def raw_weights(self):
        layer = self.layer
        depthwise = tf.convert_to_tensor(layer.depthwise_kernel)   # (*k, C, M)
        pointwise = tf.convert_to_tensor(layer.pointwise_kernel)   # (1.., C*M, O)
        channels, multiplier = depthwise.shape[-2], depthwise.shape[-1]
        pointwise = tf.reshape(pointwise, (channels, multiplier, -1))
        kernel = tf.einsum("...cm,cmo->...co", depthwise, pointwise)
        bias = tf.convert_to_tensor(layer.bias) if layer.use_bias else None
        return kernel, bias

    def linear(self, a, kernel, bias):
        layer = self.layer
        z = keras.ops.conv(a, kernel, strides=list(layer.strides), padding=layer.padding,
                           dilation_rate=layer.dilation_rate, data_format=layer.data_format)
        return z if bias is None else z + keras.ops.reshape(bias, _bias_shape(layer))

    def preactivation(self, a):
        """Forward in the layer's own factorised form (depthwise, then pointwise): the
        effective kernel is only built for the relevance pass."""
        layer = self.layer
        pointwise = tf.convert_to_tensor(layer.pointwise_kernel)
        bias = tf.convert_to_tensor(layer.bias) if layer.use_bias else None
        if self.folded is not None:
            scale, shift = batchnorm_affine(self.folded)
            pointwise = pointwise * scale
            bias = shift if bias is None else bias * scale + shift
        if self.padding is not None:
            a = self.padding(a)
        z = keras.ops.separable_conv(a, tf.convert_to_tensor(layer.depthwise_kernel), pointwise,
                                     strides=layer.strides, padding=layer.padding,
                                     dilation_rate=layer.dilation_rate,
                                     data_format=layer.data_format)
        return z if bias is None else z + keras.ops.reshape(bias, _bias_shape(layer))


class ConvTransposeLinear(Linear):
    """Conv1D/2D/3DTranspose: kernel ``(*window, out_channels, in_channels)``."""

    def linear(self, a, kernel, bias):
        layer = self.layer
        z = keras.ops.conv_transpose(a, kernel, strides=list(layer.strides),
                                     padding=layer.padding, output_padding=layer.output_padding,
                                     dilation_rate=layer.dilation_rate,
                                     data_format=layer.data_format)
        return z if bias is None else z + keras.ops.reshape(bias, _bias_shape(layer))

    def scale_kernel(self, kernel, scale):
        return kernel * tf.reshape(scale, (-1, 1))

    def stack_axes(self):
        return (_channel_axis(self.layer), -1)


class AveragePool(Linear):
    """Average pooling (windowed or global) as a linear layer with positive weights.

    The "kernel" is a scalar 1 scaling the layer's own output, so ``ρ(W)`` acts on the
    window weights ``1/n``: z⁺ and z coincide, w² and flat split evenly. DTD picks the
    rule by input domain. LRP splits it with the z-rule whatever its rule (like zennit's
    ``Norm``): a pooling layer has no bias to absorb relevance, ε would lose some (half
    of it through a global pool of values near ε) and αβ would scale it by α; a window
    whose inputs are all zero splits evenly (:class:`~dtd_keras.rules.ZFlat`), so what
    input-independent rules above (w², flat) send there is not lost.
    ``layer_rules`` and ``input_rule`` still override.
    """

    keeps_input_space = True
    mixes_inputs = False  # fixed weights 1/n: on ℝ, DTD's w² splits each window evenly

    def adapt_rule(self, rule):
        return ZFlat()

    def raw_weights(self):
        return tf.constant(1.0), None

    def linear(self, a, kernel, bias):
        return kernel * self.layer(a)

    def domains(self, domains):
        return map_domains(self, domains)


class AffineBatchNorm(Linear):
    """A BatchNormalization that follows no linear layer: ``x · s + t`` per channel."""

    fixed_rule = BATCHNORM_EPSILON_RULE
    dtd_rule = W2()
    mixes_inputs = False  # one input per output

    def raw_weights(self):
        return batchnorm_affine(self.layer)

    def _shape(self, a: Tensor) -> list[int]:
        axis = self.layer.axis % len(a.shape)
        return [-1 if i == axis else 1 for i in range(len(a.shape))]

    def linear(self, a, kernel, bias):
        z = a * tf.reshape(kernel, self._shape(a))
        return z if bias is None else z + tf.reshape(bias, self._shape(a))


def _einsum_parts(equation: str) -> tuple[str, str, str]:
    """``"ab,bc->ac"`` → ``("ab", "bc", "ac")`` (spaces removed)."""
    equation = equation.replace(" ", "")
    inputs, _, output = equation.partition("->")
    first, _, second = inputs.partition(",")
    return first, second, output


def _axis_of(spec: str, letter: str) -> int:
    """The axis of ``letter`` in an einsum operand ``spec`` (negative after an ellipsis)."""
    head, ellipsis, tail = spec.partition("...")
    if ellipsis and letter in tail:
        return tail.index(letter) - len(tail)
    return head.index(letter)


class EinsumDenseLinear(Linear):
    """EinsumDense: ``einsum(equation, a, W) + b`` (``b`` shaped by ``bias_axes``,
    broadcast against the output), any equation Keras accepts (LoRA included: the live
    ``kernel`` is the merged one)."""

    def raw_weights(self):
        layer = self.layer
        bias = getattr(layer, "bias", None)
        return (tf.convert_to_tensor(layer.kernel),
                None if bias is None else tf.convert_to_tensor(bias))

    def linear(self, a, kernel, bias):
        z = keras.ops.einsum(self.layer.equation, a, kernel)
        return z if bias is None else z + bias

    def stack_axes(self):
        """The one summed axis, if exactly one letter is summed (``"abc,cd->abd"``)."""
        first, second, output = _einsum_parts(self.layer.equation)
        summed = (set(first) & set(second)) - set(output) - {"."}
        if len(summed) != 1:
            return None
        (letter,) = summed
        return (_axis_of(first, letter), _axis_of(second, letter))
