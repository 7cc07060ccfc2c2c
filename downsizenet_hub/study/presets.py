"""The built-in studies, declared as data and read through the same checks as a file.

Longer than 300 lines on purpose: each preset is one literal a reader compares with the others
(its description, budgets and experiments side by side); split, the comparison is lost.

- ``quick``: the quickstart. One seed, noisy scenes, x0.3: pretrain DownsizeNet and bilinear on
  segmentation, publish the resizer as ``quickstart/downsizenet-x0.3``, transfer both frozen to
  the frozen-VGG16 detector. Sized to finish in under 10 minutes on a 2-core CPU with both tasks
  past their initial slope; one seed gives no interval, and the report says so.
- ``cpu``: the paper's study at CPU scale, about 1.5-2 hours on 2 idle cores, 3 seeds per cell
  (see :data:`CPU` for what it covers and what it leaves out).
- ``full``: every question at the cpu preset's budgets (all ablations, scales, clean scenes and
  fixed resizers), several hours on 2 cores, resumable (see :data:`FULL`). The cpu preset
  publishes the 2x2 resizers, ``full`` the antialias one (beside the fixed antialias filter).
- ``plateau``: the decisive study (see :data:`PLATEAU`): the cpu preset's core questions at the
  budgets of ``pretrain`` and ``transfer`` (their learning curves' plateau), 3 seeds, and the
  transfer both to the objects the resizers were pretrained on and to new objects on new
  backgrounds (scene families A and B).
- ``paper``: the paper's data, backbones, resolutions and epoch counts, for GPU users with VOC
  and Cityscapes (placed under ``$DOWNSIZENET_HOME/data/voc`` and ``.../cityscapes``, or copy this
  preset into a study file and set ``root``).

``downsizenet study --preset NAME --dry-run`` lists a preset's cells; ``results.json`` of any run
holds the config as a study file would, to copy and edit.
"""

from __future__ import annotations

from typing import Any

from downsizenet_hub.experiments import defaults
from downsizenet_hub.study.config import StudyConfig
from downsizenet_hub.study.config_file import study_config

QUICKSTART_NAME = "quickstart/downsizenet-x0.3"
#: The command the quick preset records (``study --preset quick`` is the same study).
QUICKSTART_COMMAND = "downsizenet quickstart"

# Scenes sized for the quickstart: one build serves segmentation and detection (the transfer
# crosses tasks, not datasets), half the size of the commands' default so it fits 10 minutes.
_QUICK_DATA = {"train_images": 800, "val_images": 200}

QUICK: dict[str, Any] = {
    "name": "quickstart",
    "description": (
        "The quickstart: DownsizeNet pretrained in the segmentation pipeline beside bilinear on"
        " the noisy built-in scenes at x0.3, published to the local hub, then transferred "
        "frozen to the frozen-VGG16 detector (CenterNet-style heads) beside bilinear. Sized for"
        " under 10 minutes on a 2-core CPU (800 scenes, 5 segmentation epochs, 6 head epochs): "
        "both tasks learn, but one seed gives no interval, so the numbers show the pipeline "
        "working, not a reliable difference between resizers; `downsizenet study --preset cpu`"
        " measures that with 3 seeds. Noisy scenes by default: full-resolution sensor noise "
        "gives a resizer something to average away or to alias, which is where resizers differ."
    ),
    "seeds": [0],
    "variants": ["noisy"],
    "grid_images": 1,
    "pretrain": {"epochs": 5, "batch_size": 8, "lr": 2e-3, "data": _QUICK_DATA},
    "transfer": {"epochs": 6, "batch_size": 16, "lr": 2e-3, "data": _QUICK_DATA},
    "experiments": [
        {
            "kind": "transfer",
            "title": "Pretrain on segmentation, transfer frozen to detection (x0.3)",
            "scale": 0.3,
            "pretrain_epochs": [5],
            "baselines": ["bilinear"],
            "publish": QUICKSTART_NAME,
        }
    ],
}

# The quickstart's scenes (one build serves both), and segmentation cells of 1, 2 and 3 epochs
# (100-300 AdamW steps at batch 8), transfers of 4 head epochs: the least that learns for this
# grid, which still takes about 1.5-2 hours on 2 idle cores. Shorter than `pretrain`'s plateau
# budget (1600 steps, benchmarks/learning_curve.py), so absolute scores sit below its plateau;
# every cell is well past the start of learning.
_CPU_DATA = _QUICK_DATA
_CPU_EPOCHS = (1, 2, 3)

CPU: dict[str, Any] = {
    "name": "cpu",
    "description": (
        "The paper's study at CPU scale, every cell with seeds 0, 1 and 2, on the noisy built-in"
        " scenes (800 for training, 200 for evaluation). Segmentation cells train 3 epochs "
        "(300 steps at batch 8) unless said, shorter than `downsizenet pretrain`'s 1600-step "
        "plateau budget; transfers train the detection heads 4 epochs at batch 16 (200 steps) "
        "behind each frozen resizer. Covered: the "
        "Table 3 analogue at x0.3 (DownsizeNet pretrained 1, 2 and 3 epochs, the antialias "
        "neighbourhood and the Talebi-Milanfar resizer pretrained 3 epochs, each transferred "
        "frozen beside bilinear and area); the same at x0.5 with the strided-convolution "
        "resizer (pretrained 3 epochs); segmentation at x0.5 and x0.3 (Table 6 analogue, two "
        "scales). Left out to fit: clean scenes, other scales, the conv-layer and texture-only "
        "ablations, the bicubic neighbourhood and fixed bicubic and antialias (the `full` "
        "preset runs them)."
    ),
    "seeds": [0, 1, 2],
    "variants": ["noisy"],
    "grid_images": 2,
    "pretrain": {"epochs": max(_CPU_EPOCHS), "batch_size": 8, "lr": 2e-3, "data": _CPU_DATA},
    "transfer": {"epochs": 4, "batch_size": 16, "lr": 2e-3, "data": _CPU_DATA},
    "experiments": [
        {
            "kind": "transfer",
            "title": "Table 3 analogue: pretraining length, then frozen transfer (x0.3)",
            "scale": 0.3,
            "pretrain_epochs": list(_CPU_EPOCHS),
            "baselines": ["bilinear", "area", "downsizenet-antialias", "talebi"],
            # The antialias one is published by `full`, which has the fixed antialias filter it
            # starts as, so that its card can say whether training moved it past that start.
            "publish": "downsizenet/scenes-noisy-x0.3",
        },
        {
            "kind": "transfer",
            "title": "Frozen transfer at x0.5, beside the strided-convolution resizer",
            "scale": 0.5,
            "pretrain_epochs": [max(_CPU_EPOCHS)],
            "baselines": ["bilinear", "area", "strided"],
            "publish": "downsizenet/scenes-noisy-x0.5",
        },
        {
            "kind": "segmentation",
            "title": "Table 6 analogue: output scale, noisy scenes",
            "scales": [0.5, 0.3],
            "resizers": ["downsizenet", "area"],
        },
    ],
}

FULL: dict[str, Any] = {
    "name": "full",
    "description": (
        "Every question of the study at the cpu preset's budgets (800 noisy or clean scenes, "
        "segmentation cells of 3 epochs, transfers of 4 head epochs), 3 seeds: the Table 3 "
        "analogue at x0.3 beside every fixed and learned resizer (bilinear, bicubic, area, "
        "antialias; the antialias and bicubic neighbourhoods; the Talebi-Milanfar resizer), the "
        "same at x0.5 with the strided resizer, segmentation at x0.55, x0.5, x0.45, x0.35 and "
        "x0.3 on noisy and clean scenes (Table 6), and the ablations of Tables 4 and 5 (1 to 5 "
        "conv layers, texture only) beside the fixed resizers at x0.3. Several hours on 2 "
        "cores: run it again after an interruption and it resumes where it stopped. Shares "
        "every cell of the cpu preset: copy results/cpu/cells to results/full/cells to reuse them."
        " Publishes the antialias DownsizeNet (seed 0) with its differences from bilinear, area "
        "and the fixed antialias filter it starts as."
    ),
    "seeds": [0, 1, 2],
    "variants": ["noisy"],
    "grid_images": 2,
    "pretrain": CPU["pretrain"],
    "transfer": CPU["transfer"],
    "experiments": [
        {
            **CPU["experiments"][0],
            "baselines": [
                "bilinear", "bicubic", "area", "antialias",
                "downsizenet-antialias", "downsizenet-bicubic", "talebi",
            ],
            "publish": {"downsizenet-antialias": "downsizenet/scenes-noisy-antialias-x0.3"},
        },
        {**CPU["experiments"][1], "publish": None},
        {
            "kind": "segmentation",
            "title": "Table 6 analogue: output scale, noisy and clean scenes",
            "scales": [0.55, 0.5, 0.45, 0.35, 0.3],
            "variants": ["noisy", "clean"],
            "resizers": ["downsizenet", "area"],
        },
        {
            "kind": "segmentation",
            "title": "Tables 4 and 5 analogue: conv layers, texture only, neighbourhoods (x0.3)",
            "scales": [0.3],
            "resizers": [
                "downsizenet-conv1", "downsizenet-conv2", "downsizenet", "downsizenet-conv4",
                "downsizenet-conv5", "downsizenet-texture", "downsizenet-antialias",
                "downsizenet-bicubic", "bicubic", "area", "antialias",
            ],
        },
    ],
}  # fmt: skip

# The plateau study: the budgets of `pretrain` and `transfer`'s defaults (1600 segmentation steps,
# 600 head steps: the learning curves' plateau, benchmarks/learning_curve.py) on the default
# 1600/400 scenes. Resizers pretrain on scene family A (upper-body garments on half the
# photographs) and transfer frozen to detection twice: on family A, the objects they were
# pretrained to segment, and on family B, new objects on new backgrounds.
_FAMILY_A = {"family": "A"}
_PLATEAU_RESIZERS = ["bilinear", "area", "antialias", "downsizenet-antialias", "talebi"]
_PLATEAU_TRANSFER = {
    "kind": "transfer",
    "scale": 0.3,
    "pretrain_epochs": [defaults.PRETRAIN_EPOCHS],
    "baselines": _PLATEAU_RESIZERS,
    "pretrain_data": _FAMILY_A,
}

PLATEAU: dict[str, Any] = {
    "name": "plateau",
    "description": (
        "The decisive study: every cell at the budgets of `downsizenet pretrain` and `transfer`"
        " (1600 segmentation steps at batch 8, 600 detection-head steps at batch 16, the "
        "learning curves' plateau) on the noisy built-in scenes (1600 for training, 400 for "
        "evaluation), 3 seeds, at x0.3. Bilinear, area, the fixed antialias filter, the 2x2 and "
        "antialias DownsizeNets and the Talebi-Milanfar resizer: the learned ones pretrained in "
        "segmentation on scene family A (T-shirts, pullovers, dresses, coats and shirts on 7 of "
        "the 14 photographs), then each resizer frozen into the frozen-VGG16 detector twice: on "
        "family A (the objects it was pretrained to segment) and on family B (trousers, "
        "footwear and bags on the other 7 photographs: new objects, new backgrounds). About 4 "
        "hours on 2 idle cores with `--workers 2`; resumable."
    ),
    "seeds": [0, 1, 2],
    "variants": ["noisy"],
    "grid_images": 2,
    "pretrain": {
        "epochs": defaults.PRETRAIN_EPOCHS,
        "batch_size": defaults.PRETRAIN_BATCH_SIZE,
        "lr": defaults.PRETRAIN_LR,
        "data": _FAMILY_A,
    },
    "transfer": {
        "epochs": defaults.TRANSFER_EPOCHS,
        "batch_size": defaults.TRANSFER_BATCH_SIZE,
        "lr": defaults.TRANSFER_LR,
        "data": _FAMILY_A,
    },
    "experiments": [
        {
            **_PLATEAU_TRANSFER,
            "title": "Transfer to the same objects (family A to family A), x0.3",
            "transfer_data": _FAMILY_A,
            "publish": {
                "downsizenet": "downsizenet/scenes-a-noisy-x0.3",
                "downsizenet-antialias": "downsizenet/scenes-a-noisy-antialias-x0.3",
                "talebi": "talebi/scenes-a-noisy-x0.3",
            },
        },
        {
            **_PLATEAU_TRANSFER,
            "title": "Transfer to new objects (family A to family B), x0.3",
            "transfer_data": {"family": "B"},
        },
        {
            "kind": "segmentation",
            "title": "Segmentation on family A at the plateau, x0.3",
            "scales": [0.3],
            "resizers": ["downsizenet", *_PLATEAU_RESIZERS[1:]],
            "data": _FAMILY_A,
        },
    ],
}

PAPER: dict[str, Any] = {
    "name": "paper",
    "description": (
        "The paper's settings for GPU users: DeepLabv3+ on ResNet-101 pretrained on VOC 2012 "
        "segmentation at 513 px, DownsizeNet at x0.3 for 100, 200 and 300 epochs, each "
        "transferred frozen to a detector on a frozen ImageNet VGG16 (VOC 2007, 300 px, 10 head"
        " epochs; torchvision Faster R-CNN heads stand in for LightHead R-CNN); output scales "
        "x0.55, x0.45, x0.35 on Cityscapes at 513 px (Table 6); ablations on VOC 2012 at x0.35 "
        "(the paper ran Tables 4 and 5 on RefineDet detection). Differences from the paper: "
        "AdamW with a cosine schedule instead of SGD with the poly schedule, no training "
        "augmentation, and a ResNet-101 trained from scratch (`downsizenet pretrain` offers no "
        "ImageNet initialisation of the segmentation backbone)."
    ),
    "seeds": [0, 1, 2],
    "variants": ["clean"],
    "grid_images": 2,
    "pretrain": {
        "backbone": "resnet101",
        "epochs": 100,
        "batch_size": 8,
        "lr": 1e-3,
        "data": {"name": "voc", "image_size": [513, 513]},
    },
    "transfer": {
        "backbone_weights": "imagenet",
        "head": "fasterrcnn",
        "epochs": 10,
        "batch_size": 8,
        "lr": 2e-3,
        "data": {"name": "voc", "image_size": [300, 300]},
    },
    "experiments": [
        {
            "kind": "transfer",
            "title": "Table 3: pretraining epochs on DeepLabv3+, frozen transfer to detection",
            "scale": 0.3,
            "pretrain_epochs": [100, 200, 300],
            "baselines": ["bilinear", "bicubic", "area"],
        },
        {
            "kind": "segmentation",
            "title": "Table 6: output scale on Cityscapes",
            "scales": [0.55, 0.45, 0.35],
            "resizers": ["downsizenet"],
            "epochs": 200,
            "data": {"name": "cityscapes", "image_size": [513, 513]},
        },
        {
            "kind": "segmentation",
            "title": "Tables 4 and 5: conv layers, texture only, neighbourhoods, fixed resizers",
            "scales": [0.35],
            "resizers": [
                "downsizenet-conv1",
                "downsizenet-conv2",
                "downsizenet",
                "downsizenet-conv4",
                "downsizenet-conv5",
                "downsizenet-texture",
                "downsizenet-antialias",
                "antialias",
                "area",
            ],
        },
    ],
}

PRESETS: dict[str, dict[str, Any]] = {
    "quick": QUICK,
    "cpu": CPU,
    "full": FULL,
    "plateau": PLATEAU,
    "paper": PAPER,
}


def preset(name: str) -> StudyConfig:
    """The built-in study ``name`` (one of :data:`PRESETS`)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {list(PRESETS)}.")
    try:
        return study_config(PRESETS[name])
    except (TypeError, ValueError) as error:  # a broken preset is a bug: say which one
        raise ValueError(f"preset {name}: {error}") from None


def preset_command(name: str) -> str:
    """The command line that runs preset ``name``, as recorded in reports and resizer cards."""
    return QUICKSTART_COMMAND if name == "quick" else f"downsizenet study --preset {name}"
