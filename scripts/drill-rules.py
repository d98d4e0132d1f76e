#!/usr/bin/env python3
"""Writes a time-compressed copy of the Prometheus rules for `make drill`.

    python3 scripts/drill-rules.py FACTOR OUT_DIR [RULES_DIR]

Every duration in the rules is divided by FACTOR, and nothing else changes: range
selectors (`[1h]` -> `[60s]` at 60), subquery ranges and steps, `offset`, and the
`for:`, `keep_firing_for:` and group `interval:` fields. Alert and record names (which
spell their window, such as `rate1h`), expressions, thresholds, labels and annotations
stay as written, so the drill runs the repository's alerts with a faster clock: one
second of the drill stands for FACTOR seconds of production.

The script proves it: with every duration blanked out, each copy must equal its
original, or it stops. RULES_DIR defaults to deploy/observability/prometheus/rules.
Standard library only.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy/observability/prometheus/rules"

UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000, "y": 31_536_000_000}
# A Prometheus duration: one or more number+unit parts, largest first ("1h30m").
DURATION = r"(?:\d+(?:ms|s|m|h|d|w|y))+"
PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
# Where durations appear: a range or subquery `[5m]`, `[1h:30s]`, `[1h:]`; `offset 5m`;
# and the rule and group fields that take one.
RANGE = re.compile(rf"\[({DURATION})(?::({DURATION})?)?\]")
OFFSET = re.compile(rf"(\boffset\s+)({DURATION})\b")
FIELD = re.compile(rf"^(\s*(?:-\s+)?(?:for|keep_firing_for|interval):\s*)({DURATION})\s*$", re.MULTILINE)


def to_ms(text):
    if "".join(f"{n}{u}" for n, u in PART.findall(text)) != text:
        sys.exit(f"drill-rules: cannot read the duration {text!r}")
    return sum(int(n) * UNITS_MS[u] for n, u in PART.findall(text))


def scaled(text, factor):
    ms = to_ms(text) / factor
    if ms < 1:
        sys.exit(f"drill-rules: {text} divided by {factor} is under a millisecond")
    ms = round(ms)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def compress(text, factor):
    def range_(m):
        step = m.group(2)
        inner = scaled(m.group(1), factor)
        if ":" in m.group(0):
            inner += ":" + (scaled(step, factor) if step else "")
        return f"[{inner}]"

    text = RANGE.sub(range_, text)
    text = OFFSET.sub(lambda m: m.group(1) + scaled(m.group(2), factor), text)
    return FIELD.sub(lambda m: m.group(1) + scaled(m.group(2), factor), text)


def blank(text):
    """The text with every duration where the rewrite may touch it replaced by `D`."""
    text = RANGE.sub(lambda m: "[D" + (":D]" if ":" in m.group(0) else "]"), text)
    text = OFFSET.sub(lambda m: m.group(1) + "D", text)
    return FIELD.sub(lambda m: m.group(1) + "D", text)


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: scripts/drill-rules.py FACTOR OUT_DIR [RULES_DIR]")
    try:
        factor = float(sys.argv[1])
    except ValueError:
        factor = 0
    if factor < 1:
        sys.exit(f"drill-rules: FACTOR must be a number of at least 1, not {sys.argv[1]!r}")
    out = Path(sys.argv[2])
    rules = Path(sys.argv[3]) if len(sys.argv) == 4 else RULES
    files = sorted(rules.glob("*.yml"))
    if not files:
        sys.exit(f"drill-rules: no *.yml in {rules}")
    out.mkdir(parents=True, exist_ok=True)
    for path in files:
        original = path.read_text()
        copy = compress(original, factor)
        # Only durations may differ; names and expressions are the repository's.
        if blank(copy) != blank(original):
            sys.exit(f"drill-rules: {path.name}: the copy differs in more than its durations")
        (out / path.name).write_text(
            f"# Time-compressed copy of {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: "
            f"every duration divided by {factor:g} (scripts/drill-rules.py).\n" + copy
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
