"""Whether a piece the sentence segmenter cut off continues the sentence before it.

pysbd ends a sentence at some full stops a reader never would: "10 a.m." / "ET Tuesday",
"Patrick Leahy, D-Vt." / ", and the committee's", "Martin Luther King Jr." / "Day". Each rule
reads only the tail of the piece before the seam and the head of the one after it, so the
merge stays linear in the paragraph's length. Rules after an abbreviation ask the next piece
to look like a continuation (a time zone, a weekday, a digit, a name part), because "at
10 a.m. The talks began" and "Warner Bros. But critics" do end sentences.
"""

from __future__ import annotations

import re

_WEEKDAYS = {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
             "Mon.", "Tue.", "Tues.", "Wed.", "Thu.", "Thur.", "Thurs.", "Fri.", "Sat.", "Sun."}
_MONTHS = {"January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December",
           "Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec",
           "Jan.", "Feb.", "Mar.", "Apr.", "Jun.", "Jul.", "Aug.", "Sep.", "Sept.", "Oct.",
           "Nov.", "Dec."}
_ZONES = {"ET", "EST", "EDT", "CT", "CST", "CDT", "MT", "MST", "MDT", "PT", "PST", "PDT",
          "AKST", "AKDT", "HST", "GMT", "BST", "UTC", "CET", "CEST", "EET", "EEST", "WET", "IST",
          "JST", "KST", "AEST", "AEDT", "ACST", "AWST", "NZST", "NZDT", "SGT", "HKT",
          "Eastern", "Central", "Mountain", "Pacific", "Atlantic"}
# Capitalised words that carry on a name ending in Jr./Inc./Bros.: "Martin Luther King Jr.
# Day", "Warner Bros. Discovery". A pronoun or "But" after them starts a new sentence.
_NAME_PARTS = {"Day", "Boulevard", "Blvd", "Avenue", "Ave", "Street", "Drive", "Parkway",
               "Highway", "Expressway", "Bridge", "Memorial", "Center", "Centre", "Park", "Plaza",
               "Elementary", "Middle", "High", "School", "Academy", "Library", "Holiday",
               "Award", "Awards", "Prize", "Foundation", "Institute", "Hall", "Stadium", "Arena",
               "Airport", "Hospital", "University", "College", "Discovery", "Pictures",
               "Entertainment", "Records", "Studios", "Television", "Group", "Holdings"}

_TIME = re.compile(r"(?:^|\d)[ap]\.m\.$", re.IGNORECASE)
_MONTH_ABBR = re.compile(r"(?:^|[-\u2013(/\d])(?:Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec)\.$")
_NUMBER_ABBR = re.compile(r"^\(?(?:No|Nos|Vol|Art|pp?)\.$")
# Titles written before a name; "then-Gov." too. St. and Dr. are also street suffixes
# ("Elm St."), so they count only when the word before them is not capitalised.
_TITLE = re.compile(r"(?:^|[-(])(?:Mr|Mrs|Ms|Mx|Gov|Govs|Sen|Sens|Rep|Reps|Gen|Lt|Col|Sgt|"
                    r"Capt|Cmdr|Adm|Maj|Prof|Rev|Hon|Pres|Supt|Atty|Insp|Amb|Fr)\.$")
_SAINT_OR_DOCTOR = re.compile(r"^\(?(?:St|Dr)\.$")
_SUFFIX = re.compile(r"^(?:Jr|Sr|Co|Cos|Corp|Inc|Ltd|Bros|Plc|LLC|Assn)\.$")
_BRAND_BANG = re.compile(r"(?:^|[\s(])[A-Z]!$")  # "E! News", "P!nk"
_LABEL = re.compile(r"\(?(?:[A-Za-z]|\d{1,2})[.)]")  # a list label alone: "a.", "3)"
_TERMINAL = re.compile(r"[.!?\u2026](?:\s*[\"'\u201d\u2019)\]\u00bb])*$")
# 'Harvard" Currently ...': a quote closed without a stop is more likely a lost full stop
# than a sentence running on, unlike '"... typical," Katz said'.
_WORD_QUOTE = re.compile(r"\w[\"'\u201d\u2019\u00bb]+$")
_WORD = re.compile(r"[A-Za-z]+\.?")
_CAMEL = re.compile(r"[a-z]+[A-Z]")  # iPhone, eBay: a lowercase start that is a name
_CLOSERS = ",;:%)]}"
_QUOTES = "\"'\u201d\u2019\u00bb"
_DASHES = "-\u2013\u2014\u2212"


def _head_word(head: str) -> str:
    """The first word of ``head`` when it stands alone ("Tuesday", not "Tuesday's"), without
    a full stop unless the word is an abbreviation ("ET." ends a sentence, "Nov." does not)."""
    m = _WORD.match(head)
    if not m or head[m.end():m.end() + 1] in ("'", "\u2019"):
        return ""
    word = m.group()
    return word if word in _WEEKDAYS or word in _MONTHS else word.rstrip(".")


def _opens_lowercase(rest: str) -> bool:
    return bool(rest) and rest[0].islower() and not _CAMEL.match(rest)


def _starts_as_fragment(head: str) -> bool:
    """A piece no sentence starts with: lowercase, or closing punctuation."""
    first = head[0]
    if not any(c.isalnum() for c in head):  # a stray closing quote: '"' or "''"
        return True
    if first.isalpha():
        return _opens_lowercase(head)
    if first in _CLOSERS:
        return True
    if first in ".!?\u2026":  # "..." alone, or ".or do we": an elision, not a new sentence
        rest = head.lstrip(".!?\u2026 ")
        return not rest or _opens_lowercase(rest) or rest[0] in _CLOSERS
    if first in _QUOTES:  # a closing quote or "'s"; "\u201dAnd" is a mistyped opening one
        rest = head[1:]
        if first in "'\u2019" and rest[:1] == "s" and not rest[1:2].isalpha():
            return True
        after = rest.lstrip()
        return (not after or (after != rest and (_opens_lowercase(after) or after[0] in _DASHES))
                or rest[0] in _CLOSERS + _DASHES)
    if first in _DASHES:  # "\u2014 who was there", not "\u2014 SpaceX's launch"
        rest = head.lstrip(_DASHES + " ")
        return not rest or _opens_lowercase(rest)
    return False


def continues(prev: str, head: str) -> bool:
    """Whether ``head`` (the start of a piece) carries on the sentence whose end is ``prev``."""
    head, prev = head.lstrip(), prev.rstrip()
    if not head or not prev:
        return False
    if _starts_as_fragment(head) or _LABEL.fullmatch(prev):
        return True
    if not _TERMINAL.search(prev):  # pysbd cut where no sentence ends: "16 to" / "18."
        return not _WORD_QUOTE.search(prev)
    tokens = prev.split()
    last = tokens[-1]
    word = _head_word(head)
    if _TIME.search(last):
        return word in _ZONES or word in _WEEKDAYS or word in _MONTHS
    if _MONTH_ABBR.search(last) or _NUMBER_ABBR.match(last):
        return head[0].isdigit()
    if _TITLE.search(last) or (_SAINT_OR_DOCTOR.match(last) and
                               (len(tokens) == 1 or not tokens[-2][:1].isupper())):
        return head[0].isupper()
    if _SUFFIX.match(last):
        return word in _NAME_PARTS or word in _WEEKDAYS or word in _MONTHS
    if _BRAND_BANG.search(prev):
        return head[0].isupper()
    return False
