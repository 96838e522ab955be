import type { Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import { ImageError, RestartTransfer, imageDownloadError, imageDownloadFatalError, imageDownloadTimeoutError } from './errors.ts';
import { MAX_REDIRECTS, bodyExcerpt, dispatcherFor, proxyFor, requestHeaders, tlsFor, type HttpSettings } from './http-client.ts';
import { httpGet, type GetBody } from './http-get.ts';
import type { ConsumerMemory } from './receive-ring.ts';
import type { ImageSource } from './source.ts';

export interface RetryPolicy {
  /** ipa-image-download-connection-retries: attempts = retries + 1. */
  retries: number;
  /** Seconds between attempts. */
  intervalSeconds: number;
  /** Epoch (clock seconds) after which the download is abandoned (ipa-image-download-max-duration). */
  deadline: number | undefined;
  maxDurationSeconds: number;
}

export interface HttpSourceOptions {
  imageId: string;
  http: HttpSettings;
  retry: RetryPolicy;
  clock: Clock;
  log: Logger;
  /** The machine is going down (ctx.signal): no more requests, resumes or retries. */
  signal?: AbortSignal | undefined;
}

/** What both transports answer: undici's response data, or httpGet's (which can read into place). */
interface Response {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: AsyncIterable<Buffer> & { text(): Promise<string>; destroy(): void; readInto?: GetBody['readInto'] };
}

/**
 * An image served over HTTP(S) as a stream of chunks (spec §9.4), better than IPA at one
 * thing: a connection that drops or stalls mid-stream is resumed with a Range request from
 * the next byte, guarded by If-Range (the ETag, else Last-Modified), so the hash state and
 * everything written stay valid. A server that answers the Range request with the whole
 * entity makes the transfer start over cleanly (RestartTransfer).
 */
export class HttpSource implements ImageSource {
  readonly description: string;
  readonly size: number | undefined;
  private readonly url: string;
  private readonly opts: HttpSourceOptions;
  private response: Response;
  private readonly validator: string | undefined;
  private delivered = 0;
  private resumes = 0;
  private consumerMemory: ConsumerMemory | undefined;
  /** Stream offset of the current response's first body byte. */
  private base = 0;

  private constructor(url: string, response: Response, opts: HttpSourceOptions) {
    this.url = url;
    this.description = url;
    this.opts = opts;
    this.response = response;
    const length = header(response, 'content-length');
    this.size = length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined;
    const etag = header(response, 'etag');
    this.validator = etag && !etag.startsWith('W/') ? etag : header(response, 'last-modified');
  }

  /**
   * Opens the first URL that answers 200 (spec §9.4): per URL, connection errors and 5xx are
   * retried; a 4xx is fatal at once; when every URL failed, ImageDownloadError lists why.
   */
  static async open(urls: readonly string[], opts: HttpSourceOptions): Promise<HttpSource> {
    const details: string[] = [];
    const started = opts.clock.now();
    for (const url of urls) {
      try {
        opts.log.info({ url }, `Attempting to download image from ${url}`);
        const response = await getWithRetries(url, {}, opts);
        return new HttpSource(url, response, opts);
      } catch (err) {
        if (err instanceof ImageError && !err.retryable) throw err;
        const failtime = (opts.clock.now() - started).toFixed(1);
        details.push(`URL: ${url}; time: ${failtime} seconds. Error: ${secondary(err)}`);
        opts.log.warn({ url, err: secondary(err) }, 'image URL failed, trying the next one');
      }
    }
    throw imageDownloadError(opts.imageId, details.join('\n '));
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    for (;;) {
      try {
        for await (const chunk of this.response.body as AsyncIterable<Buffer>) {
          this.checkDeadline();
          this.delivered += chunk.length;
          yield chunk;
        }
        if (this.size === undefined || this.delivered >= this.size) return;
        throw new Error(`the connection ended after ${this.delivered} of ${this.size} bytes`);
      } catch (err) {
        if (err instanceof ImageError || err instanceof RestartTransfer) throw err;
        this.opts.signal?.throwIfAborted();
        this.checkDeadline();
        await this.resume(err);
      }
    }
  }

  async close(): Promise<void> {
    this.response.body.destroy();
  }

  /**
   * The bytes still to come go straight into `memory` (the block sink's buffers), this
   * connection's and every resumed one's. Only for a stream that reaches the sink unchanged.
   */
  readInto(memory: ConsumerMemory): void {
    this.consumerMemory = memory;
    this.response.body.readInto?.(memory, this.base);
  }


  /** Reconnects with `Range: bytes=<delivered>-`; counts against the retries of spec §9.4. */
  private async resume(cause: unknown): Promise<void> {
    this.response.body.destroy();
    const { retries, intervalSeconds } = this.opts.retry;
    for (;;) {
      if (this.resumes >= retries) {
        throw imageDownloadError(this.opts.imageId, `the download from ${this.url} broke off after ${this.delivered} bytes and could not be resumed: ${secondary(cause)}`);
      }
      this.resumes++;
      this.opts.log.warn(
        { url: this.url, offset: this.delivered, attempt: this.resumes, err: secondary(cause) },
        `image download interrupted at byte ${this.delivered}; resuming with a Range request`,
      );
      await this.opts.clock.sleep(intervalSeconds, this.opts.signal);
      this.checkDeadline();
      const range: Record<string, string> = { range: `bytes=${this.delivered}-` };
      if (this.validator) range['if-range'] = this.validator;
      let response: Response;
      try {
        response = await request(this.url, range, this.opts);
      } catch (err) {
        if (err instanceof ImageError) throw err;
        cause = err;
        continue;
      }
      if (response.statusCode === 206 && contentRangeStart(response) === this.delivered) {
        this.response = response;
        this.base = this.delivered;
        if (this.consumerMemory) response.body.readInto?.(this.consumerMemory, this.base);
        return;
      }
      if (response.statusCode === 200) {
        response.body.destroy();
        this.opts.log.warn({ url: this.url }, 'the server does not resume (answered 200 to a Range request): starting over');
        throw new RestartTransfer(`${this.url} cannot resume at byte ${this.delivered}`);
      }
      const excerpt = await bodyExcerpt(response.body);
      if (response.statusCode >= 400 && response.statusCode < 500 && response.statusCode !== 416) {
        throw imageDownloadFatalError(this.opts.imageId, statusMessage(response, this.url, excerpt));
      }
      cause = new Error(statusMessage(response, this.url, excerpt));
    }
  }

  private checkDeadline(): void {
    const { deadline, maxDurationSeconds } = this.opts.retry;
    if (deadline !== undefined && this.opts.clock.now() > deadline) {
      this.response.body.destroy();
      throw imageDownloadTimeoutError(this.opts.imageId, `Download exceeded max allowed time (${maxDurationSeconds} seconds)`);
    }
  }
}

function header(response: Response, name: string): string | undefined {
  const v = response.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function contentRangeStart(response: Response): number | undefined {
  const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(header(response, 'content-range') ?? '');
  return m ? Number(m[1]) : undefined;
}

function statusMessage(response: Response, url: string, body: string): string {
  return `Received status code ${response.statusCode} from ${url}, expected 200. Response body: ${body} Response headers: ${JSON.stringify(response.headers)}`;
}

function secondary(err: unknown): string {
  if (err instanceof ImageError) return err.details.replace(/^Download of image .*? failed: /, '');
  if (err instanceof Error) {
    const code = (err as { code?: string }).code;
    return code && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}

/** One GET, with the deadline of ipa-image-download-max-duration as an abort signal. */
async function request(url: string, headers: Record<string, string>, opts: HttpSourceOptions): Promise<Response> {
  const remaining = opts.retry.deadline === undefined ? undefined : opts.retry.deadline - opts.clock.now();
  if (remaining !== undefined && remaining <= 0) {
    throw imageDownloadTimeoutError(opts.imageId, `Download exceeded max allowed time (${opts.retry.maxDurationSeconds} seconds)`);
  }
  opts.signal?.throwIfAborted();
  const deadline = remaining === undefined ? undefined : AbortSignal.timeout(Math.ceil(remaining * 1000));
  const signal = opts.signal && deadline ? AbortSignal.any([opts.signal, deadline]) : (opts.signal ?? deadline);
  try {
    return await follow(new URL(url), requestHeaders(opts.http, headers), opts, signal);
  } catch (err) {
    opts.signal?.throwIfAborted();
    if (deadline?.aborted) {
      throw imageDownloadTimeoutError(opts.imageId, `Download exceeded max allowed time (${opts.retry.maxDurationSeconds} seconds)`);
    }
    throw err;
  }
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * A GET, following redirects as python-requests does (credentials dropped when the host
 * changes). Without a proxy the body is read by httpGet, into fixed memory; through a proxy
 * undici does the whole request.
 */
async function follow(url: URL, headers: Record<string, string>, opts: HttpSourceOptions, signal: AbortSignal | undefined): Promise<Response> {
  for (let hop = 0; ; hop++) {
    if (proxyFor(url, opts.http)) {
      const dispatcher = await dispatcherFor(url, opts.http);
      return dispatcher.request({ origin: url.origin, path: `${url.pathname}${url.search}`, method: 'GET', headers, highWaterMark: 1 << 20, signal });
    }
    const response = await httpGet(url, { headers, timeoutMs: opts.http.timeoutSeconds * 1000, tls: await tlsFor(opts.http), signal });
    const location = header(response, 'location');
    if (!REDIRECTS.has(response.statusCode) || location === undefined || hop >= MAX_REDIRECTS) return response;
    response.body.destroy();
    const next = new URL(location, url);
    if (next.hostname !== url.hostname) {
      const { authorization: _dropped, ...rest } = headers;
      headers = rest;
    }
    url = next;
  }
}

/**
 * A GET that answers 200, with IPA's connection-level retries (spec §9.4, §14.3): connection
 * errors and 5xx are tried again up to `retries` times, a 4xx is fatal at once.
 */
export async function getWithRetries(url: string, headers: Record<string, string>, opts: HttpSourceOptions): Promise<Response> {
  const { retries, intervalSeconds } = opts.retry;
  for (let attempt = 0; ; attempt++) {
    let failure: Error;
    try {
      const response = await request(url, headers, opts);
      if (response.statusCode === 200) return response;
      const excerpt = await bodyExcerpt(response.body);
      const message = statusMessage(response, url, excerpt);
      if (response.statusCode < 500) throw imageDownloadFatalError(opts.imageId, message);
      failure = imageDownloadError(opts.imageId, message);
    } catch (err) {
      if (err instanceof ImageError && !err.retryable) throw err;
      opts.signal?.throwIfAborted();
      failure = err as Error;
    }
    if (attempt >= retries) throw failure instanceof ImageError ? failure : imageDownloadError(opts.imageId, secondary(failure));
    opts.log.warn({ url, attempt: attempt + 1, err: secondary(failure) }, `Unable to connect to ${url}, retrying`);
    await opts.clock.sleep(intervalSeconds, opts.signal);
  }
}

/** A small text resource (a checksum file) fetched with the image's proxies, TLS and credentials. */
export async function fetchText(url: string, opts: HttpSourceOptions): Promise<string> {
  const response = await getWithRetries(url, {}, { ...opts, imageId: url });
  const text = await response.body.text();
  if (text.length > 16 * 1024 * 1024) throw imageDownloadError(url, 'checksum file larger than 16 MiB');
  return text;
}
