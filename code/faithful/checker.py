"""Does a rewrite keep the meaning of its original? A small cross-encoder on CPU (onnxruntime, no torch).

    from realign.faithful import Checker
    checker = Checker()                       # ~0.3 s: an int8 ONNX model and a tokenizer
    v = checker.check(question, original, rewrite, evidence=())
    v.flagged, v.direction, v.sentence, v.score
    verdicts = checker.score_many([(question, original, rewrite, evidence), ...])   # batched

It judges in both directions, sentence by sentence (SummaC's idea; the model is FactCC's idea):
- "unsupported": every claim of the rewrite must be supported by question + original + evidence;
- "lost": every claim of the original must still be supported by the rewrite;
and one lexical check, "restates the request": a rewrite whose content words come from the
request rather than the original (the incoming e-mail copied back, the asker's criteria listed).

Each claim is read against its window: the K claims of the other side that share the most words
with it (text.py). Claims the other side states word for word, or whose content words all stand in
one sentence of the other side with the same negations and no order words, are settled without the
model; the rest are scored in batches. The model is all-MiniLM-L6-v2 cut to a few layers and trained
by us (train.py, pairs.py) as (premise, claim) -> P(supported). A record is flagged when its lowest
score in a direction is under that direction's threshold (meta.json, tuned on our dev sets).
"""

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from realign.faithful.text import Source, bigrams, claims, stems, words

MODEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model")
ONNX_FILE = "checker.int8.onnx"
META_FILE = "meta.json"
TOKENIZER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "classifier", "model",
                         "tokenizer.json")   # the same MiniLM word pieces the classifier ships
MAX_TOKENS = 128   # premise + claim, in word pieces; the premise is cut first
K = 3              # claims of the other side in a premise window
MAX_CLAIMS = 60    # claims read per side of a record (a longer text is judged on its first ones)
BATCH = 32
UNSUPPORTED, LOST, RESTATES = "unsupported", "lost", "restates the request"
ORDER_WORDS = frozenset("before after then first last than until earlier later prior following".split())
NEGATIONS = frozenset("not never no without nor none neither".split())
DEFAULT_THRESHOLDS = {UNSUPPORTED: 0.5, LOST: 0.5, RESTATES: 0.6}
RESTATE_LEAST = 5  # content words from the request, at least, before a rewrite can count as restating it


@dataclass
class Verdict:
    """What the checker found in one record. `direction` is None when nothing was flagged; else the
    flagged `sentence` (of the rewrite for "unsupported", of the original for "lost", the start of
    the rewrite for "restates the request") and its `score` (P(supported), or for "restates the
    request" the share of the rewrite's words that come from the request)."""
    flagged: bool = False
    direction: str = None
    sentence: str = None
    score: float = None
    threshold: float = None
    lowest: dict = field(default_factory=dict)   # direction -> (score, sentence) of its lowest claim
    pairs: int = 0                                # claims the model scored


def _negations(ws):
    return sum(w in NEGATIONS for w in ws)


def settled_unsupported(ws, cs, src):
    """Is a claim of the rewrite (its words `ws`, stems `cs`) plainly stated by `src` (question +
    original + evidence): said word for word, or all its content words in one sentence there with
    as many negations and no order words ("before", "then", "than")? A claim of one content word
    that the source has (a heading) or of none (a filler line: "Here's how:") is settled too."""
    named = {s for s in cs if not s.isdigit()}
    if not named or (len(named) == 1 and named <= src.all_stems):
        return True
    if bigrams(ws) <= src.bigrams:
        return True
    if ORDER_WORDS.intersection(ws):
        return False
    negations = _negations(ws)
    return any(cs <= src.stems[i] and negations == _negations(src.words[i]) for i in src.window(cs, K))


def settled_lost(ws, cs, rsrc):
    """Is a claim of the original (words `ws`, stems `cs`) plainly still in the rewrite `rsrc`:
    said word for word, or all its content words in its window there?"""
    if sum(not s.isdigit() for s in cs) < 2:
        return True
    if bigrams(ws) <= rsrc.bigrams:
        return True
    have = set().union(*(rsrc.stems[i] for i in rsrc.window(cs, K))) if rsrc.claims else set()
    return cs <= have


def restated_share(question, original, rewrite, least=RESTATE_LEAST):
    """How much of the rewrite's content comes from the request rather than the original: of the
    rewrite's content words found in only one of the two, the share found in the request (0.0 when
    fewer than `least` come from the request, or when the rewrite keeps half the original's own
    words, as a worked solution restating the givens does). A rewrite that copies or paraphrases the incoming
    e-mail, or lists the asker's own criteria back, scores near 1; an answer scores near 0."""
    rs, qs, os_ = set(stems(rewrite)), set(stems(question)), set(stems(original))
    from_request, from_original = (rs & qs) - os_, (rs & os_) - qs
    if len(from_request) < least or len(from_original) >= 0.5 * len(os_ - qs):
        return 0.0   # too little of the request, or half the original's own words are there: an answer
    return len(from_request) / (len(from_request) + len(from_original))


class Checker:
    """The faithfulness checker; see the module docstring. One onnxruntime session, single-threaded,
    run on several batches at once from `workers` threads (default: one per usable core)."""

    def __init__(self, folder=MODEL_DIR, workers=None, thresholds=None):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        from realign.classifier.encoder import usable_cpus

        self.tokenizer = Tokenizer.from_file(TOKENIZER)
        self.tokenizer.enable_truncation(MAX_TOKENS, strategy="only_first")
        self.tokenizer.no_padding()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(os.path.join(folder, ONNX_FILE), opts, providers=["CPUExecutionProvider"])
        meta_path = os.path.join(folder, META_FILE)
        self.meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
        self.thresholds = {**DEFAULT_THRESHOLDS, **self.meta.get("thresholds", {}), **(thresholds or {})}
        self.workers = workers or min(usable_cpus(), 8)

    # ------------------------------------------------------------ the model

    def _run(self, pairs):
        enc = self.tokenizer.encode_batch(pairs)
        width = max(len(e.ids) for e in enc)
        ids = np.zeros((len(enc), width), dtype=np.int64)
        types = np.zeros_like(ids)
        mask = np.zeros_like(ids)
        for i, e in enumerate(enc):
            n = len(e.ids)
            ids[i, :n], types[i, :n], mask[i, :n] = e.ids, e.type_ids, 1
        return self.session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]

    def score_pairs(self, premises, claims_):
        """P(supported) for each (premise, claim), float32 array; batched by length, in input order."""
        pairs = list(zip(premises, claims_))
        out = np.ones(len(pairs), dtype=np.float32)
        if not pairs:
            return out
        order = np.argsort([len(p) + len(c) for p, c in pairs], kind="stable")
        chunks = [order[i:i + BATCH] for i in range(0, len(pairs), BATCH)]
        if self.workers > 1 and len(chunks) > 1:
            with ThreadPoolExecutor(self.workers) as pool:
                results = list(pool.map(lambda ch: self._run([pairs[i] for i in ch]), chunks))
        else:
            results = [self._run([pairs[i] for i in ch]) for ch in chunks]
        for ch, probs in zip(chunks, results):
            out[ch] = probs
        return out

    # ------------------------------------------------------------ records

    def _plan(self, question, original, rewrite, evidence):
        """The model inputs one record needs: [(direction, premise, claim)], and a restates score."""
        share = restated_share(question, original, rewrite)
        src = Source([question, original, *evidence])
        rsrc = Source([rewrite])
        todo = []
        for c, ws, cs in list(zip(rsrc.claims, rsrc.words, rsrc.stems))[:MAX_CLAIMS]:
            if not settled_unsupported(ws, cs, src):
                todo.append((UNSUPPORTED, src.premise(cs, K), c))
        osrc = Source([original])
        for c, ws, cs in list(zip(osrc.claims, osrc.words, osrc.stems))[:MAX_CLAIMS]:
            if not settled_lost(ws, cs, rsrc):
                todo.append((LOST, rsrc.premise(cs, K), c))
        return todo, share, rewrite

    def _verdict(self, todo, scores, share, rewrite):
        v = Verdict(pairs=len(todo))
        for (direction, _, claim), score in zip(todo, scores):
            if direction not in v.lowest or score < v.lowest[direction][0]:
                v.lowest[direction] = (float(score), claim)
        if share >= self.thresholds[RESTATES]:
            first = next(iter(claims(rewrite)), rewrite.strip()[:80])
            return Verdict(True, RESTATES, first, round(share, 3), self.thresholds[RESTATES], v.lowest, v.pairs)
        worst = None
        for direction in (UNSUPPORTED, LOST):
            if direction in v.lowest:
                score, claim = v.lowest[direction]
                margin = score - self.thresholds[direction]
                if margin < 0 and (worst is None or margin < worst[0]):
                    worst = (margin, direction, claim, score)
        if worst:
            _, v.direction, v.sentence, v.score = worst
            v.flagged, v.threshold = True, self.thresholds[v.direction]
        return v

    def check(self, question, original, rewrite, evidence=()):
        """The Verdict on one record."""
        return self.score_many([(question, original, rewrite, evidence)])[0]

    def score_many(self, records, progress=None):
        """Verdicts for many records at once: records are (question, original, rewrite, evidence)
        tuples; all their model inputs go through the model together, batched by length."""
        plans = [self._plan(q, o, r, tuple(e or ())) for q, o, r, e in records]
        flat = [(p, c) for todo, _, _ in plans for _, p, c in todo]
        scores = self.score_pairs([p for p, _ in flat], [c for _, c in flat])
        out, at = [], 0
        for todo, share, rewrite in plans:
            out.append(self._verdict(todo, scores[at:at + len(todo)], share, rewrite))
            at += len(todo)
            if progress is not None:
                progress.update(1)
        return out


_SHARED = {}


def shared_checker():
    """One Checker per process, made on first use (the filter rule calls this)."""
    if "checker" not in _SHARED:
        _SHARED["checker"] = Checker()
    return _SHARED["checker"]


def has_model(folder=MODEL_DIR):
    return os.path.exists(os.path.join(folder, ONNX_FILE))
