"""Choose the PostgreSQL server: ``DATABASE_URL`` when set, else the embedded one."""
from .config import database_settings, database_url
from .embedded import EmbeddedServerError, start_embedded_server

__all__ = ["database_settings", "database_url", "EmbeddedServerError", "start_embedded_server"]
