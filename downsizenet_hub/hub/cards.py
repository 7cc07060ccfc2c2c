"""Model cards: rendered from ``model_cards/resizer_card.md`` with huggingface_hub's ModelCard.

The YAML header is what the Hugging Face Hub reads (library_name, tags, license, datasets and a
model-index with the resizer's result beside its baseline's); the body states the architecture,
then the recipe, the results, how to load it, and its limitations. For an architecture whose
output is not an image (talebi, strided) it also shows the trained resizer's output statistics
on the evaluation images (the record's ``outputs``).

A published folder's card is re-rendered in place, after a template change, without touching its
weights: ``files.write_card(folder, *files.load_folder(folder), name)`` (how the shipped
resizer's card was last written).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from downsizenet_hub.hub.architectures import ResizerConfig, architecture_of
from downsizenet_hub.hub.names import HF_HUB_PREFIX
from downsizenet_hub.hub.record import TrainingRecord
from downsizenet_hub.resizing.baseline_config import StridedConfig, TalebiConfig

if TYPE_CHECKING:
    from huggingface_hub import ModelCardData

#: The templates ship inside the package (``downsizenet_hub/model_cards`` links to the repository's
#: top-level ``model_cards/``; the wheel carries them as package data).
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "model_cards"
RESIZER_TEMPLATE = TEMPLATES_DIR / "resizer_card.md"
LIBRARY_NAME = "downsizenet-hub"
LICENSE = "mit"
# Our task names -> the Hugging Face Hub's task ids (others are passed through unchanged).
_HF_TASKS = {
    "segmentation": "image-segmentation",
    "semantic-segmentation": "image-segmentation",
    "detection": "object-detection",
    "classification": "image-classification",
}


def card_data(config: ResizerConfig, record: TrainingRecord | None, ref: str) -> ModelCardData:
    """The card's YAML metadata."""
    from huggingface_hub import EvalResult, ModelCardData

    kind = architecture_of(config)
    tags = [kind.name, "image-resizing", "learned-downsampling", "pytorch"]
    if isinstance(config, (TalebiConfig, StridedConfig)):
        tags.append("downsizenet-baseline")
    elif kind.plugin is not None:
        tags.append("downsizenet-hub-plugin")
    else:
        tags.append(f"{config.neighbourhood}-neighbourhood")
    if record is None:
        return ModelCardData(library_name=LIBRARY_NAME, license=LICENSE, tags=tags)
    task = _HF_TASKS.get(record.task, record.task)
    tags.append(task)
    if record.generated_data:
        tags.append("generated-data")
    scores = [(record.score, f"{record.metric} (this {_short_title(config)})")]
    if record.baseline_score is not None:
        scores.append((record.baseline_score, f"{record.metric} ({record.baseline} baseline)"))
    results = [
        EvalResult(
            task_type=task,
            task_name=record.task,
            dataset_type=record.dataset,
            dataset_name=record.dataset,
            dataset_config=record.data_variant,
            metric_type=record.metric,
            metric_name=metric_name,
            metric_value=value,
        )
        for value, metric_name in scores
    ]
    return ModelCardData(
        library_name=LIBRARY_NAME,
        license=LICENSE,
        tags=tags,
        datasets=[record.dataset],
        metrics=[record.metric],
        model_name=ref,
        eval_results=results,
    )


def render_card(
    config: ResizerConfig,
    record: TrainingRecord | None,
    ref: str,
    *,
    parameters: int,
    weights_bytes: int,
) -> str:
    """The full README.md for a resizer that loads as ``from_pretrained(ref)``.

    The card says only what is known: how many seeds the scores come from, with a 95% interval
    of the mean when there are several and "one seed, no interval" when there is one, and where
    the backbone's weights came from when the record does not say.
    """
    from huggingface_hub import ModelCard

    kind = architecture_of(config)
    card = ModelCard.from_template(
        card_data(config, record, ref.removeprefix(HF_HUB_PREFIX)),
        template_path=str(RESIZER_TEMPLATE),
        title=f"{kind.title[0].upper()}{kind.title[1:]} `{ref.removeprefix(HF_HUB_PREFIX)}`",
        ref=ref,
        architecture_name=kind.name,
        convex=kind.convex,
        plugin=f"{kind.plugin.package} {kind.plugin.version}" if kind.plugin else "",
        short_title=_short_title(config),
        architecture=describe_architecture(config),
        parameters=f"{parameters:,}",
        weights_size=_human_bytes(weights_bytes),
        in_channels=getattr(config, "in_channels" if kind.convex else "channels", "C"),
        record=record,
        outputs=_output_rows(record) if record and record.outputs else [],
        example_call=_example_call(config, record),
        data_description=_describe_data(record) if record else "",
        size_description=describe_size(record) if record else "",
        score=_with_spread(record.score, record.score_std, record.n_seeds) if record else "",
        baseline_score=(
            _with_spread(record.baseline_score, record.baseline_std, record.n_seeds)
            if record and record.baseline_score is not None
            else ""
        ),
        improvement=f"{record.improvement:+.4f}"
        if record and record.improvement is not None
        else "",
        seeds=_describe_seeds(record) if record else "",
        spread_note=_spread_note(record) if record else "",
        backbone=describe_backbone(record) if record else "",
        differences=list(record.differences) if record else [],
        differences_seeds=_differences_seeds(record) if record else "",
    )
    return str(card).rstrip() + "\n"


def _example_call(config: ResizerConfig, record: TrainingRecord | None) -> str:
    """The resize the card's example makes: the one the resizer was trained at (its record's
    scale factor or output size), ``1/k`` for a strided resizer, else ``scale_factor=0.5``."""
    if isinstance(config, StridedConfig):
        return f"scale_factor={1 / config.k:g}"
    if record is not None and record.scale_factor is not None:
        return f"scale_factor={record.scale_factor:g}"
    if record is not None and record.output_size is not None:
        return f"size=({record.output_size[0]}, {record.output_size[1]})"
    return "scale_factor=0.5"


def describe_architecture(config: ResizerConfig) -> str:
    """One sentence, e.g. 'bilinear (2x2) neighbourhood, 3 conv layers x 16 channels, ...'."""
    plugin = architecture_of(config).plugin
    if plugin is not None:
        fields = ", ".join(f"{k}={v!r}" for k, v in plugin.config_dict(config).items())
        return f"{plugin.title} ({type(config).__name__}: {fields or 'no fields'})."
    if isinstance(config, TalebiConfig):
        blocks = config.residual_blocks
        return (
            f"{config.filters} filters, {blocks} residual block{'s' if blocks > 1 else ''}, a "
            f"{config.output_kernel}x{config.output_kernel} output convolution added to the "
            "bilinearly resized input (Talebi and Milanfar, ICCV 2021; defaults of the Keras "
            "example)."
        )
    if isinstance(config, StridedConfig):
        return (
            f"a learned {config.k}x{config.k} convolution with stride {config.k} from image "
            f"channels to image channels: it downsizes by exactly 1/{config.k}."
        )
    taps = {"bilinear": "2x2", "bicubic": "4x4", "antialias": "antialiased"}[config.neighbourhood]
    texture = (
        f"{config.conv_layers} conv layers x {config.channels} channels"
        if config.conv_layers
        else "no texture branch"
    )
    distance = "with" if config.use_distance else "without"
    return (
        f"{config.neighbourhood} ({taps}) neighbourhood, {texture}, {distance} the distance map, "
        f"{config.coefficients} coefficients."
    )


def _short_title(config: ResizerConfig) -> str:
    """How the results table names this resizer: 'DownsizeNet', 'Talebi resizer', ..."""
    if isinstance(config, TalebiConfig):
        return "Talebi resizer"
    if isinstance(config, StridedConfig):
        return "strided resizer"
    plugin = architecture_of(config).plugin
    return plugin.title if plugin is not None else "DownsizeNet"


def _output_rows(record: TrainingRecord) -> list[tuple[str, str]]:
    """The output statistics table of the card: (what, value)."""
    outputs = record.outputs
    assert outputs is not None
    return [
        ("Evaluation images", f"{outputs.images}"),
        ("Output range", f"[{outputs.min:.4f}, {outputs.max:.4f}]"),
        ("Mean ± std", f"{outputs.mean:.4f} ± {outputs.std:.4f}"),
        ("Outside [0, 1]", f"{100 * outputs.outside_unit_range:.3f}% of values"),
        ("Outside the input image's range", f"{100 * outputs.outside_input_range:.3f}% of values"),
        (
            f"Moved from {outputs.start} (mean abs. difference, first {outputs.moved_images} "
            "images)",
            f"{outputs.moved_from_start:.5f}",
        ),
    ]


def describe_size(record: TrainingRecord) -> str:
    """The training geometry in words, e.g. 'input 96x96, scale factor 0.5'."""
    parts = []
    if record.input_size:
        parts.append(f"input {record.input_size[0]}x{record.input_size[1]}")
    if record.scale_factor is not None:
        parts.append(f"scale factor {record.scale_factor:g}")
    elif record.output_size is not None:
        parts.append(f"output {record.output_size[0]}x{record.output_size[1]}")
    return ", ".join(parts)


def _describe_data(record: TrainingRecord) -> str:
    text = f"`{record.dataset}`"
    if record.data_variant:
        text += f" ({record.data_variant})"
    if record.generated_data:
        text += ", generated by downsizenet-hub"
    return text


def describe_backbone(record: TrainingRecord) -> str:
    """Where the pipeline's backbone weights came from, as far as the record tells."""
    if record.backbone_weights:
        return record.backbone_weights
    if "-tiny" in record.pipeline:
        return "none pretrained: the tiny backbone trained from random initialisation with it"
    return (
        f"not recorded: the backbone of {record.pipeline} trained with the resizer, from "
        "starting weights the record does not name"
    )


def _several_seeds(record: TrainingRecord) -> bool:
    return record.n_seeds is not None and record.n_seeds > 1


def _describe_seeds(record: TrainingRecord) -> str:
    if _several_seeds(record):
        return f"{record.n_seeds}, from seed {record.seed} (scores: mean ± std over the seeds)"
    return f"one seed ({record.seed})"


def _spread_note(record: TrainingRecord) -> str:
    """How much the numbers above can be trusted, in one sentence."""
    if not _several_seeds(record):
        return (
            "One seed, no interval: a difference of this size can be seed noise; repeat the run "
            "with other seeds before concluding anything."
        )
    return (
        f"Mean ± std over {record.n_seeds} seeds, with the 95% t-interval of the mean in brackets."
    )


def _with_spread(value: float, std: float | None, n_seeds: int | None) -> str:
    """``0.4120``, or ``0.4120 ± 0.0100 [0.3871, 0.4369]`` over several seeds."""
    if std is None or n_seeds is None or n_seeds < 2:
        return f"{value:.4f}"
    from scipy.stats import t as student_t

    half = float(student_t.ppf(0.975, n_seeds - 1)) * std / math.sqrt(n_seeds)
    return f"{value:.4f} ± {std:.4f} [{value - half:.4f}, {value + half:.4f}]"


def _differences_seeds(record: TrainingRecord) -> str:
    counts = sorted({d.n_seeds for d in record.differences})
    if counts == [1]:
        return "one seed (no interval)"
    return f"{' or '.join(map(str, counts))} seeds"


def _human_bytes(size: int) -> str:
    return f"{size / 1024:.1f} KiB" if size >= 1024 else f"{size} B"
