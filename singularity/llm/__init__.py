"""The agents' side of the LLM path: dispatch a request, store its result, wait for it."""
