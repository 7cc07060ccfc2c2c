"""The README is true as written: every ```bash and ```python block runs from the repository root,
as a new user would copy it, except the blocks listed in EXEMPT with the reason. Also the claims
it makes about ``as_bilinear()`` at its own sizes, against a float64 reference.

A block is named by its first line. A new block runs here by default; one that needs the network,
a dataset root, a GPU or more than two minutes goes into EXEMPT with its reason.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from downsizenet_hub import DownsizeNet

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: First line of a block -> why it is not run here.
EXEMPT: dict[str, str] = {
    "bash .ci/install && .venv/bin/downsizenet quickstart": (
        "reinstalls the environment from the network and trains for minutes; its second line "
        "runs the whole test suite"
    ),
    ".venv/bin/downsizenet pretrain ": "trains two arms: over 2 minutes on a 2-core CPU",
    ".venv/bin/python benchmarks/learning_curve.py": (
        "trains 15 runs of both tasks to their plateaus: hours on a 2-core CPU"
    ),
    ".venv/bin/downsizenet transfer ": (
        "needs the resizer the pretrain block publishes, and trains: over 2 minutes"
    ),
    "from downsizenet_hub import DownsizeNet\n\nnet = DownsizeNet.from_pretrained(": (
        "pushes to and loads from the Hugging Face Hub: needs the network and a token"
    ),
}
#: Seconds one block may take here (a loaded 2-core machine; the README promises none of this).
BLOCK_TIMEOUT_S = 240
_FENCE = re.compile(r"^```(bash|python)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks() -> list[tuple[str, str]]:
    """(language, code) of every ```bash and ```python block, in order."""
    return [(match.group(1), match.group(2)) for match in _FENCE.finditer(README.read_text())]


def exemption(code: str) -> str | None:
    for start, reason in EXEMPT.items():
        if code.startswith(start):
            return reason
    return None


def block_id(block: tuple[str, str]) -> str:
    language, code = block
    return f"{language}: {code.strip().splitlines()[0][:60]}"


def test_the_readme_has_blocks_and_every_exemption_names_one() -> None:
    found = blocks()
    assert len(found) >= 5
    for start in EXEMPT:
        assert any(code.startswith(start) for _, code in found), f"stale exemption: {start!r}"
    runnable = [block for block in found if exemption(block[1]) is None]
    assert {language for language, _ in runnable} == {"python"} or len(runnable) >= 2


@pytest.mark.parametrize("block", blocks(), ids=block_id)
def test_readme_block_runs_as_written(block: tuple[str, str], tmp_path: Path) -> None:
    language, code = block
    reason = exemption(code)
    if reason is not None:
        pytest.skip(f"exempt: {reason}")
    env = {**os.environ, "DOWNSIZENET_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    # As a new user: not inside the virtual environment, so `.venv/bin/...` must be written out.
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(
        part for part in env.get("PATH", "").split(os.pathsep) if part != venv_bin
    )
    env.pop("VIRTUAL_ENV", None)
    if language == "bash":
        command = ["bash", "-euo", "pipefail", "-c", code]
    else:
        command = [str(ROOT / ".venv" / "bin" / "python"), "-c", code]
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S
    )
    assert result.returncode == 0, f"{block_id(block)} failed:\n{result.stdout}\n{result.stderr}"


# ---------------------------------------------------------------------------- the README's claims
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
    if "scale_factor" in kwargs:  # the README's explanation of the 3e-5 against float32
        float32 = F.interpolate(images, mode="bilinear", align_corners=False, **kwargs)
        assert 1e-5 < (float32.double() - exact).abs().max().item() < 1e-4
