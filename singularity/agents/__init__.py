"""Agents: think through the LLM queue path, propose through Observer, act only once approved.

An agent is an ``Agent`` subclass registered with ``register``; ``start_run`` starts a run of the
quantum_flow flow ``agent_run``, whose steps ask, think, propose and act. See docs/agents.md.
"""
