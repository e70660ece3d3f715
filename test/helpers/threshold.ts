/**
 * Threshold deployments with real processes (SPEC.md §5.6): n `blindfold manager` processes,
 * each with its own home, SQLite store, root key and CA, and an in-process appliance enrolled at
 * every node.
 */
import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import { Appliance, type ApplianceState } from '../../src/appliance/appliance.ts';
import type { ThresholdTiming } from '../../src/appliance/threshold.ts';
import { dealKeyring, enrollThresholdAppliance } from '../../src/cli/threshold.ts';
import { cleanup, type ManagerProcess, newRootKey, startManagerProcess, tmpDir } from './deploy.ts';

export interface ThresholdDeployment {
  t: number;
  n: number;
  homes: string[];
  rootKeys: string[];
  /** nodes[j − 1] is node j; null while stopped. */
  nodes: (ManagerProcess | null)[];
  ports: number[];
  dir: string;
  state: ApplianceState;
  appliance: Appliance;
  newAppliance(timing?: ThresholdTiming, state?: ApplianceState): Appliance;
  stop(index: number): Promise<void>;
  /** Restarts node `index` from its home on its old port. */
  restart(index: number): Promise<void>;
  /** Copies node `index`'s complete state (home with store, CA and its root key) elsewhere. */
  copyNode(index: number): Promise<{ home: string; rootKey: string }>;
  close(): Promise<void>;
}

export async function startThreshold(
  t: number,
  n: number,
  keyring = 'default',
  timing?: ThresholdTiming,
  /** Extra arguments of every node's `blindfold manager` (e.g. `--workers 0`). */
  managerArgs: string[] = [],
): Promise<ThresholdDeployment> {
  const homes = await Promise.all(Array.from({ length: n }, () => tmpDir('bf-node-')));
  const rootKeys = homes.map(() => newRootKey());
  const nodes: (ManagerProcess | null)[] = await Promise.all(
    homes.map((home, i) => startManagerProcess({ home, rootKey: rootKeys[i]!, args: managerArgs })),
  );
  const ports = nodes.map((m) => Number(new URL(m!.url).port));
  const ops = nodes.map((m, i) => ({ index: i + 1, url: m!.url, caPem: m!.caPem, op: m!.op }));
  await dealKeyring(ops, keyring, t);
  const dir = await tmpDir('bf-appliance-');
  const state = await enrollThresholdAppliance({ dir, name: 'threshold-appliance', nodes: ops });
  const made: Appliance[] = [];
  let current = state;
  const newAppliance = (tm = timing, s?: ApplianceState) => {
    const a = new Appliance({ dir, state: s ?? current, threshold: tm });
    made.push(a);
    return a;
  };
  const appliance = newAppliance();
  await appliance.initKeyring(keyring);
  current = appliance.state;
  const copies: string[] = [];
  const d: ThresholdDeployment = {
    t,
    n,
    homes,
    rootKeys,
    nodes,
    ports,
    dir,
    state: appliance.state,
    appliance,
    newAppliance,
    async stop(index) {
      await nodes[index - 1]?.stop();
      nodes[index - 1] = null;
    },
    async restart(index) {
      nodes[index - 1] = await startManagerProcess({
        home: homes[index - 1]!,
        rootKey: rootKeys[index - 1]!,
        port: ports[index - 1],
        args: managerArgs,
      });
    },
    async copyNode(index) {
      const home = await tmpDir('bf-stolen-');
      await cp(homes[index - 1]!, home, { recursive: true });
      copies.push(home);
      return { home, rootKey: rootKeys[index - 1]! };
    },
    async close() {
      for (const a of made) a.close();
      await Promise.all(nodes.map((m) => m?.stop()));
      await cleanup(...homes, dir, ...copies);
    },
  };
  return d;
}

export const dbOf = (home: string) => join(home, 'blindfold.db');
