"""realign.facts: which numbers, URLs, e-mails and names a text states that its sources do not."""

import pytest

from realign.facts import new_facts

SOURCES = ["How long should cold brew steep?", "Steep 100 grams in 1 liter for 12 to 18 hours; "
           "it keeps two weeks. Half the people in Japan prefer it, says Dr. Mori (mori@example.jp)."]


@pytest.mark.parametrize("text,expected", [
    ("Steep for 12 to 24 hours.", ["24"]),
    ("Budget: $50 for beans.", ["$50"]),
    ("It costs 1.5k yen and 20% more in Osaka.", ["1.5k", "20%", "Osaka"]),
    ("Steep it, as Hoffmann did in 1998.", ["Hoffmann", "1998"]),
    ("Read https://brew.example.com/guide and mail info@brew.example.com.",
     ["https://brew.example.com/guide", "info@brew.example.com"]),
    ("Ask **HydroPeak** first.", ["HydroPeak"]),
    # a word opening a cell is capitalised anyway: only the second word of a new name is caught
    ("| Brand | Origin |\n|---|---|\n| Dune | Frank Herbert |", ["Herbert"]),
])
def test_flags_what_the_sources_never_state(text, expected):
    assert new_facts(text, SOURCES) == expected


@pytest.mark.parametrize("text", [
    "## Cold Brew Steeping Guide\n\n1. Steep 100 g in 1 L.\n2. Wait 12–18 hours.\n3. Keep it 2 weeks.",
    "Steep **100 grams** in 1 liter (1 L) for 12-18 hours, i.e. 100g per 1L.",
    "- **Time**: 12 to 18 hours\n- **Shelf Life**: two weeks\n- Popular in Japan (50%)",
    "Step 1: weigh 100 grams.\nStep 2: steep 12 to 18 hours.\n\nHere are 3 tips:\n- a\n- b\n- c",
    "| # | Step |\n|---|---|\n| 1 | Weigh |\n| 2 | Steep |\n| Total Time | 18 hours |",
    "Japanese drinkers like it. Dr. Mori says so: mori@example.jp",
    "```python\nSteepTime = 36  # Hours\nprint(Config.Default)\n```\nThat is all.",
])
def test_quiet_on_layout(text):
    assert new_facts(text, SOURCES) == []


def test_arithmetic_only_when_asked():
    sources = ["A box holds 12 eggs. How many in 3 boxes?", "36."]
    assert new_facts("3 x 12 = 36, and 36 / 3 = 12.", sources, arithmetic=True) == []
    assert new_facts("12 + 3 = 15", sources) == ["15"]
    assert new_facts("12 + 3 = 15", sources, arithmetic=True) == []
