"""Singularity: the Django project and the agents' side of the system."""
