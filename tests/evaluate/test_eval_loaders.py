import datetime
import json
import shutil
from pathlib import Path
from unittest import mock

import pytest

from jtoolformer.evaluate.tasks import TASKS, DataSources, MissingDataError, resolve_tasks
from jtoolformer.evaluate.tasks.lama import text_before_final_mask
from jtoolformer.evaluate.tasks.perplexity import split_wikitext_articles

LAMA = "Please complete the following text so that it is factually correct: "
QA = "Answer the following question: "


def _load(name: str, sources: DataSources) -> list:
    return list(TASKS[name].load(sources))


def resolve_tasks_names(spec: str) -> list[str]:
    return [task.name for task in resolve_tasks(spec)]


@pytest.mark.parametrize(
    ("statement", "prefix"),
    [
        ("Ada was born in [MASK] .", "Ada was born in"),
        ("Ada was born in [MASK].", "Ada was born in"),
        ("Ada was born in [MASK]", "Ada was born in"),
        ("the [MASK] color was used.", None),
        ("Ada (born [MASK]).", None),
        ("Belissen remained in [MASK]s until his death .", None),
        ("[MASK] .", None),
        ("[MASK] and [MASK] .", None),
    ],
)
def test_text_before_final_mask(statement: str, prefix: str | None) -> None:
    assert text_before_final_mask(statement) == prefix


def test_lama_squad_keeps_only_mask_final_sentences(sources: DataSources) -> None:
    examples = _load("lama_squad", sources)
    assert [e.id for e in examples] == ["fx0001_0", "fx0002_0"]  # fx0003_0's mask is mid-sentence
    assert examples[0].prompt == LAMA + "The Normans gave their name to"
    assert examples[0].answers == ("Normandy",)


def test_lama_google_re_uses_relation_templates(sources: DataSources) -> None:
    examples = _load("lama_google_re", sources)
    # date_of_birth's template "[X] (born [Y])." does not end in the mask.
    assert [(e.id, e.prompt, e.answers) for e in examples] == [
        ("gre-pob-1", LAMA + "Ada Example was born in", ("Lyon",)),
        ("gre-pob-2", LAMA + "Bo Sample was born in", ("Bergen",)),
        ("gre-pod-1", LAMA + "Di Dummy died in", ("Madrid",)),
    ]


def test_lama_trex_uses_relations_jsonl_templates(sources: DataSources) -> None:
    examples = _load("lama_trex", sources)
    # P190's template "[X] and [Y] are twin cities ." does not end in the mask.
    assert [(e.id, e.prompt, e.answers) for e in examples] == [
        ("trex-p19-1", LAMA + "Jean Fixture was born in", ("Paris",)),
        ("trex-p19-2", LAMA + "Greta Probe was born in", ("Berlin",)),
        ("trex-p36-1", LAMA + "The capital of Denmark is", ("Copenhagen",)),
    ]


def test_asdiv_keeps_fraction_answers(tmp_path: Path) -> None:
    (tmp_path / "math").mkdir()
    problems = "".join(
        f'<Problem ID="{i}"><Body>b</Body><Question>q</Question><Answer>{answer}</Answer></Problem>'
        for i, answer in enumerate(["5/2 (cups)", "7/9", "3:4", "1,200 (pencils)"])
    )
    (tmp_path / "math" / "ASDiv.xml").write_text(f"<Corpus><ProblemSet>{problems}</ProblemSet></Corpus>")
    assert [e.answers for e in _load("asdiv", DataSources(tmp_path))] == [("5/2",), ("7/9",), ("1,200",)]


def test_math_loaders(sources: DataSources) -> None:
    asdiv = _load("asdiv", sources)
    assert [(e.id, e.answers) for e in asdiv] == [
        ("nluds-fx01", ("9",)),
        ("nluds-fx02", ("75",)),
    ]  # 3:2 skipped
    assert asdiv[0].prompt == (
        "Seven red apples and two green apples are in the basket. "
        "How many apples are in the basket? The answer is"
    )
    svamp = _load("svamp", sources)
    assert [(e.id, e.answers) for e in svamp] == [("chal-fx1", ("51.0",)), ("chal-fx2", ("12.5",))]
    assert svamp[0].prompt.startswith("Each pack of markers costs 76 dollars. If there")
    assert svamp[0].prompt.endswith(
        "each pack How much do you have to pay to buy each pack? The answer is"
    )
    mawps = _load("mawps", sources)
    # AddSub-2 has two solutions (a system of equations) and is skipped.
    assert [(e.id, e.answers) for e in mawps] == [
        ("AddSub-1", ("43.0",)),
        ("SingleOp-7", ("24.0",)),
    ]
    assert mawps[1].prompt == (
        "Sara has 3 bags with 8 marbles in each bag . "
        "How many marbles does Sara have ? The answer is"
    )


def test_qa_release_files(sources: DataSources) -> None:
    webqs = _load("webqs", sources)
    assert [(e.prompt, e.answers) for e in webqs] == [
        (QA + "what is the name of fixture one's siblings?", ("Jazmyn Example", "Jaxon Example")),
        (QA + "what language do they speak in fixture land?", ("Spanish",)),  # "?" appended
        (QA + "who did fixture actor play in star wars?", ("Padmé Amidala",)),
    ]
    nq = _load("nq", sources)
    assert nq[0].answers == ("14 December 1972 UTC", "December 1972")
    assert nq[1].prompt == QA + "who wrote the fixture anthem?"
    trivia = _load("triviaqa", sources)
    assert trivia[0].answers == ("Sunset Boulevard", "Sunset Blvd")
    assert trivia[1].prompt == QA + "Which dwarf planet was discovered in 1930?"


def test_qa_reads_a_prepared_tfds_dataset(sources: DataSources, tmp_path: Path) -> None:
    # Building (not reading) a TFDS dataset imports this undeclared dependency of tfds.
    pytest.importorskip("importlib_resources", reason="tfds needs it to build the fixture dataset")
    import tensorflow_datasets as tfds
    import tensorflow_datasets.question_answering  # noqa: F401  registers web_questions

    release = sources.data_dir / "qa" / "webquestions.examples.test.json"
    with mock.patch.object(
        tfds.download.DownloadManager,
        "download",
        lambda self, urls: {split: release for split in urls},
    ):
        tfds.builder(
            "web_questions", data_dir=sources.tfds_data_dir, file_format="array_record"
        ).download_and_prepare()
    # The release file is gone: the examples can only come from TFDS.
    no_release = DataSources(tmp_path / "no-release", sources.tfds_data_dir)
    from_tfds = {(e.prompt, e.answers) for e in _load("webqs", no_release)}
    assert from_tfds == {(e.prompt, e.answers) for e in _load("webqs", sources)}


def test_mlqa_has_six_languages_with_english_context(sources: DataSources) -> None:
    counts = {name: len(_load(name, sources)) for name in resolve_tasks_names("mlqa")}
    assert counts == {
        "mlqa_es": 2,
        "mlqa_de": 1,
        "mlqa_hi": 1,
        "mlqa_vi": 1,
        "mlqa_zh": 1,
        "mlqa_ar": 1,
    }
    es = _load("mlqa_es", sources)
    assert es[0].prompt == (
        "Your task is to answer a question based on the following paragraph: Fixtureville is a "
        "small city on the banks of the Fixture River. It was founded in 1642 by settlers. Now "
        "answer the following question in English: ¿Qué río atraviesa la ciudad?"
    )
    assert es[0].answers == ("the Fixture River", "Fixture River")
    assert _load("mlqa_zh", sources)[0].prompt.endswith("哪条河流经这座城市？")


def test_templama_sets_a_calendar_date_in_the_query_year(sources: DataSources) -> None:
    examples = _load("templama", sources)
    assert [(e.prompt, e.answers) for e in examples] == [  # "_X_ is the head coach ..." dropped
        (LAMA + "Valentino Fixture plays for", ("Yamaha Motor Racing",)),
        (LAMA + "Cristiano Fixture plays for", ("Real Madrid CF", "Real Madrid")),
    ]
    assert [e.calendar_date.year for e in examples] == [2010, 2013]
    assert examples == _load("templama", sources)  # the date depends on the example only


def test_dateset_task_uses_the_qa_prompt_and_current_dates(sources: DataSources) -> None:
    examples = _load("dateset", sources)
    assert len(examples) == 9400
    assert all(e.prompt.startswith(QA) and e.prompt.endswith("?") for e in examples)
    assert all(isinstance(e.calendar_date, datetime.date) for e in examples)


def test_perplexity_texts(sources: DataSources) -> None:
    articles = _load("wikitext", sources)
    assert len(articles) == 2  # " = = History = = " is a section, not an article
    assert articles[0].startswith("= Fixture Article One =") and articles[0].endswith(
        "It was written in 2026 ."
    )
    assert articles[1].startswith("= Second Fixture =")
    assert _load("ccnet", sources)[2] == "A third one, short."
    assert list(
        split_wikitext_articles(iter([" \n", " = A = \n", " x \n", " = B = \n", " y \n"]))
    ) == ["= A = \n x", "= B = \n y"]


@pytest.mark.parametrize(
    ("task", "missing", "hint"),
    [
        ("lama_squad", "lama/Squad/test.jsonl", "https://dl.fbaipublicfiles.com/LAMA/data.zip"),
        ("asdiv", "math/ASDiv.xml", "nlu-asdiv-dataset"),
        ("mawps", "math/mawps", "lSolutions"),
        (
            "webqs",
            "qa/webquestions.examples.test.json",
            "tfds build web_questions --file_format=array_record",
        ),
        ("mlqa_de", "mlqa/MLQA_V1/test/test-context-en-question-de.json", "MLQA_V1.zip"),
        ("templama", "templama/test.json", "templama/test.json"),
        ("wikitext", "perplexity/wiki.test.raw", "wikitext-103-raw-v1.zip"),
    ],
)
def test_missing_data_says_where_to_get_it(
    tmp_path: Path, task: str, missing: str, hint: str
) -> None:
    empty = DataSources(tmp_path / "data", tmp_path)
    with pytest.raises(MissingDataError) as error:
        _load(task, empty)
    assert str(tmp_path / "data" / missing) in str(error.value)
    assert hint in str(error.value)


def test_unknown_relation_template_is_an_error(tmp_path: Path) -> None:
    shutil.copytree(Path(__file__).parent / "fixtures" / "lama", tmp_path / "lama")
    (tmp_path / "lama" / "TREx" / "P999.jsonl").write_text(
        json.dumps({"uuid": "x", "sub_label": "A", "obj_label": "B"}) + "\n"
    )
    with pytest.raises(ValueError, match="P999"):
        _load("lama_trex", DataSources(tmp_path))


def test_resolve_tasks() -> None:
    assert resolve_tasks_names("lama, asdiv,lama_trex") == [
        "lama_squad",
        "lama_google_re",
        "lama_trex",
        "asdiv",
    ]
    assert resolve_tasks_names("temporal,perplexity") == [
        "templama",
        "dateset",
        "wikitext",
        "ccnet",
    ]
    with pytest.raises(ValueError, match="unknown task 'lamma'"):
        resolve_tasks("lamma")
