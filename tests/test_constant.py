"""The task table: 46 unique names, formats for every rewritten task, RAG within rewritten,
and no other module spelling task names (constant.py is the one place that knows tasks)."""

import re

from realign import constant as C
from conftest import ROOT


def test_46_unique_tasks_in_spec_order_ending_with_default():
    assert len(C.TASKS) == 46 == len(set(C.TASKS))
    assert C.TASKS[0] == "question_generation" and C.TASKS[-1] == "default"


def test_rewrite_and_rag_sets():
    assert len(C.REWRITE_TASKS) == 35
    assert C.NOT_REWRITTEN_TASKS <= set(C.TASKS)
    assert C.RAG_TASKS <= set(C.REWRITE_TASKS)
    assert C.EXAM_TASKS <= set(C.REWRITE_TASKS)


def test_every_task_described_and_every_rewritten_task_has_a_format():
    assert set(C.TASK_DESCRIPTIONS) == set(C.TASKS)
    assert all(v.strip() for v in C.TASK_DESCRIPTIONS.values())
    assert set(C.TASK_FORMATS) == set(C.REWRITE_TASKS)
    assert all(v.strip() for v in C.TASK_FORMATS.values())


def test_no_other_module_spells_task_names():
    # Task names that are not ordinary words; if another source file spells one in a string,
    # task knowledge is leaking out of constant.py.
    distinctive = [t for t in C.TASKS if "_" in t and t not in ("open_qa",)]
    pattern = re.compile(r"[\"'](" + "|".join(distinctive) + r")[\"']")
    sources = [p for p in (ROOT / "code").rglob("*.py") if p.name != "constant.py"]
    sources += [p for p in ROOT.glob("*.py")]
    offenders = {str(p.relative_to(ROOT)): m for p in sources for m in pattern.findall(p.read_text())}
    allowed = {"rewrite_data_selection.py"}  # the filter rules name the tasks they are about
    assert {k for k in offenders if k not in allowed} == set(), offenders
