"""Translations: every language has every English string, and the code uses no string en.json lacks.

Home Assistant overlays a language on English key by key and drops a translated string whose
placeholders differ from the English one, so a missing or broken translation never shows an
error: the user silently reads English. These tests make both visible, and check the other
direction too: a translation key the code uses (entities, states, exceptions, repair issues,
flow steps, errors and aborts, selectors, actions, device triggers) that en.json does not have,
and a placeholder a string shows that the code does not pass.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from enum import Enum
import importlib
import inspect
import json
from pathlib import Path
import re
import string
from typing import Any

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.translation import async_get_translations
import pytest
import yaml

from custom_components.tk970.const import DOMAIN

PACKAGE = Path(__file__).parent.parent / "custom_components" / DOMAIN
TRANSLATIONS = PACKAGE / "translations"
LANGUAGES = ("de", "es", "fr", "pt", "it", "nl", "pl")


def _load(path: Path) -> dict[str, Any]:
    """Parse a translation file, refusing duplicate keys (json.loads would keep the last one)."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        duplicates = {key for key in keys if keys.count(key) > 1}
        assert not duplicates, f"{path.name}: duplicate keys {sorted(duplicates)}"
        return dict(pairs)

    data = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=no_duplicates)
    assert isinstance(data, dict)
    return data


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys to leaf values, as Home Assistant flattens translations."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


ENGLISH = _load(TRANSLATIONS / "en.json")
FLAT_ENGLISH = _flatten(ENGLISH)


def test_language_files_are_exactly_the_supported_ones() -> None:
    """No language file is left out of these tests, and none is missing."""
    present = {path.stem for path in TRANSLATIONS.glob("*.json")}
    assert present == {"en", *LANGUAGES}


@pytest.mark.parametrize("language", ["en", *LANGUAGES])
def test_strings_are_text(language: str) -> None:
    """Every string is non-empty text without surrounding blanks and without a reference.

    Home Assistant resolves ``[%key:...%]`` references only when it builds core's translations;
    it loads a custom integration's translation files as they are, so a reference would be shown
    to the user literally.
    """
    for key, value in _flatten(_load(TRANSLATIONS / f"{language}.json")).items():
        assert isinstance(value, str), f"{language}: {key} is not a string"
        assert value.strip(), f"{language}: {key} is empty"
        assert value == value.strip(), f"{language}: {key} has leading or trailing blanks"
        assert "[%key:" not in value, f"{language}: {key} is a reference, not text"
        # The frontend formats strings as ICU messages: `<word` opens a tag, and an unclosed one
        # shows "Translation error" instead of the text.
        assert not re.search(r"<[A-Za-z/]", value), f"{language}: {key} has a tag-like <...>"


@pytest.mark.parametrize("language", LANGUAGES)
def test_language_has_every_english_key_and_no_other(language: str) -> None:
    """Same keys as en.json: none missing (shown in English), none extra (never shown)."""
    flat = _flatten(_load(TRANSLATIONS / f"{language}.json"))
    missing = sorted(FLAT_ENGLISH.keys() - flat.keys())
    extra = sorted(flat.keys() - FLAT_ENGLISH.keys())
    assert not missing, f"{language}: missing {missing}"
    assert not extra, f"{language}: not in en.json {extra}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_placeholders_match_english(language: str) -> None:
    """Each translation has exactly the English placeholders (Home Assistant drops it otherwise)."""
    flat = _flatten(_load(TRANSLATIONS / f"{language}.json"))
    for key, english in FLAT_ENGLISH.items():
        if key in flat:
            assert _placeholders(flat[key]) == _placeholders(english), f"{language}: {key}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_translations_are_not_left_in_english(language: str) -> None:
    """A sentence copied from en.json untranslated is caught (names and codes may stay)."""
    flat = _flatten(_load(TRANSLATIONS / f"{language}.json"))
    untranslated = sorted(
        key
        for key, english in FLAT_ENGLISH.items()
        if flat.get(key) == english and sum(word.isalpha() for word in english.split()) > 3
    )
    assert not untranslated, f"{language}: still English {untranslated}"


@pytest.mark.parametrize("language", LANGUAGES)
async def test_home_assistant_loads_the_language(hass: HomeAssistant, language: str) -> None:
    """Home Assistant's own loader serves each file as written: no string is dropped or replaced.

    The loader overlays the language on English and drops a string whose placeholders differ from
    English, so a string it serves that differs from the file would be English showing through.
    """
    flat = _flatten(_load(TRANSLATIONS / f"{language}.json"))
    for category in ENGLISH:
        loaded = await async_get_translations(hass, language, category, [DOMAIN])
        prefix = f"component.{DOMAIN}.{category}."
        expected = {
            prefix + key.removeprefix(f"{category}."): value
            for key, value in flat.items()
            if key.startswith(f"{category}.")
        }
        assert loaded == expected, f"{language}: {category} differs from the file"
        if category == "entity":
            # A real string of each language reaches Home Assistant, not the English fallback.
            key = f"component.{DOMAIN}.entity.sensor.signal.name"
            assert loaded[key] != FLAT_ENGLISH["entity.sensor.signal.name"]


# --- Every key the code uses exists in en.json --------------------------------------------------


def _trees() -> Iterator[tuple[str, ast.Module]]:
    """Each module of the integration: its import name and its syntax tree."""
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield (
            ".".join((f"custom_components.{DOMAIN}", *parts)),
            ast.parse(path.read_text(encoding="utf-8")),
        )


def _values(
    node: ast.expr, module: str, function: ast.AST | None, trees: dict[str, ast.Module]
) -> set[str]:
    """The strings an expression can be: a literal, a module constant, or a local's literals."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _values(node.body, module, function, trees) | _values(
            node.orelse, module, function, trees
        )
    if isinstance(node, ast.Name):
        value = getattr(importlib.import_module(module), node.id, None)
        if isinstance(value, str):
            return {value}
        found: set[str] = set()
        for statement in ast.walk(function) if function is not None else ():
            if isinstance(statement, ast.Assign):
                for target in statement.targets:
                    if isinstance(target, ast.Name) and target.id == node.id:
                        found |= _values(statement.value, module, function, trees)
                    if isinstance(target, ast.Tuple) and isinstance(statement.value, ast.Call):
                        names = [getattr(element, "id", None) for element in target.elts]
                        if node.id in names:
                            found |= _returned(statement.value, names.index(node.id), trees)
        return found
    return set()


def _returned(call: ast.Call, index: int, trees: dict[str, ast.Module]) -> set[str]:
    """Literal strings a called function returns at one position of its returned tuple."""
    name = getattr(call.func, "id", None) or getattr(call.func, "attr", None)
    found: set[str] = set()
    for tree in trees.values():
        for function in ast.walk(tree):
            if (
                isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
                and function.name == name
            ):
                for node in ast.walk(function):
                    if isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple):
                        element = node.value.elts[index]
                        if isinstance(element, ast.Constant) and isinstance(element.value, str):
                            found.add(element.value)
    return found


def _parents(tree: ast.Module) -> dict[ast.AST, ast.AST]:
    return {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}


def _enclosing(
    node: ast.AST, parents: dict[ast.AST, ast.AST], kind: type | tuple[type, ...]
) -> Any:
    while node in parents:
        node = parents[node]
        if isinstance(node, kind):
            return node
    return None


def _call_keys(
    node: ast.Call,
    module: str,
    parents: dict[ast.AST, ast.AST],
    trees: dict[str, ast.Module],
) -> set[str]:
    """The en.json keys one call refers to."""
    function = _enclosing(node, parents, (ast.FunctionDef, ast.AsyncFunctionDef))
    name = getattr(node.func, "id", None) or getattr(node.func, "attr", "")
    kwargs = {keyword.arg: keyword.value for keyword in node.keywords}

    def values(argument: str) -> set[str]:
        return _values(kwargs[argument], module, function, trees)

    if "translation_key" in kwargs and "translation_domain" in kwargs:
        return {f"exceptions.{key}.message" for key in values("translation_key")}
    if name == "async_create_issue" and "translation_key" in kwargs:
        return {
            f"issues.{key}.{part}"
            for key in values("translation_key")
            for part in ("title", "description")
        }
    if name == "SelectSelectorConfig" and "translation_key" in kwargs:
        return {f"selector.{key}.options" for key in values("translation_key")}
    if name == "async_show_form" and "step_id" in kwargs:
        flow = _enclosing(node, parents, ast.ClassDef)
        bases = [getattr(base, "id", getattr(base, "attr", "")) for base in flow.bases]
        category = "options" if any("OptionsFlow" in base for base in bases) else "config"
        return {f"{category}.step.{step}" for step in values("step_id")}
    if name == "AbortFlow" and node.args:
        reasons = _values(node.args[0], module, function, trees)
        return {f"config.abort.{reason}" for reason in reasons}
    if name == "async_abort" and "reason" in kwargs:
        return {f"config.abort.{reason}" for reason in values("reason")}
    if name == "async_show_progress" and "progress_action" in kwargs:
        return {f"config.progress.{action}" for action in values("progress_action")}
    if name == "async_create_entry" and "description" in kwargs:
        return {f"config.create_entry.{text}" for text in values("description")}
    if name == "_abort_if_unique_id_configured":
        return {"config.abort.already_configured"}
    if name == "async_update_reload_and_abort" and "reason" not in kwargs:
        return {"config.abort.reconfigure_successful"}
    return set()


def _code_keys() -> set[str]:
    """The en.json keys the code refers to, read from its source.

    Collected: exceptions raised with a translation key, repair issues, flow steps, progress,
    aborts, errors and the created entry's texts, selector translation keys. A key built at run
    time from an enumeration (an f-string) is checked against its enumeration by another test.
    """
    trees = dict(_trees())
    keys: set[str] = set()
    for module, tree in trees.items():
        parents = _parents(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                keys |= _call_keys(node, module, parents, trees)
            elif (
                isinstance(node, ast.Assign)
                and isinstance(node.targets[0], ast.Subscript)
                and getattr(node.targets[0].value, "id", None) == "errors"
            ):
                function = _enclosing(node, parents, (ast.FunctionDef, ast.AsyncFunctionDef))
                keys |= {f"error.{key}" for key in _values(node.value, module, function, trees)}
            elif isinstance(node, ast.Dict) and module.endswith(".config_flow"):
                # The texts of a created entry, chosen ahead as async_create_entry's arguments.
                function = _enclosing(node, parents, (ast.FunctionDef, ast.AsyncFunctionDef))
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "description":
                        texts = _values(value, module, function, trees)
                        keys |= {f"config.create_entry.{text}" for text in texts}
    return keys


def _has(key: str) -> bool:
    """en.json has this key, as a string or as a group of strings."""
    return key in FLAT_ENGLISH or any(name.startswith(f"{key}.") for name in FLAT_ENGLISH)


def test_code_keys_exist_in_english() -> None:
    """Exceptions, issues, flow steps, aborts, errors and selectors the code uses are in en.json."""
    keys = _code_keys()
    assert "exceptions.not_connected.message" in keys  # the collector finds what it should
    missing = []
    for key in sorted(keys):
        if key.startswith("error."):
            # An error is shown by the flow (config or options) whose form it belongs to.
            if not (_has(f"config.{key}") or _has(f"options.{key}")):
                missing.append(key)
        elif not _has(key):
            missing.append(key)
    assert not missing, f"used by the code, not in en.json: {missing}"


# Home Assistant's entity metaclass moves a class's ``_attr_x`` to ``__attr_x`` (behind a property).
_CLASS_KEY = "__attr_translation_key"
_CLASS_NAME = "__attr_name"


def _platform_modules() -> Iterator[tuple[str, Any]]:
    for platform in Platform:
        if (PACKAGE / f"{platform.value}.py").exists():
            yield (
                platform.value,
                importlib.import_module(f"custom_components.tk970.{platform.value}"),
            )


def test_entity_names_and_states_exist_in_english() -> None:
    """Every entity is named (by translation or device class); enum states are in en.json."""
    checked = 0
    missing = []
    for platform, module in _platform_modules():
        for value in vars(module).values():
            descriptions: list[Any] = []
            if (
                isinstance(value, tuple)
                and value
                and all(isinstance(item, EntityDescription) for item in value)
            ):
                descriptions = list(value)
            elif (
                inspect.isclass(value)
                and issubclass(value, Entity)
                and value.__module__ == module.__name__
                and _CLASS_KEY in vars(value)
            ):
                descriptions = [value]
            for description in descriptions:
                checked += 1
                if isinstance(description, EntityDescription):
                    key, name = description.translation_key, description.name
                    device_class = description.device_class
                    options = getattr(description, "options", None)
                else:
                    key = getattr(description, _CLASS_KEY)
                    name = getattr(description, _CLASS_NAME, "unset")
                    device_class, options = None, None
                if key is None:
                    # Unnamed: Home Assistant names it by its device class.
                    assert device_class is not None, f"{platform}: an entity without a name"
                    continue
                # An entity named None takes its device's name.
                wanted = [f"entity.{platform}.{key}.name"] if name is not None else []
                wanted += [f"entity.{platform}.{key}.state.{option}" for option in options or ()]
                missing += [key for key in wanted if key not in FLAT_ENGLISH]
    assert checked > 10
    assert not missing, f"not in en.json: {missing}"


def test_enumerated_keys_exist_in_english() -> None:
    """Alarm event types, device triggers, selector options, geolocation problems: a string each."""
    from custom_components.tk970 import config_flow, device_trigger
    from custom_components.tk970.const import DIALECT_AUTO, PROVIDER_NONE
    from custom_components.tk970.event import TK970AlarmEvent
    from custom_components.tk970.positioning import ProviderKind
    from custom_components.tk970.positioning.online import Problem
    from custom_components.tk970.protocol import Alarm
    from custom_components.tk970.protocol.commands import RelayDialect

    prefix = (
        f"entity.event.{getattr(TK970AlarmEvent, _CLASS_KEY)}.state_attributes.event_type.state"
    )
    missing = [
        f"{prefix}.{alarm.value}"
        for alarm in Alarm
        if f"{prefix}.{alarm.value}" not in FLAT_ENGLISH
    ]
    missing += [
        f"device_automation.trigger_type.{kind}"
        for kind in device_trigger.TRIGGER_TYPES
        if f"device_automation.trigger_type.{kind}" not in FLAT_ENGLISH
    ]
    selectors = {
        "relay_dialect": [DIALECT_AUTO, *(dialect.value for dialect in RelayDialect)],
        "geolocation_provider": [PROVIDER_NONE, *(kind.value for kind in ProviderKind)],
        "pairing": [config_flow.PICK_MORE],
    }
    missing += [
        f"selector.{selector}.options.{option}"
        for selector, options in selectors.items()
        for option in options
        if f"selector.{selector}.options.{option}" not in FLAT_ENGLISH
    ]
    problems: list[Enum] = list(Problem)
    missing += [
        f"issues.geolocation_{problem.value}.title"
        for problem in problems
        if f"issues.geolocation_{problem.value}.title" not in FLAT_ENGLISH
    ]
    assert not missing, f"not in en.json: {missing}"


def test_actions_exist_in_english() -> None:
    """Every action in services.yaml, and each of its fields, has a name and a description."""
    services = yaml.safe_load((PACKAGE / "services.yaml").read_text(encoding="utf-8"))
    assert set(services) == set(ENGLISH["services"]), "services.yaml and en.json list other actions"
    wanted: list[str] = []
    for service, spec in services.items():
        wanted += [f"services.{service}.name", f"services.{service}.description"]
        fields = dict((spec or {}).get("fields", {}))
        for section in [field for field, value in fields.items() if "fields" in (value or {})]:
            # A collapsible section: its own name, and its fields as fields of the action.
            fields.update(fields.pop(section)["fields"])
            wanted.append(f"services.{service}.sections.{section}.name")
        wanted += [
            f"services.{service}.fields.{field}.{part}"
            for field in fields
            for part in ("name", "description")
        ]
    missing = [key for key in wanted if key not in FLAT_ENGLISH]
    assert not missing, f"not in en.json: {missing}"


_REGISTRATIONS = {
    # call name: position of the action's name among the arguments
    "async_register": 1,  # hass.services.async_register(DOMAIN, name, ...)
    "async_register_entity_service": 0,  # platform.async_register_entity_service(name, ...)
    "async_register_platform_entity_service": 2,  # (hass, DOMAIN, name, ...)
}


def test_registered_actions_are_described() -> None:
    """Every action the code registers is in services.yaml (so, by the test above, in en.json)."""
    services = yaml.safe_load((PACKAGE / "services.yaml").read_text(encoding="utf-8"))
    registered: set[str] = set()
    trees = dict(_trees())
    for module, tree in trees.items():
        parents = _parents(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            position = _REGISTRATIONS.get(getattr(node.func, "attr", getattr(node.func, "id", "")))
            if position is None:
                continue
            kwargs = {keyword.arg: keyword.value for keyword in node.keywords}
            argument = (
                node.args[position]
                if len(node.args) > position
                else kwargs.get("service", kwargs.get("name"))
            )
            assert argument is not None, f"{module}: cannot read the registered action's name"
            function = _enclosing(node, parents, (ast.FunctionDef, ast.AsyncFunctionDef))
            registered |= _values(argument, module, function, trees)
    assert registered, "no registered action found"
    assert registered <= set(services), (
        f"registered, not in services.yaml: {registered - set(services)}"
    )


def _passed(node: ast.expr | None, function: ast.AST | None) -> set[str] | None:
    """The placeholder names a call passes: a dict literal's keys, or a local dict's; else None."""
    if node is None:
        return set()
    if isinstance(node, ast.Name) and function is not None:
        for statement in ast.walk(function):
            if (
                isinstance(statement, ast.Assign)
                and any(getattr(target, "id", None) == node.id for target in statement.targets)
                and isinstance(statement.value, ast.Dict)
            ):
                return _passed(statement.value, None)
        return None
    if isinstance(node, ast.Dict) and all(
        isinstance(key, ast.Constant) and isinstance(key.value, str) for key in node.keys
    ):
        return {key.value for key in node.keys if isinstance(key, ast.Constant)}
    return None


def _placeholder_uses() -> Iterator[tuple[str, set[str] | None, str]]:
    """(en.json key, the placeholders the code passes with it, where) for each use in the code."""
    trees = dict(_trees())
    for module, tree in trees.items():
        parents = _parents(tree)
        for node in ast.walk(tree):
            function = _enclosing(node, parents, (ast.FunctionDef, ast.AsyncFunctionDef))
            where = f"{module}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Dict) and module.endswith(".config_flow"):
                fields = {
                    key.value: value
                    for key, value in zip(node.keys, node.values, strict=True)
                    if isinstance(key, ast.Constant)
                }
                if "description" in fields:
                    passed = _passed(fields.get("description_placeholders"), function)
                    for text in _values(fields["description"], module, function, trees):
                        yield f"config.create_entry.{text}", passed, where
            if not isinstance(node, ast.Call):
                continue
            keys = _call_keys(node, module, parents, trees)
            kwargs = {keyword.arg: keyword.value for keyword in node.keywords}
            argument = kwargs.get(
                "translation_placeholders", kwargs.get("description_placeholders")
            )
            passed = _passed(argument, function)
            for key in keys:
                strings = [
                    name for name in FLAT_ENGLISH if name == key or name.startswith(f"{key}.")
                ]
                if key.startswith(("config.step.", "options.step.")):
                    # A form's placeholders fill its title and description, not its fields.
                    strings = [
                        name for name in strings if name in (f"{key}.title", f"{key}.description")
                    ]
                if key.startswith(("selector.", "error.")) or "_abort_if" in ast.unparse(node.func):
                    continue
                for name in strings:
                    yield name, passed, where


def test_code_passes_every_placeholder() -> None:
    """Each string's placeholders are passed by the code that shows it.

    A placeholder left out is shown to the user as ``{name}`` (or breaks the message).
    """
    checked = 0
    unfilled = []
    for key, passed, where in _placeholder_uses():
        if passed is None:  # built at run time: not checked here
            continue
        checked += 1
        missing = _placeholders(FLAT_ENGLISH[key]) - passed
        if missing:
            unfilled.append(f"{where} {key}: {sorted(missing)}")
    assert checked > 30
    assert not unfilled, f"placeholders the code does not pass: {unfilled}"
