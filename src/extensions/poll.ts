import { z } from 'zod';
import { invalidCommand } from '../errors.ts';
import { inventoryFor } from '../hardware/inventory/inventory.ts';
import type { NodeDict } from '../steps/types.ts';
import { command, type Extension } from './types.ts';

/**
 * poll.get_hardware_info returns a freshly collected inventory (spec §10); poll.set_node_info
 * gives a standalone agent the node it would otherwise get from lookup (spec §7).
 */
export const pollExtension: Extension = {
  name: 'poll',
  commands: {
    get_hardware_info: command('sync', z.looseObject({}), async (_p, ctx) => inventoryFor(ctx)),
    set_node_info: command('sync', z.looseObject({ node_info: z.record(z.string(), z.unknown()) }), async (params, ctx) => {
      if (!ctx.standalone) {
        throw invalidCommand('Node lookup data can only be set when the Agent is running in standalone mode.');
      }
      const info = params.node_info;
      const node = typeof info.node === 'object' && info.node !== null ? (info.node as NodeDict) : (info as NodeDict);
      ctx.conductor.cacheNode(node);
      ctx.log.info({ node: node.uuid ?? null }, 'node info set (standalone)');
      return null;
    }),
  },
};
