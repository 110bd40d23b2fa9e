"""Configuration by file and environment.

Precedence, highest first: command-line options, ``UNLATCH_<SECTION>_<KEY>``
environment variables, the TOML file (:func:`unlatch.paths.config_file`),
built-in defaults. Sections: ``[agent]``, ``[desktop]``, ``[relay]``,
``[phone]``.
"""

from __future__ import annotations

import os
import tomllib
from typing import Any

from unlatch.errors import UnlatchError
from unlatch.paths import config_file


class ConfigError(UnlatchError):
    """The configuration file could not be read."""


def load_section(section: str) -> dict[str, Any]:
    """Merge the file's ``[section]`` with ``UNLATCH_SECTION_*`` variables.

    Environment values are strings; callers convert them with the same
    helpers they use for command-line options.
    """
    values: dict[str, Any] = {}
    path = config_file()
    if path.is_file():
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read configuration file {path}: {exc}") from None
        section_data = data.get(section, {})
        if not isinstance(section_data, dict):
            raise ConfigError(f"[{section}] in {path} must be a table")
        values.update(section_data)
    prefix = f"UNLATCH_{section.upper()}_"
    for key, value in os.environ.items():
        if key.startswith(prefix):
            values[key[len(prefix) :].lower()] = value
    return values
