"""The quote domain's values as JSON, for the message queue's store."""

from typing import Any

from quote_svc.domain import PremiumFactor, PropertyType, QuoteResult, Submission, UnderwritingStep
from quote_svc.pricing import QuoteJob


class QuoteJobCodec:
    def encode(self, job: QuoteJob) -> dict[str, Any]:
        s = job.submission
        return {
            "applicant_name": s.applicant_name,
            "address": s.address,
            "coverage_amount": s.coverage_amount,
            "property_type": int(s.property_type),
            "year_built": s.year_built,
            "prior_claims": s.prior_claims,
            "use_agentic": job.use_agentic,
        }

    def decode(self, data: dict[str, Any]) -> QuoteJob:
        fields = dict(data)
        use_agentic = fields.pop("use_agentic")
        fields["property_type"] = PropertyType(fields["property_type"])
        return QuoteJob(Submission(**fields), use_agentic)


class QuoteResultCodec:
    def encode(self, result: QuoteResult) -> dict[str, Any]:
        return {
            "annual_premium_cents": result.annual_premium_cents,
            "base_rate_per_thousand_cents": result.base_rate_per_thousand_cents,
            "base_premium_cents": result.base_premium_cents,
            "factors": [[f.name, f.multiplier, f.reason] for f in result.factors],
            "steps": [[s.name, s.outcome, s.completed_at] for s in result.steps],
            "processor": result.processor,
            "risk_score": result.risk_score,
            "review_reason": result.review_reason,
        }

    def decode(self, data: dict[str, Any]) -> QuoteResult:
        fields = dict(data)
        fields["factors"] = tuple(PremiumFactor(*f) for f in fields["factors"])
        fields["steps"] = tuple(UnderwritingStep(*s) for s in fields["steps"])
        return QuoteResult(**fields)
