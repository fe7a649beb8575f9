"""Findings to AWS Security Hub: each as ASFF, imported with ``BatchImportFindings`` in batches of
at most 100; findings Security Hub refuses (``FailedFindings``) are retried, then dead-lettered
with its error. With ``set_notes``, a response note is also set as the finding's Security Hub
Note with ``BatchUpdateFindings``, as a re-import's Note is ignored. The boto3 client is built at
the edge and handed in."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from streams.errors import UserError
from streams.notify import consumer
from streams.notify.asff import to_asff

log = logging.getLogger("exfilguard.notify.securityhub")

MAX_PER_CALL = 100  # BatchImportFindings takes at most 100 findings a request
DEFAULT_ATTEMPTS = 3
BACKOFF_FIRST_SECONDS = 1.0


class DeliveryFailed(consumer.DeliveryFailed, UserError):
    """Security Hub refused the call itself (access, not enabled, unreachable): nothing is
    committed, and the command exits with this one line."""


class SecurityHubNotifier:
    """A ``consumer.Notifier``: every finding version is imported (same Id: an update), and with
    ``set_notes`` each new response note set once per run as the finding's Note."""

    name = "securityhub"

    def __init__(self, client: Any, dead: consumer.DeadLetters, region: str | None = None,
                 attempts: int = DEFAULT_ATTEMPTS, own_account: str | None = None,
                 set_notes: bool = False,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.dead = dead
        self.own_account = own_account
        self.region = region or client.meta.region_name
        self.attempts = max(1, attempts)
        self._sleep = sleep
        self.set_notes = set_notes
        self.noted: dict[str, str] = {}  # finding id → the Note text set in this run
        self.imported = self.retried = self.dead_lettered = self.calls = 0
        self.notes_set = self.notes_unset = 0

    def deliver(self, findings: list[dict[str, Any]]) -> None:
        mapped: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for finding in findings:
            if self.own_account and finding.get("accountId") != self.own_account:
                # The default product takes only the caller's own findings: sending it would
                # only be refused, and a refused call would hold the whole batch.
                self._dead(finding, f"securityhub: a finding of account {finding.get('accountId')}"
                                    f"; this notifier imports account {self.own_account}'s (run "
                                    "one per account, with its credentials)")
                continue
            try:
                mapped.append((finding, to_asff(finding, self.region)))
            except (KeyError, TypeError, AttributeError) as exc:
                self._dead(finding, f"securityhub: cannot map to ASFF (missing {exc})")
        for start in range(0, len(mapped), MAX_PER_CALL):
            self._import(mapped[start:start + MAX_PER_CALL])

    def _import(self, batch: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        pending = {asff["Id"]: (finding, asff) for finding, asff in batch}
        failures: dict[str, str] = {}
        delay = BACKOFF_FIRST_SECONDS
        for attempt in range(1, self.attempts + 1):
            answer = self._call([asff for _, asff in pending.values()])
            failures = {f.get("Id", ""): f"{f.get('ErrorCode', '?')}: {f.get('ErrorMessage', '')}"
                        for f in answer.get("FailedFindings", [])}
            self.imported += len(pending) - len(failures)
            pending = {i: pending[i] for i in failures if i in pending}
            if not pending or attempt == self.attempts:
                break
            self.retried += len(pending)
            log.warning("securityhub refused %d findings (first: %s); retry %d of %d in %.0f s",
                        len(pending), next(iter(failures.values())), attempt,
                        self.attempts - 1, delay)
            self._sleep(delay)
            delay *= 2
        for finding_id, (finding, _) in pending.items():
            self._dead(finding, f"securityhub FailedFindings after {self.attempts} attempts: "
                                f"{failures[finding_id]}")
        if self.set_notes:
            self._set_notes([asff for _, asff in batch if asff["Id"] not in pending])

    def _set_notes(self, imported: list[dict[str, Any]]) -> None:
        """Each new Note of imported findings through BatchUpdateFindings, one call per text."""
        by_text: dict[str, list[dict[str, Any]]] = {}
        for asff in imported:
            note = asff.get("Note")
            if note and self.noted.get(asff["Id"]) != note["Text"]:
                by_text.setdefault(note["Text"], []).append(asff)
        for text, findings in by_text.items():
            for start in range(0, len(findings), MAX_PER_CALL):
                chunk = findings[start:start + MAX_PER_CALL]
                answer = self._update(chunk, {"Text": text,
                                              "UpdatedBy": chunk[0]["Note"]["UpdatedBy"]})
                unset = {u.get("FindingIdentifier", {}).get("Id"): u
                         for u in answer.get("UnprocessedFindings", [])}
                for asff in chunk:
                    if asff["Id"] in unset:
                        # Imported, with the note in ProductFields: only Security Hub's own
                        # Note is missing, so the finding is not dead-lettered.
                        self.notes_unset += 1
                        log.warning("finding %s: Note not set: %s: %s", asff["Id"],
                                    unset[asff["Id"]].get("ErrorCode"),
                                    unset[asff["Id"]].get("ErrorMessage"))
                    else:
                        self.notes_set += 1
                        self.noted[asff["Id"]] = text

    def _update(self, findings: list[dict[str, Any]], note: dict[str, str]) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.batch_update_findings(
                FindingIdentifiers=[{"Id": f["Id"], "ProductArn": f["ProductArn"]}
                                    for f in findings], Note=note)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise DeliveryFailed(
                f"securityhub BatchUpdateFindings: {error.get('Code')}: {error.get('Message')}; "
                "--set-notes needs securityhub:BatchUpdateFindings (or leave it off: the note "
                "is in ProductFields)", exit_code=1) from None
        except BotoCoreError as exc:
            raise DeliveryFailed(f"securityhub BatchUpdateFindings: {exc}", exit_code=1) from None

    def _call(self, findings: list[dict[str, Any]]) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        self.calls += 1
        try:
            return self.client.batch_import_findings(Findings=findings)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise DeliveryFailed(
                f"securityhub BatchImportFindings: {error.get('Code')}: {error.get('Message')}; "
                "check that Security Hub is enabled in the region and the role may call "
                "securityhub:BatchImportFindings", exit_code=1) from None
        except BotoCoreError as exc:
            raise DeliveryFailed(f"securityhub BatchImportFindings: {exc}", exit_code=1) from None

    def _dead(self, finding: dict[str, Any], reason: str) -> None:
        log.warning("finding %s dead-lettered: %s", finding.get("id"), reason)
        self.dead.send(finding, reason)
        self.dead_lettered += 1

    def close(self) -> str:
        notes = (f", {self.notes_set} notes set, {self.notes_unset} not"
                 if self.set_notes else "")
        return (f"{self.imported} imported to Security Hub in {self.calls} calls, "
                f"{self.retried} retried, {self.dead_lettered} refused{notes}")
