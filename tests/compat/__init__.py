"""The Claude Code compatibility matrix: real clients, the real proxy, strict fake upstreams.

``python -m tests.compat`` (or ``make compat``) runs it; see ``runner`` for the options."""
