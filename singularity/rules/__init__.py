"""The publishing side of rule updates: ``publish_rule``, the outbox table, and the results consumer."""
