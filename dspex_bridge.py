"""The spec's import path (`from dspex_bridge import SessionContext`): bridge's public API, nothing else."""

from bridge import *  # noqa: F403
from bridge import __all__ as __all__
from bridge import __version__ as __version__
