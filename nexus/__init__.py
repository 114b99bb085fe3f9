"""Nexus: consumes ai_requests, routes each to a model, calls the provider, publishes to ai_results."""
