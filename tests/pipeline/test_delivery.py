"""Delivery against real loopback servers: an HTTP webhook and an SMTP server (both in threads)."""

from __future__ import annotations

import email
import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from features.base.errors import BadInputError
from models.warning.rules import load_rules, parse_rules
from pipeline.delivery import Channel, channels_of, deliver, load_ledger
from pipeline.settings import DeliveryParams

ROOT = Path(__file__).resolve().parents[2]

FAST = DeliveryParams(max_attempts=4, backoff_seconds=0.0, timeout_seconds=5.0, batch_size=2)


def alerts(n: int = 3, team: str = "call_centre") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "alert_id": [f"a{i}" for i in range(n)],
            "customer_id": [f"c{i}" for i in range(n)],
            "rules": "after_sales_csat_low",
            "level": "high",
            "owner_team": team,
            "triggered_at": pd.Timestamp("2024-06-20", tz="UTC"),
            "due_at": pd.Timestamp("2024-06-23", tz="UTC"),
            "evidence": "score=2",
            "churn_probability": [0.5, None, 0.25][:n] + [0.1] * max(0, n - 3),
        }
    )


# ---------------------------------------------------------------- a webhook receiver


class Receiver:
    """Records every request; fails the first `fail_first` with `status`; dedups by key."""

    def __init__(self, fail_first: int = 0, status: int = 503, process_failed: bool = False):
        self.fail_first = fail_first
        self.status = status
        self.process_failed = process_failed  # "answer lost": store, then answer an error
        self.requests: list[tuple[str, dict]] = []
        self.stored: dict[str, dict] = {}  # idempotency key -> body
        self.lock = threading.Lock()


@pytest.fixture
def webhook() -> Iterator[tuple[str, Receiver]]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            key = self.headers["Idempotency-Key"]
            with receiver.lock:
                receiver.requests.append((key, body))
                failing = len(receiver.requests) <= receiver.fail_first
                if not failing or receiver.process_failed:
                    receiver.stored.setdefault(key, body)
            self.send_response(receiver.status if failing else 200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", receiver
    server.shutdown()
    server.server_close()


RULES = [{"name": "r", "source": "responses", "condition": "score <= 5", "level": "high"}]


def channels(teams: object) -> dict[str, tuple[Channel, ...]]:
    """The channels of a rules file whose `teams:` is `teams`."""
    return channels_of(parse_rules({"teams": teams, "rules": RULES}, "alerts.yaml"))


def channels_with(channel: dict, team: str = "call_centre") -> dict[str, tuple[Channel, ...]]:
    return channels({team: {"channels": [{**channel, "enabled": True}]}})


# ---------------------------------------------------------------- channel config


def test_channels_are_parsed_per_team_disabled_by_default() -> None:
    got = channels(
        {
            "call_centre": {
                "channels": [
                    {"type": "webhook", "url": "https://hooks.example.com/a", "headers": {"X": 1}}
                ]
            },
            "account_manager": {
                "channels": [
                    {
                        "type": "email",
                        "enabled": True,
                        "host": "smtp.example.com",
                        "from": "alerts@example.com",
                        "to": "am@example.com",
                        "password_env": "SMTP_PASSWORD",
                    }
                ]
            },
            "sales": None,
        }
    )
    [hook], [mail] = got["call_centre"], got["account_manager"]
    assert not hook.enabled and hook.headers == (("X", "1"),)
    assert hook.channel_id == "webhook:https://hooks.example.com/a"
    assert mail.enabled and (mail.port, mail.recipients) == (25, ("am@example.com",))
    assert mail.channel_id == "email:smtp.example.com:25:am@example.com"
    assert mail.password_env == "SMTP_PASSWORD" and got["sales"] == ()


GOOD = {"type": "webhook", "url": "http://127.0.0.1:9/x"}
MAIL = {"type": "email", "host": "localhost", "from": "a@example.com", "to": ["b@example.com"]}


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ("webhook", "channels[1]: expected a channel mapping, found 'webhook'"),
        ({"type": "sms"}, "channels[1]: type must be webhook or email, found 'sms'"),
        ({**GOOD, "enabled": "yes"}, "channels[1]: enabled must be true/false, found 'yes'"),
        ({"type": "webhook", "url": "ftp://x"}, "channels[1]: a webhook needs url: http(s)://"),
        ({**GOOD, "secret": "s"}, "channels[1]: unknown key(s) ['secret']"),
        ({**GOOD, "headers": ["X: 1"]}, "channels[1]: headers must be a mapping"),
        ({**MAIL, "host": ""}, "channels[1]: an email channel needs host, found ''"),
        ({**MAIL, "to": []}, "channels[1]: an email channel needs to: [addresses], found []"),
        ({**MAIL, "from": "nobody"}, "channels[1]: an email channel needs from: an address"),
        ({**MAIL, "port": 0}, "channels[1].port: expected a whole number >= 1, found 0"),
    ],
)
def test_an_invalid_channel_is_bad_input_naming_file_team_and_entry(
    entry: object, words: str
) -> None:
    with pytest.raises(BadInputError) as info:  # exit code 2
        channels({"sales": {"channels": [GOOD, entry]}})
    assert str(info.value).startswith("alerts.yaml: teams.sales.channels[1]")
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        (["webhook"], "teams.sales: expected a mapping with 'channels:'"),
        ({"chanels": [GOOD]}, "teams.sales: unknown key(s) ['chanels']; allowed: ['channels']"),
        ({"channels": GOOD}, "teams.sales: channels must be a list"),
    ],
)
def test_an_invalid_team_entry_is_bad_input(settings: object, words: str) -> None:
    with pytest.raises(BadInputError, match="^alerts.yaml: ") as info:
        channels({"sales": settings})
    assert words in str(info.value)


def test_the_shipped_rules_file_enables_no_channel() -> None:
    shipped = channels_of(load_rules(ROOT / "alerts.yaml"))
    assert shipped and not any(c.enabled for chans in shipped.values() for c in chans)


def stored_ids(receiver: Receiver) -> list[str]:
    return sorted(a["alert_id"] for body in receiver.stored.values() for a in body["alerts"])


def test_webhook_retries_with_the_same_key_and_never_duplicates(
    webhook: tuple[str, Receiver], tmp_path: Path
) -> None:
    url, receiver = webhook
    receiver.fail_first, receiver.process_failed = 2, True  # answers lost twice
    ledger = tmp_path / "ledger.json"
    waits: list[float] = []
    settings = DeliveryParams(max_attempts=4, backoff_seconds=0.5, batch_size=10)
    [report] = deliver(
        alerts(),
        channels_with({"type": "webhook", "url": url}),
        ledger,
        settings,
        sleep=waits.append,
    )
    assert (report.delivered, report.pending, report.attempts) == (3, 0, 3)
    assert waits == [0.5, 1.0]  # exponential backoff between the attempts
    keys = {key for key, _ in receiver.requests}
    assert len(receiver.requests) == 3 and len(keys) == 1  # every retry: the same batch key
    assert stored_ids(receiver) == ["a0", "a1", "a2"]  # once each
    first = receiver.requests[0][1]
    assert first["alerts"][1]["churn_probability"] is None
    assert first["alerts"][0]["triggered_at"] == "2024-06-20T00:00:00+00:00"
    state = load_ledger(ledger)["alerts"]["a0"]["channels"][f"webhook:{url}"]
    assert state["status"] == "delivered" and state["attempts"] == 3


def test_a_second_run_does_not_send_again(webhook: tuple[str, Receiver], tmp_path: Path) -> None:
    url, receiver = webhook
    chans = channels_with({"type": "webhook", "url": url})
    ledger = tmp_path / "ledger.json"
    deliver(alerts(), chans, ledger, FAST, sleep=lambda s: None)
    assert len(receiver.requests) == 2  # batch_size 2: two batches
    [again] = deliver(alerts(), chans, ledger, FAST, sleep=lambda s: None)
    assert len(receiver.requests) == 2 and again.delivered == 0 and again.pending == 0
    [more] = deliver(alerts(4), chans, ledger, FAST, sleep=lambda s: None)  # one new alert
    assert more.delivered == 1 and stored_ids(receiver) == ["a0", "a1", "a2", "a3"]


def test_a_channel_that_is_down_keeps_alerts_for_the_next_run(
    webhook: tuple[str, Receiver], tmp_path: Path
) -> None:
    url, receiver = webhook
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    ledger = tmp_path / "ledger.json"
    [down] = deliver(
        alerts(),
        channels_with({"type": "webhook", "url": dead}),
        ledger,
        FAST,
        sleep=lambda s: None,
    )
    assert (down.delivered, down.pending, down.attempts) == (0, 3, 4)
    assert "unreachable" in (down.error or "")
    entries = load_ledger(ledger)["alerts"]
    assert sorted(entries) == ["a0", "a1", "a2"]
    # Next run: the channel is back (same team, now reachable) and the alerts have left the
    # alerts file's window: they are delivered from the ledger.
    chans = channels_with({"type": "webhook", "url": url})
    [up] = deliver(alerts(0), chans, ledger, FAST, sleep=lambda s: None)
    assert up.delivered == 3 and stored_ids(receiver) == ["a0", "a1", "a2"]


def test_a_client_error_is_not_retried(webhook: tuple[str, Receiver], tmp_path: Path) -> None:
    url, receiver = webhook
    receiver.fail_first, receiver.status = 99, 401
    [report] = deliver(
        alerts(1),
        channels_with({"type": "webhook", "url": url}),
        tmp_path / "ledger.json",
        FAST,
        sleep=lambda s: None,
    )
    assert report.attempts == 1 and report.pending == 1 and "HTTP 401" in report.error


def test_no_enabled_channel_sends_nothing_and_records_nothing(tmp_path: Path) -> None:
    chans = channels(
        {
            "sales": {
                "channels": [{"type": "webhook", "url": "http://127.0.0.1:9/x", "enabled": False}]
            }
        }
    )
    assert deliver(alerts(), chans, tmp_path / "ledger.json", FAST) == []
    assert not (tmp_path / "ledger.json").exists()


# ---------------------------------------------------------------- an SMTP server


class _SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) for smtplib: EHLO/HELO, MAIL, RCPT, DATA, QUIT."""

    def reply(self, line: str) -> None:
        self.wfile.write((line + "\r\n").encode())

    def handle(self) -> None:
        server: SMTPServer = self.server  # type: ignore[assignment]
        self.reply("220 localhost test SMTP")
        sender, rcpts = None, []
        while line := self.rfile.readline():
            command = line.decode().strip()
            verb = command.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250 localhost")
            elif verb == "MAIL":
                if server.refuse:
                    self.reply("421 try again later")
                    continue
                sender = command.split(":", 1)[1].strip()
                self.reply("250 OK")
            elif verb == "RCPT":
                rcpts.append(command.split(":", 1)[1].strip())
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 end with .")
                data = []
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                server.messages.append((sender, rcpts, b"".join(data)))
                self.reply("250 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 OK")


class SMTPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SMTPHandler)
        self.messages: list[tuple[str | None, list[str], bytes]] = []
        self.refuse = False


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    server = SMTPServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_email_is_sent_once_over_smtp(smtp: SMTPServer, tmp_path: Path) -> None:
    channel = {
        "type": "email",
        "host": "127.0.0.1",
        "port": smtp.server_address[1],
        "from": "alerts@example.com",
        "to": ["am@example.com", "lead@example.com"],
    }
    chans = channels_with(channel, team="account_manager")
    ledger = tmp_path / "ledger.json"
    settings = DeliveryParams(max_attempts=2, backoff_seconds=0.0, batch_size=100)
    [report] = deliver(alerts(team="account_manager"), chans, ledger, settings)
    assert report.delivered == 3 and len(smtp.messages) == 1
    sender, rcpts, raw = smtp.messages[0]
    assert sender == "<alerts@example.com>"
    assert rcpts == ["<am@example.com>", "<lead@example.com>"]
    message = email.message_from_bytes(raw, policy=policy.default)
    assert message["Subject"] == "[churn alerts] 3 new alert(s) for account_manager"
    assert message["Message-ID"].endswith("@churn-alerts>")
    body = message.get_body(("plain",)).get_content()
    assert "customer c1" in body and "after_sales_csat_low" in body
    attached = next(message.iter_attachments())
    assert [a["alert_id"] for a in json.loads(attached.get_content())] == ["a0", "a1", "a2"]
    deliver(alerts(team="account_manager"), chans, ledger, settings)
    assert len(smtp.messages) == 1  # already delivered


def test_email_refused_then_accepted(smtp: SMTPServer, tmp_path: Path) -> None:
    channel = {
        "type": "email",
        "host": "127.0.0.1",
        "port": smtp.server_address[1],
        "from": "alerts@example.com",
        "to": "support@example.com",
    }
    chans = channels_with(channel, team="support")
    ledger = tmp_path / "ledger.json"
    smtp.refuse = True
    settings = DeliveryParams(max_attempts=2, backoff_seconds=0.0, batch_size=100)
    [down] = deliver(alerts(team="support"), chans, ledger, settings)
    assert down.pending == 3 and down.attempts == 2 and "421" in (down.error or "")
    smtp.refuse = False
    [up] = deliver(alerts(0), chans, ledger, settings)
    assert up.delivered == 3 and len(smtp.messages) == 1


def test_the_ledger_forgets_only_old_alerts_that_left_the_file(
    webhook: tuple[str, Receiver], tmp_path: Path
) -> None:
    url, receiver = webhook
    chans = channels_with({"type": "webhook", "url": url})
    ledger = tmp_path / "ledger.json"
    sent = pd.Timestamp("2024-01-01", tz="UTC")
    deliver(alerts(), chans, ledger, FAST, sleep=lambda s: None, now=sent)
    later = sent + pd.Timedelta(days=FAST.retention_days + 1)
    # a0 is still in the current alerts file: kept (forgetting it would send it again)
    deliver(alerts(1), chans, ledger, FAST, sleep=lambda s: None, now=later)
    assert sorted(load_ledger(ledger)["alerts"]) == ["a0"]
    deliver(alerts(1), chans, ledger, FAST, sleep=lambda s: None, now=later)
    assert len(receiver.requests) == 2  # the first run's two batches only
