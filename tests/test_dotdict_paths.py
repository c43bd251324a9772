"""dotdict: get() and set() with dotted paths."""

from collections import defaultdict

import pytest

from msgflux import dotdict


def test_get_reads_nested_path():
    assert dotdict({"a": {"b": {"c": 1}}}).get("a.b.c") == 1


def test_get_reads_list_index():
    d = dotdict({"rows": [{"id": 1}, {"id": 2}]})

    assert d.get("rows.1.id") == 2


def test_get_reads_negative_list_index():
    d = dotdict({"rows": [{"id": 1}, {"id": 2}]})

    assert d.get("rows.-1.id") == 2


def test_get_returns_default_for_index_out_of_range():
    d = dotdict({"rows": [1]})

    assert d.get("rows.5", "none") == "none"


def test_get_returns_default_for_word_on_list():
    d = dotdict({"rows": [1]})

    assert d.get("rows.first", "none") == "none"


def test_get_returns_default_past_a_scalar():
    assert dotdict({"a": 1}).get("a.b", "none") == "none"


def test_get_prefers_exact_dotted_key():
    d = dotdict({"a.b": "exact", "a": {"b": "nested"}})

    assert d.get("a.b") == "exact"


def test_get_works_with_non_string_keys():
    d = dotdict({1: "one", (2, 3): "pair", None: "none"})

    assert d.get(1) == "one"
    assert d.get((2, 3)) == "pair"
    assert d.get(None) == "none"
    assert d.get(4, "default") == "default"


def test_get_path_segment_matches_int_key():
    d = dotdict({"codes": {404: "not found"}})

    assert d.get("codes.404") == "not found"


def test_get_does_not_create_defaultdict_entries():
    inner = defaultdict(list)
    d = dotdict()
    dict.__setitem__(d, "dd", inner)

    assert d.get("dd.missing") is None
    assert "missing" not in inner


def test_set_creates_missing_levels():
    d = dotdict()

    d.set("a.b.c", 1)

    assert d.a.b.c == 1
    assert type(d.a.b) is dotdict


def test_set_keeps_sibling_keys():
    d = dotdict({"meta": {"a": 1}})

    d.set("meta.b", 2)

    assert d.meta == {"a": 1, "b": 2}


def test_set_into_list_item():
    d = dotdict({"rows": [{"id": 1}, {"id": 2}]})

    d.set("rows.1.extra", {"deep": 1})

    assert d.rows[1].extra.deep == 1


def test_set_replaces_list_item():
    d = dotdict({"rows": [1, 2]})

    d.set("rows.0", {"v": 9})

    assert d.rows[0].v == 9


def test_set_wraps_stored_dict():
    d = dotdict()

    d.set("a.b", {"c": 1})

    assert type(d.a.b) is dotdict


def test_set_without_dots_stores_key():
    d = dotdict()

    d.set(5, "five")

    assert d[5] == "five"


def test_set_rejects_empty_segment():
    with pytest.raises(ValueError, match=r"invalid path 'a\.\.b': it has an empty segment"):
        dotdict().set("a..b", 1)


def test_set_through_scalar_raises_type_error():
    d = dotdict({"a": 1})

    with pytest.raises(TypeError, match=r"cannot set 'a\.b': 'a' contains a int"):
        d.set("a.b", 2)

    assert d.a == 1


def test_set_error_does_not_show_the_blocking_value():
    d = dotdict({"token": "s3cret"}, hidden_keys=["token"])

    with pytest.raises(TypeError) as caught:
        d.set("token.x", 1)

    assert "s3cret" not in str(caught.value)


def test_set_index_out_of_range():
    d = dotdict({"rows": [1]})

    with pytest.raises(IndexError, match="index 3 is out of range for 'rows', which has 1 items"):
        d.set("rows.3.x", 1)


def test_set_word_on_list_raises_type_error():
    d = dotdict({"rows": [1]})

    with pytest.raises(TypeError, match="'rows' is a list, so segment 'x' must be an index"):
        d.set("rows.x", 1)


def test_set_into_tuple_raises_type_error():
    d = dotdict({"pair": (1, 2)})

    with pytest.raises(TypeError, match="is a tuple, which cannot change"):
        d.set("pair.0", 3)


def test_set_through_tuple_into_its_dict():
    d = dotdict({"pair": ({"v": 1},)})

    d.set("pair.0.v", 2)

    assert d.pair[0].v == 2
