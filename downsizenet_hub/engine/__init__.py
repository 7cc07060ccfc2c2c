"""The one training engine: :func:`fit` and :func:`evaluate` for any *pipeline*.

The pipeline contract
---------------------
A pipeline is an ``nn.Module`` that owns everything the task needs (resizer, backbone, heads,
loss) and is called as ``pipeline(images, targets) -> dict``:

* ``images``: the batch (a ``(B, C, H, W)`` tensor with the default collate), ``targets``: a list
  of ``B`` dicts. Both arrive on the run's device (every tensor inside is moved).
* In train mode the dict holds ``"loss"``: a scalar tensor to minimise. In eval mode it holds
  ``"preds"``: whatever the pipeline's metric understands (a loss may be there too).
* ``pipeline.build_metric()`` returns a torchmetrics ``Metric`` (or any object with
  ``update(preds, targets)``, ``compute() -> mapping of name -> scalar``, ``reset()``); it is
  needed only when a validation set is given. Scalar entries of ``compute()`` are reported.
* Frozen parts are the pipeline's business: their parameters have ``requires_grad=False`` (the
  engine optimises only parameters with ``requires_grad=True``), and the pipeline overrides
  ``train(mode)`` to keep them in eval mode, because the engine calls ``pipeline.train()`` at the
  start of every epoch and ``pipeline.eval()`` to evaluate. (A frozen batch-norm layer found in
  train mode after ``pipeline.train()`` triggers a warning.)

The engine never imports pipelines, data or the CLI.

What a run gives
----------------
``run_dir/checkpoint.pt`` (every epoch, atomic; ``torch.load(weights_only=True)``; frozen
parameters are left out and fingerprinted, so a resume needs the same frozen weights),
``run_dir/metrics.json`` (status, final metrics, per-epoch history; atomic) and
``run_dir/train.log`` (plain lines), written by rank 0 only. ``resume=True`` continues exactly:
the data order and all randomness depend only on ``(seed, epoch, rank)``, so the resumed run
reproduces the uninterrupted one bit for bit (CPU, same settings). Each epoch trains on full
batches only (the remainder is dropped). A non-finite loss raises :class:`TrainingError` before
any weight changes, leaving the last checkpoint intact. The first Ctrl-C or SIGTERM finishes the
current step, saves a mid-epoch checkpoint (with ``num_workers=0``; otherwise the last epoch
checkpoint stands), marks the run ``interrupted`` in metrics.json and raises
:class:`TrainingInterrupted`; a second one stops at once, keeping the last checkpoint. While it
trains, rank 0 holds an exclusive ``flock`` on ``run_dir/run.lock``: a second process is refused
(:class:`~downsizenet_hub.engine.runlock.RunInUseError`), and a run killed without a word
(``kill -9``) is recognised from its free lock: :func:`run_status` reports it ``interrupted``, and
the resume says so.

Under ``torchrun`` the engine joins the process group itself (:func:`init_from_env`), wraps the
pipeline in DistributedDataParallel, gives each rank its share of every epoch, and reduces the
metric across ranks; ``batch_size`` is per process, and every rank reads ``run_dir`` on resume
(one machine, or a shared file system).

Example::

    config = TrainConfig(epochs=5, batch_size=8, lr=1e-3, seed=0)
    result = fit(pipeline, train_set, val_set, config, "runs/seg-demo")
    print(result.final_metrics, result.images_per_s)
"""

from downsizenet_hub.engine.config import (
    EpochRecord,
    FitResult,
    TrainConfig,
    TrainingError,
    TrainingInterrupted,
)
from downsizenet_hub.engine.distributed import (
    barrier,
    cleanup,
    init_from_env,
    is_distributed,
    is_main_process,
)
from downsizenet_hub.engine.evaluation import MetricLike, evaluate
from downsizenet_hub.engine.loaders import collate_pairs
from downsizenet_hub.engine.loop import fit
from downsizenet_hub.engine.runlock import RunInUseError, run_status

__all__ = [
    "EpochRecord",
    "FitResult",
    "MetricLike",
    "RunInUseError",
    "TrainConfig",
    "TrainingError",
    "TrainingInterrupted",
    "barrier",
    "cleanup",
    "collate_pairs",
    "evaluate",
    "fit",
    "init_from_env",
    "is_distributed",
    "is_main_process",
    "run_status",
]
