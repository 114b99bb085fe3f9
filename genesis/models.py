"""Genesis's models.

TODO: the Rule model, monitor samples and alerts arrive with the rule-update pipeline.
"""
