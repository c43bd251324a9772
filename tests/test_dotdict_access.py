"""dotdict: attribute access, wrapping on insert, and keys named like methods."""

import pytest

from msgflux import dotdict

METHOD_NAMES = sorted(name for name in dir(dotdict) if not name.startswith("_"))


def test_attribute_reads_nested_key():
    d = dotdict({"user": {"name": "ana"}})

    assert d.user.name == "ana"


def test_attribute_assignment_stores_key():
    d = dotdict()

    d.status = "done"

    assert d["status"] == "done"


def test_nested_dict_is_wrapped_on_insert():
    d = dotdict()

    d["meta"] = {"inner": {"v": 1}}

    assert type(d.meta) is dotdict
    assert type(d.meta.inner) is dotdict


def test_dicts_inside_lists_are_wrapped():
    d = dotdict({"rows": [{"id": 1}, [{"id": 2}]], "pair": ({"id": 3},)})

    assert d.rows[0].id == 1
    assert d.rows[1][0].id == 2
    assert d.pair[0].id == 3


def test_existing_dotdict_is_stored_without_copy():
    child = dotdict({"v": 1})
    d = dotdict()

    d.child = child

    assert d.child is child


def test_is_a_real_dict():
    assert isinstance(dotdict(), dict)


def test_delattr_removes_key():
    d = dotdict({"a": 1})

    del d.a

    assert "a" not in d


def test_delattr_of_missing_key_raises_attribute_error():
    d = dotdict()

    with pytest.raises(AttributeError, match="no key 'missing' to delete"):
        del d.missing


def test_missing_attribute_message_suggests_get():
    d = dotdict()

    with pytest.raises(AttributeError, match=r"dotdict has no key 'nope'; use \.get\('nope'"):
        d.nope


def test_dir_lists_identifier_keys():
    d = dotdict({"alpha": 1, "not an identifier": 2, 3: 4})

    names = dir(d)

    assert "alpha" in names
    assert "not an identifier" not in names
    assert "items" in names


def test_keyword_arguments_become_keys():
    d = dotdict({"a": 1}, b={"c": 2})

    assert d.a == 1
    assert d.b.c == 2


def test_pairs_build_a_dotdict():
    d = dotdict([("a", 1), ("b", {"c": 2})])

    assert d.b.c == 2


def test_bad_pairs_raise_type_error_naming_the_item():
    with pytest.raises(TypeError, match="item 1 is int 5"):
        dotdict([("a", 1), 5])


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_method_named_key_keeps_method_and_value(name):
    # Every public method name, as a key: the attribute is still the method,
    # and the value is reachable with [] and get().
    d = dotdict({name: "stored"})

    assert callable(getattr(d, name))
    assert d[name] == "stored"
    assert d.get(name) == "stored"


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_attribute_assignment_of_method_name_stores_key(name):
    d = dotdict()

    setattr(d, name, "assigned")

    assert callable(getattr(d, name))
    assert d[name] == "assigned"


def test_method_named_keys_round_trip_through_views():
    data = {"items": [{"name": "a"}], "keys": "k", "values": 1, "update": 3}
    d = dotdict(data)

    assert dict(d.items()) == dotdict(data)
    assert sorted(d.keys()) == sorted(data)
    assert len(d.values()) == len(data)
    assert d["items"][0].name == "a"


def test_update_with_method_named_key_stores_value():
    d = dotdict({"values": 1})

    d.update({"values": 10})

    assert d["values"] == 10
    assert callable(d.values)
