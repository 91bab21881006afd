"""Does a rewrite keep the meaning of its original? A small checker on CPU (onnxruntime + numpy, no torch).

    from realign.faithful import Checker
    checker = Checker()                       # ~0.3 s: the classifier's sentence encoder and a 1 KB model
    v = checker.check(question, original, rewrite, evidence=())
    v.flagged, v.kind, v.direction, v.sentence, v.detail, v.reason()
    verdicts = checker.score_many([(question, original, rewrite, evidence), ...])   # batched

It reads the rewrite against question + original + evidence, clause by clause, in both directions
(SummaC's sentence-level idea; training on perturbations of our own texts is FactCC's):
- word-alignment checks (align.py), certain enough to flag a record alone: a clause of the rewrite
  that flips the polarity of its source clause (a negation added or taken away, an opposite word,
  two words swapped, one option of the question put for the other) is a "contradiction"; a verdict
  (yes/no, true/false/partly, positive/negative/mixed) not the original's is a "verdict";
- "added": a rewrite clause whose content words the sources lack; "lost": an original clause whose
  content words the rewrite lacks. These are weighed by a logistic model (model/head.npz,
  train_head.py) on how many and how rare the missing words are and on the cosine, from the
  sentence encoder the classifier already ships, of the clause with the other side's closest
  sentences: a paraphrase scores low, an added claim or a dropped detail high;
- "restates the request": a rewrite whose content words come from the request rather than the
  original (the incoming e-mail copied back, the asker's criteria listed).
The encoder reads only the clauses a word check cannot settle, each unique text once per batch.
A record is flagged by its surest finding; thresholds in model/meta.json, tuned on the dev sets
(bench/README.md, "faithfulness checker").
"""

import json
import os
import re
from dataclasses import dataclass, field

import numpy as np

from realign.faithful.align import Finding, findings
from realign.faithful.details import details
from realign.faithful.features import clause_features
from realign.faithful.text import claims, stems

MODEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model")
HEAD_FILE = "head.npz"    # the clause model (train_head.py)
META_FILE = "meta.json"
MAX_CHARS = 20_000  # characters read of each text (question, original, rewrite, each passage): bounded work
UNSUPPORTED, LOST, RESTATES = "unsupported", "lost", "restates the request"
ADDED_P, LOST_P = "added", "lost"            # threshold names: the model's P(flawed) for a finding
ADDED_WORDS, LOST_WORDS = "added words", "lost words"   # missing (weighted) words for the model to read it
DEFAULT_THRESHOLDS = {RESTATES: 0.6, ADDED_P: 0.8, LOST_P: 0.8, ADDED_WORDS: 1.0, LOST_WORDS: 1.0}
COSINE_LOW = 0.0    # at or under the cosine of two sentences that share words (all-MiniLM-L6-v2: 99.5 % of
#                     the windows of our sets score above 0.06, the lowest -0.01)
EMBEDDING_CACHE = 20_000   # sentence embeddings kept per process (384 floats each: 30 MB)
RESTATE_LEAST = 5  # content words from the request, at least, before a rewrite can count as restating it
SURE = ("contradiction", "verdict", "dropped", "conclusion")   # findings that flag a record alone
_CODE = re.compile(r"```|`[^`\n]{8,}`|^(?: {4}|\t)\S", re.M)


@dataclass
class Verdict:
    """What the checker found in one record. `direction` is None when nothing was flagged; else the
    flagged `sentence` (of the rewrite for "unsupported", of the original for "lost", the start of
    the rewrite for "restates the request"), its `score` (the model's P(flawed) for an added or
    lost clause, 1.0 for a contradiction or a verdict, the share of the rewrite's words that come
    from the request for "restates the request") and the `threshold` it passed."""
    flagged: bool = False
    direction: str = None
    sentence: str = None
    score: float = None
    threshold: float = None
    findings: list = field(default_factory=list)  # every align.Finding of the record, surest first
    pairs: int = 0                                 # clauses the encoder read
    kind: str = None       # what was found: contradiction, verdict, added, lost, restates, model
    detail: str = None     # how: "'smaller' became 'larger'", "new words: ...", "missing: ..."
    top: dict = field(default_factory=dict)        # {"added"/"lost": the highest P(flawed) of that kind;
    #                                                 for a finding the encoder did not need, its highest possible}

    def reason(self):
        """One line for the report: what was found, how, and the sentence (None when not flagged)."""
        if not self.flagged:
            return None
        said = repr(self.sentence[:200])
        if self.kind == "restates":
            return f"the checker: the rewrite restates the request instead of answering it ({self.detail}): {said}"
        if self.kind == "contradiction":
            return f"the checker: rewrite sentence contradicts the original ({self.detail}): {said}"
        if self.kind == "verdict":
            return f"the checker: the rewrite changes the original's verdict ({self.detail}): {said}"
        if self.kind == "dropped":
            return f"the checker: a detail of the original is lost in the rewrite ({self.detail}): {said}"
        if self.kind == "conclusion":
            return f"the checker: the rewrite changes the original's conclusion ({self.detail}): {said}"
        if self.kind == "added":
            return (f"the checker: rewrite sentence unsupported by the question, original or evidence "
                    f"({self.detail}; score {self.score:.2f} >= {self.threshold:.2f}): {said}")
        if self.kind == "lost":
            return (f"the checker: original sentence lost in the rewrite ({self.detail}; "
                    f"score {self.score:.2f} >= {self.threshold:.2f}): {said}")
        return f"the checker: {self.direction}: {said}"


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
    """The faithfulness checker; see the module docstring. The sentence encoder runs on `workers`
    threads (default: one per usable core); `thresholds` override model/meta.json's."""

    def __init__(self, folder=MODEL_DIR, workers=None, thresholds=None):
        from realign.classifier.encoder import SentenceEncoder, usable_cpus
        from realign.classifier.model import DEFAULT_MODEL_DIR

        self.workers = workers or min(usable_cpus(), 8)
        with np.load(os.path.join(folder, HEAD_FILE)) as f:
            self.head = {k: f[k] for k in f.files}
        self.encoder = SentenceEncoder(DEFAULT_MODEL_DIR, workers=self.workers)
        meta_path = os.path.join(folder, META_FILE)
        self.meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
        self._embedded = {}
        self.thresholds = {**DEFAULT_THRESHOLDS, **self.meta.get("thresholds", {}), **(thresholds or {})}

    def probability(self, kind, rows):
        """The model's P(flawed) for feature rows (features.clause_features) of "added" or "lost"."""
        if not len(rows):
            return np.zeros(0, dtype=np.float32)
        h = self.head
        z = ((np.asarray(rows, dtype=np.float32) - h[f"{kind}_mean"]) / h[f"{kind}_scale"]) @ h[f"{kind}_w"]
        return (1 / (1 + np.exp(-(z + h[f"{kind}_b"][0])))).astype(np.float32)

    def _plan(self, question, original, rewrite, evidence, arithmetic=False):
        """One record's findings (align.py) and its restates score."""
        question, original, rewrite = question[:MAX_CHARS], original[:MAX_CHARS], rewrite[:MAX_CHARS]
        evidence = [e[:MAX_CHARS] for e in evidence]
        share = restated_share(question, original, rewrite)
        # a rewrite explaining the request's or the original's code in words cannot be checked
        # against it word for word: no "added" clause is looked for there
        code = bool(_CODE.search(original) or _CODE.search(question))
        found = findings(question, original, rewrite, evidence, added_at=self.thresholds[ADDED_WORDS],
                         lost_at=self.thresholds[LOST_WORDS], code=code, arithmetic=arithmetic)
        # sure word checks for a field, an item or a recommendation (details.py), ahead of the rest
        found[:0] = [Finding(kind, direction, sentence, 1.0, detail)
                     for kind, direction, sentence, detail in details(question, original, rewrite)]
        return found, share, rewrite

    def _embed(self, texts):
        """Embeddings of `texts`, each run alone (encoder.BATCH is 1): the int8 encoder quantises
        its activations per run, so batched with others a text's vector, and a record's verdict,
        would depend on its neighbours in the run."""
        return self.encoder.encode(texts)

    def _cosines(self, found):
        """{(clause, window): the highest cosine of the clause with its window's sentences}. Each
        text is embedded once per process (up to EMBEDDING_CACHE texts are kept): a record's
        windows share sentences, and a dataset repeats its lead-ins and boilerplate."""
        texts = {t for f in found if f.window for t in (f.clause, *f.window)}
        new = sorted(texts - self._embedded.keys())
        if new:
            if len(self._embedded) + len(new) > EMBEDDING_CACHE:
                self._embedded.clear()
            self._embedded.update(zip(new, self._embed(new)))
        vec = self._embedded
        return {(f.clause, tuple(f.window)): float(max(vec[w] @ vec[f.clause] for w in f.window))
                for f in found if f.window}

    def _verdict(self, found, scores, share, rewrite, settled=frozenset()):
        if share >= self.thresholds[RESTATES]:
            first = next(iter(claims(rewrite)), rewrite.strip()[:80])
            return Verdict(True, RESTATES, first, round(share, 3), self.thresholds[RESTATES], found, 0,
                           "restates", f"{share:.0%} of its own words are the request's")
        read = sum(f.kind in ("added", "lost") and id(f) not in settled for f in found)
        top = {}
        for f in found:
            if id(f) in scores:
                top[f.kind] = max(top.get(f.kind, 0.0), scores[id(f)])
        for f in found:
            if f.kind in SURE:
                return Verdict(True, f.direction, f.sentence, 1.0, None, found, read, f.kind, f.detail, top)
        best = None
        for f in found:
            if f.kind in ("added", "lost"):
                p, limit = scores[id(f)], self.thresholds[ADDED_P if f.kind == "added" else LOST_P]
                if p >= limit and (best is None or p > best[0]):
                    best = (p, f, limit)
        if best:
            p, f, limit = best
            return Verdict(True, f.direction, f.sentence, round(p, 3), limit, found, read, f.kind, f.detail, top)
        return Verdict(findings=found, pairs=read, top=top)

    def check(self, question, original, rewrite, evidence=(), arithmetic=False):
        """The Verdict on one record (arithmetic=True for math tasks: worked steps are not read)."""
        return self.score_many([(question, original, rewrite, evidence)], arithmetic=arithmetic)[0]

    def score_many(self, records, progress=None, arithmetic=False):
        """Verdicts for many records at once: records are (question, original, rewrite, evidence)
        tuples, or with a fifth item, arithmetic (True for a math task: see check); the encoder
        reads all their unsettled clauses together, each unique text once."""
        plans = [self._plan(*rec[:3], tuple(rec[3] or ()), rec[4] if len(rec) > 4 else arithmetic)
                 for rec in records]
        # a record that restates the request, or holds a contradiction, needs no encoder
        open_ = [f for found, share, _ in plans if share < self.thresholds[RESTATES]
                 and not any(f.kind in SURE for f in found)
                 for f in found if f.kind in ("added", "lost")]
        # the model's P(flawed) falls as the cosine rises: a finding under its threshold even at
        # the lowest cosine is settled without the encoder (it cannot flag the record)
        settled = set()
        for kind in ("added", "lost"):
            mine = [f for f in open_ if f.kind == kind]
            limit = self.thresholds[ADDED_P if kind == "added" else LOST_P]
            worst = self.probability(kind, [clause_features(f, COSINE_LOW) for f in mine])
            best = self.probability(kind, [clause_features(f, 1.0) for f in mine])
            settled.update(id(f) for f, w, b in zip(mine, worst, best) if w < limit and b < limit)
        cos = self._cosines([f for f in open_ if id(f) not in settled])
        scores = {}
        for kind in ("added", "lost"):
            mine = [f for f in open_ if f.kind == kind]
            rows = [clause_features(f, cos.get((f.clause, tuple(f.window)), COSINE_LOW if id(f) in settled else None))
                    for f in mine]
            scores.update(zip(map(id, mine), map(float, self.probability(kind, rows))))
        out = []
        for found, share, rewrite in plans:
            out.append(self._verdict(found, scores, share, rewrite, settled))
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
    return os.path.exists(os.path.join(folder, HEAD_FILE))
