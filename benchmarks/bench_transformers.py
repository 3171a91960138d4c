"""AttnLRP against the plain gradient on transformers: time and peak memory, and LXT's own ratio.

Configurations (BERT-small size: 4 layers, hidden 256, 4 heads, MLP 1024, batch 8):

* ``encoder``: the hand-built pre-LN encoder of ``lxt_comparison.py`` (token and position
  ``Embedding``, ``MultiHeadAttention``, ``LayerNormalization``, GELU MLP), sequence 128;
* ``bert``: keras-hub ``BertBackbone`` + a linear head on the pooled output, sequence 128
  (torch: Hugging Face ``BertModel`` of the same config, LXT's own BERT map);
* ``vit``: keras-hub ``ViTBackbone`` + a linear head on the class token, 176×176 images in
  16×16 patches (122 tokens) (torch: Hugging Face ``ViTModel``, an LXT map from LXT's patch
  functions: ``patch_attention`` on ``modeling_vit``, ``layer_norm_forward``,
  ``non_linear_forward``).

Both explain the top logit. Keras: ``dk.create_analyzer("gradient" | "attn_lrp", model)``
through ``analyzer.concrete_function`` (for token inputs the gradient is taken at the token
embedding). Torch: the gradient of the same logit w.r.t. the token embeddings (pixels for the
ViT), plain and under LXT's patches (LXT's "one backward pass").

* time: median of ``--repeats`` calls after one warm-up, the methods of one configuration
  timed round-robin in one process (load hits both alike);
* memory: each method in a fresh subprocess; Keras: the peak of TensorFlow's CPU allocator
  above what it held after the model was built; torch: the rise of the process's resident-set
  high-water mark (VmHWM, reset through /proc/self/clear_refs) over the first two calls.

Targets (ours): time ≤ 1.3× the gradient, peak memory ≤ 1.5×. Run in a venv with torch, LXT and
keras-hub for the torch columns (``--frameworks keras`` needs neither torch nor LXT)::

    PYTHONPATH=. python benchmarks/bench_transformers.py [--configs encoder bert vit] [--json f]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import PeakMemory  # noqa: E402
from bench_neurons import round_robin  # noqa: E402  (timed round-robin, median)

SIZE = {"layers": 4, "dim": 256, "heads": 4, "mlp": 1024, "batch": 8, "seq": 128,
        "vocab": 30522, "classes": 2, "eps": 1e-6, "image": 176, "patch": 16}
CONFIGS = ("encoder", "bert", "vit")
TARGETS = {"time": 1.3, "memory": 1.5}
CHILD = "@@bench-transformers@@"


# ----------------------------------------------------------------------------- Keras
def keras_case(config: str) -> tuple[Any, list[np.ndarray]]:
    """The Keras model and its inputs (seeded)."""
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    s = SIZE
    ids = rng.integers(1, s["vocab"], (s["batch"], s["seq"])).astype(np.int32)
    if config == "encoder":
        from lxt_comparison import keras_encoder

        return keras_encoder(s), [ids]
    import keras_hub

    if config == "bert":
        backbone = keras_hub.models.BertBackbone(
            vocabulary_size=s["vocab"], num_layers=s["layers"], num_heads=s["heads"],
            hidden_dim=s["dim"], intermediate_dim=s["mlp"], max_sequence_length=512)
        from lxt_comparison import bert_classifier

        model = bert_classifier(backbone, s["classes"])
        return model, [ids, np.zeros_like(ids), np.ones_like(ids)]
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(s["image"], s["image"], 3), patch_size=s["patch"], num_layers=s["layers"],
        num_heads=s["heads"], hidden_dim=s["dim"], mlp_dim=s["mlp"])
    head = keras.layers.Dense(s["classes"], name="head")(backbone.output[:, 0, :])
    images = rng.uniform(-1, 1, (s["batch"], s["image"], s["image"], 3)).astype(np.float32)
    return keras.Model(backbone.input, head), [images]


def keras_methods(config: str) -> tuple[dict[str, Any], list]:
    """method → a zero-argument callable running one explanation (compiled, traced)."""
    import tensorflow as tf

    import dtd_keras as dk

    model, inputs = keras_case(config)
    tensors = tuple(tf.constant(x) for x in inputs)
    neuron = tf.constant(np.full(len(inputs[0]), -1, np.int32))
    calls = {}
    for method in ("gradient", "attn_lrp"):
        function = dk.create_analyzer(method, model).concrete_function
        calls[method] = lambda f=function: [m.numpy() for m in f(tensors, neuron)[0]]
    return calls, inputs


# ----------------------------------------------------------------------------- torch + LXT
def torch_case(config: str) -> tuple[Any, Any, dict, Any]:
    """(plain model, LXT model factory, LXT patch map, input) in float32; each model maps its
    differentiable input to logits, ``embed`` gives that input from token ids/pixels."""
    import torch
    import transformers
    from lxt.efficient.patches import (
        dropout_forward,
        layer_norm_forward,
        non_linear_forward,
        patch_attention,
        patch_method,
    )
    from lxt_comparison import encoder_patch_maps, torch_encoder

    s = SIZE
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    ids = torch.as_tensor(rng.integers(1, s["vocab"], (s["batch"], s["seq"])))
    if config == "encoder":
        model = torch_encoder(s).float()
        return model, lambda: model, encoder_patch_maps()["attn_lrp"], model.embed(ids).detach()
    head = torch.nn.Linear(s["dim"], s["classes"])
    if config == "bert":
        from lxt.efficient.models import bert as lxt_bert
        from transformers.models.bert import modeling_bert

        config_ = transformers.BertConfig(
            vocab_size=s["vocab"], hidden_size=s["dim"], num_hidden_layers=s["layers"],
            num_attention_heads=s["heads"], intermediate_size=s["mlp"])

        def wrap(bert: Any) -> Any:
            bert.eval()

            def model(embeddings: Any) -> Any:
                return head(bert(inputs_embeds=embeddings).pooler_output)
            return model

        plain = modeling_bert.BertModel(config_)
        state = plain.state_dict()

        def lxt_model() -> Any:  # LXT's map replaces modeling_bert's classes: build under it
            bert = modeling_bert.BertModel(config_)
            bert.load_state_dict(state)
            return wrap(bert)

        embeddings = plain.embeddings.word_embeddings(ids).detach()
        return wrap(plain), lxt_model, lxt_bert.attnLRP, embeddings
    from transformers.activations import GELUActivation
    from transformers.models.vit import modeling_vit

    vit = modeling_vit.ViTModel(transformers.ViTConfig(
        image_size=s["image"], patch_size=s["patch"], hidden_size=s["dim"],
        num_hidden_layers=s["layers"], num_attention_heads=s["heads"], intermediate_size=s["mlp"],
        attn_implementation="eager"), add_pooling_layer=False).eval()

    def model(pixels: Any) -> Any:
        return head(vit(pixel_values=pixels).last_hidden_state[:, 0])

    patch_map = {torch.nn.LayerNorm: lambda t: patch_method(layer_norm_forward, t),
                 GELUActivation: lambda t: patch_method(non_linear_forward, t, keep_original=True),
                 torch.nn.Dropout: lambda t: patch_method(dropout_forward, t),
                 modeling_vit: patch_attention}
    pixels = torch.as_tensor(rng.uniform(-1, 1, (s["batch"], 3, s["image"], s["image"])),
                             dtype=torch.float32)
    return model, lambda: model, patch_map, pixels


def torch_methods(config: str) -> dict[str, Any]:
    """method → a zero-argument callable: gradient of the top logit w.r.t. the model's input,
    plain (``gradient``) or under LXT's patches (``lxt``, relevance = input × that)."""
    from lxt_comparison import import_lxt, patched

    import_lxt()
    plain, lxt_factory, patch_map, x = torch_case(config)
    with patched(patch_map):
        lxt_model = lxt_factory()

    def backward(model: Any, times_input: bool) -> Any:
        leaf = x.clone().requires_grad_(True)
        logits = model(leaf)
        logits.max(dim=1).values.sum().backward()
        return (leaf * leaf.grad if times_input else leaf.grad).detach().numpy()

    def lxt() -> Any:
        with patched(patch_map):
            return backward(lxt_model, True)

    return {"gradient": lambda: backward(plain, False), "lxt": lxt}


# ----------------------------------------------------------------------------- measuring
def methods(framework: str, config: str) -> dict[str, Any]:
    return keras_methods(config)[0] if framework == "keras" else torch_methods(config)


def child_memory(framework: str, config: str, method: str) -> float:
    """In a fresh process: the peak MiB of one method over its first two calls (models built
    before the meter starts; the analyzer or LXT's patched model is counted)."""
    call = (keras_methods_lazy(config, method) if framework == "keras"
            else torch_methods(config)[method])
    meter = PeakMemory()
    meter.start()
    call()
    call()
    return meter.tf_peak_mib() if framework == "keras" else meter.rss_peak_mib()


def keras_methods_lazy(config: str, method: str) -> Any:
    """The model is built before the memory meter starts; the analyzer after (counted)."""
    import tensorflow as tf

    import dtd_keras as dk

    model, inputs = keras_case(config)
    tensors = tuple(tf.constant(x) for x in inputs)
    neuron = tf.constant(np.full(len(inputs[0]), -1, np.int32))
    state: dict[str, Any] = {}

    def call() -> Any:
        if "f" not in state:
            state["f"] = dk.create_analyzer(method, model).concrete_function
        return [m.numpy() for m in state["f"](tensors, neuron)[0]]

    return call


def memory(framework: str, config: str, method: str) -> float | None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, __file__, "--child", framework, config, method],
                         capture_output=True, text=True, env=env)
    for line in out.stdout.splitlines():
        if line.startswith(CHILD):
            return float(line[len(CHILD):])
    print(f"memory child {framework}/{config}/{method} failed:\n{out.stderr[-2000:]}",
          file=sys.stderr)
    return None


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "–" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument("--frameworks", nargs="+", choices=("keras", "torch"),
                        default=["keras", "torch"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("KERAS_HOME", tempfile.mkdtemp(prefix="bench_keras_home_"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # torch's OpenMP threads spin while they wait: on a shared or busy CPU that made every
    # torch call 5-10x slower here (1.3 s → 7-12 s per BERT-small gradient); children inherit it
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if args.child:
        print(f"{CHILD}{child_memory(*args.child)}")
        return 0
    rows = []
    for config in args.configs:
        row: dict[str, Any] = {"config": config}
        for framework in args.frameworks:
            names = ("gradient", "attn_lrp") if framework == "keras" else ("gradient", "lxt")
            seconds = round_robin(methods(framework, config), args.repeats)
            mib = {m: None if args.no_memory else memory(framework, config, m) for m in names}
            row[framework] = {"seconds": seconds, "mib": mib,
                              "time_ratio": ratio(seconds[names[1]], seconds[names[0]]),
                              "memory_ratio": ratio(mib[names[1]], mib[names[0]])}
            print(config, framework, row[framework], flush=True)
        rows.append(row)
    print("\n| config | gradient s | attn_lrp s | ×time | grad MiB | attn_lrp MiB | ×memory "
          "| torch grad s | LXT s | LXT ×time | LXT ×memory (RSS) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        k, t = row.get("keras", {}), row.get("torch", {})
        ks, km, ts = k.get("seconds", {}), k.get("mib", {}), t.get("seconds", {})
        print(f"| {row['config']} | {fmt(ks.get('gradient'), '.3f')} "
              f"| {fmt(ks.get('attn_lrp'), '.3f')} "
              f"| {fmt(k.get('time_ratio'))} | {fmt(km.get('gradient'), '.0f')} "
              f"| {fmt(km.get('attn_lrp'), '.0f')} | {fmt(k.get('memory_ratio'))} "
              f"| {fmt(ts.get('gradient'), '.3f')} | {fmt(ts.get('lxt'), '.3f')} "
              f"| {fmt(t.get('time_ratio'))} | {fmt(t.get('memory_ratio'))} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
