"""LOKA's exceptions: the CLI prints their message as one line and exits with code 2."""


class LokaError(Exception):
    """A problem the user can fix (bad input, missing file, unreachable hub); the message says how."""


class DataError(LokaError):
    """A malformed, oversized or wrong-typed data file or record."""


class CacheError(LokaError):
    """A cache directory that cannot be used (unwritable, corrupt)."""


class CheckpointWriteError(LokaError):
    """A checkpoint that cannot (or must not) be written where it was asked to go."""
