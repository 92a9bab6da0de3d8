"""The schema library, named as Home Assistant names it where this integration runs.

Home Assistant 2026.9 replaced voluptuous with probatio and aliases `voluptuous` to it at run
time; type checkers do not see that alias, so schemas built with one and passed to the other
fail `mypy --strict` on one side of that change. Importing through here types them right on both.
"""

from __future__ import annotations

try:
    from probatio import *  # type: ignore[import-not-found,unused-ignore]  # noqa: F403
except ImportError:  # Home Assistant before 2026.9
    from voluptuous import *  # type: ignore[assignment,unused-ignore]  # noqa: F403
