import { fileURLToPath } from 'node:url';

/** The contract, as the tests' independent clients (grpc-js with proto-loader, Python) load it. */
export const PROTO_FILE = fileURLToPath(
  new URL('../../proto/sessionmanager/v1/sessionmanager.proto', import.meta.url),
);
export const REFLECTION_PROTO_FILE = fileURLToPath(
  new URL('../../proto/grpc/reflection/v1/reflection.proto', import.meta.url),
);
export const SERVICE_NAME = 'sessionmanager.v1.SessionManagerService';
