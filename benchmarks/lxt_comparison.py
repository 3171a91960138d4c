"""AttnLRP and CP-LRP in dtd_keras against LXT, the authors' PyTorch library, on the same weights.

Two cases, each explained by ``dk.create_analyzer("attn_lrp" | "cp_lrp", model)`` in Keras and by
LXT's efficient mode (one modified backward pass, relevance = input × modified gradient) in torch:

* ``encoder``: a hand-built pre-LN encoder (token and position ``Embedding``,
  ``MultiHeadAttention``, ``LayerNormalization``, GELU MLP, residual adds, mean pool, a linear
  classifier). The torch twin is built here; its weights are copied into the Keras model. LXT is
  applied the way it patches the models it supports: a patch map from LXT's own patch functions
  (``layer_norm_forward`` for ``nn.LayerNorm``, ``non_linear_forward`` for ``nn.GELU``,
  ``patch_attention`` / ``patch_cp_attention`` for this module's ``eager_attention_forward``).
* ``bert``: a Hugging Face ``BertModel`` (random weights, tanh-approximate GELU, the one keras-hub's
  converter uses) saved with ``save_pretrained`` and loaded offline by keras-hub's
  ``BertBackbone.from_preset(folder)``; a linear head on the pooled output, the same in both. LXT:
  its own BERT map (``lxt.efficient.monkey_patch(modeling_bert)``) for AttnLRP. LXT ships no CP-LRP
  map for BERT; the one used here is built like LXT's CP maps for GPT-2/Llama (LayerNorm and
  elementwise activations as in AttnLRP, LXT's ``cp_wrap_attention_forward`` around the attention
  kernel: no gradient into query and key).

The token relevance compared is the token embedding's share, ``Σ_features e ⊙ ∂̃f/∂e`` with ``e`` the
token embedding (LXT's recipe: explain from ``inputs_embeds``). Torch runs in float64, Keras in
float32. Per sample: ``max |R_keras − R_LXT| / max |R_LXT|`` over the tokens; target ≤ 1e-3.

Needs a separate virtualenv with torch, LXT, transformers and keras-hub (see
``docs/transformers.md``, "Against LXT")::

    PYTHONPATH=. /work/venv-lxt/bin/python benchmarks/lxt_comparison.py [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

TARGET = 1e-3
METHODS = ("attn_lrp", "cp_lrp")
ENCODER = {"vocab": 50, "seq": 12, "dim": 32, "heads": 4, "layers": 2, "mlp": 64, "classes": 3,
           "eps": 1e-5, "batch": 4}
BERT = {"vocab": 100, "seq": 16, "dim": 32, "heads": 4, "layers": 2, "mlp": 64, "classes": 3,
        "batch": 4}


# ----------------------------------------------------------------------------- torch + LXT
def import_lxt() -> Any:
    """Import ``lxt.efficient``. LXT imports ``torchvision.models.vision_transformer`` (for its
    ViT map, which patches ``torch.nn`` classes through that module's ``nn``); the PyPI torchvision
    does not load against a CPU torch, so a placeholder package goes on ``sys.path`` (temp dir)."""
    try:
        import torchvision.models.vision_transformer  # noqa: F401
    except Exception:  # absent, or a build that does not load against this torch
        for name in [m for m in sys.modules if m.split(".")[0] == "torchvision"]:
            del sys.modules[name]
        root = Path(tempfile.mkdtemp(prefix="torchvision-placeholder-"))
        models = root / "torchvision" / "models"
        models.mkdir(parents=True)
        (root / "torchvision" / "__init__.py").write_text('"""Placeholder for LXT."""\n')
        (models / "__init__.py").write_text("")
        (models / "vision_transformer.py").write_text("from torch import nn  # noqa: F401\n")
        sys.path.insert(0, str(root))
    import lxt.efficient

    return lxt.efficient


@contextlib.contextmanager
def patched(patch_map: dict) -> Any:
    """Apply an LXT patch map (``lxt.efficient.monkey_patch``) and undo it on exit, so that one
    process can run the plain gradient, AttnLRP and CP-LRP in turn."""
    saved = [(target, dict(vars(target))) for target in patch_map]
    lxt = import_lxt()
    try:
        lxt.monkey_patch(sys.modules[__name__], patch_map)
        yield
    finally:
        for target, attributes in saved:
            for name in set(vars(target)) - set(attributes):
                delattr(target, name)
            for name, value in attributes.items():
                if vars(target).get(name, None) is not value and not name.startswith("__"):
                    setattr(target, name, value)


def eager_attention_forward(module: Any, query: Any, key: Any, value: Any, scale: float) -> Any:
    """softmax(q·kᵀ·scale)·v, [batch, heads, seq, head_dim]: the kernel LXT's attention patches wrap
    (found through this module's globals at call time, as in Hugging Face's models)."""
    import torch

    weights = torch.softmax(torch.matmul(query, key.transpose(-1, -2)) * scale, dim=-1)
    return torch.matmul(weights, value)


ALL_ATTENTION_FUNCTIONS: dict = {}  # LXT's patch_attention also wraps the entries of this table


def encoder_patch_maps() -> dict[str, dict]:
    """LXT patch maps for the hand-built torch encoder, from LXT's own patch functions."""
    from lxt.efficient.patches import (
        layer_norm_forward,
        non_linear_forward,
        patch_attention,
        patch_cp_attention,
        patch_method,
    )
    from torch import nn

    common = {nn.LayerNorm: partial(patch_method, layer_norm_forward),
              nn.GELU: partial(patch_method, non_linear_forward, keep_original=True)}
    here = sys.modules[__name__]
    return {"attn_lrp": {**common, here: patch_attention},
            "cp_lrp": {**common, here: patch_cp_attention}}


def torch_encoder(cfg: dict, seed: int = 0) -> Any:
    """The hand-built pre-LN encoder in torch (float64), default initialisation from ``seed``."""
    import torch
    from torch import nn

    dim, heads = cfg["dim"], cfg["heads"]

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(dim, cfg["eps"]), nn.LayerNorm(dim, cfg["eps"])
            self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
            self.fc1, self.fc2 = nn.Linear(dim, cfg["mlp"]), nn.Linear(cfg["mlp"], dim)
            self.act = nn.GELU()

        def forward(self, x: Any) -> Any:
            h = self.ln1(x)
            b, n, _ = h.shape

            def split(t: Any) -> Any:
                return t.view(b, n, heads, dim // heads).transpose(1, 2)

            a = eager_attention_forward(self, split(self.q(h)), split(self.k(h)), split(self.v(h)),
                                        (dim // heads) ** -0.5)
            x = x + self.o(a.transpose(1, 2).reshape(b, n, dim))
            return x + self.fc2(self.act(self.fc1(self.ln2(x))))

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tok, self.pos = nn.Embedding(cfg["vocab"], dim), nn.Embedding(cfg["seq"], dim)
            self.blocks = nn.ModuleList(Block() for _ in range(cfg["layers"]))
            self.ln, self.head = nn.LayerNorm(dim, cfg["eps"]), nn.Linear(dim, cfg["classes"])

        def embed(self, ids: Any) -> Any:
            return self.tok(ids)

        def forward(self, embeddings: Any) -> Any:
            x = embeddings + self.pos.weight[: embeddings.shape[1]]
            for block in self.blocks:
                x = block(x)
            return self.head(self.ln(x).mean(dim=1))

    torch.manual_seed(seed)
    model = Encoder().double().eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 1 and p.shape[0] == dim:
                p.add_(0.1 * torch.randn_like(p))  # non-trivial LayerNorm β, biases
        model.head.weight.mul_(4.0)  # logits of order 1
    return model


def lxt_relevance(model: Any, ids: np.ndarray, classes: np.ndarray, **kwargs: Any
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Token relevance ``Σ_features e ⊙ grad`` of the chosen logits (under whatever patch is
    active) and the logits, for a model with ``embed(ids)`` and ``model(embeddings, **kwargs)``."""
    import torch

    embeddings = model.embed(torch.as_tensor(ids)).detach().requires_grad_(True)
    logits = model(embeddings, **kwargs)
    chosen = logits.gather(1, torch.as_tensor(classes)[:, None])
    chosen.sum().backward()
    relevance = (embeddings * embeddings.grad).sum(-1)
    return relevance.detach().numpy(), logits.detach().numpy()


# ----------------------------------------------------------------------------- Keras side
def keras_encoder(cfg: dict) -> Any:
    """The hand-built encoder in Keras: the same architecture as :func:`torch_encoder`, position
    ids from ``ops.cumsum`` (an integer branch: no relevance)."""
    import keras
    from keras import layers, ops

    dim, heads = cfg["dim"], cfg["heads"]
    ids = keras.Input((cfg["seq"],), dtype="int32", name="token_ids")
    positions = ops.cumsum(ops.ones_like(ids), axis=1) - 1
    x = layers.Add(name="embeddings")([
        layers.Embedding(cfg["vocab"], dim, name="token_embedding")(ids),
        layers.Embedding(cfg["seq"], dim, name="position_embedding")(positions)])
    for i in range(cfg["layers"]):
        h = layers.LayerNormalization(epsilon=cfg["eps"], name=f"ln1_{i}")(x)
        h = layers.MultiHeadAttention(heads, dim // heads, name=f"mha_{i}")(h, h)
        x = layers.Add(name=f"res1_{i}")([x, h])
        h = layers.LayerNormalization(epsilon=cfg["eps"], name=f"ln2_{i}")(x)
        h = layers.Dense(cfg["mlp"], activation="gelu", name=f"fc1_{i}")(h)
        x = layers.Add(name=f"res2_{i}")([x, layers.Dense(dim, name=f"fc2_{i}")(h)])
    x = layers.LayerNormalization(epsilon=cfg["eps"], name="ln")(x)
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(ids, layers.Dense(cfg["classes"], name="head")(x), name="encoder")


def encoder_weights(torch_model: Any, cfg: dict) -> dict[str, list[np.ndarray]]:
    """Keras layer name → weights, from the torch encoder's parameters."""
    p = {k: v.detach().numpy().astype(np.float32) for k, v in torch_model.state_dict().items()}
    dim, heads = cfg["dim"], cfg["heads"]
    out = {"token_embedding": [p["tok.weight"]], "position_embedding": [p["pos.weight"]],
           "ln": [p["ln.weight"], p["ln.bias"]], "head": [p["head.weight"].T, p["head.bias"]]}
    for i in range(cfg["layers"]):
        b = f"blocks.{i}."
        mha = []
        for name in "qkv":
            mha += [p[b + name + ".weight"].T.reshape(dim, heads, dim // heads),
                    p[b + name + ".bias"].reshape(heads, dim // heads)]
        mha += [p[b + "o.weight"].T.reshape(heads, dim // heads, dim), p[b + "o.bias"]]
        out[f"mha_{i}"] = mha
        for n in (1, 2):
            out[f"ln{n}_{i}"] = [p[f"{b}ln{n}.weight"], p[f"{b}ln{n}.bias"]]
            out[f"fc{n}_{i}"] = [p[f"{b}fc{n}.weight"].T, p[f"{b}fc{n}.bias"]]
    return out


def set_weights(model: Any, weights: dict[str, list[np.ndarray]]) -> None:
    for name, values in weights.items():
        model.get_layer(name).set_weights(values)


def keras_relevance(model: Any, method: str, inputs: list[np.ndarray], classes: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """dtd_keras's token relevance ``[batch, seq]`` (of the input named ``token_ids``) and the
    explained logits."""
    import dtd_keras as dk

    explanation = dk.create_analyzer(method, model).explain(
        inputs if len(inputs) > 1 else inputs[0], neuron=classes)
    relevance = explanation.relevance
    if isinstance(relevance, list):
        names = [t.name.split(":")[0] for t in model.inputs]
        relevance = relevance[names.index("token_ids")]
    return np.asarray(relevance, np.float64), np.asarray(explanation.explained, np.float64)


# ----------------------------------------------------------------------------- the cases
def compare(name: str, method: str, ours: tuple, theirs: tuple) -> dict[str, Any]:
    (r_k, logit_k), (r_t, logit_t) = ours, theirs
    per_sample = np.abs(r_k - r_t).max(axis=1) / np.abs(r_t).max(axis=1)
    return {"case": name, "method": method, "samples": len(r_t),
            "max_rel_diff": float(per_sample.max()), "mean_rel_diff": float(per_sample.mean()),
            "logit_diff": float(np.abs(logit_k - logit_t).max()),
            "sum_R_over_logit": float(np.median(r_t.sum(axis=1) / logit_t)),
            "ok": bool(per_sample.max() <= TARGET)}


def run_encoder(cfg: dict = ENCODER, seed: int = 0) -> list[dict]:
    """The hand-built encoder, both methods."""
    import torch

    tmodel = torch_encoder(cfg, seed)
    kmodel = keras_encoder(cfg)
    set_weights(kmodel, encoder_weights(tmodel, cfg))
    ids = np.random.default_rng(seed).integers(0, cfg["vocab"], (cfg["batch"], cfg["seq"]))
    with torch.no_grad():
        logits = tmodel(tmodel.embed(torch.as_tensor(ids))).numpy()
    classes = logits.argmax(1)
    forward = np.abs(np.asarray(kmodel(ids.astype(np.int32))) - logits).max()
    assert forward < 1e-4, f"Keras and torch encoders disagree: max |Δ logits| = {forward:.2e}"
    rows = []
    for method, patch_map in encoder_patch_maps().items():
        with patched(patch_map):
            theirs = lxt_relevance(tmodel, ids, classes)
        theirs = (theirs[0], theirs[1][np.arange(len(classes)), classes])
        ours = keras_relevance(kmodel, method, [ids.astype(np.int32)], classes)
        rows.append(compare("hand-built encoder", method, ours, theirs))
    return rows


def bert_folder(cfg: dict, seed: int = 0) -> str:
    """A Hugging Face BERT folder (config.json + model.safetensors) with random weights."""
    import torch
    import transformers

    config = transformers.BertConfig(
        vocab_size=cfg["vocab"], hidden_size=cfg["dim"], num_hidden_layers=cfg["layers"],
        num_attention_heads=cfg["heads"], intermediate_size=cfg["mlp"],
        max_position_embeddings=cfg["seq"] * 2, hidden_act="gelu_pytorch_tanh",
        initializer_range=0.1)  # BERT's 0.02 leaves attention nearly uniform at this width
    torch.manual_seed(seed)
    folder = tempfile.mkdtemp(prefix="hf-bert-")
    transformers.BertModel(config).save_pretrained(folder)
    return folder


class TorchBert:
    """An HF ``BertModel`` with a linear head on the pooled output, in float64 (callable as
    ``model(embeddings)`` for :func:`lxt_relevance`)."""

    def __init__(self, folder: str, head: tuple[np.ndarray, np.ndarray], segments: np.ndarray,
                 mask: np.ndarray) -> None:
        import torch
        from transformers.models.bert import modeling_bert  # LXT's map replaces its classes

        self.bert = modeling_bert.BertModel.from_pretrained(folder, torch_dtype=torch.float64)
        self.bert.eval()
        self.kernel, self.bias = (torch.as_tensor(h, dtype=torch.float64) for h in head)
        self.segments, self.mask = torch.as_tensor(segments), torch.as_tensor(mask)

    def embed(self, ids: Any) -> Any:
        return self.bert.embeddings.word_embeddings(ids)

    def __call__(self, embeddings: Any) -> Any:
        out = self.bert(inputs_embeds=embeddings, token_type_ids=self.segments,
                        attention_mask=self.mask)
        return out.pooler_output @ self.kernel + self.bias


def bert_patch_maps() -> dict[str, Any]:
    """LXT's BERT map for AttnLRP; for CP-LRP one built like LXT's GPT-2/Llama CP maps."""
    import torch
    import transformers.activations as acts
    from lxt.efficient.models import bert as lxt_bert
    from lxt.efficient.patches import (
        cp_wrap_attention_forward,
        dropout_forward,
        layer_norm_forward,
        non_linear_forward,
        patch_method,
    )

    functional = torch.nn.functional
    plain_sdpa = functional.scaled_dot_product_attention
    cp_kernel = cp_wrap_attention_forward(lambda _m, q, k, v, **kw: plain_sdpa(q, k, v, **kw))

    def cp_attention(target: Any) -> bool:  # LXT's CP wrapper around the SDPA kernel BERT calls
        target.scaled_dot_product_attention = lambda q, k, v, **kw: cp_kernel(None, q, k, v, **kw)
        return True

    cp = {torch.nn.LayerNorm: partial(patch_method, layer_norm_forward),
          torch.nn.Dropout: partial(patch_method, dropout_forward),
          acts.PytorchGELUTanh: partial(patch_method, non_linear_forward, keep_original=True),
          torch.nn.Tanh: partial(patch_method, non_linear_forward, keep_original=True),
          functional: cp_attention}
    return {"attn_lrp": lxt_bert.attnLRP, "cp_lrp": cp}


def bert_classifier(backbone: Any, classes: int) -> Any:
    """A keras-hub BERT backbone with a linear head on its pooled output; inputs in the order
    token ids, segment ids, padding mask."""
    import keras

    names = ("token_ids", "segment_ids", "padding_mask")
    inputs = [keras.Input((None,), dtype="int32", name=n) for n in names]
    pooled = backbone(dict(zip(names, inputs)))["pooled_output"]
    return keras.Model(inputs, keras.layers.Dense(classes, name="head")(pooled), name="bert")


def run_bert(cfg: dict = BERT, seed: int = 0) -> list[dict]:
    """keras-hub BertBackbone from a Hugging Face folder, both methods."""
    import keras_hub
    import torch

    folder = bert_folder(cfg, seed)
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, cfg["vocab"], (cfg["batch"], cfg["seq"]))
    segments = (np.arange(cfg["seq"]) >= cfg["seq"] // 2).astype(np.int64)[None].repeat(len(ids), 0)
    head = (rng.normal(0, 0.5, (cfg["dim"], cfg["classes"])), rng.normal(0, 0.1, cfg["classes"]))
    mask = np.ones_like(ids)
    mask[1, -4:] = mask[2, -1:] = 0  # padding: masked in attention, its tokens get no relevance

    kmodel = bert_classifier(keras_hub.models.BertBackbone.from_preset(folder), cfg["classes"])
    kmodel.get_layer("head").set_weights([h.astype(np.float32) for h in head])
    inputs = [x.astype(np.int32) for x in (ids, segments, mask)]

    plain = TorchBert(folder, head, segments, mask)
    with torch.no_grad():
        logits = plain(plain.embed(torch.as_tensor(ids))).numpy()
    classes = logits.argmax(1)
    forward = np.abs(np.asarray(kmodel(inputs)) - logits).max()
    assert forward < 1e-4, f"keras-hub and HF BERT disagree: max |Δ logits| = {forward:.2e}"
    rows = []
    for method, patch_map in bert_patch_maps().items():
        with patched(patch_map):  # LXT's BERT map replaces modeling_bert's classes: load after
            theirs = lxt_relevance(TorchBert(folder, head, segments, mask), ids, classes)
        theirs = (theirs[0], theirs[1][np.arange(len(classes)), classes])
        ours = keras_relevance(kmodel, method, inputs, classes)
        padded = float(np.abs(ours[0][mask == 0]).max())
        assert padded == 0.0, f"{method}: padding tokens got relevance up to {padded:.2e}"
        rows.append(compare("keras-hub BERT (HF folder)", method, ours, theirs))
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| case | method | samples | max Δ/max|R_LXT| | mean | |Δ logit| | ΣR/logit (LXT) "
             "| ≤ 1e-3 |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['method']} | {r['samples']} | {r['max_rel_diff']:.1e} | "
                     f"{r['mean_rel_diff']:.1e} | {r['logit_diff']:.1e} | "
                     f"{r['sum_R_over_logit']:.3f} | {'yes' if r['ok'] else 'NO'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", choices=("encoder", "bert"),
                        default=["encoder", "bert"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    os.environ.setdefault("KERAS_HOME", tempfile.mkdtemp())
    import_lxt()
    rows: list[dict] = []
    if "encoder" in args.cases:
        rows += run_encoder(seed=args.seed)
    if "bert" in args.cases:
        rows += run_bert(seed=args.seed)
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
