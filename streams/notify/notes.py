"""``exfilguard respond``'s note as the downstream formats show it: the note a finding carries
(``service.additionalInfo.response``) and one readable line of it, for ASFF's ``Note`` and
OCSF's ``comment``; each format also keeps the note's every field."""

from __future__ import annotations

from typing import Any

AUTHOR = "exfilguard respond"


def response_note(finding: dict[str, Any]) -> dict[str, Any] | None:
    return (finding["service"].get("additionalInfo") or {}).get("response")


def note_text(note: dict[str, Any]) -> str:
    """What was done, in a line: "applied: revoke-sessions on role web-role in account …: …"."""
    where = f" on role {note['role']}" if note.get("role") else ""
    return (f"{note.get('outcome')}: {note.get('action')}{where} in account "
            f"{note.get('account')}: {note.get('reason')}")
