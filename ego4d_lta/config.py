"""Typed run configuration: presets in `ego4d_lta/configs/*.toml`, overridden by `--set section.key=value`.

A preset only lists what differs from the defaults below (the report's settings: SlowFast R101 8x8 + CLIP
ViT-B/16 features, 6-layer transformer, Adam at 1e-4 for a batch of 64, 30 epochs). The resolved config is
stored in every checkpoint, so a run can always be rebuilt from its `last.pt`.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ego4d_lta.base.errors import UserError
from ego4d_lta.base.jsonio import printable
from ego4d_lta.base.output_guard import check_name

CONFIG_DIR = Path(__file__).with_name("configs")
MAX_INT = 2**31 - 1
"""Every integer setting fits here (seeds, epochs, steps, widths); anything bigger is a typo or an attack."""
MAX_SAMPLES = 1000
"""Most model samples per window in the pool the K are chosen from (`generate.samples`): its distances grow as the
square of the pool."""


@dataclass
class ModelConfig:
    variant: str = "slowfast_clip"
    """One of `models.forecaster.VARIANTS`: slowfast, clip, slowfast_clip_text, slowfast_clip, slowfast_clip_attn,
    labels (the observed segments' (verb, noun) ids: no clips, no feature cache)."""
    slowfast_dim: int = 2048
    """Width of the trainable projection of the pooled SlowFast (or Omnivore) features."""
    slowfast_input_dropout: float = 0.5
    """Dropout on the pooled SlowFast (or Omnivore) features before the projection: the report's head. Measured on
    the demo's synthetic video features (tiny, 3 seeds), Dropout(0.5) on raw features beat standardise + no
    dropout by 0.007 / 0.013 / 0.009 verb / noun / action val ED@20, so the default follows the report."""
    slowfast_standardise: bool = False
    """Standardise the SlowFast (or Omnivore) features with training statistics first (false: raw, the report's)."""
    label_dim: int = 256
    """Width of the `labels` part: a verb and a noun embedding of half of it each."""
    copy_observed: bool = False
    """`labels` variants: learn how much each future position copies each observed (verb, noun) class
    (`models.fusion.ObservedCopy`); actions recur, and on real sequences this is what beats repeating them."""
    observed: int = 8
    """How many observed segments the model reads: the last n of the challenge's 8 (the report's code: 4).
    The windows and their keys stay the challenge's."""
    text_groups: list[str] = field(default_factory=lambda: ["noun", "verb", "scenario", "place"])
    """Prompt groups whose top-1 text embedding `_text` appends and `_attn` uses as queries."""
    attn_heads: int = 4
    """Heads of the `_attn` variant's text-to-frame cross-attention."""
    layers: int = 6
    """Transformer encoder layers of the aggregator over the observed segments."""
    heads: int = 8
    """Attention heads per aggregator layer."""
    ffn_dim: int = 2048
    """Hidden width of each aggregator layer's feed-forward block."""
    dropout: float = 0.1
    """Dropout inside the aggregator layers."""
    positions: str = "sinusoidal"
    """sinusoidal or learned position embeddings over the observed segments."""
    position_dropout: float = 0.2
    """Dropout on the segment embeddings after the positions are added."""
    head_dropout: float = 0.5
    """Dropout before the verb and noun decoder heads."""
    finetune_slowfast: bool = False
    """Train SlowFast too: then windows are decoded from video end to end instead of read from the cache."""
    decoder: str = "sequence"
    """sequence: a pointer-generator over actions (`models.sequence_decoder`), each step conditioned on the ones
    before and either a new (verb, noun) or a copy of an observed segment's action (video variants: as the
    recognition heads see it; without them, at `recognition_weight` 0, it only generates); heads: Z independent
    (verb, noun) heads, the report's (`--recipe report`, the `labels` preset; checkpoints made before the field
    have them). Measured (docs/training.md, "The sequence decoder"): its K as drawn beat the heads' on the demo's
    video features (`benchmarks/video_decoders.py`, 3 seeds: action .7412 against .8039, verb and noun no worse)
    and on real action sequences. `copy_observed` applies to the heads; the sequence decoder copies by its pointer."""
    sequence_dim: int = 256
    """Width of the sequence decoder's recurrent state."""
    hypotheses: int = 1
    """Sequence decoder: H > 1 learned start codes trained winner-takes-all (only the best code's loss counts), so
    the codes can cover different futures; sequence s of the K decodes from code s mod H."""
    recognition_weight: float = 0.3
    """Video variants: > 0 adds a (verb, noun) classifier on each observed segment's aggregator output, trained with
    the forecast on the observed segments' labels; its loss (mean cross-entropy of verb + noun) is added times this
    weight. 0: no head is built (the report's model; checkpoints made before the field have none; the sequence
    decoder then copies nothing). Variants that read
    the observed labels (`labels`) build none. On the demo's synthetic video features (tiny, 3 seeds) 0.3 beat 0 by
    .007 / .005 / .006 verb / noun / action val ED@20 (`benchmarks/recognition_heads.py`)."""


@dataclass
class DataConfig:
    data_dir: str = "data"
    """Dataset root in the official layout (annotations/, clips/)."""
    features_dir: str = ""
    """Feature cache root; empty means DATA_DIR/features."""
    encoders: str = "full"
    """`runtime.encoder_config.ENCODER_PRESETS` name: which cache (full = R101 8x8 + ViT-B-16, tiny = test models)."""
    clip_model: str = ""
    """open_clip model of the cache, when not the preset's (as `extract --clip-model`)."""
    released: str = ""
    """An Ego4D released feature set brought in by `import-features` (slowfast8x8_r101_k400, omnivore_video_swinl):
    read the cache FEATURES/ego4d-<set>/ instead of the `extract` cache of `encoders`."""
    slowfast_weights: str = ""
    """SlowFast weights for end-to-end training from video (finetune_slowfast)."""
    clip_weights: str = ""
    """CLIP weights for end-to-end training from video."""
    recognitions: str = ""
    """`labels` variant: a JSON file of recognised (verb, noun) per observed segment key, read instead of the
    annotations' labels where it has the segment (train on what a recogniser sees)."""
    workers: int = 0
    """DataLoader workers (video decoding needs them; the cache path is fast without)."""


@dataclass
class OptimConfig:
    optimizer: str = "adam"
    """adam (the report's; L2 weight decay) or adamw."""
    lr: float = 1e-4
    """Learning rate at `base_batch`; the run uses lr * global_batch / base_batch."""
    base_batch: int = 64
    """The global batch `lr` is given for (linear scaling)."""
    weight_decay: float = 1e-4
    """Decay on weights (not biases, norms, position tables): L2 with adam, decoupled with adamw."""
    warmup_steps: int = 1000
    """Linear warm-up steps, then a cosine to 0 at the last step of `train.epochs`."""
    grad_clip: float = 1.0
    """Max global gradient norm (0 turns clipping off)."""


@dataclass
class GenerateConfig:
    strategy: str = "greedy_sample"
    """iid: K independent samples at temperature 1 (the baseline's); greedy_sample: the argmax sequence, then
    K-1 samples at `temperature` within the top-p nucleus; nucleus: K samples within the nucleus; joint: each
    step's (verb, noun) sampled together over the pairs seen in training (log p(v) + log p(n)), as nucleus;
    joint_greedy: the same with sequence 0 the most likely pair at every step."""
    temperature: float = 0.7
    """Below 1 the samples stay nearer the likely sequence: on synthetic val greedy_sample at 0.7 beat the
    baseline's iid sampling by 0.024 verb / 0.013 noun / 0.024 action ED@20 (benchmarks/compare_sampling.py)."""
    top_p: float = 1.0
    """Nucleus mass kept when sampling (1: the whole distribution)."""
    seed: int = 0
    """Sampling seed: the same run and seed give the same submission."""
    observed_bonus: float = 0.0
    """Added to the log-score of the window's observed verbs and nouns (observed pairs for `joint`) before
    sampling; only where the inputs carry observed labels (the `labels` variant)."""
    samples: int = 0
    """0: the K sequences are the strategy's, as drawn (the report's). N > 0: the K are chosen as a set
    (`challenge.selection`) from a pool of the strategy's K, N more samples of the model (each step's (verb, noun)
    drawn together over the training pairs where the run has them, at `sample_temperature`) and the sequences
    `candidates` replays from the observed actions: the K that minimise the expected best-of-K distance to the N
    samples (weight 1 - `observed_weight`) and the observed candidates (weight `observed_weight`)."""
    sample_temperature: float = 1.0
    """Temperature of the N samples that stand for the model's distribution of futures."""
    candidates: list[str] = field(default_factory=lambda: ["rotations", "repeat_last"])
    """Sequences replayed from the observed actions that join the pool (`challenge.selection.OBSERVED_CANDIDATES`);
    only where the inputs carry observed labels (the annotations' or a recognitions file's)."""
    observed_weight: float = 0.0
    """Share of the pool's weight on the observed candidates, in [0, 1) (0: they can be chosen, but only the model's
    samples say where the future goes)."""


@dataclass
class TrainConfig:
    epochs: int = 30
    """Passes over the training windows; raise it with `train --resume --set train.epochs=N` to extend a run."""
    batch_size: int = 64
    """Global batch (all processes together); each process takes batch_size / world_size."""
    eval_batch_size: int = 256
    """Windows per forward pass when validating (all processes together)."""
    seed: int = 0
    """Initial weights, data order and dropout: the same seed and config give the same run."""
    precision: str = "auto"
    """auto: bf16 autocast on a GPU, fp32 on a CPU; fp32: always fp32."""
    loss: str = "mean"
    """mean: the mean of the Z verb and Z noun cross-entropies, x 2; sum: their sum (the baseline's: Z times larger,
    so weight decay weighs 1/Z as much against it)."""
    select_by: str = "action"
    """Which val ED@20 picks best.pt: action, verb (the baseline's `val_0_ED_19`) or noun."""
    stop_after: int = 0
    """Save last.pt and stop after this many steps of this invocation (0: never); `--resume` continues."""


@dataclass
class Config:
    name: str = "slowfast_clip"
    """The run's name: the preset's or the TOML file's stem; the default run folder is runs/<name>."""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def features_root(self) -> Path:
        return Path(self.data.features_dir) if self.data.features_dir else Path(self.data.data_dir) / "features"


def presets() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))


def recipes() -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / "recipes").glob("*.toml"))


def load_config(name_or_path: str, overrides: list[str] = (), recipe: str | None = None) -> Config:
    """A preset name or a TOML file, then a recipe's settings (`configs/recipes/<name>.toml`, e.g. `report`:
    the report's training and sampling choices on any variant), then `section.key=value` overrides."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            raise UserError(
                f"choose a preset ({', '.join(presets())}) or a .toml file: no such preset {name_or_path!r}"
            )
    elif not path.is_file():
        raise UserError(f"{name_or_path}: file not found")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: not valid TOML ({e})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a TOML text file (not UTF-8)") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None
    doc.setdefault("name", path.stem)
    cfg = from_dict(doc, where=str(path))
    if recipe:
        if recipe not in recipes():  # a name, never a path: only the package's recipes
            raise UserError(f"--recipe {printable(recipe, 80)}: no such recipe; choose from {', '.join(recipes())}")
        where = CONFIG_DIR / "recipes" / f"{recipe}.toml"
        _apply(cfg, tomllib.loads(where.read_text(encoding="utf-8")), str(where))
    for item in overrides:
        apply_override(cfg, item)
    check(cfg)
    return cfg


def from_dict(doc: dict, where: str = "config") -> Config:
    """A Config from nested dicts (a TOML file or a checkpoint's record); unknown keys are errors."""
    if not isinstance(doc, dict):
        raise UserError(f"{where}: a config is a table of sections, got {type(doc).__name__}")
    return _apply(Config(), doc, where)


def _apply(cfg: Config, doc: dict, where: str) -> Config:
    """Set each `section.key` (and top-level field) of `doc` on `cfg`; a section that is not a table is an error."""
    for key, value in doc.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                _set(cfg, f"{key}.{sub}", v, where)
        else:
            _set(cfg, str(key), value, where)
    return cfg


def apply_override(cfg: Config, item: str) -> None:
    """One `--set section.key=value`; the value is parsed as TOML (`3`, `1e-4`, `true`, `["a"]`), else a string."""
    if not item.isprintable():  # a newline would make TOML read a second line, then drop it
        raise UserError(f"--set {printable(item, 80)}: one setting per --set, on one line (no newline or control "
                        "character)")  # fmt: skip
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {item}: expected section.key=value, e.g. train.epochs=5")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    _set(cfg, key.strip(), value, "--set")


def _set(cfg: Config, dotted: str, value: Any, where: str) -> None:
    target: Any = cfg
    parts = dotted.split(".")
    for part in parts[:-1]:
        if not dataclasses.is_dataclass(target) or part not in _names(target):
            raise UserError(f"{where}: unknown config key {dotted!r}; sections: {', '.join(_names(cfg))}")
        target = getattr(target, part)
    name = parts[-1]
    if (
        not dataclasses.is_dataclass(target)
        or name not in _names(target)
        or dataclasses.is_dataclass(getattr(target, name))
    ):
        prefix = ".".join(parts[:-1]) + "." if len(parts) > 1 else ""
        known = ", ".join(f"{prefix}{n}" for n in _names(target)) if dataclasses.is_dataclass(target) else ""
        raise UserError(f"{where}: unknown config key {dotted!r}" + (f"; known: {known}" if known else ""))
    setattr(target, name, _coerce(dotted, getattr(target, name), value, where))


def _coerce(key: str, default: Any, value: Any, where: str) -> Any:
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and not -MAX_INT <= value <= MAX_INT:
            raise UserError(f"{where}: {key}={value} is out of range (|value| <= 2**31 - 1)")
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and isinstance(value, int):
            value = float(value) if abs(value) < 2**1023 else math.inf  # a huge TOML integer would overflow
        value = float(value) if ok else value
        if ok and not math.isfinite(value):
            raise UserError(f"{where}: {key}={value!r} must be a finite number")
    elif isinstance(default, list):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise UserError(f"{where}: {key} must be {type(default).__name__}, got {value!r}")
    return value


def _names(obj: Any) -> list[str]:
    return [f.name for f in fields(obj)]


MAX_WORKERS = 256
"""The most DataLoader workers a run starts (a fixed bound: a config is checked on a login node and run on compute
nodes, whose CPU counts differ)."""


def check(cfg: Config) -> None:
    """Rules between fields that types cannot say."""
    m = cfg.model  # the variant name is checked by models.forecaster (config sits below models)
    check_name(cfg.name, "name")  # it becomes the run folder runs/<name>
    if not 1 <= m.observed <= 8:
        raise UserError(f"model.observed {m.observed}: the model reads the last 1..8 of the 8 observed segments")
    if m.positions not in ("sinusoidal", "learned"):
        raise UserError(f"model.positions {m.positions!r}: choose sinusoidal or learned")
    bad = [g for g in m.text_groups if g not in ("noun", "verb", "scenario", "place")]
    if bad or not m.text_groups:
        raise UserError(f"model.text_groups {m.text_groups}: a non-empty list of noun, verb, scenario, place")
    if cfg.optim.optimizer not in ("adam", "adamw"):
        raise UserError(f"optim.optimizer {cfg.optim.optimizer!r}: choose adam or adamw")
    strategies = ("iid", "greedy_sample", "nucleus", "joint", "joint_greedy")
    if cfg.generate.strategy not in strategies:
        raise UserError(f"generate.strategy {cfg.generate.strategy!r}: choose {', '.join(strategies)}")
    if not 0 < cfg.generate.top_p <= 1:
        raise UserError(f"generate.top_p must be in (0, 1], got {cfg.generate.top_p}")
    for key in ("temperature", "sample_temperature"):
        if not 0.01 <= getattr(cfg.generate, key) <= 100:
            raise UserError(f"generate.{key} must be in [0.01, 100], got {getattr(cfg.generate, key)}")
    if not 0 <= cfg.generate.samples <= MAX_SAMPLES:
        raise UserError(f"generate.samples must be in 0..{MAX_SAMPLES}, got {cfg.generate.samples}")
    if not 0 <= cfg.generate.observed_bonus <= 100:  # a log-score bonus: beyond ~100 the softmax overflows to NaN
        raise UserError(f"generate.observed_bonus must be in [0, 100], got {cfg.generate.observed_bonus}")
    if not 0 <= cfg.generate.observed_weight < 1:
        raise UserError(f"generate.observed_weight must be in [0, 1), got {cfg.generate.observed_weight}")
    if not 0 < cfg.optim.lr <= 10:
        raise UserError(f"optim.lr must be in (0, 10], got {cfg.optim.lr}")
    if not 0 <= cfg.optim.weight_decay <= 10:
        raise UserError(f"optim.weight_decay must be in [0, 10], got {cfg.optim.weight_decay}")
    if cfg.train.loss not in ("mean", "sum"):
        raise UserError(f"train.loss {cfg.train.loss!r}: choose mean or sum")
    if cfg.train.select_by not in ("action", "verb", "noun"):
        raise UserError(f"train.select_by {cfg.train.select_by!r}: choose action, verb or noun")
    if cfg.train.precision not in ("auto", "fp32"):
        raise UserError(f"train.precision {cfg.train.precision!r}: choose auto or fp32")
    ranges = {  # every count and width bounded: a degenerate or machine-breaking value fails here, not later
        "train.epochs": (cfg.train.epochs, 1, 100_000),
        "train.batch_size": (cfg.train.batch_size, 1, 1 << 20),
        "train.eval_batch_size": (cfg.train.eval_batch_size, 1, 1 << 20),
        "optim.base_batch": (cfg.optim.base_batch, 1, 1 << 20),
        "model.heads": (m.heads, 1, 256),
        "model.attn_heads": (m.attn_heads, 1, 256),
        # the widths' and depth's upper bound is the model's size (models.forecaster.check_size: 2 billion)
        "model.layers": (m.layers, 1, MAX_INT),
        "model.ffn_dim": (m.ffn_dim, 1, MAX_INT),
        "model.slowfast_dim": (m.slowfast_dim, 1, MAX_INT),
        "model.label_dim": (m.label_dim, 2, MAX_INT),
        "model.sequence_dim": (m.sequence_dim, 2, MAX_INT),
        "model.hypotheses": (m.hypotheses, 1, 64),  # half of it embeds the verb: 1 would leave verbs unseen
        "data.workers": (cfg.data.workers, 0, MAX_WORKERS),
    }
    for key, (value, low, high) in ranges.items():
        if not low <= value <= high:
            raise UserError(f"{key} must be {f'in {low}..{high}' if high < MAX_INT else f'>= {low}'}, got {value}")
    not_negative = {
        "train.seed": cfg.train.seed,
        "generate.seed": cfg.generate.seed,
        "train.stop_after": cfg.train.stop_after,
        "optim.weight_decay": cfg.optim.weight_decay,
        "optim.warmup_steps": cfg.optim.warmup_steps,
        "optim.grad_clip": cfg.optim.grad_clip,
        "generate.observed_bonus": cfg.generate.observed_bonus,
        "model.recognition_weight": m.recognition_weight,
    }
    for key, value in not_negative.items():
        if not value >= 0:
            raise UserError(f"{key} must be >= 0, got {value}")
    for key in ("dropout", "position_dropout", "head_dropout", "slowfast_input_dropout"):
        if not 0 <= getattr(m, key) < 1:
            raise UserError(f"model.{key} must be in [0, 1), got {getattr(m, key)}")
