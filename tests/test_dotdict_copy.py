"""dotdict: copy, deepcopy and pickle keep the type, the frozen flag and hidden keys."""

import copy
import pickle

import pytest

from msgflux import dotdict
from msgflux._dotdict import FrozenDotdictError


def _pickle_clone(value):
    return pickle.loads(pickle.dumps(value))


def _pickle_clone_protocol_0(value):
    return pickle.loads(pickle.dumps(value, protocol=0))


DEEP_CLONES = {
    "deepcopy": copy.deepcopy,
    "pickle": _pickle_clone,
    "pickle protocol 0": _pickle_clone_protocol_0,
}
ALL_CLONES = {**DEEP_CLONES, "copy.copy": copy.copy, "copy method": lambda d: d.copy()}


def _sample(**options):
    return dotdict(
        {"user": {"name": "ana", "tags": [{"k": 1}], "pair": ({"p": 2},)}, "api_key": "s3cret"},
        **options,
    )


@pytest.mark.parametrize("clone", ALL_CLONES)
def test_clone_keeps_type_and_contents(clone):
    source = _sample()

    result = ALL_CLONES[clone](source)

    assert type(result) is dotdict
    assert type(result.user) is dotdict
    assert type(result.user.tags[0]) is dotdict
    assert type(result.user.pair[0]) is dotdict
    assert result.to_dict() == source.to_dict()


@pytest.mark.parametrize("clone", ALL_CLONES)
def test_clone_keeps_hidden_key_hidden(clone):
    source = _sample(hidden_keys=["api_key"])

    result = ALL_CLONES[clone](source)

    assert result.get("api_key") == "s3cret"
    assert "api_key" not in result
    assert "s3cret" not in repr(result)


@pytest.mark.parametrize("clone", ALL_CLONES)
def test_clone_keeps_frozen_flag(clone):
    source = _sample(frozen=True)

    result = ALL_CLONES[clone](source)

    with pytest.raises(FrozenDotdictError):
        result.extra = 1
    with pytest.raises(FrozenDotdictError):
        result.user.name = "bob"


@pytest.mark.parametrize("clone", DEEP_CLONES)
def test_deep_clone_is_independent(clone):
    source = _sample()

    result = DEEP_CLONES[clone](source)
    result.user.name = "bob"
    result.user.tags[0].k = 9

    assert source.user.name == "ana"
    assert source.user.tags[0].k == 1


def test_shallow_copy_shares_children():
    source = _sample()

    result = copy.copy(source)

    assert result.user is source.user


@pytest.mark.parametrize("clone", DEEP_CLONES)
def test_deep_clone_keeps_self_reference(clone):
    source = dotdict({"name": "loop"})
    source.me = source

    result = DEEP_CLONES[clone](source)

    assert result.me is result


@pytest.mark.parametrize("clone", DEEP_CLONES)
def test_deep_clone_keeps_shared_child_shared(clone):
    child = dotdict({"v": 1})
    source = dotdict({"first": child, "second": child})

    result = DEEP_CLONES[clone](source)

    assert result.first is result.second


class Message(dotdict):
    """A subclass defined at module level, so that pickle can find it."""

    __slots__ = ()


@pytest.mark.parametrize("clone", ALL_CLONES)
def test_clone_keeps_subclass(clone):
    source = Message({"a": {"b": 1}})

    result = ALL_CLONES[clone](source)

    assert type(result) is Message
    assert result.a.b == 1


@pytest.mark.parametrize("clone", DEEP_CLONES)
def test_deep_clone_frozen_and_hidden(clone):
    source = _sample(frozen=True, hidden_keys=["api_key"])

    result = DEEP_CLONES[clone](source)

    assert result.api_key == "s3cret"
    assert "api_key" not in result.keys()
    with pytest.raises(FrozenDotdictError):
        result.api_key = "changed"
