"""Model endpoints (OpenAI-compatible servers) and targets (how a candidate's outputs are got)."""

from django.core.exceptions import ValidationError
from django.db import models
from simple_history.models import HistoricalRecords

from grading_app.choices import TargetKind


class Endpoint(models.Model):
    """An OpenAI-compatible API. The key is never stored: ``api_key_env`` names the variable."""

    name = models.SlugField(max_length=64, unique=True)
    base_url = models.URLField(
        max_length=500, help_text="e.g. https://api.openai.com/v1 or http://vllm:8000/v1"
    )
    api_key_env = models.CharField(
        max_length=100, blank=True, help_text="Environment variable holding the API key (empty: no key)."
    )
    timeout_s = models.FloatField(default=30.0)
    max_concurrency = models.PositiveIntegerField(default=8, help_text="Calls in flight per worker process.")
    max_retries = models.PositiveIntegerField(
        default=4, help_text="Retries on 429, 5xx and timeouts, with exponential backoff and jitter."
    )
    price_in_per_mtok = models.FloatField(default=0.0, help_text="USD per million input tokens.")
    price_out_per_mtok = models.FloatField(default=0.0, help_text="USD per million output tokens.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(timeout_s__gt=0, max_concurrency__gte=1),
                name="endpoint_timeout_and_concurrency_positive",
                violation_error_message="Timeout must be positive and concurrency at least 1.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from grading_app.llm import check_endpoint_host  # reads the URL string only, no network

        check_endpoint_host(self.base_url)

    def cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.price_in_per_mtok + output_tokens * self.price_out_per_mtok) / 1_000_000


class Target(models.Model):
    """How a candidate's outputs are obtained: a chat model, the team's own service, or uploads."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=16, choices=TargetKind.choices)
    endpoint = models.ForeignKey(
        Endpoint,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="targets",
        help_text="For openai_chat targets.",
    )
    config = models.JSONField(
        default=dict,
        blank=True,
        help_text="openai_chat: model, system_prompt, params, tools. http: url, headers_env, timeout_s.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def clean(self) -> None:
        from grading_app.targets import validate_target_config

        if self.kind == TargetKind.OPENAI_CHAT and self.endpoint_id is None:
            raise ValidationError({"endpoint": "An openai_chat target needs an endpoint."})
        self.config = validate_target_config(self.kind, self.config)
