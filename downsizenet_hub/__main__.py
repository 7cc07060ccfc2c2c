"""``python -m downsizenet_hub`` runs the CLI (handy under ``torchrun -m downsizenet_hub ...``)."""

from downsizenet_hub.cli import main

main()
