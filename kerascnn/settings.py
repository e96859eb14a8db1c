"""One declaration per setting, as in MediaPipe Model Maker's `hyperparameters.py`: each field of a settings dataclass
(TrainConfig, DataSpec, ExportConfig) is made by `setting`, which documents it once and carries its command-line flag,
help, group and roles. The command lines (`add_arguments`), the resume and multi-process rules (`having`) and the
messages (`SettingError`, rendered with flags by the command lines only) are generated from those fields.

Light: no TensorFlow, no Keras; every layer may use it.
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Callable

# A setting's roles: what it is to a run besides its value.
RESUMABLE = "resumable"  # a --resume may change it: the checkpoint still means the same run
PER_PROCESS = "per_process"  # may differ between the processes of one run (never compared across them)
LAUNCH = "launch"  # belongs to one launch: a resume never takes it from the run's config.yaml
UNSAVED = "unsaved"  # not written to config.yaml: a repeat must ask again
NAMES_RUN = "names_run"  # names the run (its folder), not how it trains
FOLDER = "folder"  # a folder the run reads: stored absolute, so the run opens from any working directory
ROLES = (RESUMABLE, PER_PROCESS, LAUNCH, UNSAVED, NAMES_RUN, FOLDER)


def setting(
    default=dataclasses.MISSING,
    *,
    help: str | Callable[[], str] = "",
    flag: str | None | bool = None,
    group: str | None = None,
    roles: tuple[str, ...] = (),
    show_default: bool = False,
    default_factory=dataclasses.MISSING,
    key: str | None = None,
    **options,
) -> dataclasses.Field:
    """A dataclass field that declares one setting.

    Args:
        default, default_factory: as `dataclasses.field`.
        help: the flag's help text (a function returning it, where it is built from other settings).
        flag: its command-line flag; None: "--" + the name with - for _; False: not on the command line.
        group: the argument group of the command line (None: the top level).
        roles: any of `ROLES`.
        show_default: end the help with " (default: X)".
        key: the setting's name in a run's config.yaml where the field is named otherwise.
        **options: `ArgumentParser.add_argument` options (type, choices, metavar, nargs, action, const).

    Raises:
        ValueError: an unknown role.

    Example:
        >>> epochs: int = setting(10, help="epochs to train", group="optimisation", roles=(RESUMABLE,))
    """
    unknown = [role for role in roles if role not in ROLES]
    if unknown:
        raise ValueError(f"Unknown setting roles {unknown}. Valid roles: {', '.join(ROLES)}.")
    metadata = dict(
        help=help, flag=flag, group=group, roles=frozenset(roles), show_default=show_default, key=key, options=options
    )
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


def like(field: dataclasses.Field, **changes) -> dataclasses.Field:
    """A field declared as `field` of another settings class (its default, help, flag and roles), with `changes`:
    TrainConfig takes DataSpec's data settings this way instead of restating them."""
    metadata = {**field.metadata, **changes}
    return dataclasses.field(default=field.default, default_factory=field.default_factory, metadata=metadata)


def flag_of(field: dataclasses.Field) -> str | None:
    """The flag that sets `field` on the command line, None if none does."""
    flag = field.metadata.get("flag")
    if flag is False:
        return None
    return flag or "--" + field.name.replace("_", "-")


def flags(cls) -> dict[str, str]:
    """{field name: flag} of a settings dataclass."""
    return {f.name: flag_of(f) for f in dataclasses.fields(cls) if flag_of(f)}


def having(cls, role: str) -> frozenset[str]:
    """The names of the fields of `cls` that have `role`."""
    return frozenset(f.name for f in dataclasses.fields(cls) if role in f.metadata.get("roles", ()))


def default_of(field: dataclasses.Field):
    return field.default_factory() if field.default is dataclasses.MISSING else field.default


def _help(field: dataclasses.Field) -> str:
    text = field.metadata["help"]
    text = text() if callable(text) else text
    if field.metadata["show_default"]:
        value = default_of(field)
        text += f" (default: {f'{value:.4g}' if isinstance(value, float) else value})"
    return text


def document(cls) -> None:
    """Adds an "Attributes:" section to `cls`'s docstring, one line per field from its help, so the API reference
    shows each setting as declared (call it once the help's functions can run: after the module's definitions)."""
    import inspect

    lines = []
    for field in dataclasses.fields(cls):
        flag = flag_of(field)
        spelled = "" if flag in (None, "--" + field.name.replace("_", "-")) else f" ({flag})"
        lines.append(f"    {field.name}{spelled}: {' '.join(_help(field).split())}")
    doc = inspect.cleandoc(cls.__doc__ or "")
    cut = min((doc.find(f"\n{title}:") for title in ("Raises", "Example") if f"\n{title}:" in doc), default=len(doc))
    cls.__doc__ = f"{doc[:cut].rstrip()}\n\nAttributes:\n" + "\n".join(lines) + "\n" + doc[cut:]


def add_arguments(parser, cls, groups: dict[str | None, str | None], defaults: bool) -> None:
    """Adds a flag for each field of `cls` that has one, group by group in the order of `groups` ({title:
    description}; None is the parser itself) and field by field in declaration order.

    Args:
        defaults: give each flag its field's default; False leaves them None ("not given"), so that only the flags
            given override a config file and a preset.
    """
    for title, description in groups.items():
        target = parser if title is None else parser.add_argument_group(title, description)
        for field in dataclasses.fields(cls):
            if field.metadata.get("group") != title or not flag_of(field):
                continue
            options = dict(field.metadata["options"], dest=field.name, help=_help(field))
            if defaults:
                options["default"] = default_of(field)
            target.add_argument(flag_of(field), **options)


class _Spelling(string.Formatter):
    """Formats "{name}" (the setting and its value), "{name:name}" (the setting alone) and "{name:value}" (the value
    alone), spelling each setting with `spell(name, value)`."""

    def __init__(self, spell: Callable[[str, object], tuple[str, str]]):
        self.spell = spell

    def get_field(self, field_name, args, kwargs):
        return (field_name, kwargs[field_name]), field_name

    def format_field(self, pair, spec):
        name, value = pair
        spelled, with_value = self.spell(name, value)
        return {"": with_value, "name": spelled, "value": repr(value)}[spec]


class SettingError(ValueError):
    """A setting that is out of range or contradicts another. The message is a template that names settings by
    field: `str(error)` speaks the library's words (`freeze_epochs=3 is more than epochs=2`), `in_flags()` the
    command line's (`--freeze-epochs 3 is more than --epochs 2`), each flag taken from `owner`'s fields.

    In the template, "{name}" is the setting with its value, "{name:name}" the setting alone and "{name:value}" its
    value alone (repr); the values come from `values`.

    Example:
        >>> error = SettingError(None, "{epochs} must be >= 1.", epochs=0)
        >>> str(error), error.in_flags()
        ('epochs=0 must be >= 1.', '--epochs 0 must be >= 1.')
    """

    def __init__(self, owner, template: str, **values):
        self.owner, self.template, self.values = owner, template, values
        super().__init__(self._render(lambda name, value: (name, f"{name}={value!r}")))

    def in_flags(self) -> str:
        """The message with each setting spelled as its flag (`--epochs 2`), for the command lines."""
        known = flags(self.owner) if self.owner is not None else {}

        def spell(name, value):
            flag = known.get(name, "--" + name.replace("_", "-"))
            shown = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
            return flag, f"{flag} {shown}"

        return self._render(spell)

    def _render(self, spell) -> str:
        return _Spelling(spell).format(self.template, **self.values)
