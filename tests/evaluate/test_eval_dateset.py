"""DATESET's answers, re-derived from each question's text with datetime alone."""

import calendar
import datetime
import re
from collections import Counter

import pytest

from jtoolformer.evaluate.tasks.dateset import TEMPLATE_SIZES, DateQuestion, generate_dateset

DAY = datetime.timedelta(days=1)
FIELD = r"(day of the week|day of the month|month|year)"
DATE = r"([A-Z][a-z]+ \d{1,2}, \d{4})"


def _field(field: str, day: datetime.date) -> str:
    return {
        "day of the week": day.strftime("%A"),
        "day of the month": str(day.day),
        "month": day.strftime("%B"),
        "year": str(day.year),
    }[field]


def _date(text: str) -> datetime.date:
    return datetime.datetime.strptime(text, "%B %d, %Y").date()


def _months_back(day: datetime.date, months: int) -> datetime.date:
    """Step back one month at a time, keeping the day of the month where the month has it."""
    year, month = day.year, day.month
    for _ in range(months):
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return datetime.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _whole_months(start: datetime.date, end: datetime.date) -> int:
    count = 0
    while _months_back(end, count + 1) >= start:
        count += 1
    return count


def _holiday(name: str, year: int) -> datetime.date:
    def weekdays(month: int, weekday: int) -> list[datetime.date]:
        return [
            d
            for d in calendar.Calendar().itermonthdates(year, month)
            if d.month == month and d.weekday() == weekday
        ]

    fixed = {
        "New Year's Day": (1, 1),
        "Independence Day": (7, 4),
        "Veterans Day": (11, 11),
        "Christmas": (12, 25),
        "Juneteenth": (6, 19),
    }
    if name in fixed:
        return datetime.date(year, *fixed[name])
    month, weekday, index = {
        "Martin Luther King Jr. Day": (1, 0, 2),
        "Presidents' Day": (2, 0, 2),
        "Memorial Day": (5, 0, -1),
        "Labor Day": (9, 0, 0),
        "Columbus Day": (10, 0, 1),
        "Thanksgiving": (11, 3, 3),
    }[name]
    return weekdays(month, weekday)[index]


def expected_answer(question: str, today: datetime.date) -> str:
    if m := re.fullmatch(rf"How many days ago was {DATE}\?", question):
        assert _date(m[1]) < today
        return str((today - _date(m[1])).days)
    if m := re.fullmatch(rf"How many days are there until {DATE}\?", question):
        assert _date(m[1]) > today
        return str((_date(m[1]) - today).days)
    if m := re.fullmatch(rf"What day of the week (is|was) it on {DATE}\?", question):
        assert (m[1] == "was") == (_date(m[2]) < today)
        return _date(m[2]).strftime("%A")
    if m := re.fullmatch(
        rf"What {FIELD} was it (\d+) (days?|weeks?|months?|years?) ago\?", question
    ):
        n, unit = int(m[2]), m[3]
        assert n > 0 and (n == 1) == (not unit.endswith("s"))
        if unit.startswith("day") or unit.startswith("week"):
            target = today - n * (7 if unit.startswith("week") else 1) * DAY
        else:
            target = _months_back(today, n * (12 if unit.startswith("year") else 1))
        return _field(m[1], target)
    if m := re.fullmatch(rf"What {FIELD} will it be in (\d+) days?\?", question):
        return _field(m[1], today + int(m[2]) * DAY)
    relative = {
        "the day before yesterday": -2,
        "yesterday": -1,
        "today": 0,
        "tomorrow": 1,
        "the day after tomorrow": 2,
    }
    if m := re.fullmatch(rf"What {FIELD} (is|was) it ({'|'.join(relative)})\?", question):
        assert (m[2] == "was") == (relative[m[3]] < 0)
        return _field(m[1], today + relative[m[3]] * DAY)
    if m := re.fullmatch(rf"What {FIELD} (is|was) (.+) this year\?", question):
        holiday = _holiday(m[3], today.year)
        assert m[1] != "year" and (m[2] == "was") == (holiday < today)
        return _field(m[1], holiday)
    if m := re.fullmatch(
        r"How many (days|weeks|months) (ago was|are there until) (.+) this year\?", question
    ):
        holiday = _holiday(m[3], today.year)
        assert (m[2] == "ago was") == (holiday < today)
        start, end = sorted((holiday, today))
        days = (end - start).days
        return str({"days": days, "weeks": days // 7, "months": _whole_months(start, end)}[m[1]])
    raise AssertionError(f"no template matches {question!r}")


@pytest.fixture(scope="module")
def questions() -> list[DateQuestion]:
    return generate_dateset(seed=0)


def test_every_answer_is_right(questions: list[DateQuestion]) -> None:
    wrong = [
        (q.question, q.current_date, q.answer)
        for q in questions
        if q.answer != expected_answer(q.question, q.current_date)
    ]
    assert not wrong, wrong[:5]


def test_sizes_follow_the_paper(questions: list[DateQuestion]) -> None:
    assert len(questions) == 9400
    assert Counter(q.template for q in questions) == TEMPLATE_SIZES
    assert len({q.current_date for q in questions}) > 400  # about 500 current dates
    assert all(q.answer != "0" for q in questions)


def test_same_seed_same_questions(questions: list[DateQuestion]) -> None:
    assert generate_dateset(seed=0) == questions
    assert generate_dateset(seed=1) != questions


def test_fewer_dates_give_proportionally_fewer_questions() -> None:
    small = generate_dateset(seed=3, n_dates=5)
    assert Counter(q.template for q in small) == {
        t: size // 100 for t, size in TEMPLATE_SIZES.items()
    }
    assert all(q.answer == expected_answer(q.question, q.current_date) for q in small)
