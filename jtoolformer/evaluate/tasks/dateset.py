"""DATESET (the paper's appendix D, Table 11), generated: questions whose answers depend on the
current date, answered here with ``datetime``.

For each of ``n_dates`` random current dates, a past and a future date at most four years
away (ours: the paper says "within a four-year range") fill Table 11's templates; each template
is then sampled down to its share of the paper's 9,400 questions for 500 dates. Choices of ours:
current dates fall in 2000-2029; N in "N weeks/months/years ago" is the number of whole units
between the past date and the current one, and questions with N = 0 are not asked; holidays are
the US federal holidays on their actual (not observed) dates; "How many years ... this year"
is left out, since its answer is always 0.
"""

from __future__ import annotations

import calendar
import datetime
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

PAPER_DATES = 500
# Questions per template for PAPER_DATES current dates (Table 11; 9,400 in all).
TEMPLATE_SIZES = {
    "days_between": 400,
    "unit_ago": 800,
    "days_ahead": 800,
    "weekday_on": 400,
    "relative_day": 4000,
    "holiday_field": 1800,
    "holiday_distance": 1200,
}
FIRST_CURRENT_DATE = datetime.date(2000, 1, 1)
LAST_CURRENT_DATE = datetime.date(2029, 12, 31)
MAX_OFFSET_DAYS = 4 * 365

WEEKDAYS = tuple("Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split())
MONTHS = tuple(
    "January February March April May June July August September October November December".split()
)
FIELDS: dict[str, Callable[[datetime.date], str]] = {
    "day of the week": lambda d: WEEKDAYS[d.weekday()],
    "day of the month": lambda d: str(d.day),
    "month": lambda d: MONTHS[d.month - 1],
    "year": lambda d: str(d.year),
}
UNITS = ("days", "weeks", "months", "years")
RELATIVE_DAYS = (
    ("the day before yesterday", -2),
    ("yesterday", -1),
    ("today", 0),
    ("tomorrow", 1),
    ("the day after tomorrow", 2),
)


@dataclass(frozen=True)
class DateQuestion:
    question: str
    answer: str
    current_date: datetime.date
    template: str


def format_date(day: datetime.date) -> str:
    """Formats as "August 14, 2020"."""
    return f"{MONTHS[day.month - 1]} {day.day}, {day.year}"


def shift_months(day: datetime.date, months: int) -> datetime.date:
    """``day`` moved by whole months; a day past the new month's end becomes its last day."""
    years, month_index = divmod(day.month - 1 + months, 12)
    year, month = day.year + years, month_index + 1
    return datetime.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def shift(day: datetime.date, amount: int, unit: str) -> datetime.date:
    if unit == "days":
        return day + datetime.timedelta(days=amount)
    if unit == "weeks":
        return day + datetime.timedelta(weeks=amount)
    return shift_months(day, amount * (12 if unit == "years" else 1))


def whole_units(start: datetime.date, end: datetime.date, unit: str) -> int:
    """Complete units from ``start`` to a later ``end``."""
    days = (end - start).days
    if unit in ("days", "weeks"):
        return days if unit == "days" else days // 7
    months = (end.year - start.year) * 12 + end.month - start.month - (end.day < start.day)
    return months if unit == "months" else months // 12


def _count(amount: int, unit: str) -> str:
    return f"{amount} {unit[:-1] if amount == 1 else unit}"


def us_federal_holidays(year: int) -> list[tuple[str, datetime.date]]:
    def nth(month: int, weekday: int, n: int) -> datetime.date:
        first = datetime.date(year, month, 1)
        return first + datetime.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))

    def last(month: int, weekday: int) -> datetime.date:
        end = datetime.date(year, month, calendar.monthrange(year, month)[1])
        return end - datetime.timedelta(days=(end.weekday() - weekday) % 7)

    monday, thursday = 0, 3
    holidays = [
        ("New Year's Day", datetime.date(year, 1, 1)),
        ("Martin Luther King Jr. Day", nth(1, monday, 3)),
        ("Presidents' Day", nth(2, monday, 3)),
        ("Memorial Day", last(5, monday)),
        ("Independence Day", datetime.date(year, 7, 4)),
        ("Labor Day", nth(9, monday, 1)),
        ("Columbus Day", nth(10, monday, 2)),
        ("Veterans Day", datetime.date(year, 11, 11)),
        ("Thanksgiving", nth(11, thursday, 4)),
        ("Christmas", datetime.date(year, 12, 25)),
    ]
    if year >= 2021:
        holidays.append(("Juneteenth", datetime.date(year, 6, 19)))
    return holidays


def _candidates(
    current: datetime.date, past: datetime.date, future: datetime.date
) -> Iterator[tuple[str, str, str]]:
    """(template, question, answer) for every way the templates can be filled for one date."""
    yield "days_between", f"How many days ago was {format_date(past)}?", str((current - past).days)
    yield (
        "days_between",
        f"How many days are there until {format_date(future)}?",
        str((future - current).days),
    )
    yield (
        "weekday_on",
        f"What day of the week was it on {format_date(past)}?",
        FIELDS["day of the week"](past),
    )
    yield (
        "weekday_on",
        f"What day of the week is it on {format_date(future)}?",
        FIELDS["day of the week"](future),
    )
    ahead = (future - current).days
    for field, value in FIELDS.items():
        yield "days_ahead", f"What {field} will it be in {_count(ahead, 'days')}?", value(future)
        for unit in UNITS:
            amount = whole_units(past, current, unit)
            if amount:
                target = shift(current, -amount, unit)
                yield "unit_ago", f"What {field} was it {_count(amount, unit)} ago?", value(target)
        for phrase, offset in RELATIVE_DAYS:
            verb = "was" if offset < 0 else "is"
            target = current + datetime.timedelta(days=offset)
            yield "relative_day", f"What {field} {verb} it {phrase}?", value(target)
    for name, holiday in us_federal_holidays(current.year):
        verb = "was" if holiday < current else "is"
        for field in ("day of the week", "day of the month", "month"):
            yield "holiday_field", f"What {field} {verb} {name} this year?", FIELDS[field](holiday)
        if holiday == current:
            continue
        for unit in ("days", "weeks", "months"):
            amount = whole_units(min(holiday, current), max(holiday, current), unit)
            if amount:
                where = "ago was" if holiday < current else "are there until"
                yield "holiday_distance", f"How many {unit} {where} {name} this year?", str(amount)


def generate_dateset(seed: int = 0, n_dates: int = PAPER_DATES) -> list[DateQuestion]:
    """The questions for ``n_dates`` random current dates, shuffled; the same for the same seed."""
    rng = random.Random(seed)
    span = (LAST_CURRENT_DATE - FIRST_CURRENT_DATE).days + 1
    pools: dict[str, list[DateQuestion]] = {template: [] for template in TEMPLATE_SIZES}
    for _ in range(n_dates):
        current = FIRST_CURRENT_DATE + datetime.timedelta(days=rng.randrange(span))
        past = current - datetime.timedelta(days=rng.randint(1, MAX_OFFSET_DAYS))
        future = current + datetime.timedelta(days=rng.randint(1, MAX_OFFSET_DAYS))
        for template, question, answer in _candidates(current, past, future):
            pools[template].append(DateQuestion(question, answer, current, template))
    questions = []
    for template, size in TEMPLATE_SIZES.items():
        wanted = round(size * n_dates / PAPER_DATES)
        questions.extend(rng.sample(pools[template], min(wanted, len(pools[template]))))
    rng.shuffle(questions)
    return questions
