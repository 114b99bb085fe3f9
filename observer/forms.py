"""The decision form shared by the Observer pages and the admin change page."""
from django import forms

from .decisions import ACTIONS

MAX_REASON_LENGTH = 2000
MAX_ANSWER_LENGTH = 10000


class DecisionForm(forms.Form):
    """An approver's decision; the approver is always the signed-in user, never a form field."""

    action = forms.ChoiceField(choices=[(verb, verb.capitalize()) for verb in ACTIONS])
    reason = forms.CharField(
        required=False,
        max_length=MAX_REASON_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Optional; sent to the agent with the decision.",
    )
    answer = forms.CharField(
        required=False,
        max_length=MAX_ANSWER_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Required to answer a question.",
    )

    @property
    def chosen_action(self):
        return ACTIONS[self.cleaned_data["action"]]
