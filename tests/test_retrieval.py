"""retrieval.py: Serper against a real local server, bm25 on our corpus, cleaning, resume, errors.

The CLI runs as a subprocess (as users run it), so exit codes, stdout/stderr and files are
what a user would see. The Serper key used here is a sentinel string that must never show
up in any output, file or cache.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from realign.files import read_jsonl_tolerant
from realign.records import load_records
from realign.search.bm25 import Bm25Corpus
from realign.search.clean import NO_RESULT, clean_evidence, clean_record, serper_hits
from tests.servers.serper_fake import SerperFake

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "datasets", "corpus")
KEY = "serper-SENTINEL-key-4f9a1c"


def rec(rid, q, cat="open_qa", **first):
    return {"id": rid, "items": [{"from": "human", "value": q, **({"category": cat} if cat else {}), **first},
                                 {"from": "gpt", "value": f"answer to {q}"}]}


def write(path, records):
    with open(path, "w", encoding="utf-8") as f:
        if str(path).endswith(".jsonl"):
            f.writelines(json.dumps(r) + "\n" for r in records)
        else:
            json.dump(records, f)
    return str(path)


def retrieval(*args, key=KEY, timeout=60):
    env = {k: v for k, v in os.environ.items() if k != "SERPER_API_KEY"}
    if key:
        env["SERPER_API_KEY"] = key
    return subprocess.run([sys.executable, os.path.join(ROOT, "retrieval.py"), *map(str, args)],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def serper(srv, inp, out, *extra):
    return retrieval("--input_data_path", inp, "--output_path", out, "--serper_url", srv.url + "/search", *extra)


def by_id(path):
    return {r["id"]: r for r in load_records(path)}


def clean_of(out):
    root, ext = os.path.splitext(str(out))
    return f"{root}_clean_evidence{ext}"


# ---------------------------------------------------------------- cleaning rules, one by one

@pytest.mark.parametrize("junk", [NO_RESULT, "Missing: capital | Must include: capital",
                                  "Duration: 3:12", "Posted: Jan 5, 2021", "   ", ""])
def test_clean_drops_each_junk_kind(junk):
    assert clean_evidence(["Paris is the capital.", junk]) == ["Paris is the capital."]


def test_clean_keeps_order_and_drops_repeats_only():
    assert clean_evidence(["b", "a", "b", " Missing a word? No: kept "]) == ["b", "a", "Missing a word? No: kept"]


def test_clean_record_removes_empty_evidence_and_sources():
    r = rec(1, "q", evidence=[NO_RESULT], evidence_sources=[{"source": "none", "title": "", "link": ""}])
    cleaned = clean_record(r)
    assert "evidence" not in cleaned["items"][0] and "evidence_sources" not in cleaned["items"][0]
    assert r["items"][0]["evidence"] == [NO_RESULT]  # the raw record is untouched


def test_serper_hits_order_and_first_five():
    reply = {"answerBox": {"answer": "box"},
             "knowledgeGraph": {"title": "Paris", "type": "City", "description": "capital of France",
                                "attributes": {"Population": "2.1 million"}},
             "organic": [{"snippet": f"s{i}", "link": f"l{i}"} for i in range(6)]}
    hits = serper_hits(reply, top_k=5)
    assert [h["text"] for h in hits] == ["box", "Paris (City): capital of France", "Paris Population: 2.1 million",
                                         "s0", "s1"]
    assert [h["source"] for h in hits] == ["answerBox", "knowledgeGraph", "knowledgeGraph", "organic", "organic"]
    assert serper_hits({"organic": []}) == [{"text": NO_RESULT, "source": "none", "title": "", "link": ""}]


# ---------------------------------------------------------------- serper end to end

def test_serper_run_matches_by_id_and_writes_both_files(tmp_path):
    junk_reply = {"organic": [{"snippet": "Missing: tall", "link": "u1"}, {"snippet": "Everest is 8,849 m.", "link": "u2"},
                              {"snippet": "Duration: 2:01", "link": "u3"}]}
    records = [rec("zeta", "How tall is Everest?"), rec(10, "Poem please", cat="poem_generation"),
               rec("alpha-1", "Why is the sky blue?", cat="explain_answer"), rec(-3, "Unsorted question", cat=None),
               rec("nothing", "A query with no results", cat="fact_verification")]
    inp = write(tmp_path / "in.json", records)
    out = tmp_path / "out" / "ret.json"
    with SerperFake(api_key=KEY, answers={"How tall is Everest?": junk_reply,
                                          "A query with no results": {"organic": []}}) as srv:
        p = serper(srv, inp, out, "--batch_size", 2)
        sent = [json.loads(r["body"]) for r in srv.requests]
    assert p.returncode == 0, p.stderr
    assert sorted(b["q"] for b in sent) == ["A query with no results", "How tall is Everest?", "Why is the sky blue?"]
    assert all(b["gl"] == "us" and b["hl"] == "en" for b in sent)
    raw, clean = by_id(out), by_id(clean_of(out))
    assert [r["id"] for r in load_records(out)] == ["zeta", 10, "alpha-1", -3, "nothing"]  # every record, input order
    assert raw["zeta"]["items"][0]["evidence"] == ["Missing: tall", "Everest is 8,849 m.", "Duration: 2:01"]
    assert raw["zeta"]["items"][0]["evidence_sources"][1]["link"] == "u2"
    assert clean["zeta"]["items"][0]["evidence"] == ["Everest is 8,849 m."]
    assert "evidence_sources" not in clean["zeta"]["items"][0]
    assert clean["alpha-1"]["items"][0]["evidence"][0] == "Short answer about Why is the sky blue?"
    assert raw["nothing"]["items"][0]["evidence"] == [NO_RESULT] and "evidence" not in clean["nothing"]["items"][0]
    assert "evidence" not in raw[10]["items"][0] and "evidence" not in raw[-3]["items"][0]
    assert "1 record(s) have no category" in p.stdout and "classify.py" in p.stdout


def test_key_never_printed_or_written(tmp_path):
    inp = write(tmp_path / "in.json", [rec(1, "q one"), rec(2, "q two")])
    out = tmp_path / "ret.json"
    with SerperFake(api_key=KEY, failing={"q two"}) as srv:
        p = serper(srv, inp, out, "--max_retries", 0)
    assert p.returncode == 1
    with SerperFake(api_key="another-key") as srv:  # the key is refused: exit 2, still no key in sight
        refused = serper(srv, inp, tmp_path / "refused.json")
    assert refused.returncode == 2 and "refused the API key" in refused.stderr
    texts = [p.stdout, p.stderr, refused.stdout, refused.stderr]
    for name in os.listdir(tmp_path):
        with open(tmp_path / name, "rb") as f:
            texts.append(f.read().decode("utf-8", "replace"))
    assert len(texts) >= 6 and not any(KEY in t for t in texts)


def test_429_retry_after_is_honoured(tmp_path):
    inp = write(tmp_path / "in.json", [rec("only", "rate limited query")])
    out = tmp_path / "ret.json"
    with SerperFake(api_key=KEY, rate_limited=1, retry_after=1) as srv:
        p = serper(srv, inp, out)
        stamps = [r["t"] for r in srv.requests]
    assert p.returncode == 0, p.stdout + p.stderr
    assert len(stamps) == 2 and stamps[1] - stamps[0] >= 1.0
    assert by_id(out)["only"]["items"][0]["evidence"]


def test_exhausted_retries_leave_record_without_evidence_exit_1(tmp_path):
    inp = write(tmp_path / "in.json", [rec("ok", "fine query"), rec("bad", "broken query"), rec(3, "other")])
    out = tmp_path / "ret.jsonl"
    with SerperFake(api_key=KEY, failing={"broken query"}) as srv:
        p = serper(srv, inp, out, "--max_retries", 2)
        queries = srv.queries()
    assert p.returncode == 1
    assert queries.count("broken query") == 3  # one try + two retries, then give up
    assert "'bad'" in p.stdout and "HTTP 500 (3 attempts)" in p.stdout
    for path in (out, clean_of(out)):
        got = by_id(path)
        assert "evidence" not in got["bad"]["items"][0]
        assert got["ok"]["items"][0]["evidence"] and got[3]["items"][0]["evidence"]
    with SerperFake(api_key=KEY) as srv:  # rerun: only the failed record is searched again
        again = serper(srv, inp, out)
        assert srv.queries() == ["broken query"]
    assert again.returncode == 0 and by_id(clean_of(out))["bad"]["items"][0]["evidence"]


def test_server_error_then_success_and_slow_server_timeout(tmp_path):
    inp = write(tmp_path / "in.json", [rec(1, "flaky")])
    with SerperFake(api_key=KEY, server_errors=1) as srv:
        p = serper(srv, inp, tmp_path / "a.json")
        assert p.returncode == 0 and srv.request_count == 2
    with SerperFake(api_key=KEY, delay=1.5) as srv:
        p = serper(srv, inp, tmp_path / "b.json", "--timeout", 0.3, "--max_retries", 1)
    assert p.returncode == 1 and "timed out" in p.stdout
    assert "evidence" not in by_id(tmp_path / "b.json")[1]["items"][0]


# ---------------------------------------------------------------- resume and cache

def test_resume_makes_no_requests_and_matches_by_id(tmp_path):
    records = [rec(f"id-{i}", f"question {i}") for i in range(5)]
    records.append(rec("given", "already has evidence", evidence=["from the user"]))
    out = tmp_path / "ret.json"
    with SerperFake(api_key=KEY) as srv:
        assert serper(srv, write(tmp_path / "in.json", records), out).returncode == 0
        assert "already has evidence" not in srv.queries() and srv.request_count == 5
    # shuffle the input and change one question: only that one is searched again
    records.reverse()
    assert records[1]["id"] == "id-4"
    records[1]["items"][0]["value"] = "question 4, edited"
    with SerperFake(api_key=KEY) as srv:
        p = serper(srv, write(tmp_path / "in2.json", records), out, "--cache_path", tmp_path / "fresh.sqlite")
        assert srv.queries() == ["question 4, edited"]
    assert p.returncode == 0 and "4 from an earlier run" in p.stdout
    got = load_records(out)
    assert [r["id"] for r in got] == [r["id"] for r in records]
    for r in got:
        if r["id"] != "given":
            assert r["items"][0]["evidence"][0] == f"Short answer about {r['items'][0]['value']}"
    assert by_id(out)["given"]["items"][0]["evidence"] == ["from the user"]


def test_query_cache_avoids_paying_twice(tmp_path):
    inp = write(tmp_path / "in.json", [rec(1, "cached q"), rec(2, "cached q"), rec(3, "other q")])
    cache = tmp_path / "cache.sqlite"
    with SerperFake(api_key=KEY) as srv:
        assert serper(srv, inp, tmp_path / "a.json", "--cache_path", cache).returncode == 0
        assert sorted(srv.queries()) == ["cached q", "other q"]  # a repeated question is asked once
        p = serper(srv, inp, tmp_path / "b.json", "--cache_path", cache)  # new output, same cache
        assert srv.request_count == 2  # nothing more paid for
    assert p.returncode == 0 and "2 answered from cache" in p.stdout
    assert by_id(tmp_path / "b.json")[2]["items"][0]["evidence"]


def interrupted_run(tmp_path, sig):
    """A Serper run over 8 slow queries, one a batch, sent `sig` once 4 requests arrived.
    Returns (input, output, exit code, stderr, requests answered before the signal)."""
    inp = write(tmp_path / "in.json", [rec(i, f"slow question {i}") for i in range(8)])
    out = tmp_path / "ret.json"
    env = dict(os.environ, SERPER_API_KEY=KEY)
    with SerperFake(api_key=KEY, delay=0.3) as srv:
        proc = subprocess.Popen([sys.executable, "retrieval.py", "--input_data_path", inp, "--output_path", out,
                                 "--serper_url", srv.url + "/search", "--batch_size", "1"],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 90  # a condition, not a time: a loaded machine may take long to start
        while srv.request_count < 4 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if srv.request_count < 4 or proc.poll() is not None:
            proc.kill()
            raise AssertionError(f"{srv.request_count} requests before the signal, exit {proc.wait()}: "
                                 f"{proc.stderr.read()[-1000:]}")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=10)
    # the last request was in flight; each earlier one was answered and saved first
    return inp, out, proc.returncode, err, srv.request_count - 1


def test_killed_run_loses_at_most_one_batch(tmp_path):
    inp, out, _, _, finished = interrupted_run(tmp_path, signal.SIGKILL)
    # saved = in the output files (checkpointed after the first batch, then as cost allows) or the journal
    saved = {r["id"] for r in load_records(out) if "evidence" in r["items"][0]}
    saved |= {entry["id"] for entry in read_jsonl_tolerant(str(out) + ".progress.jsonl")[0]}
    assert len(saved) >= finished >= 3 and os.path.exists(clean_of(out))
    with SerperFake(api_key=KEY) as srv:
        p = serper(srv, inp, out)
        assert srv.request_count == 8 - len(saved)
    assert p.returncode == 0
    assert all("evidence" in r["items"][0] for r in load_records(out))
    assert not os.path.exists(str(out) + ".progress.jsonl")


def test_ctrl_c_writes_both_files_and_exits_130(tmp_path):
    _, out, code, err, finished = interrupted_run(tmp_path, signal.SIGINT)
    assert code == 130 and "interrupted" in err and "Traceback" not in err
    for path in (out, clean_of(out)):
        assert sum("evidence" in r["items"][0] for r in load_records(path)) >= finished


# ---------------------------------------------------------------- bm25

@pytest.mark.parametrize("query, title", [
    ("How do I boil an egg?", "How to boil an egg"),
    ("What is the capital of Australia?", "Capital of Australia"),
    ("Why does ice float on water?", "Why ice floats"),
    ("When did the Second World War end?", "End of the Second World War"),
    ("Give me tips to beat jet lag", "Beating jet lag"),
    ("Can you recommend some houseplants that are hard to kill?", "Houseplants that are hard to kill"),
    ("How do I create a Python virtual environment?", "Python virtual environments"),
    ("Is it true that the Great Wall of China is visible from the Moon?", "Great Wall of China"),
    ("What is the tallest mountain in Africa?", "Mount Kilimanjaro"),
    ("How do I make cold brew coffee at home?", "Making cold brew coffee at home"),
])
def test_bm25_ranks_the_right_document_first(query, title):
    assert Bm25Corpus(CORPUS).search(query, 3)[0]["title"] == title


def test_bm25_index_cached_and_rebuilt_only_on_change(tmp_path):
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "eggs.md").write_text("Boil eggs for nine minutes for a firm yolk.")
    (corpus / "tea.txt").write_text("Green tea steeps best below boiling, around 80 degrees.")
    (corpus / "README.md").write_text("About this corpus: eggs and tea.")  # not a document
    first = Bm25Corpus(str(corpus))
    assert first.rebuilt and len(first.docs) == 2 and first.search("how long to boil eggs")[0]["title"] == "eggs"
    stamp = os.stat(corpus / ".bm25s" / "meta.json").st_mtime_ns
    second = Bm25Corpus(str(corpus))
    assert not second.rebuilt and os.stat(corpus / ".bm25s" / "meta.json").st_mtime_ns == stamp
    assert second.search("green tea temperature")[0]["title"] == "tea"
    (corpus / "rice.txt").write_text("Rinse rice before cooking it.")
    third = Bm25Corpus(str(corpus))
    assert third.rebuilt and third.search("rinse rice")[0]["title"] == "rice"


def test_bm25_on_a_read_only_corpus_searches_without_caching(tmp_path, monkeypatch):
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "eggs.md").write_text("Boil eggs for nine minutes for a firm yolk.")

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("realign.files.tempfile.mkdtemp", read_only)  # chmod would not stop root
    index = Bm25Corpus(str(corpus))
    assert index.rebuilt and index.search("boil eggs")[0]["title"] == "eggs"
    assert not (corpus / ".bm25s").exists()


def test_bm25_cli_end_to_end_reuses_index(tmp_path):
    corpus = write(tmp_path / "c.jsonl", [{"title": "Nile", "text": "The Nile is the longest river in Africa."},
                                          {"title": "Eggs", "text": "Boil eggs nine minutes."}])
    inp = write(tmp_path / "in.jsonl", [rec("q1", "Which river is the longest in Africa?"), rec("q2", "no match xyz")])
    args = ("--input_data_path", inp, "--backend", "bm25", "--corpus_path", corpus, "--top_k", 1)
    p1 = retrieval(*args, "--output_path", tmp_path / "a.jsonl", key=None)
    p2 = retrieval(*args, "--output_path", tmp_path / "b.jsonl", key=None)
    assert p1.returncode == 0 and "index built" in p1.stdout
    assert p2.returncode == 0 and "index reused" in p2.stdout
    clean = by_id(tmp_path / "b_clean_evidence.jsonl")
    assert clean["q1"]["items"][0]["evidence"] == ["The Nile is the longest river in Africa."]
    assert "evidence" not in clean["q2"]["items"][0]


# ---------------------------------------------------------------- errors: one line, exit 2, nothing written

@pytest.mark.parametrize("content, message", [
    ("not json", "not valid JSON"),
    ('[{"id": 1, "items": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},'
     ' {"id": 1, "items": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}]', "duplicate id"),
])
def test_bad_input_exit_2_without_output(tmp_path, content, message):
    inp = tmp_path / "in.json"
    inp.write_text(content)
    p = retrieval("--input_data_path", inp, "--output_path", tmp_path / "out.json", "--backend", "bm25",
                  "--corpus_path", CORPUS)
    assert p.returncode == 2 and message in p.stderr and str(inp) in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert sorted(os.listdir(tmp_path)) == ["in.json"]


def test_bad_corpus_line_exit_2(tmp_path):
    corpus = write(tmp_path / "c.jsonl", [{"title": "t", "text": "fine"}, {"title": "no text"}])
    inp = write(tmp_path / "in.json", [rec(1, "q")])
    p = retrieval("--input_data_path", inp, "--output_path", tmp_path / "out.json", "--backend", "bm25",
                  "--corpus_path", corpus, key=None)
    assert p.returncode == 2 and f"{corpus}: line 2:" in p.stderr and "Traceback" not in p.stderr
    assert not os.path.exists(tmp_path / "out.json")


def test_output_may_not_overwrite_input(tmp_path):
    inp = write(tmp_path / "data.json", [rec(1, "q")])
    p = retrieval("--input_data_path", inp, "--output_path", inp, "--backend", "bm25", "--corpus_path", CORPUS)
    assert p.returncode == 2 and "overwrite the input" in p.stderr
    with open(inp, encoding="utf-8") as f:
        before = f.read()
    p = retrieval("--input_data_path", inp, "--output_path", tmp_path / "out.json", "--cache_path", inp)
    with open(inp, encoding="utf-8") as f:
        assert p.returncode == 2 and "--cache_path would overwrite" in p.stderr and f.read() == before


def test_no_key_suggests_bm25_and_writes_nothing(tmp_path):
    inp = write(tmp_path / "in.json", [rec(1, "q")])
    p = retrieval("--input_data_path", inp, "--output_path", tmp_path / "out.json", key=None)
    assert p.returncode == 2 and "--backend bm25 --corpus_path" in p.stderr and "Traceback" not in p.stderr
    assert sorted(os.listdir(tmp_path)) == ["in.json"]
