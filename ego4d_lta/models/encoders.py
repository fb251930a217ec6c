"""End-to-end inputs: SlowFast (trainable or frozen) and frozen CLIP turn decoded windows into the cache's features.

Used when SlowFast is fine-tuned (`model.finetune_slowfast`), so training reads video instead of the cache;
the features have exactly the cache's layout, so the forecaster is the same either way.
"""

from __future__ import annotations

import torch
from torch import nn

from ego4d_lta.models.clip import ClipEncoder
from ego4d_lta.models.slowfast import SlowFastEncoder


class VideoEncoders(nn.Module):
    def __init__(self, slowfast: SlowFastEncoder, clip: ClipEncoder, finetune_slowfast: bool) -> None:
        super().__init__()
        self.slowfast = slowfast
        self.clip = clip
        self.finetune_slowfast = finetune_slowfast
        slowfast.requires_grad_(finetune_slowfast)
        slowfast.net.blocks[-1].proj.requires_grad_(False)  # the recognition head is never used here (DDP needs
        # every trainable parameter to get a gradient)

    def train(self, mode: bool = True) -> VideoEncoders:
        """BatchNorm statistics stay frozen even when SlowFast's weights train (small per-GPU batches)."""
        super().train(mode)
        for m in self.slowfast.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) or not self.finetune_slowfast:
                m.eval()
        return self

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """slow (B, N, 3, T/a, S, S), fast (B, N, 3, T, S, S), images (B, N, F, 3, s, s) -> cache-layout features."""
        b, n = batch["slow"].shape[:2]
        with torch.set_grad_enabled(self.finetune_slowfast and torch.is_grad_enabled()):
            sf = self.slowfast([batch["slow"].flatten(0, 1), batch["fast"].flatten(0, 1)])
        images = batch["images"].flatten(0, 1)
        clip = self.clip.encode_frames(images)
        return {"slowfast": sf.view(b, n, -1).float(), "clip": clip.view(b, n, *clip.shape[1:]).float()}

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """What a checkpoint keeps: the SlowFast weights when they train (CLIP is frozen and re-read from its file)."""
        return {f"slowfast.{k}": v for k, v in self.slowfast.state_dict().items()} if self.finetune_slowfast else {}
