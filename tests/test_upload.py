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
from typing import ClassVar

import numpy as np
import pytest

from ego4d_lta.challenge.annotations import load_annotations
from ego4d_lta.challenge.rules import K, Z
from ego4d_lta.challenge.submission import build_submission, write_submission
from ego4d_lta.challenge.windows import make_windows
from ego4d_lta.cli import main
from ego4d_lta.workflow.upload import CHALLENGE_ID, DEFAULT_PHASE, find_client, shown, token_hint


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
    assert "not run: --dry-run" in out
    # Issue 23.5: no ~/.evalai here, so no word of its token.json; the hint names the client where it really is
    assert "token.json" not in out and f"no EvalAI token yet: {token_hint(find_client())}" in out
    assert f"`{shown(find_client())} set_token TOKEN`" in out
    (offline / ".evalai").mkdir()
    (offline / ".evalai" / "token.json").write_text('{"token": "t"}')
    assert "token: " + str(offline / ".evalai" / "token.json") in _upload(capsys, *args)[1]


def test_a_val_submission_is_refused_with_the_reason_first(synth_data: Path, offline: Path, tmp_path: Path, capsys):
    """Issue 23.5: uploading a val file led with "... (29 more) (and 1 more)" and put the useful hint last."""
    annotations = synth_data / "annotations"
    table, _ = load_annotations(annotations, "val")
    keys, _ = make_windows(table, include_extra=True).key_sets()
    path = tmp_path / "sub-val.json"
    write_submission(path, build_submission(keys, np.ones((len(keys), K, Z)), np.zeros((len(keys), K, Z))))
    code, out, err = _upload(capsys, str(path), "--annotations", str(annotations), "--dry-run")
    assert code == 2 and not out
    _one_line(err, f"upload takes test submissions only (`ego4d-lta predict --split test`): {path} is a val submission")
    assert err.startswith("ego4d-lta upload: error: upload takes test submissions only") and "more" not in err, err


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


def test_phase_default_and_a_missing_client(test_file, offline: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    path, annotations, _ = test_file
    code, out, _ = _upload(capsys, str(path), "--annotations", str(annotations), "--dry-run")
    assert code == 0 and f"challenge {CHALLENGE_ID} phase {DEFAULT_PHASE} submit" in out
    monkeypatch.setenv("EGO4D_LTA_EVALAI_PHASE", "test")
    code, _, err = _upload(capsys, str(path), "--annotations", str(annotations))
    assert code == 2
    _one_line(err, "EvalAI phase 'test': expected a number (from $EGO4D_LTA_EVALAI_PHASE)")
    monkeypatch.setenv("EGO4D_LTA_EVALAI_PHASE", "7")
    monkeypatch.setenv("EGO4D_LTA_EVALAI", str(tmp_path / "no-such-evalai"))
    code, _, err = _upload(capsys, str(path), "--annotations", str(annotations))
    assert code == 2
    _one_line(err, "run `bash scripts/setup.sh` (it puts the EvalAI client in .venv/evalai/)")
    assert err.strip().endswith(
        f"the client `evalai` is not installed at {tmp_path / 'no-such-evalai'} ($EGO4D_LTA_EVALAI)"
    )


def test_the_real_client_without_a_token_or_a_network(test_file, offline: Path, monkeypatch, capsys) -> None:
    assert find_client() is not None, "the EvalAI client is missing: scripts/setup.sh installs it in .venv/evalai/"
    path, annotations, _ = test_file
    args = [str(path), "--annotations", str(annotations), "--phase", "7"]
    code, _, err = _upload(capsys, *args)
    assert code == 2
    _one_line(err, f"{token_hint(find_client())}: no EvalAI token")
    assert "set_token" in err and "`evalai set_token" not in err, "the client is named where it is, not as on PATH"
    monkeypatch.setenv("EVALAI_AUTH_TOKEN", "not-a-real-token")
    code, _, err = _upload(capsys, *args)
    assert code == 2
    _one_line(err, "EvalAI could not be reached (network down or wrong host URL): the client said: Could not establish")
    assert not (offline / ".evalai").exists(), "the token went to a private temporary home, not the user's"


class _FakeAPI(BaseHTTPRequestHandler):
    """EvalAI's API as the client uses it for a --large submission, answering by token: "expired" -> 401 Invalid
    token; "closed" -> the upload is refused with a reason; anything else -> accepted (presigned PUT to itself)."""

    uploaded: ClassVar[list[int]] = []

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        token, route = self.headers.get("Authorization", ""), f"{self.command} {self.path}"
        port = self.server.server_address[1]
        if "expired" in token:
            status, reply = 401, {"detail": "Invalid token"}
        elif route.startswith("GET /api/challenges/challenge/"):
            status, reply = 200, {"submission_meta_attributes": []}
        elif "get_submission_file_presigned_url" in route and "closed" in token:
            status, reply = 400, {"error": "Phase is closed"}
        elif "get_submission_file_presigned_url" in route:
            urls = [{"partNumber": 1, "url": f"http://127.0.0.1:{port}/s3put"}]
            status, reply = 201, {"presigned_urls": urls, "upload_id": "u1", "submission_pk": 4242}
        elif route == "PUT /s3put":
            type(self).uploaded.append(len(body))
            status, reply = 200, {}
        else:  # finish_submission_file_upload, send_submission_message
            status, reply = 200, {"ok": True}
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", '"etag1"')
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_FakeAPI]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeAPI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("EVALAI_API_URL", f"http://127.0.0.1:{server.server_address[1]}")
    _FakeAPI.uploaded = []
    try:
        yield _FakeAPI
    finally:
        server.shutdown()
        server.server_close()


def test_the_real_client_against_a_local_api(test_file, offline: Path, fake_api, monkeypatch, capsys) -> None:
    """Refused token, refused upload, then a submission that goes through: the file's bytes reach the upload URL."""
    path, annotations, keys = test_file
    args = [str(path), "--annotations", str(annotations), "--phase", "7"]
    monkeypatch.setenv("EVALAI_AUTH_TOKEN", "expired-token")
    code, _, err = _upload(capsys, *args)
    assert code == 2
    _one_line(err, "EvalAI refused the token: The authentication token you are using isn't valid.")
    monkeypatch.setenv("EVALAI_AUTH_TOKEN", "closed-phase-token")
    code, _, err = _upload(capsys, *args)
    assert code == 2
    _one_line(err, "EvalAI refused the submission: There was an error while making the submission: Phase is closed")
    assert fake_api.uploaded == []
    monkeypatch.setenv("EVALAI_AUTH_TOKEN", "good-token")
    code, out, err = _upload(capsys, *args)
    assert code == 0, err
    assert f"{path}: valid, {len(keys)} windows; submitted to EvalAI challenge {CHALLENGE_ID} phase 7" in out
    assert "with the id 4242 is successfully submitted for evaluation" in out
    assert fake_api.uploaded == [path.stat().st_size]
