"""dotdict: hidden keys stay readable but out of listings and output."""

import json

import pytest

from msgflux import dotdict


@pytest.fixture
def d():
    return dotdict({"user": "ana", "token": "s3cret"}, hidden_keys=["token"])


def test_hidden_key_readable_by_attribute(d):
    assert d.token == "s3cret"


def test_hidden_key_readable_by_item(d):
    assert d["token"] == "s3cret"


def test_hidden_key_readable_by_get(d):
    assert d.get("token") == "s3cret"


def test_hidden_key_not_in(d):
    assert "token" not in d


def test_hidden_key_left_out_of_iteration(d):
    assert list(d) == ["user"]


def test_hidden_key_left_out_of_views(d):
    assert list(d.keys()) == ["user"]
    assert list(d.values()) == ["ana"]
    assert list(d.items()) == [("user", "ana")]


def test_hidden_key_left_out_of_len(d):
    assert len(d) == 1


def test_hidden_key_left_out_of_dict_copy(d):
    assert dict(d) == {"user": "ana"}
    assert {**d} == {"user": "ana"}


def test_hidden_key_left_out_of_to_dict(d):
    assert d.to_dict() == {"user": "ana"}


def test_hidden_value_left_out_of_repr_and_str(d):
    assert "s3cret" not in repr(d)
    assert "s3cret" not in str(d)


def test_hidden_value_left_out_of_json(d):
    assert "s3cret" not in d.to_json()
    assert "s3cret" not in json.dumps(d)


def test_hidden_keys_apply_to_nested_dicts():
    d = dotdict({"auth": {"token": "inner", "user": "ana"}}, hidden_keys=["token"])

    assert d.auth.to_dict() == {"user": "ana"}
    assert d.auth.token == "inner"


def test_hidden_keys_apply_to_levels_created_by_set():
    d = dotdict(hidden_keys=["token"])

    d.set("auth.token", "inner")

    assert d.to_dict() == {"auth": {}}


def test_popitem_skips_hidden_key():
    d = dotdict({"a": 1, "token": "t"}, hidden_keys=["token"])

    assert d.popitem() == ("a", 1)
    assert d.token == "t"


def test_or_keeps_hidden_key_hidden(d):
    merged = d | {"extra": 1}

    assert "s3cret" not in repr(merged)
    assert merged.token == "s3cret"


def test_hidden_keys_as_string_raises_type_error():
    with pytest.raises(TypeError, match=r"hidden_keys must be a list of keys, got str 'token'; wrap a single key in a list: \['token'\]"):
        dotdict({"token": 1}, hidden_keys="token")


def test_unhashable_hidden_key_raises_type_error():
    with pytest.raises(TypeError, match="hidden_keys must be an iterable of hashable keys"):
        dotdict(hidden_keys=[["a"]])


def test_equality_compares_hidden_keys_too():
    first = dotdict({"a": 1, "token": "x"}, hidden_keys=["token"])
    second = dotdict({"a": 1, "token": "y"}, hidden_keys=["token"])

    assert first != second
