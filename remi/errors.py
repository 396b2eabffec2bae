"""Errors a user can act on: each message says what is wrong and how to fix it."""


class UserError(Exception):
    """Bad input (params, data, erasure request): the run stops before writing anything."""


class ParamsError(UserError):
    """params.yaml holds a missing, unknown or out-of-range value."""


class DataMissingError(UserError):
    """A raw data file the pipeline needs is absent or unreadable."""


class ValidationFailed(UserError):
    """A Great Expectations suite failed; the message is its readable report."""
