"""The `imglink` admin commands, through Flask's CLI runner, checked against the API."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import imglink.core.db
from conftest import auth
from imglink.core.models import MODELS, Account

KEY_PATTERN = re.compile(r"^[A-Za-z0-9_]{20,}$")

# Every app test runs on both deployments (conftest's `backend`). Matrices that exercise the
# HTTP layer rather than the database or the storage run on the embedded one only, to stay fast.
embedded_only = pytest.mark.parametrize("backend", ["embedded"], indirect=True)


def invoke(app, runner, *args):
    """Run a command as the real `imglink` CLI does: FlaskGroup pushes the app context."""
    with app.app_context():
        return runner.invoke(args=list(args))


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "no output"
    return lines[-1]


def create_account(app, runner, email: str, plan: str = "free") -> str:
    result = invoke(app, runner, "account", "create", email, "--plan", plan)
    assert result.exit_code == 0, result.output
    return last_line(result.output)


def plan_of(client, key: str) -> str:
    r = client.get("/api/v1/limits", headers=auth(key))
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.json["data"]["plan"]


def shown_prefix(line: str, key: str) -> str | None:
    """The token of a `key list` line that names `key` by a prefix, as printed."""
    for token in line.split():
        bare = token.rstrip("….")
        if len(bare) >= 8 and len(bare) < len(key) and key.startswith(bare):
            return token
    return None


def key_lines(result_output: str, keys: list[str]) -> dict[str, str]:
    lines = {}
    for key in keys:
        found = [line for line in result_output.splitlines() if shown_prefix(line, key)]
        assert len(found) == 1, (key[:8], result_output)
        lines[key] = found[0]
    return lines


def account_count(app) -> int:
    with app.app_context(), imglink.core.db.database.connection_context():
        return Account.select().count()


# account create ------------------------------------------------------------------------------

def test_account_create_prints_a_working_key_alone_on_the_last_line(app, runner, client):
    result = invoke(app, runner, "account", "create", "Alice@Example.com", "--plan", "pro")
    assert result.exit_code == 0, result.output
    key = last_line(result.output)
    assert KEY_PATTERN.match(key), key
    # Standard output carries the key alone, so `KEY=$(imglink account create ...)` works.
    assert result.stdout.strip() == key
    # The explanation goes to standard error.
    assert result.stderr.strip()
    assert key not in result.stderr

    assert plan_of(client, key) == "pro"
    r = client.get("/api/v1/limits", headers=auth(key))
    assert r.json["data"]["requests_per_hour"] == app.config["PLANS"]["pro"]["hourly"]


@embedded_only
def test_account_create_defaults_to_free(app, runner, client):
    key = create_account(app, runner, "default@example.com", plan="free")
    assert plan_of(client, key) == "free"
    result = invoke(app, runner, "account", "create", "noplan@example.com")
    assert result.exit_code == 0, result.output
    assert plan_of(client, last_line(result.output)) == "free"


@embedded_only
@pytest.mark.parametrize("plan", ["platinum", "anonymous", ""])
def test_account_create_unknown_plan_fails_clearly(app, runner, plan):
    result = invoke(app, runner, "account", "create", "bob@example.com", "--plan", plan)
    assert result.exit_code != 0
    out = result.output.lower()
    assert "plan" in out
    assert "pro" in out and "enterprise" in out  # it names the plans to choose from
    assert "traceback" not in out
    assert account_count(app) == 0


@embedded_only
@pytest.mark.parametrize("second", ["carol@example.com", "Carol@Example.COM",
                                    " carol@example.com "])
def test_account_create_duplicate_email_fails(app, runner, second):
    create_account(app, runner, "carol@example.com")
    result = invoke(app, runner, "account", "create", second, "--plan", "pro")
    assert result.exit_code != 0
    assert "exist" in result.output.lower() or "already" in result.output.lower()
    assert "traceback" not in result.output.lower()
    assert account_count(app) == 1


@embedded_only
def test_account_create_rejects_non_email(app, runner):
    result = invoke(app, runner, "account", "create", "not-an-email", "--plan", "free")
    assert result.exit_code != 0
    assert account_count(app) == 0


# account set-plan ----------------------------------------------------------------------------

def test_set_plan_takes_effect_on_the_next_request(app, runner, client):
    key = create_account(app, runner, "dave@example.com", "free")
    assert plan_of(client, key) == "free"

    result = invoke(app, runner, "account", "set-plan", "dave@example.com", "enterprise")
    assert result.exit_code == 0, result.output
    assert "enterprise" in result.output

    r = client.get("/api/v1/limits", headers=auth(key))
    assert r.json["data"]["plan"] == "enterprise"
    assert r.json["data"]["requests_per_hour"] is None
    assert r.json["data"]["max_file_size"] == app.config["PLANS"]["enterprise"]["max_file"]

    assert invoke(app, runner, "account", "set-plan", "DAVE@example.com", "pro").exit_code == 0
    assert plan_of(client, key) == "pro"


@embedded_only
def test_set_plan_unknown_account_fails(app, runner):
    result = invoke(app, runner, "account", "set-plan", "nobody@example.com", "pro")
    assert result.exit_code != 0
    assert "nobody@example.com" in result.output
    assert account_count(app) == 0


@embedded_only
def test_set_plan_unknown_plan_fails_and_keeps_the_plan(app, runner, client):
    key = create_account(app, runner, "erin@example.com", "pro")
    result = invoke(app, runner, "account", "set-plan", "erin@example.com", "gold")
    assert result.exit_code != 0
    assert "plan" in result.output.lower()
    assert plan_of(client, key) == "pro"


# keys ----------------------------------------------------------------------------------------

def test_key_create_gives_a_second_working_key(app, runner, client):
    first = create_account(app, runner, "frank@example.com", "pro")
    result = invoke(app, runner, "key", "create", "frank@example.com")
    assert result.exit_code == 0, result.output
    second = last_line(result.output)
    assert KEY_PATTERN.match(second)
    assert result.stdout.strip() == second
    assert second != first
    assert plan_of(client, first) == "pro"
    assert plan_of(client, second) == "pro"


@embedded_only
def test_key_create_unknown_account_fails(app, runner):
    result = invoke(app, runner, "key", "create", "ghost@example.com")
    assert result.exit_code != 0
    assert "ghost@example.com" in result.output


@embedded_only
def test_key_list_shows_prefixes_and_state_never_keys(app, runner):
    first = create_account(app, runner, "gina@example.com")
    second = last_line(invoke(app, runner, "key", "create", "gina@example.com").output)
    other = create_account(app, runner, "other@example.com")

    listing = invoke(app, runner, "key", "list", "gina@example.com")
    assert listing.exit_code == 0, listing.output
    for secret in (first, second, other):
        assert secret not in listing.output
    assert shown_prefix(listing.output.replace("\n", " "), other) is None  # only gina's keys
    lines = key_lines(listing.output, [first, second])
    assert all("active" in line and "revoked" not in line for line in lines.values())

    prefix = shown_prefix(lines[first], first)
    assert invoke(app, runner, "key", "revoke", prefix).exit_code == 0

    listing = invoke(app, runner, "key", "list", "gina@example.com")
    assert first not in listing.output and second not in listing.output
    lines = key_lines(listing.output, [first, second])
    assert "revoked" in lines[first]
    assert "active" in lines[second] and "revoked" not in lines[second]


@embedded_only
def test_key_list_unknown_account_fails(app, runner):
    assert invoke(app, runner, "key", "list", "ghost@example.com").exit_code != 0


def test_key_revoke_takes_effect_at_once_and_spares_other_keys(app, runner, client):
    first = create_account(app, runner, "hank@example.com", "pro")
    second = last_line(invoke(app, runner, "key", "create", "hank@example.com").output)
    assert plan_of(client, first) == "pro"  # used once before the revocation

    listing = invoke(app, runner, "key", "list", "hank@example.com").output
    prefix = shown_prefix(key_lines(listing, [first])[first], first)
    result = invoke(app, runner, "key", "revoke", prefix)
    assert result.exit_code == 0, result.output
    assert first not in result.output

    r = client.get("/api/v1/limits", headers=auth(first))
    assert r.status_code == 401
    assert r.json["error"]["code"] == "UNAUTHORIZED"
    assert plan_of(client, second) == "pro"

    # Revoking again is harmless and the key stays revoked.
    assert invoke(app, runner, "key", "revoke", prefix).exit_code == 0
    assert client.get("/api/v1/limits", headers=auth(first)).status_code == 401


@embedded_only
@pytest.mark.parametrize("prefix", ["ilk_nothere", "ilk_00000000", "zzzzzzzzzzzz", "ilk_"])
def test_key_revoke_unknown_prefix_fails(app, runner, client, prefix):
    key = create_account(app, runner, "ivan@example.com")
    result = invoke(app, runner, "key", "revoke", prefix)
    assert result.exit_code != 0
    assert "traceback" not in result.output.lower()
    assert plan_of(client, key) == "free"


@embedded_only
def test_key_revoke_refuses_a_too_short_prefix(app, runner, client):
    key = create_account(app, runner, "jane@example.com")
    result = invoke(app, runner, "key", "revoke", key[:5])
    assert result.exit_code != 0
    assert plan_of(client, key) == "free"


def test_keys_are_stored_only_as_hashes(app, runner, client):
    keys = [create_account(app, runner, "kim@example.com", "pro")]
    keys.append(last_line(invoke(app, runner, "key", "create", "kim@example.com").output))
    for key in keys:
        assert plan_of(client, key) == "pro"  # used, so last_used is written too

    # Every column of every table, whatever the database.
    with app.app_context(), imglink.core.db.database.connection_context():
        cells = [str(value) for model in MODELS
                 for row in model.select().tuples() for value in row]
    assert "kim@example.com" in cells  # we are reading the right database
    for key in keys:
        assert not [cell for cell in cells if key in cell or key[-16:] in cell]

    if imglink.core.db.is_sqlite():
        # And nowhere in the file, free pages and write-ahead log included.
        data_dir = Path(app.config["DATA_DIR"])
        files = [p for p in (data_dir / "imglink.db", data_dir / "imglink.db-wal") if p.exists()]
        content = b"".join(p.read_bytes() for p in files)
        assert b"kim@example.com" in content
        for key in keys:
            assert key.encode() not in content
            assert key[-16:].encode() not in content  # not even the secret tail


# purge-expired -------------------------------------------------------------------------------

@embedded_only
def test_purge_expired_with_nothing_to_purge_prints_zero(app, runner):
    result = invoke(app, runner, "purge-expired")
    assert result.exit_code == 0, result.output
    assert re.search(r"\b0\b", result.output), result.output
    assert not re.search(r"\b[1-9]\d*\b", result.output)
