"""Observer: human-in-the-loop approvals between agents and anything irreversible."""
