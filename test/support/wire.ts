import { connect, createServer, type Socket } from 'node:net';

/** One HTTP/2 frame (RFC 9113 4.1): 3-byte length, type, flags, stream id, payload. */
export function h2Frame(
  type: number,
  flags: number,
  stream: number,
  payload: Buffer = Buffer.alloc(0),
): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(stream, 5);
  return Buffer.concat([header, payload]);
}

/** A connected loopback socket whose peer records every byte it receives. */
export interface LoopbackPair {
  readonly local: Socket;
  /** Resolves with the next `length` bytes the peer receives (within 5 s). */
  receive(length: number): Promise<Buffer>;
  close(): void;
}

export async function loopbackPair(): Promise<LoopbackPair> {
  let received = Buffer.alloc(0);
  let peer: Socket | undefined;
  const server = createServer((socket) => {
    peer = socket;
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const local = connect((server.address() as { port: number }).port, '127.0.0.1');
  await new Promise((resolve) => local.once('connect', resolve));
  return {
    local,
    async receive(length) {
      const deadline = Date.now() + 5000;
      while (received.length < length && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      const bytes = received.subarray(0, length);
      received = received.subarray(length);
      return bytes;
    },
    close() {
      local.destroy();
      peer?.destroy();
      server.close();
    },
  };
}
