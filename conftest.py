"""Every test in this repository converts into one artifact cache of the session's own (the `tinylm_home`
fixture, autouse), never the developer's ~/.cache/tinylm, and each conversion happens once per session."""

from tinylm.testing.fixtures import tinylm_home  # noqa: F401 - pytest fixture
