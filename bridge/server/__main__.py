"""`python -m bridge.server serve ...` is the same as `dspex serve ...`."""

from ._cli import main

raise SystemExit(main())
