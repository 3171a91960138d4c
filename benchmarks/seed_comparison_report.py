"""The seed comparison's report: the tables, the seed's observations checked against the
measured numbers, and the Figure-2-style picture (``seed_comparison.py`` measures)."""

from __future__ import annotations

from typing import Any

import numpy as np

DTD_KEYS = ("dtd_w2", "dtd_zplus", "dtd_zbox", "dtd_minmax")
LRP_KEYS = ("lrp_eps_small", "lrp_eps_large", "lrp_a1b0", "lrp_a2b1", "lrp_composite")

# (row key, column title, format, networks shown for)
COLUMNS = [
    ("conservation_error", "mean rel. conservation error", "e", ("cnn", "fc")),
    ("share_consistent", "consistent", "%", ("cnn", "fc")),
    ("negative_fraction", "negative fraction", "f", ("cnn", "fc")),
    ("irrelevant_half", "Σ\\|R\\| on irrelevant half", "%", ("cnn", "fc")),
    ("irrelevant_strokes", "Σ\\|R\\| on irrelevant digit's strokes", "%", ("cnn", "fc")),
    ("occlusion_correlation", "Spearman with occlusion share", "f", ("cnn", "fc")),
    ("background_negative", "negative on black background", "%", ("cnn", "fc")),
    ("gini", "Gini of \\|R\\|", "f", ("cnn", "fc")),
    ("stride", "stride artefact", "f", ("cnn",)),
    ("aopc", "AOPC", "f", ("cnn", "fc")),
    ("aopc_random", "AOPC random order", "f", ("cnn", "fc")),
    ("randomization_top", "Spearman after top layer random", "f", ("cnn", "fc")),
    ("randomization_all", "Spearman after all layers random", "f", ("cnn", "fc")),
    ("continuity", "continuity (normalised)", "g", ("cnn", "fc")),
    ("ms_per_sample", "ms / sample", "ms", ("cnn", "fc")),
]


def _fmt(value: float, kind: str) -> str:
    if kind == "e":
        return f"{value:.1e}"
    if kind == "%":
        return f"{100 * value:.0f}%"
    if kind == "ms":
        return f"{value:.2f}"
    if kind == "g":
        return f"{value:.3g}"
    return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"


def table(rows: dict[str, dict], network: str) -> list[str]:
    """The markdown table of one network's rows."""
    columns = [c for c in COLUMNS if network in c[3]]
    head = "| method | " + " | ".join(title for _, title, _, _ in columns) + " |"
    rule = "| --- | " + " | ".join("---:" for _ in columns) + " |"
    body = [f"| {row['label']} | " + " | ".join(_fmt(row[k], kind)
                                                 for k, _, kind, _ in columns) + " |"
            for row in rows.values()]
    return [head, rule, *body]


def _extreme(rows: dict[str, dict], keys: Any, field: str, top: bool = True
             ) -> tuple[str, float]:
    key = (max if top else min)(keys, key=lambda k: rows[k][field])
    return rows[key]["label"], rows[key][field]


def _span(rows: dict[str, dict], keys: Any, field: str) -> str:
    values = [rows[k][field] for k in keys]
    return f"{min(values):.0%}–{max(values):.0%}"


def occlusion_sentence(used: dict[str, float]) -> str:
    """What blacking out each half does to the explained logit."""
    return (f"blacking out the irrelevant half (its digit's strokes set to the background "
            f"−1) moves the explained logit by {used['irrelevant_change']:.0%} on average "
            f"(the top class is kept in {used['irrelevant_kept']:.0%} of pairs), blacking "
            f"out the relevant half by {used['relevant_change']:.0%} (kept in "
            f"{used['relevant_kept']:.0%}); the irrelevant half's share of the two effects "
            f"is {used['share']:.0%}")


def observations(network: dict[str, Any]) -> list[str]:
    """The seed's section 4 observations, each checked against one network's numbers."""
    rows, used = network["rows"], network["occlusion"]
    dtd, lrp = DTD_KEYS, LRP_KEYS
    verdict = {True: "Agrees", False: "Disagrees"}
    lines = []
    neg = {k: rows[k]["negative_fraction"] for k in lrp}
    a2b1 = neg["lrp_a2b1"]
    ranked = sorted(neg, key=neg.get, reverse=True)
    lines.append(
        f"*LRP α=2, β=1 produces a large amount of negative relevance on MNIST.* "
        f"{verdict[a2b1 >= 0.1]}: its negative fraction is {a2b1:.2f} (rank "
        f"{ranked.index('lrp_a2b1') + 1} of {len(lrp)} LRP variants; largest: "
        f"{rows[ranked[0]]['label']} {neg[ranked[0]]:.2f}), DTD's at most "
        f"{max(rows[k]['negative_fraction'] for k in dtd):.2f}.")
    dtd_half = [rows[k]["irrelevant_half"] for k in dtd]
    lrp_half = [rows[k]["irrelevant_half"] for k in lrp]
    random_half = rows["random"]["irrelevant_half"]
    follows = max(dtd_half) <= used["share"] + 0.1      # DTD near the network's own use
    agrees = follows and max(lrp_half) > max(dtd_half) + 0.05
    if follows:
        reading = "close to the network's use"
    elif abs(min(dtd_half) - random_half) <= 0.1:
        reading = (f"near a random map's {random_half:.0%}: it does not reflect how the "
                   "network uses the digits")
    else:
        reading = "far from the network's use"
    compared = ("as much as LRP or more" if min(dtd_half) >= min(lrp_half)
                else "less than some LRP variants")
    corr = {name: [rows[k]["occlusion_correlation"] for k in keys]
            for name, keys in (("dtd", dtd), ("lrp", lrp))}
    lines.append(
        f"*Some LRP parameters leave residual relevance on the irrelevant digit (DTD does "
        f"not).* {verdict[agrees]}. The network's own use, measured by occlusion: "
        f"{occlusion_sentence(used)}. A map that followed the network would put about "
        f"{used['share']:.0%} of Σ|R| on the irrelevant half, all of it on the strokes "
        f"(blacking out leaves the background as it is). DTD puts "
        f"{_span(rows, dtd, 'irrelevant_half')} there, {compared} "
        f"(LRP {_span(rows, lrp, 'irrelevant_half')}, the gradient "
        f"{rows['gradient']['irrelevant_half']:.0%}), {reading}. On the irrelevant digit's "
        f"strokes: DTD {_span(rows, dtd, 'irrelevant_strokes')}, LRP "
        f"{_span(rows, lrp, 'irrelevant_strokes')}, a random map "
        f"{rows['random']['irrelevant_strokes']:.0%}; the rest of the half's share lies on "
        "its black background, which every rule that reads x·w reaches at x = −1 "
        "(x·w = −w ≠ 0). Across pairs, the share on the irrelevant half follows the "
        f"network's occlusion share weakly: Spearman {min(corr['dtd']):.2f}–"
        f"{max(corr['dtd']):.2f} for DTD, {min(corr['lrp']):.2f}–{max(corr['lrp']):.2f} for "
        "LRP. (A gradient's share on a region is no evidence that the network uses it.)")
    lrp_label, lrp_value = _extreme(rows, lrp, "background_negative")
    dtd_bg = max(rows[k]["background_negative"] for k in dtd)
    lines.append(
        f"*Some LRP parameters put negative relevance in the black areas around the "
        f"digits.* {verdict[lrp_value > max(dtd_bg, 0.01)]}: up to {lrp_value:.0%} of "
        f"Σ|R| is negative on black pixels ({lrp_label}); DTD {dtd_bg:.0%} (positive by "
        "construction).")
    gini_lrp = _extreme(rows, lrp, "gini")
    gini_dtd = _extreme(rows, dtd, "gini")
    sharper = (f"*LRP heatmaps are sharper than Taylor-based heatmaps and less subject to "
               f"the stride artefact.* Sharper: {verdict[gini_lrp[1] > gini_dtd[1]].lower()} "
               f"(Gini of |R| up to {gini_lrp[1]:.2f}, {gini_lrp[0]}, against "
               f"{gini_dtd[1]:.2f} for DTD, {gini_dtd[0]}).")
    if network.get("convolutional", True):
        stride_lrp = _extreme(rows, lrp, "stride", top=False)
        stride_dtd = _extreme(rows, dtd, "stride", top=False)
        sharper += (
            f" Stride artefact (share of the spectral power of |R| at period 2, the first "
            f"convolution's stride): {verdict[stride_lrp[1] < stride_dtd[1]].lower()}, from "
            f"{stride_lrp[1]:.2f} ({stride_lrp[0]}) for LRP against {stride_dtd[1]:.2f} at "
            f"best for DTD ({stride_dtd[0]}), {rows['random']['stride']:.2f} for a random "
            "map; the grid is plain in the figure.")
    else:
        sharper += " Stride artefact: no convolution here."
    lines.append(sharper)
    cons = {k: rows[k]["conservation_error"] for k in dtd}
    consistent = {k: rows[k]["share_consistent"] for k in dtd}
    lines.append(
        "*Deep Taylor decomposition is consistent (supplement Propositions 1–3).* "
        f"{verdict[consistent['dtd_w2'] == 1 and consistent['dtd_zbox'] == 1]} for w² and "
        f"zᴮ: mean error {cons['dtd_w2']:.0e} / {cons['dtd_zbox']:.0e}, "
        f"{consistent['dtd_w2']:.0%} / {consistent['dtd_zbox']:.0%} consistent (hidden "
        f"biases ≤ 0, as the propositions assume). z⁺ on pixels in [-1, 1] is outside "
        f"Proposition 2 (inputs not ≥ 0; the engine uses (x·w)⁺ there), yet "
        f"{consistent['dtd_zplus']:.0%} consistent. Min-max conserves its relevance "
        f"model's output, not f(x): its error {cons['dtd_minmax']:.0e} is the fit error "
        f"(held-out R² {rows['dtd_minmax'].get('r2', float('nan')):.2f}); its maps are "
        f"positive ({rows['dtd_minmax']['share_positive']:.0%}).")
    return lines


def beyond(rows: dict[str, dict]) -> list[str]:
    """What the faithfulness and sanity metrics add (not in the seed)."""
    rnd = rows["random"]
    methods = [k for k in rows if k != "random"]
    names = lambda keys: ", ".join(rows[k]["label"] for k in keys) or "none"  # noqa: E731
    best = _extreme(rows, methods, "aopc")
    dtd_best = _extreme(rows, DTD_KEYS, "aopc")
    above_dtd = [k for k in methods if rows[k]["aopc"] > dtd_best[1]]
    below_random = [k for k in methods if rows[k]["aopc"] <= rows[k]["aopc_random"]]
    drop = [k for k in methods if rows[k]["randomization_all"] < 0.6]
    smooth = _extreme(rows, methods, "continuity", top=False)
    rough = _extreme(rows, methods, "continuity")
    eps_small, eps_large = (rows[k]["continuity"] for k in ("lrp_eps_small",
                                                           "lrp_eps_large"))
    dtd_values = [rows[k]["continuity"] for k in DTD_KEYS]
    return [
        f"Section-3 properties do not measure faithfulness: the random baseline is "
        f"conservative and positive by construction ({rnd['share_consistent']:.0%} "
        f"consistent), yet its AOPC {rnd['aopc']:.2f} is that of the random order "
        f"({rnd['aopc_random']:.2f}).",
        f"AOPC: the most faithful map is {best[0]} ({best[1]:.2f}); the best DTD is "
        f"{dtd_best[0]} ({dtd_best[1]:.2f}). Above it: {names(above_dtd)}. At or below "
        f"the random order: {names(below_random)}.",
        f"Cascading randomisation: with the top weighted layer random, DTD maps keep a rank "
        f"correlation of at least {min(rows[k]['randomization_top'] for k in DTD_KEYS):.2f} "
        f"with the trained maps, and "
        f"{min(rows[k]['randomization_all'] for k in DTD_KEYS):.2f}–"
        f"{max(rows[k]['randomization_all'] for k in DTD_KEYS):.2f} with every layer "
        f"random; below 0.6 with every layer random: {names(drop)}. " + (
            "The z⁺-type rules follow the input and the network's structure more than its "
            "weights here (what Adebayo et al. 2018 and Sixt et al. 2020 describe): a "
            "caution against reading DTD maps as evidence of what the network learned."
            if min(rows[k]["randomization_all"] for k in DTD_KEYS) >= 0.6 else
            "DTD's maps here do change with the weights."),
        f"Continuity (normalised by ‖R(x)‖₁, so methods in different units compare): "
        f"{smooth[0]} is the smoothest ({smooth[1]:.3g}), {rough[0]} the roughest "
        f"({rough[1]:.3g}; a random map {rnd['continuity']:.3g}); DTD "
        f"{min(dtd_values):.3g}–{max(dtd_values):.3g}; LRP-ε with ε = 0.01 "
        f"{eps_small:.3g} against {eps_large:.3g} with ε = 1 ({eps_small / eps_large:.1f}×); "
        f"the gradient {rows['gradient']['continuity']:.3g}, gradient × input "
        f"{rows['input_x_gradient']['continuity']:.3g}.",
    ]


def _run_line(result: dict) -> str:
    env, nets = result["environment"], result["networks"]
    return (f"Total {result['seconds']:.0f} s on {env['cpus']} CPU cores ({env['platform']}), "
            f"load average {env['load_start']:.2f} at the start and {env['load_end']:.2f} at "
            "the end (the machine was shared with other jobs, so times are upper bounds); "
            f"training took {nets['cnn']['train_seconds']:.0f} s (CNN) and "
            f"{nets['fc']['train_seconds']:.0f} s (fully connected).")


def _minmax_line(network: dict, layer: str, settings: dict) -> str:
    rows = network["rows"]
    return (f"DTD min-max: relevance model on layer `{layer}` (pool size 4), fitted on "
            f"{settings['minmax_train']} training pairs for {settings['minmax_epochs']} "
            f"epochs in {network['minmax_fit_seconds']:.1f} s; held-out R² "
            + ", ".join(f"`{k}` {v:.3f}" for k, v in network["minmax_r2"].items()) + ". "
            "Randomisation cascade (top first): "
            + ", ".join(f"`{n}`" for n in next(iter(rows.values()))["randomization_layers"])
            + "; min-max is refitted for every randomised model.")


def markdown(result: dict) -> str:
    """``seed_comparison.md``: both networks' tables and the checked observations."""
    s, c = result["settings"], result["constants"]
    cnn, fc = result["networks"]["cnn"], result["networks"]["fc"]
    lines = [
        "# The seed's comparison, measured",
        "",
        "Generated by `python benchmarks/seed_comparison.py"
        + (" --quick" if result["quick"] else "") + "` (see its docstring for the setting "
        "and every metric's definition). Two MNIST digits side by side (28×56, pixels in "
        "[-1, 1]); the digit from 0–3 decides the label, the digit from 4–9 is irrelevant. "
        f"Metrics on {s['eval']} held-out pairs (AOPC: {s['flip']}, {s['flip_steps']} steps "
        f"of {c['patch']}×{c['patch']} patches, uniform noise in [-1, 1]; randomisation: "
        f"{s['random']}; continuity: {s['continuity']} × {s['continuity_samples']} "
        f"perturbations of L2 norm {c['radius']}, **normalised**: max ‖R(x) − R(x′)‖₁ / "
        "(‖R(x)‖₁ ‖x − x′‖₂), scale-free). \"Irrelevant half\" is the 28×28 half holding "
        "the irrelevant digit, mostly black background; its \"strokes\" are that half's "
        "pixels above the background. \"Spearman with occlusion share\": rank correlation, "
        "across pairs, of the method's share on the irrelevant half with the network's "
        "(below).",
        "",
        "## A small CNN",
        "",
        f"Conv 5×5/2 → Conv 3×3/2 → Dense 100 → Dense 4 logits, ReLU, hidden biases ≤ 0; "
        f"test accuracy {cnn['accuracy']:.3f} on {s['test_pairs']} held-out pairs. The "
        f"network's use of each half, by occlusion: {occlusion_sentence(cnn['occlusion'])}.",
        "",
        "![heatmaps](seed_comparison.png)",
        "",
        *table(cnn["rows"], "cnn"),
        "",
        _minmax_line(cnn, "dense1", s),
        "",
        "### Against the seed's section 4",
        "",
        *[f"- {line}" for line in cnn["observations"]],
        "- *DTD heatmaps depend less on the model and data set than LRP with fixed "
        "parameters.* Not tested: two networks on one data set (the second below) are "
        "too few.",
        "",
        "### Beyond the seed: faithfulness and sanity",
        "",
        *[f"- {line}" for line in cnn["beyond"]],
        "",
        "## Closer to the paper: a fully connected detection/sum-pooling network",
        "",
        "The supplement's network (section 1): detection neurons max(0, Σ x_i w_ij + b_j) "
        "with b_j ≤ 0, then sum pooling. Here: 1568 pixels → 400 detection neurons → sum "
        "pooling in groups of 4 → 100 → 400 detection neurons → sum pooling in groups of "
        "100 → 4 class scores (pooling as `AveragePooling1D`, a constant factor from a "
        f"sum; every score ≥ 0). Test accuracy {fc['accuracy']:.3f}. Occlusion: "
        f"{occlusion_sentence(fc['occlusion'])}.",
        "",
        *table(fc["rows"], "fc"),
        "",
        _minmax_line(fc, "detect2", s),
        "",
        *[f"- {line}" for line in fc["observations"]],
        *[f"- {line}" for line in fc["beyond"]],
        "",
        "## Run",
        "",
        _run_line(result),
        "",
    ]
    return "\n".join(lines)


def figure(x: np.ndarray, maps: dict[str, np.ndarray], rows: dict[str, dict],
           low: float, high: float) -> Any:
    """Figure-2 style: the inputs and every method's heatmap (red +, blue −)."""
    from matplotlib.figure import Figure

    from dtd_keras import image

    count = len(x)
    fig = Figure(figsize=(2.3 * count + 1.6, 1.25 * (len(maps) + 1)), dpi=110,
                 layout="constrained")
    axes = fig.subplots(len(maps) + 1, count, squeeze=False)
    labels = ["input"] + [
        f"{rows[k]['label']}\ncons {rows[k]['conservation_error']:.0e} "
        f"neg {rows[k]['negative_fraction']:.2f}" for k in maps]
    for r, (label, panels) in enumerate(zip(labels, [None, *maps.values()])):
        for c in range(count):
            ax = axes[r, c]
            if panels is None:
                ax.imshow(x[c, ..., 0], cmap="gray", vmin=low, vmax=high)
            else:
                ax.imshow(image.heatmap(panels[c], cmap="bwr"), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("Held-out two-digit images (label: the digit 0–3) and each method's "
                 "heatmap (red +, blue −, per-map scale), small CNN", fontsize=10)
    return fig
