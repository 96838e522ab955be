import { realClock } from '../clock.ts';
import type { AgentContext } from '../agent-context.ts';
import { resolveChecksum } from './checksum.ts';
import { authorizationFor, type HttpSettings } from './http-client.ts';
import { HttpSource, fetchText, type HttpSourceOptions } from './http-source.ts';
import type { ImageInfo } from './image-info.ts';
import { Progress } from './progress.ts';
import { writeImageToDevice, type WriteImageOptions, type WriteImageResult } from './write-image.ts';

/** A command's or a step's context: `signal` aborts when the machine goes down. */
export type ImageContext = AgentContext & { setProgress(progress: unknown): void; readonly signal?: AbortSignal };

/** What the conductor controls about images: Ironic's lookup answer, else the agent's options (spec §3.2). */
export function imageSettings(ctx: AgentContext) {
  const s = ctx.conductor.settings;
  return {
    md5Enabled: s?.md5Enabled ?? ctx.config.md5Enabled,
    permitted: s?.permittedImageFormats ?? ctx.config.permittedImageFormats,
    deepInspection: !(s?.disableDeepImageInspection ?? ctx.config.disableDeepImageInspection),
  };
}

/** The agent's image download and write for `info` (spec §9.3-§9.5), with progress in the command status. */
export async function writeImage(
  ctx: ImageContext,
  info: ImageInfo,
  device: string,
  settings: ReturnType<typeof imageSettings>,
  beforeCommit?: (head: Buffer, dev: { path: string; logicalBlockSize: number }) => void | Promise<void>,
  placement?: Pick<WriteImageOptions, 'target' | 'tooLarge'>,
): Promise<WriteImageResult> {
  const http: HttpSettings = {
    timeoutSeconds: ctx.config.imageDownloadConnectionTimeout,
    insecure: ctx.config.insecure,
    cafile: ctx.config.cafile,
    proxies: info.proxies,
    noProxy: info.noProxy,
    authorization: authorizationFor(info.id, info.authorization, info.basicAuth),
  };
  const maxDuration = ctx.config.imageDownloadMaxDuration;
  const sourceOpts: HttpSourceOptions = {
    imageId: info.id,
    http,
    clock: realClock,
    log: ctx.log,
    signal: ctx.signal,
    retry: {
      retries: ctx.config.imageDownloadConnectionRetries,
      intervalSeconds: ctx.config.imageDownloadConnectionRetryInterval,
      deadline: maxDuration > 0 ? realClock.now() + maxDuration : undefined,
      maxDurationSeconds: maxDuration,
    },
  };
  const expected = await resolveChecksum(info, {
    md5Enabled: settings.md5Enabled,
    fetchText: (url) => fetchText(url, sourceOpts),
    log: ctx.log,
  });
  const progress = new Progress({ image: info.id, log: ctx.log, publish: (report) => ctx.setProgress(report) });
  const result = await writeImageToDevice({
    imageId: info.id,
    device,
    openSource: () => HttpSource.open(info.urls, sourceOpts),
    expected,
    policy: { diskFormat: info.diskFormat, permitted: settings.permitted, deepInspection: settings.deepInspection },
    retries: ctx.config.imageDownloadConnectionRetries,
    retryIntervalSeconds: ctx.config.imageDownloadConnectionRetryInterval,
    run: ctx.run,
    log: ctx.log,
    clock: realClock,
    guard: async () => void (await ctx.diskGuard.check(device)),
    progress,
    beforeCommit,
    signal: ctx.signal,
    ...placement,
  });
  ctx.log.info(
    {
      image: info.id, device, seconds: Math.round(result.seconds * 10) / 10, bytes: result.bytes, received: result.receivedBytes,
      mbPerSecond: Math.round(result.bytes / 1e6 / Math.max(result.seconds, 0.001)), format: result.format, compression: result.compression,
      digests: { algorithm: result.algorithm, received: result.received, written: result.written },
    },
    `Image ${info.id} written to device ${device} in ${result.seconds.toFixed(1)} seconds (${result.bytes} bytes).`,
  );
  return result;
}
