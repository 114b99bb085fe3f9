"""The notification channel that announces stored results (payload: the request_id).

Migration 0004 creates the trigger that sends it; keep the two names in step.
"""

RESULT_STORED_CHANNEL = "singularity_job_results"
