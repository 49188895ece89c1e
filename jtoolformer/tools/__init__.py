"""Tools a language model learns to call (Calculator, Calendar, WikiSearch, QA, MT) and their executor."""

from jtoolformer.tools.base import (
    DEFAULT_SAMPLING,
    RARE_CALL_SAMPLING,
    BatchTool,
    PromptedTool,
    SamplingParams,
    TextGenerator,
    Tool,
    ToolContext,
)
from jtoolformer.tools.calls import (
    FoundCall,
    ToolCall,
    clean_result,
    find_calls,
    format_call,
    parse_partial_call,
    result_suffix,
)
from jtoolformer.tools.executor import CallStatus, ExecutorStats, ToolExecutor, ToolRequest, ToolResult
from jtoolformer.tools.registry import TOOL_KEYS, make_tools

__all__ = [
    "DEFAULT_SAMPLING", "RARE_CALL_SAMPLING", "BatchTool", "PromptedTool", "SamplingParams", "TextGenerator",
    "Tool", "ToolContext", "FoundCall", "ToolCall", "clean_result", "find_calls", "format_call",
    "parse_partial_call", "result_suffix", "CallStatus", "ExecutorStats", "ToolExecutor", "ToolRequest",
    "ToolResult", "TOOL_KEYS", "make_tools",
]
