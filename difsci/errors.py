"""Errors that difsci raises for a user's program.

Every error derives from :class:`DifsciError`.  ``CompileError`` and
``AutodiffError`` carry a source location and render as::

    path/to/file.py:17:9: AutodiffError: `u[i]` is overwritten after it was read
            u[i] = u[i] + alpha * lap
            ^^^^
    hint: ...
"""
from __future__ import annotations


class DifsciError(Exception):
    """Base class of every error difsci raises for a user's program."""


class LocatedError(DifsciError):
    """An error at a span of the user's source."""

    kind = "DifsciError"

    def __init__(self, message: str, loc=None, hint: str | None = None, kernel: str | None = None):
        self.message = message
        self.loc = loc
        self.hint = hint
        self.kernel = kernel
        super().__init__(self.render())

    def render(self) -> str:
        head = f"{self.kind}: "
        if self.kernel:
            head += f"in `{self.kernel}`: "
        head += self.message
        lines = []
        if self.loc is not None:
            lines.append(f"{self.loc.filename}:{self.loc.line}:{self.loc.col + 1}: {head}")
            text = self.loc.source_line()
            if text is not None:
                stripped = text.rstrip("\n")
                lines.append("    " + stripped)
                width = max(1, (self.loc.end_col - self.loc.col) if self.loc.end_line == self.loc.line else len(stripped) - self.loc.col)
                lines.append("    " + " " * self.loc.col + "^" * width)
        else:
            lines.append(head)
        if self.hint:
            lines.append("hint: " + self.hint)
        return "\n".join(lines)


class CompileError(LocatedError):
    """Unsupported syntax, unknown name or type mismatch inside a kernel."""

    kind = "CompileError"


class AutodiffError(LocatedError):
    """A construct that cannot be differentiated, or a broken access rule."""

    kind = "AutodiffError"


class BackendError(DifsciError):
    """A backend that is not available on this machine."""


class InternalCompilerError(DifsciError):
    """A bug in difsci itself: please report it with the kernel that triggered it."""

    def __init__(self, stage: str, detail: str):
        super().__init__(
            f"internal compiler error in stage `{stage}`: {detail}\n"
            "This is a bug in difsci; please report it with the kernel that triggered it."
        )


def _full_traceback() -> bool:
    import os
    return os.environ.get("DIFSCI_TRACEBACK", "").lower() == "full"


def user_facing(exc: BaseException) -> BaseException:
    """``exc`` without difsci's compiler frames (unless ``DIFSCI_TRACEBACK=full``).

    Used at the API boundary: ``except (DifsciError, TypeError, ValueError) as e: raise user_facing(e)``.
    """
    if _full_traceback():
        return exc
    exc.__traceback__ = None
    exc.__suppress_context__ = True
    exc.__cause__ = None
    return exc
