"""``MinMaxDTD``: training-free DTD below, fitted relevance models at the chosen layers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ..analyzers import DTD
from ..engine.domains import REAL, Box, as_domain
from ..engine.neurons import parse_neurons
from ..errors import NumericalError
from ..explanation import Explanation
from ..layers.base import LayerRelevance
from .layer import MinMaxRelevance, NotFittedError, r_squared, rms
from .placement import check_layer, context_size, default_layers, make_model, upper_step
from .steps import ContextRecorder, ModelledStep

__all__ = ["MinMaxDTD"]

Tensor = Any
FORMAT_VERSION = 1
REDISTRIBUTE = ("model", "incoming")


def _domain_config(domain: Any) -> Any:
    domain = as_domain(domain)
    if isinstance(domain, Box):
        return {"low": domain.low.tolist(), "high": domain.high.tolist()}
    return domain.name


def _domain_from_config(config: Any) -> Any:
    if isinstance(config, dict):
        return Box(np.asarray(config["low"], np.float32), np.asarray(config["high"], np.float32))
    return config


class MinMaxDTD(DTD):
    r"""Deep Taylor decomposition with min-max relevance models for the top layers.

    Every layer below the chosen ones uses the training-free DTD rule of its input
    domain (as :class:`~dtd_keras.DTD`); the chosen layers' relevance goes through
    their fitted :class:`MinMaxRelevance` models (equations and what is conserved:
    :mod:`dtd_keras.relevance_model`). Call :meth:`fit` (or :meth:`load`) first.

    Parameters
    ----------
    model:
        A built Keras model (Sequential or functional) of Dense/Conv layers.
    input_domain:
        As for :class:`~dtd_keras.DTD`.
    layers:
        Names of the Dense/Conv (ReLU) layers whose relevance is modelled. Default: the
        hidden layer(s) whose output feeds the output layer (through reshapes/pooling).
    pool_size:
        Detection neurons per modelled neuron (``m``; the relevance model of a layer
        with ``K`` neurons has ``K·m`` detection neurons).
    redistribute:
        ``"model"`` (default, the paper): decompose the relevance model's own output,
        so detection neuron ``j`` receives :math:`y_j` and the heatmap sums to
        :math:`\sum_k \hat R_k` of the lowest modelled layer (relevance arriving from
        above only enters as context). ``"incoming"``: split the relevance :math:`R_k`
        that arrives from above in proportion to :math:`y_j`,
        :math:`R_j = y_j / \hat R_k \cdot R_k` (zero where :math:`\hat R_k = 0`): the
        relevance model only shapes the split, the total is the incoming one minus
        what reaches neurons with :math:`\hat R_k = 0`; stacked modelled layers compose.
    seed:
        Seed of the relevance models' initial weights.
    **options:
        ``output``, ``max_pool``, ``add``, ``jit_compile`` as for every analyzer.
    """

    def __init__(self, model: keras.Model, input_domain: Any = "real", *,
                 layers: Sequence[str] | None = None, pool_size: int = 4,
                 redistribute: str = "model", seed: int = 0, **options: Any) -> None:
        if isinstance(layers, str):
            layers = [layers]
        if redistribute not in REDISTRIBUTE:
            raise ValueError(f"redistribute must be one of {REDISTRIBUTE}, got {redistribute!r}")
        self.redistribute = redistribute
        if pool_size < 1:
            raise ValueError(f"pool_size must be >= 1, got {pool_size}")
        self._requested = None if layers is None else list(layers)
        self.pool_size = int(pool_size)
        self.seed = int(seed)
        self._options = dict(options)
        self._mode = "model"
        self._trace_context: dict[str, Tensor] = {}
        self._trace_record: dict[str, tuple] = {}
        self.fitted = False
        self.r2: dict[str, float] = {}
        self.history: dict[str, dict] = {}
        super().__init__(model, input_domain=input_domain, **options)
        self._collect = tf.function(self._collect_graph, autograph=False)
        self._collect_concrete = None

    # ------------------------------------------------------------------ building
    def _finish_build(self) -> None:
        super()._finish_build()
        steps = [s for s, _ in self._steps]
        by_name = {s.call.name: s for s in steps if s.needs_rule}
        producers = {k: s for s in steps for k in s.call.outputs}

        def consumers(key: int) -> list[LayerRelevance]:
            return [s for s in steps if key in s.call.inputs]

        names = (self._requested if self._requested is not None
                 else default_layers(producers, self._explained))
        if not names:
            raise ValueError("MinMaxDTD needs a hidden Dense/Conv layer with ReLU below the "
                             "output layer; this model has none")
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ValueError(f"layers={unknown} are not rule-taking layers of the model; "
                             f"choose from {sorted(by_name)}")
        self.layers: list[str] = list(dict.fromkeys(names))
        self.relevance_models: dict[str, MinMaxRelevance] = {}
        wrap: dict[int, Any] = {}
        above: dict[int, list[str]] = {}
        for i, name in enumerate(self.layers):
            step = by_name[name]
            check_layer(step)
            upper = upper_step(step, consumers)
            above.setdefault(id(upper), []).append(name)
            wrap[id(upper)] = upper
            context = context_size(self.graph.shapes[upper.call.outputs[0]])
            self.relevance_models[name] = make_model(step, self.graph.shapes, context,
                                                     self.pool_size, self.seed + 2 * i)
        new_steps = []
        for step, rule in self._steps:
            wrapped: Any = step
            if step.needs_rule and step.call.name in self.relevance_models:
                wrapped = ModelledStep(wrapped, self, step.call.name)
            if id(step) in above:
                wrapped = ContextRecorder(wrapped, self, above[id(step)])
            new_steps.append((wrapped, rule))
        self._steps = new_steps

    # ------------------------------------------------------------------ computing
    def _relevance_graph(self, inputs: tuple, neuron: tf.Tensor, inspect: Any = None):
        self._trace_context, self._trace_record = {}, {}
        return super()._relevance_graph(inputs, neuron, inspect)

    def _collect_graph(self, inputs: tuple, neuron: tf.Tensor):
        """Training-free DTD down to the chosen layers: (x, R, context) for each."""
        self._mode = "collect"
        try:
            maps, _, _ = self._relevance_graph(inputs, neuron)
            record = dict(self._trace_record)
        finally:
            self._mode = "model"
        # an overflowing denominator makes the maps NaN (the check is deferred to the end
        # of the pass), not the values recorded on the way: report it with them
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(m)) for m in maps])
        return tuple(record[name] for name in self.layers), finite

    def _collect_arrays(self, arrays: list[np.ndarray], neuron: Any, batch_size: int
                        ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        if self._collect_concrete is None:
            self._collect_concrete = self._collect.get_concrete_function(
                self.input_specs, tf.TensorSpec((None,), tf.int32))
        n = arrays[0].shape[0]
        chosen = parse_neurons(neuron, n, self.output_size)
        parts: list[tuple] = []
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            out, finite = self._collect_concrete(
                tuple(tf.constant(a[start:stop]) for a in arrays),
                tf.constant(chosen[start:stop]))
            if not bool(finite):
                raise NumericalError(
                    f"the training-free relevance of samples {start}–{stop - 1} is not "
                    "finite (a rule's denominators overflow float32, or the weights hold "
                    "NaN); cannot fit a relevance model to it")
            parts.append(tuple(tuple(t.numpy() for t in layer) for layer in out))
        result = {}
        for i, name in enumerate(self.layers):
            x, r, c = (np.concatenate([p[i][j] for p in parts]) for j in range(3))
            if not (np.all(np.isfinite(r)) and np.all(np.isfinite(c))):
                raise ValueError(f"the training-free relevance at layer '{name}' has NaN or "
                                 "infinite values; cannot fit a relevance model to it")
            result[name] = (x, r, c)
        return result

    def _predict(self, name: str, x: np.ndarray, context: np.ndarray,
                 batch_size: int = 256) -> np.ndarray:
        model = self.relevance_models[name]
        return np.concatenate([
            keras.ops.convert_to_numpy(model([x[i:i + batch_size], context[i:i + batch_size]]))
            for i in range(0, len(x), batch_size)]) if len(x) else np.zeros((0,))

    def fit(self, x: Any, *, neuron: Any = None, validation_data: Any = None,
            validation_split: float = 0.2, epochs: int = 30, batch_size: int = 32,
            learning_rate: float = 1e-3, verbose: Any = "auto", seed: int | None = None,
            collect_batch_size: int = 256) -> dict[str, float]:
        r"""Fit each relevance model by least squares to the training-free relevance.

        ``x`` are training inputs; ``neuron`` what to explain (as in :meth:`analyze`;
        default each sample's top logit). The held-out data are ``validation_data``
        (inputs) if given, else a random ``validation_split`` share of ``x`` (``seed``).
        Training is Keras ``fit`` with Adam on the mean squared error
        (``verbose="auto"`` shows a progress bar per layer), from fresh seeded weights,
        on inputs, context and targets divided by their root mean square (folded back
        into the weights afterwards, exactly); the reported losses are on that scale.

        Returns ``{layer: R²}`` on the held-out data (:func:`r_squared` of the true
        relevance against the model's :math:`\hat R`); also kept in :attr:`r2`, the
        Keras histories in :attr:`history`.
        """
        if epochs < 1 or batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {epochs}, {batch_size}")
        arrays = self.check_inputs(x)
        n = arrays[0].shape[0]
        if validation_data is not None:
            train = arrays
            held = self.check_inputs(validation_data)
            neuron_train, neuron_held = neuron, neuron
        else:
            if not 0.0 < validation_split < 1.0:
                raise ValueError(f"validation_split must be in (0, 1), got {validation_split}")
            held_count = int(round(n * validation_split))
            if held_count < 1 or held_count >= n:
                raise ValueError(f"{n} samples cannot be split {validation_split:g} into "
                                 "training and held-out data; give more samples or "
                                 "validation_data")
            order = np.random.default_rng(self.seed if seed is None else seed).permutation(n)
            held_idx, train_idx = np.sort(order[:held_count]), np.sort(order[held_count:])
            train = [a[train_idx] for a in arrays]
            held = [a[held_idx] for a in arrays]
            picked = None if neuron is None else np.asarray(neuron)
            if picked is not None and picked.ndim == 1:
                neuron_train, neuron_held = picked[train_idx], picked[held_idx]
            else:
                neuron_train, neuron_held = neuron, neuron
        data = self._collect_arrays(train, neuron_train, collect_batch_size)
        checks = self._collect_arrays(held, neuron_held, collect_batch_size)
        self.r2, self.history = {}, {}
        for i, name in enumerate(self.layers):
            model = self.relevance_models[name]
            xs, rs, cs = data[name]
            hx, hr, hc = checks[name]
            sx, sc, sr = (rms(a) for a in (xs, cs, rs))
            if not np.any(rs):
                raise ValueError(f"the training-free relevance at layer '{name}' is zero for "
                                 "every training sample; there is nothing to fit")
            model.reset(self.seed + 2 * i)
            trainer = self._trainer(model, xs.shape[1:], cs.shape[1:])
            trainer.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
            if verbose == "auto" or verbose:
                print(f"MinMaxDTD: fitting the relevance model of '{name}'")
            history = trainer.fit([xs / sx, cs / sc], rs / sr,
                                  validation_data=([hx / sx, hc / sc], hr / sr), epochs=epochs,
                                  batch_size=batch_size, verbose=verbose, shuffle=True)
            model.rescale(sx, sc, sr)
            self.history[name] = {k: [float(v) for v in vals]
                                  for k, vals in history.history.items()}
            self.r2[name] = r_squared(hr, self._predict(name, hx, hc))
        self.fitted = True
        return dict(self.r2)

    @staticmethod
    def _trainer(model: MinMaxRelevance, x_shape: tuple, c_shape: tuple) -> keras.Model:
        x_in, c_in = keras.Input(x_shape), keras.Input(c_shape)
        return keras.Model([x_in, c_in], model([x_in, c_in]))

    def relevance_fit(self, x: Any, neuron: Any = None, batch_size: int = 256
                      ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        r"""``{layer: (R, R̂)}``: the training-free relevance :math:`R_k` at each modelled
        layer's output and the relevance model's :math:`\hat R_k`, for ``x``."""
        self._require_fitted()
        data = self._collect_arrays(self.check_inputs(x), neuron, batch_size)
        return {name: (r, self._predict(name, xs, cs)) for name, (xs, r, cs) in data.items()}

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise NotFittedError("MinMaxDTD has no fitted relevance models: call .fit(x) "
                                 "first, or MinMaxDTD.load(path, model)")

    def explain(self, x: Any, neuron: Any = None, **options: Any) -> Explanation:
        """Relevance through the fitted relevance models (see :class:`DTD.explain`).

        ``explained`` is the model's logit; the maps sum to the relevance models'
        total :math:`\\sum_k \\hat R_k` (:mod:`dtd_keras.relevance_model`), so
        ``properties()`` reports the fit error as conservation error.
        """
        self._require_fitted()
        return super().explain(x, neuron, **options)

    def export(self, path: Any, *, overwrite: bool = False) -> Any:
        self._require_fitted()
        return super().export(path, overwrite=overwrite)

    # ------------------------------------------------------------------ saving
    def get_config(self) -> dict:
        """What :meth:`from_config` needs (besides the Keras model) to rebuild this analyzer."""
        return {"layers": list(self.layers), "pool_size": self.pool_size, "seed": self.seed,
                "redistribute": self.redistribute,
                "input_domain": [_domain_config(d) for d in self.input_domains]
                if len(self.input_domains) > 1 else _domain_config(self.input_domains[0]),
                "options": dict(self._options)}

    @classmethod
    def from_config(cls, model: keras.Model, config: dict) -> MinMaxDTD:
        """An unfitted analyzer for ``model`` with ``config`` (from :meth:`get_config`)."""
        domain = config.get("input_domain", REAL.name)
        domain = [_domain_from_config(d) for d in domain] if isinstance(domain, list) else \
            _domain_from_config(domain)
        return cls(model, input_domain=domain, layers=config["layers"],
                   pool_size=config["pool_size"], seed=config.get("seed", 0),
                   redistribute=config.get("redistribute", "model"),
                   **config.get("options", {}))

    def save(self, path: Any) -> Path:
        """Write the configuration and the fitted relevance models to one ``.npz`` file.

        Returns the path written (``.npz`` appended if missing). The Keras model is not
        stored: :meth:`load` takes it.
        """
        self._require_fitted()
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        meta = {"format": FORMAT_VERSION, "config": self.get_config(),
                "models": {n: m.get_config() for n, m in self.relevance_models.items()},
                "r2": self.r2}
        arrays = {f"{i}/{j}": w for i, name in enumerate(self.layers)
                  for j, w in enumerate(self.relevance_models[name].get_weights())}
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, meta=np.asarray(json.dumps(meta)), **arrays)
        return path

    @classmethod
    def load(cls, path: Any, model: keras.Model) -> MinMaxDTD:
        """A fitted analyzer for ``model`` from a file written by :meth:`save`.

        Raises ``ValueError`` if the file does not match ``model`` (layer names or
        relevance model shapes).
        """
        with np.load(Path(path), allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            weights = {k: data[k] for k in data.files if k != "meta"}
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path}: unknown MinMaxDTD file format {meta.get('format')!r}")
        analyzer = cls.from_config(model, meta["config"])
        for i, name in enumerate(analyzer.layers):
            relevance_model = analyzer.relevance_models[name]
            stored = meta["models"].get(name, {})
            ours = relevance_model.get_config()
            for key in ("kind", "units", "input_shape", "output_shape", "context_size",
                        "pool_size"):
                if stored.get(key) != ours[key]:
                    raise ValueError(
                        f"{path}: the relevance model of layer '{name}' has {key}="
                        f"{stored.get(key)!r}, but this model needs {ours[key]!r}")
            count = len(relevance_model.weights)
            relevance_model.set_weights([weights[f"{i}/{j}"] for j in range(count)])
        analyzer.r2 = dict(meta.get("r2", {}))
        analyzer.fitted = True
        return analyzer

    def state_fingerprint(self) -> str:
        """SHA-256 of what this fitted analyzer adds to :class:`~dtd_keras.DTD`: its
        configuration (:meth:`get_config`) and every relevance model's weights (dtype,
        shape, values), in layer order. :func:`~dtd_keras.analyze_dataset` keeps it in a
        store's identity, so a store is never resumed with a differently fitted analyzer.
        Raises :class:`NotFittedError` before :meth:`fit` or :meth:`load`."""
        import hashlib

        self._require_fitted()
        digest = hashlib.sha256(json.dumps(self.get_config(), sort_keys=True,
                                           default=repr).encode())
        for name in self.layers:
            digest.update(name.encode())
            for weight in self.relevance_models[name].get_weights():
                value = np.ascontiguousarray(weight)
                digest.update(f"{value.dtype.str}{value.shape}".encode())
                digest.update(value.tobytes())
        return digest.hexdigest()
