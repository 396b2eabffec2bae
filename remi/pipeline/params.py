"""Read params.yaml (and profiles) safely and validate them into typed `Params` before any training.

What a valid value is lives in remi/params_schema.py; this module turns a file into a mapping (bounded
size, no YAML aliases, no key given twice) and pydantic's errors into one readable message.
"""

import io
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from remi.errors import ParamsError, UserError
from remi.params_schema import Params
from remi.runtime.files import atomic_write, read_user_file

MAX_PARAMS_BYTES = 256 * 1024  # params.yaml is ~6 KB; anything near this is not a params file
SHOWN_CHARS = 80  # of an offending value, in error messages
SHOWN_PROBLEMS = 25  # a message lists at most this many problems


def shown(value: Any) -> str:
    """A value as it goes into an error message: its repr, cut short (a value may be megabytes)."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}... ({len(text):,} characters)"


def shown_key(key: Any) -> str:
    """A key as written in params.yaml if it is a short printable string, else as shown()."""
    return key if isinstance(key, str) and key.isprintable() and len(key) <= SHOWN_CHARS else shown(key)


def _problem(error: Any) -> str:
    """One pydantic error as a line of the message: where in params.yaml, what was there, what is expected."""
    location = list(error["loc"])
    if location[-1:] == ["[key]"]:  # a mapping's key, e.g. an unknown attack in acceptance.max_auc_gap
        location = [*location[:-2], "key"]
    where = ".".join(shown_key(part) for part in location)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        if len(error["loc"]) == 1:
            return f"section `{where}` is not a known section (known: {', '.join(Params.model_fields)})"
        return f"{where} is not a known key"
    if error["type"] == "missing":
        return f"section `{where}` is missing" if len(error["loc"]) == 1 else f"{where} is missing"
    if not where:  # a cross-check between sections
        return message
    return f"{where} = {shown(error['input'])}: {message}"


def validate(params: dict[str, Any], source: str = "params.yaml") -> Params:
    """The typed params, or a ParamsError listing every missing, unknown or out-of-range key; `source` names
    where the values came from."""
    try:
        return Params.model_validate(params)
    except ValidationError as error:
        problems = [line for e in error.errors() for line in _problem(e).split("\n")]
        if len(problems) > SHOWN_PROBLEMS:
            problems = [*problems[:SHOWN_PROBLEMS], f"... and {len(problems) - SHOWN_PROBLEMS} more"]
        raise ParamsError(f"Invalid {source}:\n  - " + "\n  - ".join(problems)) from None


class _StrictLoader(yaml.SafeLoader):
    """YAML without anchors' aliases (a handful of nested aliases expand to billions of nodes) and without a key
    given twice in one mapping (PyYAML would keep the last silently, so an edit above an old line would not
    take effect; DVC's reader refuses the same file, but only once `dvc repro` reads it)."""

    def __init__(self, text: bytes | str, source: str) -> None:
        super().__init__(text)
        self.source = source  # the file named in errors

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ParamsError(f"{self.source} uses a YAML alias (*{event.anchor}) at line "
                              f"{event.start_mark.line + 1}: write the values out instead.")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, dict | list):  # unhashable: the base class gives its own error
                break
            if key in first_line:
                raise ParamsError(f"{self.source} gives the key {shown_key(key)} twice, at lines {first_line[key]} "
                                  f"and {line}: keep one of them.")
            first_line[key] = line
        return super().construct_mapping(node, deep=deep)


def parse_params(text: bytes | str, source: str = "params.yaml") -> dict[str, Any]:
    """The params mapping in `text`, parsed without aliases or repeated keys; not yet validated."""
    try:
        loader = _StrictLoader(text, source)
        try:
            params = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        raise ParamsError(f"{source} is not valid YAML: {str(error)[:500]}") from error
    except RecursionError as error:
        raise ParamsError(f"{source} nests too deeply to be a params file.") from error
    if not isinstance(params, dict):
        raise ParamsError(f"{source} must hold a mapping of sections.")
    return params


def read_params_file(path: str | Path) -> dict[str, Any]:
    """Parse a params file (or a profile) with the size bound every user file gets."""
    return parse_params(_read_params_text(Path(path)), str(path))


def _read_params_text(path: Path) -> bytes:
    """A params file's (or a profile's) bytes, refused as a ParamsError if missing, not a regular file or too big."""
    if not path.exists():
        hint = ": run from inside the project." if path.name == "params.yaml" else "."
        raise ParamsError(f"{path} not found{hint}")
    try:
        return read_user_file(path, MAX_PARAMS_BYTES, "Params file" if path.name == "params.yaml" else "Profile")
    except UserError as error:
        raise ParamsError(str(error)) from error


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate the whole params file (every stage does, so a bad value stops the run early)."""
    return validate(read_params_file(path))


def overlay(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` merged in, section by section (nested dicts merge, values replace)."""
    merged = dict(base)
    for key, value in overrides.items():
        nested = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = overlay(base[key], value) if nested else value
    return merged


def apply_profile(params_path: Path, profile_path: Path) -> None:
    """Rewrite a params file with a profile overlaid; the result is validated first. The file keeps its
    comments, which document every key, and a first line names the profile whose values replaced its own (each
    profile applied adds its line above the last one's, so the lines say in which order they were applied)."""
    params_text, profile_text = _read_params_text(params_path), _read_params_text(profile_path)
    merged = overlay(parse_params(params_text, str(params_path)), parse_params(profile_text, str(profile_path)))
    validate(merged)
    text = _profile_note(params_path, profile_path) + overlay_keeping_comments(params_text, profile_text)
    # Written only if it reads back as what was validated: the round trip reads YAML 1.2, the params reader 1.1.
    if parse_params(text, str(params_path)) != merged:
        raise ParamsError(f"{profile_path} cannot be applied keeping {params_path}'s comments: a value would read "
                          f"back differently. {params_path} is unchanged; write the profile's values as plain "
                          "numbers, strings and lists.")
    atomic_write(params_path, lambda tmp: tmp.write_text(text))


def _profile_note(params_path: Path, profile_path: Path) -> str:
    """The params file's first line after `remi profile`: the profile named from the project if it lies inside
    (the CLI hands over the absolute path of what the user typed), shown safely (a path may hold a newline)."""
    relative = Path(os.path.relpath(profile_path.resolve(), params_path.resolve().parent))
    named = str(profile_path.resolve() if relative.parts[:1] == ("..",) else relative)
    named = named if named.isprintable() else repr(named)
    return f"# remi profile {named}: its values replace this file's; the comments stay this file's.\n"


def overlay_keeping_comments(base_text: bytes, overrides_text: bytes) -> str:
    """`overlay` on YAML texts, keeping the base text's comments, order and layout: each value the overrides
    set replaces the base's in place (lists keep the overrides' flow or block style), and keys new to the base
    go at the end of their section (below any comment that heads the next section there; no profile adds a key
    today). Both texts must already have passed `parse_params` (no aliases, bounded)."""
    from ruamel.yaml import YAML, YAMLError  # DVC's YAML library, round-trip mode: PyYAML drops comments
    from ruamel.yaml.comments import CommentedMap

    round_trip = YAML()
    round_trip.width = 4096  # never re-wrap a long value
    try:
        base, overrides = round_trip.load(base_text), round_trip.load(overrides_text)
    except YAMLError as error:  # another parser than the params reader's: what it refuses becomes one message
        raise ParamsError(f"params.yaml or the profile cannot be read keeping comments: {str(error)[:500]}"
                          ) from error

    def merge(into: CommentedMap, values: CommentedMap) -> None:
        for key, value in values.items():
            if isinstance(value, CommentedMap) and isinstance(into.get(key), CommentedMap):
                merge(into[key], value)
            else:
                into[key] = value

    merge(base, overrides)
    text = io.StringIO()
    round_trip.dump(base, text)
    return text.getvalue()
