"""The codec's single exception type."""


class BlockcodecError(ValueError):
    """Raised for every bad input: unreadable images, invalid options, corrupt or
    truncated streams, model mismatches.  The message is one line meant for a user."""
