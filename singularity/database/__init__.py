"""Choose the PostgreSQL server: ``DATABASE_URL`` when set, else the embedded one."""
from .config import DatabaseUrlError, database_settings, database_url
from .embedded import EmbeddedServerError, start_embedded_server

__all__ = ["DatabaseUrlError", "database_settings", "database_url", "EmbeddedServerError", "start_embedded_server"]
