"""The ``dtd-keras`` argument parser. Imports neither TensorFlow nor Keras (nor numpy), so
``--help`` and ``--version`` answer at once."""

from __future__ import annotations

import argparse

__all__ = ["PRESET_NAMES", "PROG", "build_parser"]

PROG = "dtd-keras"

PRESET_NAMES: tuple[str, ...] = (
    "attn_lrp", "cp_lrp", "deep_taylor", "deep_taylor.bounded", "gradient", "input_t_gradient",
    "input_x_gradient",
    "lrp.alpha_1_beta_0", "lrp.alpha_2_beta_1", "lrp.composite", "lrp.epsilon", "lrp.flat",
    "lrp.gamma", "lrp.w_square", "lrp.z", "lrp.z_plus",
)
"""The preset names ``--help`` lists (``dtd_keras.PRESETS``, written out so that the help
needs no TensorFlow; a test keeps the two equal). ``--preset`` is checked against
``dtd_keras.PRESETS`` itself."""

DOMAIN_HELP = (
    "the range of the model inputs: 'LOW,HIGH' (a box, e.g. 0,1, 0,255 or -1,1), "
    "'real' (any value) or 'positive' (>= 0). "
    "It selects the input rule: deep_taylor gets input_domain=Box(LOW, HIGH) (zB rule), "
    "'real' (w2 rule) or 'positive' (z+ rule); deep_taylor.bounded and lrp.composite get "
    "low=LOW, high=HIGH (deep_taylor.bounded needs a box; lrp.composite without a box uses "
    "w2 at the input); the other presets keep their own rules. Default: 0,1"
)

EXPLAIN_DESCRIPTION = """\
Explain MODEL's output for each sample of INPUTS and write, to --out:
  relevance.npy        relevance, float32, shaped (samples, *input); or
  relevance.zarr       the same as a chunked store (dk.load_results), written
                       chunk by chunk as the inputs are read and explained
                       (--store zarr, or more than %(zarr)d samples; --resume)
  heatmaps/NNNN_*.png  one heatmap per sample (red +, blue -)
  properties.json      per sample: neuron, explained_logit,
                       relevance_sum, conservation_error,
                       relative_conservation_error, negative_fraction,
                       negative_relevance, positive, consistent,
                       source file; plus a summary.
--out must be a new or empty folder unless --overwrite (or --resume) is given.

INPUTS are .npy/.npz arrays (one sample shaped like the model input, or a batch),
images (png, jpg, ...) or folders (their .npy, .npz and image files, sorted by name).
Images are resized to the model's input size and converted to its channel count
(1: grey, 3: RGB). Image pixels 0..255 are scaled linearly onto the --domain box
(e.g. 0,1), or onto --pixel-range; with --domain real/positive and no --pixel-range
they are left raw (0..255). Inputs without samples (an empty folder, an array of
shape (0, ...)) give empty results."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit status 2)."""

    def error(self, message: str):
        self.exit(2, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


def _model_arguments(parser: argparse.ArgumentParser, domain_note: str,
                     positional: tuple[str, dict]) -> None:
    """MODEL, the command's second positional, --preset, --domain and --unsafe."""
    parser.add_argument("model", metavar="MODEL", help="a Keras model file (.keras or .h5)")
    parser.add_argument(positional[0], **positional[1])
    parser.add_argument("--preset", default="deep_taylor", metavar="NAME",
                        help=f"the analyzer (default deep_taylor); one of "
                             f"{', '.join(PRESET_NAMES)}")
    parser.add_argument("--domain", default="0,1", help=DOMAIN_HELP + domain_note)
    parser.add_argument("--unsafe", action="store_true",
                        help="load models that contain Python code (Lambda layers); only "
                             "for files you trust")


ZARR_ABOVE = 1024
"""``--store auto`` writes relevance.zarr for more samples than this."""


def build_parser() -> argparse.ArgumentParser:
    """The ``dtd-keras`` argument parser (subcommands explain, export, report, demo)."""
    from .. import __version__

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--traceback", action="store_true",
                        help="on errors, show the Python traceback instead of one line")
    common.add_argument("-q", "--quiet", action="store_true",
                        help="print nothing but errors (no progress bar)")
    common.add_argument("-v", "--verbose", action="store_true",
                        help="show TensorFlow's own log lines (hidden by default)")

    parser = _Parser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Deep Taylor decomposition / LRP explanations of Keras models.",
        epilog="Start with 'dtd-keras demo --out demo_out', then 'dtd-keras explain "
               "demo_out/model.keras demo_out/digits.npy --out explained'.\n"
               "'dtd-keras COMMAND --help' describes each command.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                     parser_class=_Parser)

    explain = commands.add_parser(
        "explain", parents=[common], help="explain a saved model's decisions on input files",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=EXPLAIN_DESCRIPTION.replace("%(zarr)d", str(ZARR_ABOVE)),
        epilog="example: dtd-keras explain model.keras x.npy cat.png --domain 0,1 --out out")
    _model_arguments(explain, ". Inputs outside the domain are an error for every preset.",
                     ("inputs", dict(metavar="INPUTS", nargs="+",
                                     help="input files or folders: .npy, .npz or images")))
    explain.add_argument("--neuron", type=int, default=None, metavar="K",
                         help="explain output neuron K for every sample (default: each "
                              "sample's top logit)")
    explain.add_argument("--batch-size", type=int, default=32, metavar="N",
                         help="samples per batch (default 32, at most the number of "
                              "samples); a progress bar shows for more than one batch")
    explain.add_argument("--out", default="dtd_explanations", metavar="DIR",
                         help="output folder, new or empty (default dtd_explanations)")
    explain.add_argument("--overwrite", action="store_true",
                         help="write into a --out folder that is not empty: replaces "
                              "relevance.npy, relevance.zarr, properties.json and the "
                              "heatmaps of an earlier run (other files stay)")
    explain.add_argument("--pixel-range", default=None, metavar="LOW,HIGH",
                         help="scale image pixels 0..255 onto LOW,HIGH (default: the "
                              "--domain box; raw for real/positive)")
    explain.add_argument("--npz-key", default=None, metavar="KEY",
                         help="the array to use from .npz files holding several (default: "
                              "the only one, or 'x')")
    explain.add_argument("--cmap", default="bwr", choices=("bwr", "cold_hot"),
                         help="heatmap colours (default bwr)")
    explain.add_argument("--store", default="auto", choices=("auto", "npy", "zarr"),
                         help="where relevance goes: relevance.npy, or relevance.zarr written "
                              "by dk.analyze_dataset (chunked, committed as it goes, "
                              "resumable); auto (default): zarr above "
                              f"{ZARR_ABOVE} samples")
    explain.add_argument("--resume", action="store_true",
                         help="continue an interrupted relevance.zarr run in --out (same "
                              "command otherwise)")

    export = commands.add_parser(
        "export", parents=[common], help="export an explainer as a TensorFlow SavedModel",
        description="Build the analyzer for MODEL and write it as a SavedModel to OUT_DIR "
                    "(signatures serving_default and analyze_neuron; loads with plain "
                    "tf.saved_model.load, no dtd_keras needed).",
        epilog="example: dtd-keras export model.keras explainer --domain 0,1")
    _model_arguments(export, ". The SavedModel rejects inputs outside the domain its "
                             "analyzer declares.",
                     ("out_dir", dict(metavar="OUT_DIR", help="the SavedModel folder to write")))
    export.add_argument("--overwrite", action="store_true",
                        help="replace an existing SavedModel in OUT_DIR")

    report = commands.add_parser(
        "report", parents=[common], help="write a results store as an HTML report to browse",
        description="Write a static HTML site of the results store STORE (written by "
                    "dk.analyze_dataset or 'dtd-keras explain --store zarr') to --out: a "
                    "gallery of input/heatmap pairs, sortable and filterable, per-class mean "
                    "maps, histograms of the conservation properties, the evaluations "
                    "attached to the store (dk.reporting.attach) and concept reference "
                    "samples. Open DIR/index.html from disk: no server, nothing fetched. "
                    "Writing it again into the same --out keeps the thumbnails of the same "
                    "store.",
        epilog="example: dtd-keras report demo_out/explained.zarr --out report "
               "--data demo_out/heldout.npy")
    report.add_argument("store", metavar="STORE", help="the results store (a .zarr folder)")
    report.add_argument("--out", required=True, metavar="DIR",
                        help="output folder: new, empty or an earlier report")
    report.add_argument("--data", default=None, metavar="PATH",
                        help="the data the store explained (.npy, .npz or the image "
                             "folder), for input thumbnails; without it: heatmaps only")
    report.add_argument("--concepts", nargs="+", default=None, metavar="PATH",
                        help="reference samples saved by dk.concepts.reference_samples(...)"
                             ".save(PATH)")
    report.add_argument("--page-size", type=int, default=48, metavar="N",
                        help="gallery items per page (default 48)")
    report.add_argument("--thumb-size", type=int, default=64, metavar="PX",
                        help="thumbnail size in pixels, the longer side (default 64)")
    report.add_argument("--allow-partial", action="store_true",
                        help="report an unfinished store (its done samples)")
    report.add_argument("--overwrite", action="store_true",
                        help="write into a --out folder that is not a report (its other "
                             "files stay; refused where data/, index.html, … are taken), "
                             "and draw every thumbnail again")

    demo = commands.add_parser(
        "demo", parents=[common], help="train a digits CNN and compare DTD with LRP",
        description="Train a small CNN on scikit-learn's 8x8 digits (no download), explain "
                    "the held-out digits with DTD (w2, z+, zB input rules), LRP-epsilon and "
                    "LRP-alpha2beta1, and write demo.png, results.json, results.md, "
                    "model.keras and digits.npy to --out.")
    demo.add_argument("--out", default="demo_out", metavar="DIR",
                      help="output folder, new or empty (default demo_out)")
    demo.add_argument("--overwrite", action="store_true",
                      help="write into a --out folder that is not empty: replaces an "
                           "earlier demo's outputs there (other files stay; files of the "
                           "same names that the demo did not write are never replaced)")
    demo.add_argument("--epochs", type=int, default=None, metavar="N",
                      help="training epochs (default 20; 2 with --quick)")
    demo.add_argument("--seed", type=int, default=0, metavar="N",
                      help="random seed (default 0)")
    demo.add_argument("--quick", action="store_true",
                      help="a few seconds, for tests: 2 epochs, 60 digits explained, 3 rows")
    return parser
