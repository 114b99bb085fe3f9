"""Tests of the pgmq manager, ``singularity.models.Queue.objects`` (``PgmqManager``).

Most tests run inside pytest-django's per-test transaction, so the queue each test creates is
rolled back with it. Tests that must see committed state from another connection use
``transaction=True`` and drop their queue at the end.
"""
import re
import threading
import time
import uuid
from datetime import timedelta

import psycopg
import pytest
from django.db import connection, transaction

from singularity.messaging.pgmq import Message, QueueMetrics, QueueNotFound
from singularity.messaging.queues import MAX_QUEUE_NAME_LENGTH, PROJECT_QUEUES, QueueNameError

pytestmark = pytest.mark.django_db


def _unique_name(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def _server_connection() -> psycopg.Connection:
    """A psycopg connection of its own to the test database, outside Django's transaction."""
    settings = connection.settings_dict
    return psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"] or None,
        password=settings["PASSWORD"] or None,
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        autocommit=True,
    )


@pytest.fixture
def queue(queues):
    """A fresh queue, created with notifications on and dropped afterwards."""
    name = _unique_name()
    queues.create(name)
    yield name
    if connection.connection is not None and not connection.needs_rollback:
        try:
            queues.drop(name)
        except Exception:
            pass  # The test's transaction is aborted; its rollback removes the queue.


def _now():
    """The server's clock (not the transaction's start time)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


def _table_ids(table: str) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT msg_id FROM pgmq."{table}" ORDER BY msg_id')
        return [row[0] for row in cursor.fetchall()]


# --- queues ---------------------------------------------------------------------------------


def test_create_makes_the_queue_and_enables_insert_notifications(queues):
    name = _unique_name()
    assert not queues.exists(name)
    queues.create(name)
    assert queues.exists(name)
    assert name in queues.queue_names()
    assert queues.notify_enabled(name)
    with connection.cursor() as cursor:
        cursor.execute("SELECT throttle_interval_ms FROM pgmq.notify_insert_throttle WHERE queue_name = %s", [name])
        assert cursor.fetchone() == (0,)
        cursor.execute(
            "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pgmq' AND c.relname = %s",
            [f"q_{name}"],
        )
        assert cursor.fetchone()[0] == 1


def test_create_twice_is_a_no_op(queues):
    name = _unique_name()
    queues.create(name)
    msg_id = queues.send(name, {"kept": True})
    queues.create(name)
    assert queues.exists(name)
    assert queues.notify_enabled(name)
    assert [m.msg_id for m in queues.read(name)] == [msg_id]


def test_create_without_notify(queues):
    name = _unique_name()
    queues.create(name, notify=False)
    assert queues.exists(name)
    assert not queues.notify_enabled(name)


@pytest.mark.django_db(transaction=True)
def test_committed_send_notifies_the_insert_channel(queues):
    name = _unique_name()
    queues.create(name)
    try:
        with _server_connection() as listener:
            listener.execute(f'LISTEN "{queues.insert_channel(name)}"')
            queues.send(name, {"wake": "up"})
            notices = list(listener.notifies(timeout=5, stop_after=1))
        assert [n.channel for n in notices] == [queues.insert_channel(name)]
    finally:
        queues.drop(name)


def test_drop_existing_queue(queues, queue):
    queues.send(queue, {"a": 1})
    assert queues.drop(queue) is True
    assert not queues.exists(queue)
    assert queue not in queues.queue_names()
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s), to_regclass(%s)", [f"pgmq.q_{queue}", f"pgmq.a_{queue}"])
        assert cursor.fetchone() == (None, None)


def test_drop_missing_queue_returns_false(queues):
    assert queues.drop(_unique_name("missing")) is False


def test_exists(queues, queue):
    assert queues.exists(queue) is True
    assert queues.exists(_unique_name("missing")) is False


def test_queue_names_lists_project_queues_and_new_ones_sorted(queues):
    first, second = "zz_" + uuid.uuid4().hex[:8], "aa_" + uuid.uuid4().hex[:8]
    queues.create(first)
    queues.create(second)
    names = queues.queue_names()
    assert names == sorted(names)
    assert {first, second, *PROJECT_QUEUES} <= set(names)


# --- producing --------------------------------------------------------------------------------


def test_send_returns_increasing_ids_and_read_returns_the_message(queues, queue):
    first = queues.send(queue, {"n": 1})
    second = queues.send(queue, {"n": 2})
    assert isinstance(first, int) and second > first
    messages = queues.read(queue, qty=10)
    assert [(m.msg_id, m.body) for m in messages] == [(first, {"n": 1}), (second, {"n": 2})]
    assert all(isinstance(m, Message) and m.queue == queue and m.headers is None for m in messages)


def test_send_with_delay_hides_the_message_until_the_delay_passes(queues, queue):
    before = _now()
    msg_id = queues.send(queue, {"later": True}, delay=1.5)
    assert queues.read(queue) == []
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT vt FROM pgmq."q_{queue}" WHERE msg_id = %s', [msg_id])
        vt = cursor.fetchone()[0]
    assert before + timedelta(seconds=1.5) <= vt <= _now() + timedelta(seconds=1.5)
    remaining = queues.seconds_until_next_visible(queue)
    assert 0 < remaining <= 1.5
    time.sleep(remaining + 0.1)
    messages = queues.read(queue)
    assert [m.msg_id for m in messages] == [msg_id]


def test_send_with_headers(queues, queue):
    headers = {"trace_id": "abc-123", "attempt": 2, "tags": ["x", "y"]}
    msg_id = queues.send(queue, {"body": 1}, headers=headers)
    [message] = queues.read(queue)
    assert message.msg_id == msg_id
    assert message.headers == headers
    assert message.body == {"body": 1}


def test_send_batch_returns_ids_in_order(queues, queue):
    bodies = [{"i": i} for i in range(5)]
    ids = queues.send_batch(queue, bodies)
    assert len(ids) == 5
    assert ids == sorted(ids)
    messages = queues.read(queue, qty=10)
    assert [(m.msg_id, m.body) for m in messages] == list(zip(ids, bodies))


def test_send_batch_with_delay_hides_the_messages(queues, queue):
    ids = queues.send_batch(queue, [{"i": 1}, {"i": 2}], delay=30)
    assert len(ids) == 2
    assert queues.read(queue, qty=10) == []
    assert 29 < queues.seconds_until_next_visible(queue) <= 30


def test_send_batch_of_nothing_runs_no_sql(queues, queue, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert queues.send_batch(queue, []) == []


@pytest.mark.parametrize(
    "body",
    [
        {"quote": "it's \"quoted\"", "sql": "x'); DROP TABLE pgmq.meta; --", "backslash": "a\\b"},
        {"unicode": "héllo wörld ✓ 日本語 🚀", "rtl": "שלום"},
        {"nested": {"list": [1, 2.5, None, True, {"deep": ["a", {"deeper": []}]}]}, "empty": {}},
        ["a", "list", "body"],
        "a plain string with 'quotes'",
        '{"looks": "like json"}',
        42,
        None,
        True,
    ],
    ids=["quotes", "unicode", "nested", "list", "string", "json-text", "number", "null", "bool"],
)
def test_bodies_round_trip_unchanged(queues, queue, body):
    msg_id = queues.send(queue, body, headers={"h": "it's ✓"})
    [message] = queues.read(queue)
    assert message.msg_id == msg_id
    assert message.body == body
    assert message.headers == {"h": "it's ✓"}


def test_batch_bodies_round_trip_unchanged(queues, queue):
    bodies = [{"q": "it's"}, {"u": "✓ 日本"}, {"n": {"m": [1, {"o": None}]}}, "text", ["x"]]
    queues.send_batch(queue, bodies)
    assert [m.body for m in queues.read(queue, qty=10)] == bodies


# --- consuming --------------------------------------------------------------------------------


def test_read_hides_the_message_for_vt_seconds(queues, queue):
    msg_id = queues.send(queue, {"a": 1})
    before = _now()
    [message] = queues.read(queue, vt=30)
    assert message.msg_id == msg_id
    assert message.read_ct == 1
    assert before + timedelta(seconds=30) <= message.vt <= _now() + timedelta(seconds=30)
    assert queues.read(queue) == []
    assert 29 < queues.seconds_until_next_visible(queue) <= 30


def test_read_with_vt_zero_leaves_the_message_visible_and_counts_reads(queues, queue):
    queues.send(queue, {"a": 1})
    counts = [queues.read(queue, vt=0)[0].read_ct for _ in range(3)]
    assert counts == [1, 2, 3]


def test_read_ct_increments_each_time_the_vt_expires(queues, queue):
    queues.send(queue, {"a": 1})
    assert queues.read(queue, vt=1)[0].read_ct == 1
    assert queues.read(queue, vt=1) == []
    time.sleep(1.1)
    assert queues.read(queue, vt=1)[0].read_ct == 2


def test_read_qty_limits_the_count(queues, queue):
    ids = queues.send_batch(queue, [{"i": i} for i in range(5)])
    first = queues.read(queue, qty=2)
    assert [m.msg_id for m in first] == ids[:2]
    rest = queues.read(queue, qty=10)
    assert [m.msg_id for m in rest] == ids[2:]
    assert queues.read(queue, qty=10) == []


def test_read_from_an_empty_queue(queues, queue):
    assert queues.read(queue) == []


def test_read_with_poll_returns_a_message_sent_before(queues, queue):
    msg_id = queues.send(queue, {"ready": True})
    started = time.monotonic()
    messages = queues.read_with_poll(queue, vt=30, max_poll_seconds=1)
    assert [m.msg_id for m in messages] == [msg_id]
    assert messages[0].body == {"ready": True}
    assert time.monotonic() - started < 0.9


def test_read_with_poll_returns_nothing_after_max_poll_seconds(queues, queue):
    started = time.monotonic()
    assert queues.read_with_poll(queue, max_poll_seconds=1, poll_interval_ms=50) == []
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 3


@pytest.mark.django_db(transaction=True)
def test_read_with_poll_wakes_for_a_message_sent_while_it_waits(queues):
    name = _unique_name()
    queues.create(name)
    try:

        def send_later():
            time.sleep(0.3)
            with _server_connection() as other:
                other.execute("SELECT pgmq.send(%s, %s::jsonb)", [name, '{"late": true}'])

        sender = threading.Thread(target=send_later)
        sender.start()
        started = time.monotonic()
        messages = queues.read_with_poll(name, max_poll_seconds=5, poll_interval_ms=20)
        sender.join()
        assert [m.body for m in messages] == [{"late": True}]
        assert time.monotonic() - started < 4
    finally:
        queues.drop(name)


def test_pop_reads_and_deletes(queues, queue):
    ids = queues.send_batch(queue, [{"i": 1}, {"i": 2}, {"i": 3}])
    popped = queues.pop(queue)
    assert [(m.msg_id, m.body) for m in popped] == [(ids[0], {"i": 1})]
    assert _table_ids(f"q_{queue}") == ids[1:]
    assert [m.msg_id for m in queues.pop(queue, qty=5)] == ids[1:]
    assert queues.pop(queue) == []
    assert _table_ids(f"a_{queue}") == []


def test_pop_skips_hidden_messages(queues, queue):
    queues.send(queue, {"hidden": True}, delay=30)
    assert queues.pop(queue) == []


def test_archive_moves_the_message_to_the_archive_table(queues, queue):
    msg_id = queues.send(queue, {"keep": "me"})
    other = queues.send(queue, {"stay": True})
    assert queues.archive(queue, msg_id) is True
    assert _table_ids(f"q_{queue}") == [other]
    assert _table_ids(f"a_{queue}") == [msg_id]
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT message FROM pgmq."a_{queue}" WHERE msg_id = %s', [msg_id])
        assert cursor.fetchone()[0] in ('{"keep": "me"}', {"keep": "me"})
    assert queues.archive(queue, msg_id) is False
    assert queues.archive(queue, 999_999) is False


def test_archive_batch(queues, queue):
    ids = queues.send_batch(queue, [{"i": i} for i in range(4)])
    archived = queues.archive_batch(queue, [ids[0], ids[2], 999_999])
    assert sorted(archived) == [ids[0], ids[2]]
    assert _table_ids(f"q_{queue}") == [ids[1], ids[3]]
    assert _table_ids(f"a_{queue}") == [ids[0], ids[2]]
    assert queues.archive_batch(queue, []) == []
    assert queues.archive_batch(queue, iter([ids[1]])) == [ids[1]]


def test_delete(queues, queue):
    msg_id = queues.send(queue, {"a": 1})
    assert queues.delete(queue, msg_id) is True
    assert queues.delete(queue, msg_id) is False
    assert _table_ids(f"q_{queue}") == []
    assert _table_ids(f"a_{queue}") == []


def test_delete_batch(queues, queue):
    ids = queues.send_batch(queue, [{"i": i} for i in range(3)])
    assert sorted(queues.delete_batch(queue, [ids[0], ids[1], 999_999])) == ids[:2]
    assert _table_ids(f"q_{queue}") == [ids[2]]
    assert queues.delete_batch(queue, []) == []
    assert _table_ids(f"a_{queue}") == []


def test_set_vt_makes_a_hidden_message_visible(queues, queue):
    msg_id = queues.send(queue, {"a": 1})
    queues.read(queue, vt=60)
    assert queues.read(queue) == []
    message = queues.set_vt(queue, msg_id, 0)
    assert isinstance(message, Message)
    assert message.msg_id == msg_id and message.body == {"a": 1} and message.read_ct == 1
    assert message.vt <= _now()
    [again] = queues.read(queue)
    assert again.msg_id == msg_id and again.read_ct == 2


def test_set_vt_hides_a_visible_message(queues, queue):
    msg_id = queues.send(queue, {"a": 1})
    before = _now()
    message = queues.set_vt(queue, msg_id, 45)
    assert before + timedelta(seconds=45) <= message.vt <= _now() + timedelta(seconds=45)
    assert queues.read(queue) == []


def test_set_vt_returns_none_for_a_missing_message(queues, queue):
    assert queues.set_vt(queue, 999_999, 0) is None


def test_metrics_of_an_empty_queue(queues, queue):
    metrics = queues.metrics(queue)
    assert isinstance(metrics, QueueMetrics)
    assert metrics.queue_name == queue
    assert (metrics.queue_length, metrics.visible_length, metrics.total_messages) == (0, 0, 0)
    assert metrics.newest_msg_age_sec is None and metrics.oldest_msg_age_sec is None


@pytest.mark.django_db(transaction=True)
def test_metrics_and_metrics_all(queues):
    # transaction=True: pgmq compares vt with now(), which inside the test's transaction is its start.
    name = _unique_name()
    queues.create(name)
    try:
        ids = queues.send_batch(name, [{"i": i} for i in range(3)])
        queues.send(name, {"later": True}, delay=60)
        queues.delete(name, ids[0])
        metrics = queues.metrics(name)
        assert metrics.queue_name == name
        assert metrics.queue_length == 3
        assert metrics.visible_length == 2
        assert metrics.total_messages == 4
        assert metrics.oldest_msg_age_sec >= 0 and metrics.newest_msg_age_sec >= 0
        assert metrics.scrape_time is not None

        everything = queues.metrics_all()
        assert [m.queue_name for m in everything] == sorted(m.queue_name for m in everything)
        by_name = {m.queue_name: m for m in everything}
        assert {name, *PROJECT_QUEUES} <= set(by_name)
        assert by_name[name].queue_length == 3
        assert all(isinstance(m, QueueMetrics) for m in everything)
    finally:
        queues.drop(name)


def test_purge(queues, queue):
    queues.send_batch(queue, [{"i": i} for i in range(4)])
    queues.send(queue, {"hidden": True}, delay=60)
    assert queues.purge(queue) == 5
    assert _table_ids(f"q_{queue}") == []
    assert queues.purge(queue) == 0
    assert queues.exists(queue)


def test_seconds_until_next_visible(queues, queue):
    assert queues.seconds_until_next_visible(queue) is None
    queues.send(queue, {"visible": True})
    assert queues.seconds_until_next_visible(queue) is None
    queues.send(queue, {"far": True}, delay=120)
    queues.send(queue, {"near": True}, delay=20)
    assert 19 < queues.seconds_until_next_visible(queue) <= 20


# --- missing queues -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda q, name: q.send(name, {"a": 1}),
        lambda q, name: q.send_batch(name, [{"a": 1}]),
        lambda q, name: q.read(name),
        lambda q, name: q.read_with_poll(name, max_poll_seconds=1),
        lambda q, name: q.pop(name),
        lambda q, name: q.archive(name, 1),
        lambda q, name: q.archive_batch(name, [1]),
        lambda q, name: q.delete(name, 1),
        lambda q, name: q.delete_batch(name, [1]),
        lambda q, name: q.set_vt(name, 1, 0),
        lambda q, name: q.metrics(name),
        lambda q, name: q.purge(name),
        lambda q, name: q.seconds_until_next_visible(name),
    ],
    ids=[
        "send", "send_batch", "read", "read_with_poll", "pop", "archive", "archive_batch",
        "delete", "delete_batch", "set_vt", "metrics", "purge", "seconds_until_next_visible",
    ],
)
def test_queue_not_found(queues, call):
    name = _unique_name("missing")
    with pytest.raises(QueueNotFound) as excinfo, transaction.atomic():
        call(queues, name)
    assert repr(name) in str(excinfo.value)
    assert isinstance(excinfo.value, LookupError)
    # The failed statement rolled back only its savepoint: the connection is still usable.
    assert queues.exists("ai_requests")


# --- validation -----------------------------------------------------------------------------------

INVALID_NAMES = [
    "Upper",
    "ALLCAPS",
    "has-hyphen",
    "has space",
    "x'; drop table y",
    "quote'",
    'double"quote',
    "semi;colon",
    "dollar$",
    "dotted.name",
    "",
    "a" * (MAX_QUEUE_NAME_LENGTH + 1),
    "tab\t",
    "newline\n",
    "ünïcode",
]
NON_STRING_NAMES = [None, 42, b"bytes", ["list"], 1.5]

QUEUE_CALLS = {
    "create": lambda q, name: q.create(name),
    "drop": lambda q, name: q.drop(name),
    "exists": lambda q, name: q.exists(name),
    "send": lambda q, name: q.send(name, {"a": 1}),
    "send_batch": lambda q, name: q.send_batch(name, [{"a": 1}]),
    "read": lambda q, name: q.read(name),
    "read_with_poll": lambda q, name: q.read_with_poll(name),
    "pop": lambda q, name: q.pop(name),
    "archive": lambda q, name: q.archive(name, 1),
    "archive_batch": lambda q, name: q.archive_batch(name, [1]),
    "delete": lambda q, name: q.delete(name, 1),
    "delete_batch": lambda q, name: q.delete_batch(name, [1]),
    "set_vt": lambda q, name: q.set_vt(name, 1, 0),
    "release": lambda q, name: q.release(name, [1]),
    "metrics": lambda q, name: q.metrics(name),
    "purge": lambda q, name: q.purge(name),
    "seconds_until_next_visible": lambda q, name: q.seconds_until_next_visible(name),
    "notify_enabled": lambda q, name: q.notify_enabled(name),
    "insert_channel": lambda q, name: q.insert_channel(name),
}


@pytest.mark.parametrize("name", INVALID_NAMES + NON_STRING_NAMES, ids=repr)
def test_invalid_queue_names_are_rejected_before_any_sql(queues, name, django_assert_num_queries):
    for method, call in QUEUE_CALLS.items():
        with django_assert_num_queries(0), pytest.raises(QueueNameError) as excinfo:
            call(queues, name)
        assert repr(name) in str(excinfo.value), (method, str(excinfo.value))
        assert isinstance(excinfo.value, ValueError)


def test_longest_valid_queue_name_is_accepted(queues):
    name = "q" + "_" + uuid.uuid4().hex[:10] + "x" * (MAX_QUEUE_NAME_LENGTH - 12)
    assert len(name) == 47
    queues.create(name)
    assert queues.exists(name)
    msg_id = queues.send(name, {"long": True})
    [message] = queues.read(name)
    assert message.msg_id == msg_id
    assert queues.metrics(name).queue_length == 1
    assert queues.drop(name) is True


def test_digits_and_underscores_are_valid(queues):
    name = f"_9_{uuid.uuid4().hex[:6]}_"
    queues.create(name)
    assert queues.exists(name)


BAD_VT_QTY = [
    ({"vt": -1}, "vt=-1"),
    ({"vt": 1.5}, "vt=1.5"),
    ({"vt": "30"}, "vt='30'"),
    ({"vt": None}, "vt=None"),
    ({"vt": True}, "vt=True"),
    ({"vt": 2**31}, f"vt={2**31}"),
    ({"qty": 0}, "qty=0"),
    ({"qty": -3}, "qty=-3"),
    ({"qty": 2.0}, "qty=2.0"),
    ({"qty": "1"}, "qty='1'"),
    ({"qty": False}, "qty=False"),
    ({"qty": 2**31}, f"qty={2**31}"),
]


@pytest.mark.parametrize(("kwargs", "named"), BAD_VT_QTY, ids=[n for _, n in BAD_VT_QTY])
def test_bad_vt_and_qty_raise_value_error_before_any_sql(queues, kwargs, named, django_assert_num_queries):
    with django_assert_num_queries(0):
        with pytest.raises(ValueError, match=re.escape(named)) as excinfo:
            queues.read("ai_requests", **kwargs)
        assert not isinstance(excinfo.value, QueueNameError)
        with pytest.raises(ValueError, match=re.escape(named)):
            queues.read_with_poll("ai_requests", max_poll_seconds=0, **kwargs)
        if "qty" in kwargs:
            with pytest.raises(ValueError, match=re.escape(named)):
                queues.pop("ai_requests", **kwargs)


BAD_POLL = [
    ({"max_poll_seconds": -1}, "max_poll_seconds=-1"),
    ({"max_poll_seconds": 1.5}, "max_poll_seconds=1.5"),
    ({"max_poll_seconds": "1"}, "max_poll_seconds='1'"),
    ({"poll_interval_ms": 0}, "poll_interval_ms=0"),
    ({"poll_interval_ms": 2.5}, "poll_interval_ms=2.5"),
    ({"poll_interval_ms": None}, "poll_interval_ms=None"),
]


@pytest.mark.parametrize(("kwargs", "named"), BAD_POLL, ids=[n for _, n in BAD_POLL])
def test_bad_poll_arguments_raise_value_error_before_any_sql(queues, kwargs, named, django_assert_num_queries):
    with django_assert_num_queries(0), pytest.raises(ValueError, match=re.escape(named)):
        queues.read_with_poll("ai_requests", **kwargs)


BAD_DELAYS = [-1, -0.001, "5", None, True, float("nan"), float("inf"), float("-inf")]


@pytest.mark.parametrize("delay", BAD_DELAYS, ids=repr)
def test_bad_delay_raises_value_error_before_any_sql(queues, delay, django_assert_num_queries):
    with django_assert_num_queries(0):
        for call in (
            lambda: queues.send("ai_requests", {"a": 1}, delay=delay),
            lambda: queues.send_batch("ai_requests", [{"a": 1}], delay=delay),
            lambda: queues.set_vt("ai_requests", 1, delay),
        ):
            with pytest.raises(ValueError) as excinfo:
                call()
            assert f"delay={delay!r}" in str(excinfo.value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=repr)
def test_non_json_numbers_raise_before_any_sql_and_keep_the_transaction(queues, queue, bad, django_assert_num_queries):
    with django_assert_num_queries(0):
        with pytest.raises(ValueError, match="JSON"):
            queues.send(queue, {"x": bad})
        with pytest.raises(ValueError, match="JSON"):
            queues.send(queue, {"ok": 1}, headers={"x": bad})
        with pytest.raises(ValueError, match="JSON"):
            queues.send_batch(queue, [{"ok": 1}, [bad]])
    # Nothing reached the server, so the surrounding transaction is still usable and empty.
    assert queues.read(queue, qty=10) == []


def test_unserializable_body_raises_type_error_before_any_sql(queues, queue, django_assert_num_queries):
    with django_assert_num_queries(0), pytest.raises(TypeError):
        queues.send(queue, {"a set": {1, 2}})
    assert queues.read(queue) == []


def test_fractional_and_zero_delays_are_accepted(queues, queue):
    assert isinstance(queues.send(queue, {"a": 1}, delay=0), int)
    assert isinstance(queues.send(queue, {"a": 2}, delay=0.25), int)
    assert len(queues.send_batch(queue, [{"a": 3}], delay=0.0)) == 1


def test_bound_parameters_keep_sql_in_values_inert(queues, queue):
    """SQL-looking bodies and headers are stored as data; nothing else in the database changes."""
    evil = "'); DELETE FROM pgmq.meta; SELECT ('"
    msg_id = queues.send(queue, {"v": evil}, headers={"h": evil})
    queues.send_batch(queue, [evil, {"k": evil}])
    assert queues.exists(queue)
    assert set(PROJECT_QUEUES) <= set(queues.queue_names())
    messages = queues.read(queue, qty=10)
    assert messages[0].msg_id == msg_id
    assert [m.body for m in messages] == [{"v": evil}, evil, {"k": evil}]
    assert messages[0].headers == {"h": evil}


# --- transactions -----------------------------------------------------------------------------


def _new_llm_request(agent_id: str):
    from singularity.models import LlmRequest

    return LlmRequest.objects.create(
        agent_id=agent_id,
        task_type="general",
        complexity="simple",
        messages=[{"role": "user", "content": "hi"}],
    )


def _seen_from_outside(name: str, agent_id: str) -> tuple[int, list]:
    from singularity.models import LlmRequest

    with _server_connection() as other:
        rows = other.execute(
            f"SELECT count(*) FROM {LlmRequest._meta.db_table} WHERE agent_id = %s", [agent_id]
        ).fetchone()[0]
        bodies = [row[0] for row in other.execute(f'SELECT message FROM pgmq."q_{name}" ORDER BY msg_id')]
    return rows, bodies


@pytest.mark.django_db(transaction=True)
def test_send_commits_with_the_model_row(queues):
    name = _unique_name("tx")
    queues.create(name)
    agent_id = f"agent-{uuid.uuid4()}"
    try:
        with transaction.atomic():
            request = _new_llm_request(agent_id)
            queues.send(name, {"request_id": str(request.request_id)})
            # Not visible to another connection before the commit.
            assert _seen_from_outside(name, agent_id) == (0, [])
        assert _seen_from_outside(name, agent_id) == (1, [{"request_id": str(request.request_id)}])
    finally:
        queues.drop(name)


@pytest.mark.django_db(transaction=True)
def test_send_rolls_back_with_the_model_row(queues):
    from singularity.models import LlmRequest

    name = _unique_name("tx")
    queues.create(name)
    agent_id = f"agent-{uuid.uuid4()}"

    class Abort(Exception):
        pass

    try:
        with pytest.raises(Abort), transaction.atomic():
            _new_llm_request(agent_id)
            queues.send(name, {"doomed": True})
            queues.send_batch(name, [{"doomed": 2}])
            raise Abort
        assert _seen_from_outside(name, agent_id) == (0, [])
        assert not LlmRequest.objects.filter(agent_id=agent_id).exists()
        assert queues.read(name, qty=10) == []
    finally:
        queues.drop(name)


def test_release_returns_read_unread(queues, queue):
    msg_id = queues.send(queue, {"n": 1})
    queues.read(queue, vt=60, qty=1)

    assert queues.release(queue, [msg_id, 999_999]) == [msg_id]

    [message] = queues.read(queue, vt=0, qty=1)
    assert message.msg_id == msg_id
    assert message.read_ct == 1, "the released read must not count"
