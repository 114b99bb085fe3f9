"""The notification channel that announces a stored decision (payload: the request_id).

Migration ``singularity_hitl.0001_initial`` creates the trigger that sends it; keep the two names in step.
"""

DECISION_STORED_CHANNEL = "singularity_hitl_decisions"
