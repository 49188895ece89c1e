"""The one exception type for mistakes a user can fix: a bad config value, option, file or corpus."""

from __future__ import annotations


class UsageError(ValueError):
    """A mistake in what the user gave (not a bug): the command line prints its message as one line
    and exits with status 2."""
