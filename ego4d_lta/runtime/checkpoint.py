"""Run checkpoints as one typed record: `last.pt` (everything to resume exactly) and `best.pt` (what predict needs).

Both hold the full config, the feature record (which encoders and weights made the inputs), the taxonomy size,
the fallback action and the CLIP prompt bank, so `ego4d-lta predict` rebuilds the model from the file alone.
Files are written atomically and read with `torch.load(weights_only=True)`: tensors and plain containers only,
so a crafted file cannot run code.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ego4d_lta import __version__
from ego4d_lta.base.durable import atomic_target
from ego4d_lta.base.errors import UserError
from ego4d_lta.base.jsonio import describe, printable
from ego4d_lta.data.feature_record import FeatureRecord

if TYPE_CHECKING:
    from ego4d_lta.config import Config

FORMAT = "ego4d-lta/checkpoint"
VERSION = 2
"""2: the prompt bank stored explicitly and the full feature record (1: bank only inside the model's buffers)."""
BEFORE_THE_FIELD = {"recognition_weight": 0.0, "decoder": "heads"}
"""model.* fields added after checkpoints were made, with the model those checkpoints have: no recognition heads,
the 20 heads (a newer default must not rebuild an older run as another model)."""


@dataclass
class TrainState:
    """Where a run is: the position in the data, the best epoch so far and the per-epoch history."""

    epoch: int = 0
    """Finished epochs."""
    batch: int = 0
    """Finished batches of the current epoch."""
    step: int = 0
    best: dict[str, Any] | None = None
    """Val ED@20 {verb, noun, action} and the epoch of best.pt."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """One metrics.jsonl entry per finished epoch."""
    epoch_loss: list[float] = field(default_factory=lambda: [0.0, 0])
    """Sum of the batch losses of the current epoch, and their count."""
    epoch_seconds: float = 0.0

    @classmethod
    def from_json(cls, doc: object, where: str) -> TrainState:
        """The `state` a checkpoint holds, every field checked for its type; one line naming the first that is not."""
        if not isinstance(doc, dict):
            raise UserError(f"{where}: state is {describe(doc)}, expected an object")
        unknown = sorted(set(doc) - {f.name for f in fields(cls)}, key=str)
        if unknown:
            raise UserError(f"{where}: state.{printable(str(unknown[0]), 40)}: not a field of a run's state")
        for name in ("epoch", "batch", "step"):
            _count(doc.get(name, 0), f"{where}: state.{name}")
        best = doc.get("best")
        if best is not None:
            if not isinstance(best, dict):
                raise UserError(f"{where}: state.best is {describe(best)}, expected an object or null")
            _count(best.get("epoch"), f"{where}: state.best.epoch")
            for head in ("verb", "noun", "action"):
                _number(best.get(head), f"{where}: state.best.{head}")
        history = doc.get("history", [])
        if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
            raise UserError(f"{where}: state.history is {describe(history)}, expected a list of objects (one an epoch)")
        loss = doc.get("epoch_loss", [0.0, 0])
        if not isinstance(loss, list | tuple) or len(loss) != 2:
            raise UserError(f"{where}: state.epoch_loss is {describe(loss)}, expected [loss sum, batch count]")
        _number(loss[0], f"{where}: state.epoch_loss[0]")
        _count(loss[1], f"{where}: state.epoch_loss[1]")
        _number(doc.get("epoch_seconds", 0.0), f"{where}: state.epoch_seconds")
        return cls(**doc)


def _count(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"{what} is {describe(value)}, expected an integer >= 0")


def _number(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UserError(f"{what} is {describe(value)}, expected a finite number")


def _tensor_dict(value: object, what: str) -> dict[str, torch.Tensor]:
    """`value` if it is a dict of dense CPU tensors with finite floating values; else one line naming the key."""
    if not isinstance(value, dict):
        raise UserError(f"{what} is {describe(value)}, expected a dict of tensors")
    for key, t in value.items():
        name = f"{what}[{printable(str(key), 80)!r}]"
        if not isinstance(key, str) or not isinstance(t, torch.Tensor):
            raise UserError(f"{name} is {describe(t)}, expected a tensor under a string key")
        if t.layout != torch.strided or t.device.type != "cpu":
            raise UserError(f"{name}: a {t.layout} tensor on {t.device.type}, expected a dense one with its data")
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise UserError(f"{name} holds NaN or inf: the weights are broken (a diverged or damaged run)")
    return value


@dataclass
class RunCheckpoint:
    config: dict[str, Any]
    """The resolved Config (`Config.to_dict()`)."""
    features: FeatureRecord
    num_verbs: int
    num_nouns: int
    fallback: tuple[int, int]
    """The training set's most frequent (verb, noun): the prediction for windows without inputs."""
    model: dict[str, torch.Tensor]
    """The forecaster's state dict."""
    state: TrainState
    prompt_bank: dict[str, torch.Tensor] | None = None
    """Group -> (n, D) CLIP text embeddings, for the variants that use prompts."""
    encoders: dict[str, torch.Tensor] = field(default_factory=dict)
    """The trainable encoder weights of end-to-end runs."""
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    rng: list[dict[str, torch.Tensor]] | None = None
    """Each process's RNG states (last.pt only)."""
    package: str = __version__

    def save(self, path: Path) -> Path:
        """torch.save to a temporary file beside `path`, fsync, then rename: never a half-written checkpoint."""
        payload = {
            "format": FORMAT,
            "version": VERSION,
            "package": self.package,
            "config": self.config,
            "features": self.features.to_json(),
            "taxonomy": {"verbs": self.num_verbs, "nouns": self.num_nouns},
            "fallback": list(self.fallback),
            "model": self.model,
            "prompt_bank": self.prompt_bank,
            "encoders": self.encoders,
            "state": asdict(self.state),
            "optimizer": self.optimizer,
            "scheduler": self.scheduler,
            "rng": self.rng,
        }
        path = Path(path)
        with atomic_target(path) as tmp, open(tmp, "wb") as f:
            torch.save(payload, f)  # a file object: the bytes do not depend on the temporary file's name
        return path

    @classmethod
    def load(cls, path: Path) -> RunCheckpoint:
        """A checkpoint written by `save`, on the CPU; one-line errors for anything else."""
        path = Path(path)
        if not _is_file(path):
            raise UserError(f"{printable(str(path), 200)}: checkpoint not found")
        try:
            doc = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # truncated, not a torch file, or objects other than tensors and containers
            reason = f"{type(e).__name__}: {str(e)[:120]}"
            raise UserError(f"{path}: not a readable ego4d-lta checkpoint ({reason})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise UserError(f"{path}: not an ego4d-lta checkpoint (no format {FORMAT!r})")
        version = doc.get("version", 0)
        if version != VERSION:
            newer = "newer" if isinstance(version, int) and version > VERSION else "older"
            raise UserError(f"{path}: checkpoint version {version!r} is {newer} than this ego4d-lta reads ({VERSION})")
        where = printable(str(path), 200)
        try:
            bank = doc.get("prompt_bank")
            ckpt = cls(
                config=doc["config"],
                features=FeatureRecord.from_json(doc["features"], str(path)),
                num_verbs=int(doc["taxonomy"]["verbs"]),
                num_nouns=int(doc["taxonomy"]["nouns"]),
                fallback=(int(doc["fallback"][0]), int(doc["fallback"][1])),
                model=_tensor_dict(doc["model"], f"{where}: model"),
                state=TrainState.from_json(doc["state"], where),
                prompt_bank=None if bank is None else _tensor_dict(bank, f"{where}: prompt_bank"),
                encoders=_tensor_dict(doc.get("encoders") or {}, f"{where}: encoders"),
                optimizer=doc.get("optimizer"),
                scheduler=doc.get("scheduler"),
                rng=doc.get("rng"),
                package=str(doc.get("package", "")),
            )
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise UserError(f"{where}: incomplete ego4d-lta checkpoint ({type(e).__name__}: {e})") from None
        if not isinstance(ckpt.config, dict):
            raise UserError(f"{where}: config is {describe(ckpt.config)}, expected an object")
        if isinstance(ckpt.config.get("model"), dict):  # made before a field existed: what it was then
            for key, value in BEFORE_THE_FIELD.items():
                ckpt.config["model"].setdefault(key, value)
        check_model_state(ckpt, where)
        return ckpt

    def check_resumable(self, path: Path) -> None:
        """What `--resume` restores beyond the weights, typed: optimizer and scheduler state dicts, one RNG state per
        process (the weights and the train state are checked by `load`)."""
        where = printable(str(path), 200)
        opt = self.optimizer
        if not isinstance(opt, dict) or not isinstance(opt.get("state"), dict):
            raise UserError(f"{where}: optimizer is {describe(opt)}, expected the optimizer's state dict")
        groups = opt.get("param_groups")
        if not isinstance(groups, list) or not all(
            isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups
        ):
            raise UserError(f"{where}: optimizer.param_groups is {describe(groups)}, expected a list of groups")
        if not isinstance(self.scheduler, dict):
            raise UserError(f"{where}: scheduler is {describe(self.scheduler)}, expected the scheduler's state dict")
        if not isinstance(self.rng, list) or not self.rng:
            raise UserError(f"{where}: rng is {describe(self.rng)}, expected one RNG state per process")
        size = torch.get_rng_state().shape
        for i, state in enumerate(self.rng):
            cpu = state.get("torch") if isinstance(state, dict) else None
            if not isinstance(cpu, torch.Tensor) or cpu.dtype != torch.uint8 or cpu.shape != size:
                raise UserError(f"{where}: rng[{i}].torch is {_shape_of(cpu)}, expected a uint8 tensor of shape "
                                f"{tuple(size)} (torch.get_rng_state())")  # fmt: skip
            cuda = state.get("cuda")
            if cuda is not None and (not isinstance(cuda, torch.Tensor) or cuda.dtype != torch.uint8):
                raise UserError(f"{where}: rng[{i}].cuda is {_shape_of(cuda)}, expected a uint8 tensor")


def _shape_of(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return describe(value)


def check_model_state(ckpt: RunCheckpoint, where: str) -> None:
    """The weights fit the model the checkpoint's own config builds (built on the meta device: no memory): the
    same keys, each of the same shape; else one line naming the first key that differs."""
    from ego4d_lta.config import check, from_dict
    from ego4d_lta.models.forecaster import build_forecaster
    from ego4d_lta.runtime.inputs import feature_dims

    cfg = from_dict(ckpt.config, where=f"{where}: config")
    check(cfg)
    bank = {g: v.numpy() for g, v in ckpt.prompt_bank.items()} if ckpt.prompt_bank else None
    with torch.device("meta"):
        model = build_forecaster(cfg.model, feature_dims(ckpt.features), ckpt.num_verbs, ckpt.num_nouns, bank)
    built = f"the model its config builds ({cfg.model.variant}, {cfg.model.layers} layers)"
    try:
        missing, unexpected = model.load_state_dict(dict(ckpt.model), strict=False, assign=True)
    except RuntimeError as e:  # a shape differs: torch lists them one a line, "size mismatch for KEY: ..."
        found = re.search(r"size mismatch for (\S+): .*?torch.Size\((\[.*?\])\).*?torch.Size\((\[.*?\])\)", str(e))
        if not found:
            raise UserError(f"{where}: model weights do not fit {built} ({printable(str(e), 200)})") from None
        key, saved, wanted = found.groups()
        raise UserError(f"{where}: model[{printable(key, 120)!r}]: shape {saved}, {built} has {wanted}") from None
    if missing:
        raise UserError(f"{where}: model[{printable(missing[0], 120)!r}]: missing, {built} has it")
    if unexpected:
        raise UserError(f"{where}: model[{printable(unexpected[0], 120)!r}]: not a weight of {built}")
    check_encoder_state(ckpt.encoders, cfg, where)


def check_encoder_state(encoders: dict[str, torch.Tensor], cfg: Config, where: str) -> None:
    """An end-to-end run's trained encoder weights fit the SlowFast its config builds (on the meta device): the same
    keys as `VideoEncoders.trainable_state`, each of the same shape; a run that does not fine-tune holds none. (They
    are loaded with `strict=False` only because the frozen CLIP is re-read from its file.)"""
    expected: dict[str, list[int]] = {}
    built = "a run without model.finetune_slowfast (it keeps no encoder weights)"
    if cfg.model.finetune_slowfast:
        from ego4d_lta.models.slowfast import SLOWFAST_PRESETS, SlowFastEncoder
        from ego4d_lta.runtime.encoder_config import encoder_preset

        enc = encoder_preset(cfg.data.encoders, cfg.data.clip_model or None)
        with torch.device("meta"):
            slowfast = SlowFastEncoder(SLOWFAST_PRESETS[enc.slowfast], enc.sampling.num_frames, enc.sampling.crop_size)
        expected = {f"slowfast.{k}": list(v.shape) for k, v in slowfast.state_dict().items()}
        built = f"the SlowFast its config builds (data.encoders={cfg.data.encoders}: {enc.slowfast})"
    for key, value in encoders.items():
        name = f"{where}: encoders[{printable(key, 120)!r}]"
        if key not in expected:
            raise UserError(f"{name}: not a weight of {built}")
        if list(value.shape) != expected[key]:
            raise UserError(f"{name}: shape {list(value.shape)}, {built} has {expected[key]}")
    missing = next((key for key in expected if key not in encoders), None)
    if missing is not None:
        raise UserError(f"{where}: encoders[{printable(missing, 120)!r}]: missing, {built} has it")


def restore_optimizer(optimizer: torch.optim.Optimizer, scheduler: Any, ckpt: RunCheckpoint, path: Path) -> None:
    """Load `last.pt`'s optimizer and scheduler states into fresh ones built for the same model, or one line naming
    what does not fit (a group, a parameter's state of another shape, a scheduler field)."""
    where = printable(str(path), 200)
    expected = scheduler.state_dict()
    for key, value in expected.items():
        found = ckpt.scheduler.get(key, _ABSENT)
        if found is _ABSENT or (type(found) is not type(value) and not {type(found), type(value)} <= {int, float}):
            raise UserError(f"{where}: scheduler.{key} is {_shape_of(found) if found is not _ABSENT else 'missing'}, "
                            f"expected {describe(value)}")  # fmt: skip
    try:
        optimizer.load_state_dict(ckpt.optimizer)
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise UserError(f"{where}: optimizer state does not fit the model ({printable(str(e), 200)})") from None
    for i, group in enumerate(optimizer.param_groups):
        for j, param in enumerate(group["params"]):
            for name, value in optimizer.state.get(param, {}).items():
                if isinstance(value, torch.Tensor) and value.ndim and value.shape != param.shape:
                    raise UserError(
                        f"{where}: optimizer.state of group {i} parameter {j} ({name}): shape {tuple(value.shape)}, "
                        f"the parameter's is {tuple(param.shape)}"
                    )
    scheduler.load_state_dict({k: ckpt.scheduler[k] for k in expected})


_ABSENT = object()


def restore_rng(ckpt: RunCheckpoint, rank: int, world_size: int, device: torch.device) -> bool:
    """This process's RNG states from `last.pt` (typed by `check_resumable`); False when the run was saved with
    another number of processes (nothing restored: dropout draws anew)."""
    if len(ckpt.rng or []) != world_size:
        return False
    state = ckpt.rng[rank]
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state.get("cuda") is not None:
        try:
            torch.cuda.set_rng_state(state["cuda"], device)
        except RuntimeError as e:
            raise UserError(f"rng[{rank}].cuda: not this GPU's RNG state ({printable(str(e), 160)})") from None
    return True


def _is_file(path: Path) -> bool:
    """`path.is_file()`, with the OS's refusals of the name itself (too long, ...) as one-line `UserError`s."""
    try:
        return path.is_file()
    except OSError as e:
        raise UserError(f"{printable(str(path), 200)}: not a usable checkpoint path ({e.strerror})") from None


def resolve(run_dir: Path, which: str) -> Path:
    """`best`, `last` or a path."""
    if which in ("best", "last"):
        path = Path(run_dir) / f"{which}.pt"
        if not _is_file(path) and which == "best" and _is_file(Path(run_dir) / "last.pt"):
            return Path(run_dir) / "last.pt"  # no epoch finished validation yet
        return path
    return Path(which)
