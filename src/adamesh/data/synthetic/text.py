"""English sentences for the synthetic talking-face corpus: a small hand-written grammar and lexicon.

`make_sentence(rng)` draws a sentence kind (55% statements, 20% yes/no questions, 15% wh-questions,
10% exclamations), then one of that kind's templates, and fills the template's slots from the
lexicon below. Templates are plain functions returning the sentence body in lower case (names and
"I" keep their capitals); `make_sentence` capitalises the first letter and sometimes adds a name as
a vocative ("Maria, ..." or "..., Maria?"). A draw outside the word-count bounds is redrawn with
the same generator, so the result depends only on the generator's state.

The lexicon is chosen for phonetic variety (bilabials, labiodentals, "th", "sh"/"ch"/"j", the
rare "zh" of "measure" and "television", rounded and open vowels, r, l, w) and the templates for
prosodic variety: commas before and after subordinate clauses, in lists, after fronted adverbials
and around vocatives give the animation its phrase boundaries.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

import numpy as np

KINDS: tuple[str, ...] = ("statement", "question", "wh_question", "exclamation")
KIND_WEIGHTS: tuple[float, ...] = (0.55, 0.20, 0.15, 0.10)
VOCATIVE_RATE = 0.15  # share of sentences that address someone by name (where no comma is yet)
ADVERBIAL_RATE = 0.8  # optional time adverbials: most clips should last over 2 s
MAX_DRAWS = 500  # redraws allowed to meet the word-count bounds before giving up


@dataclass(frozen=True)
class Sentence:
    text: str
    kind: str  # one of KINDS


# ----------------------------------------------------------------------------------------------
# Lexicon
# ----------------------------------------------------------------------------------------------

NAMES = (
    "Maria", "Paul", "Bob", "Fiona", "Victor", "Theo", "Sharon", "Charlotte", "George", "Julia",
    "Ruth", "Owen", "Rosa", "Laura", "Walter", "Molly", "Bruno", "Beth", "Arthur", "Joshua", "Vera",
    "Martha", "Philip", "Marco", "Zoe", "Hugo", "Mona", "Jamal", "Priya", "Boris", "Olivia", "Thomas",
    "Matthew", "Sophie", "Jasmine", "Wendy", "Mateo", "Noah", "Yusuf", "Ava", "Leo", "Gloria",
    "Raymond", "Judith", "Oscar", "Elena", "Chloe", "Kevin", "Nora", "Vivian", "Joyce", "Roy",
)  # fmt: skip

SUBJECT_PRONOUNS = (("I", "1sg"), ("you", "pl"), ("we", "pl"), ("they", "pl"), ("he", "3sg"),
                    ("she", "3sg"))  # fmt: skip
POSSESSIVES = ("my", "your", "our", "his", "her", "their")
FAMILY = ("brother", "sister", "mother", "father", "cousin", "uncle", "aunt", "grandmother",
          "grandfather", "nephew", "niece", "son", "daughter", "best friend")  # fmt: skip
WORKERS = ("teacher", "doctor", "farmer", "plumber", "baker", "pilot", "nurse", "driver", "waiter",
           "chef", "photographer", "mechanic", "librarian", "carpenter", "engineer", "neighbor",
           "shepherd", "fisherman", "lawyer", "journalist")  # fmt: skip
GROUPS = ("the children", "my parents", "our neighbors", "the fishermen", "my cousins",
          "the students", "the workers", "your friends", "the musicians", "our grandparents")  # fmt: skip

# Portable objects: (singular, plural). Every THING_VERB fits every one of them.
THINGS = (
    ("umbrella", "umbrellas"), ("book", "books"), ("bottle", "bottles"), ("map", "maps"),
    ("photo", "photos"), ("box", "boxes"), ("jacket", "jackets"), ("key", "keys"),
    ("wallet", "wallets"), ("basket", "baskets"), ("blanket", "blankets"), ("suitcase", "suitcases"),
    ("lamp", "lamps"), ("mirror", "mirrors"), ("guitar", "guitars"), ("violin", "violins"),
    ("hammer", "hammers"), ("envelope", "envelopes"), ("watch", "watches"), ("brush", "brushes"),
    ("pillow", "pillows"), ("rope", "ropes"), ("shovel", "shovels"), ("puzzle", "puzzles"),
    ("ticket", "tickets"), ("camera", "cameras"), ("kettle", "kettles"), ("vase", "vases"),
    ("backpack", "backpacks"), ("notebook", "notebooks"), ("telescope", "telescopes"),
    ("scarf", "scarves"), ("pair of gloves", "pairs of gloves"), ("pair of boots", "pairs of boots"),
    ("pair of shoes", "pairs of shoes"),
    ("sweater", "sweaters"), ("hat", "hats"), ("flute", "flutes"), ("trumpet", "trumpets"),
    ("compass", "compasses"), ("lantern", "lanterns"), ("toolbox", "toolboxes"),
    ("paintbrush", "paintbrushes"), ("ukulele", "ukuleles"), ("treasure map", "treasure maps"),
    ("fishing rod", "fishing rods"), ("thermos", "thermoses"), ("wheel", "wheels"),
    ("jigsaw puzzle", "jigsaw puzzles"), ("pocketknife", "pocketknives"), ("anchor", "anchors"),
    ("iron", "irons"), ("album", "albums"), ("oven mitt", "oven mitts"), ("leash", "leashes"),
    ("toy boat", "toy boats"), ("coin purse", "coin purses"), ("oil lamp", "oil lamps"),
)  # fmt: skip
THING_ADJECTIVES = ("old", "new", "blue", "red", "green", "black", "yellow", "purple", "orange",
                    "brown", "white", "shiny", "small", "little", "lovely", "beautiful", "ugly",
                    "expensive", "cheap", "spare", "heavy", "borrowed", "smooth",
                    "worn", "useful", "enormous", "fragile", "noisy")  # fmt: skip

# Food: (singular, plural) for countable foods, (noun, None) for mass nouns.
FOODS = (
    ("bread", None), ("soup", None), ("cheese", None), ("rice", None), ("butter", None),
    ("coffee", None), ("tea", None), ("juice", None), ("honey", None), ("fish", None),
    ("chocolate", None), ("porridge", None), ("yogurt", None), ("pasta", None), ("popcorn", None),
    ("lemonade", None), ("oatmeal", None), ("goulash", None), ("mushroom soup", None),
    ("apple", "apples"), ("peach", "peaches"), ("tomato", "tomatoes"), ("sandwich", "sandwiches"),
    ("cookie", "cookies"), ("muffin", "muffins"), ("pie", "pies"), ("orange", "oranges"),
    ("egg", "eggs"), ("banana", "bananas"), ("pear", "pears"), ("plum", "plums"),
    ("cherry", "cherries"), ("melon", "melons"), ("carrot", "carrots"), ("olive", "olives"),
    ("avocado", "avocados"), ("waffle", "waffles"), ("pancake", "pancakes"), ("pretzel", "pretzels"),
    ("cupcake", "cupcakes"), ("pizza", "pizzas"), ("strawberry", "strawberries"),
    ("blueberry muffin", "blueberry muffins"), ("fig", "figs"), ("grape", "grapes"),
)  # fmt: skip
FOOD_ADJECTIVES = ("fresh", "delicious", "organic", "local", "tasty", "wonderful", "Italian",
                   "French")  # fmt: skip
TASTE_WORDS = ("wonderful", "delicious", "amazing", "lovely", "perfect", "strange", "marvelous",
               "awful", "fantastic", "sweet")  # fmt: skip

# Things you read or write: singular only.
WRITINGS = ("letter", "poem", "story", "message", "report", "recipe", "postcard", "essay",
            "article", "invitation", "speech", "biography", "weather forecast", "newspaper")  # fmt: skip

# Places in town: (noun, preposition for "at the ...", kind). Kind "store" sells things and, like
# "public", has opening hours; a "view" is worth looking at.
PLACES = (
    ("market", "at", "store"), ("bakery", "at", "store"), ("bookshop", "at", "store"),
    ("pharmacy", "at", "store"), ("shopping mall", "at", "store"), ("butcher shop", "at", "store"),
    ("flower shop", "at", "store"), ("fish market", "at", "store"), ("hardware store", "at", "store"),
    ("library", "at", "public"), ("museum", "at", "public"), ("theater", "at", "public"),
    ("zoo", "at", "public"), ("post office", "at", "public"), ("swimming pool", "at", "public"),
    ("gallery", "at", "public"),
    ("harbor", "at", "view"), ("beach", "on", "view"), ("village", "in", "view"),
    ("park", "in", "view"), ("bridge", "on", "view"), ("castle", "at", "view"),
    ("lighthouse", "at", "view"), ("cathedral", "at", "view"), ("old mill", "at", "view"),
    ("river", "by", "view"), ("waterfall", "at", "view"), ("church", "at", "view"),
    ("station", "at", "other"), ("hospital", "at", "other"), ("airport", "at", "other"),
    ("playground", "at", "other"), ("factory", "at", "other"), ("office", "at", "other"),
    ("bus stop", "at", "other"), ("farm", "on", "other"), ("school", "at", "other"),
)  # fmt: skip
OPEN_HOURS = ("store", "public")
CITIES = ("Paris", "Rome", "Boston", "Lisbon", "Chicago", "Vienna", "Oslo", "Berlin", "Tokyo",
          "Madrid", "Sydney", "Prague", "Moscow", "Warsaw", "Budapest", "Cairo", "Zurich", "Athens",
          "Geneva", "Brussels", "Amsterdam", "Shanghai", "Toronto", "Seattle", "Phoenix",
          "Memphis", "Vancouver", "Melbourne", "Havana", "Bogota", "Mumbai", "Dublin")  # fmt: skip
LANGUAGES = ("French", "Spanish", "Portuguese", "Japanese", "German", "Russian", "Polish",
             "Swahili", "Hebrew", "Hungarian", "Welsh", "Norwegian", "Italian", "Greek", "Dutch",
             "Mandarin", "Turkish", "Finnish")  # fmt: skip
PHRASES = ("thank you", "good morning", "good night", "see you soon", "welcome", "happy birthday",
           "excuse me", "good luck", "cheers", "enjoy your meal")  # fmt: skip
# Where an object can be: full prepositional phrases.
LOCATIONS = ("in the kitchen", "under the bed", "on the table", "behind the sofa", "in the garage",
             "by the front door", "in the attic", "on the top shelf", "in the car",
             "next to the window", "under the stairs", "in the basement", "on the porch",
             "in the hallway", "beside the fireplace", "in the bathroom", "on the balcony",
             "in the wardrobe", "behind the washing machine", "in the glove box")  # fmt: skip
FEELINGS = ("happy", "tired", "hungry", "thirsty", "cheerful", "sleepy", "worried", "surprised",
            "excited", "bored", "relieved", "grateful", "proud", "nervous", "curious", "calm",
            "upset", "jealous", "thrilled", "exhausted", "amused", "anxious")  # fmt: skip
ABOUT_FEELINGS = ("worried", "excited", "nervous", "upset", "curious", "anxious", "happy", "thrilled")
FEELING_TAILS = ("after the long walk", "before the concert", "at the party", "this morning",
                 "yesterday", "during the storm", "on the boat", "after the exam",
                 "at the wedding", "on the first day of school")  # fmt: skip

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")  # fmt: skip
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
PARTS_OF_DAY = ("morning", "afternoon", "evening")
HOURS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
         "twelve")  # fmt: skip
SMALL_NUMBERS = ("two", "three", "four", "five", "six", "seven")
PRICES = ("five", "nine", "twelve", "fifteen", "twenty", "thirty", "forty", "fifty", "ninety",
          "a hundred")  # fmt: skip
AGES_BY_RELATIVE = (  # who can plausibly turn what age
    (("son", "daughter", "nephew", "niece", "little brother", "little sister"), ("seven", "ten", "twelve",
                                                                              "sixteen", "eighteen")),
    (("mother", "father", "uncle", "aunt", "teacher"), ("forty", "fifty", "sixty")),
    (("grandmother", "grandfather"), ("seventy", "eighty", "ninety")),
)  # fmt: skip
AGES = ("seven", "ten", "twelve", "sixteen", "eighteen", "twenty", "thirty", "forty", "fifty",
        "sixty", "seventy", "eighty", "ninety")  # fmt: skip

PAST_TIMES = ("yesterday", "last night", "this morning", "last week", "last weekend",
              "two days ago", "earlier today", "an hour ago", "last summer", "a month ago")  # fmt: skip
FUTURE_TIMES = ("tomorrow", "tonight", "next week", "this weekend", "later today", "soon",
                "this afternoon", "in an hour", "next summer", "after lunch")  # fmt: skip
HABIT_TIMES = ("every morning", "on weekends", "twice a week", "once a month", "in the evening",
               "every summer", "every day", "after work")  # fmt: skip
NOW_TIMES = ("right now", "at the moment", "today", "this week", "this afternoon", "tonight")
FREQUENCY = ("usually", "often", "sometimes", "always")


class Verb(NamedTuple):
    base: str
    past: str
    participle: str


def _verbs(*forms: tuple[str, str, str]) -> tuple[Verb, ...]:
    return tuple(Verb(*f) for f in forms)


# Verbs by the object they take. Phrasal verbs inflect their first word.
THING_VERBS = _verbs(
    ("find", "found", "found"), ("bring", "brought", "brought"), ("carry", "carried", "carried"),
    ("borrow", "borrowed", "borrowed"), ("lose", "lost", "lost"), ("buy", "bought", "bought"),
    ("sell", "sold", "sold"), ("pack", "packed", "packed"), ("hide", "hid", "hidden"),
    ("move", "moved", "moved"), ("forget", "forgot", "forgotten"), ("leave", "left", "left"),
    ("return", "returned", "returned"), ("drop", "dropped", "dropped"), ("keep", "kept", "kept"),
    ("choose", "chose", "chosen"), ("wrap", "wrapped", "wrapped"), ("take", "took", "taken"),
    ("give away", "gave away", "given away"), ("throw away", "threw away", "thrown away"),
)  # fmt: skip
ACCIDENTS = ("lose", "forget", "drop", "leave")  # not for plans, requests or "yet"
WHERE_VERBS = _verbs(("find", "found", "found"), ("buy", "bought", "bought"),
                     ("leave", "left", "left"), ("hide", "hid", "hidden"), ("put", "put", "put"),
                     ("lose", "lost", "lost"), ("keep", "kept", "kept"))  # fmt: skip
FOOD_VERBS = _verbs(
    ("eat", "ate", "eaten"), ("buy", "bought", "bought"), ("share", "shared", "shared"),
    ("order", "ordered", "ordered"), ("bring", "brought", "brought"), ("pack", "packed", "packed"),
    ("taste", "tasted", "tasted"), ("choose", "chose", "chosen"),
)  # fmt: skip
WRITING_VERBS = _verbs(
    ("read", "read", "read"), ("write", "wrote", "written"), ("finish", "finished", "finished"),
    ("send", "sent", "sent"), ("share", "shared", "shared"), ("print", "printed", "printed"),
    ("translate", "translated", "translated"), ("forward", "forwarded", "forwarded"),
)  # fmt: skip
PERSON_VERBS = _verbs(
    ("call", "called", "called"), ("meet", "met", "met"), ("visit", "visited", "visited"),
    ("help", "helped", "helped"), ("thank", "thanked", "thanked"), ("invite", "invited", "invited"),
    ("see", "saw", "seen"), ("hug", "hugged", "hugged"), ("warn", "warned", "warned"),
    ("wait for", "waited for", "waited for"), ("look for", "looked for", "looked for"),
    ("surprise", "surprised", "surprised"), ("phone", "phoned", "phoned"),
)  # fmt: skip
# Verbs that make sense in a request ("Please bring ...") or with "yet" ("Have you packed ... yet?").
FETCH_VERBS = ("bring", "carry", "take")
REQUEST_VERBS = FETCH_VERBS + ("pack", "move", "return", "wrap", "find", "fetch", "check", "clean")
YET_VERBS = _verbs(("find", "found", "found"), ("pack", "packed", "packed"),
                   ("return", "returned", "returned"), ("sell", "sold", "sold"),
                   ("wrap", "wrapped", "wrapped"), ("repair", "repaired", "repaired"))  # fmt: skip
PLACE_VERBS = _verbs(("visit", "visited", "visited"), ("leave", "left", "left"),
                     ("reach", "reached", "reached"), ("pass", "passed", "passed"),
                     ("photograph", "photographed", "photographed"))  # fmt: skip
CITY_VERBS = _verbs(("visit", "visited", "visited"), ("leave", "left", "left"),
                    ("fly to", "flew to", "flown to"), ("move to", "moved to", "moved to"),
                    ("drive to", "drove to", "driven to"),
                    ("travel to", "traveled to", "traveled to"))  # fmt: skip


class Activity(NamedTuple):
    base: str
    past: str
    ing: str
    outdoor: bool


ACTIVITIES = tuple(Activity(*a) for a in (
    ("play chess", "played chess", "playing chess", False),
    ("go fishing", "went fishing", "going fishing", True),
    ("watch a movie", "watched a movie", "watching a movie", False),
    ("take photos", "took photos", "taking photos", True),
    ("go cycling", "went cycling", "going cycling", True),
    ("bake bread", "baked bread", "baking bread", False),
    ("fly a kite", "flew a kite", "flying a kite", True),
    ("paint the fence", "painted the fence", "painting the fence", True),
    ("fix the roof", "fixed the roof", "fixing the roof", True),
    ("feed the ducks", "fed the ducks", "feeding the ducks", True),
    ("practice the violin", "practiced the violin", "practicing the violin", False),
    ("wash the dishes", "washed the dishes", "washing the dishes", False),
    ("go jogging", "went jogging", "going jogging", True),
    ("walk the dog", "walked the dog", "walking the dog", True),
    ("water the plants", "watered the plants", "watering the plants", True),
    ("mow the lawn", "mowed the lawn", "mowing the lawn", True),
    ("do the laundry", "did the laundry", "doing the laundry", False),
    ("play the piano", "played the piano", "playing the piano", False),
    ("sing in the choir", "sang in the choir", "singing in the choir", False),
    ("join the choir", "joined the choir", "joining the choir", False),
    ("boil the potatoes", "boiled the potatoes", "boiling the potatoes", False),
    ("swim in the lake", "swam in the lake", "swimming in the lake", True),
    ("pick strawberries", "picked strawberries", "picking strawberries", True),
    ("sweep the porch", "swept the porch", "sweeping the porch", True),
    ("polish the silver", "polished the silver", "polishing the silver", False),
    ("fold the towels", "folded the towels", "folding the towels", False),
    ("read the newspaper", "read the newspaper", "reading the newspaper", False),
    ("work from home", "worked from home", "working from home", False),
    ("write postcards", "wrote postcards", "writing postcards", False),
    ("move the furniture", "moved the furniture", "moving the furniture", False),
    ("plant tomatoes", "planted tomatoes", "planting tomatoes", True),
    ("catch the early train", "caught the early train", "catching the early train", True),
    ("choose a new sofa", "chose a new sofa", "choosing a new sofa", False),
    ("measure the windows", "measured the windows", "measuring the windows", False),
    ("watch television", "watched television", "watching television", False),
    ("look for the treasure", "looked for the treasure", "looking for the treasure", True),
    ("wash the car", "washed the car", "washing the car", True),
    ("play volleyball on the beach", "played volleyball on the beach",
     "playing volleyball on the beach", True),
    ("enjoy the sunshine", "enjoyed the sunshine", "enjoying the sunshine", True),
    ("go to the theater", "went to the theater", "going to the theater", False),
    ("visit the zoo", "visited the zoo", "visiting the zoo", True),
    ("learn Portuguese", "learned Portuguese", "learning Portuguese", False),
    ("clean the garage", "cleaned the garage", "cleaning the garage", False),
    ("repair the old boat", "repaired the old boat", "repairing the old boat", True),
    ("ride the ferry", "rode the ferry", "riding the ferry", True),
    ("hang the laundry outside", "hung the laundry outside", "hanging the laundry outside", True),
    ("build a treehouse", "built a treehouse", "building a treehouse", True),
    ("rehearse the play", "rehearsed the play", "rehearsing the play", False),
    ("shovel the path", "shoveled the path", "shoveling the path", True),
))  # fmt: skip
ONE_OFF = ("build a treehouse", "join the choir", "choose a new sofa", "measure the windows",
           "repair the old boat", "move the furniture", "look for the treasure", "paint the fence",
           "fix the roof")  # fmt: skip
CHORES = ("feed the ducks", "water the plants", "walk the dog", "wash the dishes", "do the laundry",
          "mow the lawn", "fold the towels", "sweep the porch", "catch the early train", "wash the car",
          "practice the violin", "clean the garage", "shovel the path",
          "hang the laundry outside")  # fmt: skip
HABITS = tuple(a for a in ACTIVITIES if a.base not in ONE_OFF)  # things people do regularly

# Past events usable as whole clauses.
EVENTS = ("the rain stopped", "the bus arrived", "the music started", "the sun came out",
          "the phone rang", "the bell rang", "the lights went out", "the movie ended",
          "the baby fell asleep", "the storm passed", "the guests arrived", "the shop closed",
          "the train left", "the water boiled", "the snow melted", "the concert began",
          "the fog lifted", "the power came back", "the game finished", "the kettle whistled",
          "the fireworks began", "the boat reached the shore", "the mail arrived",
          "the thunder started", "the class finished", "the parade passed by",
          "the wind died down", "the moon rose over the hills", "the birds started singing")  # fmt: skip
ADVERSITIES = ("it was raining", "it was snowing", "it was very cold", "it was late",
               "the water was freezing", "the path was muddy", "the sky was cloudy",
               "the wind was strong", "everyone was tired", "the forecast was awful")  # fmt: skip
CONDITIONS = (("it rains tomorrow", False), ("the weather is nice", True), ("it snows this weekend", False),
              ("the sun comes out", True), ("it is warm on Sunday", True), ("the roads are icy", False),
              ("the storm gets worse", False), ("the sky clears up", True))  # fmt: skip

EXCLAIM_NOUNS = (
    ("morning", ("for a walk", "for a swim", "it was")), ("view", ("from the bridge", "from up here")),
    ("surprise", ("for your mother", "that was")), ("idea", ("that was", "you had")),
    ("voice", ("your sister has", "that singer has")), ("party", ("that was", "we had last night")),
    ("dinner", ("we had", "that was")), ("story", ("that was", "your father told us")),
    ("garden", ("your neighbors have", "behind the museum")), ("day", ("for a picnic", "at the beach")),
    ("journey", ("that was", "we had")), ("performance", ("that was", "by the orchestra")),
    ("sunset", ("over the harbor", "over the water")), ("rainbow", ("over the hills", "above the village")),
)  # fmt: skip
EXCLAIM_ADJECTIVES = ("beautiful", "lovely", "wonderful", "marvelous", "amazing", "perfect",
                      "brilliant", "gorgeous", "strange", "awful", "unusual", "extraordinary",
                      "peaceful", "memorable")  # fmt: skip
VIEW_ADJECTIVES = ("beautiful", "busy", "quiet", "peaceful", "crowded", "lovely", "gloomy", "magical",
                   "calm", "charming", "empty")  # fmt: skip
HAZARDS = ("the broken glass", "the big puddle", "the falling branches", "the icy steps",
           "the hot oven", "that angry goose", "the wet floor", "the loose boards", "the thorny bush",
           "the low ceiling", "the jellyfish", "the rusty nails")  # fmt: skip
BREAKABLES = ("vase", "mirror", "lamp", "camera", "telescope", "violin", "kettle", "bottle", "lantern",
              "suitcase", "toolbox", "box")  # fmt: skip
OFFER_TAILS = ("with your breakfast", "before the show", "for the trip", "with your lunch",
               "after the walk")  # fmt: skip
GIFTS = ("the lovely flowers", "the beautiful scarf", "the homemade cookies", "the warm welcome",
         "the birthday present", "the wonderful dinner", "the postcard from Paris",
         "the jar of honey", "your help yesterday", "the tickets to the opera")  # fmt: skip
FAVORITE_KINDS = ("song", "color", "season", "book", "city", "flower", "fruit", "movie", "sport",
                  "animal", "poem", "painting")  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Morphology and agreement
# ----------------------------------------------------------------------------------------------

_T = TypeVar("_T")


def _pick(rng: np.random.Generator, seq: Sequence[_T]) -> _T:
    return seq[int(rng.integers(len(seq)))]


def _chance(rng: np.random.Generator, p: float) -> bool:
    return bool(rng.random() < p)


_AN_EXCEPTIONS = ("hour", "honest", "honor", "heir")  # vowel sound after a silent h
_A_EXCEPTIONS = ("uni", "use", "usu", "uke", "euro", "one", "once")  # vowel letter, "y"/"w" sound


def article(word: str) -> str:
    """'a' or 'an' for the word that follows it."""
    w = word.lower()
    if w.startswith(_A_EXCEPTIONS):
        return "a"
    return "an" if w[:1] in "aeiou" or w.startswith(_AN_EXCEPTIONS) else "a"


def _with_article(phrase: str) -> str:
    return f"{article(phrase)} {phrase}"


def third_person(base: str) -> str:
    """Present tense, third person singular, of a verb or of a phrase that starts with one."""
    verb, _, rest = base.partition(" ")
    if verb == "have":
        verb = "has"
    elif verb.endswith(("s", "sh", "ch", "x", "z", "o")):
        verb += "es"
    elif verb.endswith("y") and verb[-2:-1] not in ("a", "e", "i", "o", "u"):
        verb = verb[:-1] + "ies"
    else:
        verb += "s"
    return f"{verb} {rest}".strip()


class Subject(NamedTuple):
    text: str
    person: str  # "1sg" (I), "3sg" (he, she, a name, a singular noun), "pl" (you, we, they, plurals)


def _present(subj: Subject, base: str) -> str:
    return third_person(base) if subj.person == "3sg" else base


def _be(subj: Subject) -> str:
    return {"1sg": "am", "3sg": "is"}.get(subj.person, "are")


def _was(subj: Subject) -> str:
    return "were" if subj.person == "pl" else "was"


def _do(subj: Subject) -> str:
    return "does" if subj.person == "3sg" else "do"


def _have(subj: Subject) -> str:
    return "has" if subj.person == "3sg" else "have"


# ----------------------------------------------------------------------------------------------
# Phrases
# ----------------------------------------------------------------------------------------------


def _person(rng: np.random.Generator) -> Subject:
    """A named or described person (no pronoun)."""
    r = rng.random()
    if r < 0.4:
        return Subject(_pick(rng, NAMES), "3sg")
    if r < 0.75:
        return Subject(f"{_pick(rng, POSSESSIVES)} {_pick(rng, FAMILY)}", "3sg")
    if r < 0.9:
        return Subject(f"{_pick(rng, ('the', 'the', 'our'))} {_pick(rng, WORKERS)}", "3sg")
    return Subject(_pick(rng, GROUPS), "pl")


def _subject(rng: np.random.Generator, exclude: tuple[str, ...] = ()) -> Subject:
    """A pronoun (other than those excluded) or a person."""
    if _chance(rng, 0.35):
        text, person = _pick(rng, [p for p in SUBJECT_PRONOUNS if p[0] not in exclude])
        return Subject(text, person)
    return _person(rng)


def _thing(rng: np.random.Generator, definite: bool = False, adjective: float = 0.4) -> tuple[str, bool]:
    """(noun phrase, plural) for a portable object."""
    sing, plural = _pick(rng, THINGS)
    definite = definite or _chance(rng, 0.45)
    # "my pair of boots" but "two pairs of boots", never "my pairs of boots"
    is_plural = _chance(rng, 0.35) and not (definite and sing.startswith("pair of"))
    noun = plural if is_plural else sing
    if _chance(rng, adjective):
        noun = f"{_pick(rng, THING_ADJECTIVES)} {noun}"
    if definite:
        det = _pick(
            rng, ("the", "the", "my", "your", "our", "her", "his", "their", "these" if is_plural else "this")
        )
        return f"{det} {noun}", is_plural
    if is_plural:
        return f"{_pick(rng, ('some', 'two', 'three', 'a few', 'several'))} {noun}", True
    return _with_article(noun), False


def _food(rng: np.random.Generator) -> tuple[str, bool]:
    """(noun phrase, plural) for food or drink."""
    sing, plural = _pick(rng, FOODS)
    adj = f"{_pick(rng, FOOD_ADJECTIVES)} " if _chance(rng, 0.35) else ""
    r = rng.random()
    if plural is None:  # mass noun
        if r < 0.4:
            return f"the {adj}{sing}", False
        if r < 0.7:
            return f"some {adj}{sing}", False
        return f"{_pick(rng, POSSESSIVES)} {adj}{sing}", False
    if r < 0.3:
        return _with_article(adj + sing), False
    if r < 0.55:
        return f"the {adj}{plural}", True
    if r < 0.8:
        return f"{_pick(rng, SMALL_NUMBERS)} {adj}{plural}", True
    return f"some {adj}{plural}", True


def _food_offer(rng: np.random.Generator) -> str:
    """An item on offer, as in "Would you like ...": "tea", "an apple", "some cookies"."""
    sing, plural = _pick(rng, FOODS)
    if plural is None:
        return sing
    return _with_article(sing) if _chance(rng, 0.5) else f"some {plural}"


def _writing(rng: np.random.Generator) -> str:
    noun = _pick(rng, WRITINGS)
    return f"{_pick(rng, ('the', 'the', 'my', 'your', 'her', 'his', 'our', 'that'))} {noun}"


def _place(rng: np.random.Generator, *kinds: str) -> tuple[str, str]:
    """(noun, preposition) for a place in town, optionally of the given kinds ("store", "view" ...)."""
    choices = [p for p in PLACES if not kinds or p[2] in kinds]
    noun, prep, _ = _pick(rng, choices)
    return noun, prep


def _at_place(rng: np.random.Generator, *kinds: str) -> str:
    noun, prep = _place(rng, *kinds)
    return f"{prep} the {noun}"


def _day_time(rng: np.random.Generator, tense: str) -> str:
    """A time adverbial for "past", "future", "habit" or "now" sentences."""
    day = _pick(rng, DAYS)
    part = _pick(rng, PARTS_OF_DAY)
    if tense == "past":
        return _pick(rng, PAST_TIMES + (f"last {day}", f"on {day} {part}", f"yesterday {part}"))
    if tense == "future":
        return _pick(rng, FUTURE_TIMES + (f"next {day}", f"on {day}", f"tomorrow {part}"))
    if tense == "habit":
        return _pick(rng, HABIT_TIMES + (f"every {day}", f"on {day} {part}s"))
    return _pick(rng, NOW_TIMES)


def _clock(rng: np.random.Generator) -> str:
    hour = _pick(rng, HOURS)
    return _pick(
        rng, (f"{hour} o'clock", f"half past {hour}", f"a quarter to {hour}", "noon", f"{hour} thirty")
    )


def _object(rng: np.random.Generator, accidents: bool = False) -> tuple[Verb, str]:
    """A transitive verb and a fitting object; accidents: allow "lose", "forget" and the like."""
    r = rng.random()
    if r < 0.3:
        verbs = THING_VERBS if accidents else [v for v in THING_VERBS if v.base not in ACCIDENTS]
        return _pick(rng, verbs), _thing(rng)[0]
    if r < 0.5:
        return _pick(rng, FOOD_VERBS), _food(rng)[0]
    if r < 0.65:
        return _pick(rng, WRITING_VERBS), _writing(rng)
    if r < 0.8:
        return _pick(rng, PERSON_VERBS), _person(rng).text
    if r < 0.9:
        return _pick(rng, PLACE_VERBS), f"the {_place(rng)[0]}"
    return _pick(rng, CITY_VERBS), _pick(rng, CITIES)


def _predicate(rng: np.random.Generator, accidents: bool = False) -> tuple[str, str]:
    """(base, past) of a verb phrase: a transitive verb with its object, or an activity."""
    if _chance(rng, 0.5):
        verb, obj = _object(rng, accidents)
        return f"{verb.base} {obj}", f"{verb.past} {obj}"
    act = _pick(rng, ACTIVITIES)
    return act.base, act.past


def _maybe(rng: np.random.Generator, p: float, text: str) -> str:
    """The text after a space, with probability p; otherwise nothing."""
    return f" {text}" if _chance(rng, p) else ""


# ----------------------------------------------------------------------------------------------
# Statements
# ----------------------------------------------------------------------------------------------


def st_past(rng: np.random.Generator) -> str:
    subj = _subject(rng)
    _, past = _predicate(rng, accidents=True)
    return f"{subj.text} {past}{_maybe(rng, ADVERBIAL_RATE, _day_time(rng, 'past'))}."


def st_habit(rng: np.random.Generator) -> str:
    subj = _subject(rng)
    act = _pick(rng, HABITS)
    if _chance(rng, 0.5):  # "usually ... on weekends" but not "always ... every day"
        when = _pick(rng, [t for t in HABIT_TIMES if t.startswith(("on ", "in ", "after "))])
        verb = _present(subj, act.base)
        return f"{subj.text} {_pick(rng, FREQUENCY)} {verb}{_maybe(rng, ADVERBIAL_RATE, when)}."
    return f"{subj.text} {_present(subj, act.base)} {_day_time(rng, 'habit')}."


def st_future(rng: np.random.Generator) -> str:
    subj = _subject(rng)
    base, _ = _predicate(rng)
    aux = "will" if _chance(rng, 0.6) else f"{_be(subj)} going to"
    return f"{subj.text} {aux} {base} {_day_time(rng, 'future')}."


def st_progressive(rng: np.random.Generator) -> str:
    subj = _subject(rng)
    act = _pick(rng, ACTIVITIES)
    return f"{subj.text} {_be(subj)} {act.ing}{_maybe(rng, ADVERBIAL_RATE, _day_time(rng, 'now'))}."


def st_when(rng: np.random.Generator) -> str:
    conj = _pick(rng, ("when", "after", "as soon as", "before", "just after"))
    subj = _subject(rng)
    return f"{conj} {_pick(rng, EVENTS)}, {subj.text} {_pick(rng, ACTIVITIES).past}."


def st_while(rng: np.random.Generator) -> str:
    subj = _subject(rng)
    act = _pick(rng, [a for a in ACTIVITIES if not a.base.startswith(("go ", "catch "))])
    return f"while {subj.text} {_was(subj)} {act.ing}, {_pick(rng, EVENTS)}."


def st_until(rng: np.random.Generator) -> str:
    subj = _subject(rng)
    conj = _pick(rng, ("until", "before", "after"))
    return f"{subj.text} {_pick(rng, ACTIVITIES).past} {conj} {_pick(rng, EVENTS)}."


def st_so(rng: np.random.Generator) -> str:
    subj = _subject(rng)
    return f"{_pick(rng, EVENTS)}, so {subj.text} {_pick(rng, ACTIVITIES).past}."


def st_although(rng: np.random.Generator) -> str:
    subj = _subject(rng)
    act = _pick(rng, [a for a in ACTIVITIES if a.outdoor and "sunshine" not in a.base])
    return f"although {_pick(rng, ADVERSITIES)}, {subj.text} {act.past}."


def st_if(rng: np.random.Generator) -> str:
    cond, nice = _pick(rng, CONDITIONS)
    subj = _subject(rng)
    act = _pick(rng, [a for a in ACTIVITIES if a.outdoor == nice])
    return f"if {cond}, {subj.text} will {act.base}."


def st_list(rng: np.random.Generator) -> str:
    subj = _subject(rng)
    r = rng.random()
    if r < 0.45:
        verb = _pick(rng, ("bought", "packed", "brought", "ordered", "shared"))
        tails = ("for the picnic", "for lunch") + (("at the market",) if verb == "bought" else ())
        items, tail = _distinct(rng, _food, 3), _maybe(rng, 0.4, _pick(rng, tails))
    elif r < 0.75:
        verb = _pick(rng, ("packed", "found", "bought", "borrowed", "lost"))
        items, tail = _distinct(rng, _thing, 3), _maybe(rng, 0.3, _day_time(rng, "past"))
    else:
        verb = _pick(rng, ("visited", "saw", "loved"))
        items, tail = (
            _distinct(rng, lambda g: (_pick(g, CITIES), False), 3),
            _maybe(rng, 0.5, _pick(rng, ("last summer", "last year", "on the same trip", "in one week"))),
        )
    return f"{subj.text} {verb} {items[0]}, {items[1]}, and {items[2]}{tail}."


def _distinct(
    rng: np.random.Generator, make: Callable[[np.random.Generator], tuple[str, bool]], n: int
) -> list[str]:
    """n noun phrases with different head nouns."""
    out: list[str] = []
    while len(out) < n:
        phrase = make(rng)[0]
        if all(phrase.split()[-1] != p.split()[-1] for p in out):
            out.append(phrase)
    return out


def st_fronted(rng: np.random.Generator) -> str:
    subj = _subject(rng)
    if _chance(rng, 0.5):
        _, past = _predicate(rng)
        return f"{_day_time(rng, 'past')}, {subj.text} {past}."
    noun, prep = _place(rng)
    if _chance(rng, 0.5):
        return f"{prep} the {noun}, {subj.text} {_pick(rng, ('met', 'saw', 'ran into'))} {_person(rng).text}."
    return f"{prep} the {noun}, {subj.text} {_pick(rng, ('saw', 'found'))} {_thing(rng, adjective=0.7)[0]}."


def st_location(rng: np.random.Generator) -> str:
    thing, plural = _thing(rng, definite=True)
    be = "are" if plural else "is"
    return f"{thing} {be}{_maybe(rng, 0.3, 'still')} {_pick(rng, LOCATIONS)}."


def st_existential(rng: np.random.Generator) -> str:
    sing, plural = _pick(rng, THINGS)
    adj = _pick(rng, THING_ADJECTIVES)
    if _chance(rng, 0.5):
        return f"there is {_with_article(f'{adj} {sing}')} {_pick(rng, LOCATIONS)}."
    return f"there are {_pick(rng, SMALL_NUMBERS)} {adj} {plural} {_pick(rng, LOCATIONS)}."


def st_taste(rng: np.random.Generator) -> str:
    sing, plural = _pick(rng, FOODS)
    is_plural = plural is not None and _chance(rng, 0.6)
    noun = plural if is_plural else sing
    det = _pick(rng, ("these", "the", "your")) if is_plural else _pick(rng, ("this", "the", "your"))
    verb = _pick(rng, ("smell", "taste", "look"))
    verb = verb if is_plural else third_person(verb)
    when = _pick(rng, ("today", "this morning", "tonight", "again"))
    return f"{det} {noun} {verb} {_pick(rng, TASTE_WORDS)}{_maybe(rng, 0.5, when)}."


def st_reported(rng: np.random.Generator) -> str:
    verb = _pick(rng, ("said", "thinks", "thought", "told me", "heard", "knows"))
    subj = _subject(rng, exclude=("I",) if verb == "told me" else ())
    if verb in ("thinks", "knows") and subj.person != "3sg":
        verb = verb[:-1]
    that = " that" if _chance(rng, 0.5) else ""
    shop, _ = _place(rng, *OPEN_HOURS)
    return f"{subj.text} {verb}{that} the {shop} {_pick(rng, ('opens', 'closes'))} at {_clock(rng)}."


def st_because(rng: np.random.Generator) -> str:
    subj = _subject(rng)
    feeling = _pick(rng, ("happy", "relieved", "surprised", "excited", "thrilled", "delighted", "glad"))
    return f"{subj.text} {_was(subj)}{_maybe(rng, 0.3, 'very')} {feeling} because {_pick(rng, EVENTS)}."


def st_cost(rng: np.random.Generator) -> str:
    thing, _ = _thing(rng, definite=True, adjective=0.6)
    price = _pick(rng, PRICES)
    where = _pick(rng, ("at the market", "at the flea market", "at the shopping mall", "in Paris", "online"))
    return f"{thing} cost {price} dollars{_maybe(rng, 0.5, where)}."


def st_age(rng: np.random.Generator) -> str:
    if _chance(rng, 0.4):
        person, age = _pick(rng, NAMES), _pick(rng, AGES)
    else:
        relatives, ages = _pick(rng, AGES_BY_RELATIVE)
        person, age = f"{_pick(rng, POSSESSIVES)} {_pick(rng, relatives)}", _pick(rng, ages)
    month = _pick(rng, MONTHS)
    if _chance(rng, 0.5):
        return (
            f"{person} turned {age} {_pick(rng, ('last week', 'last month', f'in {month}', 'on Saturday'))}."
        )
    when = _pick(rng, ("next week", "next month", f"in {month}", "on Sunday"))
    return f"{person} will be {age} years old {when}."


def st_imperative(rng: np.random.Generator) -> str:
    r = rng.random()
    if r < 0.4:
        verb = _pick(rng, REQUEST_VERBS)
        tails = ("before you leave", "after lunch", "tomorrow morning", "before the guests arrive")
        if verb in FETCH_VERBS:
            tails += ("to the station", "to the party", "to your grandmother")
        return f"please {verb} {_thing(rng, definite=True)[0]} {_pick(rng, tails)}."
    if r < 0.7:
        chore = _pick(rng, [a for a in HABITS if a.base in CHORES])
        return f"don't forget to {chore.base} {_day_time(rng, 'future')}."
    return f"don't forget {_thing(rng, definite=True)[0]}, {_pick(rng, NAMES)}."


def st_looked(rng: np.random.Generator) -> str:
    subj = _subject(rng)
    thing, plural = _thing(rng, definite=True)
    pronoun = "them" if plural else "it"
    return f"{subj.text} looked everywhere for {thing}, but nobody could find {pronoun}."


def st_travel(rng: np.random.Generator) -> str:
    subj = _subject(rng)
    if _chance(rng, 0.5):
        verb = _pick(rng, ("flew", "drove", "took the train", "sailed", "moved"))
        when = _maybe(rng, ADVERBIAL_RATE, _day_time(rng, "past"))
        return f"{subj.text} {verb} to {_pick(rng, CITIES)}{when}."
    verb = _pick(rng, ("walked", "ran", "drove", "hurried", "cycled", "went back"))
    return f"{subj.text} {verb} to the {_place(rng)[0]} {_day_time(rng, 'past')}."


STATEMENTS: tuple[tuple[Callable[[np.random.Generator], str], float], ...] = (
    (st_past, 3.0), (st_habit, 2.0), (st_future, 2.0), (st_progressive, 1.5), (st_when, 1.5),
    (st_while, 1.0), (st_until, 1.0), (st_so, 1.0), (st_although, 1.0), (st_if, 1.0),
    (st_list, 2.0), (st_fronted, 1.5), (st_location, 1.0), (st_existential, 1.0), (st_taste, 0.7),
    (st_reported, 0.7), (st_because, 1.0), (st_cost, 0.7), (st_age, 0.7), (st_imperative, 1.0),
    (st_looked, 0.7), (st_travel, 1.2),
)  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Yes/no questions
# ----------------------------------------------------------------------------------------------


def q_did(rng: np.random.Generator) -> str:
    subj = _subject(rng)
    base, _ = _predicate(rng, accidents=True)
    return f"did {subj.text} {base}{_maybe(rng, ADVERBIAL_RATE, _day_time(rng, 'past'))}?"


def q_modal(rng: np.random.Generator) -> str:
    if _chance(rng, 0.3):
        verb = _pick(rng, REQUEST_VERBS)
        return f"{_pick(rng, ('could', 'can', 'would'))} you {verb} {_thing(rng, definite=True)[0]}, please?"
    modal = _pick(rng, ("can", "could", "will", "should"))
    subj = _subject(rng, exclude=("I",) if modal == "will" else ())
    base, _ = _predicate(rng)
    return f"{modal} {subj.text} {base}{_maybe(rng, ADVERBIAL_RATE, _day_time(rng, 'future'))}?"


def q_progressive(rng: np.random.Generator) -> str:
    subj = _subject(rng, exclude=("I",))
    when = _maybe(rng, ADVERBIAL_RATE, _day_time(rng, "now"))
    return f"{_be(subj)} {subj.text} {_pick(rng, ACTIVITIES).ing}{when}?"


def q_location(rng: np.random.Generator) -> str:
    thing, plural = _thing(rng, definite=True)
    return f"{'are' if plural else 'is'} {thing}{_maybe(rng, 0.3, 'still')} {_pick(rng, LOCATIONS)}?"


def q_open(rng: np.random.Generator) -> str:
    shop, _ = _place(rng, *OPEN_HOURS)
    day = _pick(rng, DAYS)
    if _chance(rng, 0.3):
        return f"is the {shop} still open {_pick(rng, ('now', 'this late', 'at this hour'))}?"
    when = _pick(
        rng, ("today", "tonight", f"on {day}", f"on {day} morning", "on public holidays", "during the summer")
    )
    return f"is the {shop} open {when}?"


def q_perfect(rng: np.random.Generator) -> str:
    subj = _subject(rng, exclude=("I",))
    if _chance(rng, 0.4):
        return f"{_have(subj)} {subj.text} ever been to {_pick(rng, CITIES)}?"
    if _chance(rng, 0.5):
        verb, obj = _pick(rng, WRITING_VERBS[:5]), _writing(rng)  # read, write, finish, send, share
    else:
        verb, obj = _pick(rng, YET_VERBS), _thing(rng, definite=True)[0]
    return f"{_have(subj)} {subj.text} {verb.participle} {obj} yet?"


def q_habit(rng: np.random.Generator) -> str:
    subj = _subject(rng, exclude=("I",))
    return f"{_do(subj)} {subj.text} {_pick(rng, HABITS).base} {_day_time(rng, 'habit')}?"


def q_offer(rng: np.random.Generator) -> str:
    tail = _maybe(rng, 0.5, _pick(rng, OFFER_TAILS))
    if _chance(rng, 0.6):
        a, b, c = _distinct(rng, lambda g: (_food_offer(g), False), 3)
        return f"would you like {a}, {b}, or {c}{tail}?"
    return f"would you like {_food_offer(rng)}{tail}?"


def q_feeling(rng: np.random.Generator) -> str:
    subj = _subject(rng, exclude=("I", "we"))
    feeling = f"{_maybe(rng, 0.3, 'very')} {_pick(rng, FEELINGS)}"
    return f"{_was(subj)} {subj.text}{feeling} {_pick(rng, FEELING_TAILS)}?"


QUESTIONS: tuple[tuple[Callable[[np.random.Generator], str], float], ...] = (
    (q_did, 3.0), (q_modal, 2.5), (q_progressive, 1.5), (q_location, 1.0), (q_open, 0.8),
    (q_perfect, 1.2), (q_habit, 1.2), (q_offer, 1.0), (q_feeling, 1.0),
)  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Wh-questions
# ----------------------------------------------------------------------------------------------


def wh_where(rng: np.random.Generator) -> str:
    if _chance(rng, 0.35):
        thing, plural = _thing(rng, definite=True)
        return f"where {'are' if plural else 'is'} {thing}{_maybe(rng, 0.3, 'now')}?"
    if _chance(rng, 0.3):
        subj = _subject(rng, exclude=("I",))
        act = _pick(rng, [a for a in HABITS if " on the " not in a.base and " in the " not in a.base])
        return f"where {_do(subj)} {subj.text} usually {act.base}?"
    subj = _subject(rng)
    return f"where did {subj.text} {_pick(rng, WHERE_VERBS).base} {_thing(rng, definite=True)[0]}?"


def wh_why(rng: np.random.Generator) -> str:
    if _chance(rng, 0.3):
        subj = _subject(rng, exclude=("I",))
        when = _pick(rng, NOW_TIMES + ("after lunch",))
        return f"why {_be(subj)} {subj.text} so {_pick(rng, FEELINGS)} {when}?"
    subj = _subject(rng)
    base, _ = _predicate(rng, accidents=True)
    return f"why did {subj.text} {base}{_maybe(rng, ADVERBIAL_RATE, _day_time(rng, 'past'))}?"


def wh_how(rng: np.random.Generator) -> str:
    r = rng.random()
    if r < 0.25:
        return f"how do you say {_pick(rng, PHRASES)} in {_pick(rng, LANGUAGES)}?"
    if r < 0.4:
        origin = _pick(rng, ("here", "the station", "your house", "the hotel"))
        return f"how far is the {_place(rng)[0]} from {origin}?"
    if r < 0.55:
        sing, plural = _pick(rng, THINGS)
        adj = _pick(rng, THING_ADJECTIVES)
        if _chance(rng, 0.5):
            return f"how much {_pick(rng, ('does this', 'does that', 'does the'))} {adj} {sing} cost?"
        return f"how much {_pick(rng, ('do these', 'do those', 'do the'))} {adj} {plural} cost?"
    if r < 0.75:
        subj = _subject(rng)
        if _chance(rng, 0.5):
            _, plural = _pick(rng, [f for f in FOODS if f[1] is not None])
            verb = _pick(rng, ("buy", "eat", "bring", "order"))
        else:
            _, plural = _pick(rng, THINGS)
            verb = _pick(rng, ("buy", "bring", "pack", "find", "borrow", "sell"))
        return (
            f"how many {plural} did {subj.text} {verb}{_maybe(rng, ADVERBIAL_RATE, _day_time(rng, 'past'))}?"
        )
    if r < 0.85:
        return f"how long does it take to {_pick(rng, ('walk', 'drive', 'cycle'))} to the {_place(rng)[0]}?"
    subj = _subject(rng)
    verb = _pick(rng, ("find", "carry", "lose", "move", "hide"))
    return f"how did {subj.text} {verb} {_thing(rng, definite=True)[0]}?"


def wh_when(rng: np.random.Generator) -> str:
    r = rng.random()
    if r < 0.3:
        shop, _ = _place(rng, *OPEN_HOURS)
        return (
            f"{_pick(rng, ('when', 'what time'))} does the {shop} {_pick(rng, ('open', 'close'))}"
            f"{_maybe(rng, 0.5, 'on ' + _pick(rng, DAYS))}?"
        )
    if r < 0.55:
        subj = _subject(rng)
        verb = _pick(rng, ("move to", "last visit", "first see", "fly to"))
        return f"when did {subj.text} {verb} {_pick(rng, CITIES)}?"
    subj = _subject(rng, exclude=("I",))
    return f"when will {subj.text} {_pick(rng, ACTIVITIES).base}{_maybe(rng, 0.3, 'again')}?"


def wh_what(rng: np.random.Generator) -> str:
    r = rng.random()
    if r < 0.4:
        subj = _subject(rng)
        if _chance(rng, 0.5):
            return f"what did {subj.text} {_pick(rng, ('buy', 'order', 'find'))} {_at_place(rng, 'store')}?"
        return (
            f"what did {subj.text} see {_at_place(rng)}{_maybe(rng, ADVERBIAL_RATE, _day_time(rng, 'past'))}?"
        )
    if r < 0.7:
        subj = _subject(rng, exclude=("I",))
        where = _pick(rng, LOCATIONS + ("in the garden", "at the harbor"))
        return f"what {_be(subj)} {subj.text} doing {where}?"
    subj = _subject(rng, exclude=("I",))
    return f"what {_was(subj)} {subj.text} so {_pick(rng, ABOUT_FEELINGS)} about {_pick(rng, PAST_TIMES)}?"


def wh_who(rng: np.random.Generator) -> str:
    if _chance(rng, 0.6):
        verb = _pick(rng, THING_VERBS)
        when = _maybe(rng, ADVERBIAL_RATE, _day_time(rng, "past"))
        return f"who {verb.past} {_thing(rng, definite=True)[0]}{when}?"
    verb = _pick(rng, WRITING_VERBS[:5])
    about = _maybe(rng, 0.4, _pick(rng, ("for the newspaper", "about the storm")))
    return f"who {verb.past} {_writing(rng)}{about}?"


def wh_which(rng: np.random.Generator) -> str:
    subj = _subject(rng, exclude=("I",))
    return f"which {_pick(rng, FAVORITE_KINDS)} {_do(subj)} {subj.text} like best?"


WH_QUESTIONS: tuple[tuple[Callable[[np.random.Generator], str], float], ...] = (
    (wh_where, 2.0), (wh_why, 1.5), (wh_how, 2.0), (wh_when, 1.5), (wh_what, 1.5), (wh_who, 1.0),
    (wh_which, 0.7),
)  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Exclamations
# ----------------------------------------------------------------------------------------------


def ex_what_a(rng: np.random.Generator) -> str:
    noun, tails = _pick(rng, EXCLAIM_NOUNS)
    return f"what {_with_article(f'{_pick(rng, EXCLAIM_ADJECTIVES)} {noun}')} {_pick(rng, tails)}!"


def ex_how(rng: np.random.Generator) -> str:
    noun, _ = _place(rng, "view")
    return (
        f"how {_pick(rng, VIEW_ADJECTIVES)} the {noun} looks {_pick(rng, NOW_TIMES[2:] + ('in the snow',))}!"
    )


def ex_look(rng: np.random.Generator) -> str:
    sing, _ = _pick(rng, THINGS)
    det = _pick(rng, ("the", "that"))
    return f"look at {det} {_pick(rng, THING_ADJECTIVES)} {sing} {_pick(rng, LOCATIONS)}!"


def ex_believe(rng: np.random.Generator) -> str:
    if _chance(rng, 0.5):
        return f"I can't believe {_pick(rng, EVENTS)}{_maybe(rng, 0.4, 'already')}!"
    subj = _subject(rng, exclude=("I",))
    verb = _pick(rng, ("lost", "forgot", "broke", "dropped"))
    return f"I can't believe {subj.text} {verb} {_thing(rng, definite=True)[0]}{_maybe(rng, 0.6, 'again')}!"


def ex_watch_out(rng: np.random.Generator) -> str:
    if _chance(rng, 0.5):
        return f"watch out for {_pick(rng, HAZARDS)}!"
    adjective = _pick(rng, ("heavy", "fragile", "old", "expensive"))
    return f"be careful with that {adjective} {_pick(rng, BREAKABLES)}!"


def ex_thanks(rng: np.random.Generator) -> str:
    return f"thank you so much for {_pick(rng, GIFTS)}!"


def ex_oh_no(rng: np.random.Generator) -> str:
    subj = _subject(rng)
    return f"oh no, {subj.text} forgot {_thing(rng, definite=True)[0]}{_maybe(rng, 0.6, 'again')}!"


def ex_best(rng: np.random.Generator) -> str:
    sing, plural = _pick(rng, FOODS)
    where = _pick(rng, CITIES) if _chance(rng, 0.6) else "the world"
    if plural is not None and _chance(rng, 0.5):
        return f"these are the best {plural} in {where}!"
    return f"this is the best {sing} in {where}!"


def ex_finally(rng: np.random.Generator) -> str:
    subj = _subject(rng)
    lead = _pick(rng, ("", "hooray, ", "wow, "))
    return f"{lead}{subj.text} finally {_pick(rng, ACTIVITIES).past}!"


EXCLAMATIONS: tuple[tuple[Callable[[np.random.Generator], str], float], ...] = (
    (ex_what_a, 2.0), (ex_how, 1.0), (ex_look, 1.0), (ex_believe, 1.0), (ex_watch_out, 1.0),
    (ex_thanks, 0.8), (ex_oh_no, 1.0), (ex_best, 0.8), (ex_finally, 1.0),
)  # fmt: skip

TEMPLATES = dict(zip(KINDS, (STATEMENTS, QUESTIONS, WH_QUESTIONS, EXCLAMATIONS)))


# ----------------------------------------------------------------------------------------------
# Sentences
# ----------------------------------------------------------------------------------------------


def _weighted(rng: np.random.Generator, weights: Sequence[float]) -> int:
    cum = np.cumsum(weights)
    return int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))


def _add_vocative(rng: np.random.Generator, body: str) -> str:
    """Address someone by name, at the start ("Maria, ...") or at the end ("..., Maria?")."""
    if "," in body or set(body[:-1].split()) & set(NAMES):  # enough commas already, or a name
        return body
    name = _pick(rng, NAMES)
    if _chance(rng, 0.6) and not body.startswith(("he ", "she ", "they ")):
        return f"{name}, {body}"
    return f"{body[:-1]}, {name}{body[-1]}"


def _repeats_someone(words: list[str]) -> bool:
    """Whether a name or a described person ("my brother", "the baker") occurs twice."""
    people = set(FAMILY) | set(WORKERS)
    mentions = [w for w in words if w in NAMES]
    mentions += [f"{a.lower()} {b}" for a, b in itertools.pairwise(words) if b in people]
    return len(mentions) != len(set(mentions))


def make_sentence(rng: np.random.Generator, min_words: int = 5, max_words: int = 14) -> Sentence:
    """A random English sentence of min_words to max_words words; deterministic given rng's state.

    Word count is only a proxy for duration: espeak-ng at 165 words per minute reads these at about
    3.2 words per second, so a caller that needs clips of at least 2 s should raise min_words (8
    leaves about 5% shorter) or check the synthesised length."""
    if not 1 <= min_words <= max_words:
        raise ValueError(f"need 1 <= min_words <= max_words, got {min_words} and {max_words}")
    kind = KINDS[_weighted(rng, KIND_WEIGHTS)]
    templates = TEMPLATES[kind]
    for _ in range(MAX_DRAWS):
        template = templates[_weighted(rng, [w for _, w in templates])][0]
        body = template(rng)
        if _chance(rng, VOCATIVE_RATE):
            body = _add_vocative(rng, body)
        text = body[0].upper() + body[1:]
        words = text.replace(",", " ").split()
        if min_words <= len(words) <= max_words and not _repeats_someone(words):
            return Sentence(text, kind)
    raise ValueError(f"no {kind} of {min_words} to {max_words} words in {MAX_DRAWS} draws")


def vocabulary() -> frozenset[str]:
    """Every distinct word (lower case) in the lexicon, including those written into templates' tables."""
    words: set[str] = set()

    def walk(item: object) -> None:
        if isinstance(item, str):
            words.update(w.strip(",.!?").lower() for w in item.split())
        elif isinstance(item, tuple):
            for x in item:
                walk(x)

    for table in (NAMES, tuple(p[0] for p in SUBJECT_PRONOUNS), POSSESSIVES, FAMILY, WORKERS, GROUPS,
                  THINGS, THING_ADJECTIVES, FOODS, FOOD_ADJECTIVES, TASTE_WORDS, WRITINGS,
                  tuple(p[:2] for p in PLACES), CITIES, LANGUAGES, PHRASES, LOCATIONS, FEELINGS,
                  FEELING_TAILS, DAYS, PARTS_OF_DAY, MONTHS, HOURS, SMALL_NUMBERS, PRICES, AGES,
                  AGES_BY_RELATIVE, PAST_TIMES, FUTURE_TIMES, HABIT_TIMES, NOW_TIMES, FREQUENCY,
                  THING_VERBS, FOOD_VERBS, WRITING_VERBS, PERSON_VERBS, PLACE_VERBS, CITY_VERBS,
                  REQUEST_VERBS, ACTIVITIES, EVENTS, ADVERSITIES, CONDITIONS, EXCLAIM_NOUNS,
                  EXCLAIM_ADJECTIVES, VIEW_ADJECTIVES, HAZARDS, BREAKABLES, GIFTS, OFFER_TAILS,
                  FAVORITE_KINDS):  # fmt: skip
        walk(table)
    return frozenset(words)
