"""Genesis: receives rule updates, applies them, and is monitored for lag."""
