"""Reading input files (arrays, images, folders of them) into one float32 batch.

Shared by the command line (``dtd-keras explain``) and :func:`dtd_keras.analyze_dataset`
(image folders); needs numpy only (Pillow for images). Problems raise
:class:`~dtd_keras.errors.InputFileError` naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import InputFileError

__all__ = ["ARRAY_SUFFIXES", "IMAGE_SUFFIXES", "expand_inputs", "read_inputs", "show_shape"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
ARRAY_SUFFIXES = (".npy", ".npz")


def show_shape(shape: tuple) -> str:
    """``(batch, 8, 8, 1)``."""
    return "(" + ", ".join("batch" if i == 0 else str(d) for i, d in enumerate(shape)) + ")"


def expand_inputs(paths: list[str]) -> list[str]:
    """The input files: each file as given, each folder as its array and image files
    (sorted by name, not recursive, hidden files left out). Missing paths are an error."""
    files: list[str] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files += [str(p) for p in sorted(path.iterdir())
                      if p.is_file() and not p.name.startswith(".")
                      and p.suffix.lower() in ARRAY_SUFFIXES + IMAGE_SUFFIXES]
        elif path.is_file():
            files.append(name)
        elif path.exists():
            raise InputFileError(f"input {name} is not a file or folder")
        else:
            raise InputFileError(f"input file not found: {name}")
    return files


def _fits(sample: tuple, expected: tuple) -> bool:
    return len(sample) == len(expected) and all(
        e is None or e == s for s, e in zip(sample, expected))


def _read_array(path: Path, npz_key: str | None) -> np.ndarray:
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as error:
        raise InputFileError(f"cannot read {path}: {' '.join(str(error).split())}") from None
    except OSError as error:
        raise InputFileError(f"cannot read {path}: {error}") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            keys = list(loaded.files)
            if npz_key is not None:
                if npz_key not in keys:
                    raise InputFileError(f"{path} has no array {npz_key!r}; it holds {keys}")
                key = npz_key
            elif len(keys) == 1:
                key = keys[0]
            elif "x" in keys:
                key = "x"
            else:
                raise InputFileError(f"{path} holds several arrays {keys}; choose one with "
                                     "--npz-key")
            array = loaded[key]
    else:
        array = loaded
    if np.iscomplexobj(array):
        raise InputFileError(f"{path} holds a complex array ({array.dtype}); models take real "
                       "numbers: save its real part (x.real) or magnitude (np.abs(x)) instead")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise InputFileError(f"{path} holds a {array.dtype} array, not numbers")
    return array


def _image_size(image_shape: tuple, path: Path) -> tuple[int | None, int | None, int | None]:
    """(height, width, channels or None for (batch, H, W) models) for image files."""
    if len(image_shape) == 4 and image_shape[3] in (1, 3, 4):
        return image_shape[1], image_shape[2], image_shape[3]
    if len(image_shape) == 3:
        return image_shape[1], image_shape[2], None
    raise InputFileError(f"{path} is an image, but the model input {show_shape(image_shape)} is "
                   "not an image (batch, height, width[, 1|3|4 channels]); give a .npy array")


def _read_image(path: Path, shape: tuple, pixel_range: tuple[float, float] | None
                ) -> np.ndarray:
    height, width, channels = _image_size(shape, path)
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise InputFileError(f"reading the image {path} needs Pillow: pip install "
                       "'dtd-keras[viz]' (or give the pixels as a .npy array)") from None
    try:
        with Image.open(path) as opened:
            mode = {None: "L", 1: "L", 3: "RGB", 4: "RGBA"}[channels]
            picture = opened.convert(mode)
            size = (width or picture.width, height or picture.height)
            if picture.size != size:
                picture = picture.resize(size, Image.Resampling.BILINEAR)
            pixels = np.asarray(picture, dtype=np.float32)
    except (UnidentifiedImageError, OSError) as error:
        raise InputFileError(f"cannot read the image {path}: {error}") from None
    if channels == 1:
        pixels = pixels[..., None]
    if pixel_range is not None:
        low, high = pixel_range
        pixels = low + (high - low) * (pixels / 255.0)
    return pixels[None]


def read_inputs(paths: list[str], shape: tuple, pixel_range: tuple[float, float] | None,
                npz_key: str | None = None) -> tuple[np.ndarray, list[dict]]:
    """Load the input files and folders as one float32 batch shaped like the model input.

    ``.npy``/``.npz`` arrays are one sample (shaped like the model input without the
    batch axis) or a batch (possibly of 0 samples); images are resized to the model's
    height and width (kept if the model leaves them free) and converted to its channel
    count, pixel values 0..255 mapped linearly onto ``pixel_range`` (left raw when
    None); folders contribute their array and image files (:func:`expand_inputs`).
    Returns the batch (0 samples when the inputs hold none; free dimensions are then 0)
    and, per sample, ``{"source": path, "source_index": i}``.
    """
    batches, sources = [], []
    sample_shape = shape[1:]
    for name in expand_inputs(paths):
        path = Path(name)
        suffix = path.suffix.lower()
        if suffix in ARRAY_SUFFIXES:
            array = _read_array(path, npz_key)
            if _fits(array.shape, sample_shape):
                array = array[None]
            elif not (array.ndim == len(shape) and _fits(array.shape[1:], sample_shape)):
                raise InputFileError(
                    f"{name}: array of shape {array.shape} does not fit the model input "
                    f"{show_shape(shape)} (give one sample or a batch)")
        elif suffix in IMAGE_SUFFIXES:
            array = _read_image(path, shape, pixel_range)
        else:
            raise InputFileError(
                f"{name}: unknown input type {suffix or '(no suffix)'}; give .npy, .npz or an "
                f"image ({', '.join(IMAGE_SUFFIXES)})")
        batches.append(array.astype(np.float32))
        sources += [{"source": name, "source_index": i} for i in range(array.shape[0])]
    shapes = {b.shape[1:] for b in batches if len(b)}
    if len(shapes) > 1:
        raise InputFileError(
            f"the inputs have different shapes {sorted(shapes)}; the model input is "
            f"{show_shape(shape)} (give images of one size or a model with a fixed input size)")
    if not sources:
        known = next((b.shape[1:] for b in batches), None)  # an array of 0 samples
        empty_shape = known if known is not None else tuple(d or 0 for d in sample_shape)
        return np.zeros((0, *empty_shape), np.float32), []
    return np.concatenate([b for b in batches if len(b)], axis=0), sources
