"""No loss on tool results: a per-token loss mask from the character spans of a text's API calls.

In a call "[Tool(input) -> result]" the model writes "[Tool(input) ->"; at inference the host runs
the tool and appends " result]" (docs/method.md §4, `tools.calls.result_suffix`). That appended part
is what gets masked: the model is not trained to predict text a tool will supply. The arrow itself
stays in the loss, since writing it is what asks for the tool.

A token is masked when its first character lies inside such a span. Characters are mapped to tokens
by the tokenizer's offsets, so this holds for any tokenizer, whatever it merges around "->" and "]".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jtoolformer.checkpoints.tokenizer import Tokenizer
from jtoolformer.data.packing import Text
from jtoolformer.tools.calls import find_calls

Span = tuple[int, int]


def tool_result_spans(text: str) -> list[Span]:
    """[start, end) of what follows the arrow in each call of `text`: its result and closing "]"."""
    return [(call.result_start, call.end) for call in find_calls(text) if call.result_start is not None]


def loss_mask(token_starts: Sequence[int], spans: Sequence[Span]) -> np.ndarray:
    """bool per token: False where the token begins inside one of `spans`."""
    starts = np.asarray(token_starts, np.int64)
    keep = np.ones(starts.shape, bool)
    for start, end in spans:
        keep &= (starts < start) | (starts >= end)
    return keep


@dataclass(frozen=True)
class MaskToolResults:
    """A pipeline `Encode`: a text's token ids with no loss on the tokens of its tool results."""

    tokenizer: Tokenizer

    def __call__(self, text: str) -> Text:
        encoding = self.tokenizer.hf.encode(text, add_special_tokens=False)
        starts = [start for start, _ in encoding.offsets]
        return Text(np.asarray(encoding.ids, np.int32), loss_mask(starts, tool_result_spans(text)))
