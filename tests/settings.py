"""Settings for the test suite: the project's settings on a test-only database server."""
import os

from tests.database import test_database_url

os.environ["DATABASE_URL"] = test_database_url()

from singularity.settings import *  # noqa: E402,F401,F403
