"""The notification channel that announces stored results (payload: the request_id)."""

RESULT_STORED_CHANNEL = "singularity_job_results"
