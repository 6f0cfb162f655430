/**
 * Where Redis is, from the URL forms the fleet reads (jobfleet/redis_target.py):
 * - `redis://[:password@]host:port/db` (or `rediss://`): one server;
 * - `redis+sentinel://[:password@]host:port,host:port/master[/db]`: Sentinel addresses and the
 *   master's name (the password is the master's);
 * - a plain URL plus `sentinels: "host:port,host:port"` and `master: "name"`: the URL gives database
 *   and password, Sentinel the address.
 */

import type { RedisOptions } from "ioredis";

import { RedisTargetError } from "./errors.js";

const SENTINEL_SCHEME = "redis+sentinel:";
const DEFAULT_SENTINEL_PORT = 26379;
// As the Python side: a Sentinel that never answers is given up for the next one.
const SENTINEL_TIMEOUT_MS = 2_000;

export interface SentinelOptions {
  /** Sentinel addresses, `host:port,host:port` (JOBFLEET_REDIS_SENTINELS) */
  sentinels?: string | undefined;
  /** the master's name (JOBFLEET_REDIS_SENTINEL_MASTER) */
  master?: string | undefined;
}

export interface Target {
  /** a plain URL, or undefined behind Sentinel */
  url?: string;
  sentinels: { host: string; port: number }[];
  master?: string;
  db: number;
  username?: string;
  password?: string;
}

function refuse(message: string): never {
  throw new RedisTargetError(message);
}

export function parseAddresses(text: string): { host: string; port: number }[] {
  const addresses = text
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean)
    .map((item) => {
      const colon = item.lastIndexOf(":");
      const host = (colon >= 0 ? item.slice(0, colon) : item).replace(/^\[|\]$/g, "");
      const port = colon >= 0 ? item.slice(colon + 1) : "";
      if (!host) refuse(`Sentinel address ${JSON.stringify(item)} has no host`);
      if (port && !/^\d+$/.test(port))
        refuse(`Sentinel address ${JSON.stringify(item)} has a port that is not a number`);
      return { host, port: port ? Number(port) : DEFAULT_SENTINEL_PORT };
    });
  if (addresses.length === 0) refuse("no Sentinel address given");
  return addresses;
}

function db(text: string): number {
  return /^\d+$/.test(text) ? Number(text) : refuse(`Redis database ${JSON.stringify(text)} is not a number`);
}

const decoded = (text: string) => (text ? decodeURIComponent(text) : undefined);

export function parseTarget(url: string, options: SentinelOptions = {}): Target {
  if (url.startsWith(`${SENTINEL_SCHEME}//`)) {
    // URL cannot read several host:port pairs as a host: take it apart by hand
    const rest = url.slice(SENTINEL_SCHEME.length + 2);
    const slash = rest.indexOf("/");
    const netloc = slash >= 0 ? rest.slice(0, slash) : rest;
    const path = (slash >= 0 ? rest.slice(slash) : "").split(/[?#]/, 1)[0]!.split("/").filter(Boolean);
    const at = netloc.lastIndexOf("@");
    const [username = "", ...password] = (at >= 0 ? netloc.slice(0, at) : "").split(":");
    const hosts = at >= 0 ? netloc.slice(at + 1) : netloc;
    const master =
      options.master ??
      (path[0] ? decodeURIComponent(path[0]) : refuse("redis+sentinel:// URL names no master: .../MASTER[/DB]"));
    return clean({
      sentinels: parseAddresses(options.sentinels || hosts),
      master,
      db: db(path[1] ?? "0"),
      username: decoded(username),
      password: decoded(password.join(":")),
    });
  }
  if (options.sentinels || options.master) {
    if (!(options.sentinels && options.master)) refuse("Sentinel needs both the addresses and the master's name");
    const parts = new URL(url);
    return clean({
      sentinels: parseAddresses(options.sentinels),
      master: options.master,
      db: db(parts.pathname.replace(/^\/+|\/+$/g, "") || "0"),
      username: decoded(parts.username),
      password: decoded(parts.password),
    });
  }
  return { url, sentinels: [], db: 0 };
}

function clean(target: Target): Target {
  return Object.fromEntries(Object.entries(target).filter(([, v]) => v !== undefined)) as unknown as Target;
}

/** ioredis options for a Sentinel target (a plain URL is handed to ioredis as it is). */
export function sentinelOptions(target: Target): RedisOptions {
  return {
    sentinels: target.sentinels,
    name: target.master!,
    db: target.db,
    ...(target.username !== undefined && { username: target.username }),
    ...(target.password !== undefined && { password: target.password }),
    sentinelCommandTimeout: SENTINEL_TIMEOUT_MS,
    // A demoted master answers writes with READONLY: reconnect (Sentinel names the new master)
    // and send the command again, which is safe: a job's id is fixed before the first try.
    reconnectOnError: (error: Error) => (error.message.startsWith("READONLY") ? 2 : false),
  };
}
