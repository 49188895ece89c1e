"""The text a reader sees in a generation: inline API calls removed."""

from __future__ import annotations

import re

from jtoolformer.evaluate.protocols import ALL_TOOLS

# "[Tool(input) -> result]" or "[Tool(input)]", up to the first "]"; a call cut off by the
# token budget runs to the end of the text.
_CALL = re.compile(rf"\[\s*(?:{'|'.join(ALL_TOOLS)})\s*\(.*?(?:\]|\Z)", re.IGNORECASE | re.DOTALL)


def strip_api_calls(text: str) -> str:
    """Replace every inline call by a space so the words around it stay apart."""
    return _CALL.sub(" ", text)
