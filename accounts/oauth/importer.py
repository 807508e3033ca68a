"""Importing CLIProxyAPI account files, from paths (the command) or uploads (the admin)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from accounts.oauth import files, store

MAX_FILE_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Outcome:
    name: str
    action: str  # created | updated | unchanged | skipped | refused
    detail: str = ""

    def line(self) -> str:
        return f"{self.action:9} {self.name}" + (f": {self.detail}" if self.detail else "")


def account_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files named, and the *.json files directly inside the directories named."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            found += sorted(p for p in path.glob("*.json") if p.is_file())
        else:
            found.append(path)
    return found


def import_text(name: str, text: bytes | str, *, dry_run: bool = False) -> Outcome:
    if len(text) > MAX_FILE_BYTES:
        return Outcome(name, "skipped", "larger than 1 MiB, not an account file")
    try:
        data = files.parse_account_text(text)
    except files.AccountFileError as exc:
        return Outcome(name, "skipped", str(exc))
    try:
        result = store.save_account(data, dry_run=dry_run)
    except store.AccountConflict as exc:
        return Outcome(name, "refused", str(exc))
    kind = "Claude" if data.provider == "anthropic" else "Codex"
    where = f"#{result.credential_id} " if result.credential_id else ""
    return Outcome(name, result.action, f"{kind} account {where}{result.label}")


def import_paths(paths: Iterable[str | Path], *, dry_run: bool = False) -> list[Outcome]:
    outcomes = []
    for path in account_files(paths):
        try:
            text = path.read_bytes()
        except OSError as exc:
            outcomes.append(Outcome(str(path), "skipped", exc.strerror or type(exc).__name__))
            continue
        outcomes.append(import_text(str(path), text, dry_run=dry_run))
    return outcomes
