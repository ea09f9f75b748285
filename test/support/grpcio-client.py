"""Python grpcio against the server, with hand-encoded protobuf (no generated code).

Usage: grpcio-client.py HOST:PORT. Prints "ok" when every check passes.
"""
import sys

import grpc

SERVICE = "/sessionmanager.v1.SessionManagerService/"


def field(number, payload):
    """A length-delimited field whose payload is shorter than 128 bytes."""
    assert len(payload) < 128
    return bytes([(number << 3) | 2, len(payload)]) + payload


def first_string(message):
    """Field 1 of a message that starts with it (session_key)."""
    assert message[0] == 0x0A, message
    return message[2 : 2 + message[1]].decode()


def main(address):
    channel = grpc.insecure_channel(address)
    identity = lambda b: b  # noqa: E731
    set_session = channel.unary_unary(SERVICE + "SetSession", identity, identity)
    get_session = channel.unary_unary(SERVICE + "GetSession", identity, identity)

    reply = set_session(field(2, b"quote") + field(3, b"fleet"), timeout=5)
    key = first_string(reply)
    assert len(key) == 43, key

    got = get_session(field(1, key.encode()), timeout=5, compression=grpc.Compression.Gzip)
    assert first_string(got) == key and b"quote" in got and b"fleet" in got

    try:
        get_session(field(1, b"absent"), timeout=5)
        raise AssertionError("expected NOT_FOUND")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND, error
        assert error.details().startswith("session_key:"), error.details()

    try:
        channel.unary_unary(SERVICE + "Nope", identity, identity)(b"", timeout=5)
        raise AssertionError("expected UNIMPLEMENTED")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.UNIMPLEMENTED, error

    try:
        get_session(field(1, b"has space"), timeout=5)
        raise AssertionError("expected INVALID_ARGUMENT")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error

    health = channel.unary_unary("/grpc.health.v1.Health/Check", identity, identity)
    assert health(b"", timeout=5) == bytes([0x08, 1]), "SERVING"

    watch = channel.unary_stream("/grpc.health.v1.Health/Watch", identity, identity)
    stream = watch(b"", timeout=5)
    assert next(stream) == bytes([0x08, 1])
    stream.cancel()

    channel.close()
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1])
