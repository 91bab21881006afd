"""Resume and checkpoints for retrieval.py: an interrupted run loses at most one batch.

A record's evidence can already be in three places, always matched by id *and* question
text (never by position): the input record itself, the raw output of an earlier run, and
the journal `<output>.progress.jsonl`, one line per searched record, appended after every
batch. Both output files are rewritten after a batch whenever that keeps checkpoint time
under about 5 % of the run: with small files that is after every batch; with huge ones
(a full rewrite of 100 MB takes seconds) less often, the journal covering the gap. The
journal is deleted once the final outputs are written.
"""

import os
import time

from realign.errors import DataError
from realign.files import JsonlAppender, check_not_link, read_jsonl_tolerant
from realign.records import load_records, question, valid_id, write_records
from realign.search.clean import clean_record, has_evidence

EVIDENCE_KEYS = ("evidence", "evidence_sources", "evidence_dropped")
CHECKPOINT_SHARE = 0.05   # at most this share of wall time goes to rewriting the outputs


def clean_path_for(output_path):
    """`data_retrieval.json` -> `data_retrieval_clean_evidence.json` (the file reformat.py reads)."""
    root, ext = os.path.splitext(output_path)
    return f"{root}_clean_evidence{ext}"


def check_journal_entry(entry, path, n):
    """A journal line must be what save_batch writes; anything else is a one-line DataError."""
    problem = None
    if not isinstance(entry, dict):
        problem = f"a JSON {type(entry).__name__}, not an object"
    elif not valid_id(entry.get("id")):
        problem = "'id' must be an int or a string"
    elif not isinstance(entry.get("question"), str):
        problem = "'question' must be a string"
    elif not (isinstance(entry.get("evidence", []), list) and all(isinstance(s, str) for s in entry.get("evidence", []))):
        problem = "'evidence' must be a list of strings"
    elif not isinstance(entry.get("evidence_sources", []), list):
        problem = "'evidence_sources' must be a list"
    if problem:
        raise DataError(f"{path}: record {n}: {problem}; not what retrieval.py writes: delete the journal "
                        f"(its records are searched again)")


class Progress:
    def __init__(self, records, output_path):
        self.records = records
        self.output_path = output_path
        self.clean_path = clean_path_for(output_path)
        self.journal_path = output_path + ".progress.jsonl"
        check_not_link(output_path, self.clean_path, self.journal_path)  # before any search is paid for
        self._journal = None
        self._last_write = time.monotonic()
        self._write_cost = 0.0

    def resume(self):
        """Copy evidence found by earlier runs onto records that lack it; returns how many."""
        found = {}
        if os.path.exists(self.output_path):
            for rec in load_records(self.output_path):
                if has_evidence(rec):
                    found[rec["id"]] = (question(rec), rec["items"][0])
        for n, entry in enumerate(read_jsonl_tolerant(self.journal_path)[0]):
            check_journal_entry(entry, self.journal_path, n)
            found[entry["id"]] = (entry["question"], entry)
        restored = 0
        for rec in self.records:
            prev = found.get(rec["id"])
            if prev and not has_evidence(rec) and prev[0] == question(rec):
                rec["items"][0].update({k: prev[1][k] for k in EVIDENCE_KEYS if k in prev[1]})
                restored += 1
        return restored

    def save_batch(self, batch):
        """Journal the batch's searched records, then checkpoint the outputs if it is cheap enough."""
        if self._journal is None:
            self._journal = JsonlAppender(self.journal_path)
        for rec in batch:
            first = rec["items"][0]
            self._journal.write({"id": rec["id"], "question": question(rec),
                                 **{k: first[k] for k in EVIDENCE_KEYS if k in first}})
        if time.monotonic() - self._last_write >= self._write_cost / CHECKPOINT_SHARE:
            self.checkpoint()

    def checkpoint(self):
        """Rewrite both output files (each atomically) from the records as they are now."""
        started = time.monotonic()
        write_records(self.output_path, self.records)
        write_records(self.clean_path, [clean_record(r) for r in self.records])
        self._last_write = time.monotonic()
        self._write_cost = self._last_write - started

    def finish(self):
        """Final outputs, then the journal is no longer needed."""
        self.checkpoint()
        if self._journal is not None:
            self._journal.close()
        if os.path.exists(self.journal_path):
            os.remove(self.journal_path)
