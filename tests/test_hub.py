"""The on-disk format of a published resizer: save/load round trips, strict loading, validation
of config.json, names and training records, and the refusal of pickled weights."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from downsizenet_hub import DownsizeNet, DownsizeNetConfig
from downsizenet_hub.hub import TrainingRecord, from_pretrained, save_pretrained, validate_name
from downsizenet_hub.hub.files import FORMAT_VERSION
from downsizenet_hub.hub.names import parse_ref


def tiny(**overrides: object) -> DownsizeNet:
    """A small DownsizeNet with random weights everywhere, so a lost tensor changes outputs."""
    config = {"conv_layers": 1, "channels": 4, "init": "random", **overrides}
    return DownsizeNet(**config)  # type: ignore[arg-type]


def record(**overrides: object) -> TrainingRecord:
    fields = {
        "task": "segmentation",
        "pipeline": "fcn-vgg16",
        "dataset": "scenes",
        "generated_data": True,
        "epochs": 2,
        "seed": 7,
        "metric": "mIoU",
        "score": 0.5,
        "baseline_score": 0.25,
        "command": "downsizenet pretrain --epochs 2 --seed 7",
        "scale_factor": 0.5,
    }
    fields.update(overrides)
    return TrainingRecord(**fields)  # type: ignore[arg-type]


def outputs(model: DownsizeNet) -> torch.Tensor:
    images = torch.linspace(0, 1, 2 * 3 * 13 * 11).view(2, 3, 13, 11)
    with torch.no_grad():
        return model(images, size=(5, 7))


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"neighbourhood": "bicubic"},
        {"neighbourhood": "antialias", "coefficients": "softmax"},
        {"conv_layers": 0},
        {"use_distance": False},
    ],
)
def test_save_load_round_trip_gives_identical_outputs(tmp_path: Path, overrides: dict) -> None:
    model = tiny(**overrides)
    folder = save_pretrained(model, tmp_path / "resizer")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    loaded = from_pretrained(folder)
    assert loaded.config == model.config
    assert not loaded.training
    assert torch.equal(outputs(loaded), outputs(model))
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_module_methods_round_trip(tmp_path: Path) -> None:
    model = DownsizeNet.as_bilinear()
    model.save_pretrained(str(tmp_path / "bilinear"))
    loaded = DownsizeNet.from_pretrained(str(tmp_path / "bilinear"))
    assert torch.equal(outputs(loaded), outputs(model))


def test_config_json_holds_format_version_config_and_record(tmp_path: Path) -> None:
    model, rec = tiny(), record(input_size=(64, 48))
    save_pretrained(model, tmp_path, record=rec)
    document = json.loads((tmp_path / "config.json").read_text())
    assert document["format_version"] == FORMAT_VERSION == 1
    assert document["downsizenet"] == model.config.to_dict()
    assert document["training"]["input_size"] == [64, 48]
    assert TrainingRecord.from_dict(document["training"]) == rec


def test_saving_keeps_other_files_and_replaces_ours(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    save_pretrained(tiny(), tmp_path)
    second = tiny(channels=5)
    save_pretrained(second, tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert torch.equal(outputs(from_pretrained(tmp_path)), outputs(second))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left


# ---------------------------------------------------------------------------- strict weights
def test_corrupt_safetensors_is_a_one_line_error_naming_the_file(tmp_path: Path) -> None:
    save_pretrained(tiny(), tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x00\x01not a safetensors file at all")
    with pytest.raises(
        ValueError, match=r"model\.safetensors is not a readable safetensors"
    ) as info:
        from_pretrained(tmp_path)
    assert "\n" not in str(info.value)
    assert str(tmp_path / "model.safetensors") in str(info.value)


def test_truncated_safetensors_is_refused(tmp_path: Path) -> None:
    save_pretrained(tiny(), tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ValueError, match="corrupt or truncated") as info:
        from_pretrained(tmp_path)
    assert "\n" not in str(info.value)


def test_missing_and_unexpected_tensors_are_named(tmp_path: Path) -> None:
    save_pretrained(tiny(), tmp_path)
    weights = tmp_path / "model.safetensors"
    state = load_file(str(weights))
    state["extra.weight"] = state.pop("head.bias")
    save_file(state, str(weights))
    message = (
        "missing tensor\\(s\\) \\['head.bias'\\] and unexpected tensor\\(s\\) \\['extra.weight'\\]"
    )
    with pytest.raises(ValueError, match=message):
        from_pretrained(tmp_path)


def test_wrong_shape_is_named_with_both_shapes(tmp_path: Path) -> None:
    save_pretrained(tiny(channels=4), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["downsizenet"]["channels"] = 6
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        ValueError,
        match=r"tensor 'texture\.0\.weight' has shape \(4, 3, 3, 3\) "
        r"but the config needs \(6, 3, 3, 3\)",
    ):
        from_pretrained(tmp_path)


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (torch.full((4,), float("nan")), "NaN or infinite"),
        (torch.zeros(4, dtype=torch.int32), "expected floating point"),
    ],
)
def test_non_finite_or_integer_tensors_are_refused(
    tmp_path: Path, tensor: torch.Tensor, message: str
) -> None:
    save_pretrained(tiny(), tmp_path)
    weights = tmp_path / "model.safetensors"
    state = load_file(str(weights))
    state["head.bias"] = tensor
    save_file(state, str(weights))
    with pytest.raises(ValueError, match=message):
        from_pretrained(tmp_path)


class _Payload:
    """Unpickling this writes a marker file: the test proves nothing is ever unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.write_text, (self.marker, "unpickled!"))


def test_pickled_weights_are_refused_and_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    folder = tmp_path / "resizer"
    save_pretrained(tiny(), folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(ValueError, match=r"pytorch_model\.bin.*never unpickles"):
        from_pretrained(folder)
    torch_file = tmp_path / "resizer.pt"
    torch_file.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(ValueError, match=r"pickled weights file.*never unpickles"):
        from_pretrained(torch_file)
    assert not marker.exists()


def test_a_file_is_not_a_resizer_reference(tmp_path: Path) -> None:
    save_pretrained(tiny(), tmp_path)
    with pytest.raises(ValueError, match="is a file; pass the folder"):
        from_pretrained(tmp_path / "model.safetensors")


# ---------------------------------------------------------------------------- config.json
@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (lambda d: d.update(extra=1), ValueError, r"unknown key\(s\) \['extra'\]"),
        (
            lambda d: d["downsizenet"].update(chanels=4),
            ValueError,
            "unknown DownsizeNet config key",
        ),
        (lambda d: d["downsizenet"].update(channels="4"), ValueError, "channels must be an int"),
        (
            lambda d: d["downsizenet"].update(use_distance=1),
            ValueError,
            "use_distance must be a bool",
        ),
        (
            lambda d: d["downsizenet"].update(neighbourhood="lanczos"),
            ValueError,
            "neighbourhood must be one of",
        ),
        (
            lambda d: d.update(format_version=3),
            ValueError,
            "format_version 3, newer than this downsizenet-hub reads",
        ),
        (
            lambda d: d.update(format_version="1"),
            ValueError,
            "format_version must be a positive integer",
        ),
        (
            lambda d: d.pop("format_version"),
            ValueError,
            "format_version must be a positive integer",
        ),
        (lambda d: d.pop("downsizenet"), ValueError, "no 'downsizenet' object"),
        (lambda d: d.update(downsizenet=[1, 2]), ValueError, "must be a JSON object"),
        (lambda d: d.update(training={"task": "x"}), ValueError, "missing"),
        (
            lambda d: d["training"].update(epochs="2"),
            ValueError,
            "TrainingRecord.epochs must be int",
        ),
        (
            lambda d: d["training"].update(notes="x"),
            ValueError,
            r"unknown training record key\(s\) \['notes'\]",
        ),
    ],
)
def test_bad_config_json_is_a_clear_error_naming_the_file(
    tmp_path: Path, edit, error, message
) -> None:
    save_pretrained(tiny(), tmp_path, record=record())
    path = tmp_path / "config.json"
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))
    with pytest.raises(error, match=message) as info:
        from_pretrained(tmp_path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", ""])
def test_unparsable_config_json(tmp_path: Path, text: str) -> None:
    save_pretrained(tiny(), tmp_path)
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(ValueError, match=r"config\.json"):
        from_pretrained(tmp_path)


def test_missing_config_json(tmp_path: Path) -> None:
    save_pretrained(tiny(), tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"needs a config\.json"):
        from_pretrained(tmp_path)


# ---------------------------------------------------------------------------- names
@pytest.mark.parametrize(
    "name",
    [
        "",
        "plain",
        "a/b/c",
        "../escape",
        "a/..",
        "a/../b",
        "/abs/path",
        "a//b",
        "a/",
        "/a",
        "a/b c",
        "a/.hidden",
        "a/trailing.",
        "a/double--dash",
        "a/na\u00efve",
        "a\\b/c",
        "a/" + "x" * 97,
    ],
)
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="invalid resizer name"):
        validate_name(name)


@pytest.mark.parametrize(
    "name", ["downsizenet/fcn-scenes-x0.5", "Me/model_1", "a/b", "x/" + "y" * 96]
)
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


def test_parse_ref_revisions() -> None:
    assert parse_ref("me/x").revision is None
    assert parse_ref("me/x@v1").revision == "v1"
    assert parse_ref("me/x", "main") == ("me", "x", "main")
    assert parse_ref("hf-hub:me/x@v1") == ("me", "x", "v1")  # the prefix is not part of the name
    with pytest.raises(ValueError, match="also given"):
        parse_ref("me/x@v1", "v2")
    with pytest.raises(ValueError, match="empty revision"):
        parse_ref("me/x@")
    with pytest.raises(ValueError, match="invalid revision"):
        parse_ref("me/x@a..b")


# ---------------------------------------------------------------------------- training record
def test_record_round_trips_through_json() -> None:
    rec = record(
        output_size=(80, 60), scale_factor=None, input_size=(160, 120), n_seeds=3, score_std=0.01
    )
    again = TrainingRecord.from_dict(json.loads(json.dumps(rec.to_dict())))
    assert again == rec
    assert again.output_size == (80, 60)
    assert rec.improvement == pytest.approx(0.25)


def test_record_accepts_integer_scores_as_floats() -> None:
    rec = record(score=1, baseline_score=0)
    assert isinstance(rec.score, float) and rec.score == 1.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"scale_factor": None}, "exactly one of output_size or scale_factor"),
        ({"output_size": (10, 10)}, "exactly one of output_size or scale_factor"),
        ({"score": float("nan")}, "score must be finite"),
        ({"generated_data": "yes"}, "generated_data must be bool"),
        ({"task": " "}, "task must not be empty"),
        ({"date": "25/11/2026"}, "YYYY-MM-DD"),
        ({"scale_factor": -0.5}, "scale_factor must be positive"),
        ({"input_size": (10, 0)}, "two positive ints"),
    ],
)
def test_bad_records_are_refused(overrides: dict, message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        record(**overrides)


def test_config_round_trip_keeps_resolved_distance_prior(tmp_path: Path) -> None:
    model = tiny(distance_prior=False)
    save_pretrained(model, tmp_path)
    assert from_pretrained(tmp_path).config == DownsizeNetConfig.from_dict(model.config.to_dict())
    assert from_pretrained(tmp_path).config.distance_prior is False


# ---------------------------------------------------------------------------- model card
def test_card_metadata_and_sections(tmp_path: Path) -> None:
    from huggingface_hub import ModelCard

    save_pretrained(tiny(), tmp_path, record=record(score_std=0.01, n_seeds=3), name="me/card")
    card = ModelCard.load(tmp_path / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "downsizenet-hub"
    assert data["license"] == "mit"
    assert data["datasets"] == ["scenes"]
    assert {"downsizenet", "image-segmentation", "generated-data"} <= set(data["tags"])
    metrics = data["model-index"][0]["results"][0]["metrics"]
    assert [(m["name"], m["value"]) for m in metrics] == [
        ("mIoU (this DownsizeNet)", 0.5),
        ("mIoU (bilinear baseline)", 0.25),
    ]
    assert data["model-index"][0]["name"] == "me/card"
    text = card.text
    assert 'DownsizeNet.from_pretrained("me/card")' in text
    assert 'torch.hub.load("path/to/downsizenet-hub", "downsizenet", source="local"' in text
    assert "downsizenet pretrain --epochs 2 --seed 7" in text
    assert "| this DownsizeNet | 0.5000 ± 0.0100 [0.4752, 0.5248] |" in text  # 95% t, 3 seeds
    assert "| difference | +0.2500 |" in text
    assert "**Trained on the built-in generated data**" in text


def test_card_without_baseline_or_record(tmp_path: Path) -> None:
    from huggingface_hub import ModelCard

    save_pretrained(
        tiny(), tmp_path / "a", record=record(baseline_score=None, generated_data=False)
    )
    card = ModelCard.load(tmp_path / "a" / "README.md")
    metrics = card.data.to_dict()["model-index"][0]["results"][0]["metrics"]
    assert len(metrics) == 1
    assert "No baseline was measured" in card.text
    assert "generated data" not in card.text
    save_pretrained(tiny(), tmp_path / "b")
    card = ModelCard.load(tmp_path / "b" / "README.md")
    assert "model-index" not in card.data.to_dict()
    assert "No training record was published with this resizer" in card.text


def test_a_card_states_seeds_and_intervals_or_says_there_are_none() -> None:
    import dataclasses

    from downsizenet_hub.hub.cards import render_card

    one = TrainingRecord(
        task="segmentation", pipeline="deeplabv3plus-tiny (torchvision ASPP)", dataset="scenes",
        generated_data=True, epochs=6, seed=0, metric="mIoU", score=11.85, baseline_score=11.65,
        command="downsizenet study --preset cpu", scale_factor=0.3,
    )  # fmt: skip
    card = render_card(DownsizeNetConfig(), one, "me/x", parameters=1, weights_bytes=4)
    assert "| Seeds | one seed (0) |" in card
    assert "One seed, no interval" in card
    assert "not recorded" not in card  # the tiny backbone is known to start from random weights
    three = dataclasses.replace(
        one, n_seeds=3, score_std=0.5, baseline_std=0.4, pipeline="deeplabv3plus-resnet50"
    )
    card = render_card(DownsizeNetConfig(), three, "hf-hub:me/x", parameters=1, weights_bytes=4)
    # t(0.975, 2) = 4.3027: half-width 4.3027 * 0.5 / sqrt(3) = 1.2421
    assert "| this DownsizeNet | 11.8500 ± 0.5000 [10.6079, 13.0921] |" in card
    assert "Mean ± std over 3 seeds, with the 95% t-interval" in card
    assert "not recorded: the backbone of deeplabv3plus-resnet50 trained with" in card
    assert 'from_pretrained("hf-hub:me/x")' in card and "# DownsizeNet resizer `me/x`" in card


def test_measured_differences_round_trip_and_show_on_the_card_and_in_hub_list() -> None:
    import dataclasses

    from downsizenet_hub.cli.hub import list_row
    from downsizenet_hub.hub.cards import render_card
    from downsizenet_hub.hub.local import PublishedResizer
    from downsizenet_hub.hub.record import MeasuredDifference

    differences = (
        MeasuredDifference("segmentation", "mIoU", "bilinear", 1.5, 0.5, 2.5, 3),
        MeasuredDifference("segmentation", "mIoU", "area", -0.25, -1.0, 0.5, 3),
        MeasuredDifference("detection (frozen transfer)", "mAP@0.5", "bilinear", -2.0, -3, -1, 3),
    )
    rec = dataclasses.replace(record(), differences=differences)
    again = TrainingRecord.from_dict(json.loads(json.dumps(rec.to_dict())))
    assert again == rec and isinstance(again.differences[2].ci_low, float)
    assert [d.verdict() for d in differences] == [
        "better than bilinear", "no detectable difference", "worse than bilinear",
    ]  # fmt: skip
    card = render_card(DownsizeNetConfig(), rec, "me/x", parameters=1, weights_bytes=4)
    assert "## Measured differences" in card and "over 3 seeds" in card
    row = "| segmentation | mIoU | area | -0.25 [-1.00, +0.50] | 3 | no detectable difference |"
    assert row in card
    assert "| detection (frozen transfer) | mAP@0.5 | bilinear | -2.00 [-3.00, -1.00] | 3 |" in card
    assert "## Measured differences" not in render_card(
        DownsizeNetConfig(), record(), "me/x", parameters=1, weights_bytes=4
    )
    entry = PublishedResizer("me/x", "local", Path("x"), DownsizeNetConfig(), rec, 4, "2026-12-01")
    assert list_row(entry)[-1] == (
        "segmentation mIoU +1.50 [+0.50, +2.50] vs bilinear; "
        "detection mAP@0.5 -2.00 [-3.00, -1.00] vs bilinear"
    )
    one = MeasuredDifference("segmentation", "mIoU", "bilinear", 1.0, None, None, 1)
    assert (one.describe(), one.verdict()) == ("+1.00 (n=1)", "one seed: no interval")
    assert not one.detectable
    with pytest.raises(ValueError, match="both ends"):
        MeasuredDifference("segmentation", "mIoU", "bilinear", 1.0, 0.0, None, 3)
    with pytest.raises(ValueError, match="finite"):
        MeasuredDifference("segmentation", "mIoU", "bilinear", float("inf"), None, None, 1)
    with pytest.raises(ValueError, match="unknown training record difference key"):
        TrainingRecord.from_dict({**rec.to_dict(), "differences": [{"task": "x", "oops": 1}]})
