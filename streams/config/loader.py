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
    try:
        document = yaml.safe_load(text)
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
    kafka = load_kafka_settings(kafka_section, environ)
    return Config(path, detection, kafka)
