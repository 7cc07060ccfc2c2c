"""SIGTERM while the scenes data is being built ends the build at once, and the next build of that
root starts clean (the staging folder of the killed build is removed, no scene is half there).

The build runs in a subprocess whose progress callback, at a chosen scene, writes a marker and
waits on its stdin; the test sends SIGTERM there and counts the scenes reported after it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from downsizenet_hub.data import SceneConfig, ensure_scenes

TESTS_DIR = Path(__file__).resolve().parent

CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {repo_dir!r})
    from tests.data.layouts import fake_fashion_mnist
    from downsizenet_hub.data import SceneConfig, scenes

    scenes.load_fashion_mnist = fake_fashion_mnist
    out, marker = sys.argv[1], sys.argv[2]

    def progress(done, total):
        print(done, flush=True)
        if done == 2:
            with open(marker, "w") as handle:
                handle.write("waiting")
            sys.stdin.buffer.read(1)  # returns when the test closes our stdin

    scenes.ensure_scenes(4, seed=1, size=100, val_images=1, config=SceneConfig(), out=out,
                         progress=progress)
    print("finished", flush=True)
    """
)


def test_sigterm_during_a_scenes_build_ends_it_at_once(
    tmp_path: Path, fake_items: list[str]
) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(repo_dir=str(TESTS_DIR.parent.parent)))
    marker, out = tmp_path / "marker", tmp_path / "scenes"
    child = subprocess.Popen(
        [sys.executable, str(script), str(out), str(marker)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300
    while not marker.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            pytest.fail(f"the build never reached its second scene: {child.communicate()}")
        time.sleep(0.05)
    child.send_signal(signal.SIGTERM)
    printed, _ = child.communicate(timeout=300)
    assert child.returncode == -signal.SIGTERM
    assert printed.decode().split() == ["1", "2"]  # no scene after the signal
    assert not out.exists()  # the build never appeared half-made
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    assert len(leftovers) == 1

    root = ensure_scenes(4, seed=1, size=100, val_images=1, config=SceneConfig(), out=out)
    assert (root / "scenes.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
