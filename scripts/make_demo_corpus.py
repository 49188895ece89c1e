"""Writes jtoolformer/data/corpus/demo.jsonl: ~300 short English documents for the five tools.

Deterministic (fixed seed, fixed order): running it again reproduces the committed file byte for byte.
Kinds: arithmetic with computed results (Calculator), texts whose date is known from a `date` field or
a dated URL (Calendar), encyclopedic facts (WikiSearch, QA), short French/German/Spanish chunks in
English text (MT). Numbers and dates in generated texts are computed, never typed; the facts are
hand-checked.

    python scripts/make_demo_corpus.py [--out PATH]
"""

import argparse
import datetime
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "jtoolformer" / "data" / "corpus" / "demo.jsonl"
SEED = 20230209  # Toolformer's arXiv date
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]  # fmt: skip

Document = dict[str, str]


def spoken(day: datetime.date) -> str:
    return f"{MONTHS[day.month - 1]} {day.day}, {day.year}"


# --- Calculator -------------------------------------------------------------------------------------


def passed_test(r: random.Random) -> str:
    total = r.randrange(200, 2001, 50)
    passed = r.randrange(total // 10, total)
    percent = (200 * passed + total) // (2 * total)  # rounded half up, in integers
    return f"Out of {total} participants, {passed} (or {percent}%) passed the test."


def pencils(r: random.Random) -> str:
    boxes, each = r.randint(12, 90), r.choice([10, 12, 24, 36])
    return f"The school ordered {boxes} boxes of pencils with {each} pencils in each box, {boxes * each} pencils in total."


def train_speed(r: random.Random) -> str:
    hours, speed = r.randint(2, 7), r.randrange(60, 161, 5)
    return f"The train covered {hours * speed} kilometres in {hours} hours, an average speed of {speed} km/h."


def sheep(r: random.Random) -> str:
    flock = r.randint(120, 900)
    sold = r.randint(20, flock - 10)
    return f"The farm had {flock} sheep. After selling {sold} of them at the autumn market, {flock - sold} sheep were left."


def tickets(r: random.Random) -> str:
    price, members = r.randint(8, 45), r.randint(11, 60)
    return f"Tickets cost ${price} each, so the {members} members of the club paid ${price * members} altogether."


def average(r: random.Random) -> str:
    a, b = r.randint(40, 99), r.randint(40, 99)
    c = r.choice([x for x in range(40, 100) if (a + b + x) % 3 == 0])
    return f"The team scored {a}, {b} and {c} points in its last three games, an average of {(a + b + c) // 3} points per game."


def revenue(r: random.Random) -> str:
    last, growth = r.randrange(20_000, 90_001, 1000), r.randint(3, 40)
    return (f"Last year the shop earned ${last:,}; this year it earned ${last * (100 + growth) // 100:,}, "
            f"an increase of {growth}%.")  # fmt: skip


def recipe(r: random.Random) -> str:
    people, flour = r.choice([2, 4]), r.randrange(100, 501, 50)
    guests = people * r.randint(2, 5)
    return f"A recipe for {people} people needs {flour} grams of flour, so a dinner for {guests} people needs {flour * guests // people} grams."


def library(r: random.Random) -> str:
    english, french = r.randint(1200, 9000), r.randint(150, 1100)
    return f"The town library owns {english} English books and {french} French books, {english + french} books in total."


def sharing(r: random.Random) -> str:
    friends, each = r.randint(3, 9), r.randint(12, 250)
    return f"The {friends} friends shared the prize of {friends * each} euros equally, so each of them received {each} euros."


CALCULATOR: list[Callable[[random.Random], str]] = [
    passed_test, pencils, train_speed, sheep, tickets, average, revenue, recipe, library, sharing,
]  # fmt: skip


# --- Calendar ---------------------------------------------------------------------------------------


def until_christmas(day: datetime.date, r: random.Random) -> str | None:
    christmas = datetime.date(day.year + (day > datetime.date(day.year, 12, 25)), 12, 25)
    days = (christmas - day).days
    return None if days < 2 else f"Only {days} days are left until Christmas, and the shops in the old town are already decorated."


def election_ahead(day: datetime.date, r: random.Random) -> str:
    ahead = r.randint(3, 120)
    return f"The local election will take place on {spoken(day + datetime.timedelta(days=ahead))}, which is {ahead} days from today."


def council_today(day: datetime.date, r: random.Random) -> str:
    return f"On this {WEEKDAYS[day.weekday()]}, the city council approved the budget for the new bus line after a long debate."


def concert_ago(day: datetime.date, r: random.Random) -> str:
    ago = r.randint(2, 60)
    return f"The open-air concert took place {ago} days ago, on {spoken(day - datetime.timedelta(days=ago))}, and the park is still being cleaned."


def next_month(day: datetime.date, r: random.Random) -> str:
    return f"Registration for the evening classes closes at the end of this month, and the courses begin in {MONTHS[day.month % 12]}."


def leap_year(day: datetime.date, r: random.Random) -> str:
    leap = day.year % 4 == 0 and (day.year % 100 != 0 or day.year % 400 == 0)
    verdict = "a leap year, so February has 29 days" if leap else "not a leap year, so February has 28 days"
    return f"The planning office reminded everyone that this year is {verdict}."


CALENDAR: list[Callable[[datetime.date, random.Random], str | None]] = [
    until_christmas, election_ahead, council_today, concert_ago, next_month, leap_year,
]  # fmt: skip

# (date, text): written as news of that very day; the dates are historical.
TODAY_IN_HISTORY = [
    ("1903-12-17", "Orville and Wilbur Wright made the first controlled, powered airplane flights today near Kitty Hawk, North Carolina."),
    ("1912-04-15", "The RMS Titanic sank in the North Atlantic early this morning after striking an iceberg."),
    ("1953-05-29", "Edmund Hillary and Tenzing Norgay reached the summit of Mount Everest today, the first climbers known to do so."),
    ("1961-04-12", "Yuri Gagarin orbited the Earth today aboard Vostok 1, becoming the first human in space."),
    ("1969-07-20", "The Apollo 11 lunar module landed on the Moon today, and Neil Armstrong became the first person to walk on its surface."),
    ("1989-11-09", "The border crossings in the Berlin Wall were opened tonight, and crowds poured into West Berlin."),
    ("1990-04-24", "The Hubble Space Telescope was launched today aboard the Space Shuttle Discovery."),
    ("1994-05-10", "Nelson Mandela was inaugurated today as President of South Africa."),
    ("1998-11-20", "Zarya, the first module of the International Space Station, was launched today from Baikonur."),
    ("2004-02-04", "A new website called Thefacebook was launched today by students at Harvard University."),
    ("2007-01-09", "Steve Jobs introduced the first iPhone today at the Macworld conference in San Francisco."),
    ("2012-08-06", "NASA's Curiosity rover landed safely in Gale Crater on Mars today."),
]


def random_day(r: random.Random) -> datetime.date:
    return datetime.date(2015, 1, 1) + datetime.timedelta(days=r.randrange(3653))


def dated(text: str, day: datetime.date, by_url: bool, slug: str) -> Document:
    if by_url:
        return {"text": text, "url": f"https://news.example.com/{day:%Y/%m/%d}/{slug}"}
    return {"text": text, "date": day.isoformat()}


# --- WikiSearch / QA --------------------------------------------------------------------------------

CAPITALS = [
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Portugal", "Lisbon"),
    ("Belgium", "Brussels"), ("Austria", "Vienna"), ("Poland", "Warsaw"), ("the Czech Republic", "Prague"),
    ("Hungary", "Budapest"), ("Greece", "Athens"), ("Sweden", "Stockholm"), ("Norway", "Oslo"),
    ("Denmark", "Copenhagen"), ("Finland", "Helsinki"), ("Ireland", "Dublin"), ("the United Kingdom", "London"),
    ("Iceland", "Reykjavík"), ("Russia", "Moscow"), ("Turkey", "Ankara"), ("Japan", "Tokyo"), ("China", "Beijing"),
    ("India", "New Delhi"), ("South Korea", "Seoul"), ("Thailand", "Bangkok"), ("Vietnam", "Hanoi"),
    ("Iran", "Tehran"), ("Saudi Arabia", "Riyadh"), ("Egypt", "Cairo"), ("Kenya", "Nairobi"), ("Nigeria", "Abuja"),
    ("Morocco", "Rabat"), ("Ethiopia", "Addis Ababa"), ("Ghana", "Accra"), ("Canada", "Ottawa"),
    ("the United States", "Washington, D.C."), ("Mexico", "Mexico City"), ("Cuba", "Havana"), ("Brazil", "Brasília"),
    ("Argentina", "Buenos Aires"), ("Chile", "Santiago"), ("Peru", "Lima"), ("Colombia", "Bogotá"),
    ("Australia", "Canberra"), ("New Zealand", "Wellington"),
]  # fmt: skip
CAPITAL_TEMPLATES = [
    "{capital} is the capital of {country}.",
    "The capital of {country} is {capital}.",
    "In {country}, the capital city is {capital}.",
]

RIVER_MOUTHS = [
    ("Nile", "the Mediterranean Sea"), ("Danube", "the Black Sea"), ("Rhine", "the North Sea"),
    ("Thames", "the North Sea"), ("Seine", "the English Channel"), ("Amazon", "the Atlantic Ocean"),
    ("Volga", "the Caspian Sea"), ("Yangtze", "the East China Sea"), ("Ganges", "the Bay of Bengal"),
    ("Mekong", "the South China Sea"), ("Rhône", "the Mediterranean Sea"), ("Elbe", "the North Sea"),
    ("Zambezi", "the Indian Ocean"), ("Congo", "the Atlantic Ocean"), ("Loire", "the Atlantic Ocean"),
    ("Vistula", "the Baltic Sea"), ("Po", "the Adriatic Sea"), ("Indus", "the Arabian Sea"),
    ("Dnipro", "the Black Sea"), ("Yukon", "the Bering Sea"),
]  # fmt: skip
CITY_RIVERS = [
    ("Budapest", "Danube"), ("Vienna", "Danube"), ("Bratislava", "Danube"), ("Paris", "Seine"), ("London", "Thames"),
    ("Cairo", "Nile"), ("Cologne", "Rhine"), ("Basel", "Rhine"), ("Warsaw", "Vistula"), ("Prague", "Vltava"),
    ("Rome", "Tiber"), ("Dresden", "Elbe"), ("Hamburg", "Elbe"), ("Baghdad", "Tigris"), ("Kyiv", "Dnipro"),
    ("New Orleans", "Mississippi"),
]  # fmt: skip

FACTS = [
    # people
    "Marie Curie was born in Warsaw in 1867 and won Nobel Prizes in physics (1903) and chemistry (1911).",
    "Albert Einstein was born in Ulm in 1879 and was awarded the 1921 Nobel Prize in Physics.",
    "Isaac Newton published his Principia, which set out the laws of motion and universal gravitation, in 1687.",
    "Ada Lovelace published her notes on Charles Babbage's Analytical Engine in 1843.",
    "Charles Darwin published On the Origin of Species in 1859.",
    "William Shakespeare was born in Stratford-upon-Avon in 1564.",
    "Leonardo da Vinci painted the Mona Lisa, which now hangs in the Louvre in Paris.",
    "Wolfgang Amadeus Mozart was born in Salzburg in 1756.",
    "Nelson Mandela, who spent 27 years in prison, became President of South Africa in 1994.",
    "Galileo Galilei discovered the four largest moons of Jupiter in 1610.",
    "Frida Kahlo, the Mexican painter, was born in Coyoacán in 1907.",
    "Alan Turing described what is now called the Turing machine in a paper published in 1936.",
    "Johann Sebastian Bach was born in Eisenach in 1685.",
    "Ludwig van Beethoven was born in Bonn in 1770.",
    "Mahatma Gandhi led the Salt March to the coastal village of Dandi in 1930.",
    "Dmitri Mendeleev published his periodic table of the elements in 1869.",
    "Nicolaus Copernicus's book On the Revolutions of the Heavenly Spheres was published in 1543.",
    "Jane Austen's novel Pride and Prejudice was first published in 1813.",
    "The first part of Miguel de Cervantes's Don Quixote was published in 1605.",
    "Amelia Earhart became the first woman to fly solo across the Atlantic Ocean in 1932.",
    "Louis Pasteur was born in Dole, France, in 1822.",
    "Rosalind Franklin's X-ray image known as Photo 51, taken in 1952, helped reveal the structure of DNA.",
    "Florence Nightingale was born in Florence, Italy, in 1820, and was named after the city.",
    "Nikola Tesla was born in 1856 in Smiljan, in present-day Croatia.",
    "Gregor Mendel published his experiments on the inheritance of traits in pea plants in 1866.",
    "Vincent van Gogh painted The Starry Night in 1889.",
    "Johannes Kepler published his first two laws of planetary motion in 1609.",
    # inventions and discoveries
    "The telephone was patented by Alexander Graham Bell in 1876.",
    "Thomas Edison invented the phonograph in 1877.",
    "Johannes Gutenberg built a printing press with movable metal type around 1440.",
    "Alfred Nobel patented dynamite in 1867.",
    "James Watt patented his separate condenser for the steam engine in 1769.",
    "Alexander Fleming discovered penicillin in 1928.",
    "Eli Whitney invented the cotton gin in 1793.",
    "Edward Jenner tested the first smallpox vaccine in 1796.",
    "Wilhelm Röntgen discovered X-rays in 1895.",
    "Hans Lippershey applied for a patent on a telescope in 1608.",
    "Christiaan Huygens built the first pendulum clock in 1656.",
    "Alessandro Volta built the first electric battery, the voltaic pile, in 1800.",
    "Louis Braille developed his reading system for blind people in 1824.",
    "Daniel Gabriel Fahrenheit invented the mercury thermometer in 1714.",
    "Richard Trevithick's steam locomotive made the first railway journey pulled by steam in 1804.",
    "Samuel Morse sent the telegraph message \"What hath God wrought\" from Washington to Baltimore in 1844.",
    "Tim Berners-Lee proposed the World Wide Web at CERN in 1989.",
    # the world
    "Mount Everest, at 8,849 metres, is the highest mountain on Earth above sea level.",
    "At sea level, water boils at 100 degrees Celsius.",
    "The Pacific is the largest and deepest of Earth's oceans.",
    "Jupiter is the largest planet in the Solar System.",
    "Light travels at 299,792,458 metres per second in a vacuum.",
    "A year on Mars lasts about 687 Earth days.",
    "An adult human skeleton usually has 206 bones.",
    "The Eiffel Tower in Paris was completed in 1889 for the World's Fair.",
    "Canberra was chosen as the capital of Australia as a compromise between Sydney and Melbourne.",
    "The Moon orbits the Earth about once every 27.3 days.",
    "Oxygen makes up about 21 percent of the air in Earth's atmosphere.",
    "The chemical symbol of gold is Au, from the Latin word aurum.",
    "Antarctica is the coldest continent on Earth.",
    "Khartoum lies where the Blue Nile and the White Nile meet.",
    "Lyon lies where the Rhône and the Saône meet.",
    "Belgrade lies where the Sava flows into the Danube.",
]

# --- MT: short non-English chunks inside English text -----------------------------------------------

FOREIGN = [
    'The sign on the bakery door read "Fermé le dimanche et les jours fériés", so we came back on Monday morning.',
    'Every morning the teacher greeted the class with "Bonjour à tous, ouvrez vos livres à la page dix", and the lesson began.',
    'The waiter asked "Vous avez choisi ce que vous allez prendre ?" before we had even opened the menu.',
    'On the platform a voice announced "Le train à destination de Lyon partira avec vingt minutes de retard", and people sighed.',
    'The note on the kitchen table said "Je suis parti faire des courses, je reviens dans une heure".',
    'A small plaque at the museum entrance reads "Il est interdit de prendre des photos avec flash dans les salles".',
    'Her favourite line from The Little Prince is "On ne voit bien qu\'avec le cœur. L\'essentiel est invisible pour les yeux".',
    'The guide told us that "La tour Eiffel a été construite pour l\'Exposition universelle de 1889", which explains its age.',
    'The label on the jar said "À conserver au réfrigérateur après ouverture", so I put it in the fridge.',
    'My pen pal from Nice wrote "Il fait très beau ici, nous allons à la plage demain" in her last letter.',
    'The parking meter said "Paiement obligatoire du lundi au samedi de neuf heures à dix-neuf heures".',
    'My grandmother liked to say "Wer nicht wagt, der nicht gewinnt", meaning that you have to take risks to succeed.',
    'The sign in the park said "Bitte den Rasen nicht betreten", so the children played on the path instead.',
    'At the hotel reception we were told "Das Frühstück wird von sieben bis zehn Uhr serviert", so we went to bed early.',
    'The conductor announced "Nächster Halt: Hauptbahnhof, Ausstieg in Fahrtrichtung rechts" as the train slowed down.',
    'A note on the office door said "Wir sind gleich zurück, bitte warten Sie hier", so we sat down.',
    'The recipe card said "Den Teig eine Stunde an einem warmen Ort ruhen lassen" before baking.',
    'The weather report warned "Morgen wird es im ganzen Land stark regnen und stürmen", so the match was postponed.',
    'The choral finale of Beethoven\'s Ninth Symphony sets the poem by Schiller that begins "Freude, schöner Götterfunken, Tochter aus Elysium".',
    'The museum guide said "Die Mauer fiel am neunten November neunzehnhundertneunundachtzig", and the group fell silent.',
    'The label on the medicine bottle said "Vor Gebrauch schütteln und kühl lagern".',
    'At the station the announcement said "El tren con destino a Sevilla sale del andén tres", and everyone hurried to platform three.',
    'The shop window had a sign reading "Cerrado por vacaciones hasta el lunes", so we went elsewhere.',
    'Our host smiled and said "Mi casa es su casa, quédense todo el tiempo que quieran" as we arrived.',
    'Don Quixote opens with the words "En un lugar de la Mancha, de cuyo nombre no quiero acordarme".',
    'The doctor told him "Tiene que beber más agua y descansar unos días" before he left the clinic.',
    'The menu said "La paella de mariscos es la especialidad de la casa", so we ordered it.',
    'A poster at the school read "La biblioteca abre de nueve de la mañana a cinco de la tarde".',
    'My Spanish teacher always said "Poco a poco se va lejos", reminding us that steady work pays off.',
    'The tour guide explained that "La Sagrada Familia fue diseñada por Antoni Gaudí", whose construction began in 1882.',
    'Her text message said "Llego tarde, el tráfico está horrible esta mañana", so we started the meeting without her.',
]


def documents(r: random.Random) -> Iterator[tuple[str, Document]]:
    """(id prefix, document) in file order."""
    for _ in range(9):
        for template in CALCULATOR:
            yield "calc", {"text": template(r)}
    for day, text in TODAY_IN_HISTORY:
        yield "date", {"text": text, "date": day}
    count = 0
    while count < 60:
        template = CALENDAR[count % len(CALENDAR)]
        day = random_day(r)
        if (text := template(day, r)) is not None:
            yield "date", dated(text, day, by_url=count % 2 == 1, slug=template.__name__.replace("_", "-"))
            count += 1
    for i, (country, capital) in enumerate(CAPITALS):
        yield "fact", {"text": CAPITAL_TEMPLATES[i % len(CAPITAL_TEMPLATES)].format(country=country, capital=capital)}
    for river, sea in RIVER_MOUTHS:
        yield "fact", {"text": f"The {river} flows into {sea}."}
    for city, river in CITY_RIVERS:
        yield "fact", {"text": f"{city} lies on the {river}."}
    for text in FACTS:
        yield "fact", {"text": text}
    for text in FOREIGN:
        yield "mt", {"text": text}


def render() -> str:
    counters: dict[str, int] = {}
    lines = []
    for prefix, document in documents(random.Random(SEED)):
        counters[prefix] = counters.get(prefix, 0) + 1
        lines.append(json.dumps({"id": f"{prefix}-{counters[prefix]:03d}", **document}, ensure_ascii=False))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    out = parser.parse_args().out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(), encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
