"""Errors the CLI turns into exit codes: bad input (2), and a probe that could not finish measuring (3)."""


class BadInput(Exception):
    """An option, file or endpoint the user gave cannot be used; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ProbeError(Exception):
    """The probe itself could not complete the measurement (a load process died): nothing proves pass or fail."""
