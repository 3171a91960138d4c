"""Building an analyzer's steps: every call of the walked graph gets its relevance
behaviour (:mod:`dtd_keras.layers`), its rule (the analyzer's ``_choose_rule``) and the
domains of its outputs; every call that cannot be explained is collected, and one
error lists them all."""

from __future__ import annotations

import warnings
from typing import Any

import keras

from ..engine.canonizers import canonize, strip_head
from ..engine.diagnose import check_box_shape, check_dtype
from ..engine.domains import REAL, Domain
from ..engine.tokens import choose_token_input
from ..errors import UnsupportedLayerError
from ..layers import relevance_for
from ..layers.registry import position

__all__ = ["build_steps", "refusal_for_gaps"]


def refusal_for_gaps(model: keras.Model, gaps: list[tuple[str, UnsupportedLayerError]]
             ) -> UnsupportedLayerError:
    """One error for every call the analyzer cannot explain: the error itself for one;
    for several, each layer's problem and place, and each distinct advice once."""
    if len(gaps) == 1:
        return gaps[0][1]
    lines, advice = [], []
    for where, error in gaps:
        problem = getattr(error, "problem", None) or str(error)
        lines.append(f"  - {problem}" if getattr(error, "located", False)
                     else f"  - {problem} ({where})")
        if getattr(error, "advice", "") and error.advice not in advice:
            advice.append(error.advice)
    return UnsupportedLayerError(
        f"model '{model.name}' has {len(gaps)} layers that cannot be explained:\n"
        + "\n".join(lines) + "".join(f"\n{a}" for a in advice))


def build_steps(analyzer: Any) -> None:
    """Set ``analyzer``'s steps, rules, domains, explained tensor, heads and token
    attributes from its graph; :class:`UnsupportedLayerError` listing every call that
    cannot be explained."""
    graph = analyzer.graph
    calls = canonize(graph, list(graph.calls))
    # the explained logit, below a softmax/sigmoid head (applied again by predict())
    calls, analyzer._explained, analyzer._heads = strip_head(calls, graph.output)
    head = next((c for c in calls if analyzer._explained in c.outputs), None)

    analyzer.input_domains = analyzer._input_domains()
    for key, name, domain in zip(graph.inputs, graph.input_names, analyzer.input_domains):
        check_box_shape(domain, graph.shapes[key], name)
    domains: dict[int, Domain] = dict(zip(graph.inputs, analyzer.input_domains))
    input_space = {key: True for key in graph.inputs}
    analyzer._steps = []
    analyzer.rules = {}
    analyzer.domains = {}
    warned: list[str] = []
    gaps: list[tuple[str, UnsupportedLayerError]] = []
    for index, call in enumerate(calls):
        in_domains = [domains.get(k, REAL) for k in call.inputs]
        try:
            check_dtype(call)
            step = relevance_for(call, graph, index, head=call is head,
                                 domain=in_domains[0] if in_domains else REAL,
                                 **analyzer._step_options())
        except UnsupportedLayerError as error:  # go on: one refusal lists every gap
            gaps.append((position(call, graph, index), error))
            domains.update((key, REAL) for key in call.outputs)
            continue
        rule = None
        try:  # gaps found choosing the rule or the domains are collected too
            if step.needs_rule:
                reads_input = all(input_space.get(k, False) for k in call.inputs)
                rule = analyzer._choose_rule(call, step, in_domains[0], reads_input)
                step.check_rule(rule)
            out_domains = step.domains(in_domains)
        except UnsupportedLayerError as error:
            gaps.append((position(call, graph, index), error))
            domains.update((key, REAL) for key in call.outputs)
            continue
        if step.needs_rule:
            analyzer.rules[call.name] = rule
            analyzer.domains[call.name] = in_domains[0]
        if step.warning:
            warned.append(step.warning)
        for key, domain in zip(call.outputs, out_domains):
            domains[key] = domain
            input_space[key] = step.keeps_input_space and all(
                input_space.get(k, False) for k in call.inputs)
        analyzer._steps.append((step, rule))
    if gaps:
        raise refusal_for_gaps(analyzer.model, gaps)
    steps = [step for step, _ in analyzer._steps]
    analyzer.token_key = choose_token_input(graph, steps, analyzer.token_input)
    analyzer.embedding_names: list[str] = [
        s.share_name for s in steps if getattr(s, "reports_share", False) and not s.is_token]
    if warned:
        warnings.warn(
            f"{type(analyzer).__name__}: relevance passes unchanged through non-ReLU "
            f"activations, where deep Taylor's assumptions do not hold: {', '.join(warned)}",
            UserWarning, stacklevel=5)
