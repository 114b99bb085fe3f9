"""Pick the PostgreSQL server the test suite runs against.

- ``TEST_DATABASE_URL`` set: that server (pytest-django creates and drops a ``test_`` database on it).
- ``SINGULARITY_TEST_DB=docker``: a throwaway pgmq container started with testcontainers.
- otherwise: the embedded server, as in development.

A development ``DATABASE_URL`` is ignored, so the suite never runs against a working database by accident.
"""
import os

EMBEDDED = "embedded"
DOCKER = "docker"
MODES = (EMBEDDED, DOCKER)
# An image with PostgreSQL and the pgmq extension; override with SINGULARITY_TEST_DOCKER_IMAGE.
DEFAULT_DOCKER_IMAGE = "tembo/pg17-pgmq:latest"


class TestDatabaseError(RuntimeError):
    """The test database requested through the environment cannot be provided."""


def test_database_url(environ=os.environ) -> str:
    """Return the server URL for the tests, or an empty string for the embedded server."""
    if environ.get("TEST_DATABASE_URL"):
        return environ["TEST_DATABASE_URL"]
    mode = environ.get("SINGULARITY_TEST_DB", EMBEDDED) or EMBEDDED
    if mode not in MODES:
        raise TestDatabaseError(
            f"SINGULARITY_TEST_DB={mode!r} is invalid: use 'embedded' (the default) or 'docker', "
            "or set TEST_DATABASE_URL to an existing server."
        )
    if mode == DOCKER:
        return start_docker_database(environ.get("SINGULARITY_TEST_DOCKER_IMAGE", DEFAULT_DOCKER_IMAGE))
    return ""


def start_docker_database(image: str) -> str:
    """Start a pgmq container for this test run and return its URL; fail at once without Docker."""
    try:
        import docker

        docker.from_env().ping()
    except Exception as exc:
        raise TestDatabaseError(
            f"SINGULARITY_TEST_DB=docker needs a running Docker engine, and none answered ({exc}). "
            "Unset SINGULARITY_TEST_DB to use the embedded server, or set TEST_DATABASE_URL."
        ) from exc
    import atexit

    from testcontainers.postgres import PostgresContainer

    container = PostgresContainer(image, driver=None)
    container.start()
    atexit.register(container.stop)
    return container.get_connection_url()
