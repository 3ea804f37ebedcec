"""Where a key of a domain is written in ``config.yaml``: ``file:line:column``, found on demand.

Loading the config keeps no positions (that would slow down every start-up); a message that
needs one re-reads the file's node tree once and looks the key up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["key_marks"]

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def key_marks(path: Path) -> dict[tuple[str, str], str]:
    """``(domain, key) -> "file:line:column"`` of every key of every domain in ``path``.

    A file that cannot be read or parsed gives an empty mapping.

    Examples:
        >>> import tempfile
        >>> f = Path(tempfile.mkdtemp()) / "config.yaml"
        >>> _ = f.write_text("base:\\n  lr: 0.1\\n  n: 2\\n")
        >>> key_marks(f)[("base", "n")].rsplit("/", 1)[1]
        'config.yaml:3:3'
    """
    try:
        root = yaml.compose(path.read_bytes(), Loader=_Loader)
    except (OSError, yaml.YAMLError):
        return {}
    out: dict[tuple[str, str], str] = {}
    if not isinstance(root, yaml.MappingNode):
        return out
    for name_node, body_node in root.value:
        if not isinstance(name_node, yaml.ScalarNode) or not isinstance(body_node, yaml.MappingNode):
            continue
        for key_node, _ in body_node.value:
            if isinstance(key_node, yaml.ScalarNode):
                mark = key_node.start_mark
                out[(name_node.value, key_node.value)] = f"{path}:{mark.line + 1}:{mark.column + 1}"
    return out
