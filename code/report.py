"""The filter step's report: one static HTML page plus PNG figures, readable offline.

    write_report(folder, joined, stats, decisions, length, rules="open_platypus")

`joined` is the [(original_record, merged_record)] list the filter judged, `stats` and
`decisions` are what realign.selection.select returned, `length` the length function it used.
The folder gets:

    report.html              the numbers of the run, the figures, a sample of before/after pairs
    outcome_per_task.png     records per task, split into rewrite accepted / rejected / not rewritten
    rejections_by_rule.png   how many rewrites each rule rejected
    length_ratio.png         histogram of rewrite length / original length

The page has no scripts and no network references: images are relative files beside it.
Samples are bounded (count and characters) so a 100k-record run gives a page of the same size.
"""

import difflib
import html
import os
import re
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from realign.files import atomic_open  # noqa: E402

SAMPLE_PAIRS = 12          # before/after pairs shown
MAX_SAMPLE_CHARS = 4000    # per side; longer texts are cut (and say so)
MAX_EVIDENCE = 5           # passages shown per sample
MAX_EVIDENCE_CHARS = 600   # per passage
RATIO_CAP = 4.0            # ratios above this land in the last histogram bin

COLORS = {"accepted": "#2a9d8f", "rejected": "#e76f51", "not_rewritten": "#8d99ae"}
LABELS = {"accepted": "rewrite accepted", "rejected": "rewrite rejected (original kept)",
          "not_rewritten": "not rewritten (task passed through, or rewrite identical)"}


# ---------------------------------------------------------------- figures

def _save(fig, folder, name):
    with atomic_open(os.path.join(folder, name), "wb") as f:
        fig.savefig(f, dpi=90, format="png", bbox_inches="tight")
    plt.close(fig)
    return name


def fig_outcome_per_task(per_category, folder):
    """Stacked horizontal bars: one per task, length = records of that task."""
    cats = sorted(per_category, key=lambda c: (per_category[c]["total"], c))
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.32 * max(1, len(cats))))
    left = [0] * len(cats)
    for outcome in ("accepted", "rejected", "not_rewritten"):
        widths = [per_category[c].get(outcome, 0) for c in cats]
        ax.barh(cats, widths, left=left, color=COLORS[outcome], label=LABELS[outcome])
        left = [a + b for a, b in zip(left, widths)]
    for y, total in enumerate(left):
        ax.text(total, y, f" {total}", va="center", fontsize=8)
    ax.set_xlabel("records")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Records per task and what happened to them")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.8 / fig.get_figheight()), ncol=3, fontsize=8,
              frameon=False)
    ax.set_xlim(0, max(left, default=1) * 1.1 + 0.2)  # room for the totals
    fig.tight_layout()
    return _save(fig, folder, "outcome_per_task.png")


def fig_rejections(rejected_by_rule, folder):
    rules = sorted(rejected_by_rule, key=lambda r: (rejected_by_rule[r], r))
    fig, ax = plt.subplots(figsize=(8, 1.4 + 0.35 * max(1, len(rules))))
    if rules:
        ax.barh(rules, [rejected_by_rule[r] for r in rules], color=COLORS["rejected"])
        for y, r in enumerate(rules):
            ax.text(rejected_by_rule[r], y, f" {rejected_by_rule[r]}", va="center", fontsize=8)
        ax.set_xlim(0, max(rejected_by_rule.values()) * 1.1 + 0.2)
    else:
        ax.text(0.5, 0.5, "no rewrite was rejected", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_xlabel("rewrites rejected")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Rejections per rule")
    fig.tight_layout()
    return _save(fig, folder, "rejections_by_rule.png")


def fig_length_ratio(ratios, folder):
    """Histogram of rewrite/original length, accepted and rejected stacked; 0.5 marked."""
    fig, ax = plt.subplots(figsize=(8, 3.2))
    groups = [[min(r, RATIO_CAP) for r, ok in ratios if ok], [min(r, RATIO_CAP) for r, ok in ratios if not ok]]
    if ratios:
        ax.hist(groups, bins=[i * 0.25 for i in range(int(RATIO_CAP * 4) + 1)], stacked=True,
                color=[COLORS["accepted"], COLORS["rejected"]], label=["accepted", "rejected"])
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no rewrites in this run", ha="center", va="center", transform=ax.transAxes)
    ax.axvline(0.5, color="black", linestyle="--", linewidth=1)
    ax.text(0.52, 0.95, "0.5x", transform=ax.get_xaxis_transform(), fontsize=8, va="top")
    ax.set_xlabel(f"rewrite length / original length (>{RATIO_CAP:g} shown at {RATIO_CAP:g})")
    ax.set_ylabel("rewrites")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("How much longer the rewrites are")
    fig.tight_layout()
    return _save(fig, folder, "length_ratio.png")


# ---------------------------------------------------------------- text helpers

def _cut(text, limit=MAX_SAMPLE_CHARS):
    return text if len(text) <= limit else text[:limit] + f"\n… [{len(text) - limit} more characters]"


_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")


def diff_html(before, after):
    """(before_html, after_html): word-level diff, removed words in <del>, added in <ins>."""
    a, b = _TOKEN.findall(_cut(before)), _TOKEN.findall(_cut(after))
    left, right = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        old, new = html.escape("".join(a[i1:i2])), html.escape("".join(b[j1:j2]))
        if op == "equal":
            left.append(old)
            right.append(new)
        else:
            if old:
                left.append(f"<del>{old}</del>")
            if new:
                right.append(f"<ins>{new}</ins>")
    return "".join(left), "".join(right)


def pick_samples(decisions, n=SAMPLE_PAIRS):
    """Up to n decisions, spread over categories, rejected and accepted ones alternating,
    in a stable order (same run, same page)."""
    buckets = defaultdict(list)
    for d in decisions:
        buckets[(not d["accepted"], d["category"])].append(d)
    queues = [buckets[k] for k in sorted(buckets, key=lambda k: (k[1], k[0]))]
    rejected = [q for q in queues if not q[0]["accepted"]]
    accepted = [q for q in queues if q[0]["accepted"]]
    picked = []
    while len(picked) < n and (rejected or accepted):
        for group in (rejected, accepted):
            if group and len(picked) < n:
                queue = group.pop(0)
                picked.append(queue.pop(0))
                if queue:
                    group.append(queue)
    return picked


# ---------------------------------------------------------------- the page

CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1200px; padding: 0 16px; color: #222; }
h1 { font-size: 24px; } h2 { font-size: 19px; margin-top: 32px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 8px 0; } td, th { padding: 3px 10px; border-bottom: 1px solid #eee; }
th { text-align: left; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; min-width: 130px; }
.card b { display: block; font-size: 26px; }
img { max-width: 100%; border: 1px solid #eee; margin: 6px 0; }
.pair { border: 1px solid #ddd; border-radius: 6px; margin: 14px 0; padding: 8px 12px; }
.sides { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.sides pre { white-space: pre-wrap; word-wrap: break-word; background: #fafafa; padding: 8px; margin: 4px 0;
             font: 13px/1.4 ui-monospace, monospace; }
del { background: #ffd7d0; text-decoration: line-through; } ins { background: #d3f2d9; text-decoration: none; }
.verdict-accepted { color: #1d6b61; font-weight: bold; } .verdict-rejected { color: #a63d22; font-weight: bold; }
.muted { color: #666; font-size: 13px; }
"""


def _card(key, label, value):
    return f'<div class="card"><b id="n-{key}">{value}</b>{html.escape(label)}</div>'


def _category_table(per_category):
    rows = ["<tr><th>task</th><th>records</th><th>rewrite accepted</th><th>rewrite rejected</th>"
            "<th>not rewritten</th></tr>"]
    for cat in sorted(per_category):
        n = per_category[cat]
        rows.append(f'<tr id="cat-{html.escape(cat)}"><td>{html.escape(cat)}</td><td class="n">{n.get("total", 0)}</td>'
                    f'<td class="n">{n.get("accepted", 0)}</td><td class="n">{n.get("rejected", 0)}</td>'
                    f'<td class="n">{n.get("not_rewritten", 0)}</td></tr>')
    return "<table>" + "".join(rows) + "</table>"


def _rule_table(rejected_by_rule):
    if not rejected_by_rule:
        return "<p>No rewrite was rejected.</p>"
    rows = ["<tr><th>rule</th><th>rejected</th></tr>"]
    for rule, n in sorted(rejected_by_rule.items(), key=lambda kv: (-kv[1], kv[0])):
        rows.append(f'<tr id="rule-{html.escape(rule)}"><td>{html.escape(rule)}</td><td class="n">{n}</td></tr>')
    return "<table>" + "".join(rows) + "</table>"


def _evidence_html(evidence):
    if not evidence:
        return ""
    items = "".join(f"<li>{html.escape(_cut(p, MAX_EVIDENCE_CHARS))}</li>" for p in evidence[:MAX_EVIDENCE])
    more = f'<p class="muted">… and {len(evidence) - MAX_EVIDENCE} more passages</p>' if len(evidence) > MAX_EVIDENCE else ""
    return f"<details open><summary>evidence used ({len(evidence)} passages)</summary><ol>{items}</ol>{more}</details>"


def _pair_html(decision, orig, new):
    before, after = orig["items"][1]["value"], new["items"][1]["value"]
    left, right = diff_html(before, after)
    if decision["accepted"]:
        verdict = '<span class="verdict-accepted">accepted</span>'
        if decision["rule"]:
            verdict += f' <span class="muted">by {html.escape(decision["rule"])}</span>'
    else:
        verdict = (f'<span class="verdict-rejected">rejected</span> by {html.escape(decision["rule"] or "")}: '
                   f'{html.escape(decision["reason"] or "")}')
    evidence = new["items"][0].get("evidence") or orig["items"][0].get("evidence")
    return (f'<div class="pair"><div><b>id {html.escape(str(decision["id"]))}</b> · '
            f'{html.escape(decision["category"])} · {verdict}</div>'
            f'<div class="muted">Q: {html.escape(_cut(new["items"][0]["value"], 600))}</div>'
            f'<div class="sides"><div><div class="muted">original</div><pre>{left}</pre></div>'
            f'<div><div class="muted">rewrite</div><pre>{right}</pre></div></div>'
            f"{_evidence_html(evidence)}</div>")


def length_ratios(by_id, decisions, length):
    """[(rewrite_len / original_len, accepted)] for every judged rewrite; by_id: {id: (original, rewrite)}."""
    out = []
    for d in decisions:
        orig, new = by_id[d["id"]]
        before = length(orig["items"][1]["value"])
        out.append((length(new["items"][1]["value"]) / max(1, before), d["accepted"]))
    return out


def write_report(folder, joined, stats, decisions, length, rules="", title="realign filter report"):
    """Write the figures and report.html into `folder`; returns the page's path."""
    os.makedirs(folder, exist_ok=True)
    per_category = {c: dict(n) for c, n in stats["per_category"].items()}
    rejected_by_rule = dict(stats["rejected_by_rule"])
    by_id = {new["id"]: (orig, new) for orig, new in joined}
    ratios = length_ratios(by_id, decisions, length)
    figures = [fig_outcome_per_task(per_category, folder), fig_rejections(rejected_by_rule, folder),
               fig_length_ratio(ratios, folder)]

    samples = pick_samples(decisions)
    pairs = "".join(_pair_html(d, *by_id[d["id"]]) for d in samples)
    with_evidence = sum(1 for _, new in joined if new["items"][0].get("evidence"))
    cards = "".join([
        _card("total", "records", stats["total"]),
        _card("rewritten", "rewritten", stats["rewritten"]),
        _card("accepted", "rewrites accepted", stats["accepted"]),
        _card("rejected", "rejected, original kept", stats["rejected"]),
        _card("not_rewritten", "not rewritten", stats["not_rewritten"]),
        _card("evidence", "with evidence", with_evidence),
    ])
    images = "".join(f'<img src="{name}" alt="{name[:-4].replace("_", " ")}">' for name in figures)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{CSS}</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="muted">rules: <b id="rules">{html.escape(rules)}</b> · {len(per_category)} tasks</p>
<div class="cards">{cards}</div>
<h2>Figures</h2>
{images}
<h2>Per task</h2>
{_category_table(per_category)}
<h2>Rejections per rule</h2>
{_rule_table(rejected_by_rule)}
<h2>Before and after ({len(samples)} of {len(decisions)} rewrites)</h2>
<p class="muted">Word-level differences: <del>removed</del> and <ins>added</ins> text.</p>
{pairs or "<p>No record was rewritten.</p>"}
</body></html>
"""
    path = os.path.join(folder, "report.html")
    with atomic_open(path) as f:
        f.write(page)
    return path
