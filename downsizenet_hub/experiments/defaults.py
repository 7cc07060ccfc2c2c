"""The built-in regime's defaults, in one place, free of heavy imports (the CLI reads them).

Chosen so that both tasks *learn* in CPU minutes on the built-in scenes (noisy, x0.3), with each
budget on its plateau (``benchmarks/learning_curve.py`` shows the curves, the README the numbers):

- data: 1600 training and 400 validation scenes of the ``large`` layout (the scenes'
  ``default`` preset, :data:`downsizenet_hub.data.scenes.PRESETS`). At 320 scenes the
  segmentation network memorised its training set (training loss 0.16, mIoU flat from 12 to 24
  epochs); more scenes pay more than more epochs, and the detection heads overfit past ~6
  epochs on fewer scenes.
- segmentation (``pretrain``): 8 epochs at batch 8 (1600 AdamW steps, cosine from 2e-3); at 6
  epochs the last quarter still gained 1.2-1.3 mIoU for area and DownsizeNet.
- detection (``transfer``): the CenterNet-style head on cached frozen features, 6 epochs at
  batch 16 (600 AdamW steps, cosine from 2e-3).
"""

from __future__ import annotations

#: The resize under test when neither --scale nor --size is given (pretrain, transfer).
SCALE = 0.3

PRETRAIN_EPOCHS = 8
PRETRAIN_BATCH_SIZE = 8
PRETRAIN_LR = 2e-3

TRANSFER_EPOCHS = 6
TRANSFER_BATCH_SIZE = 16
TRANSFER_LR = 2e-3
TRANSFER_HEAD = "centernet"
