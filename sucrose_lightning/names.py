"""Domain names: what a name may be (it names folders under the workspace) and its parent.

Imports neither torch nor lightning.
"""

from __future__ import annotations

import re

__all__ = ["MAX_NAME_BYTES", "WORKSPACE_DOMAIN", "check_domain_name", "parent_of"]

#: The reserved domain of layout settings; not a scenario.
WORKSPACE_DOMAIN = "workspace"
# Characters refused in a domain segment: path separators and what Windows forbids.
_BAD_SEGMENT_CHARS = re.compile(r'[\\<>:"|?*\x00-\x1f\x7f]')
# A checkpoint's temporary file, ".<name with / as _>_<prefix><epochs>_s<step><ext>.<pid>.<ns>.tmp",
# must fit the usual 255-byte limit on a file name: with prefix and extension at most 16
# bytes each, a name of at most 150 bytes leaves room for 20-digit epochs and steps.
MAX_NAME_BYTES = 150


def parent_of(name: str) -> str | None:
    """The name before the last ``/``, or ``None`` for a top-level domain.

    Examples:
        >>> parent_of("base/case1/small")
        'base/case1'
        >>> parent_of("base") is None
        True
    """
    cut = name.rfind("/")
    return name[:cut] if cut > 0 else None


def check_domain_name(name: object) -> str | None:
    """Return why ``name`` cannot be a domain (it names folders under the workspace), or ``None``.

    Examples:
        >>> check_domain_name("base/case1") is None
        True
        >>> check_domain_name("../escape")
        "segment '..' is not allowed"
    """
    if not isinstance(name, str):
        return f"domain names must be strings, not {type(name).__name__}"
    if not name:
        return "the domain name is empty"
    if name.startswith("/"):
        return "a leading '/' is not allowed (names are relative to the workspace)"
    if name.endswith("/"):
        return "a trailing '/' is not allowed"
    if "\\" in name:
        return "backslashes are not allowed; separate levels with '/'"
    for segment in name.split("/"):
        if not segment:
            return "empty segment ('//') is not allowed"
        if segment in (".", ".."):
            return f"segment {segment!r} is not allowed"
        if segment.startswith("."):
            return f"segment {segment!r} starts with '.', which is reserved for sucrose's own files"
        if segment != segment.strip():
            return f"segment {segment!r} starts or ends with whitespace"
        bad = _BAD_SEGMENT_CHARS.search(segment)
        if bad:
            return f"segment {segment!r} contains the character {bad.group()!r}"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return (
            f"the name is {len(name.encode('utf-8', 'surrogatepass'))} bytes long; at most {MAX_NAME_BYTES} "
            "(its checkpoint file names must fit the filesystem's 255-byte limit)"
        )
    if name == WORKSPACE_DOMAIN:
        return None
    if name.split("/", 1)[0] == WORKSPACE_DOMAIN:
        return f"{WORKSPACE_DOMAIN!r} is reserved for layout settings and cannot have children"
    return None
