"""Exceptions the CLI maps to exit codes (kept import-light: the CLI catches them for every command)."""


class CheckFailed(RuntimeError):
    """A check on our own output failed (e.g. ONNX parity): exit code 4."""
