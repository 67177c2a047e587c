"""Source locations: where in the user's real file an IR node came from."""
from __future__ import annotations

import ast
import inspect
import linecache
import textwrap
from dataclasses import dataclass


@dataclass(frozen=True)
class Loc:
    """A span in a user's file (lines 1-based, columns 0-based, as in ``ast``)."""

    filename: str
    line: int
    col: int
    end_line: int
    end_col: int

    def source_line(self) -> str | None:
        text = linecache.getline(self.filename, self.line)
        return text if text else None

    def short(self) -> str:
        return f"{self.filename.rsplit('/', 1)[-1]}:{self.line}"


@dataclass
class ParsedSource:
    """A function's AST with line/column offsets mapped to its real file."""

    tree: ast.FunctionDef
    filename: str
    first_line: int
    col_offset: int
    text: str

    def loc(self, node: ast.AST) -> Loc:
        line = getattr(node, "lineno", 1)
        end_line = getattr(node, "end_lineno", line) or line
        col = getattr(node, "col_offset", 0)
        end_col = getattr(node, "end_col_offset", col + 1) or col + 1
        return Loc(self.filename, line + self.first_line - 1, col + self.col_offset,
                   end_line + self.first_line - 1, end_col + self.col_offset)


def parse_function(fn) -> ParsedSource:
    """Parse a Python function's source; locations point at its real file and lines."""
    try:
        lines, first = inspect.getsourcelines(fn)
        filename = inspect.getsourcefile(fn) or fn.__code__.co_filename
    except (OSError, TypeError) as e:  # defined in a REPL or exec'd string
        from ..errors import CompileError
        raise CompileError(f"cannot read the source of `{getattr(fn, '__name__', fn)}`: {e}",
                           hint="define kernels in a file (a module or script), not in an interactive prompt") from None
    raw = "".join(lines)
    dedented = textwrap.dedent(raw)
    indent = len(lines[0]) - len(lines[0].lstrip()) if lines else 0
    if dedented != raw:
        indent = len(raw.splitlines()[0]) - len(dedented.splitlines()[0])
    else:
        indent = 0
    mod = ast.parse(dedented)
    fdef = mod.body[0]
    if not isinstance(fdef, (ast.FunctionDef,)):
        from ..errors import CompileError
        raise CompileError("a kernel must be a plain `def` function")
    return ParsedSource(fdef, filename, first, indent, dedented)
