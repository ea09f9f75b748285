"""A small sessionmanager server in Python grpcio, for the client's interop tests.

Its messages come from proto/descriptor-set.binpb, which `npm run proto` builds
from the same proto the service and the client use. It keeps sessions in a dict
and implements each RPC's plain semantics (no TTL expiry, no owner limit, no
owner tag in keys), so the client can be checked against a second, independent
gRPC implementation.

Usage: grpcio-server.py DESCRIPTOR_SET. Prints the port it listens on
(127.0.0.1), then serves until stdin closes.
"""
import base64
import hashlib
import secrets
import sys
import threading
import time
from concurrent import futures

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "sessionmanager.v1."


def load_messages(path):
    files = descriptor_pb2.FileDescriptorSet()
    with open(path, "rb") as handle:
        files.ParseFromString(handle.read())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    factory = message_factory.MessageFactory(pool)
    return lambda name: factory.GetPrototype(pool.FindMessageTypeByName(PACKAGE + name))


def handle_of(key):
    digest = hashlib.sha256(key.encode()).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def main(descriptor_set):
    message = load_messages(descriptor_set)
    SessionData = message("SessionData")
    sessions = {}
    owners = {}  # owner -> its session keys, oldest first
    owner_of = {}  # session key -> owner
    lock = threading.Lock()
    now = lambda: int(time.time() * 1000)  # noqa: E731

    def reply_id(context):
        context.set_trailing_metadata((("x-request-id", "py-" + secrets.token_hex(4)),))

    def missing(context):
        reply_id(context)
        context.abort(grpc.StatusCode.NOT_FOUND, "session_key: no such session")

    def stored(key, context):
        session = sessions.get(key)
        if session is None:
            missing(context)
        return session

    def forget(key):
        owner = owner_of.pop(key, None)
        if owner is not None:
            owners[owner].remove(key)

    def set_session(request, context):
        if request.ttl_seconds < 0:
            reply_id(context)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "ttl_seconds must not be negative")
        if request.owner and request.session_key:
            reply_id(context)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "session_key: not with an owner")
        with lock:
            key = request.session_key or secrets.token_urlsafe(32)
            previous = sessions.get(key)
            session = SessionData()
            session.CopyFrom(request)
            session.ClearField("owner")
            session.session_key = key
            forget(key)
            if request.owner:
                owners.setdefault(request.owner, []).append(key)
                owner_of[key] = request.owner
            session.ttl_seconds = request.ttl_seconds or 1800
            session.version = previous.version + 1 if previous else 1
            session.created_at_unix_ms = now()
            session.expires_at_unix_ms = now() + session.ttl_seconds * 1000
            sessions[key] = session
        return message("SetSessionResponse")(
            session_key=key, expires_at_unix_ms=session.expires_at_unix_ms, version=session.version
        )

    def get_session(request, context):
        with lock:
            return stored(request.session_key, context)

    def update_session(request, context):
        with lock:
            session = stored(request.session_key, context)
            if request.HasField("expected_version") and request.expected_version != session.version:
                reply_id(context)
                context.abort(grpc.StatusCode.ABORTED, "expected_version: the session has changed")
            if request.HasField("fleet_list_request"):
                session.fleet_list_request = request.fleet_list_request
            if request.HasField("fleet_list_response"):
                session.fleet_list_response = request.fleet_list_response
            for name, value in request.set_attributes.items():
                session.attributes[name] = value
            for name in request.remove_attributes:
                session.attributes.pop(name, None)
            session.version += 1
            return session

    def touch_session(request, context):
        with lock:
            session = stored(request.session_key, context)
            return message("TouchSessionResponse")(expires_at_unix_ms=session.expires_at_unix_ms)

    def consume_session(request, context):
        with lock:
            session = stored(request.session_key, context)
            del sessions[request.session_key]
            forget(request.session_key)
            return session

    def delete_session(request, context):
        with lock:
            forget(request.session_key)
            return message("DeleteSessionResponse")(deleted=sessions.pop(request.session_key, None) is not None)

    def rotate_session_key(request, context):
        with lock:
            session = stored(request.session_key, context)
            del sessions[request.session_key]
            session.session_key = secrets.token_urlsafe(32)
            sessions[session.session_key] = session
            owner = owner_of.pop(request.session_key, None)
            if owner is not None:
                keys = owners[owner]
                keys[keys.index(request.session_key)] = session.session_key
                owner_of[session.session_key] = owner
            return message("RotateSessionKeyResponse")(
                session_key=session.session_key,
                expires_at_unix_ms=session.expires_at_unix_ms,
                version=session.version,
            )

    def owner_required(request, context):
        if not request.owner:
            reply_id(context)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "owner: is required")

    def list_sessions(request, context):
        owner_required(request, context)
        listed = message("ListSessionsResponse")()
        with lock:
            for key in owners.get(request.owner, []):
                session = sessions[key]
                owned = listed.sessions.add(
                    handle=handle_of(key),
                    created_at_unix_ms=session.created_at_unix_ms,
                    expires_at_unix_ms=session.expires_at_unix_ms,
                    version=session.version,
                    ttl_seconds=session.ttl_seconds,
                    size_bytes=len(session.fleet_list_request) + len(session.fleet_list_response)
                    + sum(len(name.encode()) + len(value) for name, value in session.attributes.items()),
                )
                if request.include_content:
                    owned.fleet_list_request = session.fleet_list_request
                    owned.fleet_list_response = session.fleet_list_response
                    owned.attributes.update(session.attributes)
        return listed

    def revoke_sessions(request, context):
        owner_required(request, context)
        with lock:
            keys = owners.pop(request.owner, [])
            for key in keys:
                del sessions[key]
                del owner_of[key]
        return message("RevokeSessionsResponse")(revoked=len(keys))

    def handler(function, request_name, response_name):
        return grpc.unary_unary_rpc_method_handler(
            function,
            request_deserializer=message(request_name).FromString,
            response_serializer=message(response_name).SerializeToString,
        )

    methods = {
        "SetSession": handler(set_session, "SessionData", "SetSessionResponse"),
        "GetSession": handler(get_session, "GetSessionRequest", "SessionData"),
        "UpdateSession": handler(update_session, "UpdateSessionRequest", "SessionData"),
        "TouchSession": handler(touch_session, "TouchSessionRequest", "TouchSessionResponse"),
        "ConsumeSession": handler(consume_session, "ConsumeSessionRequest", "SessionData"),
        "DeleteSession": handler(delete_session, "DeleteSessionRequest", "DeleteSessionResponse"),
        "RotateSessionKey": handler(rotate_session_key, "RotateSessionKeyRequest", "RotateSessionKeyResponse"),
        "ListSessions": handler(list_sessions, "ListSessionsRequest", "ListSessionsResponse"),
        "RevokeSessions": handler(revoke_sessions, "RevokeSessionsRequest", "RevokeSessionsResponse"),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(PACKAGE + "SessionManagerService", methods),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    sys.stdin.read()
    server.stop(0)


if __name__ == "__main__":
    main(sys.argv[1])
