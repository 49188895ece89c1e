"""Documents are batched by the length of their tails, and the annotation does not depend on that."""

import dataclasses

from test_candidates import tiny_lm, tokenizer  # noqa: F401 (a fixture)

from jtoolformer.annotate.pipeline import AnnotateConfig, Annotator
from jtoolformer.tools.registry import make_tools

TEXTS = [
    "Out of 1400 participants, 400 passed.",
    "The school ordered 18 boxes of 10 pencils, so it got 180 pencils for its 12 classes, 15 each, and 0 were left.",
    "She had 12 apples and ate 5, so 7 remain.",
    "A train covers 120 km in 2 hours at 60 km per hour; a car covers 150 km in 3 hours, 50 km per hour, 10 less.",
    "Tom paid 3 times 4 dollars, 12 in all.",
    "In 4 weeks of 7 days there are 28 days, and 28 days of 24 hours are 672 hours.",
]


def test_batches_follow_tail_length_and_outputs_stay_in_document_order(tokenizer, tmp_path):  # noqa: F811
    lm = tiny_lm(tokenizer, api_bias=4.0, seed=1)
    docs = [{"id": f"doc{k}", "text": t} for k, t in enumerate(TEXTS)]
    prompt = tmp_path / "calculator.txt"  # short, for the tiny model's 512 positions
    prompt.write_text("Add calls.\nInput: 2 + 2 is 4.\nOutput: 2 + 2 is [Calculator(2 + 2)] 4.\n\nInput: {text}\nOutput:")
    cfg = AnnotateConfig(tools="calculator", positions_per_doc=2, calls_per_position=2, max_call_tokens=8,
                         filter_threshold=-100.0, batch_docs=2, prompts=f"calculator={prompt}")
    paired = Annotator(lm, make_tools("calculator"), cfg)
    sampler, tails = paired.samplers["Calculator"], []
    positions = sampler.positions
    sampler.positions = lambda batch, *a, **kw: (tails.append([len(d.tail) for d in batch])
                                                 or positions(batch, *a, **kw))
    by_two = paired.annotate(docs)
    whole = Annotator(lm, make_tools("calculator"), dataclasses.replace(cfg, batch_docs=len(docs))).annotate(docs)

    lengths = [n for batch in tails for n in batch]
    assert len(tails) == 3 and lengths == sorted(lengths) and lengths != [len(tails[0])] * 6

    def in_document_order(ids):
        return ids == sorted(ids, key=lambda i: int(i[3:]))

    assert in_document_order([c.id for c in by_two.candidates]) and in_document_order([p["id"] for p in by_two.positions])

    def calls(annotation):
        return [(c.id, c.i, c.sample, c.text, c.result, c.outcome) for c in annotation.candidates]

    assert calls(by_two) == calls(whole) and len(by_two.candidates) > 10
