"""SlowFast R101 8x8 as in Ego4D LTA, built from pytorchvideo, and loading official checkpoints.

`build_slowfast` reproduces the official network exactly (research/slowfast_mapping.md): pytorchvideo's
`create_slowfast` with fusion kernel 5, alpha 4, beta 1/8. The encoder returns the pooled 2304-d feature
(2048 slow + 256 fast) that feeds the forecaster's trainable projection; the head's Linear is kept only
so that checkpoints with a head load strictly.

Official Ego4D checkpoints are Lightning files whose keys follow PySlowFast names (`model.s2.pathway0_res0.
branch2.a.weight`); `official_to_pytorchvideo` renames them with the rules of the mapping table.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

with warnings.catch_warnings():  # fvcore (via pytorchvideo) scripts a loss at import: not ours to fix, not news
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
    from pytorchvideo.models.slowfast import create_slowfast

from ego4d_lta.base.durable import atomic_target
from ego4d_lta.base.errors import UserError
from ego4d_lta.models.inert_unpickle import load_tensors


@dataclass(frozen=True)
class SlowFastConfig:
    """Shape of the SlowFast network. `r101` is the Ego4D R101 8x8; `tiny` the same classes, one block per stage and
    narrow, for tests and the demo (its extraction is ~3x cheaper than depth 50 on a CPU)."""

    depth: int = 101
    stem_width: int = 64
    """Slow-pathway stem channels; every later width scales with it (pooled feature = 36 * stem_width)."""
    beta_inv: int = 8
    alpha: int = 4
    fusion_kernel: int = 5
    num_classes: int = 2048
    """Rows of the head's Linear (2048 in the LTA backbone, 593 in the recognition checkpoint)."""

    @property
    def feature_dim(self) -> int:
        """Width of the pooled feature: slow 32 * stem + fast 32 * stem / beta_inv."""
        slow = self.stem_width * 32
        return slow + slow // self.beta_inv


SLOWFAST_PRESETS = {
    "r101": SlowFastConfig(),
    "tiny": SlowFastConfig(depth=18, stem_width=8),
}


def build_slowfast(cfg: SlowFastConfig, num_frames: int = 32, crop_size: int = 224) -> nn.Module:
    """pytorchvideo's SlowFast with the official Ego4D arguments; head pools sized for the input."""
    cell = max(crop_size // 32, 1)
    slow = num_frames // cfg.alpha
    return create_slowfast(
        model_depth=cfg.depth,
        slowfast_channel_reduction_ratio=(cfg.beta_inv,),
        slowfast_conv_channel_fusion_ratio=2,
        slowfast_fusion_conv_kernel_size=(cfg.fusion_kernel, 1, 1),
        slowfast_fusion_conv_stride=(cfg.alpha, 1, 1),
        stem_dim_outs=(cfg.stem_width, cfg.stem_width // cfg.beta_inv),
        head_pool_kernel_sizes=((slow, cell, cell), (num_frames, cell, cell)),
        dropout_rate=0.5,
        model_num_class=cfg.num_classes,
    )


class SlowFastEncoder(nn.Module):
    """Frozen-feature view of a pytorchvideo SlowFast: [slow, fast] -> (B, feature_dim), before the head's Linear."""

    def __init__(self, cfg: SlowFastConfig, num_frames: int = 32, crop_size: int = 224) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = build_slowfast(cfg, num_frames, crop_size)

    @property
    def feature_dim(self) -> int:
        return self.cfg.feature_dim

    def forward(self, pathways: list[torch.Tensor]) -> torch.Tensor:
        x = list(pathways)  # pytorchvideo's multipathway blocks overwrite the list they are given
        blocks = self.net.blocks
        for block in blocks[:-1]:
            x = block(x)
        head = blocks[-1]
        if head.pool is not None:
            x = head.pool(x)
        if head.output_pool is not None:
            x = head.output_pool(x)
        return x.flatten(1)


def freeze(module: nn.Module) -> nn.Module:
    """Frozen means eval() too: BatchNorm statistics must not move, and dropout must be off."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


# ---------------------------------------------------------------------------------------------------------------
# Official PySlowFast names -> pytorchvideo names (research/slowfast_mapping.md)

_RULES = [
    (re.compile(r"^s1\.pathway(\d)_stem\.conv\.(.+)$"), r"blocks.0.multipathway_blocks.\1.conv.\2"),
    (re.compile(r"^s1\.pathway(\d)_stem\.bn\.(.+)$"), r"blocks.0.multipathway_blocks.\1.norm.\2"),
    (re.compile(r"^s(\d)_fuse\.conv_f2s\.(.+)$"), "fuse_conv"),
    (re.compile(r"^s(\d)_fuse\.bn\.(.+)$"), "fuse_bn"),
    (re.compile(r"^s(\d)\.pathway(\d)_res(\d+)\.branch1\.(.+)$"), "branch1"),
    (re.compile(r"^s(\d)\.pathway(\d)_res(\d+)\.branch1_bn\.(.+)$"), "branch1_bn"),
    (re.compile(r"^s(\d)\.pathway(\d)_res(\d+)\.branch2\.([abc])\.(.+)$"), "branch2"),
    (re.compile(r"^s(\d)\.pathway(\d)_res(\d+)\.branch2\.([abc])_bn\.(.+)$"), "branch2_bn"),
    (re.compile(r"^head\.projection\.(.+)$"), r"blocks.6.proj.\1"),
]
OFFICIAL_PREFIXES = ("model.backbone.", "model.")
"""`lta_slowfast_*.ckpt` nests the backbone under `model.backbone.`; `ego4d_slowfast8x8.ckpt` under `model.`."""


def official_key(key: str) -> str | None:
    """The pytorchvideo name of one official key (prefix already stripped), or None if it has no counterpart."""
    for pattern, target in _RULES:
        m = pattern.match(key)
        if not m:
            continue
        g = m.groups()
        if target == "fuse_conv":
            return f"blocks.{int(g[0]) - 1}.multipathway_fusion.conv_fast_to_slow.{g[1]}"
        if target == "fuse_bn":
            return f"blocks.{int(g[0]) - 1}.multipathway_fusion.norm.{g[1]}"
        if target in ("branch1", "branch1_bn"):
            part = "branch1_conv" if target == "branch1" else "branch1_norm"
            return f"blocks.{int(g[0]) - 1}.multipathway_blocks.{g[1]}.res_blocks.{g[2]}.{part}.{g[3]}"
        if target in ("branch2", "branch2_bn"):
            part = ("conv_" if target == "branch2" else "norm_") + g[3]
            return f"blocks.{int(g[0]) - 1}.multipathway_blocks.{g[1]}.res_blocks.{g[2]}.branch2.{part}.{g[4]}"
        return m.expand(target)
    return None


def official_to_pytorchvideo(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(backbone, head) pytorchvideo state dicts from an official Lightning `state_dict`.

    The backbone prefix is whichever of `model.backbone.` / `model.` the file uses. The recognition head's two
    Linears (`head.projections.0/1`, verb then noun) are concatenated into one `blocks.6.proj`, as the official
    eval path computes them; the LTA aggregator and decoder tensors are not SlowFast's and are left out.
    """
    prefix = next((p for p in OFFICIAL_PREFIXES if any(k.startswith(p + "s1.") for k in state)), None)
    if prefix is None:
        raise ValueError("no SlowFast backbone keys (model.s1.* or model.backbone.s1.*)")
    backbone: dict[str, torch.Tensor] = {}
    head: dict[str, torch.Tensor] = {}
    projections: dict[str, dict[int, torch.Tensor]] = {}
    for key, value in state.items():
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix) :]
        m = re.match(r"^head\.projections\.(\d+)\.(weight|bias)$", rest)
        if m:
            projections.setdefault(m.group(2), {})[int(m.group(1))] = value
            continue
        target = official_key(rest)
        if target is None:
            continue
        (head if target.startswith("blocks.6.") else backbone)[target] = value
    for name, parts in projections.items():
        head[f"blocks.6.proj.{name}"] = torch.cat([parts[i] for i in sorted(parts)])
    return backbone, head


# ---------------------------------------------------------------------------------------------------------------
# Files


def save_weights(encoder: SlowFastEncoder, path: Path | str) -> None:
    """Our own checkpoint format: {"format": "ego4d-lta/slowfast", "config": ..., "state_dict": ...}."""
    from dataclasses import asdict

    payload = {"format": "ego4d-lta/slowfast", "config": asdict(encoder.cfg), "state_dict": encoder.net.state_dict()}
    with atomic_target(path) as tmp, open(tmp, "wb") as f:
        torch.save(payload, f)  # a file object: the bytes do not depend on the temporary file's name


def load_weights(encoder: SlowFastEncoder, path: Path | str) -> str:
    """Load our checkpoint or an official Ego4D Lightning `.ckpt` into `encoder`; returns which kind it was.

    Every backbone tensor must be present with its shape: a partial load would silently give random features.
    The head's Linear is loaded only when its shape fits (the LTA and recognition heads differ).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: SlowFast weights file not found")
    try:
        # Official Lightning files pickle their fvcore config next to the tensors: read them without running it.
        payload = load_tensors(path)
    except Exception as e:  # any unreadable file is the user's to fix
        raise UserError(f"{path}: not a torch checkpoint ({type(e).__name__}: {str(e)[:80]})") from None
    if not isinstance(payload, dict):
        raise UserError(f"{path}: not a checkpoint dict (found {type(payload).__name__})")
    if payload.get("format") == "ego4d-lta/slowfast":
        kind, state = "ego4d-lta", dict(payload["state_dict"])
        backbone = {k: v for k, v in state.items() if not k.startswith("blocks.6.")}
        head = {k: v for k, v in state.items() if k.startswith("blocks.6.")}
    else:
        state = payload.get("state_dict", payload)
        try:
            backbone, head = official_to_pytorchvideo(state)
        except ValueError as e:
            raise UserError(f"{path}: key 'state_dict': {e}") from None
        kind = "official"
    _check_and_load(encoder.net, backbone, head, path)
    return kind


def _check_and_load(net: nn.Module, backbone: dict, head: dict, path: Path) -> None:
    own = net.state_dict()
    wanted = {k for k in own if not k.startswith("blocks.6.")}
    missing = sorted(wanted - set(backbone))
    if missing:
        raise UserError(f"{path}: {len(missing)} SlowFast tensors missing, first {missing[0]!r} (wrong architecture?)")
    unexpected = sorted(set(backbone) - wanted)
    if unexpected:
        raise UserError(f"{path}: unexpected tensor {unexpected[0]!r} for this SlowFast configuration")
    for k, v in backbone.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise UserError(
                f"{path}: tensor {k!r} has shape {list(v.shape)}, the model needs {list(own[k].shape)} "
                "(wrong SlowFast preset?)"
            )
    fits = all(k in own and tuple(v.shape) == tuple(own[k].shape) for k, v in head.items())
    net.load_state_dict({**backbone, **(head if head and fits else {})}, strict=False)
