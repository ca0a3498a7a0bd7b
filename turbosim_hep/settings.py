"""Settings dataclasses built from and turned into plain mappings (YAML, checkpoints)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any, ClassVar, TypeVar

_S = TypeVar("_S", bound="Settings")


class Settings:
    """Mixin of the settings dataclasses (`turbosim_hep.training.TrainConfig`, ...).

    A subclass is a dataclass and names what it configures in `kind`, which error
    messages use.
    """

    kind: ClassVar[str] = "settings"

    @classmethod
    def from_dict(cls: type[_S], values: Mapping[str, Any] | None) -> _S:
        """Build from a plain mapping (missing keys take their defaults).

        Raises
        ------
        ValueError
            If the mapping holds a key that is not a setting.
        """
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(
                f"unknown {cls.kind} setting(s) {sorted(unknown)}; known: {sorted(known)}"
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain Python values (safe for ``torch.load(weights_only=True)``
        and YAML)."""
        return asdict(self)
