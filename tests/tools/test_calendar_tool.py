import datetime as dt
import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tools_fuzz import FUZZ_SETTINGS, TIME_LIMIT_S, hostile_text

from jtoolformer.tools.base import ToolContext
from jtoolformer.tools.calendar_tool import Calendar, date_from_url, format_today

calendar = Calendar()
TODAY = re.compile(r"Today is (Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), [A-Z][a-z]+ "
                   r"\d{1,2}, \d{1,4}\.")


def test_paper_example():
    assert calendar("", ToolContext(date=dt.date(2023, 1, 30))) == "Today is Monday, January 30, 2023."


def test_input_is_ignored_and_metadata_strings_are_read():
    context = ToolContext.from_metadata({"date": "2024-02-29T23:59:00+00:00", "url": None, "id": 7})
    assert context.doc_id == "7"
    assert calendar("what day is it?", context) == "Today is Thursday, February 29, 2024."


@pytest.mark.parametrize("url, date", [
    ("https://example.com/news/2023/01/30/story.html", dt.date(2023, 1, 30)),
    ("http://blog.example.org/2019/7/4/fireworks", dt.date(2019, 7, 4)),
    ("https://example.com/2021-12-25-christmas-recipes", dt.date(2021, 12, 25)),
    ("https://example.com/archive/20200229/leap", dt.date(2020, 2, 29)),
    ("https://example.com/2023/02/30/x then /2022/03/01/y", dt.date(2022, 3, 1)),
    ("https://example.com/2023/13/01/", None),
    ("https://example.com/item?id=120230130", None),
    ("https://example.com/about", None),
    ("https://example.com/1850/01/01/", None),
])
def test_dates_found_in_urls(url, date):
    assert date_from_url(url) == date


def test_metadata_date_wins_over_url_date():
    context = ToolContext(date=dt.date(2022, 5, 1), url="https://x.org/2020/01/01/a")
    assert calendar("", context) == "Today is Sunday, May 1, 2022."


def test_unknown_date_gives_empty_result_and_fails_the_prefilter():
    for context in (ToolContext(), ToolContext(url="https://example.com/about"),
                    ToolContext.from_metadata({"date": "not a date"})):
        assert calendar("", context) == ""
        assert not calendar.prefilter("Some text.", context)
    assert calendar.prefilter("Some text.", ToolContext(url="https://x.org/2020/01/01/a"))


@given(st.dates())
def test_format_agrees_with_strftime_in_the_c_locale(date):
    assert format_today(date) == f"Today is {date:%A}, {date:%B} {date.day}, {date.year}."


@FUZZ_SETTINGS
@given(text=hostile_text, url=hostile_text, date=st.none() | st.dates())
def test_fuzz_calendar(text, url, date):
    context = ToolContext(date=date, url=url)
    started = time.perf_counter()
    result = calendar(text, context)
    keep = calendar.prefilter(text, context)
    assert time.perf_counter() - started < TIME_LIMIT_S
    assert result == "" or TODAY.fullmatch(result)
    assert keep == bool(result)
