"""Explain an ImageNet classifier from keras.applications on your own photo.

    python examples/imagenet_photo.py cat.jpg                        # VGG16, DTD (zB)
    python examples/imagenet_photo.py cat.jpg --model resnet50 --preset lrp.composite
    python examples/imagenet_photo.py cat.jpg --weights none --image-size 64   # offline

The script tries ``weights="imagenet"`` (a download of ~500 MB for VGG16 the first time,
cached in ~/.keras/models); ImageNet weights fix the input at 224×224. When the download
fails (no internet), it says so and falls back to random weights (``weights=None``) at
``--image-size``: the pipeline still runs end to end, but the prediction and the heatmap
are then MEANINGLESS. ``--weights none`` skips the download attempt (random weights at
``--image-size``, e.g. 64 for quick tests).

The photo is resized to the model's input size and preprocessed as the model expects;
the input domain of deep Taylor decomposition is the set of preprocessed images: for
VGG16, VGG19 and ResNet50 ("caffe" preprocessing: BGR, ImageNet mean subtracted) the box
``[0 - mean, 255 - mean]`` per channel, so DTD uses the zB rule at the first layer.
(All three are ReLU networks, as deep Taylor decomposition assumes.) Output: a PNG
with the photo, the heatmap and an overlay.
"""

from __future__ import annotations

import argparse
import socket
import sys
import warnings
from pathlib import Path

MODELS = {
    # name: (keras.applications attribute, preprocessing module, preprocessing mode)
    "vgg16": ("VGG16", "vgg16", "caffe"),
    "vgg19": ("VGG19", "vgg19", "caffe"),
    "resnet50": ("ResNet50", "resnet50", "caffe"),
}
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def input_box(mode: str):
    """``dk.Box`` of the preprocessed pixels (per channel, in the model's channel order)."""
    import numpy as np

    import dtd_keras as dk

    if mode != "caffe":
        raise ValueError(f"no input box known for preprocessing mode {mode!r}")
    mean = np.asarray(CAFFE_MEAN_BGR, dtype="float32")
    return dk.Box(0.0 - mean, 255.0 - mean)


def load_model(name: str, weights: str, size: int):
    """``(model, pretrained, input size)``: with ImageNet weights the model's own 224×224
    (its classifier top needs it); random weights at ``size`` when they cannot be
    downloaded, or with ``weights="none"``."""
    import keras

    constructor = getattr(keras.applications, MODELS[name][0])
    if weights == "imagenet":
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(30)  # do not hang forever behind a silent firewall
        try:
            model = constructor(weights="imagenet")
        except Exception as error:  # URL fetch failure, HTTP errors, a broken cache, ...
            reason = " ".join(str(error).split())[:200]
            print(f"could not get the ImageNet weights for {name} ({reason}).\n"
                  f"Is there no internet connection? Falling back to random weights at "
                  f"{size}x{size} (--image-size).", file=sys.stderr)
        else:
            if size != 224:
                print(f"note: ImageNet weights with the classifier top need 224x224 inputs; "
                      f"using 224 instead of --image-size {size}")
            return model, True, 224
        finally:
            socket.setdefaulttimeout(previous)
    warnings.warn(f"{name} has RANDOM weights (weights=None): its prediction and the "
                  "heatmap are meaningless; they only show that the pipeline runs",
                  UserWarning, stacklevel=2)
    return constructor(weights=None, input_shape=(size, size, 3)), False, size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photo", help="an image file (jpg, png, ...)")
    parser.add_argument("--model", choices=sorted(MODELS), default="vgg16",
                        help="keras.applications model (default vgg16)")
    parser.add_argument("--weights", choices=("imagenet", "none"), default="imagenet",
                        help="'imagenet' (download, fall back to random on failure) or "
                             "'none' (random weights, no download)")
    parser.add_argument("--preset", default="deep_taylor.bounded",
                        help="analyzer preset (default deep_taylor.bounded: DTD with zB at "
                             "the input; also e.g. lrp.composite, lrp.epsilon)")
    parser.add_argument("--image-size", type=int, default=224,
                        help="input size with random weights (--weights none, or when the "
                             "ImageNet weights cannot be downloaded; default 224; at least "
                             "32); ImageNet weights always use 224")
    parser.add_argument("--neuron", type=int, default=None,
                        help="class index to explain (default: the top class)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the random weights with --weights none (default 0)")
    parser.add_argument("--out", default="imagenet_photo.png", help="output PNG")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --out file")
    args = parser.parse_args(argv)
    if Path(args.out).exists() and not args.overwrite:
        parser.exit(1, f"{parser.prog}: error: {args.out} already exists; pass --overwrite to "
                       "replace it, or choose another --out\n")
    if not Path(args.photo).is_file():
        parser.error(f"photo not found: {args.photo}")
    if args.image_size < 32:
        parser.error("--image-size must be at least 32")

    import importlib

    import keras
    import numpy as np

    import dtd_keras as dk
    from dtd_keras import image

    keras.utils.set_random_seed(args.seed)
    model, pretrained, size = load_model(args.model, args.weights, args.image_size)
    _, module, mode = MODELS[args.model]
    preprocess = importlib.import_module(f"keras.applications.{module}").preprocess_input

    print(f"{args.model} ({'ImageNet' if pretrained else 'random'} weights), input "
          f"{size}x{size}")
    photo = keras.utils.load_img(args.photo, target_size=(size, size))  # RGB, resized
    pixels = keras.utils.img_to_array(photo)[None]  # (1, size, size, 3), 0..255
    x = preprocess(pixels.copy())
    box = input_box(mode)

    options = {"low": box.low, "high": box.high}
    if args.preset == "deep_taylor":
        options = {"input_domain": box}
    elif args.preset not in ("deep_taylor.bounded", "lrp.composite"):
        options = {}
    analyzer = dk.create_analyzer(args.preset, model, **options)
    explanation = analyzer.explain(x, neuron=args.neuron)
    relevance = explanation.relevance[0]
    neuron = int(explanation.neuron[0])

    label = f"class {neuron}"
    if pretrained:
        try:
            decoded = keras.applications.imagenet_utils.decode_predictions(
                model.predict(x, verbose=0), top=3)[0]
            print("top classes: " + ", ".join(f"{n} ({p:.2f})" for _, n, p in decoded))
            if args.neuron is None:
                label = decoded[0][1]
        except Exception as error:  # the class names are another download
            print(f"(no class names: {' '.join(str(error).split())[:120]})")
    props = explanation.properties()
    print(f"explained {label} (logit {props.explained[0]:.4g}) with {args.preset}: "
          f"Σ relevance {props.total[0]:.4g}, relative conservation error "
          f"{props.relative_error[0]:.2e}, negative fraction {props.negative_fraction[0]:.3f}")
    if not pretrained:
        print("WARNING: random weights, the heatmap is meaningless", file=sys.stderr)

    shown = pixels[0].astype("uint8")
    figure = image.grid(
        [[shown, relevance, image.overlay(shown, relevance, alpha_by_relevance=True,
                                          grayscale=True)]],
        titles=["photo", f"{args.preset}: {label}", "overlay"], panel_size=3.0,
        suptitle=None if pretrained else "random weights: meaningless heatmap")
    path = image.save_png(figure, args.out)
    print(f"wrote {path}")
    del np
    return 0


if __name__ == "__main__":
    sys.exit(main())
