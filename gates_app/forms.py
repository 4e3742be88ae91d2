"""Admin forms for gates_app: issuing a token, with the service's rules asked before saving."""

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError

from gates_app import tokens
from gates_app.choices import Scope
from gates_app.models import DeployToken, Gate


class TokenIssueForm(forms.ModelForm):
    """A deploy token for gates you own, or a personal token for yourself (a superuser may
    issue one for someone else; the audit log says so)."""

    kind = forms.ChoiceField(
        choices=[
            ("deploy", "Deploy token (for gates you own)"),
            ("personal", "Personal token (acts as you)"),
        ],
        widget=forms.RadioSelect,
        initial="deploy",
    )
    for_user = forms.ModelChoiceField(
        queryset=None,
        required=False,
        label="For user",
        help_text="Superusers only: issue a personal token in someone else's name (recorded).",
    )
    scope_list = forms.MultipleChoiceField(
        choices=Scope.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Scopes",
        help_text="Deploy tokens; none ticked: checks:write and checks:read.",
    )
    expires_in_days = forms.IntegerField(required=False, min_value=1, label="Expires after (days)")
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), label="Why", help_text="Recorded in the audit log."
    )

    class Meta:
        model = DeployToken
        fields = ["name", "gates"]
        widgets = {"gates": forms.CheckboxSelectMultiple}
        help_texts = {"gates": "Deploy tokens: the gates it may use (only gates you own are offered)."}

    def __init__(self, *args: Any, actor: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.actor = actor
        self.fields["gates"].required = False
        self.fields["gates"].queryset = (
            Gate.objects.all() if actor.is_superuser else Gate.objects.owned_by(actor)
        ).order_by("slug")
        if actor.is_superuser:
            self.fields["for_user"].queryset = (
                get_user_model().objects.filter(is_active=True).order_by("username")
            )
        else:
            del self.fields["for_user"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        personal = data.get("kind") == "personal"
        user = (data.get("for_user") or self.actor) if personal else None
        gates = list(data.get("gates") or [])
        if personal and gates:
            self.add_error("gates", "A personal token acts as its user: leave the gates empty.")
        if not personal and not gates:
            self.add_error("gates", "Choose the gates the deploy token may use (gates you own).")
        if refusal := tokens.issue_refusal(self.actor, user=user, gates=gates):
            message = refusal.messages if isinstance(refusal, ValidationError) else [str(refusal)]
            self.add_error(None, message)
        data["token_user"] = user
        return data

    def issue(self) -> tuple[DeployToken, str]:
        data = self.cleaned_data
        try:
            return tokens.create_token(
                name=data["name"],
                gates=list(data.get("gates") or []) or None,
                scopes=list(data.get("scope_list") or []) or None,
                user=data["token_user"],
                expires_in_days=data.get("expires_in_days"),
                actor=self.actor,
                note=data["note"],
            )
        except (ValidationError, PermissionDenied) as exc:  # checked in clean(); a race at most
            raise ValidationError(str(exc)) from exc
