"""`ego4d-lta upload` with the real EvalAI client (.venv/evalai/), offline: every failure is one clear line.

The client only ever talks to 127.0.0.1 here: a closed port, or a small local server that answers like
EvalAI's API refusing a submission.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from ego4d_lta.challenge import K, Z
from ego4d_lta.cli import main
from ego4d_lta.data.annotations import load_annotations
from ego4d_lta.data.windows import make_windows
from ego4d_lta.submission import build_submission, write_submission
from ego4d_lta.upload import CHALLENGE_ID, find_client


@pytest.fixture(scope="module")
def test_file(synth_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    """A valid test submission (one constant action everywhere), its annotations folder and its keys."""
    annotations = synth_data / "annotations"
    table, _ = load_annotations(annotations, "test")
    keys, _ = make_windows(table, include_extra=True).key_sets()
    path = tmp_path_factory.mktemp("upload") / "sub-test.json"
    write_submission(path, build_submission(keys, np.ones((len(keys), K, Z)), np.zeros((len(keys), K, Z))))
    return path, annotations, keys


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A home without EvalAI settings, the API on a closed loopback port, no token in the environment."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("EVALAI_API_URL", "http://127.0.0.1:9")
    for name in ("EVALAI_AUTH_TOKEN", "EGO4D_LTA_EVALAI_PHASE", "EGO4D_LTA_EVALAI"):
        monkeypatch.delenv(name, raising=False)
    return home


def _upload(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(["upload", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line(err: str, message: str) -> None:
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_dry_run_validates_and_prints_the_exact_command(test_file, offline: Path, capsys) -> None:
    path, annotations, keys = test_file
    args = [str(path), "--annotations", str(annotations), "--phase", "7", "--dry-run", "--private"]
    code, out, _ = _upload(capsys, *args)
    assert code == 0
    client = find_client() or "evalai"
    assert f"{path}: valid, {len(keys)} windows" in out
    assert f"{client} challenge {CHALLENGE_ID} phase 7 submit --file {path.resolve()} --large --private" in out
    assert "not run: --dry-run" in out and "token.json" in out


def test_an_invalid_file_is_never_uploaded(test_file, offline: Path, tmp_path: Path, capsys) -> None:
    path, annotations, keys = test_file
    doc = json.loads(path.read_text())
    doc[keys[0]]["noun"][0][0] = 10**6
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    for extra in ([], ["--dry-run"]):
        code, out, err = _upload(capsys, str(bad), "--annotations", str(annotations), "--phase", "7", *extra)
        assert code == 2 and not out
        _one_line(err, f"{bad}: not a valid test submission, not uploaded: key '{keys[0]}'")


def test_phase_and_client_are_named_when_missing(test_file, offline: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    path, annotations, _ = test_file
    code, _, err = _upload(capsys, str(path), "--annotations", str(annotations))
    assert code == 2
    _one_line(err, "which EvalAI phase? pass --phase ID or set EGO4D_LTA_EVALAI_PHASE")
    monkeypatch.setenv("EGO4D_LTA_EVALAI_PHASE", "7")
    monkeypatch.setenv("EGO4D_LTA_EVALAI", str(tmp_path / "no-such-evalai"))
    code, _, err = _upload(capsys, str(path), "--annotations", str(annotations))
    assert code == 2
    _one_line(err, f"the EvalAI client `evalai` is not installed at {tmp_path / 'no-such-evalai'}")


def test_the_real_client_without_a_token_or_a_network(test_file, offline: Path, monkeypatch, capsys) -> None:
    assert find_client() is not None, "the EvalAI client is missing: scripts/setup.sh installs it in .venv/evalai/"
    path, annotations, _ = test_file
    args = [str(path), "--annotations", str(annotations), "--phase", "7"]
    code, _, err = _upload(capsys, *args)
    assert code == 2
    _one_line(err, "no EvalAI token: set EVALAI_AUTH_TOKEN, or run `evalai set_token TOKEN` once")
    monkeypatch.setenv("EVALAI_AUTH_TOKEN", "not-a-real-token")
    code, _, err = _upload(capsys, *args)
    assert code == 2
    _one_line(err, "EvalAI could not be reached (network down or wrong host URL): the client said: Could not establish")
    assert not (offline / ".evalai").exists(), "the token went to a private temporary home, not the user's"


class _RefusingAPI(BaseHTTPRequestHandler):
    """Answers every request like EvalAI refusing: 401 for a bad token, 403 with a reason otherwise."""

    def do_GET(self) -> None:
        token = self.headers.get("Authorization", "")
        status, body = (401, {"detail": "Invalid token"}) if "expired" in token else (403, {"error": "Phase is closed"})
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def refusing_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RefusingAPI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("EVALAI_API_URL", url)
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


def test_the_real_client_refused_by_the_server(test_file, offline: Path, refusing_api: str, monkeypatch, capsys):
    path, annotations, _ = test_file
    args = [str(path), "--annotations", str(annotations), "--phase", "7"]
    monkeypatch.setenv("EVALAI_AUTH_TOKEN", "expired-token")
    code, _, err = _upload(capsys, *args)
    assert code == 2
    _one_line(err, "EvalAI refused the token: The authentication token you are using isn't valid.")
    monkeypatch.setenv("EVALAI_AUTH_TOKEN", "good-token")
    code, _, err = _upload(capsys, *args)
    assert code == 2
    _one_line(err, "EvalAI refused the submission: Error: {'error': 'Phase is closed'}")
