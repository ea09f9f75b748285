import {
  type ChannelCredentials,
  type ChannelOptions,
  Client,
  connectivityState,
} from '@grpc/grpc-js';

/** The channels of one client; `pick` gives the one for the next attempt. */
export interface ChannelPool {
  pick(): Client;
  close(): void;
}

/**
 * One grpc-js channel per target. With a single target, grpc-js does all the
 * balancing (round robin within the target when the options ask for it).
 * With several, attempts rotate over the channels, skipping those that have
 * no connection: a READY channel first; failing that one still connecting
 * (the call waits for it); failing that the next in turn, whose call fails
 * fast with UNAVAILABLE and is retried where that is safe.
 */
export function channelPool(
  targets: readonly string[],
  credentials: ChannelCredentials,
  options: ChannelOptions,
): ChannelPool {
  const channels = targets.map((target) => new Client(target, credentials, options));
  const close = () => {
    for (const channel of channels) channel.close();
  };
  const [first] = channels;
  if (first === undefined) {
    throw new TypeError('sessionmanager client: no target to connect to');
  }
  if (channels.length === 1) {
    return { pick: () => first, close };
  }
  // Connect to every instance now: a channel that never had a call would
  // otherwise stay IDLE and never be READY to take its share.
  for (const channel of channels) channel.getChannel().getConnectivityState(true);
  let next = 0;
  return {
    pick() {
      let waiting = -1;
      for (let step = 0; step < channels.length; step++) {
        const index = (next + step) % channels.length;
        const state = stateOf(channels[index] as Client);
        if (state === connectivityState.READY) {
          return take(index);
        }
        if (
          waiting === -1 &&
          (state === connectivityState.CONNECTING || state === connectivityState.IDLE)
        ) {
          waiting = index;
        }
      }
      return take(waiting === -1 ? next : waiting);
    },
    close,
  };

  function take(index: number): Client {
    next = (index + 1) % channels.length;
    return channels[index] as Client;
  }
}

/** The channel's state; an IDLE one (e.g. after its server went away) starts reconnecting. */
function stateOf(channel: Client): connectivityState {
  const state = channel.getChannel().getConnectivityState(false);
  return state === connectivityState.IDLE ? channel.getChannel().getConnectivityState(true) : state;
}
