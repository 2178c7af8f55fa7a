"""IDQuery is RE2 with Go's syntax (cosi-semantics.md 1.3: unanchored search): the
constructions Go clients send work, the ones RE2 lacks (lookaround, backreferences) are
refused at construction, and deep nesting is an error, not a crash."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kos.resources.core import IDQuery

ACCEPTED = [
    # pattern, ids it finds, ids it does not
    (r"\pL+$", ["abc", "ärger", "x1y"], ["123", "a1"]),
    (r"^\p{Greek}", ["αβ"], ["ab"]),
    (r"a\z", ["ba", "a"], ["ab", "a\n"]),
    (r"(?U)^a+?b", ["aab"], ["b"]),
    (r"\Qa.b*\E", ["xa.b*y"], ["axb", "a.bb"]),
    (r"^[[:alpha:]]+$", ["abcXYZ"], ["ab1", ""]),
    (r"^[[:^digit:]]+$", ["abc"], ["a1"]),
    (r"(?i)^KUBE", ["kubelet"], ["ekube"]),
    (r"(?s)a.b", ["a\nb"], ["ab"]),
    (r"etcd", ["my-etcd-member"], ["et-cd"]),  # unanchored search
    (r"^(?P<name>[a-z]+)-[0-9]+$", ["pod-12"], ["pod-", "Pod-1"]),
    (r"x{2,3}", ["axxb"], ["axb"]),
]


@pytest.mark.parametrize(("pattern", "hits", "misses"), ACCEPTED)
def test_go_syntax_works(pattern: str, hits: list[str], misses: list[str]) -> None:
    q = IDQuery(pattern)
    assert [h for h in hits if not q.matches(h)] == []
    assert [m for m in misses if q.matches(m)] == []


@pytest.mark.parametrize(("pattern", "reason"), [
    (r"(?<=a)b", "invalid perl operator"),
    (r"(?<!a)b", "invalid perl operator"),
    (r"a(?=b)", "invalid perl operator"),
    (r"(a)\1", "invalid escape sequence"),
    (r"a++", "bad repetition operator"),
    (r"(a{1000}){1000}", "invalid repetition size"),
    (r"[z-a]", "invalid character class range"),
    ("(" * 5000, "nests too deeply"),
    ("(" * 10 + "a", "missing )"),
    ("(" * 1001 + "a" + ")" * 1001, "nests too deeply"),
])
def test_what_re2_lacks_is_refused(pattern: str, reason: str) -> None:
    with pytest.raises(ValueError, match="invalid id regexp") as info:
        IDQuery(pattern)
    assert reason in str(info.value)
    assert len(str(info.value)) < 400  # the pattern is echoed in part only


def test_deep_but_allowed_nesting_compiles() -> None:
    assert IDQuery("(" * 1000 + "a" + ")" * 1000).matches("xa")


# a sublanguage where Python's re and RE2 agree on "is there a match": literals, classes,
# alternation, grouping, the greedy and lazy quantifiers, anchors
_atom = st.sampled_from(["a", "b", "c", ".", "[ab]", "[^a]", "\\d", "x"])
_pattern = st.recursive(
    _atom,
    lambda inner: st.one_of(
        st.tuples(inner, inner).map("".join),
        st.tuples(inner, inner).map(lambda p: f"(?:{p[0]}|{p[1]})"),
        st.tuples(inner, st.sampled_from(["*", "+", "?", "*?", "{1,2}"])).map(lambda p: f"(?:{p[0]}){p[1]}"),
    ),
    max_leaves=8,
)


@given(pattern=st.tuples(st.sampled_from(["", "^"]), _pattern, st.sampled_from(["", "$"])).map("".join),
       ids=st.lists(st.text(alphabet="abcx1-", max_size=8), max_size=8))
def test_search_agrees_with_a_backtracking_engine_where_both_define_it(pattern: str, ids: list[str]) -> None:
    q, ref = IDQuery(pattern), re.compile(pattern)
    assert [q.matches(i) for i in ids] == [ref.search(i) is not None for i in ids]


@given(literal=st.text(max_size=20).filter(lambda t: "\\E" not in t), pre=st.text(max_size=5),
       post=st.text(max_size=5))
def test_quoted_text_matches_itself_anywhere(literal: str, pre: str, post: str) -> None:
    assert IDQuery(r"\Q" + literal + r"\E").matches(pre + literal + post)
