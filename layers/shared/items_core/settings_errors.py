"""Settings errors that name each environment variable, what is wrong with it and the expected form."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError


def describe_settings_errors(error: "ValidationError", model: "type[BaseModel]") -> str:
    """One clause per problem: ``VARIABLE: message (expected: field description)``."""
    clauses = []
    for problem in error.errors():
        field = str(problem["loc"][0]) if problem["loc"] else ""
        info = model.model_fields.get(field)
        expected = f" (expected: {info.description})" if info and info.description else ""
        variable = field.upper() if field else "configuration"
        clauses.append(f"{variable}: {problem['msg']}{expected}")
    return "invalid settings: " + "; ".join(clauses)
