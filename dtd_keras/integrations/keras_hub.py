"""keras-hub layers: behaviours for its leaf layers, and symbolic calls for the composites
whose own ``call`` needs concrete shapes.

Loaded only when the user has imported ``keras_hub`` (:mod:`dtd_keras.integrations`).
Every other keras-hub layer (``TransformerEncoder``, ``CachedMultiHeadAttention``,
``LlamaAttention``, ``ViTEncoderBlock``, backbones' MLPs, …) has no behaviour and is
seen inside (:func:`dtd_keras.engine.graph.expand_layer`): its sublayers and
``keras.ops`` calls get the stock behaviours.

Leaf layers (:func:`layers`):

- ``ReversibleEmbedding`` (keras-hub's and Keras's): forward (``reverse=False``) it is an
  ``Embedding`` lookup and gets the ``Embedding`` behaviour; ``reverse=True`` it is a
  Dense layer without bias whose kernel is the transposed table (or the untied
  ``reverse_embeddings``): a decoder's logits, with every linear rule. A
  ``logit_soft_cap`` (``c·tanh(z/c)``) is applied forward; relevance crosses it unchanged,
  like any elementwise non-linearity.
- ``PositionEmbedding``: a learned position table. Its output does not depend on the
  values of its input (only on its shape), so no relevance flows back into that input; the
  relevance arriving at the table is the position share.
- ``RotaryEmbedding``: at fixed positions a fixed rotation of each pair of features,
  ``y = x·cos + rotate_half(x)·sin``: linear in ``x`` without bias. Relevance crosses it
  by LRP-0 (the z-rule, ``R_i = Σ_j x_i w_ij R_j / z_j``), as the gradient through it
  does in LXT; ``layer_rules`` may override.
- RMS normalisations (``keras_hub.layers.RMSNormalization``, Llama's
  ``LlamaLayerNorm``, Gemma's ``RMSNormalization``): ``y = x · g / rms(x)``. With the
  normalising ``1/rms`` held constant (AttnLRP's rule for norms) each output is its own
  input times a constant, so the z-rule passes the relevance through unchanged; that is
  what they do, exactly (no ε).

Symbolic calls (:data:`dtd_keras.engine.graph.SYMBOLIC_CALLS`), because keras-hub
models take sequences of any length (``None``) and these calls compute on the length:

- ``TransformerDecoder`` (GPT-2) and ``LlamaTransformerDecoder``: the self-attention mask
  (causal, merged with the padding mask) becomes one operation computed from the
  tensors at run time; it is boolean/integer, so it carries no relevance.
- ``ViTPatchingAndEmbedding``: seen as its ``patch_embedding`` Conv2D (so
  ``layer_rules={"…/patch_embedding": Gamma(…)}`` reaches it), a reshape, the class token
  prepended (a constant: its slot's relevance stays there, like a bias's) and the
  position table added (a position share like ``PositionEmbedding``'s).
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any

import keras
import tensorflow as tf
from keras import ops

from ..engine.domains import REAL
from ..engine.graph import SYMBOLIC_CALLS, Call, ComputedMask, Graph
from ..layers.base import LayerRelevance, Reindex, refusal
from ..layers.embedding import PositionTable as EmbeddingPositionTable
from ..layers.linear import DenseLinear, Linear
from ..rules import Epsilon

__all__ = ["PositionTable", "ReverseEmbedding", "RMSPassThrough", "RotaryLinear", "ViTPositions",
           "layers"]

Tensor = Any
LRP_0 = Epsilon(0.0)


def _arguments(call: Call, inputs: list[Tensor]) -> tuple[list, dict]:
    """The call's positional and keyword arguments, with ``inputs`` in its tensors' place."""
    args, kwargs = call.arguments(inputs)
    return list(args), dict(kwargs)


# --- embeddings ----------------------------------------------------------------------------

class ReverseEmbedding(DenseLinear):
    """``ReversibleEmbedding(x, reverse=True)``: ``x @ Eᵀ`` (or ``x @ reverse_embeddings``),
    a Dense layer without bias; an optional logit soft cap ``c·tanh(z/c)`` after it."""

    def __init__(self, call: Call, graph: Graph, **options: Any) -> None:
        super().__init__(call, graph, **options)
        self.soft_cap = getattr(self.layer, "logit_soft_cap", None)
        if self.soft_cap is not None and not options.get("attention"):
            self.warning = f"{call.name} (logit soft cap, tanh)"

    def raw_weights(self) -> tuple[Tensor, None]:
        layer = self.layer
        if layer.tie_weights:
            return tf.transpose(tf.convert_to_tensor(layer.embeddings)), None
        return tf.convert_to_tensor(layer.reverse_embeddings), None

    def forward_keeping(self, inputs):
        z = self.preactivation(inputs[0])
        if self.soft_cap is None or self.head:
            return [z], z
        cap = tf.constant(self.soft_cap, z.dtype)
        return [tf.tanh(z / cap) * cap], z


def reversible_embedding(call: Call, graph: Graph, **options: Any) -> LayerRelevance:
    """The behaviour of a ``ReversibleEmbedding`` call: the reverse projection
    (:class:`ReverseEmbedding`), or the stock ``Embedding`` lookup's behaviour."""
    args, kwargs = call.node.arguments.args, call.node.arguments.kwargs
    reverse = kwargs.get("reverse", args[1] if len(args) > 1 else False)
    if reverse:
        return ReverseEmbedding(call, graph, **options)
    from ..layers.embedding import LAYERS as EMBEDDING_LAYERS

    lookup = EMBEDDING_LAYERS.get(keras.layers.Embedding)
    if lookup is None:
        raise refusal(f"layer {call.description} looks tokens up in its table, and this "
                      "version has no Embedding behaviour")
    return lookup(call, graph, **options)


class PositionTable(EmbeddingPositionTable):
    """keras-hub's ``PositionEmbedding``: a learned table read by position; its output
    depends on the input's shape, not its values. The input gets no relevance; what
    reaches the table is the position share (``Explanation.embeddings``)."""

    @property
    def table_length(self) -> int:
        return int(self.layer.sequence_length)


class ViTPositions(EmbeddingPositionTable):
    """A ViT's position embedding (:class:`PositionLookup`): its share is reported."""

    @property
    def table_length(self) -> int:
        return int(self.layer.owner.position_embedding.input_dim)


# --- rotary embedding ------------------------------------------------------------------------

class RotaryLinear(Linear):
    """``RotaryEmbedding``: ``y = x·cos + rotate_half(x)·sin`` at the call's positions,
    written as ``x·K₀ + swap_halves(x)·K₁`` with the kernel ``K = (cos, ±sin)`` (``−sin``
    on the first half): every weight is one ``K`` entry, so each rule sees the rotation's
    true weights. The kernel depends on the sequence length, so it is built from the
    input at each pass. LRP-0 whatever the analyzer (``layer_rules`` overrides)."""

    fixed_rule = LRP_0
    dtd_rule = LRP_0
    mixes_inputs = False  # fixed weights: one rotation per position

    def _axes(self, rank: int) -> tuple[int, int]:
        return self.layer._normalize_axes((None,) * rank)

    def kernel_for(self, inputs: list[Tensor]) -> Tensor:
        """``K`` (stacked ``cos``, signed ``sin``) for the call on ``inputs``."""
        args, kwargs = _arguments(self.call, inputs)
        x = args[0]
        sequence, feature = self._axes(len(x.shape))
        moved = ops.moveaxis(x, (feature, sequence), (-1, 1))
        cos, sin = self.layer._compute_cos_sin_embedding(
            moved, kwargs.get("start_index", 0), kwargs.get("positions"))
        half = moved.shape[-1] // 2
        sign = tf.concat([-tf.ones([half], sin.dtype), tf.ones([half], sin.dtype)], 0)
        cos, sin = tf.broadcast_to(cos, tf.shape(sin)), sin * sign
        return tf.stack([cos, sin], 0)

    def linear(self, a, kernel, bias):
        sequence, feature = self._axes(len(a.shape))
        moved = ops.moveaxis(a, (feature, sequence), (-1, 1))
        first, second = ops.split(moved, 2, axis=-1)
        swapped = ops.concatenate([second, first], axis=-1)
        y = moved * kernel[0] + swapped * kernel[1]
        return ops.moveaxis(y, (-1, 1), (feature, sequence))

    def raw_weights(self):
        raise NotImplementedError("the rotary kernel depends on the input: kernel_for")

    def absorbs(self, rule):
        """No bias: only an ε in the rule's denominator absorbs."""
        return getattr(rule, "epsilon", 0) > 0

    def forward_keeping(self, inputs):
        return self.forward(inputs), None

    def forward(self, inputs):
        return LayerRelevance.forward(self, inputs)

    def domains(self, domains):
        return [REAL]

    def relevance_many(self, inputs, outputs, relevances, rule, copies, kept=None):
        from ..engine.propagation import propagate

        kernel = tf.stop_gradient(self.kernel_for(inputs))
        relevance = propagate(rule, self.apply, kernel, None, inputs[0], relevances[0],
                              self.options.get("domain"), copies=copies)
        return [relevance] + [None for _ in inputs[1:]]


# --- RMS normalisation -----------------------------------------------------------------------

class RMSPassThrough(LayerRelevance):
    """``y = x · g / rms(x)`` with ``1/rms`` held constant: diagonal, so relevance passes
    unchanged (the z-rule on one-input neurons); forward is the layer's own."""

    def domains(self, domains):
        return [REAL for _ in self.call.outputs]


# --- symbolic calls --------------------------------------------------------------------------

@contextlib.contextmanager
def _mask_as_operation(layer: Any):
    """Within: the decoder's attention-mask method (``_compute_self_attention_mask``, or
    Gemma's ``_compute_attention_mask``) records one :class:`ComputedMask`."""
    method = next(m for m in ("_compute_self_attention_mask", "_compute_attention_mask")
                  if hasattr(layer, m))
    operation = ComputedMask(getattr(layer, method), name=f"{layer.name}_attention_mask")
    layer.__dict__[method] = operation
    try:
        yield
    finally:
        del layer.__dict__[method]


@contextlib.contextmanager
def _cacheless_specs(layer: Any):
    """Within: the attention sublayers taking a generation cache (``cache=None``) give their
    output spec like a plain ``MultiHeadAttention`` (whose spec takes no cache)."""
    patched = []
    for inner in layer._flatten_layers(include_self=False):
        if ("cache" not in inspect.signature(inner.call).parameters
                or not hasattr(inner, "_query_dense")):
            continue

        def spec(*args: Any, _inner: Any = inner, cache: Any = None,
                 cache_update_index: Any = None, **kwargs: Any) -> Any:
            if cache is not None:
                raise ValueError("explaining a call with a generation cache is not supported")
            return type(_inner).compute_output_spec(_inner, *args, **kwargs)

        inner.__dict__["compute_output_spec"] = spec
        patched.append(inner)
    try:
        yield
    finally:
        for inner in patched:
            del inner.__dict__["compute_output_spec"]


def _decoder_call(layer: Any, *args: Any, **kwargs: Any) -> Any:
    with _mask_as_operation(layer), _cacheless_specs(layer):
        return layer.call(*args, **kwargs)


class PrependToken(keras.Operation):
    """``concat([class token broadcast over the batch, x], axis=1)``."""

    def __init__(self, layer: Any) -> None:
        super().__init__(name=f"{layer.name}_class_token")
        self.owner = layer

    def call(self, x: Tensor) -> Tensor:
        token = ops.convert_to_tensor(self.owner.class_token)
        token = ops.broadcast_to(ops.cast(token, x.dtype), (ops.shape(x)[0], 1, x.shape[-1]))
        return ops.concatenate([token, x], axis=1)


class PositionLookup(keras.Operation):
    """A ViT's position embedding (its ``Embedding`` read at ``0..n−1``), broadcast to
    the shape of ``x``."""

    def __init__(self, layer: Any) -> None:
        super().__init__(name=f"{layer.name}_positions")
        self.owner = layer

    def call(self, x: Tensor) -> Tensor:
        table = ops.convert_to_tensor(self.owner.position_embedding.embeddings)
        return ops.broadcast_to(ops.cast(table[None], x.dtype), ops.shape(x))


def _vit_embedding_call(layer: Any, inputs: Tensor) -> Tensor:
    """``ViTPatchingAndEmbedding.call`` (0.32), with the batch size left symbolic."""
    x = layer.patch_embedding(inputs)
    if layer.data_format == "channels_first":
        x = ops.transpose(x, axes=(0, 2, 3, 1))
    x = ops.reshape(x, (-1, x.shape[1] * x.shape[2], x.shape[3]))
    if layer.use_class_token:
        x = PrependToken(layer)(x)
    return ops.add(x, PositionLookup(layer)(x))


def layers() -> dict[type, Any]:
    """keras-hub class → relevance behaviour (and, as a side effect, the symbolic calls
    of :data:`~dtd_keras.engine.graph.SYMBOLIC_CALLS`)."""
    import keras_hub

    table: dict[type, Any] = {
        keras_hub.layers.ReversibleEmbedding: reversible_embedding,
        keras_hub.layers.PositionEmbedding: PositionTable,
        keras_hub.layers.RotaryEmbedding: RotaryLinear,
        keras_hub.layers.RMSNormalization: RMSPassThrough,
        PrependToken: Reindex,
        PositionLookup: ViTPositions,
    }
    if hasattr(keras.layers, "ReversibleEmbedding"):
        table.setdefault(keras.layers.ReversibleEmbedding, reversible_embedding)
    SYMBOLIC_CALLS[keras_hub.layers.TransformerDecoder] = _decoder_call
    with contextlib.suppress(ImportError):
        from keras_hub.src.models.llama.llama_decoder import LlamaTransformerDecoder
        from keras_hub.src.models.llama.llama_layernorm import LlamaLayerNorm
        from keras_hub.src.models.llama.llama_rotary_embedding import LlamaRotaryEmbedding

        table[LlamaLayerNorm] = RMSPassThrough
        table[LlamaRotaryEmbedding] = RotaryLinear
        SYMBOLIC_CALLS[LlamaTransformerDecoder] = _decoder_call
    with contextlib.suppress(ImportError):
        from keras_hub.src.models.mistral.mistral_layer_norm import MistralLayerNormalization
        from keras_hub.src.models.mistral.mistral_transformer_decoder import (
            MistralTransformerDecoder,
        )

        table[MistralLayerNormalization] = RMSPassThrough
        SYMBOLIC_CALLS[MistralTransformerDecoder] = _decoder_call
    with contextlib.suppress(ImportError):
        from keras_hub.src.models.gemma.gemma_decoder_block import GemmaDecoderBlock
        from keras_hub.src.models.gemma.rms_normalization import RMSNormalization

        table[RMSNormalization] = RMSPassThrough
        SYMBOLIC_CALLS[GemmaDecoderBlock] = _decoder_call
    with contextlib.suppress(ImportError):
        from keras_hub.src.models.vit.vit_layers import ViTPatchingAndEmbedding

        SYMBOLIC_CALLS[ViTPatchingAndEmbedding] = _vit_embedding_call
    return table
