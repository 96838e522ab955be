import { timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { AgentContext, DeploymentState } from './agent-context.ts';
import type { CommandRecord } from './api/command-log.ts';
import { CommandDispatcher } from './api/dispatcher.ts';
import { AgentApiServer, type ServerTls, type TokenVerdict } from './api/server.ts';
import { generateAutoTlsCertificate, writeTlsMaterial, type TlsMaterial } from './api/tls.ts';
import { isAbort, realClock, type Clock } from './clock.ts';
import type { AgentConfig } from './config.ts';
import { findAdvertiseHost, formatCallbackUrl } from './conductor/advertise.ts';
import { IronicClient } from './conductor/client.ts';
import { HeartbeatError } from './conductor/errors.ts';
import { Heartbeater } from './conductor/heartbeat.ts';
import { IronicHttp } from './conductor/http.ts';
import { LockPause, lookupNode } from './conductor/lookup.ts';
import type { ParsedLookup } from './conductor/schemas.ts';
import { ConductorState } from './conductor/state.ts';
import { decideToken, type TokenDecision } from './conductor/token.ts';
import { AGENT_VERIFY_CA, atLeast } from './conductor/version.ts';
import { builtinExtensions } from './extensions/index.ts';
import { imageSteps } from './extensions/standby-image.ts';
import { bootcSteps } from './bootc/step.ts';
import type { Extension } from './extensions/types.ts';
import { cleaningSteps } from './hardware/cleaning-steps.ts';
import { DiskGuard } from './hardware/disk-guard.ts';
import { waitForDisks } from './hardware/disk-wait.ts';
import { inspect, inspectionUrls } from './inspection/callback.ts';
import { listInterfaces } from './hardware/interfaces.ts';
import { PowerControl, type PowerAction } from './hardware/power.ts';
import { forgetRescue, isRescued } from './rescue/marker.ts';
import { rescuePaths, type RescuePaths } from './rescue/paths.ts';
import type { Logger, LogRing } from './log.ts';
import { runCommand, type RunCommand } from './run.ts';
import { genericProvider } from './steps/builtin.ts';
import { containerProvider } from './steps/containers/provider.ts';
import { injectFilesSteps } from './steps/inject-files/step.ts';
import { installPlugins } from './steps/plugins/install.ts';
import { StepRegistry } from './steps/registry.ts';
import type { StepProvider } from './steps/types.ts';
import { AGENT_VERSION } from './version.ts';

export interface AgentOptions {
  config: AgentConfig;
  log: Logger;
  logRing: LogRing;
  clock?: Clock;
  run?: RunCommand;
  /** Step providers besides the built-in one (operator plugins, tests). */
  providers?: StepProvider[];
  /** Extensions besides the built-in ones (tests). */
  extraExtensions?: Extension[];
  /** Simulated boot time after a simulated power action. */
  simulatedBootDelaySeconds?: number;
}

/** Seconds IPA waits for a NIC with a MAC before looking up anyway (spec §1.3 step 6). */
const NIC_WAIT_SECONDS = 60;
const NIC_POLL_SECONDS = 5;

/**
 * The agent's lifecycle (spec §1.3): look the node up, serve the API, heartbeat, and on a
 * (simulated) power action go quiet and boot again as a fresh ramdisk would. In standalone
 * mode (no API URL) only the API is served.
 */
export class Agent {
  readonly context: AgentContext;
  readonly dispatcher: CommandDispatcher;
  private readonly config: AgentConfig;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly runTool: RunCommand;
  private readonly conductor: ConductorState;
  private readonly deployment: DeploymentState = { partitionUuids: {} };
  private readonly http: IronicHttp | undefined;
  private readonly client: IronicClient | undefined;
  private readonly lockPause = new LockPause();
  private readonly lifetime = new AbortController();
  private server: AgentApiServer | undefined;
  private heartbeater: Heartbeater | undefined;
  private tls: TlsMaterial | undefined;
  private advertiseHost: string | undefined;
  private callbackUrl: string | undefined;
  private macs: string[] = [];
  private disksReady: Promise<void> = Promise.resolve();
  /** A simulated power cycle is under way; a second trigger joins it. */
  private cycling = false;
  private readonly rescue: RescuePaths;
  private stopped!: () => void;
  private readonly stoppedPromise = new Promise<void>((resolve) => (this.stopped = resolve));
  /** Resolves when the API is serving (first boot), for tests and the start-up benchmark. */
  readonly ready: Promise<void>;
  private markReady!: () => void;

  constructor(opts: AgentOptions) {
    this.config = opts.config;
    this.log = opts.log;
    this.clock = opts.clock ?? realClock;
    this.runTool = opts.run ?? runCommand;
    this.ready = new Promise((resolve) => (this.markReady = resolve));
    this.conductor = new ConductorState(this.config.agentToken);
    this.rescue = rescuePaths(this.config);
    if (this.config.apiUrls.length > 0) {
      this.http = new IronicHttp({
        urls: this.config.apiUrls,
        timeoutSeconds: this.config.httpRequestTimeout,
        insecure: this.config.insecure,
        cafile: this.config.cafile,
        certfile: this.config.certfile,
        keyfile: this.config.keyfile,
        tlsMinVersion: this.config.tlsMinVersion,
        globalRequestId: this.config.globalRequestId,
        log: this.log,
      });
      this.client = new IronicClient(this.http, {
        configuredVersion: this.config.ironicApiVersion,
        agentVersion: AGENT_VERSION,
        log: this.log,
      });
    }
    const power = new PowerControl({
      simulate: this.config.simulatePower,
      log: this.log,
      run: this.runTool,
      simulatedBootDelaySeconds: opts.simulatedBootDelaySeconds,
      hooks: { goDown: (action) => this.goDown(action), simulate: (action, delay) => this.simulatePowerCycle(action, delay) },
    });
    this.context = {
      config: this.config,
      log: this.log,
      logRing: opts.logRing,
      version: AGENT_VERSION,
      startedAt: Date.now() / 1000,
      conductor: this.conductor,
      steps: new StepRegistry([genericProvider([...cleaningSteps, ...injectFilesSteps, ...imageSteps, ...bootcSteps]), ...containerProvider(), ...(opts.providers ?? [])]),
      power,
      diskGuard: new DiskGuard({ allowDevices: this.config.allowDevice }),
      run: this.runTool,
      deployment: this.deployment,
      standalone: this.client === undefined,
      refreshNode: () => this.refreshNode(),
      enterRescue: () => this.enterRescue(),
    };
    this.dispatcher = new CommandDispatcher([...builtinExtensions(), ...(opts.extraExtensions ?? [])], this.context, {
      asyncFinished: (record) => this.commandFinished(record),
    });
  }

  /** Boots, then serves until stop(). Rejects when the first lookup times out (IPA exits non-zero). */
  async run(): Promise<void> {
    this.log.info({ version: AGENT_VERSION, apiUrls: this.config.apiUrls, simulatePower: this.config.simulatePower }, 'agent starting');
    // The operator's delay for slow hardware (IPA bug 1582797) holds everything back.
    if (this.config.hardwareInitializationDelay > 0) {
      await this.clock.sleep(this.config.hardwareInitializationDelay, this.lifetime.signal);
    }
    // IPA waits for disks before its lookup; nothing before serving needs them unless we
    // inspect, so the wait runs beside NIC discovery and lookup (a diskless wait is 30 s).
    this.disksReady = waitForDisks({
      run: this.runTool,
      log: this.log,
      clock: this.clock,
      diskGuard: this.context.diskGuard,
      attempts: this.config.diskWaitAttempts,
      delaySeconds: this.config.diskWaitDelay,
      signal: this.lifetime.signal,
    }).then(() => undefined);
    this.disksReady.catch(() => undefined); // an abort (stop) surfaces where it is awaited
    await installPlugins(this.context);
    // A rescued or locked-down agent serves nothing and must still not exit, or the
    // ramdisk's service manager would start it again (spec §1.3 steps 9 and 12).
    const keepAlive = setInterval(() => undefined, 1 << 30);
    try {
      await this.boot();
      this.markReady();
      await this.stoppedPromise;
    } finally {
      clearInterval(keepAlive);
    }
  }

  async stop(): Promise<void> {
    if (this.lifetime.signal.aborted) return;
    this.lifetime.abort();
    await this.goDown('stop');
    await this.dispatcher.reset('the agent is stopping');
    this.http?.close();
    this.stopped();
  }

  /** The callback URL Ironic is given; undefined until the API serves. */
  get agentUrl(): string | undefined {
    return this.callbackUrl;
  }

  /** `found`: a simulated boot that the rescue watch already looked up (its token is ours). */
  private async boot(found?: ParsedLookup): Promise<void> {
    if (this.client && found) {
      this.applyLookup(found, decideToken(undefined, found.token) as Exclude<TokenDecision, { action: 'fatal' }>);
    } else {
      const inspecting = inspectionUrls(this.config).length > 0;
      if (this.client || inspecting) this.macs = await this.waitForMacs();
      // Spec §1.3 step 7: inspection may tell us our node; its failures never stop start-up.
      if (inspecting) await this.disksReady;
      const nodeUuid = inspecting ? await inspect(this.context, { clock: this.clock, signal: this.lifetime.signal }) : undefined;
      if (this.client) await this.lookupUntilUsable(this.client, nodeUuid);
    }
    if (await isRescued(this.rescue)) {
      this.log.warn({ marker: this.rescue.markerFile }, 'this ramdisk was rescued: not serving the API and not heartbeating');
      this.watchForReboot();
      return;
    }
    // Commands (root device, steps) may rely on the disks: they are there before the API serves.
    await this.disksReady;
    await this.serve();
    if (this.client) this.startHeartbeat(this.client);
  }

  private async waitForMacs(): Promise<string[]> {
    const deadline = this.clock.now() + NIC_WAIT_SECONDS;
    for (;;) {
      const macs = (await listInterfaces({ run: this.runTool, withAddresses: false })).map((i) => i.mac_address);
      if (macs.length > 0 || this.clock.now() >= deadline) {
        if (macs.length === 0) this.log.error('no network interface with a MAC address found; lookup will fail');
        return macs;
      }
      await this.clock.sleep(NIC_POLL_SECONDS, this.lifetime.signal);
    }
  }

  private async lookupUntilUsable(client: IronicClient, nodeUuid: string | undefined): Promise<void> {
    for (;;) {
      const found = await lookupNode(client, this.macs, {
        timeoutSeconds: this.config.lookupTimeout,
        intervalSeconds: this.config.lookupInterval,
        maxIntervalSeconds: this.config.lookupMaxInterval,
        nodeUuid,
        lockPause: this.lockPause,
        clock: this.clock,
        log: this.log,
        signal: this.lifetime.signal,
      });
      const decision = decideToken(this.conductor.token, found.token);
      if (decision.action !== 'fatal') {
        this.applyLookup(found, decision);
        return;
      }
      if (!this.config.simulatePower) {
        // IPA: a restarted agent can never authenticate again; lock down and stay down (spec §3.5).
        this.log.fatal('Ironic already issued an agent token this process does not know (the agent restarted mid-operation); locking down');
        await this.context.power.request('lockdown');
        await this.stoppedPromise;
        this.lifetime.signal.throwIfAborted();
      }
      // Simulation: Ironic has not wiped the previous boot's token yet; a real reboot takes longer.
      this.log.warn('Ironic still holds a token from before the simulated reboot; looking up again');
      await this.clock.sleep(this.config.lookupInterval, this.lifetime.signal);
    }
  }

  private applyLookup(found: ParsedLookup, decision: Exclude<TokenDecision, { action: 'fatal' }>): void {
    if (decision.action === 'store') this.conductor.token = decision.token;
    else if (decision.action === 'keep') this.log.warn('lookup returned a masked token; keeping the token the agent already holds');
    else this.log.warn('lookup returned no usable agent token; Ironic will refuse heartbeats without one');
    this.conductor.node = found.node;
    this.conductor.settings = found.settings;
    if (found.settings.tlsMinVersion) this.http?.setTlsMinVersion(found.settings.tlsMinVersion);
  }

  private async serve(): Promise<void> {
    const tls = await this.serverTls();
    this.lifetime.signal.throwIfAborted();
    const protocol = tls ? 'https' : this.config.advertiseProtocol;
    if (this.client) {
      this.advertiseHost ??= await findAdvertiseHost(this.config, { run: this.runTool, clock: this.clock, log: this.log });
      this.callbackUrl = formatCallbackUrl(protocol, this.advertiseHost, this.config.advertisePort);
    }
    const server = new AgentApiServer({
      host: this.config.listenHost,
      port: this.config.listenPort,
      tls,
      dispatcher: this.dispatcher,
      checkToken: (token) => this.checkToken(token),
      status: () => ({ started_at: this.context.startedAt, version: AGENT_VERSION }),
      log: this.log,
    });
    await server.start();
    this.server = server;
    if (this.lifetime.signal.aborted) await this.goDown('stop');
  }

  /** Static TLS, auto-TLS (Ironic >= 1.68, a fresh certificate every boot), or plain HTTP (spec §6.1). */
  private async serverTls(): Promise<ServerTls | undefined> {
    const settings = this.conductor.settings;
    const minVersion = settings?.tlsMinVersion ?? this.config.tlsMinVersion;
    const ciphers = settings?.tlsCipherSuites ?? this.config.tlsCipherSuites;
    if (this.config.listenTls) {
      const [certPem, keyPem] = await Promise.all([
        readFile(this.config.tlsCertFile!, 'utf8'),
        readFile(this.config.tlsKeyFile!, 'utf8'),
      ]);
      return { certPem, keyPem, minVersion, ciphers };
    }
    this.tls = undefined;
    if (!this.client || !this.config.enableAutoTls) return undefined;
    if (!atLeast(await this.client.apiVersion(), AGENT_VERIFY_CA)) {
      this.log.info('Ironic is older than API 1.68: no auto-TLS, serving plain HTTP');
      return undefined;
    }
    this.advertiseHost ??= await findAdvertiseHost(this.config, { run: this.runTool, clock: this.clock, log: this.log });
    this.tls = generateAutoTlsCertificate({
      ip: this.advertiseHost,
      curve: this.config.tlsCertificateCurve,
      allowedClockSkewSeconds: this.config.autoTlsAllowedClockSkew,
    });
    await writeTlsMaterial(this.config.stateDir, this.tls);
    this.log.info({ ip: this.advertiseHost, dir: this.config.stateDir }, 'auto-TLS certificate generated');
    return { certPem: this.tls.certPem, keyPem: this.tls.keyPem, minVersion, ciphers };
  }

  /** Spec §6.5: equal to the held token; standalone without any token accepts all (IPA). */
  private checkToken(token: string | undefined): TokenVerdict {
    const held = this.conductor.token;
    if (token === undefined || token === '') return held === undefined && !this.client ? 'valid' : 'absent';
    if (held === undefined) return 'invalid';
    const a = Buffer.from(token);
    const b = Buffer.from(held);
    return a.length === b.length && timingSafeEqual(a, b) ? 'valid' : 'invalid';
  }

  private startHeartbeat(client: IronicClient): void {
    if (this.lifetime.signal.aborted) return;
    const heartbeater = new Heartbeater({
      clock: this.clock,
      log: this.log,
      minInterval: this.config.heartbeatMinInterval,
      heartbeatTimeout: () => this.conductor.settings?.heartbeatTimeout ?? 300,
      send: async () => {
        const uuid = this.conductor.nodeUuid;
        if (!uuid) throw new Error('no node UUID known: lookup has not succeeded');
        await client.heartbeat(uuid, { callbackUrl: this.callbackUrl!, token: this.conductor.token, verifyCa: this.tls?.certPem });
      },
      onError: (err) => {
        // Ironic wiped the token: it power-cycled the (simulated) node. A real ramdisk would
        // have been rebooted; the simulation boots itself again to match.
        if (this.config.simulatePower && err instanceof HeartbeatError && err.tokenRejected) {
          this.log.warn('Ironic no longer accepts our token: the node was power-cycled; simulating a fresh boot');
          this.simulatePowerCycle('reboot', 0);
        }
      },
    });
    this.heartbeater = heartbeater;
    heartbeater.start();
  }

  private commandFinished(_record: CommandRecord): void {
    this.heartbeater?.force();
  }

  private async goDown(action: PowerAction | 'rescue' | 'stop'): Promise<void> {
    this.log.warn({ action }, 'going down: stopping the heartbeat and the API');
    const heartbeater = this.heartbeater;
    this.heartbeater = undefined;
    await heartbeater?.stop();
    const server = this.server;
    this.server = undefined;
    await server?.stop();
  }

  /** The heartbeat stops at once (no second finalize_rescue), the API once the answer is out. */
  private enterRescue(): void {
    const heartbeater = this.heartbeater;
    this.heartbeater = undefined;
    void (async () => {
      try {
        await heartbeater?.stop();
        await this.clock.sleep(0.2, this.lifetime.signal);
        await this.goDown('rescue');
        this.log.warn('rescue finalized: the API and the heartbeat are stopped for good');
        this.watchForReboot();
      } catch (err) {
        if (!isAbort(err)) this.log.error({ err: String(err) }, 'stopping for rescue failed');
      }
    })();
  }

  /**
   * Simulation only: a rescued ramdisk is silent until the node reboots, which a real
   * machine does without telling it. Ironic wipes the token when rescue ends and at every
   * power action, so a lookup that Ironic answers with a fresh token means the node has
   * booted into the ramdisk again (unrescue then undeploy, or rescue again). That lookup's
   * token is the new boot's: a second lookup would only see it masked.
   */
  private watchForReboot(): void {
    const client = this.client;
    if (!this.config.simulatePower || !client) return;
    void (async () => {
      try {
        for (;;) {
          await this.clock.sleep(Math.max(1, this.config.lookupInterval), this.lifetime.signal);
          const outcome = await client.lookup(this.macs, this.conductor.nodeUuid).catch(() => undefined);
          if (outcome?.kind === 'found' && decideToken(undefined, outcome.token).action === 'store') {
            this.log.warn({ node: outcome.node.uuid }, 'simulation: Ironic issued a new token, the rescued node was rebooted');
            this.simulatePowerCycle('reboot', 0, outcome);
            return;
          }
        }
      } catch (err) {
        if (!isAbort(err)) this.log.error({ err: String(err) }, 'watching for the next boot failed');
      }
    })();
  }

  /**
   * Simulation only (--simulate-power): the heartbeat stops at once, the API after
   * `delaySeconds`; then everything a ramdisk keeps in memory is gone and the agent boots again.
   */
  private simulatePowerCycle(action: PowerAction, delaySeconds: number, found?: ParsedLookup): void {
    if (this.cycling || this.lifetime.signal.aborted) return;
    this.cycling = true;
    void (async () => {
      try {
        const heartbeater = this.heartbeater;
        this.heartbeater = undefined;
        await heartbeater?.stop();
        await this.clock.sleep(delaySeconds, this.lifetime.signal);
        await this.goDown(action);
        this.log.warn({ action }, 'simulated boot: forgetting the token and the command log, looking up again');
        await this.dispatcher.reset(`simulated ${action}`);
        this.conductor.forget();
        this.deployment.partitionUuids = {};
        this.deployment.cachedImageId = undefined;
        await forgetRescue(this.rescue);
        for (let first = true; ; first = false) {
          try {
            await this.boot(first ? found : undefined);
            return;
          } catch (err) {
            if (isAbort(err) || this.lifetime.signal.aborted) return;
            // A ramdisk's service manager restarts an agent whose lookup timed out.
            this.log.error({ err: String(err) }, 'simulated boot failed; starting over as the service manager would');
            await this.clock.sleep(Math.max(1, this.config.lookupInterval), this.lifetime.signal);
          }
        }
      } catch (err) {
        if (!isAbort(err)) this.log.error({ err: String(err) }, 'simulated power cycle failed');
      } finally {
        this.cycling = false;
      }
    })();
  }

  private async refreshNode(): Promise<void> {
    const uuid = this.conductor.nodeUuid;
    if (!this.client || !uuid) return;
    try {
      const outcome = await this.client.lookup(this.macs, uuid);
      if (outcome.kind === 'found') this.conductor.node = outcome.node;
      else this.log.warn({ detail: outcome.detail }, 'node refresh failed; using the cached node');
    } catch (err) {
      this.log.warn({ err: String(err) }, 'node refresh failed; using the cached node');
    }
  }
}
