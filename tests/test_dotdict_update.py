"""dotdict: update() merges nested mappings."""

import pytest

from msgflux import dotdict


def test_update_merges_nested_mapping():
    d = dotdict({"meta": {"a": 1, "keep": {"x": 1}}})

    d.update({"meta": {"b": 2, "keep": {"y": 2}}})

    assert d.to_dict() == {"meta": {"a": 1, "b": 2, "keep": {"x": 1, "y": 2}}}


def test_update_keeps_child_identity():
    d = dotdict({"meta": {"a": 1}})
    child = d.meta

    d.update(meta={"b": 2})

    assert d.meta is child


def test_update_replaces_lists():
    d = dotdict({"tags": ["a"]})

    d.update({"tags": ["b"]})

    assert d.tags == ["b"]


def test_update_replaces_mapping_with_scalar():
    d = dotdict({"meta": {"a": 1}})

    d.update({"meta": 3})

    assert d.meta == 3


def test_update_accepts_pairs_and_keywords():
    d = dotdict()

    d.update([("a", 1)], b=2)

    assert d == {"a": 1, "b": 2}


def test_update_with_dotted_key_sets_path():
    d = dotdict({"meta": {"a": 1}})

    d.update({"meta.b": 2})

    assert d.meta.to_dict() == {"a": 1, "b": 2}


def test_update_with_dotted_key_merges_mapping():
    d = dotdict({"a": {"b": {"x": 1}}})

    d.update({"a.b": {"y": 2}})

    assert d.a.b.to_dict() == {"x": 1, "y": 2}


def test_update_rejects_non_pairs():
    with pytest.raises(TypeError, match="update\\(\\) expects a mapping or \\(key, value\\) pairs"):
        dotdict().update([1])


def test_inplace_or_merges():
    d = dotdict({"meta": {"a": 1}})

    d |= {"meta": {"b": 2}}

    assert d.meta.to_dict() == {"a": 1, "b": 2}


def test_or_returns_new_dotdict_and_replaces_top_level():
    d = dotdict({"meta": {"a": 1}})

    merged = d | {"meta": {"b": 2}}

    assert type(merged) is dotdict
    assert merged.meta.to_dict() == {"b": 2}
    assert d.meta.to_dict() == {"a": 1}


def test_reflected_or_returns_dotdict():
    merged = {"a": 1} | dotdict({"b": {"c": 2}})

    assert type(merged) is dotdict
    assert merged.b.c == 2
