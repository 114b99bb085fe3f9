"""Build Django's ``DATABASES['default']`` entry and turn it back into a URL for child processes."""
import re
from pathlib import Path
from urllib.parse import quote, unquote, urlencode

import environ

from .embedded import start_embedded_server

ENGINE = "django.db.backends.postgresql"
SUPPORTED_SCHEMES = ("postgres", "postgresql", "pgsql", "postgis")
# Keys of OPTIONS that Django's backend consumes itself; they are not libpq parameters for a URL.
DJANGO_ONLY_OPTIONS = ("isolation_level", "server_side_binding", "assume_role", "pool")


class DatabaseUrlError(ValueError):
    """``DATABASE_URL`` is set but does not name a PostgreSQL server."""


def database_settings(url: str | None, *, data_dir: Path, database_name: str) -> dict:
    """Return the settings for ``url``, or start the embedded server when ``url`` is empty."""
    if not url:
        return start_embedded_server(data_dir=data_dir, database_name=database_name)
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in SUPPORTED_SCHEMES:
        raise DatabaseUrlError(
            f"DATABASE_URL={_redact(url)!r} is not a PostgreSQL URL. Use the form "
            "postgresql://USER:PASSWORD@HOST:PORT/NAME, or unset it to use the embedded server."
        )
    try:
        config = environ.Env.db_url_config(url)
    except ValueError as exc:  # e.g. a port that is not a number
        raise DatabaseUrlError(f"DATABASE_URL={_redact(url)!r} cannot be read: {exc}") from None
    config["ENGINE"] = ENGINE
    # A Unix socket directory arrives percent-encoded in the host part (postgresql://u@%2Ftmp/db).
    config["HOST"] = unquote(config.get("HOST") or "")
    return config


def database_url(config: dict) -> str:
    """Return a ``postgresql://`` URL that reaches the same database as ``config``."""
    user = quote(config.get("USER") or "", safe="")
    password = quote(config.get("PASSWORD") or "", safe="")
    if password:
        credentials = f"{user}:{password}@"
    elif user:
        credentials = f"{user}@"
    else:
        credentials = ""
    host = quote(config.get("HOST") or "", safe="")
    port = f":{config['PORT']}" if config.get("PORT") else ""
    # Integers are kept too: django-environ reads "connect_timeout=5" back as the int 5.
    options = {
        key: str(value)
        for key, value in (config.get("OPTIONS") or {}).items()
        if key not in DJANGO_ONLY_OPTIONS and isinstance(value, (str, int)) and not isinstance(value, bool)
    }
    query = f"?{urlencode(options)}" if options else ""
    return f"postgresql://{credentials}{host}{port}/{quote(config['NAME'], safe='')}{query}"


def _redact(url: str) -> str:
    """Hide the password of ``url`` so it can appear in an error message.

    Also for malformed values (no ``://``, as in ``user:secret@host/db``) and for a
    ``password=`` query parameter: anything before the last ``@`` after the user name is hidden.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        scheme, rest = "", url
    if "@" in rest:
        credentials, location = rest.rsplit("@", 1)
        user = credentials.split(":", 1)[0]
        rest = f"{user}:***@{location}"
    rest = re.sub(r"(?i)(password=)[^&#]*", r"\1***", rest)
    return f"{scheme}{separator}{rest}"
