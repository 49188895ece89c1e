"""End to end on SmolLM2: the model writes a call itself; the command line streams text and calls."""

import argparse

from jtoolformer.generate.cli import add_generate_command
from jtoolformer.generate.session import ToolGenerator
from jtoolformer.tools.base import ToolContext
from jtoolformer.tools.calculator import Calculator

FEW_SHOT = ("Out of 1400 participants, 400 (or [Calculator(400 / 1400) -> 0.29] 29%) passed. Of 2500 apples, "
            "300 [Calculator(300 / 2500) -> 0.12] 12% were bad. Of 800 cars, 200 were red, which is")


def test_the_model_writes_a_call_and_its_result_is_put_in_place(smollm):
    [out] = ToolGenerator(smollm, {"Calculator": Calculator()})([FEW_SHOT], max_new_tokens=24)
    [call] = out.calls
    assert call.tool == "calculator" and call.status == "ok"
    assert call.result == Calculator()(call.input, ToolContext()) != ""
    assert out.text[call.position:].startswith(f"[Calculator({call.input}) -> {call.result}]")


def test_command_line_streams_text_and_lists_calls(smollm, monkeypatch, capsys):
    monkeypatch.setattr("jtoolformer.generate.cli.load_from_args", lambda args: smollm)
    parser = argparse.ArgumentParser()
    add_generate_command(parser.add_subparsers())
    prompt = "Out of 1400 participants, 400 passed the test, that is [Calculator(400 / 1400) ->"
    args = parser.parse_args(["generate", prompt, "--tools", "calculator", "--max-new-tokens", "4"])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(prompt + " 0.29]")
    assert "call calculator(400 / 1400) -> '0.29'  [ok," in printed
