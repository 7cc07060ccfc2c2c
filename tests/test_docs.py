"""The README and the documentation pages are true as written.

Every ```bash and ```python block of ``README.md`` and ``docs/*.md`` runs as a reader would paste
it at the repository root, except the blocks listed in EXEMPT with the reason. A block runs in a
scratch folder that mirrors the repository root (a link to each of its entries), so what it
writes (``runs/``, ``photos/``, ``compare.png``...) lands there, with an empty
``$DOWNSIZENET_HOME`` and the Hugging Face Hub offline. A block that appears on several pages runs
once. Also: the README's length and first screen, the shape of the blocks (``.venv/bin/`` paths,
no placeholders), the claims the pages make about ``as_bilinear()`` at their own sizes, and the
user-facing behaviour they describe (model cards, run folders, ``data scenes --items``).

A block is named by its first line. A new block runs here by default; one that needs the network,
a dataset root, a GPU or more than two minutes goes into EXEMPT with its reason, and one that
takes tens of seconds into SLOW (run by CI's ``-m "slow or not slow"``, not by plain ``pytest``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from downsizenet_hub import DownsizeNet

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCUMENTS = [README, *sorted((ROOT / "docs").glob("*.md"))]
#: The README's limit (issue 29: a newcomer reads it in five minutes).
README_MAX_LINES = 260
#: Lines a terminal shows first: the finding must be among them, with its intervals.
FIRST_SCREEN = 40
#: The first lines of a block (whole lines; a trailing comment may follow) -> why it is not run.
EXEMPT: dict[str, str] = {
    "bash .ci/install && .venv/bin/downsizenet quickstart": (
        "reinstalls the environment from the network and trains for minutes; its second line "
        "runs the whole test suite"
    ),
    "bash .ci/install": "reinstalls the environment from the network",
    ".venv/bin/downsizenet quickstart": "trains two resizers in both tasks: about 8 minutes",
    "bash .ci/run": "CI itself: reinstalls and runs every test, this one included",
    ".venv/bin/mkdocs serve": "a server that runs until it is stopped",
    ".venv/bin/downsizenet study --preset plateau --workers 2": (
        "computes the plateau study: hours on a 2-core CPU"
    ),
    ".venv/bin/python -m pytest tests/test_resize_target.py -q": (
        "runs tests/test_resize_target.py, which this suite runs itself"
    ),
    ".venv/bin/python -m downsizenet_hub.study.golden": (
        "the golden checks themselves: tests/test_numerics.py runs each part of them"
    ),
    ".venv/bin/python benchmarks/train_step.py --out benchmarks/results/train_step.json": (
        "times five resizers and a transfer arm for minutes, on an idle machine only, and "
        "rewrites the committed measurements"
    ),
    ".venv/bin/python benchmarks/pipeline_overhead.py --only inference --repeats 41 --runs 3 "
    "--out benchmarks/results/pipeline_overhead_41x3.json": (
        "times eight cases over 41 rounds in six processes: 27 minutes on an idle machine, and "
        "rewrites the committed measurement"
    ),
    ".venv/bin/python benchmarks/page_faults.py --batches 1 8 --cases 513-179 --calls 8 "
    "--warmup 2 --out benchmarks/results/page_faults_513.json": (
        "ten fresh processes of a VGG16 pipeline at batch 1 and 8: minutes, and rewrites the "
        "committed measurement"
    ),
    ".venv/bin/python benchmarks/pipeline_overhead.py --only training --train-backbones tiny "
    "--repeats 11 --out benchmarks/results/pipeline_overhead_training.json": (
        "times and profiles training steps for minutes, on an idle machine only, and rewrites "
        "the committed measurement"
    ),
    ".venv/bin/python benchmarks/resizer_profile.py --repeats 21 --calls 9 "
    "--out benchmarks/results/resizer_profile.json": (
        "times and profiles four cases beside a VGG16 trunk, on an idle machine only, and "
        "rewrites the committed measurement"
    ),
    ".venv/bin/python benchmarks/train_step.py --rounds 11 "
    "--out benchmarks/results/train_step_arithmetic.json": (
        "times five resizers and a transfer arm for minutes, on an idle machine only, and "
        "rewrites the committed measurements"
    ),
    ".venv/bin/python -m downsizenet_hub.study.golden --write": (
        "rewrites the committed golden reference; tests/test_numerics.py checks that it refuses "
        "to under the same numerics version"
    ),
    ".venv/bin/pip install examples/tiny-resizer": (
        "changes the environment and builds in an isolated environment from the network "
        "(tests/test_plugins.py installs the example offline into a temporary folder)"
    ),
    ".venv/bin/downsizenet transfer --plugin examples/tiny-resizer/tiny_resizer.py \\": (
        "loads the resizer the block before it publishes, in the same home (blocks here run in "
        "fresh homes); tests/test_plugins.py runs this transfer after that pretrain"
    ),
    ".venv/bin/downsizenet pretrain --scale 0.3 --compare bilinear --publish demo/seg": (
        "the default budget: 1600 steps per arm, about an hour on a 2-core CPU (the tiny block "
        "beside it runs)"
    ),
    ".venv/bin/downsizenet transfer --resizer demo/seg --compare bilinear": (
        "needs the resizer the default pretrain block publishes, and trains for minutes"
    ),
    ".venv/bin/downsizenet pretrain --resizer talebi --scale 0.3 --compare bilinear --publish "
    "demo/talebi": "trains three runs at the default budget: about an hour each on a 2-core CPU",
    ".venv/bin/python benchmarks/learning_curve.py --seeds 0 1 2 --learned-seeds 0": (
        "trains 15 runs of both tasks to their plateaus: hours on a 2-core CPU"
    ),
    ".venv/bin/python benchmarks/learning_curve.py --seeds 0 --family A --resizers bilinear "
    "downsizenet --tasks segmentation --threads 1 --run-dir runs/learning_curve_famA --out "
    "benchmarks/results/learning_curve_famA.json --figure docs/learning_curve_famA.png": (
        "trains two 1600-step segmentation runs: over an hour on a 2-core CPU"
    ),
    "from downsizenet_hub import DownsizeNet\n\n"
    'net = DownsizeNet.from_pretrained("downsizenet/scenes-a-noisy-x0.3")': (
        "pushes to and loads from the Hugging Face Hub: needs the network and a token"
    ),
}
#: Blocks that run here only with the slow tests (CI runs them; plain `pytest` does not), by the
#: start of their first line: each takes tens of seconds on a 2-core CPU.
SLOW = (
    ".venv/bin/downsizenet pretrain --scale 0.3 --compare bilinear --publish demo/seg --train-",
    "mkdir -p photos && cp .venv/lib/python3*/site-packages/skimage/data/astronaut.png photos/",
    ".venv/bin/mkdocs build ",
    ".venv/bin/downsizenet pretrain --plugin examples/tiny-resizer/tiny_resizer.py",
    ".venv/bin/downsizenet study --config examples/tiny-resizer/study.toml",
)
#: Seconds one block may take here (a loaded 2-core machine; the pages promise none of this).
BLOCK_TIMEOUT_S = 300
_FENCE = re.compile(r"^```(bash|python)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
#: Entries of the repository root a block must not see through the mirror (its own outputs and
#: git's files would be shared with the checkout). ``results`` above all: a study block run through
#: it would compute into the checkout's committed cells.
_NOT_MIRRORED = {".git", "runs", "site", "photos", "small", "scenes", "scenes-small", "results"}


def blocks() -> list[tuple[str, str, str]]:
    """(document, language, code) of every ```bash and ```python block, each distinct code once,
    named by the first document that holds it."""
    found: dict[str, tuple[str, str, str]] = {}
    for document in DOCUMENTS:
        name = str(document.relative_to(ROOT))
        for match in _FENCE.finditer(document.read_text(encoding="utf-8")):
            found.setdefault(match.group(2), (name, match.group(1), match.group(2)))
    return list(found.values())


def exemption(code: str) -> str | None:
    for start, reason in EXEMPT.items():
        rest_of_line = code[len(start) :].split("\n", 1)[0].strip()
        if code.startswith(start) and (not rest_of_line or rest_of_line.startswith("#")):
            return reason
    return None


def block_id(block: tuple[str, str, str]) -> str:
    document, language, code = block
    return f"{document} {language}: {code.strip().splitlines()[0][:60]}"


def runnable_blocks() -> list:
    """Every block, those in SLOW marked slow."""
    return [
        pytest.param(block, id=block_id(block), marks=[pytest.mark.slow])
        if block[2].startswith(SLOW)
        else pytest.param(block, id=block_id(block))
        for block in blocks()
    ]


def test_every_page_has_blocks_and_every_exemption_names_one() -> None:
    found = blocks()
    assert len(found) >= 20
    for start in EXEMPT:
        assert any(exemption(code) == EXEMPT[start] for _, _, code in found), f"stale: {start!r}"
    runnable = [block for block in found if exemption(block[2]) is None]
    assert {language for _, language, _ in runnable} == {"bash", "python"}
    for start in SLOW:
        assert any(code.startswith(start) for _, _, code in runnable), f"stale: {start!r}"


@pytest.mark.parametrize("block", blocks(), ids=block_id)
def test_a_block_is_written_as_a_reader_pastes_it(block: tuple[str, str, str]) -> None:
    """Commands name the environment's programs (``.venv/bin/...``: no bare ``python`` or
    ``downsizenet``, which fail outside an activated environment) and hold no placeholders."""
    _, language, code = block
    assert not re.search(r"<[a-z][a-z_ -]*>", code), "a placeholder such as <path>"
    if language == "bash":
        for line in code.splitlines():
            first = line.split("#")[0].split()[:1]
            assert first != ["python"] and first != ["downsizenet"], line
            assert first != ["pip"] and first != ["mkdocs"], line


@pytest.mark.parametrize("block", runnable_blocks())
def test_a_block_runs_as_written(block: tuple[str, str, str], tmp_path: Path) -> None:
    _, language, code = block
    reason = exemption(code)
    if reason is not None:
        pytest.skip(f"exempt: {reason}")
    mirror = tmp_path / "repository"
    mirror.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in _NOT_MIRRORED:
            (mirror / entry.name).symlink_to(entry)
    env = {**os.environ, "DOWNSIZENET_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    env["NO_MKDOCS_2_WARNING"] = "1"
    # As a new user: not inside the virtual environment, so `.venv/bin/...` must be written out.
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(
        part for part in env.get("PATH", "").split(os.pathsep) if part != venv_bin
    )
    env.pop("VIRTUAL_ENV", None)
    if language == "bash":
        command = ["bash", "-euo", "pipefail", "-c", code]
    else:
        command = [str(mirror / ".venv" / "bin" / "python"), "-c", code]
    result = subprocess.run(
        command, cwd=mirror, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S
    )
    assert result.returncode == 0, f"{block_id(block)} failed:\n{result.stdout}\n{result.stderr}"


# ------------------------------------------------------------------------------------ the README
def test_the_readme_is_short_and_leads_with_the_finding() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES
    first_screen = "\n".join(lines[:FIRST_SCREEN])
    assert "## What the study found" in first_screen
    # The headline numbers are the committed plateau report's, with their intervals: the 2x2
    # resizer against bilinear, the antialias one against the fixed filter it starts as.
    report = json.loads((ROOT / "results" / "plateau" / "results.json").read_text())
    segmentation = next(
        r for r in report["rows"]
        if r["kind"] == "segmentation" and r["resizer"] == "downsizenet"
    )  # fmt: skip
    start = next(
        h for h in report["head_to_head"]
        if h["task"] == "segmentation" and h["first"] == "downsizenet-antialias"
        and h["second"] == "antialias"
    )  # fmt: skip
    words = " ".join(first_screen.split())  # as read, across line breaks
    for difference in (segmentation["difference_to_bilinear"]["segmentation"], start["difference"]):
        interval = f"[{difference['ci_low']:+.2f}, {difference['ci_high']:+.2f}]"
        assert f"{difference['mean']:+.2f} {interval}" in words
    assert "mkdocs serve" in README.read_text(encoding="utf-8")


def test_every_page_is_in_the_site_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in (ROOT / "docs").glob("*.md"):
        assert f": {page.name}" in nav, f"{page.name} is not in mkdocs.yml's nav"


def api_modules() -> list[str]:
    """The modules whose docstrings the API reference page renders (its ``:::`` lines; an object
    is taken with its module)."""
    from importlib import import_module

    modules = []
    for line in (ROOT / "docs" / "api.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("::: "):
            path = line[4:].strip()
            while True:
                try:
                    import_module(path)
                    break
                except ImportError:
                    path = path.rsplit(".", 1)[0]
            modules.append(path)
    return list(dict.fromkeys(modules))


@pytest.mark.parametrize("module", api_modules())
def test_the_api_pages_examples_run(module: str) -> None:
    """The doctests the API reference shows as examples give the output they show."""
    import doctest
    from importlib import import_module

    result = doctest.testmod(
        import_module(module), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.failed == 0


# ---------------------------------------------------------------------------- the pages' claims
@pytest.mark.parametrize(
    ("shape", "kwargs"),
    [((1, 3, 513, 513), {"scale_factor": 0.35}), ((2, 3, 300, 300), {"size": (160, 160)})],
    ids=["513x513-x0.35", "300-to-160"],
)
def test_as_bilinear_is_bilinear_at_the_readme_sizes(shape: tuple[int, ...], kwargs: dict) -> None:
    """Within 2.5e-7 of a float64 F.interpolate; PyTorch's float32 kernel is the less exact one."""
    images = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = DownsizeNet.as_bilinear()(images, **kwargs)
    exact = F.interpolate(images.double(), mode="bilinear", align_corners=False, **kwargs)
    assert ours.shape == exact.shape
    assert (ours.double() - exact).abs().max().item() < 2.5e-7
    if "scale_factor" in kwargs:  # the resizer page's explanation of the 3e-5 against float32
        float32 = F.interpolate(images, mode="bilinear", align_corners=False, **kwargs)
        assert 1e-5 < (float32.double() - exact).abs().max().item() < 1e-4


@pytest.mark.parametrize(
    ("resize", "call"),
    [({"scale_factor": 0.3}, "scale_factor=0.3"), ({"output_size": (90, 120)}, "size=(90, 120)")],
)
def test_a_card_resizes_as_its_resizer_was_trained(resize: dict, call: str) -> None:
    from downsizenet_hub.hub.cards import render_card
    from downsizenet_hub.hub.record import TrainingRecord
    from downsizenet_hub.resizing.config import DownsizeNetConfig

    record = TrainingRecord(
        task="segmentation", pipeline="deeplabv3plus-tiny", dataset="scenes",
        generated_data=True, epochs=3, seed=0, metric="mIoU", score=35.0, command="x", **resize,
    )  # fmt: skip
    card = render_card(DownsizeNetConfig(), record, "me/x", parameters=1, weights_bytes=4)
    assert f"small = resizer(images, {call})" in card
    assert "scale_factor=0.5" not in card
    untrained = render_card(DownsizeNetConfig(), None, "me/x", parameters=1, weights_bytes=4)
    assert "small = resizer(images, scale_factor=0.5)" in untrained  # no record: an example


def test_run_folders_and_progress_names_carry_the_data() -> None:
    from downsizenet_hub.cli.data import run_label
    from downsizenet_hub.experiments.common import DataOptions

    assert run_label(DataOptions(scale=0.3)) == "scenes-noisy-large-x0.3"
    assert run_label(DataOptions(variant="clean", items="small", scale=None, size=(160, 160))) == (
        "scenes-clean-small-160x160"
    )
    assert run_label(DataOptions(name="voc", root=Path("/data/voc"), scale=0.5)) == "voc-noisy-x0.5"


def test_transfer_names_a_folder_resizer_after_the_folder(tmp_path: Path) -> None:
    from downsizenet_hub.experiments.transfer import _arm_folder
    from downsizenet_hub.hub import ResolvedRef
    from downsizenet_hub.registry import ResizerRef, resolve_resizer

    folder = tmp_path / "published" / "scenes-noisy-x0.3"
    folder.mkdir(parents=True)
    assert _arm_folder(resolve_resizer(str(folder)), [str(folder), "bilinear"]) == folder.name
    local = ResizerRef("demo/seg", "published", published=ResolvedRef(folder, "local", "demo/seg"))
    assert _arm_folder(local, ["demo/seg", "bilinear"]) == "demo__seg"  # a hub name
    clash = tmp_path / "bilinear"
    clash.mkdir()
    clashing = resolve_resizer(str(clash))
    assert _arm_folder(clashing, [str(clash), "bilinear"]) != "bilinear"  # arms never share


def test_data_scenes_builds_the_layout_it_is_given(tmp_path: Path, isolated_home: Path) -> None:
    from downsizenet_hub.cli import app
    from downsizenet_hub.data import scenes

    out = tmp_path / "small"
    args = ["data", "scenes", "--out", str(out), "--images", "2", "--val-images", "1"]
    result = CliRunner().invoke(app, [*args, "--items", "small"])
    assert result.exit_code == 0, result.output
    assert "small items" in result.output
    assert scenes.read_manifest(out)["config"]["item_size"] == [24, 40]  # small: 24-40 px items
    refused = CliRunner().invoke(
        app, [*args[:3], str(tmp_path / "x"), *args[4:], "--items", "huge"]
    )
    assert refused.exit_code == 2 and "Unknown scene layout 'huge'" in refused.output
    assert not (tmp_path / "x").exists()


# ------------------------------------------- the quickstart's report (the getting-started page)
def test_the_quickstart_cost_table_has_bilinear_beside_downsizenet() -> None:
    """Bilinear trains in the quickstart only as DownsizeNet's reference: its segmentation cost
    still gets a row, so DownsizeNet's "vs bilinear" has a number, not "-"."""
    from downsizenet_hub.study.aggregate import estimate
    from downsizenet_hub.study.cells import PRIMARY_METRIC, plan_study
    from downsizenet_hub.study.cost import cost_points, cost_table
    from downsizenet_hub.study.presets import preset
    from downsizenet_hub.study.report import RowSummary

    plan = plan_study(preset("quick"), backbone_weights="hed")
    summaries = []
    for row in plan.rows:
        scores = {task: {PRIMARY_METRIC[task]: estimate([40.0])} for task in row.cells}
        baseline = {task: estimate([39.0]) for task in row.baseline}
        summaries.append(RowSummary(row, scores=scores, baseline=baseline))
    table = cost_table(cost_points(plan, summaries), {})
    rows = [line for line in table.splitlines() if line.startswith("| segmentation")]
    assert [line.split(" | ")[1] for line in rows] == ["downsizenet", "bilinear"]
    assert "| 39.00 mIoU |" in rows[1] and " - |" not in rows[0].rsplit(" | ", 3)[0]


def test_the_help_lists_the_main_job_first_as_the_readme_does() -> None:
    from downsizenet_hub.cli import app

    shown = CliRunner().invoke(app, ["--help"]).output
    listed = [line.split()[0] for line in shown.split("Commands:")[1].splitlines() if line.strip()]
    assert listed[:2] == ["quickstart", "study"]
    table = README.read_text(encoding="utf-8").split("| command | what it does |")[1]
    assert table.split("\n")[2].startswith("| `quickstart` |")
    for command in ("resize", "export"):  # not the training commands' "resizer under test"
        shown = " ".join(CliRunner().invoke(app, [command, "--help"]).output.split())
        scale = shown.split("--scale S")[1].split(" --")[0]
        assert "under test" not in scale and "floor(side x S)" in scale
