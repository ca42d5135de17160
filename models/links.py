"""Links as they may be shown: in statuses, results, errors, logs and the Web UI."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

#: ``scheme://user:password@`` or ``scheme://user@`` at the start of a link's authority.
#: Neither part may hold ``/ ? # @`` or a space (a link's own ``@`` is percent-encoded
#: there), so a path's ``@`` and a port's ``:`` never match.
_USERINFO = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/?#@\s:]*)(?P<password>:[^/?#@\s]*)?@"
)

#: What stands in for a hidden secret.
HIDDEN = "***"


def hide_passwords(text: str) -> str:
    """``text`` with every link's password hidden: ``https://ann:***@host/a.mp4``.

    A link's user name alone is hidden too (``https://***@host/``): services take an
    access token there. The link the worker fetches keeps them; only what is shown
    (statuses, results, error messages, logs, the Web UI's summaries) loses them.
    Pure: no I/O, so workflows may call it."""
    if "@" not in text:
        return text

    def hide(match: re.Match[str]) -> str:
        if match.group("password") is not None:
            return f"{match.group('scheme')}{match.group('user')}:{HIDDEN}@"
        return f"{match.group('scheme')}{HIDDEN}@"

    return _USERINFO.sub(hide, text)


#: A string shown to users that may hold a link: its passwords are hidden on the way in.
Shown = Annotated[str, AfterValidator(hide_passwords)]
