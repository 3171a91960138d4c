"""Running the analyzer's compiled function on batches: on one device, or under a
``tf.distribute`` strategy (local replicas; a worker's share of the chunks).

Every call goes through ``analyzer.concrete_function`` (free batch dimension), so a whole
run traces once, also under a strategy: each replica calls the same concrete function on
its share of the batch (``strategy.run``); the last batch is padded by repeating its last
sample, so padding stays in the input domain.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Explainer", "worker_share"]


def worker_share(strategy: Any) -> tuple[int, int]:
    """(this worker's index, number of workers) from a multi-worker strategy's cluster
    (chief first, then workers); (0, 1) without one."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 0, 1
    cluster = resolver.cluster_spec().as_dict()
    tasks = [(job, i) for job in ("chief", "worker") for i in range(len(cluster.get(job, [])))]
    if not tasks:
        return 0, 1
    me = (resolver.task_type, int(resolver.task_id or 0))
    if me not in tasks:
        raise ValueError(f"this process is task {me[0]}:{me[1]} of the cluster; "
                         "analyze_dataset runs on the chief and worker tasks")
    return tasks.index(me), len(tasks)


class Explainer:
    """Runs the analyzer's compiled function on a chunk, batch by batch, optionally under
    a strategy; ``classes`` (for ``neuron="all"``) explains every output neuron."""

    def __init__(self, analyzer: Any, strategy: Any, batch_size: int) -> None:
        self.analyzer = analyzer
        self.strategy = strategy
        self.batch_size = batch_size
        self.replicas = 1 if strategy is None else len(strategy.extended.worker_devices)

    def _batch(self, inputs: list[np.ndarray], neuron: np.ndarray
               ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        import tensorflow as tf

        function = (self.analyzer.concrete_function if neuron.ndim == 1
                    else self.analyzer.concrete_function_many)
        if self.strategy is None:
            maps, chosen, logit = function(tuple(tf.constant(x) for x in inputs),
                                           tf.constant(neuron))
            return [m.numpy() for m in maps], chosen.numpy(), logit.numpy()
        count, replicas = len(neuron), self.replicas
        per = -(-count // replicas)
        pad = per * replicas - count  # repeat the last sample: stays in the input domain

        def padded(x: np.ndarray) -> np.ndarray:
            return np.concatenate([x, np.repeat(x[-1:], pad, axis=0)]) if pad else x

        inputs, neuron = [padded(x) for x in inputs], padded(neuron)

        def share(context: Any) -> tuple:
            part = slice((context.replica_id_in_sync_group % replicas) * per,
                         (context.replica_id_in_sync_group % replicas + 1) * per)
            return (tuple(tf.constant(x[part]) for x in inputs), tf.constant(neuron[part]))

        values = self.strategy.experimental_distribute_values_from_function(share)
        outputs = self.strategy.run(function, args=values)

        def gather(value: Any) -> np.ndarray:
            parts = self.strategy.experimental_local_results(value)
            return np.concatenate([p.numpy() for p in parts])[:count]

        maps, chosen, logit = outputs
        return [gather(m) for m in maps], gather(chosen), gather(logit)

    def _all(self, inputs: list[np.ndarray], classes: int
             ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """Every output neuron: relevance (b, K, …), neuron and logit (b, K), in one
        forward pass per group of neurons (the engine shares the rules' denominators)."""
        count = len(inputs[0])
        step = self.analyzer.neurons_per_pass(count)
        results = [self._batch(inputs, np.tile(np.arange(k, min(k + step, classes),
                                                         dtype=np.int32), (count, 1)))
                   for k in range(0, classes, step)]
        maps = [np.concatenate([r[0][i] for r in results], axis=1) for i in range(len(inputs))]
        return (maps, np.concatenate([r[1] for r in results], axis=1),
                np.concatenate([r[2] for r in results], axis=1))

    def __call__(self, inputs: list[np.ndarray], neuron: np.ndarray | None,
                 classes: int | None) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """Relevance maps (one per input), chosen neurons and logits for a chunk."""
        pieces = []
        for start in range(0, len(inputs[0]), self.batch_size):
            part = slice(start, start + self.batch_size)
            batch = [x[part] for x in inputs]
            piece = (self._all(batch, classes) if classes is not None
                     else self._batch(batch, neuron[part]))
            if not all(np.all(np.isfinite(a)) for a in (*piece[0], piece[2])):
                from ..engine.diagnose import diagnose

                chosen = piece[1] if classes is not None else neuron[part]
                raise diagnose(self.analyzer, [np.asarray(x, np.float32) for x in batch],
                               np.asarray(chosen, np.int32))
            pieces.append(piece)
        maps = [np.concatenate([p[0][i] for p in pieces]) for i in range(len(inputs))]
        return (maps, np.concatenate([p[1] for p in pieces]).astype(np.int32),
                np.concatenate([p[2] for p in pieces]).astype(np.float32))
