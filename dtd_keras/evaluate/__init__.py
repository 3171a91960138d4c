"""Measured trust: how faithful and how sane is a heatmap? One module per metric.

=====================  ================================================================
``summary``            seed section 3 over a dataset: conservation error (mean, max),
                       share positive, share consistent, negative fraction
``pixel_flipping``     region perturbation, most relevant first, with AOPC and a random
                       order alongside (after Samek et al. 2017: a fixed grid of
                       patches, not windows around the most relevant locations)
``randomization``      cascading model-parameter randomisation: Spearman / SSIM to the
                       trained model's maps, top layer first (Adebayo et al. 2018)
``continuity``         max ‖R(x) − R(x′)‖₁ / (‖R(x)‖₁ ‖x − x′‖₂) over small
                       perturbations (Montavon et al. 2018; scale-free by default,
                       ``normalize=False`` for the raw ratio)
``token_deletion``     the same for token inputs: tokens replaced by a pad/mask id, most
                       relevant first, against a random order (AOPC)
``RandomBaseline``     random maps with the analyzers' API (conservative, positive,
                       meaningless)
=====================  ================================================================

Every metric returns a frozen object with the numbers, ``to_dict()`` and ``plot()`` (a
matplotlib Figure), and runs on any analyzer, preset, :class:`~dtd_keras.MinMaxDTD` or
baseline.
"""

from __future__ import annotations

from .baseline import RandomBaseline
from .continuity import Continuity, continuity
from .pixel_flipping import PixelFlipping, default_patch_size, pixel_flipping
from .randomization import Randomization, randomization, randomize_layer
from .similarity import spearman, ssim
from .summary import Summary, summary
from .token_deletion import TokenDeletion, token_deletion

__all__ = [
    "Continuity", "PixelFlipping", "RandomBaseline", "Randomization", "Summary",
    "TokenDeletion", "continuity", "default_patch_size", "pixel_flipping", "randomization",
    "randomize_layer", "spearman", "ssim", "summary", "token_deletion",
]
