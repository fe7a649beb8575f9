"""The YAML config file (detection keys for the core, a ``kafka:`` section for the clients), read
once at the edge into ``Config``; ``EXFILGUARD_CONFIG`` names it when ``--config`` is not given."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from streams.core.settings import ConfigError, DetectionConfig, parse_config
from streams.errors import UserError
from streams.kafka.settings import KafkaSettings, load_kafka_settings

# libyaml's parser when PyYAML has it (a large CIDR list loads ~10x faster), Python's otherwise.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class DuplicateKey(ValueError):
    """A key given twice in one mapping: YAML would silently keep the last."""


class _StrictLoader(_SafeLoader):  # type: ignore[misc, valid-type]
    """The safe loader, refusing a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise DuplicateKey(f"the key {key!r} is given twice (line "
                                   f"{key_node.start_mark.line + 1}); keep one")
            try:
                seen.add(key)
            except TypeError:
                pass  # an unhashable key: the safe constructor names it
        return super().construct_mapping(node, deep=deep)


@dataclass(frozen=True)
class Config:
    path: str | None
    detection: DetectionConfig
    kafka: KafkaSettings


def read_config_file(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise UserError(f"config {path}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"config {path}: not UTF-8 text (byte {exc.start}); save it as UTF-8"
                        ) from None
    try:
        document = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a safe loader)
    except DuplicateKey as exc:
        raise UserError(f"config {path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"config {path}: not valid YAML{where}: "
                        f"{getattr(exc, 'problem', None) or exc}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise UserError(f"config {path}: the top level must be a mapping of keys to values")
    return document


def load_config(path: str | None = None, environ: dict[str, str] | None = None) -> Config:
    environ = os.environ if environ is None else environ
    path = path or environ.get("EXFILGUARD_CONFIG") or None
    document = read_config_file(path)
    kafka_section = document.get("kafka")
    if kafka_section is not None and not isinstance(kafka_section, dict):
        raise UserError(f"config {path}: kafka must be a mapping")
    try:
        detection = parse_config(document)
    except ConfigError as exc:
        raise UserError(f"config {path}: {exc}") from None
    try:
        kafka = load_kafka_settings(kafka_section, environ)
    except UserError as exc:
        message = str(exc)
        if path and message.startswith("config: "):  # name the file the typo is in
            message = f"config {path}: " + message[len("config: "):]
        raise UserError(message, exc.exit_code) from None
    return Config(path, detection, kafka)
