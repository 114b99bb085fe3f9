"""The built-in agents; importing this package registers them."""
from . import cost_optimizer, file_agents, self_improving  # noqa: F401
