"""The process group is really gone after cleanup(): its gloo worker threads are joined.

A gloo worker still alive when the interpreter finalises can drop the last reference to a tensor
made in Python, take the GIL, and abort the process (SIGABRT, "terminate called without an
active exception"); see downsizenet_hub.engine.distributed. This runs in a fresh interpreter, so
what the test session imported before does not matter.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import os, sys
    import torch
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel
    from downsizenet_hub.engine import distributed

    def gloo_workers():
        names = [open(f"/proc/self/task/{tid}/comm").read().strip()
                 for tid in os.listdir("/proc/self/task")]
        return sum(name == "pt_gloo_runloop" for name in names)

    distributed._join("gloo")  # a world of one, through the same path as torchrun's ranks

    class Trainer:  # a finished trainer that nothing but a reference cycle keeps alive
        def __init__(self):
            self.model = DistributedDataParallel(nn.Linear(4, 4))
            self.stop_requested = lambda: self
    trainer = Trainer()
    trainer.model(torch.randn(2, 4)).sum().backward()
    distributed.all_reduce_sum(torch.ones(2))
    during = gloo_workers()
    del trainer
    distributed.cleanup()
    print(during, gloo_workers())
    """
)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_cleanup_joins_the_gloo_workers_even_behind_a_reference_cycle(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "0", "WORLD_SIZE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    during, after = done.stdout.split()[-2:]
    assert int(during) > 0 and after == "0"
