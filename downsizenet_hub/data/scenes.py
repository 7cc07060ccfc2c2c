"""The built-in ``scenes`` benchmark: built once, cached, stored in the VOC layout.

Scenes are Fashion-MNIST items composed onto natural photographs (:mod:`.composition` says how).
Everything they are made of installs offline: the Fashion-MNIST idx files (Debian's
``dataset-fashion-mnist`` or torchvision's layout, see :mod:`.fashion_mnist`) and the photographs
bundled in the scikit-image and scikit-learn wheels.

The train split draws items from Fashion-MNIST's train images, val from its test images. Every
scene ``i`` of a split is drawn from ``numpy.random.default_rng([tag, seed, split, i])``, so a
scene does not depend on how many were built, and the same seed gives the same files.

On disk (VOC layout, read back through :class:`.voc.VOCDataset` like real data)::

    <root>/scenes.json                                    manifest: parameters, classes, sources
    <root>/VOCdevkit/VOC2012/JPEGImages/<id>.jpg          JPEG, quality 95, no chroma subsampling
    <root>/VOCdevkit/VOC2012/SegmentationClass/<id>.png   VOC palette PNG, 0..10 and 255
    <root>/VOCdevkit/VOC2012/Annotations/<id>.xml         VOC XML boxes (1-based inclusive)
    <root>/VOCdevkit/VOC2012/ImageSets/{Segmentation,Main}/{train,val}.txt

with ids ``train_000000``, ``train_000001``, ... and ``val_000000``, ...

Why JPEG: the VOC layout (and torchvision's VOC classes) name images ``<id>.jpg``; PNG bytes under
a ``.jpg`` name would be a lie to every other VOC tool. Quality 95 with 4:4:4 chroma keeps the
small tinted items' colours (the mean error is about 1/255). The ``noisy`` variant's sensor noise
is added when a sample is loaded (:class:`.transforms.PixelNoise`, fixed per image), not stored,
so one build serves both variants and JPEG never smooths the noise away.

Builds are cached under ``paths.data_dir()/scenes`` (a folder named by the parameters and a
digest of the build's identity) and written by the package's one folder publish
(:func:`downsizenet_hub.atomic.publish_folder`): into a temporary sibling folder, then renamed
into place, so an interrupted build never looks complete; a build is reused once its manifest
names the same identity.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from downsizenet_hub import paths
from downsizenet_hub.atomic import publish_folder
from downsizenet_hub.data.composition import (
    BACKGROUNDS,
    CITATION,
    DEFAULT_LAYOUT,
    SCENE_LAYOUTS,
    SCENES_CLASSES,
    SceneConfig,
    compose_scene,
    family_items,
    scene_layout,
    scene_rng,
)
from downsizenet_hub.data.fashion_mnist import load_fashion_mnist
from downsizenet_hub.data.files import CorruptFileError
from downsizenet_hub.data.voc import write_annotation, write_label_png
from downsizenet_hub.jsonfile import read_json

__all__ = [
    "BACKGROUNDS",
    "CITATION",
    "DEFAULT_LAYOUT",
    "PRESETS",
    "SCENES_CLASSES",
    "SCENE_LAYOUTS",
    "SceneConfig",
    "compose_scene",
    "ensure_scenes",
    "read_manifest",
    "scene_layout",
    "scene_rng",
]

MANIFEST = "scenes.json"
FORMAT = "downsizenet-scenes"
FORMAT_VERSION = 1
JPEG_QUALITY = 95
#: (train, val) scene counts. "default" (about 20 s to build on a 2-core CPU) is what pretrain,
#: transfer and the study train on: with fewer scenes the segmentation network memorises its
#: training set and the detection heads overfit within a few epochs. "study" is larger still.
PRESETS: dict[str, tuple[int, int]] = {"default": (1600, 400), "study": (4000, 1000)}
_FASHION_SPLIT: dict[str, Literal["train", "test"]] = {"train": "train", "val": "test"}


def _identity(train: int, val: int, seed: int, size: int, config: SceneConfig) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "size": size,
        "images": {"train": train, "val": val},
        # A family's classes and photographs, when it restricts them (builds made before
        # families existed keep their identity).
        "config": {k: v for k, v in asdict(config).items() if v is not None},
        "jpeg_quality": JPEG_QUALITY,
        "class_names": list(SCENES_CLASSES),
        "backgrounds": [f"{package}/{name}" for package, name, _ in BACKGROUNDS],
    }


def _normalised(identity: dict[str, Any]) -> dict[str, Any]:
    # JSON turns tuples into lists; compare what a manifest would hold.
    normalised: dict[str, Any] = json.loads(json.dumps(identity))
    return normalised


def read_manifest(root: str | Path) -> dict[str, Any]:
    """The ``scenes.json`` of a scenes root; errors name the file when it is missing or invalid."""
    path = Path(root).expanduser() / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"Expected a scenes manifest at {path}; build one with `downsizenet data scenes`."
        )
    try:
        manifest = read_json(path, what="scenes manifest")
    except ValueError as error:  # not JSON, too deep or too large: one line naming the file
        raise CorruptFileError(str(error)) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CorruptFileError(f"{path} is not a {FORMAT} manifest.")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CorruptFileError(
            f"{path} has format_version {manifest.get('format_version')!r}; this version reads "
            f"{FORMAT_VERSION}. Rebuild it with `downsizenet data scenes`."
        )
    problem = _manifest_problem(manifest)
    if problem:
        raise CorruptFileError(f"{path}: {problem}. Rebuild it with `downsizenet data scenes`.")
    return manifest


def _manifest_problem(manifest: dict[str, Any]) -> str | None:
    """What the readers of a manifest rely on and it lacks (None: nothing)."""

    def count(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    names = manifest.get("class_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        return "class_names must be a non-empty list of names"
    images = manifest.get("images")
    if not isinstance(images, dict) or not all(count(images.get(k)) for k in ("train", "val")):
        return "images must hold the train and val counts"
    if not count(manifest.get("seed")) or not count(manifest.get("size")):
        return "seed and size must be non-negative integers"
    return None


def _matches(root: Path, identity: dict[str, Any]) -> bool:
    try:
        manifest = read_manifest(root)
    except (FileNotFoundError, CorruptFileError):
        return False
    return {key: manifest.get(key) for key in identity} == _normalised(identity)


def default_root(train: int, val: int, seed: int, size: int, config: SceneConfig) -> Path:
    """The cache folder of one build: parameters in the name, a digest of the config."""
    digest = hashlib.sha256(
        json.dumps(_identity(train, val, seed, size, config), sort_keys=True).encode()
    )
    return (
        paths.data_dir()
        / "scenes"
        / f"scenes-{size}px-{train}-{val}-seed{seed}-{digest.hexdigest()[:8]}"
    )


def _write_split(
    voc_dir: Path,
    split: str,
    count: int,
    seed: int,
    size: int,
    config: SceneConfig,
    tick: Callable[[], None],
) -> None:
    items, classes = load_fashion_mnist(_FASHION_SPLIT[split])
    items_np, classes_np = family_items(items.numpy(), classes.numpy(), config)
    ids = [f"{split}_{index:06d}" for index in range(count)]
    for index, image_id in enumerate(ids):
        scene = compose_scene(scene_rng(seed, split, index), size, items_np, classes_np, config)
        Image.fromarray(scene.image).save(
            voc_dir / "JPEGImages" / f"{image_id}.jpg", quality=JPEG_QUALITY, subsampling=0
        )
        write_label_png(voc_dir / "SegmentationClass" / f"{image_id}.png", scene.mask)
        write_annotation(
            voc_dir / "Annotations" / f"{image_id}.xml",
            filename=f"{image_id}.jpg",
            size=(size, size),
            boxes=scene.boxes,
            names=[SCENES_CLASSES[label] for label in scene.labels],
        )
        tick()
    listing = "".join(f"{image_id}\n" for image_id in ids)
    for kind in ("Segmentation", "Main"):
        (voc_dir / "ImageSets" / kind / f"{split}.txt").write_text(listing, encoding="utf-8")


def _build(
    folder: Path,
    train: int,
    val: int,
    seed: int,
    size: int,
    config: SceneConfig,
    tick: Callable[[], None],
) -> None:
    voc_dir = folder / "VOCdevkit" / "VOC2012"
    for sub in (
        "JPEGImages",
        "SegmentationClass",
        "Annotations",
        "ImageSets/Segmentation",
        "ImageSets/Main",
    ):
        (voc_dir / sub).mkdir(parents=True)
    started = time.perf_counter()
    for split, count in (("train", train), ("val", val)):
        _write_split(voc_dir, split, count, seed, size, config, tick)
    manifest = {
        **_identity(train, val, seed, size, config),
        "background_licences": {f"{p}/{n}": licence for p, n, licence in BACKGROUNDS},
        "citation": CITATION,
        "image_format": f"JPEG quality {JPEG_QUALITY}, 4:4:4 chroma (no subsampling)",
        "build_seconds": round(time.perf_counter() - started, 2),
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def ensure_scenes(
    images: int = PRESETS["default"][0],
    seed: int = 0,
    size: int = 300,
    *,
    val_images: int | None = None,
    config: SceneConfig | None = None,
    out: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Build the scenes benchmark once and return its root (the folder holding ``scenes.json``).

    ``images`` train scenes and ``val_images`` (default ``max(1, images // 4)``) val scenes of
    ``size`` px, composed as ``config`` says (default: the ``large`` layout of
    :data:`SCENE_LAYOUTS`). ``out`` None caches under ``paths.data_dir()/scenes``; an existing
    build with the same parameters is reused, an ``out`` folder holding anything else is an
    error. ``progress`` is called as ``progress(done, total)`` after each scene.
    """
    for name, value in (("images", images), ("seed", seed), ("size", size)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got {value!r}.")
    val = max(1, images // 4) if val_images is None else val_images
    if images < 1 or val < 1:
        raise ValueError(f"need at least one train and one val scene, got {images} and {val}.")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}.")
    config = config or scene_layout(DEFAULT_LAYOUT)
    if size < config.cell_size:
        raise ValueError(f"size {size} is smaller than one grid cell ({config.cell_size} px).")
    identity = _identity(images, val, seed, size, config)
    root = (
        Path(out).expanduser() if out is not None else default_root(images, val, seed, size, config)
    )
    if _matches(root, identity):
        return root
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(
            f"{root} already exists and is not a scenes build with these parameters; choose "
            "another output folder or delete it."
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    total, done = images + val, 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    # Built into a partial sibling folder and renamed into place (builds that dead processes
    # left are removed first); a build another process completed meanwhile is kept.
    publish_folder(
        root,
        lambda staging: _build(staging, images, val, seed, size, config, tick),
        done=lambda folder: _matches(folder, identity),
    )
    return root
