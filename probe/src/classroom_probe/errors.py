"""Errors the CLI turns into exit code 2 (bad input)."""


class BadInput(Exception):
    """An option, file or endpoint the user gave cannot be used; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
