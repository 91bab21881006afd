"""Is a passage about the question? The relevance floor every piece of evidence must clear.

Off-topic evidence is worse than none: the rewriter is told to use it. A search engine or a
BM25 index always returns *something* (on a small corpus, any document sharing one common word),
so every hit, from either backend, is scored here against the question alone and dropped when

  - it shares none of the question's *strong* content words (content words are what is left
    after stopwords, lightly stemmed; weak ones are generic question words such as "best",
    "recommend", "explain", "way", which match everything), or
  - its score is under `min_relevance` (default DEFAULT_MIN_RELEVANCE).

The score is absolute, not relative to the other hits: the share of the question's content
words found in the passage, strong words weighing 1 and weak ones WEAK_WEIGHT, out of at most
COVER_WEIGHT (a passage holding four strong words of a long, chatty question covers it as
well as one holding both words of "Why is the sea salty?"). Sharing words cannot tell a
passage that is *about* the question from one that merely mentions its words (a tea-brewing
guide for "boiling point of water at altitude"), so the title, which says what a passage is
about, then adjusts it (see passage_score):

  - a title sharing no strong word with the question (nor a word's start, see related)
    multiplies it by OFF_TITLE: the passage is about something else ("Brewing tea", "Pacific
    Ocean" for the boiling point), unless its words answer well enough to clear the floor anyway;
  - a title's bracketed qualifier sharing no word with the question makes it 0 (a namesake:
    "Rainy Sunday (song)" for a movie on a rainy Sunday).

It lies in [0, 1] and depends on the texts only, so Serper snippets and corpus passages are
judged by the same rule.

The floor was calibrated on bench/data/relevance_pairs.json (questions x passages as BM25
and web search return them, each marked relevant or not); bench/relevance.py prints its
precision and recall at several floors.
"""

import re

from bm25s.stopwords import STOPWORDS_EN

from realign.search.clean import is_junk

DEFAULT_MIN_RELEVANCE = 0.6
TRUSTED_SOURCES = ("answerBox",)   # kept whatever their score; see RelevanceFloor
WEAK_WEIGHT = 0.25
COVER_WEIGHT = 4.0
MIN_STRONG = 2
OFF_TITLE = 0.7    # factor for a passage whose title shares no strong word with the question

WORD = re.compile(r"(?u)\b\w\w+\b")   # bm25s's default token pattern


def light_stem(words):
    """A deliberately small English suffix stripper (plurals, -ing, -ed), so that "cooking"
    meets "cook" and "vitamins" meets "vitamin". bm25s calls it on the list of unique words."""
    out = []
    for w in words:
        if len(w) > 4 and w.endswith("ies"):
            w = w[:-3] + "y"
        elif len(w) > 4 and w.endswith(("ches", "shes", "sses", "xes")) or len(w) > 6 and w.endswith("oes"):
            w = w[:-2]
        elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
            w = w[:-1]
        if len(w) > 5 and w.endswith("ing"):
            w = w[:-3]
        elif len(w) > 4 and w.endswith("ed") and not w.endswith("eed"):
            w = w[:-2]
        out.append(w)
    return out


# bm25s's English list is short; questions are full of words that match everything.
QUESTION_WORDS = ("how what why when where which who whom whose do does did done can could would "
                  "should shall may might must i me my mine you your yours we our us he she him her "
                  "they them their am been being has have had much many some any please tell give "
                  "know want need get got also just very really from up out off all its too than "
                  # what is left of contractions once the apostrophe splits them ("doesn't" -> doesn, t)
                  "doesn don isn aren wasn weren hasn haven hadn didn couldn wouldn shouldn ll ve re").split()
STOPWORDS = sorted(set(STOPWORDS_EN) | set(QUESTION_WORDS))

# Content words that say what kind of answer is wanted, not what it is about.
WEAK_WORDS = set(light_stem((
    "best better good great nice top way ways make makes making made use using used tip tips idea "
    "ideas explain explanation describe description list example examples recommend recommendation "
    "recommendations suggest suggestion suggestions help helps advice thing things people person time "
    "times new old different difference important main common type types kind kinds work works long "
    "short tall deep big small large high low lot lots little often usually actually simple simply "
    "easy hard quick quickly fast first last next right wrong true false fact facts reason reasons "
    "happen happens cause causes mean means meaning called name find think say look like start step "
    "steps year years day days week weeks today well back around still even though keep go going come "
    "take set part number whole together each every other something anything someone one two three "
    "possible possibly exactly generally general specific average typical worth instead versus vs "
    "between about information info question answer answers okay ok hi hello thanks quite enough far "
    "less more most after before during since until while within without across through over under "
    "again ever never always sometimes yet so then there here").split()))


CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")   # kana, CJK ideographs, hangul


QUESTION_CHARS = 4000  # a question is judged by its first 4000 characters, as bm25 searches them:
                       # all words of a 50 MB question would take a gigabyte


def content_words(text):
    """The text's distinct content words: lower-cased, stopwords out, lightly stemmed. A run of
    Chinese, Japanese or Korean script (no spaces between words) gives its character pairs."""
    words = [w for w in WORD.findall(text.lower()) if w not in STOPWORDS]
    pairs = {w[i:i + 2] for w in words if CJK.search(w) for i in range(len(w) - 1)}
    return set(light_stem([w for w in words if not CJK.search(w)])) | pairs


def weight(word):
    return WEAK_WEIGHT if word in WEAK_WORDS else 1.0


def relevance(question_words, passage_words):
    """Score in [0, 1]: the weighted share of the question's content words the passage holds;
    0 when it holds fewer than two of the question's strong words (than its one, if it has
    only one), or the question has no content words."""
    shared = question_words & passage_words
    strong = [w for w in question_words if w not in WEAK_WORDS]
    if not shared or sum(w in passage_words for w in strong) < min(MIN_STRONG, len(strong)):
        return 0.0
    total = min(sum(map(weight, question_words)), COVER_WEIGHT)
    return round(min(1.0, sum(map(weight, shared)) / total), 3)


BRACKETS = re.compile(r"\(([^)]*)\)")       # "Inflation (cosmology)" -> cosmology
TITLE_SITE = re.compile(r" [-|\u2013\u2014] ")   # "Mount Everest - Britannica": the site's name follows


def passage_score(question, title, text):
    """The relevance of one passage to the question (texts; the title counts as part of the
    passage), adjusted by what its title says it is about."""
    question = question[:QUESTION_CHARS]
    words = content_words(question)
    score = relevance(words, content_words(f"{title}\n{text}"))
    if not score:
        return 0.0
    if any(not content_words(qualifier) & words for qualifier in BRACKETS.findall(title)):
        return 0.0
    topic = content_words(TITLE_SITE.split(title)[0]) - WEAK_WORDS   # "Why Is the Sky Blue? | NASA" -> sky, blue
    if topic and not any(related(t, w) for t in topic for w in words):
        score *= OFF_TITLE
    return round(score, 3)


def related(a, b):
    """Same word, or one begins the other ("mount" / "mountain", "rain" / "rainy"): a title's
    word need not be the question's exact form to say the passage is about it."""
    return a == b or min(len(a), len(b)) >= 4 and (a.startswith(b) or b.startswith(a))


def clears(score, min_relevance):
    """The floor itself. A score of 0 (no strong word shared) never passes; a floor of 0 is
    no floor at all (for text the English word rules do not fit)."""
    return min_relevance <= 0 or (score > 0 and score >= min_relevance)


class RelevanceFloor:
    """`floor.split(question, hits) -> (kept, dropped)`, both in the order given, each judged
    hit with its "score" added.

    Hits the cleaner removes anyway (NO_RESULT, "Missing: ..." lines, see clean.py) are kept
    as they are: the raw file shows what the search returned, the clean file drops them.
    Google's answer box is kept whatever its score: it is the engine's direct answer to the
    query and often shares no word with it ("Who wrote Hamlet?" -> "William Shakespeare")."""

    def __init__(self, min_relevance=DEFAULT_MIN_RELEVANCE):
        self.min_relevance = min_relevance

    def split(self, question, hits):
        kept, dropped = [], []
        for h in hits:
            if is_junk(h["text"]):
                kept.append(h)
                continue
            score = passage_score(question, h["title"], h["text"])
            keep = clears(score, self.min_relevance) or h["source"] in TRUSTED_SOURCES
            (kept if keep else dropped).append({**h, "score": score})
        return kept, dropped


def precision_recall(pairs, min_relevance=DEFAULT_MIN_RELEVANCE):
    """(kept, precision, recall) of the floor on labelled pairs
    [{"question", "title", "passage", "relevant"}] (bench/data/relevance_pairs.json)."""
    kept = [p for p in pairs if clears(passage_score(p["question"], p["title"], p["passage"]),
                                       min_relevance)]
    right = sum(p["relevant"] for p in kept)
    return len(kept), right / max(1, len(kept)), right / max(1, sum(p["relevant"] for p in pairs))
