import type { AgentContext } from '../../agent-context.ts';
import { loadPlugins, type PluginLoadResult } from './loader.ts';

/**
 * Loads the operator plugins named by ina-plugin-dir into the agent's step registry, once
 * at start (plugins are files in the ramdisk: a reboot reloads the same ones). Problems are
 * logged and kept on the registry, which then refuses get_*_steps with them.
 */
export async function installPlugins(ctx: AgentContext): Promise<PluginLoadResult> {
  const registry = ctx.steps;
  const loaded = await loadPlugins({
    dirs: ctx.config.pluginDir,
    stepTimeoutSeconds: ctx.config.pluginStepTimeout,
    reservedNames: registry.list().flatMap((p) => [p.name, p.displayName]),
  });
  for (const { provider } of loaded.plugins) {
    registry.add(provider);
    ctx.log.info(
      { plugin: provider.name, version: provider.version, file: provider.origin, steps: provider.steps.map((s) => s.step) },
      'operator plugin loaded',
    );
  }
  for (const { provider } of loaded.plugins) {
    for (const kind of ['deploy', 'clean', 'service'] as const) {
      for (const step of provider.steps.filter((s) => s.kinds[kind])) {
        const winner = registry.find(kind, step.step, ctx)?.provider;
        if (winner === provider) {
          const replaced = registry.overridden(kind, step.step, ctx);
          if (replaced.length > 0) {
            ctx.log.info({ plugin: provider.name, kind, step: step.step, replaces: replaced.map((p) => p.displayName) }, `plugin step ${step.step} replaces a ${kind} step of the same name`);
          }
        } else if (winner) {
          ctx.log.warn({ plugin: provider.name, kind, step: step.step, winner: winner.displayName }, `plugin step ${step.step} is shadowed by ${winner.displayName} (higher support level or priority)`);
        }
      }
    }
  }
  for (const problem of loaded.problems) ctx.log.error({ problem }, 'operator plugin refused');
  registry.loadProblems.push(...loaded.problems);
  return loaded;
}
