"""Exceptions the CLI maps to exit codes, and the codes (standard library only: the CLI catches
them for every command, and the DAG side maps EXIT_SKIPPED to an Airflow skip)."""

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_SKIPPED, EXIT_UNAVAILABLE = 0, 1, 2, 3, 4, 5, 6


class CheckFailed(RuntimeError):
    """A check on our own output failed (e.g. ONNX parity): exit code 4."""


class Skipped(Exception):
    """The step does not apply on this host (convert-tensorrt without a GPU): exit code 5."""


class Unavailable(RuntimeError):
    """A service stayed unreachable through the retries: exit code 6."""
