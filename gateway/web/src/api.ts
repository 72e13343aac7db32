// Sign-in and the query API.
import { claims, hex, load, save } from './util';

export interface Config {
  queryUrl: string;
  devTokens?: boolean;
  signInUrl?: string;
  /** The notifier's Web Push application server key; absent: no notifications offered. */
  vapidPublicKey?: string;
}

export interface Session {
  token: string;
  userId: string;
  deviceId: string;
  expiresAt?: string;
}

const SESSION_KEY = 'parley.session';
const DEVICE_KEY = 'parley.device';

/** A stable id for this browser profile, drawn once. */
export function deviceId(): string {
  let d = load<string>(DEVICE_KEY, '');
  if (!d) {
    d = 'web-' + hex(16);
    save(DEVICE_KEY, d);
  }
  return d;
}

export async function loadConfig(): Promise<Config> {
  try {
    const r = await fetch('config.json', { cache: 'no-store' });
    if (r.ok) {
      const c = (await r.json()) as Partial<Config>;
      // no queryUrl: query is reached through this origin (a proxy routes its paths)
      return { ...c, queryUrl: c.queryUrl || location.origin };
    }
  } catch {
    // fall through to the defaults
  }
  return { queryUrl: location.origin };
}

export function storedSession(): Session | null {
  const s = load<Session | null>(SESSION_KEY, null);
  if (!s || !s.token) return null;
  const exp = claims(s.token).exp;
  if (exp && exp * 1000 < Date.now()) return null;
  return s;
}

export function storeSession(s: Session | null): void {
  save(SESSION_KEY, s ?? undefined);
}

/** Takes `#access_token=` from the fragment after a sign-in redirect. */
export function sessionFromFragment(): Session | null {
  const m = /[#&]access_token=([^&]+)/.exec(location.hash);
  if (!m) return null;
  history.replaceState(null, '', location.pathname + location.search);
  return sessionFromToken(decodeURIComponent(m[1]));
}

export function sessionFromToken(token: string): Session | null {
  const c = claims(token.trim());
  if (!c.sub || !c.did) return null;
  return { token: token.trim(), userId: c.sub, deviceId: c.did };
}

export async function devSignIn(user: string): Promise<Session> {
  const q = new URLSearchParams({ user, device: deviceId() });
  const r = await fetch('v1/dev/token?' + q.toString(), { method: 'POST' });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body?.error?.message ?? body?.message ?? 'sign-in failed (' + r.status + ')');
  return { token: body.token, userId: body.userId, deviceId: body.deviceId, expiresAt: body.expiresAt };
}

export class AuthError extends Error {}

export class Query {
  constructor(
    private base: string,
    private token: string,
  ) {}

  /** GETs path; a 429 (RATE_LIMITED) is asked again after its Retry-After, a few times. */
  async get<T>(path: string): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const r = await this.once<T>(path);
      if (r.retryAfter === undefined || attempt >= 4) {
        if (r.retryAfter !== undefined) throw new Error('query ' + path + ': rate limited');
        return r.body as T;
      }
      await new Promise((ok) => setTimeout(ok, r.retryAfter));
    }
  }

  private async once<T>(path: string): Promise<{ body?: T; retryAfter?: number }> {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 15_000);
    const r = await fetch(this.base.replace(/\/$/, '') + path, {
      headers: { Authorization: 'Bearer ' + this.token },
      signal: ctl.signal,
    }).finally(() => clearTimeout(timer));
    if (r.status === 401) throw new AuthError('unauthenticated');
    const body = await r.json().catch(() => null);
    if (r.status === 429) {
      // seconds (or an HTTP date); at most a minute, and at least a jittered second
      const h = r.headers.get('Retry-After') ?? '';
      const secs = /^\d+$/.test(h) ? Number(h) : Math.max(0, (Date.parse(h) - Date.now()) / 1000) || 1;
      return { retryAfter: Math.min(60, Math.max(1, secs)) * 1000 * (1 + Math.random() / 4) };
    }
    if (!r.ok) throw new Error(body?.error?.message ?? 'query ' + path + ': ' + r.status);
    return { body: body as T };
  }
}

export interface Preview {
  seq: number;
  sender?: string;
  text?: string;
}

export interface InboxItem {
  conversation_id: string;
  kind: 'direct' | 'group';
  title: string;
  last_seq: number;
  version: number;
  last_activity?: string;
  preview?: Preview;
  read_seq: number;
  unread: number;
}

export interface HistoryItem {
  seq: number;
  type: string;
  sender: string;
  client_msg_id?: string;
  text?: string;
  content_type?: string;
  occurred_at?: string;
  recalled?: unknown;
  member_ids?: string[];
  removed_reason?: 'left' | 'removed';
  edit_count?: number;
  reply_to?: ReplyTo;
  reactions?: { emoji: string; count: number; user_ids: string[] }[];
  attachments?: unknown[];
}

export interface ReplyTo {
  seq: number;
  sender?: string;
  snippet?: string;
  recalled?: boolean;
}

export interface HistoryPage {
  messages: HistoryItem[];
  has_more: boolean;
  next_before?: number;
}

export interface ConversationInfo {
  kind: 'direct' | 'group';
  title?: string;
  version: number;
  last_seq: number;
  last_activity?: string;
  preview?: Preview;
  owner_user_id?: string;
  settings?: { who_may_add?: 'members' | 'admins' };
  members: { user_id: string; role?: 'owner' | 'admin' | 'member'; read_seq: number; delivered_seq: number }[];
}

export interface Receipts {
  receipts: { user_id: string; read_seq: number; delivered_seq: number }[];
}
