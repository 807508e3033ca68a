"""Runs the matrix (or some cells), prints and writes the table, exits non-zero on any ✗.

python -m tests.compat                      # every cell, writes docs/compatibility.md
python -m tests.compat --cell gemini-3/tool-loop --cell 'openai-*/hello'
python -m tests.compat --jobs 1 --keep      # one at a time; keep artifacts of passes too
"""

from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

from tests.compat import claude
from tests.compat.cell import Cell, Outcome, Row
from tests.compat.columns import COLUMNS, Column
from tests.compat.proxy import ROOT, template_database
from tests.compat.rows import ROWS

DOC = ROOT / "docs" / "compatibility.md"
ARTIFACTS = ROOT / "compat-artifacts"


def selected(patterns: list[str]) -> list[tuple[Column, Row]]:
    cells = [(c, r) for r in ROWS for c in COLUMNS]
    if not patterns:
        return cells
    chosen = [
        (c, r) for c, r in cells if any(fnmatch.fnmatch(f"{c.id}/{r.id}", p) for p in patterns)
    ]
    if not chosen:
        names = ", ".join(f"{c.id}/{r.id}" for c, r in cells[:3])
        raise SystemExit(f"no cell matches {patterns}; cells look like {names}, …")
    return chosen


def short(reason: str, limit: int = 90) -> str:
    reason = reason.replace("|", "\\|").replace("\n", " ")
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"


def table(results: dict[tuple[str, str], Outcome]) -> str:
    columns = [c for c in COLUMNS if any(k[0] == c.id for k in results)]
    rows = [r for r in ROWS if any(k[1] == r.id for k in results)]
    lines = [
        "| row | client | " + " | ".join(c.title for c in columns) + " |",
        "| --- | --- | " + " | ".join("---" for _ in columns) + " |",
    ]
    for row in rows:
        cells = []
        for column in columns:
            outcome = results.get((column.id, row.id))
            if outcome is None:
                cells.append("")
            else:
                cells.append("✓" if outcome.ok else "✗ " + short(outcome.reason))
        lines.append(f"| {row.title} | {row.client} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def document(results: dict[tuple[str, str], Outcome], seconds: float) -> str:
    failed = sum(not o.ok for o in results.values())
    sdk = metadata.version("anthropic")
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    details = [
        f"- `{column}/{row}`: {'✓' if o.ok else '✗'} {o.reason}"
        for (column, row), o in sorted(results.items())
    ]
    return f"""# Compatibility matrix

Real clients against the proxy (one daphne process per cell) in front of strict fake upstreams
(`tests/fakes/`). Produced by `make compat` on {today}: Claude Code **{claude.VERSION}**,
`anthropic` Python SDK {sdk}; {len(results)} cells, {failed} failing, {seconds:.0f} s.
How to run it, and one cell by hand: see the README, "Compatibility matrix".

{table(results)}

Models: Anthropic columns use Claude Code's default model (`claude-opus-4-8`); the others run
`claude --model gemini-2.5-pro`, `gemini-3-pro-preview`, `gpt-5`, `deepseek-reasoner`,
`gpt-5-codex` (Codex account) and `gpt-5` (OpenAI Responses key). The image
row attaches a PNG through `--input-format stream-json` (Claude Code's way of sending an image
in `-p` mode); `/context` runs as `claude -p "/context"`, which 2.1.197 supports, plus the SDK's
`count_tokens`.

The account columns start from logged-in accounts whose access tokens have expired: the proxy
refreshes each against the fake's token endpoint (Claude's, or OpenAI's for Codex), which
rotates single-use refresh tokens, and the hello row checks there was exactly one refresh. The
Codex column's 429 is the backend's `usage_limit_reached` with its reset time. On the two
Responses columns the dropped stream is cut after `response.created`, before any output (GPT
models reason first, invisibly): nothing has reached the client, so the proxy opens the stream
again and Claude Code never sees the cut, where the other columns show Claude Code's own
non-stream retry.

One rule of the fakes is contested: the Gemini 2.5 fake refuses `thinkingLevel` with 400
"Thinking level is not supported for this model.", which is what users of 2.5 Pro report
(microsoft/vscode#334581, RooCodeInc/Roo-Code#10700) although Google's thinking page lists
levels for 2.5; `LEVELS_ON_GEMINI_2_5` in `tests/fakes/gemini_api.py` switches it.

## Every cell

{chr(10).join(details)}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.compat", description=__doc__)
    parser.add_argument("--cell", action="append", default=[], help="COLUMN/ROW, * allowed")
    parser.add_argument("--jobs", type=int, default=3, help="cells run at once")
    parser.add_argument("--keep", action="store_true", help="keep artifacts of passing cells too")
    parser.add_argument(
        "--hold",
        action="store_true",
        help="one cell: after its check, keep the fake and the proxy up and print the exact "
        "claude commands it ran",
    )
    parser.add_argument(
        "--write",
        action="store_true",
        help="write docs/compatibility.md even for a subset (the full matrix always writes it)",
    )
    args = parser.parse_args(argv)
    cells = selected([p for arg in args.cell for p in arg.split(",") if p])
    if args.hold and len(cells) != 1:
        raise SystemExit("--hold takes exactly one cell (--cell COLUMN/ROW)")
    claude.ensure_installed()
    import anthropic  # noqa: F401  (seconds to import: once, before the cells start)

    start = time.monotonic()
    results: dict[tuple[str, str], Outcome] = {}
    with tempfile.TemporaryDirectory(prefix="compat-") as work:
        template = template_database(Path(work))

        def one(cell: tuple[Column, Row]) -> None:
            column, row = cell
            began = time.monotonic()
            runner = Cell(column, row, ARTIFACTS / column.id / row.id, template, keep=args.keep)
            runner.hold = args.hold
            outcome = runner.run()
            results[(column.id, row.id)] = outcome
            mark = "✓" if outcome.ok else "✗"
            print(
                f"{mark} {column.id}/{row.id} ({time.monotonic() - began:.0f} s): {outcome.reason}",
                flush=True,
            )

        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            list(pool.map(one, cells))
    seconds = time.monotonic() - start
    print()
    print(table(results))
    if len(cells) == len(ROWS) * len(COLUMNS) or args.write:
        DOC.parent.mkdir(exist_ok=True)
        DOC.write_text(document(results, seconds))
        print(f"\nwrote {DOC.relative_to(ROOT)}")
    failed = [k for k, o in results.items() if not o.ok]
    if failed:
        print(
            f"\n{len(failed)} of {len(results)} cells failed; artifacts in {ARTIFACTS.relative_to(ROOT)}/"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
