"""Errors raised by the mapping layer; every message says where the problem is and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass

from usdirect.domain.errors import PermanentError


@dataclass(frozen=True)
class TemplateIssue:
    """One problem in a template file, located by line (1-based; 0 when the file itself is the problem)."""

    file: str
    line: int
    message: str
    fix: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}. Fix: {self.fix}"


class TemplateError(PermanentError, ValueError):
    """A template that cannot be used as written; `issues` lists every problem found."""

    def __init__(self, issues: list[TemplateIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))


class RejectShareExceededError(PermanentError, RuntimeError):
    """Too large a share of the source rows was rejected for the run to be trusted."""


class FeedFormatError(PermanentError, ValueError):
    """The feed file cannot be read as the template says (encoding, header): a person must act."""
