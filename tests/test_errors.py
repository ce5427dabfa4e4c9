import errno

from mmjax import errors


def _raised_from(outer: Exception, inner: Exception) -> Exception:
    try:
        try:
            raise inner
        except type(inner) as e:
            raise outer from e
    except type(outer) as e:
        return e


def test_the_chain_runs_outermost_first_and_stops_at_a_cycle():
    error = _raised_from(ValueError("wrapper"), OSError(errno.ENOSPC, "No space left on device"))
    assert [type(e) for e in errors.chain(error)] == [ValueError, OSError]
    error.__cause__.__cause__ = error  # a cycle
    assert len(errors.chain(error)) == 2


def test_out_of_space_is_found_anywhere_in_the_chain():
    assert errors.out_of_space(_raised_from(ValueError("wrapper"), OSError(errno.EDQUOT, "quota")))
    assert errors.out_of_space(RuntimeError("write() failed: No space left on device; writing x"))
    assert not errors.out_of_space(_raised_from(ValueError("wrapper"), OSError(errno.ENOENT, "missing")))
