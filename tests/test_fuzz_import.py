"""Fuzz `import-features` with generated feature files and manifests: a video's `<video_uid>.pt` of any dtype, shape,
stride or container, with non-finite or huge values, truncated, with flipped bytes, replaced by a link, a folder or
a FIFO, beside a `manifest.csv` of hostile lines. Every case imports correctly or exits 2 with one line (never a
traceback), and leaves every input file as it was.

"Correctly" is differential: a file that holds a tensor (of any acceptable dtype and strides) must give exactly the
rows that a plain contiguous float32 file of the same values gives; a damaged file must give the rows of the file it
was made from, or be refused; a form the rules refuse (another shape or container, a non-floating dtype, strides that
do not store every value) must be refused.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ego4d_lta.challenge.annotations import load_annotations
from ego4d_lta.cli import main
from ego4d_lta.stages.synth import SynthConfig, generate
from ego4d_lta.stages.synth.features import download_dir

SET = "slowfast8x8_r101_k400"
SET_DIR = Path("v2") / SET
DIM = 2304


@dataclass(frozen=True)
class Released:
    data: Path
    videos: list[str]
    """The val videos; the fuzz replaces the first one's file."""
    rows: torch.Tensor
    """That video's float32 rows as released."""
    frames: dict[str, int]


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Released:
    import json

    data = tmp_path_factory.mktemp("fuzz-import") / "data"
    generate(data, SynthConfig(videos=False, features_like_ego4d=True), workers=1)
    table, _ = load_annotations(data / "annotations", "val")
    videos = sorted(set(table.video_uid))
    frames = {v: json.loads((data / "synthetic.json").read_text())["videos"][v]["frames"] for v in videos}
    rows = torch.load(download_dir(data) / SET_DIR / f"{videos[0]}.pt", weights_only=True)
    return Released(data, videos, rows, frames)


DTYPES = {
    "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64,
    "float8": torch.float8_e4m3fn, "int64": torch.int64, "uint8": torch.uint8, "bool": torch.bool,
    "complex64": torch.complex64,
}  # fmt: skip
FLOATING = {"float32", "float16", "bfloat16", "float64", "float8"}
STORAGE = ["contiguous", "transposed", "every other row", "offset", "expanded", "overlapping", "sparse", "meta"]
REAL_STRIDES = {"contiguous", "transposed", "every other row", "offset"}
SHAPES = ["as released", "fewer rows", "one row", "no rows", "1-d", "3-d", "wider", "narrower"]
SEGMENT_SHAPES = {"as released", "fewer rows", "one row"}
INJECTED = [float("nan"), float("inf"), -float("inf"), 1e30, -1e5, 9999.0, 65504.0, 1e-45, 0.0]
CONTAINERS = ["dict", "list", "tuple", "parameter", "int", "none", "string", "nested"]
DAMAGE = ["truncated", "flipped bytes", "zeroed range", "appended bytes", "prepended bytes", "empty", "text"]
ODD_FILES = ["dangling link", "link loop", "link to /dev/zero", "link to /dev/null", "link to a folder", "folder",
             "fifo", "relative link"]  # fmt: skip


@st.composite
def values(draw: st.DrawFn) -> tuple:
    """How the values differ from the released ones: unchanged, scaled, or one value put somewhere."""
    kind = draw(st.sampled_from(["same", "same", "scaled", "injected"]))
    if kind == "scaled":
        return ("scaled", draw(st.sampled_from([-1.0, 0.5, 100.0, 1e4, 1e6])))
    if kind == "injected":
        return ("injected", draw(st.sampled_from(INJECTED)), draw(st.floats(0, 1)), draw(st.integers(0, DIM - 1)))
    return ("same",)


def _mostly(common: list[str], every: list[str]) -> st.SearchStrategy[str]:
    """About half the time one of `common` (forms the import must take), else any of `every`."""
    return st.sampled_from(common) | st.sampled_from(every)


@st.composite
def feature_files(draw: st.DrawFn) -> dict:
    kind = draw(st.sampled_from(["tensor"] * 5 + ["container"] + ["damaged"] * 2 + ["odd"] * 2))
    spec: dict = {"kind": kind, "values": draw(values())}
    if kind == "tensor":  # about half of them in a form the import must take
        spec |= {"dtype": draw(_mostly(["float32", "float16"], list(DTYPES))),
                 "storage": draw(_mostly(["contiguous", "transposed"], STORAGE)),
                 "shape": draw(_mostly(["as released"], SHAPES))}  # fmt: skip
    elif kind == "container":
        spec["container"] = draw(st.sampled_from(CONTAINERS))
    elif kind == "damaged":
        spec |= {"damage": draw(st.sampled_from(DAMAGE)), "at": draw(st.lists(st.floats(0, 1), min_size=1, max_size=4)),
                 "bits": draw(st.integers(0, 7))}  # fmt: skip
    else:
        spec["odd"] = draw(st.sampled_from(ODD_FILES))
    return spec


MANIFEST_HEADERS = ["video_uid,num_frames", "video_uid,num_frames,extra", "\ufeffvideo_uid,num_frames",
                    "num_frames,video_uid", "video_uid", "", "video_uid,num_frames,num_frames"]  # fmt: skip
MANIFEST_COUNTS = st.sampled_from(["right", "right", "wrong", "-5", "0", "1e3", " 12 ", "", "x", str(10**30), "1_000"])


@st.composite
def manifests(draw: st.DrawFn) -> bytes | None:
    """manifest.csv beside the files: absent, right, or with hostile columns, counts and bytes."""
    if draw(st.sampled_from(["none", "none", "some"])) == "none":
        return None
    header = draw(st.sampled_from(MANIFEST_HEADERS))
    count = draw(MANIFEST_COUNTS)
    raw = "\n".join([header, f"{{first}},{count}", "{second},right"]).encode()
    if draw(st.integers(0, 5)) == 0:  # a byte that is not UTF-8, a NUL or a CR somewhere
        at = int(draw(st.floats(0, 1)) * len(raw))
        raw = raw[:at] + draw(st.sampled_from([b"\xff", b"\x00", b"\r", b"\xc3"])) + raw[at:]
    return raw + draw(st.sampled_from([b"\n", b"", b"\r\n"]))


def _values(spec: tuple, rows: torch.Tensor) -> torch.Tensor:
    out = rows.clone()
    if spec[0] == "scaled":
        out *= spec[1]
    elif spec[0] == "injected":
        out[min(int(spec[2] * len(out)), len(out) - 1), spec[3]] = spec[1]
    return out


def _shaped(x: torch.Tensor, shape: str) -> torch.Tensor:
    return {
        "as released": x, "fewer rows": x[: len(x) // 2], "one row": x[:1], "no rows": x[:0], "1-d": x[0],
        "3-d": x[:, :, None], "wider": torch.cat([x, x[:, :1]], 1), "narrower": x[:, :1536],
    }[shape]  # fmt: skip


def _stored(x: torch.Tensor, storage: str) -> torch.Tensor:
    """`x` (2-d where the storage needs it) in another storage form: the same values where the strides are real."""
    if (x.ndim != 2 or not len(x)) and storage not in ("contiguous", "sparse", "meta"):
        return x
    if storage == "transposed":
        return x.t().contiguous().t()
    if storage == "every other row":
        return torch.repeat_interleave(x, 2, dim=0)[::2]
    if storage == "offset":
        return torch.cat([x[:3], x])[len(x[:3]) :]
    if storage == "expanded":
        return x[:1].expand(len(x) + 1, -1)
    if storage == "overlapping":  # row t is values t .. t + D of a storage that holds them all
        return torch.as_strided(x.contiguous().flatten().repeat(2), (len(x) + 5, x.shape[1]), (1, 1))
    if storage == "sparse":
        return x.to_sparse() if x.dtype != torch.float8_e4m3fn else x.float().to_sparse()
    if storage == "meta":
        return torch.empty_like(x, device="meta")
    return x.contiguous()


def _write_tensor(spec: dict, x: torch.Tensor, path: Path) -> torch.Tensor | None:
    """The file for a "tensor" spec; the float32 values an import must see, or None where it must refuse."""
    typed = _shaped(x, spec["shape"]).to(DTYPES[spec["dtype"]])  # (float8 has no inf: it becomes NaN)
    stored = _stored(typed, spec["storage"])
    torch.save(stored, path)
    acceptable = spec["dtype"] in FLOATING and spec["storage"] in REAL_STRIDES and spec["shape"] in SEGMENT_SHAPES
    return typed.to(torch.float32).contiguous() if acceptable and typed.is_floating_point() else None


def _write_container(spec: dict, x: torch.Tensor, path: Path) -> None:
    obj = {"dict": {"features": x}, "list": [x], "tuple": (x, x), "parameter": torch.nn.Parameter(x), "int": 7,
           "none": None, "string": "hello world", "nested": {"a": [x, {"b": x[:1]}]}}[spec["container"]]  # fmt: skip
    torch.save(obj, path)


def _damage(spec: dict, path: Path) -> None:
    raw = bytearray(path.read_bytes())
    spots = [min(int(a * len(raw)), len(raw) - 1) for a in spec["at"]]
    damage = spec["damage"]
    if damage == "truncated":
        raw = raw[: spots[0]]
    elif damage == "flipped bytes":
        for at in spots:
            raw[at] ^= 1 << spec["bits"]
    elif damage == "zeroed range":
        raw[spots[0] : spots[0] + 4096] = bytes(len(raw[spots[0] : spots[0] + 4096]))
    elif damage == "appended bytes":
        raw += bytes(range(256)) * 4
    elif damage == "prepended bytes":
        raw = bytearray(b"\x00" * 512) + raw
    elif damage == "empty":
        raw = bytearray()
    else:
        raw = bytearray(b"hello world\n")
    path.write_bytes(bytes(raw))


def _write_odd(spec: dict, path: Path, original: Path) -> str:
    """A link, a folder or a FIFO in the file's place: "missing" (no file there), "refuse" or "as released"."""
    odd = spec["odd"]
    if odd == "dangling link":
        path.symlink_to(path.parent / "nowhere.pt")
    elif odd == "link loop":
        path.symlink_to(path.name)
    elif odd.startswith("link to /dev/"):
        path.symlink_to(odd.removeprefix("link to "))
    elif odd == "link to a folder":
        path.symlink_to(path.parent)
    elif odd == "folder":
        path.mkdir()
    elif odd == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(os.path.relpath(original, path.parent))
        return "as released"
    return "missing" if odd in ("dangling link", "link loop") else "refuse"


def _make_file(spec: dict, released: Released, path: Path) -> object:
    """The hostile file at `path`; what an import must do: the float32 rows it must see (a tensor), "missing",
    "refuse", or "released or refuse" (a damaged copy of a plain float32 file of `values`)."""
    x = _values(spec["values"], released.rows)
    if spec["kind"] == "tensor":
        rows = _write_tensor(spec, x, path)
        return "refuse" if rows is None else rows
    if spec["kind"] == "container":
        _write_container(spec, x, path)
        return "refuse"
    if spec["kind"] == "damaged":
        torch.save(x, path)
        _damage(spec, path)
        return ("damaged", x)
    original = download_dir(released.data) / SET_DIR / path.name
    outcome = _write_odd(spec, path, original)
    return released.rows if outcome == "as released" else outcome


def _manifest(raw: bytes | None, released: Released) -> bytes | None:
    if raw is None:
        return None
    first, second = released.videos
    right = {v: str(released.frames[v]).encode() for v in released.videos}
    raw = raw.replace(b"{first}", first.encode()).replace(b"{second}", second.encode())
    raw = raw.replace(first.encode() + b",right", first.encode() + b"," + right[first])
    raw = raw.replace(first.encode() + b",wrong", first.encode() + b",10")
    return raw.replace(second.encode() + b",right", second.encode() + b"," + right[second])


def _download(root: Path, released: Released, manifest: bytes | None) -> Path:
    """A dataset root whose download links to the released files (the first video's file left to the caller)."""
    folder = root / "data" / "ego4d_features" / SET_DIR
    folder.mkdir(parents=True)
    (root / "data" / "annotations").symlink_to(released.data / "annotations")
    (folder / f"{released.videos[1]}.pt").symlink_to(download_dir(released.data) / SET_DIR / f"{released.videos[1]}.pt")
    if manifest is not None:
        (folder / "manifest.csv").write_bytes(manifest)
    return folder


def _snapshot(folder: Path) -> dict[str, object]:
    """Every entry of the download as it is: a link's target, a file's sha256, or its kind."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            out[path.name] = ("link", os.readlink(path))
        elif path.is_file():
            out[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[path.name] = os.stat(path).st_mode
    return out


def _import(root: Path, features: Path, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    args = ["import-features", "--split", "val", "--data", str(root / "data"), "-q"]
    code = main([*args, "--ego4d-features", str(root / "data" / "ego4d_features"), "--features", str(features)])
    return code, capsys.readouterr().err


def _imported(features: Path, released: Released) -> tuple[np.ndarray, np.ndarray]:
    """The cache's rows and their ok flags, in annotation order."""
    from ego4d_lta.data.feature_cache import FeatureCache

    cache = FeatureCache.open(features / f"ego4d-{SET}" / "val")
    table, _ = load_annotations(released.data / "annotations", "val")
    keys = list(zip(table.clip_uid, table.action_idx, strict=True))
    at = cache.positions(keys)
    return cache.gather(at, "slowfast"), cache.index.ok.to_numpy()[at]


def _canonical(root: Path, released: Released, rows: torch.Tensor, manifest: bytes | None, capsys) -> tuple:
    """The import of a plain contiguous float32 file of `rows` (the same manifest): its exit and its cache."""
    clean = root / "canonical"
    folder = _download(clean, released, manifest)
    torch.save(rows.clone(), folder / f"{released.videos[0]}.pt")
    code, _ = _import(clean, clean / "features", capsys)
    return (code, *(_imported(clean / "features", released) if code == 0 else ()))


FUZZ_IMPORT = settings(
    max_examples=int(os.environ.get("EGO4D_LTA_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ_IMPORT
@given(spec=feature_files(), manifest=manifests())
def test_hostile_feature_files_and_manifests(
    released: Released, spec: dict, manifest: bytes | None, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    try:
        _check_one(released, spec, _manifest(manifest, released), root, capsys)
    finally:
        shutil.rmtree(root)


def _check_one(released: Released, spec: dict, manifest: bytes | None, root: Path, capsys) -> None:
    folder = _download(root / "hostile", released, manifest)
    expected = _make_file(spec, released, folder / f"{released.videos[0]}.pt")
    before = _snapshot(root / "hostile" / "data")
    code, err = _import(root / "hostile", root / "hostile" / "features", capsys)
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err and "\x1b" not in err and "\x00" not in err, err
    assert _snapshot(root / "hostile" / "data") == before, "an input file changed"
    lines = err.strip().splitlines()
    if code == 2:
        assert len(lines) == 1 and lines[0].startswith("ego4d-lta import-features: error: "), err
    else:
        assert all(line.startswith("warning: ") for line in lines), err
    if isinstance(expected, str) and expected == "refuse":
        assert code == 2, (spec, err)
        return
    if isinstance(expected, str):  # "missing": the video's segments get no features, reported by name
        assert code == 2 or f"video {released.videos[0]}: feature file missing" in err, err
        if code == 0:
            assert not _imported(root / "hostile" / "features", released)[1][_of_first_video(released)].any()
        return
    damaged = isinstance(expected, tuple)
    reference = _canonical(root, released, expected[1] if damaged else expected, manifest, capsys)
    if damaged and code == 2:
        return  # a damaged file may be refused; if not, it must give the rows of the file it was made from
    if reference[0] == 2:
        assert code == 2, (spec, err)
        return
    assert code == 0, (spec, err)
    rows, ok = _imported(root / "hostile" / "features", released)
    assert np.array_equal(ok, reference[2]) and np.array_equal(rows[ok], reference[1][ok]), spec


def _of_first_video(released: Released) -> np.ndarray:
    """Which segments (in annotation order) are the fuzzed video's."""
    table, _ = load_annotations(released.data / "annotations", "val")
    return (table.video_uid == released.videos[0]).to_numpy()
