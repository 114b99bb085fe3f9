"""Observer's models.

TODO: the Approval model, its history and the decision queue arrive with the approval desk.
"""
