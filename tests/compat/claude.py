"""Claude Code, pinned: installed from the npm registry into a cache outside the clone (reused
between runs), and run headless (``claude -p``) against the proxy with a throwaway home."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VERSION = os.environ.get("CLAUDE_CODE_VERSION", "2.1.197")  # the one place the pin lives
CACHE = Path(os.environ.get("CLAUDE_CODE_CACHE", Path.home() / ".cache" / "claude-proxy"))


def install_dir() -> Path:
    return CACHE / f"claude-code-{VERSION}"


def binary() -> Path:
    return install_dir() / "node_modules" / ".bin" / "claude"


def ensure_installed() -> Path:
    path = binary()
    if path.exists():
        return path
    if not shutil.which("npm"):
        raise RuntimeError("npm is needed to install Claude Code (only the npm registry is used)")
    install_dir().mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "npm",
            "install",
            "--prefix",
            str(install_dir()),
            "--no-audit",
            "--no-fund",
            f"@anthropic-ai/claude-code@{VERSION}",
        ],
        check=True,
    )
    if not path.exists():
        raise RuntimeError(f"npm install did not produce {path}")
    return path


@dataclass
class ClaudeRun:
    args: list[str]
    returncode: int | None  # None: killed at the timeout
    stdout: str
    stderr: str
    seconds: float
    events: list[dict[str, Any]] = field(default_factory=list)  # stream-json lines
    env: dict[str, str] = field(default_factory=dict)

    @property
    def env_line(self) -> list[str]:
        return [f"{k}={v}" for k, v in self.env.items()]

    @property
    def result(self) -> dict[str, Any]:
        """The final ``result`` object (json or stream-json output)."""
        for event in reversed(self.events):
            if event.get("type") == "result":
                return event
        return {}

    @property
    def text(self) -> str:
        return str(self.result.get("result") or "")

    def blocks(self, kind: str) -> list[dict[str, Any]]:
        """Content blocks of a kind in the assistant messages Claude Code printed."""
        return [
            block
            for event in self.events
            if event.get("type") == "assistant"
            for block in (event.get("message") or {}).get("content") or []
            if block.get("type") == kind
        ]

    def describe(self) -> str:
        if self.returncode is None:
            return f"timed out after {self.seconds:.0f} s"
        if self.result.get("is_error"):
            return f"Claude Code: {self.text[:200]!r}"
        if self.returncode != 0:
            return f"exit {self.returncode}: {(self.stderr or self.stdout)[-200:]!r}"
        return f"result {self.text[:200]!r}"


def claude_env(home: Path, base_url: str, api_key: str, model: str | None) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": api_key,
        # Offline and quiet: no telemetry, update checks or other side traffic.
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "TERM": "dumb",
    }
    if model:
        # Whatever side model Claude Code might pick goes to the family under test too.
        for name in (
            "ANTHROPIC_MODEL",
            "ANTHROPIC_SMALL_FAST_MODEL",
            "ANTHROPIC_DEFAULT_HAIKU_MODEL",
            "ANTHROPIC_DEFAULT_SONNET_MODEL",
            "ANTHROPIC_DEFAULT_OPUS_MODEL",
        ):
            env[name] = model
    return env


def run(
    args: list[str],
    env: dict[str, str],
    *,
    cwd: Path,
    stdin: str | None = None,
    timeout: float = 60,
) -> ClaudeRun:
    command = [str(ensure_installed()), *args]
    start = time.monotonic()
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # so a timeout can end the whole process group we started
    )
    try:
        stdout, stderr = process.communicate(stdin or "", timeout=timeout)
        code: int | None = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        stdout, stderr = process.communicate()
        code = None
    events = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                pass
    return ClaudeRun(command[1:], code, stdout, stderr, time.monotonic() - start, events, env)
