"""The documented first response to a stolen instance key: an inline deny-all policy on the
instance's role for sessions issued before now (the IAM console's "Revoke active sessions"), so
the stolen session dies and the instance fetches fresh credentials. Dry run unless applied."""

from __future__ import annotations

import fnmatch
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streams.errors import UserError
from streams.notify import consumer

log = logging.getLogger("exfilguard.respond")

# The IAM console's own name for this policy: a second revocation replaces the first, and
# teams (and the console) recognise it.
POLICY_NAME = "AWSRevokeOlderSessions"


def revoke_policy(issued_before: str) -> dict[str, Any]:
    """Deny everything to sessions whose token was issued before ``issued_before``."""
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Action": ["*"], "Resource": ["*"],
        "Condition": {"DateLessThan": {"aws:TokenIssueTime": issued_before}}}]}


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # wall clock: the time of acting


@dataclass
class Response:
    """What was done for one finding; written into the finding as additionalInfo.response."""

    action: str          # revoke-sessions | none
    role: str | None
    account: str
    applied: bool
    outcome: str         # applied | dry-run | refused | skipped | failed
    reason: str
    policy_name: str = POLICY_NAME
    token_issued_before: str | None = None

    def note(self) -> dict[str, Any]:
        return {"action": self.action, "role": self.role, "account": self.account,
                "policyName": self.policy_name if self.role else None,
                "tokenIssuedBefore": self.token_issued_before, "applied": self.applied,
                "outcome": self.outcome, "reason": self.reason}


def with_response(finding: dict[str, Any], response: Response) -> dict[str, Any]:
    """The finding with its response note in ``service.additionalInfo.response``."""
    noted = json.loads(json.dumps(finding))
    noted["service"].setdefault("additionalInfo", {})["response"] = response.note()
    return noted


IamFor = Callable[[str], Any]  # account id → an IAM client acting in it


class Responder:
    """Revokes the sessions of a finding's role when the role is allowed and ``apply`` is set;
    every decision is logged. ``iam_for`` gives an IAM client for the finding's account."""

    def __init__(self, iam_for: IamFor, allowed_roles: list[str], apply: bool = False,
                 now: Callable[[], str] = utc_now) -> None:
        self.iam_for, self.allowed, self.apply, self.now = iam_for, allowed_roles, apply, now

    def allows(self, role: str) -> bool:
        return any(fnmatch.fnmatchcase(role, pattern) for pattern in self.allowed)

    def respond(self, finding: dict[str, Any]) -> Response:
        account = finding["accountId"]
        role = finding["resource"]["accessKeyDetails"].get("userName")
        if finding["service"].get("archived"):
            return self._logged(finding, Response("none", role, account, False, "skipped",
                                                  "archived by a suppression rule"))
        if not role:
            return self._logged(finding, Response("none", None, account, False, "skipped",
                                                  "the finding names no role"))
        before = self.now()
        if not self.allows(role):
            return self._logged(finding, Response(
                "revoke-sessions", role, account, False, "refused",
                f"role {role} is not on the allow-list (--allow-role)", token_issued_before=before))
        if not self.apply:
            return self._logged(finding, Response(
                "revoke-sessions", role, account, False, "dry-run",
                "dry run: --apply puts the policy", token_issued_before=before))
        try:
            self.iam_for(account).put_role_policy(
                RoleName=role, PolicyName=POLICY_NAME,
                PolicyDocument=json.dumps(revoke_policy(before)))
        except Exception as exc:  # noqa: BLE001 - every failure is reported, none crashes
            return self._logged(finding, Response(
                "revoke-sessions", role, account, False, "failed", _reason(exc),
                token_issued_before=before))
        return self._logged(finding, Response(
            "revoke-sessions", role, account, True, "applied",
            f"sessions of role {role} issued before {before} denied", token_issued_before=before))

    def _logged(self, finding: dict[str, Any], response: Response) -> Response:
        log.warning("finding %s: %s %s role=%s account=%s: %s", finding["id"],
                    response.action, response.outcome, response.role, response.account,
                    response.reason)
        return response


def _reason(exc: Exception) -> str:
    error = getattr(exc, "response", {}).get("Error", {}) if hasattr(exc, "response") else {}
    if error:
        return f"iam PutRolePolicy: {error.get('Code')}: {error.get('Message')}"
    return f"iam PutRolePolicy: {exc}"


def carried_note(finding: dict[str, Any]) -> dict[str, Any] | None:
    """The response note a finding already carries (the worker writes it into later versions)."""
    return (finding["service"].get("additionalInfo") or {}).get("response")


class RespondNotifier:
    """``respond --from-topic``: a ``consumer.Notifier`` answering each finding id once; failed
    responses go to the dead letters with their reason, and every response note to ``emit``
    (the responses topic, which the worker writes back into the finding's versions).

    A version that carries an applied note is not answered again, whichever run applied it;
    a failed response is tried again only on a version with more calls than the one that
    failed, not on the worker's echo of the failed note."""

    name = "respond"

    def __init__(self, responder: Responder, dead: consumer.DeadLetters,
                 emit: Callable[[dict[str, Any]], None]) -> None:
        self.responder, self.dead, self.emit = responder, dead, emit
        self.answered: set[str] = set()
        self.failed_at: dict[str, int] = {}  # finding id → its count when the response failed
        self.outcomes: dict[str, int] = {}

    def deliver(self, findings: list[dict[str, Any]]) -> None:
        for finding in findings:
            finding_id, count = finding["id"], finding["service"]["count"]
            if finding_id in self.answered or (carried_note(finding) or {}).get("applied"):
                continue  # an update of a finding already answered: its sessions are revoked
            if count <= self.failed_at.get(finding_id, -1):
                continue  # the failed note coming back: no new call to answer
            response = self.responder.respond(finding)
            self.outcomes[response.outcome] = self.outcomes.get(response.outcome, 0) + 1
            self.emit(with_response(finding, response))
            if response.outcome == "failed":
                self.dead.send(finding, f"respond: {response.reason}")
                self.failed_at[finding_id] = count
            else:
                self.answered.add(finding_id)

    def close(self) -> str:
        return "responses: " + (", ".join(f"{n} {o}" for o, n in sorted(self.outcomes.items()))
                                or "none")


def find_finding(findings: list[dict[str, Any]], finding_id: str, where: str
                 ) -> dict[str, Any]:
    """The latest version of ``finding_id`` among ``findings`` (read order)."""
    found = [f for f in findings if f.get("id") == finding_id]
    if not found:
        raise UserError(f"finding {finding_id} is not in {where}; check the id (exfilguard "
                        "findings --summary lists them)")
    return found[-1]
