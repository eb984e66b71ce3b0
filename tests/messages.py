"""Error messages pinned whole: ``pytest.raises(ValueError, match=exactly("..."))``.

A ``match`` on a fragment passes when the message is cut, emptied around the fragment or
reworded elsewhere; the messages name the bad file or key, so they are checked entire.
"""

from __future__ import annotations

import re


def exactly(message: str) -> str:
    """A ``match`` pattern that accepts ``message`` and nothing else."""
    return f"^{re.escape(message)}$"
