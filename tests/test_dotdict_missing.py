"""dotdict: a missing attribute is an AttributeError, never a KeyError."""

import pytest

from msgflux import dotdict

VARIANTS = {
    "plain": lambda: dotdict({"a": {"b": 1}}),
    "frozen": lambda: dotdict({"a": {"b": 1}}, frozen=True),
    "hidden": lambda: dotdict({"a": {"b": 1}, "h": 2}, hidden_keys=["h"]),
    "empty": lambda: dotdict(),
}

# Names that protocols and tools probe for with getattr or hasattr.
PROBES = [
    "__deepcopy__", "__copy__", "__setstate__", "__getnewargs_ex__", "__slots__",
    "__html__", "_repr_html_", "_ipython_display_", "__array__", "__fspath__",
    "_private", "missing",
]


@pytest.mark.parametrize("variant", VARIANTS)
def test_hasattr_is_false_for_missing_key(variant):
    d = VARIANTS[variant]()

    assert not hasattr(d, "missing")


@pytest.mark.parametrize("variant", VARIANTS)
def test_getattr_default_is_returned_for_missing_key(variant):
    d = VARIANTS[variant]()

    assert getattr(d, "missing", 7) == 7


@pytest.mark.parametrize("variant", VARIANTS)
def test_missing_attribute_is_not_a_key_error(variant):
    d = VARIANTS[variant]()

    with pytest.raises(AttributeError) as caught:
        d.missing

    assert not isinstance(caught.value, KeyError)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("probe", PROBES)
def test_protocol_probe_raises_only_attribute_error(variant, probe):
    d = VARIANTS[variant]()

    value = getattr(d, probe, "absent")

    assert value == "absent" or hasattr(dotdict, probe)


def test_nested_missing_attribute_is_attribute_error():
    d = dotdict({"a": {"b": 1}})

    assert not hasattr(d.a, "missing")


def test_hidden_key_is_still_an_attribute():
    d = dotdict({"token": "t"}, hidden_keys=["token"])

    assert hasattr(d, "token")


def test_missing_path_returns_default():
    d = dotdict({"a": {"b": 1}})

    assert d.get("a.missing.deeper") is None
    assert d.get("a.b.c", "fallback") == "fallback"
