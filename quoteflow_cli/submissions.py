"""Turning what a person types (options) or a file holds (rows) into a submission.

Only the form is checked here (a whole number, a known name); the ranges are the
service's to judge, so its INVALID_ARGUMENT names the field as the API does.
"""

import argparse
from collections.abc import Mapping

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from quoteflow.quote.v1 import quote_service_pb2 as quote_pb

#: The fields a batch row may have, as named in SubmitQuoteRequest and Submission.
REQUIRED_FIELDS = ("applicant_name", "address", "coverage_amount")
OPTIONAL_FIELDS = (
    "property_type",
    "year_built",
    "prior_claims",
    "priority",
    "use_agentic",
    "request_id",
)
ROW_FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS

PRIORITY_CHOICES = ("low", "normal", "high", "urgent")
PROPERTY_TYPE_CHOICES = ("single-family", "apartment", "commercial")

_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0", ""})


class RowError(ValueError):
    """A batch row that cannot become a request; the message says which field and why."""


def whole_number(value: object, bits: int) -> int:
    """A whole number that fits a signed field of so many bits; "250,000" and
    "250_000" are read as people write them."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"not a whole number: {value!r}")
    try:
        number = int(value.replace(",", "").replace("_", "")) if isinstance(value, str) else value
    except ValueError:
        raise ValueError(f"not a whole number: {value!r}") from None
    limit = 2 ** (bits - 1)
    if not -limit <= number < limit:
        raise ValueError(f"out of range: {value!r}")
    return number


def enum_name(enum: EnumTypeWrapper, text: str) -> str:
    """The full name of the enum value text names: "apartment", "APARTMENT" or
    "PROPERTY_TYPE_APARTMENT" are all "PROPERTY_TYPE_APARTMENT" (message
    constructors take an enum value by its name)."""
    prefix = enum.Name(0).removesuffix("UNSPECIFIED")
    name = text.strip().upper().replace("-", "_").replace(" ", "_").removeprefix(prefix)
    if not name or name == "UNSPECIFIED" or prefix + name not in enum.DESCRIPTOR.values_by_name:
        choices = ", ".join(
            k.removeprefix(prefix).lower().replace("_", "-") for k in enum.keys()[1:]
        )
        raise ValueError(f"unknown value {text!r} (one of: {choices})")
    return prefix + name


def add_submission_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", required=True, help="the applicant's full name")
    parser.add_argument("--address", required=True, help="the insured property's address")
    parser.add_argument(
        "--coverage",
        required=True,
        metavar="AMOUNT",
        type=_int64_option,
        help="coverage asked for, in whole currency units (1 to 50,000,000)",
    )
    parser.add_argument(
        "--property-type",
        choices=PROPERTY_TYPE_CHOICES,
        help="the kind of building (default: rated as single-family)",
    )
    parser.add_argument(
        "--year-built", metavar="YEAR", type=_int32_option, default=0, help="0 means unknown"
    )
    parser.add_argument(
        "--prior-claims",
        metavar="N",
        type=_int32_option,
        default=0,
        help="claims in the last five years",
    )


def submission_from_options(args: argparse.Namespace) -> quote_pb.Submission:
    return quote_pb.Submission(
        applicant_name=args.name,
        address=args.address,
        coverage_amount=args.coverage,
        property_type=(
            enum_name(quote_pb.PropertyType, args.property_type) if args.property_type else None
        ),
        year_built=args.year_built,
        prior_claims=args.prior_claims,
    )


def request_from_row(row: Mapping[str, object]) -> quote_pb.SubmitQuoteRequest:
    """The SubmitQuoteRequest a batch row (a JSON object or a CSV record) asks for.
    Empty values count as absent."""
    present = {k: v for k, v in row.items() if v is not None and v != ""}
    unknown = sorted(set(present) - set(ROW_FIELDS))
    if unknown:
        raise RowError(f"unknown field {', '.join(unknown)} (fields: {', '.join(ROW_FIELDS)})")
    missing = [name for name in REQUIRED_FIELDS if name not in present]
    if missing:
        raise RowError(f"missing {', '.join(missing)}")
    try:
        return _request(present)
    except ValueError as error:
        raise RowError(str(error)) from None


def _request(row: Mapping[str, object]) -> quote_pb.SubmitQuoteRequest:
    submission = quote_pb.Submission(
        applicant_name=_text(row, "applicant_name"),
        address=_text(row, "address"),
        coverage_amount=_number(row, "coverage_amount", 64),
        property_type=_enum(row, "property_type", quote_pb.PropertyType),
        year_built=_number(row, "year_built", 32),
        prior_claims=_number(row, "prior_claims", 32),
    )
    return quote_pb.SubmitQuoteRequest(
        submission=submission,
        priority=_enum(row, "priority", quote_pb.Priority),
        use_agentic=_flag(row, "use_agentic"),
        request_id=_text(row, "request_id"),
    )


def _text(row: Mapping[str, object], name: str) -> str:
    value = row.get(name, "")
    if not isinstance(value, str):
        raise ValueError(f"{name}: not text: {value!r}")
    return value


def _number(row: Mapping[str, object], name: str, bits: int) -> int:
    if name not in row:
        return 0
    try:
        return whole_number(row[name], bits)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None


def _enum(row: Mapping[str, object], name: str, enum: EnumTypeWrapper) -> str | None:
    if name not in row:
        return None
    try:
        return enum_name(enum, _text(row, name))
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None


def _flag(row: Mapping[str, object], name: str) -> bool:
    value = row.get(name, False)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise ValueError(f"{name}: not true or false: {value!r}")


def _int64_option(text: str) -> int:
    return _option(text, 64)


def _int32_option(text: str) -> int:
    return _option(text, 32)


def _option(text: str, bits: int) -> int:
    try:
        return whole_number(text, bits)
    except ValueError as error:
        # argparse reports an ArgumentTypeError's own words, after the option's name.
        raise argparse.ArgumentTypeError(str(error)) from None
