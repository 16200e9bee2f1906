"""Exceptions the CLI maps to exit codes (kept import-light: the CLI catches them for every command)."""


class CheckFailed(RuntimeError):
    """A check on our own output failed (e.g. ONNX parity): exit code 4."""


class Skipped(Exception):
    """The step does not apply on this host (convert-tensorrt without a GPU): exit code 5."""


class Unavailable(RuntimeError):
    """A service stayed unreachable through the retries: exit code 6."""
