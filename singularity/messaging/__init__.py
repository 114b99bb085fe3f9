"""The messaging kernel shared by every app: pgmq access, message contracts and the consumer runtime."""
