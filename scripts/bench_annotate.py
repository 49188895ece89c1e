"""Annotation speed beside a straightforward transformers implementation of the same stages.

Both annotate the same documents of the shipped corpus with the embedded default model and the same
k and m: jtoolformer's pipeline, and a PyTorch one that does one forward per document to find
positions, one `generate` per kept position (m samples) and one forward per candidate and variant
to filter. jtoolformer's documents/s is the steady state of a long corpus run, where every padded
shape is already compiled: a second pass over the same documents (nothing but compiled programs and
the tool's prefilled few-shot head carries over). The first pass, which compiles, is reported beside
it. Also reports the filter stage's compiled temporary memory for two vocabulary sizes, which should
not grow with the vocabulary.
Writes JSON (--out).

    python scripts/bench_annotate.py --docs 16 --out scripts/results/bench_annotate.json
    python scripts/bench_annotate.py --docs 64 --batch-docs 16 --out scripts/results/bench_annotate_64.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import torch
import transformers

from jtoolformer import load_model
from jtoolformer.annotate.candidates import SENTINEL, cut_call
from jtoolformer.annotate.filter import WEIGHTS, Scorer, ScoreRequest, score_program
from jtoolformer.annotate.pipeline import AnnotateConfig, Annotator
from jtoolformer.checkpoints.gguf import default_gguf_path
from jtoolformer.data.corpus import DEMO_CORPUS
from jtoolformer.data.documents import read_jsonl
from jtoolformer.generate.call_tokens import api_start_ids, call_stop_ids
from jtoolformer.models import ModelConfig
from jtoolformer.tools.base import ToolContext
from jtoolformer.tools.calls import clean_result, format_call, parse_partial_call
from jtoolformer.tools.registry import make_tools


def naive_annotate(model, tok, tool, docs, k: int, m: int, max_call_tokens: int) -> tuple[int, int]:
    """The same stages, the plain way. Returns the numbers of candidates scored and kept."""
    api = api_start_ids(tok)
    stops = set(call_stop_ids(tok))
    bos = [tok.bos_id] if tok.bos_id is not None else []
    scored = kept = 0
    head_text, tail_text = tool.render_prompt(SENTINEL).split("Input: " + SENTINEL)
    for doc in docs:
        x = tok.encode(doc["text"])
        prefix = bos + tok.encode(head_text) + tok.encode("Input: " + doc["text"] + tail_text) + tok.encode(" " + doc["text"])
        start = len(prefix) - len(x)
        with torch.no_grad():
            probs = torch.softmax(model(torch.tensor([prefix])).logits[0], -1)
        p = probs[:, api].sum(-1).numpy()
        cand = sorted(range(1, len(x)), key=lambda i: -p[start + i - 1])[:k]
        cand = [i for i in cand if p[start + i - 1] > tool.sampling.position_threshold]
        for i in cand:
            ids = torch.tensor([prefix[: start + i] + [api[0]]])
            with torch.no_grad():
                out = model.generate(ids, do_sample=True, num_return_sequences=m, max_new_tokens=max_call_tokens,
                                     eos_token_id=list(stops), pad_token_id=0)
            for row in out[:, ids.shape[1]:]:
                call = parse_partial_call(cut_call(tok.decode([api[0], *row.tolist()])), [tool.name])
                if call is None:
                    continue
                result = clean_result(tool(call.input, ToolContext.from_metadata(doc)))
                if not result:
                    continue
                losses = []
                for z in (format_call(call, result), format_call(call, ""), ""):
                    seq = bos + (tok.encode(z) if z else []) + x
                    with torch.no_grad():
                        logp = torch.log_softmax(model(torch.tensor([seq])).logits[0], -1)
                    s = len(seq) - len(x)
                    losses.append(-sum(WEIGHTS[t] * float(logp[s + i + t - 1, x[i + t]])
                                       for t in range(5) if i + t < len(x)))
                scored += 1
                kept += int(min(losses[1], losses[2]) - losses[0] >= tool.sampling.filter_threshold)
    return scored, kept


def filter_temp_bytes(vocab: int) -> int:
    """Compiled temporary memory of the filter's scoring step for a tiny model with this vocabulary."""
    cfg = ModelConfig(arch="gptj", vocab_size=vocab, d_model=64, n_layers=2, n_heads=4, rotary_dim=8,
                      max_positions=256, bos_id=0)
    lm = load_model(cfg)
    scorer = Scorer(lm, max_rows=32)
    requests = [ScoreRequest((1, 2, 3 + n), tuple(range(4, 100)), 5) for n in range(32)]
    segments, used = scorer._segments(requests)
    rows = scorer._pack([len(s.tokens) for s in segments], scorer.row_length)
    arrays = scorer._arrays(segments, rows, list(zip(used, requests)), scorer.row_length)
    compiled = score_program.lower(scorer.model, lm.params, *arrays).compile()
    return int(compiled.memory_analysis().temp_size_in_bytes)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=16)
    parser.add_argument("--batch-docs", type=int, default=0, help="documents per batch (default: all in one)")
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--m", type=int, default=3)
    parser.add_argument("--out", default="scripts/results/bench_annotate.json")
    args = parser.parse_args()

    docs = [d for d in read_jsonl(Path(DEMO_CORPUS)) if d["id"].startswith("calc-")][: args.docs]
    lm = load_model()
    tools = make_tools("calculator")
    cfg = AnnotateConfig(positions_per_doc=args.k, calls_per_position=args.m, batch_docs=args.batch_docs or args.docs)
    # the reference runs first, as it would alone: the Annotator changes glibc's allocation settings
    # for the whole process (host_memory.map_large_blocks_alone)
    path = default_gguf_path()
    torch.manual_seed(0)
    ref = transformers.LlamaForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    start = time.perf_counter()
    naive_scored, naive_kept = naive_annotate(ref, lm.tokenizer, tools["Calculator"], docs, args.k, args.m, cfg.max_call_tokens)
    naive = time.perf_counter() - start
    del ref

    annotator = Annotator(lm, tools, cfg)
    start = time.perf_counter()
    first_records = annotator.annotate(docs).records
    first_pass = time.perf_counter() - start
    start = time.perf_counter()
    annotation = annotator.annotate(docs)
    records, stats = annotation.records, annotation.stats
    ours = time.perf_counter() - start
    assert records == first_records  # the same work, done again
    ours_scored = stats["Calculator"].executed

    small, large = filter_temp_bytes(8192), filter_temp_bytes(65536)
    result = {
        "documents": len(docs), "batch_docs": cfg.batch_docs, "k": args.k, "m": args.m,
        "docs_per_s": len(docs) / ours, "docs_per_s_naive_transformers": len(docs) / naive,
        "speedup_docs_per_s": naive / ours,
        "first_pass_docs_per_s": len(docs) / first_pass,
        "first_pass_speedup": naive / first_pass,
        "candidates_scored_per_s": ours_scored / ours, "candidates_scored_per_s_naive": naive_scored / naive,
        "kept": stats["Calculator"].kept["tool"], "kept_naive": naive_kept,
        "filter_temp_bytes_vocab_8192": small, "filter_temp_bytes_vocab_65536": large,
        "jax_devices": [str(d) for d in jax.devices()],
    }
    print(json.dumps(result, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
