"""keras-hub models (issue 14): its leaf layers against independent references, its
composites seen inside with a free sequence length, a Hugging Face BERT folder loaded
offline, and whole backbones explained. Tiny configs; random weights; nothing downloads."""

import json

import keras
import numpy as np
import pytest
import reference as ref

keras_hub = pytest.importorskip("keras_hub")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

import dtd_keras as dk  # noqa: E402
from dtd_keras.engine.graph import expand_layer, walk  # noqa: E402
from dtd_keras.layers.registry import LAYER_RELEVANCE, expands  # noqa: E402
from dtd_keras.rules import Epsilon  # noqa: E402

LRP_0 = Epsilon(0.0)


def lrp0_chain(weights, x, neuron):
    """LRP-0 down a chain of bias-free linear maps ``weights`` (each [in, out]) from
    output ``neuron``: the reference (supplement section 4, ε = 0)."""
    activations = [x]
    for W in weights:
        activations.append(activations[-1] @ W)
    R = np.zeros_like(activations[-1])
    R[neuron] = activations[-1][neuron]
    for W, a in zip(reversed(weights), reversed(activations[:-1])):
        R = ref.epsilon(W, np.zeros(W.shape[1]), a, R, 0.0)
    return R


def relevance_of(model, x, neuron, rule=LRP_0):
    explanation = dk.LRP(model, rule).explain(x, neuron=neuron)
    return np.asarray(explanation.relevance, np.float64), explanation


# --- leaf layers ------------------------------------------------------------------------------

@pytest.mark.parametrize("tied", [True, False])
def test_reverse_embedding_is_a_dense_layer_with_the_transposed_table(tied):
    embedding = keras_hub.layers.ReversibleEmbedding(7, 5, tie_weights=tied)
    x_in = keras.Input((5,))
    model = keras.Model(x_in, embedding(x_in, reverse=True))
    table = np.random.default_rng(0).normal(size=(7, 5)).astype("float32")
    embedding.embeddings.assign(table)
    if not tied:
        embedding.reverse_embeddings.assign(table.T[::-1] * 2)
    kernel = (table.T if tied else table.T[::-1] * 2).astype(np.float64)
    x = np.random.default_rng(1).normal(size=(2, 5)).astype("float32")
    relevance, explanation = relevance_of(model, x, 3)
    for i in range(2):
        np.testing.assert_allclose(relevance[i], lrp0_chain([kernel], x[i], 3), rtol=1e-4,
                                   atol=1e-6)
    np.testing.assert_allclose(relevance.sum(1), explanation.explained, rtol=1e-4)


@pytest.mark.parametrize("layer_class", ["RotaryEmbedding", "LlamaRotaryEmbedding"])
def test_rotary_embedding_is_a_fixed_rotation_explained_by_lrp0(layer_class):
    if layer_class == "RotaryEmbedding":
        rotary = keras_hub.layers.RotaryEmbedding(max_wavelength=100)
    else:
        from keras_hub.src.models.llama.llama_rotary_embedding import LlamaRotaryEmbedding
        rotary = LlamaRotaryEmbedding(max_wavelength=100)
    seq, dim = 3, 4
    x_in = keras.Input((seq, dim))
    dense = keras.layers.Dense(2, use_bias=False)
    model = keras.Model(x_in, dense(keras.layers.Flatten()(rotary(x_in))))
    x = np.random.default_rng(2).normal(size=(2, seq, dim)).astype("float32")
    M = ref.rotary_matrix(seq, dim, 100.0)
    rotated = np.asarray(rotary(x)).reshape(2, -1)
    np.testing.assert_allclose(rotated, x.reshape(2, -1) @ M, atol=1e-5)  # the reference
    relevance, explanation = relevance_of(model, x, 1)
    W = dense.get_weights()[0].astype(np.float64)
    for i in range(2):
        expected = lrp0_chain([M, W], x[i].reshape(-1).astype(np.float64), 1)
        np.testing.assert_allclose(relevance[i].reshape(-1), expected, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(relevance.sum((1, 2)), explanation.explained, rtol=1e-4)


def test_position_embedding_input_gets_only_its_own_share():
    positions = keras_hub.layers.PositionEmbedding(sequence_length=5)
    x_in = keras.Input((4, 3))
    dense = keras.layers.Dense(2, use_bias=False)
    added = keras.layers.Add()([x_in, positions(x_in)])
    model = keras.Model(x_in, dense(keras.layers.Flatten()(added)))
    x = np.random.default_rng(3).normal(size=(2, 4, 3)).astype("float32")
    table = np.asarray(positions.position_embeddings)[:4].reshape(-1).astype(np.float64)
    relevance, _ = relevance_of(model, x, 0)
    W = dense.get_weights()[0].astype(np.float64)
    for i in range(2):
        a = x[i].reshape(-1).astype(np.float64)
        # Add is x + table: the table is a bias to x (ε-rule, ε = 0), its share dropped
        upper = lrp0_chain([W], a + table, 0)
        expected = ref.epsilon(np.eye(a.size), table, a, upper, 0.0)
        np.testing.assert_allclose(relevance[i].reshape(-1), expected, rtol=1e-3, atol=1e-6)


def _rms_layers():
    from keras_hub.src.models.gemma.rms_normalization import RMSNormalization as Gemma
    from keras_hub.src.models.llama.llama_layernorm import LlamaLayerNorm

    return [("hub", keras_hub.layers.RMSNormalization(input_dim=6), 1e-6, 0.0),
            ("llama", LlamaLayerNorm(epsilon=1e-5), 1e-5, 0.0),
            ("gemma", Gemma(epsilon=1e-6), 1e-6, 1.0)]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_rms_norms_hold_the_scale_and_pass_relevance_unchanged(index):
    name, norm, eps, offset = _rms_layers()[index]
    x_in = keras.Input((6,))
    dense = keras.layers.Dense(2, use_bias=False)
    model = keras.Model(x_in, dense(norm(x_in)))
    scale = np.random.default_rng(4).normal(size=6).astype("float32")
    norm.scale.assign(scale)
    x = np.random.default_rng(5).normal(size=(2, 6)).astype("float32")
    x64 = x.astype(np.float64)
    y = x64 / np.sqrt((x64 ** 2).mean(-1, keepdims=True) + eps) * (scale + offset)
    np.testing.assert_allclose(np.asarray(norm(x)), y, rtol=1e-4, atol=1e-5)  # the formula
    relevance, _ = relevance_of(model, x, 1)
    W = dense.get_weights()[0].astype(np.float64)
    for i in range(2):
        np.testing.assert_allclose(relevance[i], lrp0_chain([W], y[i], 1), rtol=1e-4,
                                   atol=1e-6, err_msg=name)


# --- composites seen inside with any sequence length --------------------------------------------

@pytest.fixture(scope="module")
def gpt2():
    return keras_hub.models.GPT2Backbone(vocabulary_size=23, num_layers=2, num_heads=2,
                                         hidden_dim=16, intermediate_dim=32,
                                         max_sequence_length=10)


@pytest.fixture(scope="module")
def vit():
    return keras_hub.models.ViTBackbone(image_shape=(8, 8, 1), patch_size=4, num_layers=2,
                                        num_heads=2, hidden_dim=16, mlp_dim=32)


def _node(model, class_name):
    return next(n for nodes in model._nodes_by_depth.values() for n in nodes
                if type(n.operation).__name__ == class_name)


def test_decoder_is_seen_inside_and_computes_what_the_layer_computes(gpt2):
    expands(gpt2)  # loads the keras-hub integration
    node = _node(gpt2, "TransformerDecoder")
    inner = expand_layer(node)
    assert inner is not None, "TransformerDecoder was not seen inside"
    kinds = {type(n.operation).__name__ for nodes in inner._nodes_by_depth.values()
             for n in nodes}
    assert "ComputedMask" in kinds and "TransformerDecoder" not in kinds
    rng = np.random.default_rng(6)
    for length in (3, 7):  # any sequence length: the mask is computed at run time
        x = rng.normal(size=(2, length, 16)).astype("float32")
        mask = np.ones((2, length), "int32")
        mask[1, -1] = 0
        np.testing.assert_allclose(np.asarray(inner([x, mask])),
                                   np.asarray(node.operation(x, decoder_padding_mask=mask)),
                                   rtol=1e-5, atol=1e-5)
    graph = walk(gpt2, expand=expands)
    masks = [c for c in graph.calls if type(c.operation).__name__ == "ComputedMask"]
    assert len(masks) == 2 and not any(graph.is_float(k) for c in masks for k in c.outputs)


def test_vit_embedding_is_seen_inside_with_its_patch_conv(vit):
    expands(vit)
    node = _node(vit, "ViTPatchingAndEmbedding")
    inner = expand_layer(node)
    assert inner is not None
    x = np.random.default_rng(7).normal(size=(3, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(np.asarray(inner([x])), np.asarray(node.operation(x)),
                               rtol=1e-6, atol=1e-6)
    names = [c.name for c in walk(vit, expand=expands).calls]
    assert "vit_patching_and_embedding/patch_embedding" in names


# --- a Hugging Face BERT folder, loaded offline ---------------------------------------------

HF_CONFIG = {"model_type": "bert", "architectures": ["BertModel"], "vocab_size": 30,
             "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 32, "max_position_embeddings": 12, "type_vocab_size": 2,
             "hidden_act": "gelu", "layer_norm_eps": 1e-12}


def hf_bert_weights(config, seed=0):
    """Random weights under Hugging Face ``BertModel`` parameter names (Linear [out, in])."""
    rng = np.random.default_rng(seed)
    d, f = config["hidden_size"], config["intermediate_size"]

    def normal(*shape, scale=0.3):
        return (rng.normal(size=shape) * scale).astype("float32")

    w = {"embeddings.word_embeddings.weight": normal(config["vocab_size"], d),
         "embeddings.position_embeddings.weight": normal(config["max_position_embeddings"], d),
         "embeddings.token_type_embeddings.weight": normal(config["type_vocab_size"], d),
         "embeddings.LayerNorm.weight": 1 + normal(d, scale=0.1),
         "embeddings.LayerNorm.bias": normal(d, scale=0.1),
         "pooler.dense.weight": normal(d, d), "pooler.dense.bias": normal(d, scale=0.1)}
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for name, shape in [("attention.self.query", (d, d)), ("attention.self.key", (d, d)),
                            ("attention.self.value", (d, d)),
                            ("attention.output.dense", (d, d)),
                            ("intermediate.dense", (f, d)), ("output.dense", (d, f))]:
            w[p + name + ".weight"] = normal(*shape)
            w[p + name + ".bias"] = normal(shape[0], scale=0.1)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[p + name + ".weight"] = 1 + normal(d, scale=0.1)
            w[p + name + ".bias"] = normal(d, scale=0.1)
    return w


@pytest.fixture(scope="module")
def hf_bert(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf_bert")
    weights = hf_bert_weights(HF_CONFIG)
    (folder / "config.json").write_text(json.dumps(HF_CONFIG))
    safetensors_numpy.save_file(weights, str(folder / "model.safetensors"))
    backbone = keras_hub.models.BertBackbone.from_preset(str(folder))
    return backbone, weights


@pytest.fixture(scope="module")
def bert_batch():
    rng = np.random.default_rng(8)
    tokens = rng.integers(0, HF_CONFIG["vocab_size"], size=(2, 6)).astype("int32")
    segments = np.array([[0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 0, 0]], "int32")
    mask = np.ones((2, 6), "int32")
    mask[1, 4:] = 0
    return {"token_ids": tokens, "segment_ids": segments, "padding_mask": mask}


def test_hugging_face_bert_folder_loads_offline_as_the_paper_computes_it(hf_bert, bert_batch):
    backbone, weights = hf_bert
    out = backbone(bert_batch)
    sequence, pooled = ref.bert_forward(weights, HF_CONFIG["num_attention_heads"],
                                        bert_batch["token_ids"], bert_batch["segment_ids"],
                                        bert_batch["padding_mask"])
    np.testing.assert_allclose(np.asarray(out["pooled_output"]), pooled, atol=2e-4)
    kept = bert_batch["padding_mask"].astype(bool)  # padded positions: anything
    np.testing.assert_allclose(np.asarray(out["sequence_output"])[kept], sequence[kept],
                               atol=2e-4)


# --- whole models, end to end -----------------------------------------------------------------

def _missing_behaviours():
    """Stock behaviours the backbones need that this branch does not yet have (other parts
    of issue 14: Embedding, attention, LayerNormalization, EinsumDense)."""
    from keras.src.ops import nn

    needed = {"Embedding": keras.layers.Embedding, "EinsumDense": keras.layers.EinsumDense,
              "LayerNormalization": keras.layers.LayerNormalization,
              "Softmax": keras.layers.Softmax, "DotProductAttention": nn.DotProductAttention}
    from dtd_keras.layers import attention

    have = set(LAYER_RELEVANCE) | set(attention.LAYERS)
    return sorted(name for name, cls in needed.items()
                  if cls not in have or (name == "Softmax" and cls not in attention.LAYERS))


needs_stock = pytest.mark.skipif(bool(_missing_behaviours()),
                                 reason=f"needs issue 14's {_missing_behaviours()} behaviours")


def _analyzer(model, **options):
    if "attn_lrp" in dk.PRESETS:
        return dk.create_analyzer("attn_lrp", model, **options)
    return dk.LRP(model, Epsilon(1e-9), **options)


@needs_stock
def test_hugging_face_bert_explained_with_its_own_forward(hf_bert, bert_batch):
    backbone, _ = hf_bert
    analyzer = _analyzer(backbone, output="pooled_output")
    np.testing.assert_allclose(analyzer.predict(bert_batch),
                               np.asarray(backbone(bert_batch)["pooled_output"]), atol=1e-5)
    explanation = analyzer.explain(bert_batch, neuron=0)
    assert all(np.isfinite(m).all() for m in explanation.maps())


@needs_stock
@pytest.mark.parametrize("which", ["bert_classifier", "vit_classifier", "gpt2", "llama",
                                   "mistral"])
def test_backbones_explained_end_to_end(which, gpt2, vit):
    rng = np.random.default_rng(9)
    if which == "bert_classifier":
        backbone = keras_hub.models.BertBackbone(vocabulary_size=23, num_layers=2,
                                                 num_heads=2, hidden_dim=16,
                                                 intermediate_dim=32, max_sequence_length=8)
        model = keras_hub.models.BertTextClassifier(backbone, num_classes=3,
                                                    preprocessor=None)
        x = {"token_ids": rng.integers(0, 23, (2, 8)).astype("int32"),
             "segment_ids": np.zeros((2, 8), "int32"), "padding_mask": np.ones((2, 8), "int32")}
        expected = np.asarray(model(x))
        output = None
    elif which == "vit_classifier":
        model = keras_hub.models.ViTImageClassifier(vit, num_classes=3, preprocessor=None)
        x = rng.normal(size=(2, 8, 8, 1)).astype("float32")
        expected, output = np.asarray(model(x)), None
    else:
        decoders = {"llama": keras_hub.models.LlamaBackbone,  # RMSNorm, rotary, GQA,
                    "mistral": keras_hub.models.MistralBackbone}  # a gated MLP
        decoder = gpt2 if which == "gpt2" else decoders[which](
            vocabulary_size=23, num_layers=1, num_query_heads=2, num_key_value_heads=1,
            hidden_dim=16, intermediate_dim=32)
        x = {"token_ids": rng.integers(0, 23, (2, 5)).astype("int32"),
             "padding_mask": np.ones((2, 5), "int32")}
        hidden, output = np.asarray(decoder(x))[:, -1], None
        x_in = {k: keras.Input((None,), dtype="int32", name=k) for k in x}
        last = keras.layers.Lambda(lambda t: t[:, -1])(decoder(x_in))
        model = keras.Model(x_in, decoder.token_embedding(last, reverse=True))
        embedding = decoder.token_embedding  # tied (GPT-2) or its own output table (Llama)
        table = (np.asarray(embedding.embeddings).T if embedding.tie_weights
                 else np.asarray(embedding.reverse_embeddings))
        expected = hidden @ table
    analyzer = _analyzer(model, **({} if output is None else {"output": output}))
    np.testing.assert_allclose(analyzer.predict(x), expected, rtol=1e-4, atol=1e-4)
    explanation = analyzer.explain(x)
    assert all(np.isfinite(m).all() for m in explanation.maps())
    if which in ("llama", "mistral"):  # rotary: positions rotate queries and keys, no table
        return
    positions = [k for k in explanation.embeddings if k.endswith("position_embedding")
                 or k.endswith("_positions")]
    assert positions, sorted(explanation.embeddings)  # the position share is reported apart
    assert all(np.abs(explanation.embeddings[k]).sum() > 0 for k in positions)
