"""Agents: think through the LLM queue path, propose through Observer, act only once approved.

An agent is an ``Agent`` subclass registered with ``register``; ``start_run`` queues a run that the
``agent_runs`` consumer advances one step per message. See docs/agents.md.
"""
