"""Collecting every bad field of a request before answering INVALID_ARGUMENT once."""

from service_runtime.errors import FieldViolation, InvalidArgumentError

#: Longest id accepted anywhere a client names something (order, proposal, request).
ID_MAX_CHARS = 128


class Violations:
    """Field violations of one request; raise_if_any() raises them all together."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))

    def check_id(self, field: str, value: str, *, required: bool = True) -> None:
        """An id: required unless told otherwise, at most ID_MAX_CHARS characters."""
        if not value:
            if required:
                self.add(field, "is required")
        elif len(value) > ID_MAX_CHARS:
            self.add(field, f"must be at most {ID_MAX_CHARS} characters; got {len(value)}")

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgumentError(self.items)


def require_id(field: str, value: str) -> str:
    """value, or INVALID_ARGUMENT naming field if it is empty or too long."""
    # A good id, the usual case, needs no Violations built.
    if not value or len(value) > ID_MAX_CHARS:
        problems = Violations()
        problems.check_id(field, value)
        problems.raise_if_any()
    return value
