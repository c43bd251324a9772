"""The TaskError value type."""

import pickle

from msgflux import TaskError


def test_task_error_is_falsy():
    assert not TaskError(0, ValueError("x"))


def test_task_error_repr_shows_index_and_exception():
    error = TaskError(index=1, exception=ValueError("broken"))

    assert repr(error) == "TaskError(index=1, exception=ValueError('broken'))"


def test_task_error_str_includes_exception_message():
    assert "u2: 11/10" in str(TaskError(2, RuntimeError("u2: 11/10")))


def test_task_error_survives_pickling():
    clone = pickle.loads(pickle.dumps(TaskError(3, KeyError("k"))))

    assert clone.index == 3
    assert isinstance(clone.exception, KeyError)
    assert clone.exception.args == ("k",)


def test_task_error_is_importable_from_the_package_root():
    import msgflux

    assert msgflux.TaskError is TaskError
