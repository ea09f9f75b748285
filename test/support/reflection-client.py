"""A client that knows nothing of the API but what server reflection tells it.

Usage: reflection-client.py HOST:PORT

It loads every file the server describes into a fresh protobuf DescriptorPool
(which validates descriptors strictly: map entry names, fully qualified type
names, proto3 optional), builds every message class from the pool alone, and
calls every method of every service dynamically. Reflection itself is used
through the classes built from its own served descriptors. Prints one line per
check and "ok" at the end; any failure raises.
"""
import sys

import grpc
from google.protobuf import descriptor_pool, message_factory

REFLECTION = "grpc.reflection.v1.ServerReflection"
SESSIONS = "sessionmanager.v1.SessionManagerService"
identity = lambda b: b  # noqa: E731


def varint(data, pos):
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def length_delimited(data, number):
    """Every length-delimited field `number` of a message, by hand (bootstrap only)."""
    pos, found = 0, []
    while pos < len(data):
        tag, pos = varint(data, pos)
        if tag & 7 == 0:
            _, pos = varint(data, pos)
        elif tag & 7 == 2:
            length, pos = varint(data, pos)
            if tag >> 3 == number:
                found.append(data[pos : pos + length])
            pos += length
        else:
            raise AssertionError("unexpected wire type %d" % (tag & 7))
    return found


class Api:
    def __init__(self, channel):
        self.channel = channel
        self.pool = descriptor_pool.DescriptorPool()
        self.loaded = set()

    def add_files(self, files):
        """Adds FileDescriptorProtos (dependencies come after the file) in dependency order."""
        from google.protobuf import descriptor_pb2

        protos = {}
        for raw in files:
            proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
            protos[proto.name] = raw, proto

        def add(name):
            if name in self.loaded or name not in protos:
                return
            raw, proto = protos[name]
            for dependency in proto.dependency:
                add(dependency)
            self.pool.AddSerializedFile(raw)
            self.loaded.add(name)

        for name in protos:
            add(name)

    def message(self, full_name):
        descriptor = self.pool.FindMessageTypeByName(full_name)
        if hasattr(message_factory, "GetMessageClass"):
            return message_factory.GetMessageClass(descriptor)
        return message_factory.MessageFactory(self.pool).GetPrototype(descriptor)

    def unary(self, service, method):
        descriptor = self.pool.FindServiceByName(service).FindMethodByName(method)
        request = self.message(descriptor.input_type.full_name)
        response = self.message(descriptor.output_type.full_name)
        call = self.channel.unary_unary(
            "/%s/%s" % (service, method),
            request_serializer=request.SerializeToString,
            response_deserializer=response.FromString,
        )
        return lambda **fields: call(request(**fields), timeout=5)


def bootstrap(channel, api):
    """Reflection's own descriptors, read with a hand decoder: the one thing not built from the pool."""
    info = channel.stream_stream(
        "/%s/ServerReflectionInfo" % REFLECTION,
        request_serializer=identity,
        response_deserializer=identity,
    )
    symbol = REFLECTION.encode()
    request = bytes([(4 << 3) | 2, len(symbol)]) + symbol
    (reply,) = list(info(iter([request]), timeout=5))
    (files,) = length_delimited(reply, 4)
    api.add_files(length_delimited(files, 1))


def reflect(channel, api):
    """Every service's files, through reflection classes built from the pool."""
    request_class = api.message("grpc.reflection.v1.ServerReflectionRequest")
    response_class = api.message("grpc.reflection.v1.ServerReflectionResponse")
    info = channel.stream_stream(
        "/%s/ServerReflectionInfo" % REFLECTION,
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )

    def ask(**fields):
        (reply,) = list(info(iter([request_class(**fields)]), timeout=5))
        assert not reply.HasField("error_response"), reply.error_response
        return reply

    services = [s.name for s in ask(list_services="").list_services_response.service]
    print("services: " + ", ".join(services))
    for service in services:
        reply = ask(file_containing_symbol=service)
        api.add_files(reply.file_descriptor_response.file_descriptor_proto)
    by_name = ask(file_by_filename="sessionmanager/v1/sessionmanager.proto")
    assert len(by_name.file_descriptor_response.file_descriptor_proto) == 1
    missing = ask_error(info, request_class, file_containing_symbol="no.such.Symbol")
    assert missing == grpc.StatusCode.NOT_FOUND.value[0], missing
    return services


def ask_error(info, request_class, **fields):
    (reply,) = list(info(iter([request_class(**fields)]), timeout=5))
    return reply.error_response.error_code


def check_descriptors(api):
    data = api.pool.FindMessageTypeByName("sessionmanager.v1.SessionData")
    entry = data.fields_by_name["attributes"].message_type
    assert entry.name == "AttributesEntry" and entry.GetOptions().map_entry, entry.name
    update = api.pool.FindMessageTypeByName("sessionmanager.v1.UpdateSessionRequest")
    version = update.fields_by_name["expected_version"]
    assert version.containing_oneof is not None, "expected_version is proto3 optional"
    assert version.containing_oneof.name == "_expected_version", version.containing_oneof.name
    assert update.fields_by_name["set_attributes"].message_type.name == "SetAttributesEntry"
    print("descriptors: map entries, proto3 optional and type names are valid")


def call_every_method(api):
    call = lambda method: api.unary(SESSIONS, method)  # noqa: E731
    methods = [m.name for m in api.pool.FindServiceByName(SESSIONS).methods]
    created = call("SetSession")(
        fleet_list_request=b"quote", attributes={"rider": b"r-1"}, ttl_seconds=600
    )
    key = created.session_key
    assert len(key) == 43 and created.version == 1, created
    got = call("GetSession")(session_key=key, touch=True)
    assert got.fleet_list_request == b"quote" and got.attributes["rider"] == b"r-1", got
    updated = call("UpdateSession")(
        session_key=key, set_attributes={"order": b"o-9"}, remove_attributes=["rider"],
        expected_version=1,
    )
    assert updated.version == 2 and dict(updated.attributes) == {"order": b"o-9"}, updated
    try:
        call("UpdateSession")(session_key=key, expected_version=1)
        raise AssertionError("expected ABORTED")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.ABORTED, error
    touched = call("TouchSession")(session_key=key, ttl_seconds=900)
    assert touched.expires_at_unix_ms > updated.expires_at_unix_ms, touched
    rotated = call("RotateSessionKey")(session_key=key)
    assert rotated.session_key != key and rotated.version == 2, rotated
    consumed = call("ConsumeSession")(session_key=rotated.session_key)
    assert consumed.attributes["order"] == b"o-9", consumed
    call("SetSession")(session_key="reflect:1")
    assert call("DeleteSession")(session_key="reflect:1").deleted is True
    owned = call("SetSession")(owner="reflect-owner", fleet_list_request=b"quote")
    listed = call("ListSessions")(owner="reflect-owner", include_content=True).sessions
    assert len(listed) == 1 and listed[0].fleet_list_request == b"quote", listed
    assert listed[0].version == owned.version and listed[0].handle, listed
    assert call("RevokeSessions")(owner="reflect-owner").revoked == 1
    called = {"SetSession", "GetSession", "UpdateSession", "TouchSession", "RotateSessionKey",
              "ConsumeSession", "DeleteSession", "ListSessions", "RevokeSessions"}
    assert set(methods) == called, methods
    print("%s: called %s" % (SESSIONS, ", ".join(methods)))


def call_health(api):
    check = api.unary("grpc.health.v1.Health", "Check")
    serving = api.pool.FindEnumTypeByName(
        "grpc.health.v1.HealthCheckResponse.ServingStatus"
    ).values_by_name["SERVING"].number
    assert check(service=SESSIONS).status == serving
    descriptor = api.pool.FindServiceByName("grpc.health.v1.Health").FindMethodByName("Watch")
    request = api.message(descriptor.input_type.full_name)
    response = api.message(descriptor.output_type.full_name)
    watch = api.channel.unary_stream(
        "/grpc.health.v1.Health/Watch",
        request_serializer=request.SerializeToString,
        response_deserializer=response.FromString,
    )
    stream = watch(request(service=""), timeout=5)
    assert next(stream).status == serving
    stream.cancel()
    print("grpc.health.v1.Health: called Check, Watch")


def main(address):
    channel = grpc.insecure_channel(address)
    api = Api(channel)
    bootstrap(channel, api)
    services = reflect(channel, api)
    for expected in (SESSIONS, "grpc.health.v1.Health", REFLECTION,
                     "grpc.reflection.v1alpha.ServerReflection"):
        assert expected in services, services
    check_descriptors(api)
    call_every_method(api)
    call_health(api)
    print("%s: used through its own served descriptors" % REFLECTION)
    channel.close()
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1])
