"""Settings for the test suite: the project's settings on a test-only database server."""
import os

from tests.database import test_database_url

os.environ["DATABASE_URL"] = test_database_url()

from singularity.settings import *  # noqa: E402,F401,F403

# Tests roll back the routes and prices they write, so a cached copy would leak between tests.
NEXUS_TABLE_CACHE_SECONDS = 0

# A name per test run, so runs in parallel (several checkouts, or a developer and CI on one
# server) never drop each other's database.
DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}  # noqa: F405
