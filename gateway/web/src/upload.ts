// Attachments: a small tus 1.0 client (core protocol and creation) for the gateway's resumable
// uploads, the attachment as the client keeps it, and signed download URLs.
import { num } from './util';

/** An attachment as the client shows it, from a MessageSent (protojson) or from history (query). */
export interface Att {
  id: string;
  kind: 'image' | 'audio' | 'video' | 'file';
  name: string;
  size: number;
  type: string;
  thumb: boolean; // a thumbnail exists
  w?: number;
  h?: number;
}

/** From protojson (live events, resume, upload answers) or query's JSON (history). */
export function attOf(a: any): Att {
  const kind = String(a.kind ?? '').replace(/^ATTACHMENT_KIND_/, '').toLowerCase();
  const img = a.image ?? {};
  return {
    id: a.attachmentId ?? a.id ?? '',
    kind: kind === 'image' || kind === 'audio' || kind === 'video' ? kind : 'file',
    name: a.name ?? '',
    size: num(a.size),
    type: a.contentType ?? a.content_type ?? '',
    thumb: !!a.thumbnail,
    w: img.width || undefined,
    h: img.height || undefined,
  };
}

/** How a preview names a message with attachments, as the servers do ("[image] caption", "[file] a.pdf (+2)"). */
export function previewText(text: string, atts?: Att[]): string {
  if (!atts?.length) return text;
  const a = atts[0];
  let label = a.kind === 'image' ? '[image]' : a.kind === 'audio' ? '[voice]' : a.kind === 'video' ? '[video]' : a.name ? '[file] ' + a.name : '[file]';
  if (atts.length > 1) label += ' (+' + (atts.length - 1) + ')';
  return text ? label + ' ' + text : label;
}

export function fmtSize(n: number): string {
  if (n < 1024) return n + ' B';
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + ' KiB';
  if (n < 1024 ** 3) return (n / 1024 ** 2).toFixed(1) + ' MiB';
  return (n / 1024 ** 3).toFixed(1) + ' GiB';
}

/** A refused or broken upload: fatal when trying again cannot help (the file itself was refused). */
export class UploadError extends Error {
  constructor(
    message: string,
    public code: string,
    public fatal: boolean,
  ) {
    super(message);
  }
}

/** Bytes sent per PATCH: a failure loses at most what is in flight, and the server keeps what arrived. */
const CHUNK = 4 << 20;

interface Answer {
  status: number;
  header: (name: string) => string;
  body: any;
}

/**
 * One resumable upload of file into conversation conv. run() creates it (POST) and sends the bytes in
 * chunks (PATCH); after a failure the next run() asks the server how much it has (HEAD) and continues
 * from there. It resolves with the attachment the completing PATCH answers.
 */
export class Upload {
  url = ''; // the upload's URL, once created
  private xhr: XMLHttpRequest | null = null;
  private stopped = false;

  constructor(
    private token: string,
    private conv: string,
    readonly file: File,
    private onProgress: (sent: number) => void,
  ) {}

  async run(): Promise<Att> {
    this.stopped = false;
    const size = this.file.size;
    let offset = 0;
    if (this.url) {
      const h = await this.request('HEAD', this.url, {});
      if (h.status === 404 || h.status === 410) this.url = ''; // gone (expired, or finished but unanswered): anew
      else if (h.status !== 200) throw refusal(h);
      else offset = num(h.header('Upload-Offset'));
    }
    if (!this.url) {
      const meta = 'filename ' + b64(this.file.name || 'file') + (this.file.type ? ',filetype ' + b64(this.file.type) : '');
      const c = await this.request('POST', 'v1/conversations/' + this.conv + '/uploads', {
        'Upload-Length': String(size),
        'Upload-Metadata': meta,
      });
      if (c.status !== 201 || !c.header('Location')) throw refusal(c);
      this.url = new URL(c.header('Location'), location.href).href;
      offset = 0;
    }
    this.onProgress(offset);
    for (;;) {
      const end = Math.min(size, offset + CHUNK);
      const p = await this.request(
        'PATCH',
        this.url,
        { 'Upload-Offset': String(offset), 'Content-Type': 'application/offset+octet-stream' },
        this.file.slice(offset, end),
        (n) => this.onProgress(offset + n),
      );
      if ((p.status === 201 || p.status === 202) && p.body?.attachment) {
        this.url = '';
        this.onProgress(size);
        return attOf(p.body.attachment);
      }
      if (p.status === 409) {
        // the server has another offset than this page thought: ask it
        const h = await this.request('HEAD', this.url, {});
        if (h.status !== 200) throw refusal(h);
        offset = num(h.header('Upload-Offset'));
        continue;
      }
      if (p.status !== 204) throw refusal(p);
      offset = num(p.header('Upload-Offset'));
      this.onProgress(offset);
    }
  }

  /** Stops what is in flight (the server keeps what it has). */
  stop(): void {
    this.stopped = true;
    this.xhr?.abort();
  }

  /** Abandons the upload: the server removes its bytes. */
  cancel(): void {
    this.stop();
    if (this.url) this.request('DELETE', this.url, {}).catch(() => undefined);
    this.url = '';
  }

  private request(method: string, url: string, headers: Record<string, string>, body?: Blob, progress?: (n: number) => void): Promise<Answer> {
    if (this.stopped && method !== 'DELETE') return Promise.reject(new UploadError('stopped', 'STOPPED', false));
    return new Promise((resolve, reject) => {
      const x = new XMLHttpRequest();
      x.open(method, url);
      x.setRequestHeader('Tus-Resumable', '1.0.0');
      x.setRequestHeader('Authorization', 'Bearer ' + this.token);
      for (const [k, v] of Object.entries(headers)) x.setRequestHeader(k, v);
      if (progress) x.upload.onprogress = (e) => progress(e.loaded);
      x.onload = () => {
        let parsed: any = null;
        try {
          parsed = x.responseText ? JSON.parse(x.responseText) : null;
        } catch {
          // not JSON
        }
        resolve({ status: x.status, header: (n) => x.getResponseHeader(n) ?? '', body: parsed });
      };
      x.onerror = x.ontimeout = () => reject(new UploadError('the connection broke', 'NETWORK', false));
      x.onabort = () => reject(new UploadError('stopped', 'STOPPED', false));
      x.onloadend = () => {
        if (this.xhr === x) this.xhr = null;
      };
      if (method !== 'DELETE') this.xhr = x;
      x.send(body ?? null);
    });
  }
}

/** An answer that is not what the protocol expects, as an error with the gateway's code and message. */
function refusal(a: Answer): UploadError {
  const code = String(a.body?.code ?? 'HTTP_' + a.status).replace(/^ERROR_CODE_/, '');
  const msg = a.body?.message ?? 'the upload failed (' + a.status + ')';
  // the file itself was refused (too large, its type, infected, the quota): trying again cannot help
  const fatal = a.status >= 400 && a.status < 500 && ![401, 408, 409, 423, 429].includes(a.status);
  return new UploadError(code + ': ' + msg, code, fatal);
}

function b64(s: string): string {
  const bytes = new TextEncoder().encode(s);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** Signed download URLs, kept until shortly before they expire. */
export class Files {
  private cache = new Map<string, { at: number; p: Promise<{ url: string; thumb: string }> }>();

  constructor(private token: string) {}

  url(conv: string, id: string): Promise<{ url: string; thumb: string }> {
    const key = conv + '/' + id;
    const hit = this.cache.get(key);
    if (hit && hit.at > Date.now()) return hit.p;
    // ids as they are: path-safe ([dgu]:hex, hex), and the gateway matches them unescaped
    const p = fetch('v1/conversations/' + conv + '/attachments/' + id + '/url', {
      headers: { Authorization: 'Bearer ' + this.token },
    }).then(async (r) => {
      const b = await r.json().catch(() => null);
      if (!r.ok || !b?.url) {
        this.cache.delete(key);
        throw new Error(b?.message ?? 'no URL (' + r.status + ')');
      }
      const exp = Date.parse(b.expires_at);
      this.cache.set(key, { at: isNaN(exp) ? Date.now() + 60_000 : exp - 60_000, p });
      return { url: b.url as string, thumb: (b.thumbnail_url as string) || '' };
    });
    this.cache.set(key, { at: Date.now() + 60_000, p });
    return p;
  }

  /** Forgets the URLs of an attachment (one was refused: expired, or the key changed). */
  forget(conv: string, id: string): void {
    this.cache.delete(conv + '/' + id);
  }
}
