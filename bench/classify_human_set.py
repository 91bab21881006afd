"""Rebuild the texts of the human-written prompt set from their public sources.

    python bench/classify_human_set.py --out human_prompts.jsonl
    python bench/classify_human_set.py --out human_prompts.jsonl --compare OTHER.jsonl

bench/data/classify_human/index.json lists about a thousand prompts written by people (not by
models), each by source, repository, file, commit and 1-based line: self-instruct's
user-oriented instructions, the Vicuna and MT-bench questions (first turn), Koala's test prompts,
the WizardLM test set, the LIMA test set and a slice of Dolly 15k. Their texts belong to others,
so the repository keeps only that index (and, next to it, our labels); this script fetches each
file once at the recorded commit from raw.githubusercontent.com and writes one JSON line per
prompt: the index record plus "text".

What it needs: Python 3.11 standard library only, and HTTPS access to raw.githubusercontent.com
(about 3 MB in 8 files). It is not run in CI and needs no key. Files are cached in --cache_dir,
so a second run works offline.

How a text is made from its line ("field" in the index):
  - turns[0]                  first user turn of a FastChat question (MT-bench, Vicuna);
  - Instruction, conversations, prompt
                              that member of the record (WizardLM, LIMA, Koala; Koala's file is
                              pretty-printed JSON, so its line holds the member `"prompt": ...`);
  - instruction               self-instruct or Dolly instruction with an empty input/context;
  - instruction+input, instruction+context
                              the instruction, a blank line, then the input or context, the way
                              a user would paste both into one message.
Each text is stripped of surrounding whitespace.

Output: --out gets one line per index record that could be rebuilt, in index order. A record
that cannot be rebuilt (file unreachable, line missing, field missing) is reported on stderr
with its uid and left out; the exit status is then 1. --compare prints the uids whose rebuilt
text differs from the text in another file of the same shape (e.g. a hand-made copy).
Exit 2 with one line for bad arguments or an unreadable index.
"""

import argparse
import hashlib
import json
import os
import sys
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INDEX = os.path.join(ROOT, "bench", "data", "classify_human", "index.json")
RAW_URL = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"
FIELDS = ("uid", "source", "repo", "path", "commit", "line", "field")


class SourceError(Exception):
    """A record whose text cannot be rebuilt; the message says why."""


_seen = {}  # url -> file text, or the SourceError it raised: each file is tried once a run


def fetch(record, cache_dir, timeout):
    """Text of the record's file at its commit, from memory, the cache or GitHub."""
    url = RAW_URL.format(**record)
    if url not in _seen:
        try:
            _seen[url] = _fetch(url, cache_dir, timeout)
        except SourceError as exc:
            _seen[url] = exc
    if isinstance(_seen[url], SourceError):
        raise _seen[url]
    return _seen[url]


def _fetch(url, cache_dir, timeout):
    name = hashlib.sha256(url.encode()).hexdigest()[:24]
    cached = os.path.join(cache_dir, name)
    if os.path.exists(cached):
        with open(cached, encoding="utf-8") as f:
            return f.read()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            body = reply.read().decode("utf-8")
    except (urllib.error.URLError, TimeoutError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot fetch {url}: {exc}") from exc
    if body.startswith("version https://git-lfs.github.com/spec/"):
        raise SourceError(f"{url} is a Git LFS pointer, not the data")
    os.makedirs(cache_dir, exist_ok=True)
    with open(cached + ".part", "w", encoding="utf-8") as f:
        f.write(body)
    os.replace(cached + ".part", cached)
    return body


def parse_line(line):
    """A JSONL record, or the single `"name": value` member line of pretty-printed JSON."""
    line = line.strip()
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        value = json.loads("{" + line.rstrip(",") + "}")
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def text_of(record, row):
    """The prompt a user would send, built from the parsed line per the record's field."""
    field = record["field"]
    if field == "turns[0]":
        return row["turns"][0].strip()
    if "+" in field:
        first, second = field.split("+")
        parts = [row[first].strip(), row[second].strip()]
        return "\n\n".join(p for p in parts if p)
    return row[field].strip()


def rebuild(record, cache_dir, timeout):
    lines = fetch(record, cache_dir, timeout).splitlines()
    number = record["line"]
    if not 1 <= number <= len(lines):
        raise SourceError(f"{record['path']} has {len(lines)} lines, not {number}")
    try:
        return text_of(record, parse_line(lines[number - 1]))
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise SourceError(f"line {number} of {record['path']} has no {record['field']}: {exc}") from exc


def load_index(path):
    """The index records; ValueError with a one-line reason when unusable."""
    try:
        with open(path, encoding="utf-8") as f:
            records = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read index {path}: {exc}") from exc
    for i, record in enumerate(records):
        if not isinstance(record, dict) or any(k not in record for k in FIELDS):
            raise ValueError(f"{path} record {i} lacks one of {', '.join(FIELDS)}")
    return records


def main():
    parser = argparse.ArgumentParser(
        description="Rebuild the human-written prompt set (bench/data/classify_human/index.json) "
                    "from its public sources on GitHub; needs HTTPS to raw.githubusercontent.com.")
    parser.add_argument("--out", required=True, help="JSONL file to write: index record + text")
    parser.add_argument("--index", default=INDEX, help="index of records (default: %(default)s)")
    parser.add_argument("--cache_dir", default=os.path.join(os.path.expanduser("~"), ".cache",
                                                            "realign", "classify_human"),
                        help="where fetched files are kept (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per download")
    parser.add_argument("--compare", help="another JSONL of the same shape: print uids whose text differs")
    args = parser.parse_args()
    if args.timeout <= 0:
        parser.exit(2, "classify_human_set: --timeout must be positive\n")
    try:
        records = load_index(args.index)
    except ValueError as exc:
        print(f"classify_human_set: {exc}", file=sys.stderr)
        return 2

    rebuilt, failed, reported = [], 0, set()
    for record in records:
        try:
            text = rebuild(record, args.cache_dir, args.timeout)
        except SourceError as exc:
            failed += 1
            if str(exc) not in reported:  # one line per broken file, not per record
                reported.add(str(exc))
                print(f"{record['uid']}: {exc}", file=sys.stderr)
            continue
        rebuilt.append({**{k: record[k] for k in FIELDS}, "text": text})
        if len(rebuilt) % 200 == 0:
            print(f"  {len(rebuilt)}/{len(records)} rebuilt", file=sys.stderr)

    tmp = args.out + ".part"
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rebuilt:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, args.out)

    if args.compare:
        with open(args.compare, encoding="utf-8") as f:
            other = {r["uid"]: r["text"] for r in map(json.loads, f)}
        differ = [r["uid"] for r in rebuilt if r["uid"] in other and other[r["uid"]] != r["text"]]
        for uid in differ:
            print(f"differs: {uid}")
        print(f"compare: {len(differ)} of {sum(r['uid'] in other for r in rebuilt)} shared uids differ")

    print(f"classify_human_set: {len(rebuilt)} of {len(records)} prompts rebuilt into {args.out}"
          + (f", {failed} failed (see above)" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
