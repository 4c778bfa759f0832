import net from 'node:net';

/**
 * A TCP proxy between the agent and a database, for network faults:
 * `cut()` drops every open connection at once (as a broken link does),
 * `stall()` swallows packets without a reset (a firewall), `slow()`
 * throttles latency and bandwidth, and `refuse()` makes new connections
 * fail until `accept()`.
 */
export class TcpProxy {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private refusing = false;
  private dropUpstream = false;
  private stalled = false;
  private slowness = { latencyMs: 0, bytesPerSecond: 0 };
  port = 0;
  connections = 0;

  constructor(private readonly targetPort: number, private readonly targetHost = '127.0.0.1') {
    this.server = net.createServer((client) => this.onClient(client));
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  private onClient(client: net.Socket): void {
    if (this.refusing) {
      client.destroy();
      return;
    }
    this.connections++;
    if (this.stalled) {
      // A black hole: the connection opens (a firewall dropping packets later), nothing ever comes back.
      this.sockets.add(client);
      client.on('error', () => client.destroy()).on('close', () => this.sockets.delete(client));
      return;
    }
    const upstream = net.connect(this.targetPort, this.targetHost);
    this.sockets.add(client);
    this.sockets.add(upstream);
    // While stalled, a close does not get through either: the other side keeps its connection (a server serves a
    // session whose client is gone until its TCP keepalive notices, hours later), until `cut()` or `close()`.
    const drop = (closed: net.Socket, other: net.Socket) => () => {
      closed.destroy();
      this.sockets.delete(closed);
      if (this.stalled) return;
      other.destroy();
      this.sockets.delete(other);
    };
    client.on('error', drop(client, upstream)).on('close', drop(client, upstream));
    upstream.on('error', drop(upstream, client)).on('close', drop(upstream, client));
    // Client -> server bytes can be swallowed (see `swallowClientBytes`), and both directions slowed (see `slow`).
    const toServer = this.link(upstream, () => !this.dropUpstream);
    const toClient = this.link(client, () => true);
    client.on('data', toServer);
    upstream.on('data', toClient);
  }

  /** Forwards chunks to `to`, after the latency and at the bandwidth `slow` set, in order (also when it is made fast again); nothing while stalled. */
  private link(to: net.Socket, pass: () => boolean): (d: Buffer) => void {
    const queue: { at: number; d: Buffer }[] = [];
    let freeAt = 0; // when the simulated link has sent what it was given
    let timer: NodeJS.Timeout | null = null;
    const pump = () => {
      timer = null;
      while (queue.length > 0 && queue[0]!.at <= Date.now()) {
        const { d } = queue.shift()!;
        if (!this.stalled && !to.destroyed) to.write(d);
      }
      if (queue.length > 0) timer = setTimeout(pump, queue[0]!.at - Date.now());
    };
    return (d) => {
      if (this.stalled || !pass()) return;
      const { latencyMs, bytesPerSecond } = this.slowness;
      if (latencyMs === 0 && bytesPerSecond === 0 && queue.length === 0) return void to.write(d);
      const now = Date.now();
      freeAt = Math.max(freeAt, now) + (bytesPerSecond > 0 ? (d.length * 1000) / bytesPerSecond : 0);
      queue.push({ at: Math.max(freeAt + latencyMs, queue.at(-1)?.at ?? 0), d });
      timer ??= setTimeout(pump, Math.max(0, queue[0]!.at - now));
    };
  }

  /** Drops every open connection (both directions, with a reset). Returns how many (pairs; a stalled one counts half). */
  cut(): number {
    const n = this.sockets.size / 2;
    for (const s of this.sockets) s.resetAndDestroy();
    this.sockets.clear();
    return n;
  }

  /**
   * While on, what clients send is discarded and what servers send still
   * arrives: e.g. a replication client receives data but its
   * acknowledgements never reach the server.
   */
  swallowClientBytes(on: boolean): void {
    this.dropUpstream = on;
  }

  /**
   * While on, connections hang as behind a firewall that drops packets: new
   * ones are accepted and never answered, open ones stop carrying bytes
   * both ways, and nothing is reset: a side that closes meanwhile leaves
   * the other side's connection open (the server's session lives on).
   */
  stall(on: boolean): void {
    this.stalled = on;
  }

  /**
   * A slow link (a store's DSL or 4G): every chunk arrives `latencyMs`
   * late, and each direction carries at most `bytesPerSecond` (0: no
   * limit). `slow({})` makes it fast again.
   */
  slow(options: { readonly latencyMs?: number; readonly bytesPerSecond?: number }): void {
    this.slowness = { latencyMs: options.latencyMs ?? 0, bytesPerSecond: options.bytesPerSecond ?? 0 };
  }

  refuse(): void {
    this.refusing = true;
  }

  accept(): void {
    this.refusing = false;
  }

  /** Replaces the host:port of a PostgreSQL URL with the proxy's. */
  url(target: string): string {
    const u = new URL(target);
    u.hostname = '127.0.0.1';
    u.port = String(this.port);
    return u.toString();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
