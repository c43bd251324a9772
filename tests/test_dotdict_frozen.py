"""dotdict: frozen=True rejects every change, at every depth."""

import pytest

from msgflux import dotdict
from msgflux._dotdict import FrozenDotdictError

CHANGES = {
    "setattr": lambda d: setattr(d, "x", 1),
    "setitem": lambda d: d.__setitem__("x", 1),
    "delattr": lambda d: delattr(d, "a"),
    "delitem": lambda d: d.__delitem__("a"),
    "set": lambda d: d.set("a.b", 1),
    "update": lambda d: d.update(x=1),
    "ior": lambda d: d.__ior__({"x": 1}),
    "pop": lambda d: d.pop("a"),
    "popitem": lambda d: d.popitem(),
    "setdefault": lambda d: d.setdefault("x", 1),
    "clear": lambda d: d.clear(),
    "nested setattr": lambda d: setattr(d.a, "b", 2),
    "nested set through parent": lambda d: d.a.set("b", 2),
    "dict in list": lambda d: setattr(d.rows[0], "id", 2),
}


@pytest.mark.parametrize("change", CHANGES)
def test_frozen_rejects_change(change):
    d = dotdict({"a": {"b": 1}, "rows": [{"id": 1}]}, frozen=True)
    before = d.to_dict()

    with pytest.raises(FrozenDotdictError):
        CHANGES[change](d)

    assert d.to_dict() == before


def test_frozen_error_is_attribute_and_type_error():
    assert issubclass(FrozenDotdictError, AttributeError)
    assert issubclass(FrozenDotdictError, TypeError)


def test_frozen_error_message_says_how_to_copy():
    d = dotdict({"a": 1}, frozen=True)

    with pytest.raises(FrozenDotdictError, match=r"cannot set key 'a': the dotdict is frozen; build a changeable copy with dotdict\(d\.to_dict\(\)\)"):
        d.a = 2


def test_frozen_parent_freezes_inserted_dotdict_copy():
    child = dotdict({"v": 1})

    d = dotdict({"child": child}, frozen=True)

    assert d.child is not child
    with pytest.raises(FrozenDotdictError):
        d.child.v = 2
    child.v = 3
    assert d.child.v == 1


def test_frozen_dotdict_is_readable():
    d = dotdict({"a": {"b": [1]}}, frozen=True)

    assert d.a.b[0] == 1
    assert d.get("a.b.0") == 1


def test_to_dict_copy_of_frozen_is_changeable():
    d = dotdict({"a": {"b": 1}}, frozen=True)

    thawed = dotdict(d.to_dict())
    thawed.a.b = 2

    assert thawed.a.b == 2
