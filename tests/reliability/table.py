"""Write the reliability tables of docs/reliability.md from the suite's catalogue.

python -m tests.reliability.table           rewrite docs/reliability.md between the markers
python -m tests.reliability.table --check   exit 1 if docs/reliability.md is not up to date
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.reliability.catalogue import FAULTS, SECURITY, STAGES, bad_inputs

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
RELIABILITY = ROOT / "docs" / "reliability.md"
START, END = "<!-- reliability:start -->", "<!-- reliability:end -->"


def _test(node: str) -> str:
    path, _, name = node.partition("::")
    return f"`{Path(path).name}::{name}`"


def render() -> str:
    """The generated part of docs/reliability.md, markers included."""
    lines = [START, "", "**Faults tried / survived**", ""]
    lines += ["| fault | how it is caused | result | what is checked afterwards | test |", "|---|---|---|---|---|"]
    lines += [f"| {f.fault} | {f.how} | survived | {f.survives} | {_test(f.test)} |" for f in FAULTS]
    cases = bad_inputs()
    lines += ["", f"**Bad inputs refused: {len(cases)} kinds**", ""]
    lines += ["| stage | entered through | what stays unchanged |", "|---|---|---|"]
    lines += [f"| {stage} | {command} | {unchanged} |" for stage, (command, unchanged) in STAGES.items()]
    lines += ["", "| stage | bad input | the error points at | and says | result |", "|---|---|---|---|---|"]
    lines += [f"| {c.stage} | {c.kind} | `{c.at}` | `{c.says}` | refused, nothing changed |" for c in cases]
    lines += ["", "**Security defaults**", "", "| default | test |", "|---|---|"]
    lines += [f"| {d.default} | {_test(d.test)} |" for d in SECURITY]
    return "\n".join([*lines, "", END])


def updated(text: str) -> str:
    """``text`` (docs/reliability.md) with the part between the markers replaced by ``render()``.

    Raises:
        ValueError: ``text`` does not hold exactly one start and one end marker.
    """
    if text.count(START) != 1 or text.count(END) != 1:
        raise ValueError(f"{RELIABILITY}: expected one {START} and one {END}")
    head, rest = text.split(START)
    return head + render() + rest.split(END, 1)[1]


def main(argv: list[str]) -> int:
    current = RELIABILITY.read_text(encoding="utf-8")
    new = updated(current)
    if "--check" in argv:
        if new != current:
            print(f"{RELIABILITY}: the reliability tables are out of date; run python -m tests.reliability.table")
            return 1
        return 0
    RELIABILITY.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
