"""The ``smoothbench`` command: one subcommand per pipeline step (``main``), and the one-line
stops of a step that fails or is interrupted (``stops``)."""

from .commands import main  # noqa: F401
