"""Reading input files (arrays, images, folders of them) as one float32 batch.

Shared by the command line (``dtd-keras explain``) and :func:`dtd_keras.analyze_dataset`
(image folders); needs numpy only (Pillow for images). Problems raise
:class:`~dtd_keras.errors.InputFileError` naming the file.

:func:`open_inputs` reads only what it needs to know the batch's shape (array headers;
image sizes where the model leaves them free) and reads samples on demand
(``inputs[a:b]``): ``.npy`` files memory-mapped, an ``.npz`` array one file at a time,
images one at a time; so a large input set streams through a chunked computation.
:func:`read_inputs` reads everything at once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputFileError

__all__ = ["ARRAY_SUFFIXES", "IMAGE_SUFFIXES", "PILLOW_EXTRA", "InputFiles", "expand_inputs",
           "open_inputs", "read_inputs", "show_shape"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
ARRAY_SUFFIXES = (".npy", ".npz")
PILLOW_EXTRA = "viz"
"""The extra of ``pip install dtd-keras[…]`` that installs Pillow (for image files)."""

Check = Callable[[np.ndarray, str], None]


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


def _load_array(path: Path, npz_key: str | None) -> np.ndarray:
    """The array in ``path``: a read-only memory map for ``.npy``, loaded for ``.npz``."""
    try:
        loaded = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as error:
        raise InputFileError(f"cannot read {path}: {' '.join(str(error).split())}") from None
    except OSError as error:
        raise InputFileError(f"cannot read {path}: {error}") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        return loaded
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
        try:
            return loaded[key]
        except (ValueError, OSError) as error:
            raise InputFileError(f"cannot read {path}: {' '.join(str(error).split())}"
                                 ) from None


def _check_numbers(array: np.ndarray, path: Path) -> None:
    if np.iscomplexobj(array):
        raise InputFileError(f"{path} holds a complex array ({array.dtype}); models take real "
                             "numbers: save its real part (x.real) or magnitude (np.abs(x)) "
                             "instead")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise InputFileError(f"{path} holds a {array.dtype} array, not numbers")


def _image_size(image_shape: tuple, path: Path) -> tuple[int | None, int | None, int | None]:
    """(height, width, channels or None for (batch, H, W) models) for image files."""
    if len(image_shape) == 4 and image_shape[3] in (1, 3, 4):
        return image_shape[1], image_shape[2], image_shape[3]
    if len(image_shape) == 3:
        return image_shape[1], image_shape[2], None
    raise InputFileError(f"{path} is an image, but the model input {show_shape(image_shape)} "
                         "is not an image (batch, height, width[, 1|3|4 channels]); give a "
                         ".npy array")


def _pillow(path: Path) -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise InputFileError(f"reading the image {path} needs Pillow: pip install "
                             f"'dtd-keras[{PILLOW_EXTRA}]' (or give the pixels as a .npy "
                             "array)") from None
    return Image


def _image_shape(path: Path, shape: tuple) -> tuple:
    """The sample shape an image file gives: the model's height and width, or the
    file's own where the model leaves them free (read from its header)."""
    height, width, channels = _image_size(shape, path)
    if height is None or width is None:
        image = _pillow(path)
        try:
            with image.open(path) as opened:
                height, width = height or opened.height, width or opened.width
        except OSError as error:  # UnidentifiedImageError is an OSError
            raise InputFileError(f"cannot read the image {path}: {error}") from None
    return (height, width) + ((channels,) if channels else ())


def _read_image(path: Path, shape: tuple, pixel_range: tuple[float, float] | None
                ) -> np.ndarray:
    height, width, channels = _image_size(shape, path)
    image = _pillow(path)
    try:
        with image.open(path) as opened:
            mode = {None: "L", 1: "L", 3: "RGB", 4: "RGBA"}[channels]
            picture = opened.convert(mode)
            size = (width or picture.width, height or picture.height)
            if picture.size != size:
                picture = picture.resize(size, image.Resampling.BILINEAR)
            pixels = np.asarray(picture, dtype=np.float32)
    except OSError as error:  # UnidentifiedImageError is an OSError
        raise InputFileError(f"cannot read the image {path}: {error}") from None
    if channels == 1:
        pixels = pixels[..., None]
    if pixel_range is not None:
        low, high = pixel_range
        pixels = low + (high - low) * (pixels / 255.0)
    return pixels[None]


@dataclass(frozen=True)
class _File:
    """One input file: its samples ``start … start + count`` of the batch."""

    name: str
    image: bool
    start: int
    count: int
    sample_shape: tuple
    one_sample: bool  # an array holding one sample (no batch axis)


class InputFiles:
    """The samples of input files as one float32 batch, read on demand.

    ``inputs[a:b]`` reads only the files holding samples ``a … b - 1`` (``.npy``
    memory-mapped, the array of an ``.npz`` file kept while it is read, images decoded
    one by one); ``np.asarray(inputs)`` reads all. ``check(piece, name)``, when given,
    sees every piece of a file as it is read (e.g. to check the input domain).
    Made by :func:`open_inputs`.
    """

    dtype = np.dtype(np.float32)

    def __init__(self, files: list[_File], shape: tuple, model_shape: tuple,
                 pixel_range: tuple[float, float] | None, npz_key: str | None,
                 check: Check | None = None) -> None:
        self._files = files
        self.shape = shape
        """``(samples, *sample shape)``."""
        self._model_shape = model_shape
        self._pixel_range = pixel_range
        self._npz_key = npz_key
        self._check = check
        self._cached: tuple[str, np.ndarray] | None = None  # the last .npz array read
        self.sources = [{"source": f.name, "source_index": i}
                        for f in files for i in range(f.count)]
        """Per sample, ``{"source": path, "source_index": i}``."""

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return int(self.shape[0])

    def _array(self, file: _File) -> np.ndarray:
        path = Path(file.name)
        if path.suffix.lower() == ".npy":
            array = _load_array(path, self._npz_key)
        elif self._cached is not None and self._cached[0] == file.name:
            array = self._cached[1]
        else:
            array = _load_array(path, self._npz_key)
            self._cached = (file.name, array)
        return array[None] if file.one_sample else array

    def _read(self, file: _File, lo: int, hi: int) -> np.ndarray:
        """Samples ``lo … hi - 1`` of ``file`` (indices within the file), float32."""
        if file.image:
            piece = _read_image(Path(file.name), self._model_shape, self._pixel_range)
        else:
            piece = np.asarray(self._array(file)[lo:hi], dtype=np.float32)
        if piece.shape[1:] != file.sample_shape:  # the file changed since it was opened
            raise InputFileError(f"{file.name} changed while it was read: samples of shape "
                                 f"{piece.shape[1:]}, {file.sample_shape} before")
        if self._check is not None:
            self._check(piece, file.name)
        return piece

    def __getitem__(self, key: slice | int) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            index = int(key) + (len(self) if key < 0 else 0)
            if not 0 <= index < len(self):
                raise IndexError(f"sample {key} of {len(self)}")
            return self[index:index + 1][0]
        if not isinstance(key, slice):
            raise TypeError(f"input files are read by sample or slice of samples, not {key!r}")
        start, stop, step = key.indices(len(self))
        if step != 1:
            raise ValueError("input files are read in consecutive samples (step 1)")
        stop = max(start, stop)
        batch = np.empty((stop - start, *self.shape[1:]), np.float32)
        for file in self._files:
            lo, hi = max(start, file.start), min(stop, file.start + file.count)
            if lo < hi:
                batch[lo - start:hi - start] = self._read(file, lo - file.start,
                                                          hi - file.start)
        return batch

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        batch = self[:]
        return batch if dtype is None else batch.astype(dtype)


def _open_file(name: str, shape: tuple, start: int, npz_key: str | None) -> _File:
    """What ``name`` holds (without reading its samples): count and sample shape."""
    path = Path(name)
    suffix = path.suffix.lower()
    sample_shape = tuple(shape[1:])
    if suffix in IMAGE_SUFFIXES:
        return _File(name, True, start, 1, _image_shape(path, shape), False)
    if suffix not in ARRAY_SUFFIXES:
        raise InputFileError(
            f"{name}: unknown input type {suffix or '(no suffix)'}; give .npy, .npz or an "
            f"image ({', '.join(IMAGE_SUFFIXES)})")
    array = _load_array(path, npz_key)
    _check_numbers(array, path)
    if _fits(array.shape, sample_shape):
        return _File(name, False, start, 1, tuple(array.shape), True)
    if array.ndim == len(shape) and _fits(array.shape[1:], sample_shape):
        return _File(name, False, start, int(array.shape[0]), tuple(array.shape[1:]), False)
    raise InputFileError(f"{name}: array of shape {array.shape} does not fit the model input "
                         f"{show_shape(shape)} (give one sample or a batch)")


def open_inputs(paths: list[str], shape: tuple, pixel_range: tuple[float, float] | None,
                npz_key: str | None = None, check: Check | None = None) -> InputFiles:
    """The input files and folders as one float32 batch shaped like the model input,
    read on demand (:class:`InputFiles`).

    ``.npy``/``.npz`` arrays are one sample (shaped like the model input without the
    batch axis) or a batch (possibly of 0 samples); images are resized to the model's
    height and width (kept if the model leaves them free) and converted to its channel
    count, pixel values 0..255 mapped linearly onto ``pixel_range`` (left raw when
    None); folders contribute their array and image files (:func:`expand_inputs`).
    Files are opened here (headers only): a missing, unreadable or misshapen one fails
    at once. With no samples the batch has 0 (free dimensions are then 0).
    """
    files: list[_File] = []
    start = 0
    for name in expand_inputs(paths):
        files.append(_open_file(name, shape, start, npz_key))
        start += files[-1].count
    shapes = {f.sample_shape for f in files if f.count}
    if len(shapes) > 1:
        raise InputFileError(
            f"the inputs have different shapes {sorted(shapes)}; the model input is "
            f"{show_shape(shape)} (give images of one size or a model with a fixed input "
            "size)")
    if shapes:
        sample_shape = shapes.pop()
    elif files:  # an array of 0 samples
        sample_shape = files[0].sample_shape
    else:
        sample_shape = tuple(d or 0 for d in shape[1:])
    return InputFiles([f for f in files if f.count], (start, *sample_shape), tuple(shape),
                      pixel_range, npz_key, check)


def read_inputs(paths: list[str], shape: tuple, pixel_range: tuple[float, float] | None,
                npz_key: str | None = None) -> tuple[np.ndarray, list[dict]]:
    """Load the input files and folders as one float32 batch shaped like the model input
    (:func:`open_inputs`, read at once). Returns the batch and, per sample,
    ``{"source": path, "source_index": i}``."""
    inputs = open_inputs(paths, shape, pixel_range, npz_key)
    return inputs[:], inputs.sources
