/**
 * Private Redis servers on loopback for the tests that stop one (the shared server is never
 * touched): a single server, and a Sentinel group like tests/chaos/servers.py's SentinelGroup.
 */

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { Redis, waitFor } from "./servers.js";

const MASTER = "jobfleet";

/** Start a server process and wait until it answers on `port`. */
async function started(port: number, command: string, argv: string[], cwd: string): Promise<ChildProcess> {
  const child = spawn(command, argv, { cwd, stdio: "ignore" });
  const client = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on("error", () => {});
  try {
    await waitFor(
      `${command} on port ${port}`,
      () =>
        client.connect().then(
          () => true,
          () => undefined,
        ),
      10_000,
    );
  } finally {
    client.disconnect();
  }
  return child;
}

/** One private redis-server that a test can stop and start again on the same port. */
export class PrivateRedis {
  readonly root = mkdtempSync(join(tmpdir(), "jf-ts-redis-"));
  port = 0;
  private process: ChildProcess | undefined;

  async start(): Promise<void> {
    this.port ||= await freePort();
    const argv = [
      "--port",
      `${this.port}`,
      "--bind",
      "127.0.0.1",
      "--dir",
      this.root,
      "--save",
      "",
      "--appendonly",
      "no",
    ];
    this.process = await started(this.port, "redis-server", argv, this.root);
  }

  async stop(): Promise<void> {
    const child = this.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((done) => child.once("exit", done));
    child.kill("SIGKILL");
    await exited;
  }

  url(): string {
    return `redis://127.0.0.1:${this.port}/0`;
  }

  async remove(): Promise<void> {
    await this.stop();
    rmSync(this.root, { recursive: true, force: true });
  }
}

export const freePort = () =>
  new Promise<number>((done) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });

/** A Redis master, its replicas and a Sentinel watching it (quorum 1), all private on loopback. */
export class SentinelGroup {
  readonly root = mkdtempSync(join(tmpdir(), "jf-ts-sentinel-"));
  readonly processes = new Map<number, ChildProcess>();
  ports: number[] = [];
  sentinelPort = 0;

  async start(replicas: number): Promise<void> {
    this.ports = await Promise.all(Array.from({ length: 1 + replicas }, freePort));
    this.sentinelPort = await freePort();
    for (const [i, port] of this.ports.entries()) {
      const argv = ["--port", `${port}`, "--bind", "127.0.0.1", "--dir", this.root, "--save", "", "--appendonly", "no"];
      if (i > 0) argv.push("--replicaof", "127.0.0.1", `${this.ports[0]}`);
      await this.spawn(port, "redis-server", argv);
    }
    const config = join(this.root, "sentinel.conf"); // Sentinel rewrites it: a file of its own
    writeFileSync(
      config,
      [
        `port ${this.sentinelPort}`,
        "bind 127.0.0.1",
        `dir ${this.root}`,
        `sentinel monitor ${MASTER} 127.0.0.1 ${this.ports[0]} 1`,
        `sentinel down-after-milliseconds ${MASTER} 1000`,
        `sentinel failover-timeout ${MASTER} 10000`,
        "",
      ].join("\n"),
    );
    const sentinel = spawnSync("sh", ["-c", "command -v redis-sentinel"]).status === 0;
    await this.spawn(
      this.sentinelPort,
      sentinel ? "redis-sentinel" : "redis-server",
      sentinel ? [config] : [config, "--sentinel"],
    );
    await this.waitForReplicas(this.ports[0]!, replicas);
  }

  private async spawn(port: number, command: string, argv: string[]): Promise<void> {
    this.processes.set(port, await started(port, command, argv, this.root));
  }

  client(port: number): Redis {
    return new Redis({ port });
  }

  async waitForReplicas(masterPort: number, count: number): Promise<void> {
    const master = this.client(masterPort);
    try {
      await waitFor(`${count} replica(s) online`, async () => {
        const info = await master.info("replication");
        return (info.match(/state=online/g) ?? []).length >= count ? true : undefined;
      });
    } finally {
      master.disconnect();
    }
  }

  url(db = 0): string {
    return `redis+sentinel://127.0.0.1:${this.sentinelPort}/${MASTER}/${db}`;
  }

  kill(port: number): void {
    this.processes.get(port)?.kill("SIGKILL");
  }

  stop(): void {
    for (const process of this.processes.values()) process.kill("SIGKILL");
    rmSync(this.root, { recursive: true, force: true });
  }
}
