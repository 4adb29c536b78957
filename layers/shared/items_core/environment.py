"""Settings from environment variables: a frozen pydantic model whose field names are the variables."""

import os
from collections.abc import Mapping
from typing import TypeVar

from pydantic import BaseModel

Model = TypeVar("Model", bound=BaseModel)


def from_environment(model: type[Model], environ: Mapping[str, str] | None = None) -> Model:
    """`model` validated from the environment: field `table_name` is TABLE_NAME (any case)."""
    # Not pydantic-settings: importing it, with its sources and python-dotenv, slows every cold start.
    variables = {name.lower(): value for name, value in (os.environ if environ is None else environ).items()}
    return model.model_validate({name: variables[name] for name in model.model_fields if name in variables})
