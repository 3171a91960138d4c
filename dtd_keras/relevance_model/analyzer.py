"""``MinMaxDTD``: training-free DTD below, fitted relevance models at the chosen layers."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ..analyzers import DTD
from ..engine.domains import REAL
from ..engine.neurons import parse_neurons
from ..explanation import Explanation
from ..layers.base import LayerRelevance
from . import fitting, saving
from .arguments import integer, real
from .collecting import Collector, predict
from .layer import MinMaxRelevance, NotFittedError
from .placement import check_layer, context_size, default_layers, make_model, upper_step
from .saving import domain_config, domain_from_config
from .steps import ContextRecorder, ModelledStep

__all__ = ["MinMaxDTD"]

Tensor = Any
REDISTRIBUTE = ("model", "incoming")
VERBOSE = ("auto", 0, 1, 2)


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
        Several layers *stack*: :meth:`fit` fits them top-down, each to the relevance
        that the backward pass through the fitted models above delivers to it, with the
        relevance the layer above holds in that pass (a modelled layer's neurons hold
        their :math:`\hat R`) as its context; explaining uses the same pass, so every
        modelled layer shapes the maps.
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
        Default seed of :meth:`fit` (held-out split, initial weights, batch order).
    **options:
        ``output``, ``max_pool``, ``add``, ``jit_compile`` as for every analyzer.
    """

    def __init__(self, model: keras.Model, input_domain: Any = "real", *,
                 layers: Sequence[str] | None = None, pool_size: int = 4,
                 redistribute: str = "model", seed: int = 0, **options: Any) -> None:
        if isinstance(layers, str):
            layers = [layers]
        if layers is not None and (not isinstance(layers, Sequence) or not layers):
            raise ValueError(f"layers must be a non-empty list of layer names (or None for "
                             f"the default), got {layers!r}")
        if redistribute not in REDISTRIBUTE:
            raise ValueError(f"redistribute must be one of {REDISTRIBUTE}, got {redistribute!r}")
        self.redistribute = redistribute
        self._requested = None if layers is None else list(layers)
        self.pool_size = integer(pool_size, "pool_size")
        self.seed = integer(seed, "seed", minimum=0)
        self._options = dict(options)
        self._mode = "model"
        self._active: frozenset[str] = frozenset()
        self._trace_context: dict[str, Tensor] = {}
        self._trace_output: dict[str, Tensor] = {}
        self.fitted = False
        self.r2: dict[str, float] = {}
        self.r2_totals: dict[str, float] = {}
        self.history: dict[str, dict] = {}
        super().__init__(model, input_domain=input_domain, **options)
        self._collector = Collector(self)

    # ------------------------------------------------------------------ building
    def _finish_build(self) -> None:
        """Choose and check the modelled layers, make their relevance models, and put them
        in the pass through the engine's extension point
        (:meth:`~dtd_keras.analyzers.Analyzer.replace_behaviour`): each modelled layer
        goes through a :class:`ModelledStep`, and the layer above it through a
        :class:`ContextRecorder` that notes the context on the way down."""
        super()._finish_build()
        steps = [self.behaviour(name) for name in self.layer_names]
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
        position = {s.call.name: i for i, s in enumerate(steps)}
        self._fit_order = sorted(self.layers, key=position.__getitem__, reverse=True)
        self.relevance_models: dict[str, MinMaxRelevance] = {}
        above: dict[str, list[str]] = {}  # a layer above -> the modelled layers below it
        for i, name in enumerate(self.layers):
            step = by_name[name]
            check_layer(step)
            upper = upper_step(step, consumers)
            above.setdefault(upper.call.name, []).append(name)
            context = context_size(self.graph.shapes[upper.call.outputs[0]])
            self.relevance_models[name] = make_model(step, self.graph.shapes, context,
                                                     self.pool_size, self.seed + 2 * i)
        for name in self.layers:
            self.replace_behaviour(name, lambda s, n=name: ModelledStep(s, self, n))
        for name, below in above.items():
            self.replace_behaviour(name, lambda s, b=below: ContextRecorder(s, self, b))

    # ------------------------------------------------------------------ computing
    def _relevance_graph(self, inputs: tuple, neuron: tf.Tensor, inspect: Any = None,
                         layers: tuple[str, ...] = (), layer_inputs: bool = False):
        self._trace_context, self._trace_output = {}, {}
        return super()._relevance_graph(inputs, neuron, inspect, layers,
                                        layer_inputs=layer_inputs)

    def _neurons(self, neuron: Any, n: int, what: str) -> np.ndarray:
        """One explained neuron per sample of ``what`` (``n`` samples), as indices."""
        chosen = parse_neurons(neuron, n, self.output_size)
        if chosen.ndim != 1:
            raise ValueError(f"MinMaxDTD fits and checks one explained neuron per sample; "
                             f"{what} got neuron of shape {chosen.shape} ('all' or [batch, K] "
                             "are for explain)")
        return chosen

    def fit(self, x: Any, *, neuron: Any = None, validation_data: Any = None,
            validation_neuron: Any = None, validation_split: float = 0.2, epochs: int = 30,
            batch_size: int = 32, learning_rate: float = 1e-3, verbose: Any = "auto",
            seed: int | None = None, collect_batch_size: int = 256) -> fitting.FitScores:
        r"""Fit each relevance model by least squares to the relevance arriving from above.

        ``x`` are training inputs; ``neuron`` what to explain (as in :meth:`analyze`, one
        neuron per sample; default each sample's top logit). The held-out data are
        ``validation_data`` (inputs; ``validation_neuron`` their neurons, needed when
        ``neuron`` gives one per sample of ``x``) if given, else a random
        ``validation_split`` share of ``x``; at least 2 training and 2 held-out samples.
        The layers are fitted top-down: a layer's targets :math:`R_k` and context are
        those of the backward pass through the models fitted above it (training-free DTD
        elsewhere). Training is Keras ``fit`` with Adam on the mean squared error
        (``verbose="auto"`` shows a progress bar per layer), from fresh weights, on
        inputs, context and targets divided by their root mean square (folded back into
        the weights afterwards, exactly); the reported losses are on that scale.
        ``seed`` (default: the analyzer's) fixes the split, the initial weights and the
        order of the batches: two fits with the same seed and data give the same weights
        (TensorFlow's, NumPy's and Python's global random state are neither used nor
        changed).

        Returns :class:`~dtd_keras.relevance_model.fitting.FitScores`: ``{layer: R²}``
        on the held-out data over samples and neurons (:func:`r_squared`), and in
        ``.totals`` ``{layer: R²}`` of the per-sample totals :math:`\sum_k R_k` against
        :math:`\sum_k \hat R_k` (:func:`r_squared_of_totals`); also kept in :attr:`r2`
        and :attr:`r2_totals`, the Keras histories in :attr:`history`. Where the
        held-out relevance does not vary, R² is undefined: reported as 1.0 for an
        exact fit, else 0.0, with a warning.
        """
        epochs = integer(epochs, "epochs")
        batch_size = integer(batch_size, "batch_size")
        collect_batch_size = integer(collect_batch_size, "collect_batch_size")
        seed = self.seed if seed is None else integer(seed, "seed", minimum=0)
        learning_rate = real(learning_rate, "learning_rate", 0.0)
        if isinstance(verbose, bool) or verbose not in VERBOSE:
            raise ValueError(f"verbose must be one of {VERBOSE}, got {verbose!r}")
        arrays = self.check_inputs(x)
        n = arrays[0].shape[0]
        chosen = self._neurons(neuron, n, "x")
        if validation_data is not None:
            train, held = arrays, self.check_inputs(validation_data)
            m = held[0].shape[0]
            if validation_neuron is None and np.ndim(neuron) == 1:
                raise ValueError(f"neuron gives one index per sample of x ({n}); pass "
                                 f"validation_neuron= for the {m} samples of validation_data")
            train_neuron = chosen
            held_neuron = self._neurons(neuron if validation_neuron is None
                                        else validation_neuron, m, "validation_data")
            fitting.check_counts(n, m, "x and validation_data")
        else:
            if validation_neuron is not None:
                raise ValueError("validation_neuron needs validation_data")
            split = real(validation_split, "validation_split", 0.0, 1.0)
            train_idx, held_idx = fitting.split(n, split, seed)
            train, held = [a[train_idx] for a in arrays], [a[held_idx] for a in arrays]
            train_neuron, held_neuron = chosen[train_idx], chosen[held_idx]
        self.fitted = False
        self.r2, self.r2_totals, self.history = {}, {}, {}
        fitted: tuple[str, ...] = ()
        for name in self._fit_order:  # top-down: the models above are used
            i = self.layers.index(name)
            xs, rs, cs = self._collector.arrays(train, train_neuron, collect_batch_size,
                                                fitted)[name]
            hx, hr, hc = self._collector.arrays(held, held_neuron, collect_batch_size,
                                                fitted)[name]
            if not np.any(rs):
                raise ValueError(f"the relevance arriving at layer '{name}' is zero for "
                                 "every training sample; there is nothing to fit")
            if verbose == "auto" or verbose:
                print(f"MinMaxDTD: fitting the relevance model of '{name}'")
            self.history[name] = fitting.train(
                self.relevance_models[name], (xs, cs, rs), (hx, hc, hr), epochs=epochs,
                batch_size=batch_size, learning_rate=learning_rate, verbose=verbose,
                seed=seed + 2 * i)
            self.r2[name], self.r2_totals[name] = fitting.score(
                name, hr, predict(self.relevance_models[name], hx, hc))
            fitted += (name,)
        self.r2 = {name: self.r2[name] for name in self.layers}
        self.r2_totals = {name: self.r2_totals[name] for name in self.layers}
        self.fitted = True
        return fitting.FitScores(self.r2, self.r2_totals)

    def relevance_fit(self, x: Any, neuron: Any = None, batch_size: int = 256
                      ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        r"""``{layer: (R, R̂)}``: the relevance :math:`R_k` arriving at each modelled
        layer's output (through the relevance models above it, training-free DTD
        elsewhere: what :meth:`fit` fits to) and the relevance model's :math:`\hat R_k`,
        for ``x``."""
        self._require_fitted()
        arrays = self.check_inputs(x)
        chosen = self._neurons(neuron, arrays[0].shape[0], "x")
        data = self._collector.arrays(arrays, chosen, integer(batch_size, "batch_size"),
                                      tuple(self.layers))
        return {name: (r, predict(self.relevance_models[name], xs, cs))
                for name, (xs, r, cs) in data.items()}

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
                "input_domain": [domain_config(d) for d in self.input_domains]
                if len(self.input_domains) > 1 else domain_config(self.input_domains[0]),
                "options": dict(self._options)}

    @classmethod
    def from_config(cls, model: keras.Model, config: dict) -> MinMaxDTD:
        """An unfitted analyzer for ``model`` with ``config`` (from :meth:`get_config`)."""
        domain = config.get("input_domain", REAL.name)
        domain = [domain_from_config(d) for d in domain] if isinstance(domain, list) else \
            domain_from_config(domain)
        return cls(model, input_domain=domain, layers=config["layers"],
                   pool_size=config["pool_size"], seed=config.get("seed", 0),
                   redistribute=config.get("redistribute", "model"),
                   **config.get("options", {}))

    def save(self, path: Any) -> Path:
        """Write the configuration and the fitted relevance models to one ``.npz`` file
        (:mod:`dtd_keras.relevance_model.saving`).

        Returns the path written (``.npz`` appended if missing); the file appears whole or
        not at all. The Keras model is not stored: :meth:`load` takes it.
        """
        self._require_fitted()
        meta = {"format": saving.FORMAT_VERSION, "config": self.get_config(),
                "models": {n: m.get_config() for n, m in self.relevance_models.items()},
                "r2": self.r2, "r2_totals": self.r2_totals}
        arrays = {f"{i}/{j}": w for i, name in enumerate(self.layers)
                  for j, w in enumerate(self.relevance_models[name].get_weights())}
        return saving.write(path, meta, arrays)

    @classmethod
    def load(cls, path: Any, model: keras.Model) -> MinMaxDTD:
        """A fitted analyzer for ``model`` from a file written by :meth:`save`.

        Raises ``FileNotFoundError`` if there is no file, and ``ValueError`` naming the
        file and what is wrong if it is damaged, truncated, not written by :meth:`save`,
        or does not match ``model`` (layer names, relevance model shapes).
        """
        meta, weights = saving.read(path)
        analyzer = saving.build(cls, path, model, meta)
        for i, name in enumerate(analyzer.layers):
            analyzer.relevance_models[name].set_weights(saving.layer_weights(
                path, meta, weights, i, name, analyzer.relevance_models[name]))
        analyzer.r2_totals = dict(meta.get("r2_totals", {}))
        analyzer.r2 = dict(meta.get("r2", {}))
        analyzer.fitted = True
        return analyzer

    def state_fingerprint(self) -> str:
        """SHA-256 of what this fitted analyzer adds to :class:`~dtd_keras.DTD`: its
        configuration (:meth:`get_config`) and every relevance model's weights (dtype,
        shape, values), in layer order. :func:`~dtd_keras.analyze_dataset` keeps it in a
        store's identity, so a store is never resumed with a differently fitted analyzer.
        Raises :class:`NotFittedError` before :meth:`fit` or :meth:`load`."""
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
