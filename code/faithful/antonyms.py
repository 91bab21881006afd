"""Words and their opposites, for the contradiction check (align.py). Two sources:
- PAIRS below: ours, plain English words only; each line one pair, inflected forms listed too;
- model/opposites.tsv: some 15,000 pairs derived from WordNet 3.0 (Princeton University; licence in
  the file's header) by make_opposites.py: direct antonyms and indirect ones ("humid" ~ "wet" <->
  "dry"), common senses only, with inflected forms. Function words (text.STOP: "in", "out", "up")
  and quantifiers ("any", "no", "ever") are left out of it: their adjective senses are not what a
  sentence means by them.

    OPPOSITE["smaller"] -> {"larger", "bigger"}
"""

import os

from realign.faithful.text import STOP

WORDNET_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model", "opposites.tsv")

PAIRS = """
more less|more fewer|most least|increase decrease|increases decreases|increased decreased|increasing decreasing
before after|first last|earlier later|earliest latest|sooner later|early late|prior after
hot cold|hotter colder|hottest coldest|warm cool|warmer cooler|warmest coolest|heat cool|heats cools
fast slow|faster slower|fastest slowest|quickly slowly|quick slow|rapid gradual|rapidly gradually
high low|higher lower|highest lowest|above below|upper lower|top bottom|raise lower|raises lowers
long short|longer shorter|longest shortest|tall short|taller shorter
large small|larger smaller|largest smallest|big small|bigger smaller|biggest smallest|huge tiny
easy hard|easier harder|easiest hardest|easy difficult|simple complicated|simple complex
cheap expensive|cheaper pricier|cheapest priciest|cheap costly|inexpensive expensive
safe dangerous|safer riskier|safe unsafe|safe risky|harmless harmful|healthy unhealthy|benign harmful
often rarely|often seldom|usually rarely|frequently rarely|frequently seldom|common rare|commonly rarely
inside outside|internal external|inner outer|indoors outdoors|interior exterior
open closed|open shut|opens closes|full empty|fill empty
light dark|lighter darker|bright dim|brighter dimmer|light heavy|lighter heavier|lightest heaviest
strong weak|stronger weaker|strongest weakest|strengthen weaken|strengthens weakens
better worse|best worst|good bad|improve worsen|improves worsens|improved worsened
add remove|adds removes|added removed|include exclude|includes excludes|included excluded
thick thin|thicker thinner|dense sparse|denser sparser|wide narrow|wider narrower|deep shallow|deeper shallower
tighten loosen|tight loose|tighter looser|forward backward|forwards backwards|upward downward
start stop|starts stops|started stopped|allow prevent|allows prevents|allowed prevented
allow forbid|permitted forbidden|allowed banned|legal illegal|valid invalid|possible impossible|likely unlikely
help harm|helps harms|helps hurts|helpful harmful|useful useless|gain lose|gains loses|win lose|wins loses
accept reject|accepts rejects|accepted rejected|agree disagree|agrees disagrees
true false|correct incorrect|positive negative|success failure|succeed fail|succeeds fails
new old|newer older|newest oldest|fresh stale|fresher staler|young old|younger older|modern ancient
loud quiet|louder quieter|loudest quietest|loud soft|noisy quiet
clean dirty|cleaner dirtier|wet dry|wetter drier|damp dry|humid dry|moist dry|sweet bitter|sweet sour
same different|similar different|permanent temporary|permanently temporarily|optional required
optional mandatory|optional compulsory|minimum maximum|min max|rise fall|rises falls|rising falling|rose fell
push pull|pushes pulls|buy sell|buys sells|import export|imports exports|enter leave|enters leaves|arrive depart
near far|nearer farther|closer farther|closer further|closest farthest|nearby distant|together apart
north south|east west|northern southern|eastern western|morning evening|day night|summer winter|spring autumn
daily weekly|weekly monthly|monthly yearly|sink float|sinks floats|absorb release|absorbs releases|absorb reflect
attract repel|attracts repels|expand shrink|expands shrinks|expand contract|expands contracts
cause prevent|causes prevents|kill feed|kills feeds|rich poor|richer poorer|soft hard|softer harder|gently firmly
gentle rough|smooth rough|smoother rougher|sharp dull|sharper duller|calm anxious|relaxed tense|active passive
active inactive|visible invisible|legal illegal|online offline|before afterwards
majority minority
required optional|necessary unnecessary|needed unneeded|enough insufficient
increase reduce|increases reduces|increased reduced|raise reduce|raises reduces|boost reduce|boosts reduces
speed slow|speeds slows|accelerate decelerate|sooner later|ahead behind|win lose|winner loser|profit loss
above beneath|maximum minimum|highest lowest|peak trough|overestimate underestimate
import export|input output|inputs outputs|send receive|sends receives|sent received
lend borrow|teacher student|buyer seller|employer employee|host guest|parent child|predator prey
encourage discourage|encourages discourages|support oppose|supports opposes|pro con|pros cons
succeeded failed|pass fail|passed failed|passes fails|approve reject|approved rejected|win loss
hydrophilic hydrophobic|acidic alkaline|acid base
asleep awake|sleep wake|alive dead|living dead|presence absence|visible hidden
vertical horizontal|vertically horizontally|clockwise anticlockwise|clockwise counterclockwise
ascending descending|increasing decreasing|upstream downstream|uphill downhill|inbound outbound
synchronous asynchronous|sync async|mutable immutable|public private|local global|local remote|static dynamic
lengthen shorten|lengthens shortens|widen narrow|heavier lighter|overcook undercook
overcooked undercooked|overweight underweight|overestimate underestimate|overrated underrated
"""

OPPOSITE = {}
for _line in PAIRS.strip().split("\n"):
    for _pair in _line.split("|"):
        _a, _b = _pair.strip().split(None, 1)
        _b = _b.strip()
        OPPOSITE.setdefault(_a, set()).add(_b)
        OPPOSITE.setdefault(_b, set()).add(_a)


def _wordnet_pairs(path=WORDNET_FILE):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [ln.split("\t") for ln in f.read().split("\n") if ln and not ln.startswith("#")]


# quantifiers and negations: WordNet pairs them as adjectives (any <-> no, ever <-> never, other <->
# same), but a rewrite trades them freely ("no fast access" for "without any fast access"); a changed
# quantifier is the number rules' and the hand list's to read
QUANTIFIERS = frozenset("""no not none never ever any some each every all both either neither many few much
little more less most least several other same another such enough only own certain""".split())
HAND = {w: set(o) for w, o in OPPOSITE.items()}   # the hand list alone
for _a, _b in _wordnet_pairs():
    if not {_a, _b} & (STOP | QUANTIFIERS):
        OPPOSITE.setdefault(_a, set()).add(_b)
        OPPOSITE.setdefault(_b, set()).add(_a)
