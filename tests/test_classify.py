"""classify.py: formats in and ReAlign out, the embedded model, the LLM backends' prompt, --eval metrics."""

import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import classify
from conftest import ROOT, make_record, run_script, write_json
from realign.classifier import metrics
from realign.classifier.backends import LLMSettings, classify_llm, classify_request
from realign.classifier.data import load_labeled, load_real
from realign.classifier.features import fit_ngrams
from realign.classifier.calibration import MIN_MIX_RECORDS, adapt_to_mix, knn_log_votes, reweight
from realign.classifier.model import CHAR_NGRAMS, WORD_NGRAMS, TaskClassifier, decide, fit_temperature, softmax
from realign.errors import DataError
from realign.llm.base import BackendConfig
from realign.prompts import PROMPT_INPUT_FOR_TASK_CLS, build_classifier_prompt
from tests.servers.classifier_fake import ClassifierFake

TEMPLATE = (Path(__file__).parent / "fixtures" / "classifier_prompt.txt").read_text(encoding="utf-8")
HELD_OUT = ROOT / "datasets" / "classification" / "task_classifier_test_dataset.json"
EMBEDDED_FLOOR = 0.80  # our held-out accuracy is well above this (bench/README.md, classify section)


def read(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


# ---------------------------------------------------------------- the prompt

def test_prompt_is_the_original_template_byte_for_byte():
    assert PROMPT_INPUT_FOR_TASK_CLS == TEMPLATE


def test_prompt_for_a_query_is_the_template_formatted():
    q = "Give three tips for staying healthy. {not a field}"
    assert build_classifier_prompt(q) == TEMPLATE.format(input=q)


def test_vllm_gets_the_template_greedy_and_50_tokens(monkeypatch):
    """The vllm backend hands the engine the exact template, temperature 0, max_tokens 50."""
    seen = []

    class LLM:
        def __init__(self, model, **kw):
            self.model = model

        def get_tokenizer(self):
            return None

        def generate(self, prompts, params, use_tqdm=False):
            seen.extend(zip(prompts, params))
            out = types.SimpleNamespace(text="  text_summarization \n")
            return [types.SimpleNamespace(outputs=[out]) for _ in prompts]

    fake = types.SimpleNamespace(LLM=LLM, SamplingParams=lambda **kw: kw)
    monkeypatch.setitem(sys.modules, "vllm", fake)
    qs = ["Summarise this article: ...", "hi"]
    result = classify_llm(qs, BackendConfig(model="GAIR/ReAlign-Task-Classifier", options={"tensor_parallel_size": 1}),
                          LLMSettings(backend="vllm", progress=False))
    assert result.labels == ["text_summarization"] * 2 and not result.failures
    assert sorted(p for p, _ in seen) == sorted(TEMPLATE.format(input=q) for q in qs)
    params = seen[0][1]
    assert params["temperature"] == 0.0 and params["max_tokens"] == 50 and params["top_p"] == 1.0


def test_request_for_chat_endpoints_carries_the_same_prompt():
    req = classify_request(7, "hello", chat=True)
    assert req.messages == [{"role": "user", "content": TEMPLATE.format(input="hello")}]
    assert req.sampling.max_tokens == 50 and req.sampling.temperature == 0.0


# ---------------------------------------------------------------- metrics

def test_metrics_match_a_hand_computed_case():
    gold = ["a", "a", "b", "c"]
    pred = ["a", "b", "b", "a"]
    # a: tp 1, predicted 2, gold 2 -> P .5 R .5 F .5; b: tp 1, predicted 2, gold 1 -> P .5 R 1 F 2/3;
    # c: tp 0 -> F 0. Macro-F1 = (1/2 + 2/3 + 0) / 3 = 7/18.
    assert metrics.accuracy(gold, pred) == 0.5
    assert metrics.macro_f1(gold, pred) == pytest.approx(7 / 18)
    table = metrics.per_task(gold, pred)
    assert table["b"] == pytest.approx((0.5, 1.0, 2 / 3, 1))
    assert table["c"] == (0.0, 0.0, 0.0, 1)
    assert metrics.confused_pairs(gold, pred) == [(("a", "b"), 1), (("c", "a"), 1)]
    text = metrics.report(gold, pred)
    assert "accuracy 50.0%" in text and "a -> b" in text


def test_coverage_and_reliability_match_a_hand_computed_case():
    gold = ["a", "a", "b", "b"]
    pred = ["a", "b", "b", "a"]
    conf = [0.95, 0.35, 0.65, 0.62]
    # >= 0.5 keeps the 0.95 (right), 0.65 (right), 0.62 (wrong): coverage 3/4, accuracy 2/3.
    assert metrics.coverage(gold, pred, conf, (0.0, 0.5, 0.9)) == [(0.0, 1.0, 0.5), (0.5, 0.75, pytest.approx(2 / 3)),
                                                                   (0.9, 0.25, 1.0)]
    rows, ece = metrics.reliability(gold, pred, conf, bins=2)
    # bin [0, .5): 0.35 wrong -> gap .35; bin [.5, 1]: mean conf .74, accuracy 2/3 -> gap .0733 x 3
    assert [(n, round(c, 4), round(a, 4)) for _, _, n, c, a in rows] == [(1, 0.35, 0.0), (3, 0.74, 0.6667)]
    assert ece == pytest.approx((0.35 + 3 * (0.74 - 2 / 3)) / 4)
    assert "min_confidence" in metrics.coverage_report(gold, pred, conf)


# ---------------------------------------------------------------- confidence

def test_decide_passes_over_unsure_rejecting_and_sends_unsure_to_default():
    classes = ["default", "open_qa", "rejecting"]
    prob = np.array([[0.1, 0.3, 0.6],     # rejecting under 0.7: the next task
                     [0.05, 0.15, 0.8],   # rejecting, sure enough
                     [0.2, 0.7, 0.1],     # plain
                     [0.3, 0.45, 0.25]])  # under min_confidence 0.5: default, confidence kept
    got = decide(prob, classes, min_confidence=0.5, min_reject_confidence=0.7)
    assert [label for label, _ in got] == ["default", "rejecting", "open_qa", "default"]
    assert [c for _, c in got] == pytest.approx([0.3, 0.8, 0.7, 0.45])
    assert [label for label, _ in decide(prob, classes, 0.0, 0.7)] == ["open_qa", "rejecting", "open_qa", "open_qa"]


def test_temperature_fit_recovers_the_temperature_labels_were_drawn_with():
    rng = np.random.default_rng(0)
    scores = rng.normal(0, 3, size=(4000, 5)).astype(np.float32)
    prob = softmax(scores / 2.0)
    gold = np.array([rng.choice(5, p=p / p.sum()) for p in prob.astype(np.float64)])
    assert fit_temperature(scores, gold) == pytest.approx(2.0, rel=0.1)


def test_mix_adaptation_moves_toward_the_batch_mix_and_the_pseudo_count_holds_it_back():
    """Rows from a batch that is 80 % class 0, scored by a model calibrated on an even mix: EM
    finds the batch's mix; a large pseudo-count keeps the calibration mix."""
    rng = np.random.default_rng(0)
    gold = (rng.random(2000) > 0.8).astype(int)
    prob = np.where(gold[:, None] == 0, [0.6, 0.4], [0.4, 0.6])  # a weak, calibrated-on-even classifier
    adjusted, mix = adapt_to_mix(prob, [0.5, 0.5], strength=0.0)
    assert mix[0] > 0.7 and np.allclose(adjusted.sum(axis=1), 1.0)
    assert (adjusted.argmax(axis=1) == 0).all()  # the 0.4 of class 0 is now the likelier reading
    held, mix = adapt_to_mix(prob, [0.5, 0.5], strength=1000.0)
    assert abs(mix[0] - 0.5) < 0.01 and np.allclose(held, prob, atol=0.02)
    assert np.allclose(reweight(prob, [0.5, 0.5], [0.5, 0.5]), prob)


def test_nearest_neighbours_vote_for_their_tasks():
    index = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]], dtype=np.float32)
    labels, weights = np.array([0, 0, 1]), np.ones(3)
    votes = np.exp(knn_log_votes(np.array([[1.0, 0.0], [0.0, 1.0]]), index, labels, weights, 3, k=2, smoothing=1e-9))
    assert votes[0].argmax() == 0 and votes[0, 0] == pytest.approx(1.0, abs=1e-6)
    assert votes[1].argmax() == 1 and votes[1, 2] < 1e-6  # nobody voted for class 2


def test_a_batch_is_adapted_to_its_mix_and_a_small_one_is_not(tmp_path, model):
    """With mix_strength set, the labels of a batch of 30+ depend on the batch; a batch of 29
    keeps the calibration mix (adapt=False gives the same)."""
    texts, _ = load_labeled(HELD_OUT)
    m = TaskClassifier.load()
    m.meta = {**m.meta, "mix_strength": 0.0, "mix_prior": [1 / len(m.classes)] * len(m.classes)}
    small = texts[:29]
    assert m.classify(small) == m.classify(small, adapt=False)
    batch = texts[:200]
    plain, adapted = m.classify(batch, adapt=False), m.classify(batch)
    assert plain != adapted


# ---------------------------------------------------------------- the embedded model

@pytest.fixture(scope="module")
def model():
    return TaskClassifier.load()


def test_embedded_model_beats_the_floor_on_our_held_out_set(model):
    texts, gold = load_labeled(HELD_OUT)
    acc = metrics.accuracy(gold, model.predict(texts))
    assert acc >= EMBEDDED_FLOOR, f"held-out accuracy {acc:.1%}"


def test_a_prompt_gets_the_same_label_and_confidence_whatever_else_is_in_the_file(model):
    """The int8 encoder quantises per run: batched with longer neighbours, a prompt's vector (and
    sometimes its label) used to change. Now only the task-mix adaptation, which starts at 30
    records (its own tests below), makes the company count: in a file smaller than that, in any
    company and in any order, a prompt gets what it gets alone."""
    probe = "Can you suggest a few names for a bakery that sells only sourdough bread?"
    others = ["Write a haiku about winter.", "Translate 'good night' into German.",
              "Explain in detail how a transformer language model is trained, step by step, with the loss, "
              "the optimizer, batching and the learning-rate schedule, and what can go wrong in each part."] * 3
    alone = model.classify([probe])
    assert len(others) * 2 + 1 < MIN_MIX_RECORDS
    for company in (others + [probe], [probe] + others, others[::-1] + [probe] + others):
        labels, confidences = model.classify(company)
        i = company.index(probe)
        assert (labels[i], confidences[i]) == (alone[0][0], alone[1][0])


def test_embedded_model_gets_the_spec_example(model):
    assert model.predict(["Give three tips for staying healthy."]) == ["advice_giving"]


@pytest.mark.parametrize("text, tasks", [
    ("tell me a funny joke about cats", None),  # anything but rejecting
    ("How do I center a div in CSS?", {"language_learning_questions"}),
    ("What's the difference between 'fewer' and 'less'?", {"natural_language_learning_tutor"}),
    ("Convert 72 degrees Fahrenheit to Celsius.", {"math_puzzles", "open_qa"}),
    ("Which of these is a mammal? A) shark B) dolphin C) trout D) octopus", {"exam_problem_solving_tutor"}),
])
def test_embedded_model_on_the_new_user_probes(model, text, tasks):
    """The prompts a new user tried (issue 17), labelled as the original taxonomy means them."""
    (label,), (confidence,) = model.classify([text])
    assert label != "rejecting" and 0.0 <= confidence <= 1.0
    if tasks:
        assert label in tasks


@pytest.mark.parametrize("params", [WORD_NGRAMS, CHAR_NGRAMS], ids=["word", "char_wb"])
def test_ngram_features_equal_scikit_learn(params):
    """Our run-time tf-idf gives scikit-learn's numbers (it only learns vocabulary and idf)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts, _ = load_labeled(HELD_OUT)
    texts = texts[:200] + ["", "  a  ", "I", "Ünïcödé\tCASE\n\nand  spaces", "xxx yyyyyy"]
    ours = fit_ngrams(params, texts[:150])
    ref = TfidfVectorizer(**{**params, "ngram_range": tuple(params["ngram_range"])}).fit(texts[:150])
    assert ours.vocab == list(ref.get_feature_names_out())
    expected = ref.transform(texts).toarray()
    assert np.abs(ours.matrix(texts).toarray() - expected).max() < 1e-5
    weights = np.random.default_rng(0).random((len(ours), 3), dtype=np.float32)
    assert np.abs(ours.dot(texts, weights) - expected @ weights).max() < 1e-4


def test_train_save_load_round_trip(tmp_path, model):
    texts, labels = load_labeled(HELD_OUT)
    texts, labels = texts[::6], labels[::6]  # two per task: enough to fit, quick to encode
    small = TaskClassifier(encoder_dir=model.encoder_dir).fit(texts, labels)
    small.save(tmp_path / "m")
    again = TaskClassifier.load(tmp_path / "m")
    assert again.predict(texts[:20]) == small.predict(texts[:20])


def test_calibrating_on_real_prompts_fits_bias_and_map_and_trains_on_the_marked_ones(tmp_path, model):
    texts, labels = load_labeled(HELD_OUT)
    train_t, train_l = texts[::6], labels[::6]
    real_t, real_l = texts[1::6], labels[1::6]
    n = len(real_t)
    # every prompt twice, as two labellers would: the real label and, for a third of them, another
    rows = []
    for i, (t, lab) in enumerate(zip(real_t, real_l)):
        other = lab if i % 3 else "default"
        rows += [{"instruction": t, "category": lab, "weight": 0.5, "train": i % 2 == 0},
                 {"instruction": t, "category": other, "weight": 0.5, "train": i % 2 == 0}]
    path = write_json(tmp_path / "real.json", rows)
    real = load_real(path)
    small = TaskClassifier(encoder_dir=model.encoder_dir).fit(train_t, train_l, real=real)
    c = small.meta["calibration"]
    assert c["prompts"] == n and c["rows"] == 2 * n and c["trained_on"] == (n + 1) // 2
    assert small.meta["trained_on"] == len(train_t) + 2 * ((n + 1) // 2)
    # the shared curve, then an offset per task the model may choose
    assert len(small.meta["confidence_map"]) == 3 + len(small.classes) and small.bias.shape == (len(small.classes),)
    assert 0.0 < c["held_out_accuracy"] <= 1.0
    small.save(tmp_path / "m")
    again = TaskClassifier.load(tmp_path / "m")
    assert np.allclose(again.bias, small.bias) and again.meta["confidence_map"] == small.meta["confidence_map"]
    labels_, conf = again.classify(real_t[:10])
    assert labels_ == small.classify(real_t[:10])[0] and all(0.0 < x < 1.0 for x in conf)


def test_calibration_groups_leave_one_source_out(tmp_path, model):
    """Rows with a `group` (the prompt's source) are scored by models that never saw their group."""
    texts, labels = load_labeled(HELD_OUT)
    rows = [{"instruction": t, "category": lab, "train": i % 2 == 0, "group": f"source{i % 3}"}
            for i, (t, lab) in enumerate(zip(texts[1::6], labels[1::6]))]
    real = load_real(write_json(tmp_path / "real.json", rows))
    assert real.groups == [r["group"] for r in rows]
    small = TaskClassifier(encoder_dir=model.encoder_dir).fit(texts[::6], labels[::6], real=real)
    c = small.meta["calibration"]
    assert c["folds"] == 3 and c["folds_by"] == "group" and len(small.meta["confidence_map"]) == 3 + len(small.classes)
    # grouped rows also choose how far to adapt to a batch's task mix (None: not at all) and the vote's weight
    assert "mix_strength" in small.meta and len(small.meta["mix_prior"]) == len(small.classes)
    assert small.meta["knn_weight"] in (0.0, 0.1, 0.2, 0.3, 0.5)
    small.save(tmp_path / "m")
    again = TaskClassifier.load(tmp_path / "m")
    assert (again.knn is None) == (small.knn is None) and again.classify(texts[:40]) == small.classify(texts[:40])
    del rows[0]["group"]  # given on some rows only: refused
    with pytest.raises(DataError, match="'group' is given on some records"):
        load_real(write_json(tmp_path / "mixed.json", rows))
    assert load_real(write_json(tmp_path / "none.json", [{"instruction": "x", "category": "default"}])).groups is None


def test_confidence_map_is_monotone_in_the_probability():
    classes = ["a", "b", "c"]
    prob = np.array([[0.5, 0.3, 0.2], [0.7, 0.2, 0.1], [0.95, 0.04, 0.01]])
    got = [c for _, c in decide(prob, classes, confidence_map=[-1.0, 1.5, 0.5])]
    assert got == sorted(got) and got[0] < 0.5 < got[-1]
    assert [c for _, c in decide(prob, classes)] == pytest.approx([0.5, 0.7, 0.95])  # no map: the probability


def test_confidence_map_offsets_depend_on_the_chosen_task():
    """Same probabilities, different chosen task: the task's offset moves the confidence."""
    classes = ["a", "b", "c"]
    prob = np.array([[0.6, 0.3, 0.1], [0.3, 0.6, 0.1]])
    shared = [c for _, c in decide(prob, classes, confidence_map=[-1.0, 1.5, 0.5])]
    assert shared[0] == pytest.approx(shared[1])
    (la, ca), (lb, cb) = decide(prob, classes, confidence_map=[-1.0, 1.5, 0.5, 1.0, -1.0, 0.0])
    assert (la, lb) == ("a", "b") and ca > shared[0] > cb


@pytest.mark.parametrize("rows, needle", [
    ([{"instruction": "hi", "category": "default", "weight": -1}], "'weight' must be a positive number"),
    ([{"instruction": "hi", "category": "default", "train": "yes"}], "'train' must be true or false"),
    ([{"instruction": "hi", "category": "default", "group": 3}], "'group' must be a string"),
])
def test_bad_calibration_file_is_exit_2(tmp_path, rows, needle):
    train = write_json(tmp_path / "train.json", [{"instruction": "hello there", "category": "default"},
                                                 {"instruction": "hi", "category": "open_qa"}])
    r = run_script("classify.py", "--train", train, "--calibrate", write_json(tmp_path / "real.json", rows),
                   "--save_model", tmp_path / "m", "--quiet")
    assert r.returncode == 2 and needle in r.stderr and "record 0" in r.stderr
    assert not (tmp_path / "m").exists()


def test_calibrate_needs_train(tmp_path):
    r = run_script("classify.py", "--eval", write_json(tmp_path / "e.json", [{"instruction": "x", "category": "default"}]),
                   "--calibrate", tmp_path / "e.json")
    assert r.returncode == 2 and "give --train FILE as well" in r.stderr


# ---------------------------------------------------------------- classify.py end to end

SAMPLES = {
    "alpaca": [{"instruction": "Translate into French:", "input": "Good morning, my friend.", "output": "Bonjour.",
                "source": "mine"},
               {"instruction": "Write a haiku about autumn leaves.", "input": "", "output": "Leaves fall..."}],
    "sharegpt": [{"id": "s1", "conversations": [
        {"from": "system", "value": "Be brief."},
        {"from": "human", "value": "Fix the bug in this Python code:\ndef add(a, b):\n    return a - b"},
        {"from": "gpt", "value": "Use a + b."}, {"from": "human", "value": "thanks"},
        {"from": "gpt", "value": "You're welcome."}]}],
    "messages": [{"messages": [{"role": "user", "content": "Write a poem about the sea in four rhyming lines."},
                               {"role": "assistant", "content": "The sea..."}]}],
}


def classify_main(capsys, *args):
    """classify.py's main() in this process (the model loads faster than in a fresh interpreter)."""
    code = classify.main([str(a) for a in args])
    return code, capsys.readouterr().out


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_formats_in_realign_out(tmp_path, capsys, fmt):
    inp = write_json(tmp_path / f"{fmt}.json", SAMPLES[fmt])
    out = tmp_path / "out.json"
    code, stdout = classify_main(capsys, "--input_data_path", inp, "--output_path", out, "--quiet")
    assert code == 0
    recs = read(out)
    assert len(recs) == len(SAMPLES[fmt])
    for rec in recs:
        assert rec["items"][0]["from"] == "human" and rec["items"][1]["from"] == "gpt"
        assert rec["items"][0]["category"]
    assert "category distribution" in stdout and f"({fmt})" in stdout
    if fmt == "alpaca":
        assert recs[0]["items"][0]["value"] == "Translate into French:\n\nGood morning, my friend."
        assert recs[0]["source"] == "mine"
        assert [rec["items"][0]["category"] for rec in recs] == ["text_to_text_translation", "poem_generation"]
    if fmt == "sharegpt":
        assert recs[0]["system"] == "Be brief." and len(recs[0]["items"]) == 4
        assert recs[0]["items"][0]["category"] == "code_correction"


def test_no_mix_adaptation_labels_each_record_as_if_alone(tmp_path, capsys):
    """Forty records labelled together with --no_mix_adaptation get the labels each gets alone."""
    texts, _ = load_labeled(HELD_OUT)
    texts = texts[::20][:40]
    inp = write_json(tmp_path / "in.json", [{"instruction": t, "output": "x"} for t in texts])
    out = tmp_path / "out.json"
    code, _ = classify_main(capsys, "--input_data_path", inp, "--output_path", out, "--quiet", "--no_mix_adaptation")
    assert code == 0
    model = TaskClassifier.load()
    alone = [model.classify([t])[0][0] for t in texts[:8]]
    assert [rec["items"][0]["category"] for rec in read(out)][:8] == alone


def test_confidence_is_written_and_min_confidence_sends_the_unsure_to_default(tmp_path, capsys):
    questions = ["Write a haiku about autumn leaves.", "Translate into French: good morning, my friend.",
                 "hmm", "ok so the thing about the stuff, you know", "What is the capital of Peru?"]
    inp = write_json(tmp_path / "in.json", [{"instruction": q, "output": "x"} for q in questions])
    out = tmp_path / "out.json"
    code, _ = classify_main(capsys, "--input_data_path", inp, "--output_path", out, "--quiet")
    assert code == 0
    first = [rec["items"][0] for rec in read(out)]
    confidence = [item["category_confidence"] for item in first]
    assert all(0.0 <= c <= 1.0 for c in confidence)
    assert first[0]["category"] == "poem_generation" and confidence[0] > 0.5
    low = sorted(confidence)
    cut = (low[1] + low[2]) / 2  # the two least sure go to default, the rest keep their task
    code, stdout = classify_main(capsys, "--input_data_path", inp, "--output_path", out, "--quiet",
                                 "--min_confidence", cut)
    again = [rec["items"][0] for rec in read(out)]
    assert code == 0 and "2 records under --min_confidence" in stdout
    for before, after in zip(first, again):
        assert after["category_confidence"] == before["category_confidence"]
        assert after["category"] == (before["category"] if before["category_confidence"] >= cut else "default")


@pytest.mark.parametrize("flags, needle", [(["--min_confidence", "1.5"], "between 0 and 1"),
                                           (["--min_reject_confidence", "-0.1"], "between 0 and 1"),
                                           (["--min_confidence", "0.5", "--backend", "openai",
                                             "--base_url", "http://127.0.0.1:9/v1"], "gives none")])
def test_bad_confidence_flags_are_exit_2(tmp_path, flags, needle):
    inp = write_json(tmp_path / "in.json", [make_record(0, cat=None)])
    r = run_script("classify.py", "--input_data_path", inp, "--output_path", tmp_path / "out.json", *flags)
    assert r.returncode == 2 and needle in r.stderr and not (tmp_path / "out.json").exists()


def test_existing_categories_are_kept_unless_overwrite(tmp_path, capsys):
    recs = [make_record(0, q="Write a limerick about a cat.", cat="open_qa"),
            make_record(1, q="Write a limerick about a dog.", cat=None),
            make_record(2, q="Write a limerick about a bird.", cat=None)]
    recs[2]["items"][0]["category"] = None  # an explicit null is no category either
    inp = write_json(tmp_path / "in.json", recs)
    out = tmp_path / "out.jsonl"
    code, stdout = classify_main(capsys, "--input_data_path", inp, "--output_path", out, "--quiet")
    assert code == 0
    got = [json.loads(line)["items"][0]["category"] for line in out.read_text().splitlines()]
    assert got == ["open_qa", "poem_generation", "poem_generation"]
    assert "1 kept their category" in stdout
    assert stdout.strip().splitlines()[-1].startswith(  # the step ends with its one-line summary
        "classify (embedded): 3 records (realign): 2 classified, 1 kept their category, 0 failed; next steps: "
        "1 to search for evidence, 1 to rewrite, 2 passed through unchanged; ")  # poems are not rewritten
    classify_main(capsys, "--input_data_path", inp, "--output_path", out, "--quiet", "--overwrite")
    got = [json.loads(line)["items"][0]["category"] for line in out.read_text().splitlines()]
    assert got == ["poem_generation", "poem_generation", "poem_generation"]


@pytest.mark.parametrize("content, fmt, needle", [
    ("{not json", "auto", "not valid JSON"),
    (json.dumps([{"id": 1, "items": [{"from": "human", "value": "q", "category": "nope"},
                                     {"from": "gpt", "value": "a"}]}]), "auto", "record 0 (id=1): unknown category"),
    (json.dumps([{"instruction": "q"}]), "alpaca", "record 0: 'output' must be a string"),
])
def test_bad_input_is_one_line_exit_2_and_no_output(tmp_path, content, fmt, needle):
    inp = tmp_path / "in.json"
    inp.write_text(content, encoding="utf-8")
    out = tmp_path / "out.json"
    r = run_script("classify.py", "--input_data_path", inp, "--output_path", out, "--input_format", fmt)
    assert r.returncode == 2
    assert needle in r.stderr and str(inp) in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not out.exists()


@pytest.mark.parametrize("flag, value, needle", [("--rpm", "0", "must be positive"),
                                                 ("--request_timeout", "-1", "must be positive"),
                                                 ("--concurrency", "0", "must be >= 1")])
def test_bad_flag_values_are_exit_2(tmp_path, flag, value, needle):
    inp = write_json(tmp_path / "in.json", [make_record(0, cat=None)])
    out = tmp_path / "out.json"
    r = run_script("classify.py", "--input_data_path", inp, "--output_path", out, "--backend", "openai",
                   "--base_url", "http://127.0.0.1:9/v1", flag, value)
    assert r.returncode == 2 and f"{flag} {needle}" in r.stderr and not out.exists()


@pytest.mark.parametrize("rows, needle", [
    ([{"instruction": "hello there", "category": "default"}, {"instruction": "hi", "category": "default"}],
     "at least two tasks"),
    ([{"instruction": "hello there", "category": "default"}, {"instruction": "hi", "category": "open_qa"}],
     "cannot train on it"),
])
def test_untrainable_file_is_exit_2_and_no_model(tmp_path, rows, needle):
    r = run_script("classify.py", "--train", write_json(tmp_path / "train.json", rows),
                   "--save_model", tmp_path / "model", "--quiet")
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "model").exists()


def test_save_model_that_is_a_file_is_exit_2(tmp_path):
    rows = [{"instruction": "hello there", "category": "default"}, {"instruction": "hi", "category": "open_qa"}]
    taken = write_json(tmp_path / "taken.json", [])
    r = run_script("classify.py", "--train", write_json(tmp_path / "train.json", rows), "--save_model", taken)
    assert r.returncode == 2 and "--save_model is a file" in r.stderr and taken.read_text() == "[]"


def test_bad_labelled_file_names_the_record(tmp_path):
    bad = write_json(tmp_path / "eval.json", [{"instruction": "hi", "category": "default"},
                                              {"instruction": "yo", "category": "chitchat"}])
    r = run_script("classify.py", "--eval", bad)
    assert r.returncode == 2 and "record 1" in r.stderr and "chitchat" in r.stderr


def test_eval_prints_accuracy_table_and_confusions(tmp_path, capsys):
    data = write_json(tmp_path / "eval.json", [
        {"instruction": "Write a sonnet about rain.", "category": "poem_generation"},
        {"instruction": "Translate 'thank you' into Spanish.", "category": "text_to_text_translation"},
        {"instruction": "Write a sonnet about snow.", "category": "story_generation"}])
    code, stdout = classify_main(capsys, "--eval", data, "--quiet")
    assert code == 0
    assert "accuracy 66.7%" in stdout and "macro-F1" in stdout
    assert "story_generation -> poem_generation" in stdout
    assert "accuracy against coverage" in stdout and "0.90" in stdout


# ---------------------------------------------------------------- openai backend, real local server

def tips(query):
    """The fake's answer: advice_giving for questions about tips, no task name for the rest."""
    return "advice_giving" if "tips" in query else None


def test_openai_backend_against_a_local_server(tmp_path):
    key = "sk-test-CLASSIFY-5e1d0c9b7a"
    recs = [make_record(i, q=q, cat=None) for i, q in enumerate(
        ["Give three tips for staying healthy.", "What is the capital of Peru?", "Any tips for sleeping well?"])]
    inp = write_json(tmp_path / "in.json", recs)
    out = tmp_path / "out.json"
    with ClassifierFake(answer=tips, throttle_first=1, retry_after=0, api_key=key) as srv:
        r = run_script("classify.py", "--input_data_path", inp, "--output_path", out, "--backend", "openai",
                       "--base_url", f"{srv.url}/v1", "--model", "gair-cls", "--llm_prompt", "spec", "--quiet",
                       env={"OPENAI_API_KEY": key})
        bodies = [json.loads(q["body"]) for q in srv.requests if q["body"]]
    assert r.returncode == 0, r.stderr
    assert [rec["items"][0]["category"] for rec in read(out)] == ["advice_giving", "default", "advice_giving"]
    assert len(bodies) == 4  # one 429 retried
    sent = {b["prompt"] for b in bodies}
    assert sent == {TEMPLATE.format(input=rec["items"][0]["value"]) for rec in recs}
    assert all(b["temperature"] == 0.0 and b["max_tokens"] == 50 and b["model"] == "gair-cls" for b in bodies)
    assert key not in r.stdout + r.stderr


def test_openai_backend_bad_key_is_exit_2_without_the_key(tmp_path):
    inp = write_json(tmp_path / "in.json", [make_record(0, q="hello", cat=None)])
    out = tmp_path / "out.json"
    with ClassifierFake(api_key="sk-right-key-000000") as srv:
        r = run_script("classify.py", "--input_data_path", inp, "--output_path", out, "--backend", "openai",
                       "--base_url", f"{srv.url}/v1", "--quiet", env={"OPENAI_API_KEY": "sk-wrong-key-123456"})
    assert r.returncode == 2 and "authentication failed" in r.stderr
    assert "sk-wrong-key-123456" not in r.stdout + r.stderr
    assert not out.exists()


def test_openai_failures_exit_1_and_a_rerun_classifies_only_those(tmp_path):
    recs = [make_record(i, q=f"Any tips for question {i}?", cat=None) for i in range(4)]
    inp = write_json(tmp_path / "in.json", recs)
    out = tmp_path / "out.json"
    flags = ["--backend", "openai", "--model", "gair-cls", "--quiet", "--max_retries", "0"]
    with ClassifierFake(answer=tips, fail_first=1) as srv:
        first = run_script("classify.py", "--input_data_path", inp, "--output_path", out, "--base_url",
                           f"{srv.url}/v1", *flags, env={"OPENAI_API_KEY": ""})
    assert first.returncode == 1 and "1 records could not be classified" in first.stdout
    assert sum("category" not in rec["items"][0] for rec in read(out)) == 1
    with ClassifierFake(answer=tips) as srv:
        # issue 15: an output may not be the step's input, so the rerun writes a new file
        second = run_script("classify.py", "--input_data_path", out, "--output_path", tmp_path / "out2.json",
                            "--base_url", f"{srv.url}/v1", *flags, env={"OPENAI_API_KEY": ""})
        sent = srv.request_count
    assert second.returncode == 0, second.stderr
    assert sent == 1 and "3 kept their category" in second.stdout
    assert {rec["items"][0]["category"] for rec in read(tmp_path / "out2.json")} == {"advice_giving"}


def test_encoder_threads_without_sched_getaffinity(monkeypatch):
    from realign.classifier.encoder import usable_cpus

    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # as on macOS
    assert usable_cpus() >= 1
