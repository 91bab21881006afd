"""An LLM judge of faithfulness, on any endpoint: the optional last check of the filter step.

    judge = Judge(backend, JudgeSettings(model="gpt-4o-mini"), journal="final.json.judge.jsonl")
    verdicts = judge.verdicts(pairs)      # one JudgeVerdict per Pair, in order

For each rewrite the rules accept, one request shows the model the question, the original
answer, the evidence and the rewrite, and asks two things, after RAGAS faithfulness (claims of
the answer, each checked against the context) and FActScore (atomic facts, each checked):

- unsupported: the claims of the rewrite that neither the original nor the question nor the
  evidence states or directly implies (an added fact, a changed number or conclusion, a
  reversal, advice never given);
- lost: the facts of the original the rewrite no longer states, or states more vaguely.

The reply is JSON ({"unsupported": [{"claim", "why"}], "lost": [{"fact", "why"}]}). The request
carries a JSON schema as `response_format` (OpenAI structured outputs; a server that refuses the
field gets the request again without it, see llm/openai_http.py), and the reply is read
leniently either way (read_verdict): <think> blocks dropped, a ``` fence unwrapped, the first
JSON object holding either list taken, strings accepted for items.

Requests go through the same backends and runner as reformat.py (realign.llm: pacing, 429s,
retries, the circuit breaker; a reply cut at the token limit or unreadable is asked again).
Every verdict is appended to a journal (JSONL) as it arrives, keyed by a hash of what was
judged (judge model, prompt, question, original, rewrite, evidence): a rerun, or a run with
other rules, asks only about rewrites it has no verdict for. A rewrite the judge could not
judge keeps the rules' verdict; JudgeVerdict.error says why.
"""

import asyncio
import hashlib
import json
import re
from dataclasses import dataclass, field

from realign.bars import progress_bar
from realign.files import JsonlAppender, read_jsonl_tolerant
from realign.limits import RetryPolicy
from realign.llm.base import Request, Sampling, Unusable
from realign.llm.runner import Stats, run_step
from realign.prompts import format_evidence, strip_think
from realign.textchecks import whole_fence

JUDGE_SYSTEM = (
    "You check whether an edited answer says the same things as the answer it was made from. "
    "You judge meaning only: never style, layout, length or quality."
)

JUDGE_TEMPLATE = """\
[Question]
{question}

[Original answer]
{original}
{evidence_block}
[Edited answer]
{rewrite}

The edited answer was made from the original answer by changing its layout (headings, lists, \
steps, merged or split sentences, a lead-in or a summary line). It must state the same facts \
and reach the same conclusion.

First go through the edited answer claim by claim. A claim is unsupported when neither the \
original answer nor the question{evidence_name} states it or plainly implies it: an added \
fact, example or piece of advice, a changed number, name or conclusion, a reversed statement \
("before" for "after", "should" for "should not", "dry" for "humid"). Headings, lead-ins and \
plain restatements are not claims. An edited answer that repeats the question instead of \
answering it makes claims the original does not support.

Then go through the original answer fact by fact. A fact is lost when the edited answer no \
longer states it, or states it more vaguely: a dropped step, item, warning, condition, number \
or name.

Reply with JSON only:
{{"unsupported": [{{"claim": "<the edited answer's words>", "why": "<one short sentence>"}}], \
"lost": [{{"fact": "<the original answer's words>", "why": "<one short sentence>"}}]}}
Use empty lists when the edited answer is faithful."""

_ITEM = {"type": "object", "additionalProperties": False, "required": ["why"], "properties": {"why": {"type": "string"}}}
VERDICT_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["unsupported", "lost"],
    "properties": {
        "unsupported": {"type": "array", "items": {**_ITEM, "required": ["claim", "why"],
                                                   "properties": {"claim": {"type": "string"}, **_ITEM["properties"]}}},
        "lost": {"type": "array", "items": {**_ITEM, "required": ["fact", "why"],
                                            "properties": {"fact": {"type": "string"}, **_ITEM["properties"]}}},
    },
}
RESPONSE_FORMAT = {"type": "json_schema",
                   "json_schema": {"name": "faithfulness_verdict", "strict": True, "schema": VERDICT_SCHEMA}}
# what identifies the question asked: a changed prompt or schema re-asks every record
PROMPT_VERSION = hashlib.blake2b((JUDGE_SYSTEM + JUDGE_TEMPLATE + json.dumps(VERDICT_SCHEMA)).encode(),
                                 digest_size=8).hexdigest()


@dataclass
class JudgeVerdict:
    """What the judge said about one rewrite: lists of (claim, why) and (fact, why); or, when it
    could not judge it, `error`. `cached`: read from the journal, not asked this run."""
    unsupported: list = field(default_factory=list)
    lost: list = field(default_factory=list)
    error: str | None = None
    cached: bool = False

    @property
    def faithful(self):
        return self.error is None and not self.unsupported and not self.lost

    def as_json(self):
        out = {"unsupported": [list(x) for x in self.unsupported], "lost": [list(x) for x in self.lost]}
        return {**out, "error": self.error} if self.error else out


@dataclass
class JudgeSettings:
    model: str
    max_tokens: int = 1024
    temperature: float = 0.0
    concurrency: int | None = None
    rpm: float | None = None
    tpm: float | None = None
    max_retries: int = 5


def build_judge_messages(question, original, rewrite, evidence=()):
    """The chat messages asking about one rewrite (evidence optional)."""
    block = format_evidence(evidence) if evidence else ""
    user = JUDGE_TEMPLATE.format(question=question, original=original, rewrite=rewrite,
                                 evidence_block=f"\n[Evidence]\n{block}\n" if block else "",
                                 evidence_name=" nor the evidence" if block else "")
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


# ---------------------------------------------------------------- reading the reply

_DECODER = json.JSONDecoder()
_TEXT_KEYS = ("claim", "fact", "statement", "text", "sentence")
_WHY_KEYS = ("why", "reason", "explanation")


def _items(value, field_name):
    """[(text, why)] from a list of {"claim"/"fact": …, "why": …} objects or plain strings."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise Unusable(f"the judge's {field_name!r} is not a list")
    out = []
    for item in value:
        if isinstance(item, str):
            text, why = item, ""
        elif isinstance(item, dict):
            text = next((item[k] for k in _TEXT_KEYS if isinstance(item.get(k), str)), "")
            why = next((item[k] for k in _WHY_KEYS if isinstance(item.get(k), str)), "")
        else:
            continue
        text, why = " ".join(text.split()), " ".join(why.split())
        if text or why:
            out.append((text, why))
    return out


def _first_verdict_object(text):
    """The first JSON object in `text` holding "unsupported" or "lost", or None."""
    try:
        obj = json.loads(text)
        if isinstance(obj, dict) and ("unsupported" in obj or "lost" in obj):
            return obj
    except ValueError:
        pass
    for m in re.finditer(r"\{", text):
        try:
            obj, _ = _DECODER.raw_decode(text, m.start())
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict) and ("unsupported" in obj or "lost" in obj):
            return obj
    return None


def read_verdict(text):
    """A JudgeVerdict from a judge's reply text; Unusable when it holds none."""
    if not isinstance(text, str) or not text.strip():
        raise Unusable("the judge's reply is empty")
    answer = strip_think(text).strip()
    fence = whole_fence(answer)
    if fence:
        answer = fence[1]
    obj = _first_verdict_object(answer)
    if obj is None:
        flat = " ".join(answer.split())
        raise Unusable(f"no verdict in the judge's reply: {flat[:80]!r}")
    return JudgeVerdict(_items(obj.get("unsupported"), "unsupported"), _items(obj.get("lost"), "lost"))


def check_reply(completions, request=None):
    """The runner's check: the verdict of the one completion; Unusable (asked again) when it was
    cut, filtered, refused or unreadable."""
    if not completions:
        raise Unusable("no reply")
    c = completions[0]
    if c.truncated:
        raise Unusable("the judge's reply was cut at --judge_max_tokens", retries=1)
    if c.filtered:
        raise Unusable("the judge's reply was cut by a content filter", retries=0)
    if c.refusal:
        raise Unusable(f"the judge refused: {' '.join(c.refusal.split())[:80]!r}", retries=0)
    if not c.finished:  # "error", "abort", a stream cut off: half a verdict can read as a whole one
        raise Unusable(f"the judge's reply was {c.cut_reason}", retries=1)
    return read_verdict(c.text)


# ---------------------------------------------------------------- the journal

def judge_key(model, pair):
    """What identifies one judgement: the judge model, the prompt, and everything it was shown."""
    blob = json.dumps([PROMPT_VERSION, model, pair.question, pair.original, pair.rewrite, list(pair.evidence)],
                      ensure_ascii=False)
    return hashlib.blake2b(blob.encode("utf-8"), digest_size=16).hexdigest()


class JudgeJournal:
    """The verdicts had so far, by judge_key, read from and appended to a JSONL file."""

    def __init__(self, path):
        self.path = path
        self.known = {}
        if path:
            for entry in read_jsonl_tolerant(path)[0]:
                if isinstance(entry, dict) and isinstance(entry.get("key"), str):
                    self.known[entry["key"]] = JudgeVerdict([tuple(x) for x in entry.get("unsupported", [])],
                                                            [tuple(x) for x in entry.get("lost", [])], cached=True)
        self._out = JsonlAppender(path) if path else None

    def add(self, key, verdict, rid):
        self.known[key] = verdict
        if self._out:
            self._out.write({"key": key, "id": rid, **verdict.as_json()})

    def close(self):
        if self._out:
            self._out.close()


# ---------------------------------------------------------------- the judge

@dataclass
class JudgeStats:
    judged: int = 0        # verdicts had (asked now or from the journal)
    from_journal: int = 0
    failed: int = 0        # rewrites it could not judge (they keep the rules' verdict)
    requests: int = 0      # calls really made, retries included
    throttled: int = 0
    tokens_in: int = 0     # estimated, for a dry run
    tokens_out: int = 0
    would_ask: int = 0     # dry run: rewrites it would ask about


class Judge:
    """Asks `backend` about each Pair it is given; see the module docstring. dry_run: ask
    nothing, count what would be asked (stats.would_ask, tokens_in, tokens_out). `by_id`: every
    verdict had this run, by record id."""

    def __init__(self, backend, settings, journal=None, length=None, dry_run=False, progress=True):
        self.backend, self.settings, self.dry_run, self.progress = backend, settings, dry_run, progress
        self.journal = JudgeJournal(journal)
        self.length = length or (lambda text: len(text.split()))
        self.stats = JudgeStats()
        self.by_id = {}

    def _request(self, key, pair):
        messages = build_judge_messages(pair.question, pair.original, pair.rewrite, pair.evidence)
        tokens_in = sum(self.length(m["content"]) for m in messages)
        return Request(key, messages=messages, response_format=RESPONSE_FORMAT,
                       sampling=Sampling(n=1, temperature=self.settings.temperature,
                                         max_tokens=self.settings.max_tokens),
                       cost_tokens=tokens_in + self.settings.max_tokens)

    def estimate_out(self, pair):
        """Tokens a verdict is expected to take: a faithful rewrite's is a few tokens; 60 plus a
        tenth of the two answers, capped at max_tokens."""
        return min(self.settings.max_tokens, 60 + (self.length(pair.original) + self.length(pair.rewrite)) // 10)

    def verdicts(self, pairs):
        """One JudgeVerdict per Pair (None for all in a dry run), in order."""
        keys = [judge_key(self.settings.model, p) for p in pairs]
        out = [self.journal.known.get(k) for k in keys]
        self.stats.from_journal += sum(v is not None for v in out)
        todo = {}
        for i, (k, v) in enumerate(zip(keys, out)):
            if v is None:
                todo.setdefault(k, []).append(i)
        if self.dry_run:
            for k, where in todo.items():
                pair = pairs[where[0]]
                self.stats.would_ask += 1
                self.stats.tokens_in += self._request(k, pair).cost_tokens - self.settings.max_tokens
                self.stats.tokens_out += self.estimate_out(pair)
            return [None] * len(pairs)
        if todo:
            requests = [self._request(k, pairs[where[0]]) for k, where in todo.items()]
            for key, verdict in asyncio.run(self._ask(requests, {k: pairs[w[0]].id for k, w in todo.items()})):
                for i in todo[key]:
                    out[i] = verdict
        self.stats.judged += sum(v is not None and v.error is None for v in out)
        self.stats.failed += sum(v is not None and v.error is not None for v in out)
        self.by_id.update((p.id, v) for p, v in zip(pairs, out))
        return out

    def summary(self):
        """The run's numbers, for the report: judged, from_journal, rejected, failed, requests."""
        rejected = sum(v is not None and v.error is None and not v.faithful for v in self.by_id.values())
        return {"model": self.settings.model, "judged": self.stats.judged, "from_journal": self.stats.from_journal,
                "rejected": rejected, "failed": self.stats.failed, "requests": self.stats.requests,
                "throttled": self.stats.throttled}

    def line(self):
        """One summary line for the step's output."""
        s = self.summary()
        failed = [v.error for v in self.by_id.values() if v is not None and v.error]
        text = (f"judge {s['model']}: {s['judged']} rewrites judged ({s['from_journal']} from the journal "
                f"{self.journal.path}), {s['rejected']} rejected, {s['requests']} requests")
        if failed:
            text += (f"; {len(failed)} could not be judged and keep the rules' verdict (first reason: "
                     f"{failed[0][:120]}); rerun to ask again")
        return text

    async def _ask(self, requests, ids):
        results = []
        bar = progress_bar(len(requests), "rewrite", desc="judge", enabled=self.progress)

        def on_done(outcome):
            key = outcome.request.key
            if outcome.ok:
                self.journal.add(key, outcome.result, ids[key])
                results.append((key, outcome.result))
            else:
                results.append((key, JudgeVerdict(error=outcome.error)))
            bar.update(1)

        stats = Stats()
        try:
            await run_step(self.backend, requests, on_done, concurrency=self.settings.concurrency,
                           policy=RetryPolicy(max_retries=self.settings.max_retries), rpm=self.settings.rpm,
                           tpm=self.settings.tpm, check=check_reply, stats=stats)
        finally:
            bar.close()
            self.stats.requests += self.backend.calls
            self.stats.throttled += stats.throttled
            await self.backend.aclose()
        return results

    def close(self):
        self.journal.close()


def as_rule(judge, reason_of):
    """The filter rule named "judge": a whole-run batched rule (selection.whole_run: in the main
    process, after the worker processes) asking `judge` about every rewrite still undecided at
    its turn, each verdict turned into a rule's answer by reason_of(verdict)."""
    from realign.selection import whole_run

    def judge_rule(pairs):
        return [reason_of(v) for v in judge.verdicts(pairs)]

    judge_rule.__name__ = "judge"
    return whole_run(judge_rule)
