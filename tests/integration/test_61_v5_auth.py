# 61 v5 enhanced authentication: the coremq binary offers no Authentication Method (only an
# embedding program can, through Options::authentication_hook: tests/embedded drives those
# exchanges and re-authentication over sockets), so a CONNECT naming one is refused with
# CONNACK 0x8C and closed; without a method the CONNACK carries none and an AUTH packet is a
# Protocol Error (MQTT 5.0 4.12, 3.15).
import pytest

from helpers_v5 import module_broker, start_broker  # noqa: F401 (fixtures)
from helpers_v5 import (AUTHENTICATION_DATA, AUTHENTICATION_METHOD, BAD_AUTHENTICATION_METHOD,
                        CONTINUE_AUTHENTICATION, PROTOCOL_ERROR, auth5, connect5, raw5)


@pytest.mark.parametrize("method", ["SCRAM-SHA-256", "GS2-KRB5", "x"])
def test_unsupported_authentication_method_refused(broker, clients, names, method):
    client = raw5(clients)
    client.send(connect5(names.pub(), properties=[(AUTHENTICATION_METHOD, method),
                                                  (AUTHENTICATION_DATA, b"client-first")]))
    connack = client.expect_connack_refused(BAD_AUTHENTICATION_METHOD)
    assert AUTHENTICATION_METHOD not in connack.properties


def test_refused_connect_leaves_no_session(broker, clients, names):
    client_id = names.pub()
    client = raw5(clients)
    client.send(connect5(client_id, properties=[(AUTHENTICATION_METHOD, "SCRAM-SHA-1"),
                                                (0x11, 300)]))
    client.expect_connack_refused(BAD_AUTHENTICATION_METHOD)
    assert raw5(clients, client_id, clean_start=False).connack.session_present == 0


@pytest.mark.coremq_only("mosquitto 2.0.11 accepts Authentication Data without a method")
def test_auth_data_without_method_is_protocol_error(broker, clients, names):
    client = raw5(clients)
    client.send(connect5(names.pub(), properties=[(AUTHENTICATION_DATA, b"data")]))
    packets = client.expect_closed()
    assert all(item.body[1] >= 0x80 for item in packets if item.type == 2), packets


@pytest.mark.coremq_only("mosquitto 2.0.11 closes on such an AUTH without DISCONNECT")
def test_auth_packet_without_method_is_protocol_error(broker, clients, names):
    """A client that named no Authentication Method must not send AUTH [MQTT-4.12.0-7]."""
    client = raw5(clients, names.pub())
    assert AUTHENTICATION_METHOD not in client.connack.properties     # [MQTT-4.12.0-6]
    client.send(auth5(CONTINUE_AUTHENTICATION, [(AUTHENTICATION_METHOD, "SCRAM-SHA-1")]))
    client.expect_disconnect(PROTOCOL_ERROR)
