"""Calendar: "Today is Monday, January 30, 2023." from the date of the document the call is in."""

from __future__ import annotations

import datetime as dt
import re

from jtoolformer.tools.base import PromptedTool, ToolContext

MAX_URL_CHARS = 2048
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")
# Dates as URLs spell them: /2023/01/30/, /2023/1/30, 2023-01-30, 2023_01_30, 20230130.
_URL_DATES = (
    re.compile(r"(?<!\d)((?:19|20)\d\d)/(\d\d?)/(\d\d?)(?!\d)"),
    re.compile(r"(?<!\d)((?:19|20)\d\d)[-_.](\d\d)[-_.](\d\d)(?!\d)"),
    re.compile(r"(?<!\d)((?:19|20)\d\d)(\d\d)(\d\d)(?!\d)"),
)


def date_from_url(url: str) -> dt.date | None:
    """The first valid calendar date written in a URL (years 1900-2099), or None."""
    url = url[:MAX_URL_CHARS]
    for pattern in _URL_DATES:
        for match in pattern.finditer(url):
            year, month, day = (int(group) for group in match.groups())
            try:
                return dt.date(year, month, day)
            except ValueError:
                continue
    return None


def document_date(context: ToolContext) -> dt.date | None:
    """The document's date from its metadata, else from its URL."""
    if context.date is not None:
        return context.date
    return date_from_url(context.url) if context.url else None


def format_today(date: dt.date) -> str:
    """English regardless of the process locale (strftime's %A and %B are not)."""
    return f"Today is {_WEEKDAYS[date.weekday()]}, {_MONTHS[date.month - 1]} {date.day}, {date.year}."


class Calendar(PromptedTool):
    name = "Calendar"
    prompt_name = "calendar"
    context_dependent = True
    takes_input = False

    def __call__(self, input: str, context: ToolContext) -> str:
        date = document_date(context)
        return "" if date is None else format_today(date)

    def prefilter(self, text: str, context: ToolContext) -> bool:
        return document_date(context) is not None
