"""clean_description against the rule it implements, applied the slow way.

The function takes shortcuts: str methods instead of Unicode regular
expressions, and a cut decided on a head of the text. These tests hold it
to the plain reading of DESIGN.md's rule on the whole text.
"""

import sys

import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from weekly_reports.stats import ELLIPSIS, clean_description

GRAPHEME = regex.compile(r"\X")
INVISIBLE_CONTROL = regex.compile(r"[\p{Cc}--\p{White_Space}]", flags=regex.V1)
WHITE_SPACE = regex.compile(r"\p{White_Space}")
WHITE_SPACE_RUN = regex.compile(r"\p{White_Space}+")

FAMILY = "\U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"
FLAG = "\U0001f1f3\U0001f1f1"
HANGUL_JAMO = "\u1100\u1161\u11a8"

# Pieces that make grapheme clusters and white space runs meet at any
# position, including where the head of the text ends.
PIECES = st.sampled_from(
    ["a", "é", " ", "  ", "\n", "\r\n", "\t", "\x07", "\x1c", "\x85", "\u00a0"]
    + ["\u200d", "\u0301", "\ufe0f", "\u0915\u094d", FAMILY, FLAG, HANGUL_JAMO]
)
AWKWARD_TEXT = st.lists(PIECES, max_size=400).map("".join)


def cut_the_slow_way(text, limit):
    words = WHITE_SPACE_RUN.sub(" ", INVISIBLE_CONTROL.sub("", text)).strip()
    graphemes = GRAPHEME.findall(words)
    if len(graphemes) <= limit:
        return words, False
    return "".join(graphemes[:limit]) + ELLIPSIS, True


@settings(max_examples=500, deadline=None)
@given(
    text=st.one_of(AWKWARD_TEXT, st.text(max_size=400)),
    limit=st.integers(min_value=1, max_value=120),
)
def test_cut_is_the_one_made_on_the_whole_text(text, limit):
    assert clean_description(text, limit) == cut_the_slow_way(text, limit)


def test_cut_found_only_past_the_head_is_still_made():
    # The first 202 characters hold fewer than 100 words' worth of text.
    text = "a" * 99 + " " * 200 + "bc"

    assert clean_description(text, 100) == ("a" * 99 + " " + ELLIPSIS, True)


def test_grapheme_that_straddles_the_head_is_kept_whole():
    text = "a" * 99 + "e" + "\u0301" * 150 + "z"

    assert clean_description(text, 100) == (
        "a" * 99 + "e" + "\u0301" * 150 + ELLIPSIS,
        True,
    )


def test_str_split_splits_on_white_space_and_nothing_else_that_survives():
    """clean_description relies on str.split() splitting on exactly
    Unicode's White_Space once control characters are gone; a new Python or
    regex release with another Unicode version must not change that."""
    python_space = {code for code in range(sys.maxunicode + 1) if chr(code).isspace()}
    unicode_space = {
        code for code in range(sys.maxunicode + 1) if WHITE_SPACE.match(chr(code))
    }
    dropped = {
        code for code in range(sys.maxunicode + 1) if INVISIBLE_CONTROL.match(chr(code))
    }

    assert python_space - dropped == unicode_space
