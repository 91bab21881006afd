"""The filter step's report: one static HTML page plus PNG figures, readable offline.

    write_report(folder, joined, stats, decisions, length, rules="open_platypus")

`joined` is the [(original_record, merged_record)] list the filter judged, `stats` and
`decisions` are what realign.selection.select returned, `length` the length function it used.
The folder gets:

    report.html              the numbers of the run, the figures, and every record in a table
                             filterable by task, outcome and rule, with the reason for each
                             outcome; a row opens into its before/after
    outcome_per_task.png     records per task, split into rewrite accepted / rejected / not rewritten
    rejections_by_rule.png   how many rewrites each rule rejected
    length_ratio.png         histogram of rewrite length / original length

The page is one file with an inline script and no network references: images are relative
files beside it, the records are JSON inside the page. Texts are cut per record, and past a
page-wide budget (TEXT_BUDGET characters) records keep their row and reason but not their
texts, so a 100k-record run still gives a page a browser opens.
"""

import html
import json
import os

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from realign.constant import DEFAULT_TASK, NOT_REWRITTEN_TASKS  # noqa: E402
from realign.files import atomic_open  # noqa: E402
from realign.records import category  # noqa: E402
from realign.selection import IDENTICAL, kept_line, kept_reason  # noqa: E402

MAX_TEXT_CHARS = 4000      # per answer; longer texts are cut (and say so)
MAX_QUESTION_CHARS = 1500
MAX_EVIDENCE = 5           # passages shown per record
MAX_EVIDENCE_CHARS = 600   # per passage
TEXT_BUDGET = 20_000_000   # characters of text embedded in the page; later records keep their row, not their texts
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


# ---------------------------------------------------------------- every record, as data for the page

def _cut(text, limit=MAX_TEXT_CHARS):
    return text if len(text) <= limit else text[:limit] + f"\n… [{len(text) - limit} more characters]"


def not_rewritten_reason(task, why):
    """Why a record reached the filter with its original answer, from the reason the merge
    carried (selection.kept_reason: `why`), never guessed."""
    by_design = f" ('{task}' answers are kept as they are, by design)" if task in NOT_REWRITTEN_TASKS else ""
    if why == IDENTICAL:
        return "not rewritten: reformat's rewrite is the original answer word for word"
    if why and why.startswith("failed"):
        return "reformat failed: " + why.split(":", 1)[-1].strip()
    if why:
        return f"not rewritten: {why}{by_design}"
    if by_design:
        return f"not rewritten{by_design}"
    return ("not rewritten; the merged file records no reason (it was made by a parallel_data_merge.py older "
            "than kept_original): the reformat failures files list the records that failed")


def record_rows(joined, decisions, text_budget=TEXT_BUDGET):
    """One row per record, in input order: id, task, outcome, rule, reason and (while the page's
    text budget lasts) the question, both answers, the evidence (with its relevance scores when
    retrieval.py recorded them) and the words to highlight."""
    by_id = {d["id"]: d for d in decisions}
    rows, used = [], 0
    for orig, new in joined:
        d = by_id.get(new["id"])
        task = d["category"] if d else (category(new) or category(orig) or DEFAULT_TASK)
        before, after = orig["items"][1]["value"], new["items"][1]["value"]
        if d is None:
            outcome, rule, reason = "not_rewritten", "", not_rewritten_reason(task, kept_reason(new))
        elif d["accepted"]:
            outcome, rule = "accepted", d["rule"] or ""
            reason = f"accepted outright by {d['rule']}" if d["rule"] else "every rule passed"
        else:
            outcome, rule, reason = "rejected", d["rule"] or "", d["reason"] or ""
        row = {"id": str(new["id"]), "task": task, "outcome": outcome, "rule": rule, "reason": reason}
        first = new["items"][0] if new["items"][0].get("evidence") else orig["items"][0]
        evidence, scores = first.get("evidence") or [], first.get("evidence_scores")
        texts = {"q": _cut(new["items"][0]["value"], MAX_QUESTION_CHARS), "before": _cut(before),
                 "after": _cut(after) if d else "",
                 "evidence": [_cut(str(p), MAX_EVIDENCE_CHARS) for p in evidence[:MAX_EVIDENCE]],
                 "more_evidence": max(0, len(evidence) - MAX_EVIDENCE)}
        if isinstance(scores, list) and len(scores) == len(evidence):  # relevance, as retrieval.py records it
            texts["scores"] = [s if isinstance(s, (int, float)) else None for s in scores[:MAX_EVIDENCE]]
        size = len(texts["q"]) + len(texts["before"]) + len(texts["after"]) + sum(map(len, texts["evidence"]))
        if d and d.get("judge"):
            row["judge"] = d["judge"]
        if used + size <= text_budget:
            used += size
            row.update(texts)
            for key in ("marks", "original_marks"):
                if d and d.get(key):
                    row[key] = d[key]
        else:
            row["cut"] = True
        rows.append(row)
    return rows


def _script_json(obj):
    """JSON safe inside a <script> element."""
    return json.dumps(obj, ensure_ascii=False).replace("<", "\\u003c")


def length_ratios(by_id, decisions, length):
    """[(rewrite_len / original_len, accepted)] for every judged rewrite; by_id: {id: (original, rewrite)}."""
    out = []
    for d in decisions:
        orig, new = by_id[d["id"]]
        before = length(orig["items"][1]["value"])
        out.append((length(new["items"][1]["value"]) / max(1, before), d["accepted"]))
    return out


# ---------------------------------------------------------------- the page

CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1280px; padding: 0 16px; color: #222; }
h1 { font-size: 24px; } h2 { font-size: 19px; margin-top: 32px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 8px 0; } td, th { padding: 3px 10px; border-bottom: 1px solid #eee; }
th { text-align: left; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; min-width: 130px; }
.card b { display: block; font-size: 26px; }
img { max-width: 100%; border: 1px solid #eee; margin: 6px 0; }
.filters { display: flex; gap: 10px; flex-wrap: wrap; align-items: center; margin: 8px 0; }
#records { width: 100%; table-layout: fixed; } #records td { vertical-align: top; overflow-wrap: anywhere; }
#records tr.rec { cursor: pointer; } #records tr.rec:hover { background: #f4f7fb; }
#records col.c-id { width: 9%; } #records col.c-task { width: 17%; } #records col.c-out { width: 12%; }
#records col.c-rule { width: 17%; }
.o-accepted { color: #1d6b61; font-weight: bold; } .o-rejected { color: #a63d22; font-weight: bold; }
.o-not_rewritten { color: #5a6275; }
tr.detail > td { background: #fcfcfc; padding: 8px 12px 16px; }
.sides { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.sides pre { white-space: pre-wrap; word-wrap: break-word; background: #fafafa; padding: 8px; margin: 4px 0;
             font: 13px/1.4 ui-monospace, monospace; border: 1px solid #eee; }
del { background: #ffd7d0; text-decoration: line-through; } ins { background: #d3f2d9; text-decoration: none; }
mark.fact { background: #ffd54f; outline: 2px solid #e0a800; font-weight: bold; }
.muted { color: #666; font-size: 13px; } a { color: #2458a6; }
"""

# The page's only script: builds the record table from the JSON beside it, filters it (task,
# outcome, rule, words; also from the address: #task=open_qa&outcome=rejected&rule=new_facts&q=...
# &open=ID), shows rows a page at a time, and opens a row into its before/after: a word-level
# diff with the words new_facts flagged highlighted.
SCRIPT = r"""
const DATA = JSON.parse(document.getElementById('data').textContent);
const PAGE = 200;
const $ = id => document.getElementById(id);
const esc = s => String(s).replace(/[&<>"]/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]));
const OUTCOME = {accepted: 'rewrite accepted', rejected: 'rejected, original kept', not_rewritten: 'not rewritten'};
let shown = PAGE, opened = new Set();

function fill(select, values) {
  const counts = {};
  DATA.forEach(r => { counts[r[values]] = (counts[r[values]] || 0) + 1; });
  Object.keys(counts).filter(v => v).sort().forEach(v => {
    const o = document.createElement('option');
    o.value = v; o.textContent = (values === 'outcome' ? OUTCOME[v] : v) + ' (' + counts[v] + ')';
    select.appendChild(o);
  });
}

function tokens(s) { return s.match(/\s+|[\w\u00C0-\uFFFF]+|[^\w\s]/g) || []; }

// Longest common subsequence of two token lists: [[kind, token], ...] for each side.
// Case does not count: "review" and "Review" are the same word.
function diff(a, b) {
  const n = a.length, m = b.length;
  if (n * m > 4e6) return [a.map(t => ['', t]), b.map(t => ['', t])];
  const x = a.map(t => t.toLowerCase()), y = b.map(t => t.toLowerCase());
  const w = m + 1, L = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      L[i * w + j] = x[i] === y[j] ? L[(i + 1) * w + j + 1] + 1 : Math.max(L[(i + 1) * w + j], L[i * w + j + 1]);
  const left = [], right = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { left.push(['', a[i++]]); right.push(['', b[j++]]); }
    else if (L[(i + 1) * w + j] >= L[i * w + j + 1]) left.push(['del', a[i++]]);
    else right.push(['ins', b[j++]]);
  }
  while (i < n) left.push(['del', a[i++]]);
  while (j < m) right.push(['ins', b[j++]]);
  return [left, right];
}

// Character ranges of `text` where one of `marks` occurs.
function markRanges(text, marks) {
  const out = [];
  (marks || []).forEach(m => {
    let at = text.indexOf(m);
    while (m && at >= 0) { out.push([at, at + m.length]); at = text.indexOf(m, at + m.length); }
  });
  return out;
}

function render(parts, ranges) {
  let pos = 0, html = '';
  parts.forEach(([kind, t]) => {
    let h = esc(t);
    if (ranges.some(([s, e]) => s < pos + t.length && e > pos) && t.trim()) h = '<mark class="fact">' + h + '</mark>';
    if (kind) h = '<' + kind + '>' + h + '</' + kind + '>';
    html += h; pos += t.length;
  });
  return html;
}

// The LLM judge's findings (--judge_model): every unsupported claim and lost fact, with why.
function judged(j) {
  if (!j) return '';
  if (j.error) return '<p class="judge muted">judge: could not judge this rewrite (' + esc(j.error) + ')</p>';
  const items = j.unsupported.map(([t, why]) => '<li>unsupported claim: <mark class="fact">' + esc(t) + '</mark> ' + esc(why) + '</li>')
    .concat(j.lost.map(([t, why]) => '<li>lost fact: <mark class="fact">' + esc(t) + '</mark> ' + esc(why) + '</li>'));
  return items.length ? '<div class="judge">judge:<ul>' + items.join('') + '</ul></div>' : '<p class="judge muted">judge: faithful</p>';
}

function score(s) { return typeof s === 'number' ? '<span class="muted">relevance ' + s.toFixed(2) + '</span> ' : ''; }

function detail(r) {
  if (r.cut) return '<p class="muted">Texts of this record are not embedded: the page reached its size budget. ' +
                    'Find id ' + esc(r.id) + ' in the input and output files.</p>';
  let sides;
  if (r.outcome === 'not_rewritten') {
    sides = '<div><div class="muted">answer (unchanged)</div><pre>' + esc(r.before) + '</pre></div>';
  } else {
    const [l, rr] = diff(tokens(r.before), tokens(r.after));
    sides = '<div><div class="muted">original</div><pre class="before">' + render(l, markRanges(r.before, r.original_marks)) + '</pre></div>' +
            '<div><div class="muted">rewrite</div><pre class="after">' + render(rr, markRanges(r.after, r.marks)) + '</pre></div>';
  }
  let ev = '';
  if (r.evidence && r.evidence.length) {
    ev = '<details open><summary>evidence (' + (r.evidence.length + r.more_evidence) + ' passages)</summary><ol>' +
         r.evidence.map((p, i) => '<li>' + score(r.scores && r.scores[i]) + esc(p) + '</li>').join('') + '</ol>' +
         (r.more_evidence ? '<p class="muted">… and ' + r.more_evidence + ' more passages</p>' : '') + '</details>';
  }
  const marked = (r.marks || []).concat(r.original_marks || []);
  const flagged = marked.length
    ? '<p class="flagged">' + esc(r.rule || 'flagged') + ' flagged: ' + marked.map(m => '<mark class="fact">' + esc(m) + '</mark>').join(' ') + '</p>' : '';
  return '<p class="muted">Q: ' + esc(r.q) + '</p>' + flagged + judged(r.judge) + '<div class="sides">' + sides + '</div>' + ev;
}

function matches(r, f) {
  return (!f.task || r.task === f.task) && (!f.outcome || r.outcome === f.outcome) && (!f.rule || r.rule === f.rule) &&
         (!f.q || (r.id + ' ' + r.reason + ' ' + (r.q || '') + ' ' + (r.after || '')).toLowerCase().includes(f.q.toLowerCase()));
}

function filters() { return {task: $('f-task').value, outcome: $('f-outcome').value, rule: $('f-rule').value, q: $('f-q').value}; }

function draw() {
  const f = filters(), hits = DATA.filter(r => matches(r, f));
  const rows = hits.slice(0, shown).map(r => {
    const open = opened.has(r.id);
    return '<tr class="rec" data-id="' + esc(r.id) + '" id="rec-' + esc(r.id) + '"><td>' + esc(r.id) + '</td><td>' + esc(r.task) +
           '</td><td class="o-' + r.outcome + '">' + OUTCOME[r.outcome] + '</td><td>' + esc(r.rule) + '</td><td>' + esc(r.reason) + '</td></tr>' +
           (open ? '<tr class="detail" id="detail-' + esc(r.id) + '"><td colspan="5">' + detail(r) + '</td></tr>' : '');
  });
  $('rows').innerHTML = rows.join('');
  $('shown').textContent = Math.min(shown, hits.length);
  $('matching').textContent = hits.length;
  $('more').hidden = hits.length <= shown;
  const h = Object.entries(f).filter(([k, v]) => v).map(([k, v]) => k + '=' + encodeURIComponent(v));
  opened.forEach(id => h.push('open=' + encodeURIComponent(id)));
  history.replaceState(null, '', h.length ? '#' + h.join('&') : location.pathname);
}

function fromHash() {
  const f = {task: '', outcome: '', rule: '', q: ''};
  opened = new Set();
  location.hash.slice(1).split('&').filter(x => x).forEach(kv => {
    const [k, v] = kv.split('='), val = decodeURIComponent(v || '');
    if (k === 'open') opened.add(val); else if (k in f) f[k] = val;
  });
  $('f-task').value = f.task; $('f-outcome').value = f.outcome; $('f-rule').value = f.rule; $('f-q').value = f.q;
  shown = PAGE;
  draw();
}

fill($('f-task'), 'task'); fill($('f-outcome'), 'outcome'); fill($('f-rule'), 'rule');
['f-task', 'f-outcome', 'f-rule', 'f-q'].forEach(id => $(id).addEventListener('input', () => { shown = PAGE; draw(); }));
$('more').addEventListener('click', () => { shown += PAGE; draw(); });
$('rows').addEventListener('click', e => {
  const tr = e.target.closest('tr.rec');
  if (!tr) return;
  const id = tr.dataset.id;
  if (opened.has(id)) opened.delete(id); else opened.add(id);
  draw();
});
window.addEventListener('hashchange', fromHash);
fromHash();
"""


def _card(key, label, value):
    return f'<div class="card"><b id="n-{key}">{value}</b>{html.escape(label)}</div>'


def _category_table(per_category):
    rows = ["<tr><th>task</th><th>records</th><th>rewrite accepted</th><th>rewrite rejected</th>"
            "<th>not rewritten</th></tr>"]
    for cat in sorted(per_category):
        n, q = per_category[cat], html.escape(cat)
        rows.append(f'<tr id="cat-{q}"><td><a href="#task={q}">{q}</a></td><td class="n">{n.get("total", 0)}</td>'
                    f'<td class="n">{n.get("accepted", 0)}</td><td class="n">{n.get("rejected", 0)}</td>'
                    f'<td class="n">{n.get("not_rewritten", 0)}</td></tr>')
    return "<table>" + "".join(rows) + "</table>"


def _rule_table(rejected_by_rule):
    if not rejected_by_rule:
        return "<p>No rewrite was rejected.</p>"
    rows = ["<tr><th>rule</th><th>rejected</th></tr>"]
    for rule, n in sorted(rejected_by_rule.items(), key=lambda kv: (-kv[1], kv[0])):
        q = html.escape(rule)
        rows.append(f'<tr id="rule-{q}"><td><a href="#outcome=rejected&amp;rule={q}">{q}</a></td>'
                    f'<td class="n">{n}</td></tr>')
    return "<table>" + "".join(rows) + "</table>"


def write_report(folder, joined, stats, decisions, length, rules="", title="realign filter report"):
    """Write the figures and report.html into `folder`; returns the page's path."""
    os.makedirs(folder, exist_ok=True)
    per_category = {c: dict(n) for c, n in stats["per_category"].items()}
    rejected_by_rule = dict(stats["rejected_by_rule"])
    by_id = {new["id"]: (orig, new) for orig, new in joined}
    ratios = length_ratios(by_id, decisions, length)
    figures = [fig_outcome_per_task(per_category, folder), fig_rejections(rejected_by_rule, folder),
               fig_length_ratio(ratios, folder)]

    rows = record_rows(joined, decisions)
    cut = sum(1 for r in rows if r.get("cut"))
    with_evidence = sum(1 for _, new in joined if new["items"][0].get("evidence"))
    cards = "".join([
        _card("total", "records", stats["total"]),
        _card("rewritten", "rewritten", stats["rewritten"]),
        _card("accepted", "rewrites accepted", stats["accepted"]),
        _card("rejected", "rejected, original kept", stats["rejected"]),
        _card("not_rewritten", "not rewritten", stats["not_rewritten"]),
        _card("evidence", "with evidence", with_evidence),
    ])
    identical = stats.get("kept", {}).get(IDENTICAL, 0)
    judge = stats.get("judge")
    if judge:
        counts_note_judge = (f'<p class="muted" id="judge-note">judge {html.escape(str(judge["model"]))}: '
                             f'{judge["judged"]} rewrites judged ({judge["from_journal"]} from its journal), '
                             f'{judge["rejected"]} rejected, {judge["failed"]} could not be judged (they keep the '
                             f'rules\' verdict)</p>')
    else:
        counts_note_judge = ""
    counts_note = (f'<p class="muted" id="counts-note">{html.escape(kept_line(stats))}. "rewritten" counts the '
                   f'rewrites the rules judged; parallel_data_merge.py\'s "rewritten" also counts the {identical} '
                   f'identical to their original (not rewritten here): {stats["rewritten"] + identical} in all.</p>')
    images = "".join(f'<img src="{name}" alt="{name[:-4].replace("_", " ")}">' for name in figures)
    cut_note = (f'<p class="muted">The texts of the last {cut} records are not embedded (the page keeps to '
                f'{TEXT_BUDGET // 1_000_000} million characters); their rows and reasons are.</p>' if cut else "")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{CSS}</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="muted">rules: <b id="rules">{html.escape(rules)}</b> · {len(per_category)} tasks</p>
<div class="cards">{cards}</div>
{counts_note}{counts_note_judge}
<h2>Figures</h2>
{images}
<h2>Per task</h2>
{_category_table(per_category)}
<h2>Rejections per rule</h2>
{_rule_table(rejected_by_rule)}
<h2>Every record</h2>
<p class="muted">Click a row to open its before/after: <del>removed</del> and <ins>added</ins> words, and in
<mark class="fact">yellow</mark> what the rejecting rule flagged: the numbers and names that new_facts found
nowhere in the question, the original or the evidence, the sentence the faithfulness checker scored lowest,
the claims and lost facts the LLM judge named.</p>
<noscript><p><b>This table needs JavaScript (inline, nothing is fetched).</b></p></noscript>
<div class="filters">
<label>task <select id="f-task"><option value="">all</option></select></label>
<label>outcome <select id="f-outcome"><option value="">all</option></select></label>
<label>rule <select id="f-rule"><option value="">all</option></select></label>
<label>words <input id="f-q" type="search" placeholder="id, reason, text"></label>
<span class="muted">showing <b id="shown">0</b> of <b id="matching">0</b> matching records
(<span id="n-rows">{len(rows)}</span> in all)</span>
</div>
{cut_note}
<table id="records"><colgroup><col class="c-id"><col class="c-task"><col class="c-out"><col class="c-rule"><col></colgroup>
<thead><tr><th>id</th><th>task</th><th>outcome</th><th>rule</th><th>reason</th></tr></thead>
<tbody id="rows"></tbody></table>
<button id="more" hidden>show more</button>
<script type="application/json" id="data">{_script_json(rows)}</script>
<script>{SCRIPT}</script>
</body></html>
"""
    path = os.path.join(folder, "report.html")
    with atomic_open(path) as f:
        f.write(page)
    return path
