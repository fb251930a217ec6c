"""`ego4d-lta upload`: check a test submission exactly as `validate` does, then submit it with the EvalAI client.

The client is the real `evalai` command. Its pins (click 6.7, requests 2.25) conflict with this package's
environment, so `scripts/setup.sh` installs it into an environment of its own, `.venv/evalai/`; it is found
there (setup.sh also links it as `.venv/bin/evalai`), through `$EGO4D_LTA_EVALAI`, or on PATH; messages name it
where it is. The token is the client's own (`evalai set_token`, kept in ~/.evalai/token.json) or
`$EVALAI_AUTH_TOKEN`, which is handed to the client through a private temporary home for that one call: never a
file in the repository. The client prints its errors on stdout and exits 1;
each failure becomes one line saying which it was: no client, no token, no connection, or a refusal.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ego4d_lta.base.errors import UserError
from ego4d_lta.challenge.split_guess import other_split
from ego4d_lta.challenge.validate import validate_file

CHALLENGE_ID = 1598
"""Ego4D Long-Term Action Anticipation on EvalAI."""
DEFAULT_PHASE = 3161
"""The challenge's "Test Phase", the only phase its organisers' published `evalai challenge 1598 phases` lists (2022);
`evalai challenge 1598 phases` shows the current ones."""
TOKEN_ENV = "EVALAI_AUTH_TOKEN"
PHASE_ENV = "EGO4D_LTA_EVALAI_PHASE"
CLIENT_ENV = "EGO4D_LTA_EVALAI"
UPLOAD_TIMEOUT_S = 3600
ANSI = re.compile(r"\x1b\[[0-9;]*m")
NETWORK = ("Could not establish a connection", "Max retries exceeded", "ConnectionError", "ProxyError")
"""What the client prints when it reaches nothing: its own message, or a traceback from its PyPI version check."""
REFUSAL = ("Error", "There was an error", "Sorry")


@dataclass
class UploadConfig:
    file: Path
    annotations_dir: Path
    phase: int | None = None
    """EvalAI phase id; default $EGO4D_LTA_EVALAI_PHASE, else DEFAULT_PHASE."""
    visibility: str | None = None
    """`public`, `private`, or None for the challenge's default."""
    dry_run: bool = False


def find_client() -> Path | None:
    """The `evalai` executable: $EGO4D_LTA_EVALAI, then setup.sh's `.venv/evalai/`, then PATH."""
    if os.environ.get(CLIENT_ENV):
        return Path(os.environ[CLIENT_ENV])
    beside = Path(sys.prefix) / "evalai" / "bin" / "evalai"
    if beside.is_file():
        return beside
    found = shutil.which("evalai")
    return Path(found) if found else None


def shown(client: Path | str | None) -> str:
    """The client as a user types it: `.venv/evalai/bin/evalai` below the current folder, else the full path."""
    if client is None:
        return "evalai"
    path = Path(client).absolute()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def token_hint(client: Path | str | None) -> str:
    """How to give the client a token, naming the client where it really is (`.venv/evalai/` is not on PATH)."""
    return f"set {TOKEN_ENV}=TOKEN, or run `{shown(client)} set_token TOKEN` once (TOKEN: your EvalAI profile's)"


def phase_id(cfg: UploadConfig) -> int:
    text = str(cfg.phase) if cfg.phase is not None else os.environ.get(PHASE_ENV) or str(DEFAULT_PHASE)
    if not text.isdigit():
        raise UserError(f"EvalAI phase {text!r}: expected a number (from ${PHASE_ENV})")
    return int(text)


def submit_command(client: Path | str, file: Path, phase: int, visibility: str | None) -> list[str]:
    """The client's own submit command; --large: presigned upload, meant for files of this size."""
    cmd = [str(client), "challenge", str(CHALLENGE_ID), "phase", str(phase), "submit", "--file", str(file), "--large"]
    return [*cmd, f"--{visibility}"] if visibility else cmd


def upload(cfg: UploadConfig) -> str:
    """Validate, then submit (or with `dry_run`, print the command); returns what to print."""
    report = validate_file(cfg.file, cfg.annotations_dir, "test")
    if not report.valid:
        more = f" (and {len(report.errors) - 1} more)" if len(report.errors) > 1 else ""
        other = other_split(cfg.file, cfg.annotations_dir, "test")
        if other:
            raise UserError(
                f"upload takes test submissions only (`ego4d-lta predict --split test`): {cfg.file} is a "
                f"{other.split} submission ({other.source} says so); not uploaded"
            )
        raise UserError(f"{cfg.file}: not a valid test submission, not uploaded: {report.errors[0]}{more}")
    phase = phase_id(cfg)
    client = find_client()
    file = Path(cfg.file).resolve()
    if cfg.dry_run:
        cmd = submit_command(client or "evalai", file, phase, cfg.visibility)
        token = _token_source(client)
        return f"{cfg.file}: valid, {report.windows} windows\n{shlex.join(cmd)}\n({token}; not run: --dry-run)"
    if client is None or not client.is_file():
        where = f" at {client} (${CLIENT_ENV})" if client else ""
        raise UserError(
            f"run `bash scripts/setup.sh` (it puts the EvalAI client in .venv/evalai/), or `pip install evalai` in an "
            f"environment of its own and set {CLIENT_ENV}=/path/to/evalai: the client `evalai` is not installed{where}"
        )
    cmd = submit_command(client, file, phase, cfg.visibility)
    with _client_home() as env:
        try:
            # The client asks whether to add method details, then (if the phase has any) metadata: no and no;
            # both can be edited on the site.
            out = subprocess.run(cmd, input="N\nN\n", capture_output=True, text=True, env=env, timeout=UPLOAD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise UserError(f"the EvalAI client did not finish within {UPLOAD_TIMEOUT_S // 60} min") from None
    said = _lines(out.stdout + "\n" + out.stderr)
    if out.returncode != 0:
        raise UserError(_failure(said, out.returncode, client))
    printed = _lines(out.stdout)  # stderr holds the upload's progress bar
    if not any("successfully submitted" in line for line in printed):  # it also exits 0 on some refusals
        raise UserError(f"the EvalAI client reported no submission: {printed[-1] if printed else 'no output'}")
    head = f"{cfg.file}: valid, {report.windows} windows; submitted to EvalAI challenge {CHALLENGE_ID} phase {phase}"
    return "\n".join([head, *printed])


def _lines(text: str) -> list[str]:
    """The client's non-empty lines, without colour codes or the prompts it printed before our answers."""
    lines = (line.strip().split("[y/N]: ")[-1] for line in ANSI.sub("", text).splitlines())
    return [line for line in lines if line]


def _token_source(client: Path | None) -> str:
    """Where the client will take its token from, for --dry-run: the variable, the client's file, or neither yet."""
    if os.environ.get(TOKEN_ENV):
        return f"token: ${TOKEN_ENV}"
    saved = Path.home() / ".evalai" / "token.json"
    if saved.is_file():
        return f"token: {saved}, saved by `evalai set_token`"
    return f"no EvalAI token yet: {token_hint(client)}"


def _failure(said: list[str], code: int, client: Path | None = None) -> str:
    """One line naming what went wrong, from what the client printed (it exits 1 for every failure)."""
    text = " ".join(said)
    last = said[-1] if said else f"exit status {code} and no output"
    reason = next((line for line in said if line.startswith(REFUSAL) or "Error: " in line), None)
    if any(marker in text for marker in NETWORK):
        first = next(line for line in said if any(marker in line for marker in NETWORK))
        return f"EvalAI could not be reached (network down or wrong host URL): the client said: {first[:200]}"
    if "token json file doesn't exist" in text:
        return f"{token_hint(client)}: no EvalAI token"
    if "token you are using isn't valid" in text or "token has expired" in text:
        return f"EvalAI refused the token: {next(line for line in said if 'token' in line)}"
    if text.endswith("Aborted!"):
        return "the EvalAI client asked a question this command cannot answer; run the --dry-run command by hand"
    if reason:
        return f"EvalAI refused the submission: {reason}"
    if "Traceback" in text:
        return f"the EvalAI client failed on an answer it did not expect: {last[:200]}"
    return f"EvalAI refused the submission: {last[:200]}"


@contextmanager
def _client_home() -> Iterator[dict[str, str]]:
    """The client's environment: with $EVALAI_AUTH_TOKEN, a private home holding only that token (and the
    user's host URL, if set), removed afterwards; without it, the user's own home and token."""
    env = dict(os.environ)
    token = env.get(TOKEN_ENV)
    if not token:
        yield env
        return
    with tempfile.TemporaryDirectory(prefix="ego4d-lta-evalai-") as home:
        config = Path(home) / ".evalai"
        config.mkdir(mode=0o700)
        token_file = config / "token.json"
        token_file.touch(mode=0o600)
        token_file.write_text(json.dumps({"token": token}))
        host = Path.home() / ".evalai" / "host_url"
        if host.is_file():
            shutil.copy(host, config / "host_url")
        yield env | {"HOME": home}
