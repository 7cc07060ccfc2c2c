"""pretrain and transfer: resizers trained, or reused frozen, side by side (arms); recorded and
published one way."""
