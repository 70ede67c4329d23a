"""Alert delivery: webhook (HTTP POST of a JSON batch) and e-mail (SMTP) per owner team.

The channels are configured in the rules file under `teams.<team>.channels` (format: the header
of alerts.yaml) and parsed here (`channels_of`); the rules code keeps them unparsed and uses
only the team names (routing).

Guarantees:
- Retry with exponential backoff (`backoff_seconds * 2**k`) on network errors, timeouts, HTTP
  408/429/5xx and SMTP errors; other HTTP 4xx answers are configuration errors and not retried.
- Never duplicated by a retry: every attempt of a batch sends the same body and the same
  `Idempotency-Key` header (the batch id, a hash of the channel and the alert ids), and every
  alert carries its deterministic `alert_id`, so a receiver that saw a request whose answer got
  lost can recognise the retry. For e-mail the Message-ID is derived from the batch id.
- Delivered once, never lost: a ledger (JSON, `alert.ledger`) records per alert and channel
  whether it was delivered. An alert is sent only while it is pending; one whose channel is down
  stays pending, with its payload, and is retried on the next run even after it has left the
  alerts file's window. The ledger is written atomically after every batch.

Where the ledger lives: DVC deletes a stage's outputs before it runs the stage, which would
forget what was delivered and send everything again. The ledger is therefore declared in
dvc.yaml as an output of the `alert` stage with `persist: true` (kept across runs) and
`cache: false` (it is state, not a reproducible artefact, so it must not be restored from the
cache to an older version by `dvc checkout`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import smtplib
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from features.base.errors import BadInputError
from features.base.io import write_json
from models.warning.rules import RulesFile, need, unknown_keys, whole_number
from pipeline.settings import DeliveryParams

log = logging.getLogger(__name__)

LEDGER_VERSION = 1
RETRY_HTTP_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class DeliveryError(RuntimeError):
    """One attempt failed; `retryable` says whether another attempt may succeed."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class ChannelReport:
    """What one run did on one channel."""

    team: str
    channel: str
    delivered: int
    pending: int
    attempts: int
    error: str | None = None


# ---------------------------------------------------------------- channel config


@dataclass(frozen=True)
class Channel:
    """A delivery channel of an owner team: an HTTP webhook or an e-mail (SMTP) address list."""

    kind: Literal["webhook", "email"]
    enabled: bool = False
    url: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    host: str | None = None
    port: int = 25
    sender: str | None = None
    recipients: tuple[str, ...] = ()
    starttls: bool = False
    username: str | None = None
    password_env: str | None = None  # name of the environment variable holding the password

    @property
    def channel_id(self) -> str:
        """A stable name for the ledger: kind and target."""
        if self.kind == "webhook":
            return f"webhook:{self.url}"
        return f"email:{self.host}:{self.port}:{','.join(self.recipients)}"


def parse_channel(data: Any, where: str) -> Channel:
    """One entry of a team's `channels:` list; RuleError (bad input) naming `where` if invalid."""
    need(isinstance(data, dict), where, f"expected a channel mapping, found {data!r}")
    kind = data.get("type")
    need(kind in ("webhook", "email"), where, f"type must be webhook or email, found {kind!r}")
    enabled = data.get("enabled", False)
    need(isinstance(enabled, bool), where, f"enabled must be true/false, found {enabled!r}")
    if kind == "webhook":
        unknown_keys(data, {"type", "enabled", "url", "headers"}, where)
        url = data.get("url")
        need(
            isinstance(url, str) and url.startswith(("http://", "https://")),
            where,
            f"a webhook needs url: http(s)://..., found {url!r}",
        )
        headers = data.get("headers") or {}
        need(isinstance(headers, dict), where, "headers must be a mapping")
        return Channel(
            "webhook", enabled, url=url, headers=tuple((str(k), str(v)) for k, v in headers.items())
        )
    unknown_keys(
        data,
        {"type", "enabled", "host", "port", "from", "to", "starttls", "username", "password_env"},
        where,
    )
    host, to = data.get("host"), data.get("to")
    to = [to] if isinstance(to, str) else to
    need(isinstance(host, str) and host, where, f"an email channel needs host, found {host!r}")
    need(
        isinstance(to, list) and to and all(isinstance(t, str) for t in to),
        where,
        f"an email channel needs to: [addresses], found {to!r}",
    )
    sender = data.get("from")
    need(
        isinstance(sender, str) and "@" in sender,
        where,
        f"an email channel needs from: an address, found {sender!r}",
    )
    return Channel(
        "email",
        enabled,
        host=host,
        port=whole_number(data.get("port", 25), f"{where}.port", 1),
        sender=sender,
        recipients=tuple(to),
        starttls=bool(data.get("starttls", False)),
        username=data.get("username"),
        password_env=data.get("password_env"),
    )


def channels_of(rules_file: RulesFile) -> dict[str, tuple[Channel, ...]]:
    """Each declared team's channels (`teams.<team>.channels` of the rules file), validated."""
    channels: dict[str, tuple[Channel, ...]] = {}
    for team, settings in rules_file.teams.items():
        at = f"{rules_file.path}: teams.{team}"
        settings = settings or {}
        need(isinstance(settings, dict), at, "expected a mapping with 'channels:'")
        unknown_keys(settings, {"channels"}, at)
        items = settings.get("channels") or []
        need(isinstance(items, list), at, "channels must be a list")
        channels[team] = tuple(parse_channel(c, f"{at}.channels[{i}]") for i, c in enumerate(items))
    return channels


# ---------------------------------------------------------------- payloads


def alert_payload(row: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-ready alert: timestamps as ISO text, missing values as null."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value is None or (not isinstance(value, str | list) and pd.isna(value)):
            out[key] = None
        elif isinstance(value, pd.Timestamp):
            out[key] = value.isoformat()
        elif hasattr(value, "item"):  # numpy scalar
            out[key] = value.item()
        else:
            out[key] = value
    return out


def batch_id(channel_id: str, alert_ids: Iterable[str]) -> str:
    """The idempotency key of a batch: the same channel and alerts give the same key."""
    text = channel_id + "|" + ",".join(sorted(alert_ids))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def webhook_body(team: str, key: str, alerts: list[dict[str, Any]]) -> bytes:
    """The JSON body POSTed to a webhook; identical for every attempt of a batch."""
    body = {"batch_id": key, "team": team, "count": len(alerts), "alerts": alerts}
    return json.dumps(body, sort_keys=True).encode("utf-8")


# ---------------------------------------------------------------- senders


def send_webhook(
    channel: Channel, team: str, key: str, alerts: list[dict[str, Any]], timeout: float
) -> None:
    """One POST; raise DeliveryError when it did not get a 2xx answer."""
    assert channel.url is not None
    headers = {"Content-Type": "application/json", "Idempotency-Key": key, **dict(channel.headers)}
    request = urllib.request.Request(
        channel.url, data=webhook_body(team, key, alerts), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http(s) only)
            response.read()
    except urllib.error.HTTPError as exc:
        raise DeliveryError(
            f"HTTP {exc.code} from {channel.url}", retryable=exc.code in RETRY_HTTP_STATUS
        ) from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise DeliveryError(f"{channel.url} unreachable: {exc}") from exc


def email_message(
    channel: Channel, team: str, key: str, alerts: list[dict[str, Any]]
) -> EmailMessage:
    """A plain-text summary with the alerts attached as JSON; Message-ID from the batch id."""
    msg = EmailMessage()
    msg["Subject"] = f"[churn alerts] {len(alerts)} new alert(s) for {team}"
    msg["From"] = channel.sender or ""
    msg["To"] = ", ".join(channel.recipients)
    msg["Message-ID"] = f"<{key}@churn-alerts>"
    lines = [f"{len(alerts)} alert(s) for team {team}:", ""]
    for a in alerts:
        lines.append(
            f"- [{a.get('level')}] {a.get('rules')} customer {a.get('customer_id')}, "
            f"due {a.get('due_at')}: {a.get('evidence')}"
        )
    msg.set_content("\n".join(lines) + "\n")
    msg.add_attachment(
        json.dumps(alerts, indent=2, sort_keys=True).encode("utf-8"),
        maintype="application",
        subtype="json",
        filename="alerts.json",
    )
    return msg


def send_email(
    channel: Channel, team: str, key: str, alerts: list[dict[str, Any]], timeout: float
) -> None:
    """One SMTP session; raise DeliveryError when the server did not accept the message."""
    assert channel.host is not None
    try:
        with smtplib.SMTP(channel.host, channel.port, timeout=timeout) as smtp:
            if channel.starttls:
                smtp.starttls()
            if channel.username:
                password = os.environ.get(channel.password_env or "", "")
                smtp.login(channel.username, password)
            smtp.send_message(email_message(channel, team, key, alerts))
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(
            f"SMTP {exc.smtp_code} from {channel.host}", retryable=400 <= exc.smtp_code < 500
        ) from exc  # 4xx: transient
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"SMTP {channel.host}:{channel.port} failed: {exc}") from exc


Sender = Callable[[Channel, str, str, list[dict[str, Any]], float], None]
SENDERS: dict[str, Sender] = {"webhook": send_webhook, "email": send_email}


def send_with_retry(
    channel: Channel,
    team: str,
    key: str,
    alerts: list[dict[str, Any]],
    settings: DeliveryParams,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[bool, int, str | None]:
    """Send one batch, retrying with backoff; return (delivered, attempts, last error)."""
    error: str | None = None
    for attempt in range(1, settings.max_attempts + 1):
        try:
            SENDERS[channel.kind](channel, team, key, alerts, settings.timeout_seconds)
            return True, attempt, None
        except DeliveryError as exc:
            error = str(exc)
            log.warning(
                "delivery %s attempt %d/%d: %s",
                channel.channel_id,
                attempt,
                settings.max_attempts,
                error,
            )
            if not exc.retryable:
                return False, attempt, error
            if attempt < settings.max_attempts:
                sleep(settings.backoff_seconds * 2 ** (attempt - 1))
    return False, settings.max_attempts, error


# ---------------------------------------------------------------- ledger


def load_ledger(path: Path | str) -> dict[str, Any]:
    """The ledger, or an empty one; a corrupt ledger is an error (it would resend everything)."""
    path = Path(path)
    if not path.exists():
        return {"version": LEDGER_VERSION, "alerts": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BadInputError(
            f"{path}: delivery ledger is not valid JSON ({exc}). Restore it, or delete it to "
            "send every alert in the current alerts file again."
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("alerts"), dict):
        raise BadInputError(f"{path}: not a delivery ledger (expected {{'alerts': {{...}}}})")
    return data


def deliver(
    alerts: pd.DataFrame,
    channels: Mapping[str, Sequence[Channel]],
    ledger_path: Path | str,
    settings: DeliveryParams | None = None,
    sleep: Callable[[float], None] = time.sleep,
    now: pd.Timestamp | None = None,
) -> list[ChannelReport]:
    """Send every pending alert to its owner team's enabled channels; update the ledger.

    `channels` is team -> channels (`channels_of`). Alerts of teams without an enabled channel are
    not recorded (nothing to deliver).
    """
    settings = settings or DeliveryParams()
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    enabled = {team: [c for c in chans if c.enabled] for team, chans in channels.items()}
    enabled = {team: chans for team, chans in enabled.items() if chans}
    if not enabled:
        log.info("delivery: no channel enabled in the rules file; alerts are in the files only")
        return []
    ledger = load_ledger(ledger_path)
    entries: dict[str, Any] = ledger["alerts"]
    for row in alerts.to_dict("records"):
        team = row["owner_team"]
        if team in enabled and row["alert_id"] not in entries:
            entries[row["alert_id"]] = {"team": team, "alert": alert_payload(row), "channels": {}}
    reports = []
    for team, channels in sorted(enabled.items()):
        for channel in channels:
            reports.append(
                _deliver_channel(team, channel, ledger, ledger_path, settings, sleep, now)
            )
    _forget_old(
        ledger, set(alerts["alert_id"]) if len(alerts) else set(), now, settings.retention_days
    )
    write_json(ledger_path, ledger)
    return reports


def _deliver_channel(
    team: str,
    channel: Channel,
    ledger: dict[str, Any],
    ledger_path: Path | str,
    settings: DeliveryParams,
    sleep: Callable[[float], None],
    now: pd.Timestamp,
) -> ChannelReport:
    cid = channel.channel_id
    entries = ledger["alerts"]
    pending = sorted(
        aid
        for aid, e in entries.items()
        if e["team"] == team and e["channels"].get(cid, {}).get("status") != "delivered"
    )
    delivered = attempts_total = 0
    error = None
    for start in range(0, len(pending), settings.batch_size):
        ids = pending[start : start + settings.batch_size]
        key = batch_id(cid, ids)
        batch = [entries[aid]["alert"] for aid in ids]
        ok, attempts, error = send_with_retry(channel, team, key, batch, settings, sleep)
        attempts_total += attempts
        for aid in ids:
            state = entries[aid]["channels"].setdefault(cid, {"attempts": 0})
            state["attempts"] = state.get("attempts", 0) + attempts
            if ok:
                state.update(
                    status="delivered", delivered_at=now.isoformat(), batch_id=key, last_error=None
                )
            else:
                state.update(status="pending", last_error=error)
        write_json(ledger_path, ledger)  # progress survives a crash in a later batch
        if ok:
            delivered += len(ids)
        else:
            log.error(
                "delivery to %s (%s) failed after %d attempt(s): %s; %d alert(s) stay "
                "pending for the next run",
                team,
                cid,
                attempts,
                error,
                len(pending) - start,
            )
            break  # the channel is down: keep the rest for the next run
    report = ChannelReport(team, cid, delivered, len(pending) - delivered, attempts_total, error)
    log.info(
        "delivery %s -> %s: %d delivered, %d pending", team, cid, report.delivered, report.pending
    )
    return report


def _forget_old(
    ledger: dict[str, Any],
    current: set[str],
    now: pd.Timestamp,
    retention_days: int,
) -> None:
    """Drop entries delivered on every channel more than retention ago and no longer current.

    An alert still in the current alerts file is kept whatever its age: forgetting it would
    send it again on the next run.
    """
    limit = now - pd.Timedelta(days=retention_days)
    for aid in list(ledger["alerts"]):
        if aid in current:
            continue
        states = ledger["alerts"][aid]["channels"].values()
        if states and all(
            s.get("status") == "delivered" and pd.Timestamp(s["delivered_at"]) < limit
            for s in states
        ):
            del ledger["alerts"][aid]
