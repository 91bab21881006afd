"""Offline evidence: BM25 (the `bm25s` library) over a local corpus, the index cached on disk.

A corpus is either
  - a .jsonl file, one document a line: {"text": ..., "title"?: ..., "url"?: ..., "id"?: ...}, or
  - a folder of such .jsonl files and/or .txt / .md files (searched recursively; a text file is
    one document titled by its file name; README files and hidden folders are skipped).

The index is saved next to the corpus, in `<file>.bm25s/` for a file or `<folder>/.bm25s/` for
a folder, with a fingerprint of the corpus files (relative path, size, mtime in ns). A later run
whose corpus has the same fingerprint loads the index instead of rebuilding it; any edit, added
or removed file rebuilds it.
"""

import json
import os
import shutil
import tempfile

import bm25s

from realign.errors import DataError
from realign.files import iter_jsonl_lines
from realign.search.clean import hit
from realign.search.relevance import STOPWORDS, light_stem

INDEX_VERSION = 4            # bump when tokenisation or the saved layout changes
SNIPPET_CHARS = 1000         # a long document is cut to this many characters as evidence
TEXT_SUFFIXES = (".txt", ".md")
CORPUS_SUFFIXES = (".jsonl", *TEXT_SUFFIXES)


# ---------------------------------------------------------------- tokens

def tokenize(texts, return_ids=True):
    return bm25s.tokenize(texts, stopwords=STOPWORDS, stemmer=light_stem,
                          return_ids=return_ids, show_progress=False)


# ---------------------------------------------------------------- corpus files

def corpus_files(path):
    """The files that make up the corpus, sorted; DataError when there are none."""
    if os.path.isfile(path):
        if not path.endswith(".jsonl"):
            raise DataError(f"{path}: a corpus file must be .jsonl (or pass a folder of .jsonl/.txt/.md files)")
        return [path]
    if not os.path.isdir(path):
        raise DataError(f"{path}: corpus not found")
    files = []
    for folder, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files += [os.path.join(folder, n) for n in sorted(names)
                  if n.endswith(CORPUS_SUFFIXES) and not n.upper().startswith("README")]
    if not files:
        raise DataError(f"{path}: no .jsonl, .txt or .md files in the corpus folder")
    return files


def fingerprint(path, files):
    base = path if os.path.isdir(path) else os.path.dirname(path)
    return [[os.path.relpath(f, base), os.stat(f).st_size, os.stat(f).st_mtime_ns] for f in files]


def _read_utf8(file):
    try:
        with open(file, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError:
        raise DataError(f"{file}: not UTF-8 text") from None


def _jsonl_documents(file):
    docs = []
    for n, obj in iter_jsonl_lines(_read_utf8(file), file):
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or not obj["text"].strip():
            raise DataError(f"{file}: line {n}: a corpus document needs a non-empty string 'text'")
        docs.append({"title": str(obj.get("title") or ""), "text": obj["text"], "url": str(obj.get("url") or "")})
    return docs


def _text_document(file, base):
    text = _read_utf8(file)
    title = os.path.splitext(os.path.basename(file))[0].replace("_", " ").replace("-", " ")
    return [{"title": title, "text": text, "url": os.path.relpath(file, base)}] if text.strip() else []


def read_documents(path, files):
    """[{"title", "text", "url"}] for every document; a malformed one is a DataError."""
    docs = []
    for file in files:
        docs += _jsonl_documents(file) if file.endswith(".jsonl") else _text_document(file, path)
    if not docs:
        raise DataError(f"{path}: the corpus has no documents")
    return docs


# ---------------------------------------------------------------- index

class Bm25Corpus:
    """`Bm25Corpus(path).search_many(queries, top_k)`; `.rebuilt` says whether this run indexed."""

    def __init__(self, path):
        self.path = os.path.normpath(path)
        self.index_dir = os.path.join(self.path, ".bm25s") if os.path.isdir(self.path) else self.path + ".bm25s"
        files = corpus_files(self.path)
        self.fingerprint = fingerprint(self.path, files)
        self.rebuilt = not self._load()
        if self.rebuilt:
            self.docs = read_documents(self.path, files)
            self.model = bm25s.BM25()
            self.model.index(tokenize([f"{d['title']}\n{d['text']}" for d in self.docs]), show_progress=False)
            self._save()

    def _meta(self):
        return {"version": INDEX_VERSION, "fingerprint": self.fingerprint}

    def _load(self):
        try:
            with open(os.path.join(self.index_dir, "meta.json"), encoding="utf-8") as f:
                if json.load(f) != self._meta():
                    return False
            with open(os.path.join(self.index_dir, "docs.json"), encoding="utf-8") as f:
                self.docs = json.load(f)
            self.model = bm25s.BM25.load(self.index_dir, show_progress=False)
        except (OSError, ValueError):
            return False  # missing, stale or damaged: rebuild
        return True

    def _save(self):
        """Write into a temp folder, then swap it in, so a crash never leaves half an index."""
        parent = os.path.dirname(os.path.abspath(self.index_dir))
        tmp = None
        try:
            tmp = tempfile.mkdtemp(dir=parent, prefix=os.path.basename(self.index_dir) + ".tmp")
            self.model.save(tmp, show_progress=False)
            with open(os.path.join(tmp, "docs.json"), "w", encoding="utf-8") as f:
                json.dump(self.docs, f, ensure_ascii=False)
            with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as f:
                json.dump(self._meta(), f)  # written last: its presence means the rest is there
            shutil.rmtree(self.index_dir, ignore_errors=True)
            os.replace(tmp, self.index_dir)
        except OSError:  # a read-only corpus folder: just don't cache
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)

    def search(self, query, top_k=5):
        """Up to top_k hits, best BM25 score first; documents sharing no word with the query are
        left out. Whether a hit is on topic is the relevance floor's call (search/relevance.py)."""
        words = tokenize([query], return_ids=False)[0]
        if not words or top_k < 1:
            return []
        known = [w for w in words if w in self.model.vocab_dict]
        if not known:
            return []
        ids, scores = self.model.retrieve([known], k=min(top_k, len(self.docs)), show_progress=False)
        found = [(self.docs[int(i)], float(score)) for i, score in zip(ids[0], scores[0]) if score > 0]
        return [{**hit(d["text"][:SNIPPET_CHARS], "corpus", d["title"], d["url"]), "bm25": round(score, 3)}
                for d, score in found]

    def search_many(self, queries, top_k=5):
        """{query: [hits]} — the same shape the Serper client returns; a local search never fails."""
        return {q: self.search(q, top_k) for q in queries}

    def close(self):
        """Nothing to release; here so both backends share one interface."""
