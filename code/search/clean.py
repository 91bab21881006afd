"""Evidence: turning search results into short strings, and the rules that clean them.

A *hit* is one piece of evidence with where it came from:
    {"text": "...", "source": "answerBox"|"knowledgeGraph"|"organic"|"corpus"|"none",
     "title": "...", "link": "..."}

The raw output file stores a record's hits as two parallel lists on its question turn:
`items[0]["evidence"]` (the texts) and `items[0]["evidence_sources"]` (the rest: source, title,
link, the relevance `score`, and `bm25` for corpus hits), plus `items[0]["evidence_dropped"]`:
the hits the relevance floor (relevance.py) turned away, with their scores, to tune it by.
The clean file, which reformat.py reads, keeps `evidence`, cleaned by `clean_evidence`, and
`evidence_scores` beside it (the report shows them), and drops both when nothing survives.
"""

# What a Google search with nothing usable leaves in the raw evidence (kept for compatibility
# with ReAlign data; the cleaner removes it).
NO_RESULT = "No good Google Search Result was found"

# Snippet lines Google emits that carry no facts: query words the page lacks, video
# lengths, forum dates.
JUNK_PREFIXES = ("Missing:", "Duration:", "Posted:")


def hit(text, source, title="", link=""):
    return {"text": str(text).strip(), "source": source, "title": str(title or ""), "link": str(link or "")}


# ---------------------------------------------------------------- Serper reply -> hits

def _answer_box_hits(box):
    text = box.get("answer") or box.get("snippet") or " ".join(map(str, box.get("snippetHighlighted") or []))
    return [hit(text, "answerBox", box.get("title"), box.get("link"))] if str(text).strip() else []


def _knowledge_graph_hits(kg):
    """The entity's description, then one line per attribute ("Paris Population: 2.1 million")."""
    name = kg.get("title") or ""
    link = kg.get("descriptionLink") or kg.get("website") or ""
    hits = []
    if kg.get("description"):
        kind = f" ({kg['type']})" if kg.get("type") else ""
        hits.append(hit(f"{name}{kind}: {kg['description']}", "knowledgeGraph", name, link))
    for attr, value in (kg.get("attributes") or {}).items():
        hits.append(hit(f"{name} {attr}: {value}".strip(), "knowledgeGraph", name, link))
    return hits


def _organic_hits(results):
    return [hit(r["snippet"], "organic", r.get("title"), r.get("link"))
            for r in results if isinstance(r, dict) and str(r.get("snippet") or "").strip()]


def serper_hits(reply, top_k=5):
    """Hits from one Serper /search reply: answer box, knowledge graph, organic snippets, in
    that order; the first `top_k` kept. Nothing usable gives the single NO_RESULT hit."""
    hits = (_answer_box_hits(reply.get("answerBox") or {})
            + _knowledge_graph_hits(reply.get("knowledgeGraph") or {})
            + _organic_hits(reply.get("organic") or []))
    return hits[:top_k] or [hit(NO_RESULT, "none")]


# ---------------------------------------------------------------- records

SOURCE_KEYS = ("source", "title", "link", "score", "bm25")
RAW_KEYS = ("evidence", "evidence_sources", "evidence_dropped", "evidence_scores")


def attach_hits(rec, hits, dropped=()):
    """Put hits (and those the floor dropped) on the record's question turn, in the raw-file
    shape (mutates `rec`)."""
    first = rec["items"][0]
    first["evidence"] = [h["text"] for h in hits]
    first["evidence_sources"] = [{k: h[k] for k in SOURCE_KEYS if k in h} for h in hits]
    first.pop("evidence_dropped", None)
    if dropped:
        first["evidence_dropped"] = [{k: h[k] for k in ("text", *SOURCE_KEYS) if k in h} for h in dropped]


def has_evidence(rec):
    """True once a record has been searched (even when the search found nothing)."""
    return "evidence" in rec["items"][0]


def is_junk(snippet):
    text = snippet.strip()
    return not text or text == NO_RESULT or text.startswith(JUNK_PREFIXES)


def _kept_positions(snippets):
    seen, kept = set(), []
    for i, s in enumerate(snippets):
        if not is_junk(s) and s.strip() not in seen:
            seen.add(s.strip())
            kept.append(i)
    return kept


def clean_evidence(snippets):
    """Drop NO_RESULT, blank snippets, snippets starting with a JUNK_PREFIXES entry and exact
    repeats; order kept."""
    return [snippets[i].strip() for i in _kept_positions(snippets)]


def clean_record(rec):
    """A copy of `rec` in the clean-file shape: cleaned `evidence` and its `evidence_scores`
    (both absent when nothing is left; scores only when every passage has one), no sources."""
    old = rec["items"][0]
    first = {k: v for k, v in old.items() if k not in RAW_KEYS}
    snippets, sources = old.get("evidence") or [], old.get("evidence_sources") or []
    kept = _kept_positions(snippets)
    if kept:
        first["evidence"] = [snippets[i].strip() for i in kept]
        scores = ([s.get("score") if isinstance(s, dict) else None for s in sources] if sources
                  else list(old.get("evidence_scores") or []))  # an already clean record keeps its scores
        picked = [scores[i] if i < len(scores) else None for i in kept]
        if None not in picked:
            first["evidence_scores"] = picked
    return {**rec, "items": [first, *rec["items"][1:]]}
