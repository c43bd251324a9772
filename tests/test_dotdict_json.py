"""dotdict: JSON output matches json.dumps of to_dict(), and to_dict is plain."""

import json

import pytest

from msgflux import dotdict

SAMPLES = {
    "unicode": {"title": "caf\u00e9 \u2615", "emoji": "\U0001f600"},
    "scalars": {"n": None, "ok": True, "no": False, "pi": 3.5, "big": 10**20, "neg": -1},
    "nested lists": {"rows": [{"id": 1, "tags": ["x"]}, {"id": 2, "more": [{"deep": [1, {"z": 0}]}]}]},
    "tuples": {"pair": ({"a": 1}, [2, 3])},
    "number keys": {1: "one", 2.5: "float", -3: "negative"},
    "empty": {},
    "empty children": {"a": {}, "b": [], "c": [{}]},
}

JSON_OPTIONS = {
    "default": {},
    "indent": {"indent": 2},
    "sort_keys": {"sort_keys": True},
    "compact": {"separators": (",", ":")},
    "unicode": {"ensure_ascii": False},
}


@pytest.mark.parametrize("sample", SAMPLES)
@pytest.mark.parametrize("options", JSON_OPTIONS)
def test_to_json_matches_json_dumps_of_to_dict(sample, options):
    d = dotdict(SAMPLES[sample])
    kwargs = JSON_OPTIONS[options]

    assert d.to_json(**kwargs) == json.dumps(d.to_dict(), **kwargs)


@pytest.mark.parametrize("sample", SAMPLES)
def test_json_dumps_of_dotdict_matches_to_json(sample):
    d = dotdict(SAMPLES[sample])

    assert json.dumps(d) == d.to_json()


@pytest.mark.parametrize("options", JSON_OPTIONS)
def test_json_hides_keys_at_every_depth(options):
    d = dotdict(
        {"token": "T0K", "rows": [{"token": "T1K", "id": 1}], "meta": {"token": "T2K"}},
        hidden_keys=["token"],
    )
    kwargs = JSON_OPTIONS[options]

    text = d.to_json(**kwargs)

    assert json.loads(text) == {"rows": [{"id": 1}], "meta": {}}
    assert text == json.dumps(d.to_dict(), **kwargs)
    assert "T0K" not in json.dumps(d, **kwargs)


def test_none_and_bool_keys_match_json_dumps():
    d = dotdict({None: "none", True: "bool", "a": 1})

    assert d.to_json() == json.dumps({None: "none", True: "bool", "a": 1})


def test_only_hidden_keys_give_empty_object():
    d = dotdict({"token": "T0K"}, hidden_keys=["token"])

    assert d.to_json() == "{}"
    assert json.dumps(d) == "{}"


def test_to_dict_returns_plain_types_at_every_depth():
    d = dotdict({"rows": [{"id": 1, "sub": [{"x": 1}]}], "meta": {"v": {"w": 2}}})

    plain = d.to_dict()

    assert type(plain) is dict
    assert type(plain["rows"][0]) is dict
    assert type(plain["rows"][0]["sub"][0]) is dict
    assert type(plain["meta"]["v"]) is dict


def test_to_dict_is_a_copy():
    d = dotdict({"meta": {"v": 1}, "rows": [1]})

    plain = d.to_dict()
    plain["meta"]["v"] = 2
    plain["rows"].append(2)

    assert d.meta.v == 1
    assert d.rows == [1]


def test_to_json_raises_type_error_for_unserializable_value():
    d = dotdict({"s": {1, 2}})

    with pytest.raises(TypeError, match="set is not JSON serializable"):
        d.to_json()


def test_to_json_passes_default_hook():
    d = dotdict({"s": {1}})

    assert d.to_json(default=sorted) == '{"s": [1]}'


def test_value_set_by_path_appears_in_json():
    d = dotdict({"rows": [{"id": 1}, {"id": 2}]})

    d.set("rows.1.extra", {"deep": {"er": 1}})

    assert json.loads(d.to_json()) == {"rows": [{"id": 1}, {"id": 2, "extra": {"deep": {"er": 1}}}]}
