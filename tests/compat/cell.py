"""One cell of the matrix: a fake upstream, a seeded database, a daphne, a recording relay, and
the row's client session against them. Everything it started is stopped before it returns;
for a failing cell the requests the fake saw, its answers, the bytes between client and proxy,
Claude Code's output and the daphne log stay in ``compat-artifacts/<column>/<row>/``."""

from __future__ import annotations

import json
import shlex
import shutil
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.compat import claude
from tests.compat.columns import Column
from tests.compat.proxy import Daphne, Relay
from tests.fakes.strict import Faults, StrictFake
from tests.fakes.upstream import FakeUpstream


@dataclass
class Outcome:
    ok: bool
    reason: str


@dataclass(frozen=True)
class Row:
    id: str
    title: str
    check: Callable[[Cell], Outcome]
    client: str  # what drives it, for the table: "Claude Code", "Claude Code + SDK"
    credentials: int = 1
    faults: Callable[[], Faults] = Faults
    settings: dict[str, Any] = field(default_factory=dict)


class Cell:
    def __init__(
        self, column: Column, row: Row, out_dir: Path, template: Path, *, keep: bool = False
    ) -> None:
        self.keep = keep
        self.hold = False  # after the check, keep everything running for a person to poke at
        self.column = column
        self.row = row
        self.out_dir = out_dir
        self.template = template
        self.runs: list[claude.ClaudeRun] = []
        self.fake: StrictFake | None = None
        self.relay: Relay | None = None
        self.key = ""

    # For the rows ---------------------------------------------------------------------------

    def claude(
        self,
        *args: str,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> claude.ClaudeRun:
        assert self.relay is not None
        workdir = self.out_dir / "workdir"
        workdir.mkdir(parents=True, exist_ok=True)
        model = ["--model", self.column.model] if self.column.model else []
        run_env = claude.claude_env(
            self.out_dir / "home", self.relay.url, self.key, self.column.model
        )
        run_env.update(env or {})
        result = claude.run([*args, *model], run_env, cwd=workdir, stdin=stdin, timeout=timeout)
        self.runs.append(result)
        return result

    def sdk(self, **options: Any):
        import anthropic

        assert self.relay is not None
        return anthropic.Anthropic(base_url=self.relay.url, api_key=self.key, **options)

    @property
    def model(self) -> str:
        return self.column.model or "claude-opus-4-8"

    def proxy_refused(self) -> list[int]:
        """Statuses ≥ 400 the proxy answered the client with."""
        assert self.relay is not None
        return [s for s in self.relay.proxy_statuses() if s >= 400]

    # Lifecycle ------------------------------------------------------------------------------

    def run(self) -> Outcome:
        if self.out_dir.exists():
            shutil.rmtree(self.out_dir)
        self.out_dir.mkdir(parents=True)
        upstream = FakeUpstream().start()
        daphne: Daphne | None = None
        try:
            secrets = list(self.column.secrets)
            self.fake = self.column.make_fake(secrets, self.row.faults())
            upstream.default = self.fake.handle
            credentials = [
                {
                    "provider": self.column.provider,
                    "label": f"{self.column.id}-{n + 1}",
                    "secret": secret,
                    "base_url": upstream.url + self.column.base_path,
                    "models": list(self.column.models),
                    "fields": self.column.fields,
                }
                for n, secret in enumerate(secrets[: self.row.credentials])
            ]
            spec = {"credentials": credentials, "settings": self.row.settings, "env": {}}
            if self.column.account:
                fake: Any = self.fake
                for n, credential in enumerate(credentials):
                    # An expired access token the fake never accepts, and the seed refresh
                    # token it rotates: the first request must refresh the account.
                    credential["account"] = fake.account_seed(n)
                spec["env"][fake.token_env] = upstream.url + fake.token_path
            try:
                daphne = Daphne(self.out_dir / "proxy", spec, self.template)
                self.key = daphne.key
                self.relay = Relay(daphne.port, self.out_dir / "client-proxy")
                outcome = self.row.check(self)
            except Exception as exc:  # a harness, proxy or client crash is a failed cell, with why
                outcome = Outcome(False, f"{type(exc).__name__}: {str(exc)[:300]}")
                (self.out_dir / "traceback.txt").write_text(traceback.format_exc())
            if self.hold and self.relay:
                self._hold(outcome)
        finally:
            if self.relay:
                self.relay.stop()
            if daphne:
                daphne.stop()
            upstream.stop()
        if outcome.ok and not self.keep:
            shutil.rmtree(self.out_dir, ignore_errors=True)
        else:
            self._keep_artifacts(outcome)
        return outcome

    def _hold(self, outcome: Outcome) -> None:
        assert self.relay is not None
        print(f"\n{'✓' if outcome.ok else '✗'} {outcome.reason}\n")
        print(f"proxy (through the recording relay): {self.relay.url}   client key: {self.key}")
        print("the commands this cell ran, to run again by hand:")
        for result in self.runs:
            print(
                "  "
                + " ".join(
                    shlex.quote(a)
                    for a in ["env", "-i", *result.env_line, str(claude.binary()), *result.args]
                )
            )
        print("\nEverything stays up until Enter (or Ctrl-C).")
        try:
            input()
        except (EOFError, KeyboardInterrupt):
            pass

    def _keep_artifacts(self, outcome: Outcome) -> None:
        if self.relay:
            self.relay.dump()
        if self.fake:
            (self.out_dir / "upstream-log.json").write_text(
                json.dumps([e.as_dict() for e in self.fake.log], indent=1, default=str)
            )
            (self.out_dir / "upstream-summary.json").write_text(
                json.dumps(self.fake.summary(), indent=1)
            )
        for n, result in enumerate(self.runs, 1):
            (self.out_dir / f"claude-{n}.json").write_text(
                json.dumps(
                    {
                        "args": result.args,
                        "returncode": result.returncode,
                        "seconds": round(result.seconds, 1),
                        "stdout": result.stdout,
                        "stderr": result.stderr,
                    },
                    indent=1,
                )
            )
        (self.out_dir / "outcome.txt").write_text(outcome.reason + "\n")
        shutil.rmtree(self.out_dir / "home", ignore_errors=True)  # Claude Code's own state
        shutil.rmtree(self.out_dir / "workdir", ignore_errors=True)
