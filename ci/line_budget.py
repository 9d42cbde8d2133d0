"""The package's size, held to a budget (tinygrad's ``sz.py`` idea): a module that grows past
its share is a module doing two jobs, and the whole growing past the budget is code a reader
has to read. Counts lines with code or docstrings (blank and comment-only lines are free),
prints the table, and exits 1 naming what is over.

    python ci/line_budget.py            # the package, against the budget below
"""

from __future__ import annotations

import io
import sys
import tokenize
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "xpnet"
MAX_TOTAL = 8600       # lines in xpnet/ (code and docstrings): 7000 held chapter 5; chapters 6-8 add about 1500;
#                        the published datasets' digests (a table, io/published.py) about 100
MAX_PER_MODULE = 760   # lines in any one module (to tighten as device.py and trainer.py split)


def counted_lines(path: Path) -> int:
    """Lines holding a token other than a comment or a line break."""
    lines = set()
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENDMARKER, tokenize.ENCODING}
    with path.open("rb") as f:
        for tok in tokenize.tokenize(f.readline):
            if tok.type not in skip:
                lines.update(range(tok.start[0], tok.end[0] + 1))
    return len(lines)


def main() -> int:
    sizes = sorted(((counted_lines(p), p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*.py")), reverse=True)
    total = sum(n for n, _ in sizes)
    out = io.StringIO()
    for n, p in sizes:
        out.write(f"{n:6d}  {p}{'   <- over ' + str(MAX_PER_MODULE) if n > MAX_PER_MODULE else ''}\n")
    out.write(f"{total:6d}  total (budget {MAX_TOTAL})\n")
    print(out.getvalue(), end="")
    over = [str(p) for n, p in sizes if n > MAX_PER_MODULE]
    if over or total > MAX_TOTAL:
        what = [f"{', '.join(over)} over {MAX_PER_MODULE} lines"] if over else []
        what += [f"the package over {MAX_TOTAL} lines"] if total > MAX_TOTAL else []
        print(f"line budget exceeded: {'; '.join(what)}. Split the module by concept (or delete code); raise the "
              f"budget in {Path(__file__).name} only with a reason in the commit.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
