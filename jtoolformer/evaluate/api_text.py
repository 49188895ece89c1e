"""The text a reader sees in a generation: inline API calls removed."""

from __future__ import annotations

import re

from jtoolformer.tools.registry import TOOL_KEYS

# "[Tool(input) -> result]" or "[Tool(input)]", up to the first "]"; a call cut off by the
# token budget runs to the end of the text.
_CALL = re.compile(rf"\[\s*(?:{'|'.join(TOOL_KEYS)})\s*\(.*?(?:\]|\Z)", re.IGNORECASE | re.DOTALL)


def strip_api_calls(text: str) -> str:
    """Replace every inline call by a space so the words around it stay apart."""
    return _CALL.sub(" ", text)
