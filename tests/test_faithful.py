"""The faithfulness checker (realign.faithful): it loads fast, catches each kind of meaning flaw on
small hand-written cases (a negation or an opposite word flipped, a verdict changed, a claim added,
a fact lost, the request restated), keeps faithful restructurings, and the filter rule names the
sentence, what was found and its score.

The cases below were written for these tests: they are not in datasets/faithful/ (the training
sources), the issue texts or the bench sets.
"""

import importlib.util
import os
import time

import pytest

from realign.faithful import Checker
from realign.faithful.checker import LOST, RESTATES, UNSUPPORTED, restated_share
from realign.faithful.pairs import heldout_records, held_out, parse_sources, training_records
from realign.faithful.text import claims, stems
from realign.lengths import approx_tokens
from realign.selection import Pair

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def checker():
    return Checker()


def rules_module():
    spec = importlib.util.spec_from_file_location("rds_faithful_test", os.path.join(ROOT, "rewrite_data_selection.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


Q_TEA = "How do I brew green tea properly?"
A_TEA = ("Heat the water until it is hot but not boiling, because boiling water makes green tea bitter. "
         "Use about one teaspoon of leaves per cup. Steep for two to three minutes, then remove the leaves. "
         "Good green tea can be steeped a second time.")
R_TEA = ("## Brewing green tea\n\n"
         "1. **Water:** heat it until hot, but stop before it boils – boiling water turns green tea bitter.\n"
         "2. **Leaves:** roughly one teaspoon per cup.\n"
         "3. **Steep:** two to three minutes, then take the leaves out.\n\n"
         "Good leaves can be steeped a second time.")

Q_BIKE = "How do I fix a flat bicycle tyre?"
A_BIKE = ("Take the wheel off and use tyre levers to pull one side of the tyre off the rim. Pull out the inner tube "
          "and pump a little air into it to find the hole. Patch the hole, or fit a new tube. Before putting the tyre "
          "back, run your fingers around the inside of it to find the thorn or glass that caused the puncture, or it "
          "will happen again.")
R_BIKE = ("Here's how to fix a flat:\n\n"
          "- Remove the wheel, then lever one side of the tyre off the rim with tyre levers.\n"
          "- Take out the inner tube and put a bit of air in it so you can find the hole.\n"
          "- Patch the hole or replace the tube.\n"
          "- Before refitting the tyre, feel around its inside with your fingers for the thorn or glass that "
          "caused the puncture – otherwise you'll get another flat.")


def test_loads_fast():
    t = time.perf_counter()
    Checker()
    assert time.perf_counter() - t < 5   # about 0.3 s on an idle machine (bench/README): a shared CI box is slower


def test_keeps_faithful_restructurings(checker):
    for q, a, r in ((Q_TEA, A_TEA, R_TEA), (Q_BIKE, A_BIKE, R_BIKE)):
        v = checker.check(q, a, r)
        assert not v.flagged, v


def test_unchanged_and_copied_text_needs_no_model(checker):
    v = checker.check(Q_TEA, A_TEA, "In short:\n\n" + A_TEA)
    assert not v.flagged and v.pairs == 0


@pytest.mark.parametrize("old, new, said", [
    ("Before refitting the tyre, feel around", "There is no need to feel around", "a negation added"),
    ("Before refitting the tyre", "After refitting the tyre", "'before' became 'after'"),
    ("- Patch the hole or replace the tube.", "- Do not patch the hole; replace the tube.", "a negation added"),
])
def test_catches_a_contradiction_in_plain_words(checker, old, new, said):
    v = checker.check(Q_BIKE, A_BIKE, R_BIKE.replace(old, new))
    assert v.flagged and v.kind == "contradiction" and v.direction == UNSUPPORTED, v
    assert said in v.detail and new.lstrip("- ")[:20] in v.sentence


def test_cannot_is_a_negation(checker):
    bad = R_TEA.replace("Good leaves can be steeped a second time.", "Good green tea cannot be steeped a second time.")
    v = checker.check(Q_TEA, A_TEA, bad)
    assert v.flagged and v.kind == "contradiction", v


def test_catches_an_added_claim(checker):
    v = checker.check(Q_TEA, A_TEA, R_TEA + "\n\nDrinking it with milk also brings out its sweetness.")
    assert v.flagged and v.kind == "added" and v.direction == UNSUPPORTED, v
    assert "milk" in v.sentence and "milk" in v.detail and v.score >= v.threshold


def test_catches_a_lost_fact(checker):
    bad = R_BIKE.replace("\n- Before refitting the tyre, feel around its inside with your fingers for the thorn or "
                         "glass that caused the puncture – otherwise you'll get another flat.", "")
    v = checker.check(Q_BIKE, A_BIKE, bad)
    assert v.flagged and v.direction == LOST and v.kind == "lost" and "thorn" in v.sentence, v


def test_catches_a_lost_fact_in_everyday_words(checker):
    """A dropped sentence with no rare word ("write down", "ask", "forget") is still read."""
    q = "How should I prepare for a job interview?"
    a = ("Read about the company before the day. Practise answers to common questions out loud. Write down a few "
         "things you want to ask them, since you will forget them when you are nervous. Arrive ten minutes early.")
    kept = ("## Before the interview\n\n- Research the company beforehand.\n- Practise your answers to common "
            "questions aloud.\n- Note a few things you want to ask them: nerves will make you forget them.\n"
            "- Get there ten minutes early.")
    assert not checker.check(q, a, kept).flagged
    v = checker.check(q, a, kept.replace("\n- Note a few things you want to ask them: nerves will make you forget "
                                         "them.", ""))
    assert v.flagged and v.kind == "lost" and v.sentence.startswith("Write down"), v


def test_catches_a_changed_verdict(checker):
    q = "Is it true that bats are blind?"
    a = "False. Bats can see; many also use echolocation to hunt at night."
    assert not checker.check(q, a, "**Verdict:** false.\n\nBats can see, and many also use echolocation to hunt "
                                   "at night.").flagged
    v = checker.check(q, a, "**Verdict:** true.\n\nBats can see, and many also use echolocation to hunt at night.")
    assert v.flagged and v.kind == "verdict" and "'true'" in v.detail, v


def test_headings_and_numbers_in_words_are_not_claims(checker):
    q = "Why does pasta take longer to cook in the mountains?"
    a = ("At high altitude water boils at a lower temperature, about ninety degrees at three thousand metres, "
         "so pasta cooks more slowly.")
    r = ("## Why\n\nHigh up, water boils at a lower temperature: around 90 degrees at 3000 metres.\n\n"
         "## Practical effect\n\nPasta cooks more slowly.")
    assert not checker.check(q, a, r).flagged


def test_catches_a_rewrite_that_restates_the_request(checker):
    q = ("Reply to this message from my landlord and say I can't meet on Monday but Wednesday works: "
         "\"Hello, I would like to come round on Monday morning to check the boiler and the smoke alarms. "
         "Please let me know if that suits you. Best regards, Mark\"")
    a = ("Hi Mark, thanks for letting me know. Unfortunately Monday doesn't work for me, but Wednesday "
         "morning would be fine. Best wishes")
    restated = ("Hello,\n\nI would like to come round on Monday morning to check the boiler and the smoke alarms. "
                "Please let me know if that suits you.\n\nBest regards,\nMark")
    assert restated_share(q, a, restated) > 0.5
    v = checker.check(q, a, restated)
    assert v.flagged and v.direction == RESTATES, v
    assert not checker.check(q, a, "Hi Mark,\n\nThanks for letting me know. Monday doesn't work for me, "
                                   "unfortunately, but Wednesday morning would be fine.\n\nBest wishes").flagged


def test_editing_tasks_are_not_restating():
    q = "Fix the grammar: \"me and him goes to the market every sundays to buy fresh vegetable\""
    a = "He and I go to the market every Sunday to buy fresh vegetables."
    assert restated_share(q, a, "He and I go to the market every Sunday to buy fresh vegetables.") == 0.0


def test_score_many_matches_check(checker):
    lost = R_BIKE.split("\n- Before")[0]
    rows = [(Q_BIKE, A_BIKE, R_BIKE, ()), (Q_BIKE, A_BIKE, lost, ())]
    many = checker.score_many(rows)
    assert [v.flagged for v in many] == [checker.check(*row).flagged for row in rows] == [False, True]


def test_a_stricter_threshold_flags_more():
    added = R_TEA + "\n\nDrinking it with milk also brings out its sweetness."
    lenient = Checker(thresholds={"added": 0.999})
    assert not lenient.check(Q_TEA, A_TEA, added).flagged
    assert Checker(thresholds={"added": 0.5}).check(Q_TEA, A_TEA, added).flagged


def test_rule_reason_names_the_sentence_what_was_found_and_the_score():
    module = rules_module()
    lost = R_BIKE.split("\n- Before")[0]
    reason = module.meaning_kept([Pair(2, Q_BIKE, A_BIKE, lost, "how_to_generation", approx_tokens)])[0]
    assert "lost" in reason and "thorn" in reason and "score" in reason and "missing:" in reason
    assert "Before putting the tyre back" in reason.original_marks[0]
    assert module.meaning_kept([Pair(3, Q_TEA, A_TEA, R_TEA, "how_to_generation", approx_tokens)]) == [None]
    added = R_TEA + "\n\nDrinking it with milk also brings out its sweetness."
    reason = module.meaning_kept([Pair(1, Q_TEA, A_TEA, added, "how_to_generation", approx_tokens)])[0]
    assert "unsupported" in reason and "milk" in reason and "score" in reason
    assert "Drinking it with milk also brings out its sweetness." in reason.marks
    flipped = R_BIKE.replace("Before refitting the tyre", "After refitting the tyre")
    reason = module.meaning_kept([Pair(4, Q_BIKE, A_BIKE, flipped, "how_to_generation", approx_tokens)])[0]
    assert "contradicts" in reason and "'before' became 'after'" in reason


def test_rule_is_in_every_preset_but_none():
    module = rules_module()
    for name, rules in module.RULESETS.items():
        assert (module.meaning_kept in rules) == (name != "none"), name


def test_claims_join_lead_ins_and_read_tables():
    text = "You will need:\n- flour\n- two eggs\n- butter\n\n| Tool | Use |\n|---|---|\n| Whisk | beating eggs |"
    assert claims(text) == ["You will need: flour, two eggs, butter.", "Whisk: Use beating eggs."]
    assert "not" in stems("Don't let it boil") and "befor" in stems("before it boils")


def test_training_never_sees_held_out_items():
    items = parse_sources()
    held = [it for it in items if held_out(it["id"])]
    assert held and len(held) < len(items) / 3
    trained = training_records(items)
    assert not {r["id"] for r in trained} & {it["id"] for it in held}
    seen = "\n".join({r["rewrite"] for r in trained})
    for it in held:
        assert not any(c in seen for c in claims(it["rewrite"]) if len(c) > 60), it["id"]
    kinds = {r["kind"] for r in heldout_records(items)}
    assert kinds == {"faithful", "added_claim", "contradiction", "lost_fact", "changed_conclusion", "restates_request"}


# ---------------------------------------------------------------- details.py: sure word checks (checker v3)

Q_NOTICE = ("Pull out the time, place and organiser: 'The book swap is on Friday at 6 pm in the east wing "
            "of Hillcrest Library, by the reading room. Ask Dana Reyes at the front desk.'")
A_NOTICE = ("Time: Friday at 6 pm. Place: the east wing of Hillcrest Library, by the reading room. "
            "Organiser: Dana Reyes, at the front desk.")
R_NOTICE = "- **Time:** Friday, 6 pm\n- **Place:** the east wing of Hillcrest Library, by the reading room\n" \
           "- **Organiser:** Dana Reyes, at the front desk"


def test_a_field_value_blurred_is_lost(checker):
    assert not checker.check(Q_NOTICE, A_NOTICE, R_NOTICE).flagged
    v = checker.check(Q_NOTICE, A_NOTICE, R_NOTICE.replace("the east wing of Hillcrest Library, by the reading room",
                                                           "Hillcrest Library"))
    assert v.flagged and v.kind == "dropped" and v.direction == LOST and "place" in v.detail, v
    assert "detail of the original is lost" in v.reason()


def test_a_place_blurred_into_its_whole_in_prose():
    from realign.faithful.details import details
    q = "Where do we meet for the walk?"
    a = "We meet at the south gate of Elmwood Cemetery at ten, then walk to the river."
    assert not details(q, a, "Meet at ten at the south gate of Elmwood Cemetery; from there you walk to the river.")
    (kind, direction, _, detail), = details(q, a, "Meet at Elmwood Cemetery at ten; from there you walk to the river.")
    assert kind == "dropped" and direction == LOST and "Elmwood Cemetery" in detail


def test_an_enumeration_item_dropped_is_lost():
    from realign.faithful.details import details
    q = "What do I need for the glaze?"
    a = "You need icing sugar, lemon juice, poppy seeds and butter, mixed until smooth."
    assert not details(q, a, "Mix until smooth:\n- icing sugar\n- lemon juice\n- poppy seeds\n- butter")
    found = details(q, a, "Mix until smooth:\n- icing sugar\n- lemon juice\n- butter")
    assert found and found[0][0] == "dropped" and "poppy" in found[0][3]


def test_a_list_line_dropped_is_lost():
    from realign.faithful.details import details
    q = "What should go in a first-aid kit?"
    a = "The basics:\n- plasters\n- antiseptic wipes\n- tweezers\n- gauze pads\n- scissors\nCheck it twice a year."
    assert not details(q, a, "Pack plasters, antiseptic wipes, tweezers, gauze pads and scissors, and check it twice a year.")
    found = details(q, a, "Pack plasters, antiseptic wipes, gauze pads and scissors, and check it twice a year.")
    assert found and "tweezers" in found[0][3]


def test_a_comparison_turned_round_is_a_contradiction(checker):
    q = "How can I sleep better?"
    a = ("Keep the bedroom cool and dark. A short walk in the afternoon helps more than a late workout, "
         "and reading paper books works better than scrolling on a phone.")
    good = "Keep your bedroom cool and dark. An afternoon walk helps more than a late workout; paper books beat scrolling."
    assert not checker.check(q, a, good).flagged
    v = checker.check(q, a, good.replace("An afternoon walk helps more than a late workout",
                                         "A late workout helps more than an afternoon walk"))
    assert v.flagged and v.kind == "contradiction" and "afternoon walk" in v.detail, v
    assert v.sentence.startswith("A late workout helps more")


def test_a_preference_turned_round_is_a_contradiction():
    from realign.faithful.details import details
    q = "How do I clean a cast iron pan?"
    a = "Scrub it with coarse salt and a little oil, not with dish soap, then dry it on the hob."
    assert not details(q, a, "Scrub with coarse salt and some oil rather than dish soap, then dry it on the hob.")
    found = details(q, a, "Scrub with dish soap rather than coarse salt and oil, then dry it on the hob.")
    assert found and found[0][0] == "contradiction"


def test_a_recommendation_switched_is_a_changed_conclusion(checker):
    q = "Should I get a gas or an induction hob for my small flat?"
    a = ("Gas heats instantly and works with any pan, but it needs ventilation and a gas supply. Induction is "
         "just as fast, safer, and easy to clean, though it needs magnetic pans. I'd go with induction: in a small "
         "flat the safety and the easy cleaning matter most.")
    good = ("- Gas: instant heat, any pan, but it needs ventilation and a gas supply.\n- Induction: as fast, safer, "
            "easy to clean; needs magnetic pans.\n\n**Recommendation:** induction, since in a small flat safety and "
            "easy cleaning matter most.")
    assert not checker.check(q, a, good).flagged
    v = checker.check(q, a, good.replace("**Recommendation:** induction", "**Recommendation:** gas"))
    assert v.flagged and v.kind == "conclusion" and v.direction == UNSUPPORTED, v
    assert "changes the original's conclusion" in v.reason()


def test_two_words_trading_places_are_found_and_a_long_clause_stays_linear():
    """align.swapped: a swap is found even when the moved word sits where the rewrite still reads
    like the source ("the code" twice); on one long clause it tries only the words where the
    rewrite leaves the source (every pair of words was tried before: a 250-word line took 9 s,
    a 1 MB one-line answer over 20 minutes). The sizes grow 16x; the time is bounded loosely."""
    from realign.faithful.align import findings, swapped

    class Clause:
        def __init__(self, text):
            self.tokens = text.split()

    source = Clause("comments that repeat the code stay accurate when the code changes")
    assert swapped(Clause("comments that repeat the code changes accurate when the code stay"), source)
    assert not swapped(Clause("comments that repeat the code stay accurate when the code changes"), source)
    assert not swapped(Clause("comments that repeat the code stay correct when the code changes"), source)
    for n in (1_000, 16_000):
        line = ["".join(chr(97 + (k // 26 ** p) % 26) for p in range(3)) + "o" for k in range(n)]  # made-up words
        moved = list(line)
        moved[n // 3], moved[2 * n // 3] = moved[2 * n // 3], moved[n // 3]
        start = time.perf_counter()
        found = findings("Summarise the log.", " ".join(line) + ".", "## Log\n\n" + " ".join(moved) + ".")
        assert time.perf_counter() - start < 60
        assert any("trade places" in f.detail for f in found), found


def test_wordnet_opposites_ship_with_their_licence_and_skip_quantifiers():
    """antonyms.py reads model/opposites.tsv (make_opposites.py, from WordNet 3.0): direct pairs
    and indirect ones through "similar to" (humid ~ wet <-> dry), inflected; never quantifiers
    or function words, which a paraphrase trades freely."""
    from realign.faithful.antonyms import HAND, OPPOSITE, WORDNET_FILE

    head = open(WORDNET_FILE, encoding="utf-8").read(4000)
    assert "WordNet 3.0 Copyright 2006 by Princeton University" in head and "make_opposites.py" in head
    assert len(OPPOSITE) > 10 * len(HAND)
    assert "dry" in OPPOSITE["humid"] and "wet" in OPPOSITE["arid"]          # indirect
    assert "domestic" in OPPOSITE["foreign"] and "oldest" in OPPOSITE["youngest"]   # direct, inflected
    for w in ("any", "no", "ever", "same", "in", "out"):
        assert not OPPOSITE.get(w, set()) - HAND.get(w, set()), w


@pytest.mark.parametrize("old, new", [
    ("The flat faces a quiet courtyard at the back.", "The flat faces a quiet courtyard at the front."),
    ("Most of the cost fell on domestic buyers.", "Most of the cost fell on foreign buyers."),
    ("Keep the seedlings somewhere humid while they root.", "Keep the seedlings somewhere dry while they root."),
])
def test_an_opposite_word_from_wordnet_is_a_contradiction(checker, old, new):
    q = "Can you tidy up this note for me?"
    v = checker.check(q, f"Here is the note. {old} That is all.", f"**Note**\n\n- {new}\n- That is all.")
    assert v.flagged and v.kind == "contradiction", v
    assert not checker.check(q, f"Here is the note. {old} That is all.", f"**Note**\n\n- {old}\n- That is all.").flagged


def test_early_and_late_are_not_synonyms_through_a_far_fetched_shared_opposite(checker):
    """Both are WordNet opposites of "mid": the synonym guard reads the hand list only."""
    a = "See a doctor soon, since antiviral drugs work best if they are started early."
    v = checker.check("When should I take antivirals for flu?", a,
                      "See a doctor soon: antiviral drugs work best if they are started late.")
    assert v.flagged and v.kind == "contradiction" and "'early' became 'late'" in v.detail, v


def test_a_negation_taken_away_is_read_across_inflections(checker):
    """"does not tell you" -> "tells you": the negation's words stand in the rewrite in another
    inflection; a negation between them ("non-crackers") or a counterfactual ("would have
    earned" for "didn't earn") keeps a paraphrase a paraphrase."""
    q = "Does a cancelled match mean it rained?"
    a = ("The match could have been cancelled for another reason, such as a waterlogged pitch, so knowing it was "
         "cancelled does not tell you it rained.")
    v = checker.check(q, a, "**Answer:** knowing the match was cancelled tells you that it rained.")
    assert v.flagged and v.kind == "contradiction" and "negation taken away" in v.detail, v
    assert not checker.check(q, a, "**Answer:** the match may have been cancelled for another reason, such as a "
                                   "waterlogged pitch, so the cancellation does not tell you it rained.").flagged
    q2 = "Does cracking your knuckles cause arthritis?"
    a2 = ("No. Several studies comparing habitual knuckle-crackers with people who don't crack their knuckles found "
          "no difference in rates of arthritis in the hands.")
    assert not checker.check(q2, a2, "**No.**\n\nSeveral studies comparing habitual knuckle-crackers with "
                                     "non-crackers found no difference in rates of hand arthritis.").flagged
    q3 = "What is the opportunity cost of going to the barbecue instead of my shift?"
    a3 = "If you go to the barbecue, its opportunity cost is the eighty pounds you didn't earn at your shift."
    assert not checker.check(q3, a3, "Go to the barbecue and you've given up the eighty pounds you would have "
                                     "earned at your shift: that is its opportunity cost.").flagged


def test_an_opposite_under_the_same_negation_and_a_swap_beside_a_list_word(checker):
    """"too big" -> "too small" flips (both words under the same "too"); two words trading places
    across "and" flip ("red on the outside and violet on the inside"), while two neighbours
    trading places are style ("water only" -> "only water") and a reordered list is a list."""
    q = "Explain gradient descent's learning rate."
    a = "Steps that are too big can jump right over the valley, and steps that are too small take forever."
    v = checker.check(q, a, "- Steps that are too small can jump right over the valley.\n- Steps that are too big take forever.")
    assert v.flagged and v.kind == "contradiction", v
    q2 = "Why is a rainbow red on the outside?"
    a2 = "Each colour comes back at a slightly different angle, with red on the outside and violet on the inside of the bow."
    v = checker.check(q2, a2, "**Why:** each colour comes back at a slightly different angle, with violet on the outside "
                              "and red on the inside of the bow.")
    assert v.flagged and v.kind == "contradiction" and "trade places" in v.detail, v
    q3 = "How often should I water a fiddle-leaf fig?"
    a3 = "Water only when the top few centimetres of soil are dry, and never let the pot stand in water."
    assert not checker.check(q3, a3, "- Only water when the top few centimetres of soil are dry.\n"
                                     "- Never let the pot stand in water.").flagged


@pytest.mark.parametrize("old, new, faithful", [
    ("keep it out of direct sun for about a week while it settles", "keep it out of direct sun for a while as it settles", False),
    ("check the kit twice a year and replace anything that has expired", "check the kit regularly and replace anything that has expired", False),
    ("leave the house by eight-fifteen, which gives you a buffer for a late bus", "leave the house in good time, which gives you a buffer for a late bus", False),
    ("send the invitations about two weeks before the party", "send the invitations a fortnight in advance of the party", True),
    ("send the invitations about two weeks before the party", "send the invitations about 2 weeks before the party, a few days after you book the hall", True),
])
def test_an_amount_or_time_blurred_into_a_vague_word_is_lost(checker, old, new, faithful):
    """details.blurred: a specific amount, time or frequency gone, its sentence now vague; a
    number kept in digits or as "a fortnight" is kept."""
    q = "Can you turn my notes into a short checklist?"
    a = f"First, {old}. Then tidy up."
    v = checker.check(q, a, f"**Checklist**\n\n1. {new[0].upper() + new[1:]}.\n2. Tidy up.")
    if faithful:
        assert not (v.flagged and v.kind == "dropped"), v
    else:
        assert v.flagged and v.kind == "dropped" and "blurred into" in v.detail, v


def test_rather_than_and_instead_of_are_negations(checker):
    """What follows "rather than" or "instead of" is not done: said plainly, it is a
    contradiction; set on a comparison's lesser side ("works better than X") it is not, and a
    negation's reach ends at a full stop ("let instead of var. let is block-scoped")."""
    q = "My dog ate a grape. What should I do?"
    a = "If your dog eats any grapes, call your vet straight away rather than waiting for symptoms to appear."
    v = checker.check(q, a, "**What to do:** if your dog eats any grapes, wait for symptoms to appear before calling your vet.")
    assert v.flagged and v.kind == "contradiction" and "negation taken away" in v.detail, v
    assert not checker.check(q, a, "**What to do:** if your dog eats any grapes, call your vet straight away; "
                                   "don't wait for symptoms to appear.").flagged
    q2 = "How should I learn German grammar?"
    a2 = "Learn example sentences rather than memorising lists of rules; for many learners it works better."
    assert not checker.check(q2, a2, "**Study tip:** learning example sentences works better for many learners "
                                     "than memorising lists of rules.").flagged
    q3 = "Why does this loop print 5 five times?"
    a3 = "The simplest fix is to declare the loop variable with let instead of var. let is block-scoped, so each callback gets its own copy."
    assert not checker.check(q3, a3, "- Fix: declare the loop variable with `let`, not `var`.\n- `let` is block-scoped, "
                                     "so each callback gets its own copy.").flagged


def test_a_longer_item_of_an_enumeration_dropped_is_lost(checker):
    """Items of up to four words ("trips to the countryside"); a list of clauses ("parking is
    scarce and expensive") or of steps ("mashed and mixed with lime juice") is not a list of things."""
    q = "Is it worth learning to drive if I live in the city?"
    a = "A licence gives you options: you can rent a car for holidays, trips to the countryside or moving house."
    v = checker.check(q, a, "**Why learn:** a licence gives you options: you can rent a car for holidays or moving house.")
    assert v.flagged and v.kind == "dropped" and "trips to the countryside" in v.detail, v
    assert not checker.check(q, a, "**Why learn:** a licence gives you options – renting a car for holidays, for "
                                   "trips to the countryside or for moving house.").flagged
    q2 = "What is guacamole made of?"
    a2 = "The main ingredient of guacamole is avocado, mashed and mixed with lime juice, salt, onion and cilantro."
    assert not checker.check(q2, a2, "**Main ingredient:** avocado\n\n**Other ingredients:**\n- Lime juice\n- Salt\n"
                                     "- Onion\n- Cilantro").flagged


def test_the_second_of_two_things_dropped_is_lost(checker):
    """details.dropped_pair_item: "X or an eye mask" -> "X" while the sentence stays; a quality
    ("low and steady") or an act ("and click Done") is not a thing to list."""
    q = "How can I sleep better on night shifts?"
    a = "Make the bedroom as dark as possible with blackout curtains or an eye mask, and keep it cool."
    v = checker.check(q, a, "- **Darkness:** make the bedroom as dark as possible with blackout curtains.\n- **Cool:** keep it cool.")
    assert v.flagged and v.kind == "dropped" and "an eye mask" in v.detail, v
    assert not checker.check(q, a, "- **Darkness:** make the bedroom as dark as possible: blackout curtains or an "
                                   "eye mask.\n- **Cool:** keep it cool.").flagged
    q2 = "What do central banks aim for?"
    a2 = "A little inflation is considered normal, and most central banks aim to keep it low and steady."
    assert not checker.check(q2, a2, "**Short answer:** a little inflation is normal; most central banks aim to "
                                     "keep it low and stable.").flagged
