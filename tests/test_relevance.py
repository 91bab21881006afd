"""The evidence relevance floor: its rule, its precision and recall on our labelled pairs,
retrieval.py applying it to BM25 hits and Serper snippets alike, and the demo keeping its
good evidence."""

import json

import pytest

from conftest import ROOT, make_record, run_script, write_json
from realign.records import load_records
from realign.search.clean import NO_RESULT
from realign.search.relevance import (DEFAULT_MIN_RELEVANCE, RelevanceFloor, content_words, passage_score,
                                      precision_recall, relevance)
from tests.servers.serper_fake import SerperFake

PAIRS = ROOT / "bench" / "data" / "relevance_pairs.json"
CORPUS = ROOT / "datasets" / "corpus"
KEY = "serper-test-key-relevance"


def score(question, passage):
    return relevance(content_words(question), content_words(passage))


def passage(text, source="organic", title=""):
    return {"text": text, "source": source, "title": title, "link": ""}


# ---------------------------------------------------------------- the rule

def test_content_words_drop_stopwords_and_stem():
    assert content_words("Can you recommend some houseplants that are hard to kill?") == \
        {"recommend", "houseplant", "hard", "kill"}
    assert content_words("What is the speed of light?") == {"speed", "light"}  # "speed" keeps its "ed"


@pytest.mark.parametrize("question, text, kept", [
    ("How tall is Everest?", "Everest is 8,849 m.", True),               # "tall" is a weak word
    ("How tall is Everest?", "Tall Tales is an independent bookshop.", False),   # only the weak word
    ("Recommend a movie for a rainy Sunday.", "Often recommended classic novels include 1984.", False),
    ("Why is the sea salty?", "The Pacific is the largest ocean; its floor lies below sea level.", False),  # 1 of 2
    ("Why is the sea salty?", "Rivers carry salts to the sea, so the oceans became salty.", True),
    ("Which river is the longest in Africa?", "The Nile is the longest river in Africa.", True),
    ("Why are lawyers stereotyped as dishonest?", "Yawning cools the brain.", False),
])
def test_floor_keeps_on_topic_and_drops_off_topic(question, text, kept):
    assert (score(question, text) >= DEFAULT_MIN_RELEVANCE) is kept


def test_passages_about_something_else_are_dropped_though_they_share_words():
    """A user's question drew a tea-brewing guide and the Pacific Ocean, both sharing 3 of its
    4 content words; their titles say they are about something else."""
    question = "what is the boiling point of water at altitude"
    tea = ("Brewing the perfect cup of tea", "Black tea wants water at a full boil. Green tea is best "
           "made with water just off the boil; past that point the leaves turn bitter.")
    ocean = ("Pacific Ocean", "The Pacific holds about half of Earth's free water. Its deepest point, the "
             "Challenger Deep, lies 10,935 m below sea level; its volcanic islands rise to altitudes of 4,000 m.")
    cooking = ("Cooking at high altitude", "Water boils at 100 C at sea level, but its boiling point falls "
               "by about 1 C for every 300 m climbed, so food cooks more slowly in the mountains.")
    assert score(question, tea[0] + "\n" + tea[1]) == score(question, ocean[0] + "\n" + ocean[1]) == 0.75
    assert passage_score(question, *tea) < DEFAULT_MIN_RELEVANCE
    assert passage_score(question, *ocean) < DEFAULT_MIN_RELEVANCE
    assert passage_score(question, *cooking) == 1.0
    # a namesake: the title's bracketed qualifier is not what the question asks about
    assert passage_score("Recommend a movie for a rainy Sunday.", "Rainy Sunday (song)",
                         "Rainy Sunday is a 1997 movie soundtrack single.") == 0.0
    # the answer's name as title: "mount" begins "mountain", so the title is on topic
    assert passage_score("What is the tallest mountain in Africa?", "Mount Kilimanjaro",
                         "Kilimanjaro, in Tanzania, is the highest mountain in Africa.") >= DEFAULT_MIN_RELEVANCE


def test_text_without_spaces_is_matched_by_character_pairs():
    assert score("天空为什么是蓝色的？", "天空是蓝色的，因为空气散射蓝光。") >= DEFAULT_MIN_RELEVANCE
    assert score("天空为什么是蓝色的？", "长城是中国古代的防御工程。") == 0.0


def test_score_is_absolute_and_bounded():
    long_question = ("I'm planning two weeks in Japan with my parents. Is the Japan Rail Pass worth buying "
                     "for trains between Tokyo, Kyoto and Osaka, or should we buy single tickets?")
    text = "A Japan Rail Pass covers most shinkansen trains between Tokyo, Kyoto and Osaka."
    assert score(long_question, text) == 1.0  # enough strong words covered: a long question is not penalised
    assert score("Why is the sky blue?", "") == 0.0 and score("", "anything") == 0.0


def test_split_scores_hits_passes_junk_and_floor_zero_keeps_all():
    hits = [passage("Everest is 8,849 m."), passage("Missing: tall"), passage(NO_RESULT, source="none"),
            passage("Tall Tales bookshop")]
    kept, dropped = RelevanceFloor().split("How tall is Everest?", hits)
    assert [h["text"] for h in kept] == ["Everest is 8,849 m.", "Missing: tall", NO_RESULT]
    assert kept[0]["score"] == 0.8 and [h["text"] for h in dropped] == ["Tall Tales bookshop"]
    assert dropped[0]["score"] == 0.0
    kept, dropped = RelevanceFloor(0).split("How tall is Everest?", hits)
    assert len(kept) == 4 and not dropped
    kept, dropped = RelevanceFloor().split("Who wrote Hamlet?", [passage("William Shakespeare", source="answerBox"),
                                                                 passage("William Shakespeare")])
    assert [h["source"] for h in kept] == ["answerBox"] and kept[0]["score"] == 0.0 and len(dropped) == 1


# ---------------------------------------------------------------- the labelled set

def test_labelled_pairs_precision_and_recall():
    pairs = json.loads(PAIRS.read_text(encoding="utf-8"))
    tuning = [p for p in pairs if p["set"] == "tuning"]
    questions = {p["question"] for p in tuning}
    traps = [q for q in questions if not any(p["relevant"] for p in tuning if p["question"] == q and p["source"] == "corpus")]
    assert len(tuning) >= 200 and {p["source"] for p in tuning} == {"corpus", "web"}
    assert len(traps) >= 15  # questions the shipped corpus does not cover: all their BM25 hits are off topic
    kept, precision, recall = precision_recall(tuning)
    assert precision >= 0.90 and recall >= 0.70, (kept, precision, recall)  # the goal, on the set it was set on
    _, before, _ = precision_recall(tuning, 0)  # no floor: what every hit was worth before
    assert before < 0.5


def test_held_out_pairs_do_not_regress():
    """Pairs written after the floor was fixed: namesakes without brackets keep precision just
    under the goal there (89.5 %, bench/README.md, relevance); this guards what it reaches."""
    held_out = [p for p in json.loads(PAIRS.read_text(encoding="utf-8")) if p["set"] == "held-out"]
    kept, precision, recall = precision_recall(held_out)
    assert len(held_out) >= 100 and precision >= 0.85 and recall >= 0.70, (kept, precision, recall)


# ---------------------------------------------------------------- retrieval.py

DEMO_RAG = {  # the demo's knowledge questions (datasets/demo), with the task classify.py gives them
    0: ("open_qa", "Mount Kilimanjaro"),
    1: ("how_to_generation", "Making cold brew coffee at home"),
    4: ("fact_verification", "Great Wall of China"),
    6: ("recommendations", "Houseplants that are hard to kill"),
    9: ("explain_answer", "Why the sky is blue"),
}


def test_demo_records_keep_their_good_evidence(tmp_path):
    demo = json.loads((ROOT / "datasets" / "demo" / "demo_alpaca.json").read_text(encoding="utf-8"))
    records = [make_record(i, r["instruction"], r["output"], cat=DEMO_RAG.get(i, ("default",))[0])
               for i, r in enumerate(demo)]
    out = tmp_path / "ret.json"
    p = run_script("retrieval.py", "--input_data_path", write_json(tmp_path / "in.json", records),
                   "--output_path", out, "--backend", "bm25", "--corpus_path", CORPUS)
    assert p.returncode == 0, p.stderr
    raw = {r["id"]: r["items"][0] for r in load_records(out)}
    clean = {r["id"]: r["items"][0] for r in load_records(tmp_path / "ret_clean_evidence.json")}
    for rid, (_, title) in DEMO_RAG.items():
        titles = [s["title"] for s in raw[rid]["evidence_sources"]]
        assert titles[0] == title, (rid, titles)
        assert all(s["score"] >= DEFAULT_MIN_RELEVANCE for s in raw[rid]["evidence_sources"])
        assert clean[rid]["evidence_scores"] == [s["score"] for s in raw[rid]["evidence_sources"]]
    assert "Classic novels worth reading" not in [s["title"] for s in raw[6]["evidence_sources"]]
    assert "Classic novels worth reading" in [d["title"] for d in raw[6]["evidence_dropped"]]
    assert "5 searched, 5 given evidence, 0 left without" in p.stdout
    assert p.stdout.strip().splitlines()[-1].startswith("retrieval (bm25): 12 records, 5 RAG-task: ")  # ends with it


def test_off_topic_question_gets_no_evidence_and_the_summary_says_so(tmp_path):
    records = [make_record("movie", "Recommend a movie for a rainy Sunday.", "Paddington 2.", cat="recommendations"),
               make_record("egg", "How do I boil an egg?", "Boil it.", cat="how_to_generation")]
    out = tmp_path / "ret.json"
    args = ("--input_data_path", write_json(tmp_path / "in.json", records), "--backend", "bm25",
            "--corpus_path", CORPUS)
    p = run_script("retrieval.py", *args, "--output_path", out)
    assert p.returncode == 0, p.stderr
    raw = {r["id"]: r["items"][0] for r in load_records(out)}
    clean = {r["id"]: r["items"][0] for r in load_records(tmp_path / "ret_clean_evidence.json")}
    assert raw["movie"]["evidence"] == [] and len(raw["movie"]["evidence_dropped"]) >= 3
    assert "evidence" not in clean["movie"] and "evidence_scores" not in clean["movie"]
    assert clean["egg"]["evidence"] and clean["egg"]["evidence_scores"][0] >= DEFAULT_MIN_RELEVANCE
    dropped = len(raw["movie"]["evidence_dropped"]) + len(raw["egg"].get("evidence_dropped", []))
    assert (f"2 searched, 1 given evidence, 1 left without (no hit over the floor {DEFAULT_MIN_RELEVANCE:g}), "
            f"{dropped} passages dropped by the floor") in p.stdout
    off = run_script("retrieval.py", *args, "--output_path", tmp_path / "off.json", "--min_relevance", 0)
    assert off.returncode == 0 and "2 given evidence, 0 left without" in off.stdout


def test_serper_snippets_meet_the_same_floor(tmp_path):
    reply = {"organic": [
        {"title": "Hamlet: Plot Summary", "snippet": "Prince Hamlet learns that his uncle murdered the king.", "link": "a"},
        {"title": "Hamlet (cigar brand)", "snippet": "A brand of British cigars.", "link": "b"},
        {"title": "Hamlet", "snippet": "A hamlet is a settlement smaller than a village.", "link": "c"}]}
    records = [make_record(1, "What is the plot of Hamlet?", "Revenge.", cat="open_qa")]
    out = tmp_path / "ret.json"
    with SerperFake(api_key=KEY, answers={"What is the plot of Hamlet?": reply}) as srv:
        p = run_script("retrieval.py", "--input_data_path", write_json(tmp_path / "in.json", records),
                       "--output_path", out, "--serper_url", srv.url + "/search", env={"SERPER_API_KEY": KEY})
    assert p.returncode == 0, p.stderr
    first = load_records(tmp_path / "ret_clean_evidence.json")[0]["items"][0]
    assert first["evidence"] == ["Prince Hamlet learns that his uncle murdered the king."]
    assert "2 passages dropped by the floor" in p.stdout


@pytest.mark.parametrize("value", ["-0.1", "1.5"])
def test_min_relevance_out_of_range_is_exit_2(tmp_path, value):
    inp = write_json(tmp_path / "in.json", [make_record(1, "q", cat="open_qa")])
    p = run_script("retrieval.py", "--input_data_path", inp, "--output_path", tmp_path / "o.json",
                   "--backend", "bm25", "--corpus_path", CORPUS, "--min_relevance", value)
    assert p.returncode == 2 and "--min_relevance" in p.stderr and not (tmp_path / "o.json").exists()
