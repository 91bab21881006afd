"""System prompts: every one kept from the raw record, and shown to the rewriter as a binding context."""

import json
from pathlib import Path

from conftest import run_script
from realign.convert import load_any
from realign.prompts import build_rewrite_messages
from realign.records import write_records
from tests.servers.openai_fake import OpenAIFake

CASES = Path(__file__).parent / "fixtures" / "cases"


def test_the_prompt_carries_the_system_prompt_and_the_rule_to_obey_it():
    with_system = build_rewrite_messages("open_qa", "Capital of Italy?", "Rome.", system="Always answer in French.")
    text = with_system[1]["content"]
    assert "[System prompt the answer was written under]\nAlways answer in French.\n" in text
    assert "must keep obeying the system prompt above" in text
    assert text.index("Always answer in French.") < text.index("[Request]")
    plain = build_rewrite_messages("open_qa", "Capital of Italy?", "Rome.")[1]["content"]
    assert "System prompt" not in plain and "system prompt" not in plain
    assert build_rewrite_messages("open_qa", "q", "a", system="  ")[1]["content"] == \
        build_rewrite_messages("open_qa", "q", "a")[1]["content"]


def test_both_system_prompts_reach_the_rewriter(tmp_path):
    records, fmt = load_any(CASES / "sharegpt_system_both.json")
    for rec in records:
        rec["items"][0]["category"] = "open_qa"
    inp = tmp_path / "in.json"
    write_records(inp, records)
    with OpenAIFake(latency=0.01) as srv:
        r = run_script("reformat.py", "--input_data_path", inp, "--output_directory", tmp_path / "out",
                       "--base_url", f"{srv.url}/v1", "--quiet", "--no_retrieval", env={"OPENAI_API_KEY": ""})
        prompts = {}
        for req in srv.requests:
            user = json.loads(req["body"])["messages"][-1]["content"]
            prompts["Italy" in user] = user
    assert r.returncode == 0, r.stderr
    assert "You are a terse assistant.\n\nAlways answer in French.\n" in prompts[True]
    assert "You are a terse assistant.\n" in prompts[False] and "French" not in prompts[False]
