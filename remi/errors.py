"""Errors a user can act on: each message says what is wrong and how to fix it."""

from collections.abc import Sequence


class UserError(Exception):
    """Bad input (params, data, erasure request): the run stops before writing anything."""


class ParamsError(UserError):
    """params.yaml holds a missing, unknown or out-of-range value."""


class DataMissingError(UserError):
    """A raw data file the pipeline needs is absent or unreadable."""


class ValidationFailed(UserError):
    """A Great Expectations suite failed; the message is its readable report."""


def first_few(names: Sequence[str], shown: int = 5) -> str:
    """`names` for a message: the first `shown`, then how many more (a list may run to thousands)."""
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")
