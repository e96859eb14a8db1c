"""The backend-portable tests (layers, data, models) pass under the other Keras backends too. The passes are
subprocesses that tests/backend_passes.py starts when collection is done, so they run beside the rest of the suite
(pytest -n workers included); these tests wait for their results."""

import pytest

from tests import backend_passes

TIMEOUT_S = 1500  # from the start of the session: the passes start before the first test


@pytest.mark.parametrize("backend", backend_passes.other_backends())
def test_portable_suite_passes_under(backend, request):
    returncode, output = backend_passes.wait(request.config, backend, TIMEOUT_S)
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    assert returncode is not None, f"KERAS_BACKEND={backend}: still running after {TIMEOUT_S} s\n{output[-8000:]}"
    assert returncode == 0, f"KERAS_BACKEND={backend}: {summary}\n{output[-8000:]}"
    assert " passed" in summary and "failed" not in summary, summary
