"""Domain errors. Services raise them; each edge maps them (flash, HTTP 4xx, CLI exit code)."""


class DomainError(Exception):
    """A rule of the domain refused the operation; the message is for the user."""

    status_code = 409

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return self.message


class ValidationError(DomainError):
    status_code = 422


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


class AlreadyRenewed(Conflict):
    pass


class DuplicateEmail(Conflict):
    def __init__(self, message: str, *, existing_id: int | None = None, field: str | None = "email"):
        super().__init__(message, field=field)
        self.existing_id = existing_id
