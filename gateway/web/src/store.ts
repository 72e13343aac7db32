// The client's state: the connection, the inbox, the open conversation's
// timeline, the outbox. One mutable store; the view re-renders on `changed`.
import { AuthError, Config, ConversationInfo, HistoryItem, HistoryPage, InboxItem, Query, Receipts, Session } from './api';
import { Att, Files, Upload, UploadError, attOf, previewText } from './upload';
import { load, num, save, ulid } from './util';

export type ConnState = 'online' | 'connecting' | 'offline';

export interface Msg {
  seq: number; // 0 while not yet sequenced
  type: string; // MessageSent or a notice type
  sender: string;
  clientMsgId: string;
  text: string;
  at?: string;
  state: 'pending' | 'sent' | 'failed';
  recalled?: boolean;
  contentType?: string;
  edits?: number; // how often it was edited
  members?: string[];
  removedReason?: 'left' | 'removed';
  error?: string;
  replyTo?: Quote; // the message this one answers
  reactions?: Record<string, string[]>; // emoji → who reacted, in order
  mentionsMe?: boolean; // the user (or @all) is mentioned
  atts?: Att[]; // its attachments
}

/** A file attached in the composer: uploading, uploaded (its attachment known), or failed. */
export interface Staged {
  key: string;
  conv: string;
  name: string;
  size: number;
  state: 'uploading' | 'done' | 'failed';
  sent: number; // bytes the server has
  error?: string;
  fatal?: boolean; // the file was refused: trying again cannot help
  att?: Att;
  preview?: string; // a blob: URL of an image, shown while it is in the composer
  up: Upload;
}

/** At most this many attachments in one message (the decider's limit). */
export const MAX_ATTACHMENTS = 10;

/** The message a reply answers, as it is now. */
export interface Quote {
  seq: number;
  sender: string;
  snippet: string;
  recalled: boolean;
}

/** What a message sent from this device carries besides its text. */
export interface SendOpts {
  replyTo?: number;
  mentions?: string[];
  mentionAll?: boolean;
  atts?: Att[];
}

export type Role = 'owner' | 'admin' | 'member';

/** A refusal of one of the user's actions, shown until dismissed or replaced. */
export interface ActError {
  what: string;
  code: string;
  message: string;
}

export interface Conv {
  id: string;
  kind: 'direct' | 'group';
  title: string;
  members: string[];
  lastSeq: number;
  readSeq: number;
  lastActivity: string;
  preview: string;
  previewSeq: number; // the message the preview shows
  msgs: Map<number, Msg>; // by seq
  loaded: boolean;
  hasMore: boolean;
  loadingOlder: boolean;
  receipts: Map<string, { read: number; delivered: number }>;
  typing: Map<string, number>; // user → expiry (ms)
  roles: Map<string, Role>; // groups: each member's role, once known
  rolesKnown: boolean;
  whoMayAdd: 'members' | 'admins';
  left: string; // why the user is no longer a member ('' while it is)
  actError: ActError | null;
}

interface OutItem {
  clientMsgId: string;
  conv: string;
  text: string;
  state: 'pending' | 'sent' | 'failed';
  error?: string;
  at: string;
  replyTo?: number;
  mentions?: string[];
  mentionAll?: boolean;
  atts?: Att[];
}

const SEND_TIMEOUT = 10_000;
const TYPING_EVERY = 3_000;

export class Store {
  conn: ConnState = 'connecting';
  convs = new Map<string, Conv>();
  openId = '';
  presence = new Map<string, boolean>();
  error = '';
  private listeners = new Set<() => void>();
  private ws: WebSocket | null = null;
  private cursors: Record<string, number>;
  private outbox: OutItem[];
  private pending = new Map<string, { resolve: (f: any) => void; timer: number }>();
  private reqSeq = 0;
  private attempt = 0;
  private retryTimer = 0;
  private stopped = false;
  private resumed = false;
  userStream = '';
  private query: Query;
  files: Files;
  uploads = new Map<string, Staged[]>(); // conversation → what its composer holds
  private lastTypingSent = 0;
  private typingStop = 0;
  private readSent = new Map<string, number>();
  private deliveredSent = new Map<string, number>();
  private gapTimer = 0;
  private historyRetry = 0;
  private watched = '';
  private actions = new Map<string, { conv: string; what: string }>(); // commandId → an action awaiting its outcome
  private early = new Map<string, { code: string; message: string }>(); // commandId → a refusal read before its Accepted
  private pushCommands = new Set<string>(); // commandIds of registerPush / unregisterPush awaiting their outcome
  private wantOpen = ''; // a conversation to open once in step (a notification's link)
  /** Called each time a connection is in step (after its Resume). */
  onReady?: () => void;
  /** Called when a push command was refused by the decider, or this device's push target was taken off by the server. */
  onPushLost?: (why: string) => void;

  constructor(
    cfg: Config,
    public session: Session,
    private onSignOut: (why: string) => void,
  ) {
    this.query = new Query(cfg.queryUrl, session.token);
    this.files = new Files(session.token);
    // Cursors live as long as the state they describe, which is held in memory: a page load starts
    // from the inbox's versions.
    this.cursors = {};
    this.outbox = load(this.key('outbox'), [] as OutItem[]).map((o) => (o.state === 'sent' ? { ...o, state: 'pending' } : o));
    window.addEventListener('online', () => this.reconnectSoon(0));
    window.addEventListener('focus', () => {
      this.focused = true;
      this.markVisible();
    });
    window.addEventListener('blur', () => (this.focused = false));
    document.addEventListener('visibilitychange', () => this.markVisible());
    setInterval(() => this.expireTyping(), 1000);
    this.connect();
  }

  private key(k: string) {
    return 'parley.' + k + '.' + this.session.userId;
  }

  subscribe(f: () => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  private changedQueued = false;
  changed(): void {
    if (this.changedQueued) return;
    this.changedQueued = true;
    queueMicrotask(() => {
      this.changedQueued = false;
      this.listeners.forEach((f) => f());
    });
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    for (const list of this.uploads.values()) for (const st of list) st.up.stop();
    this.ws?.close(1000, 'signed out');
  }

  // ---- the connection ----

  private connect(): void {
    if (this.stopped) return;
    this.conn = 'connecting';
    this.resumed = false;
    this.changed();
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = proto + '//' + location.host + '/v1/ws?resume=1&access_token=' + encodeURIComponent(this.session.token);
    let ws: WebSocket;
    try {
      ws = new WebSocket(url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
    };
    // A connection that is not in step within 30 s (no Welcome, no Resumed) is given up and tried again.
    const watchdog = window.setTimeout(() => {
      if (this.ws === ws && !this.resumed) ws.close(3001, 'not ready');
    }, 30_000);
    ws.addEventListener('close', () => clearTimeout(watchdog));
    ws.onmessage = (m) => {
      if (typeof m.data !== 'string') return;
      let f: any;
      try {
        f = JSON.parse(m.data);
      } catch {
        return;
      }
      this.onFrame(f);
    };
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.onDisconnected();
      if (this.stopped) return;
      if (e.code === 4000) {
        this.conn = 'offline';
        this.error = 'This device connected elsewhere; reload to use it here.';
        this.changed();
        return;
      }
      if (e.code >= 4001 && e.code <= 4999) {
        this.onSignOut(e.reason || 'signed out by the server');
        return;
      }
      if (!opened) {
        // A refused upgrade (401) looks like a failed connection: ask query whether the token is still good.
        this.query.get('/v1/unread').then(
          () => this.scheduleReconnect(),
          (err) => (err instanceof AuthError ? this.onSignOut('your session ended; sign in again') : this.scheduleReconnect()),
        );
        return;
      }
      if (e.code === 1008 && /token/.test(e.reason)) {
        this.onSignOut('your session expired; sign in again');
        return;
      }
      this.scheduleReconnect();
    };
  }

  private onDisconnected(): void {
    this.conn = 'offline';
    // presence is unknown until the next connection watches again
    this.presence.clear();
    this.watched = '';
    for (const [, p] of this.pending) clearTimeout(p.timer);
    this.pending.clear();
    for (const o of this.outbox) if (o.state === 'sent') o.state = 'pending';
    this.changed();
  }

  private scheduleReconnect(): void {
    this.conn = 'offline';
    this.changed();
    const base = Math.min(30_000, 500 * 2 ** this.attempt);
    this.attempt++;
    this.reconnectSoon(base / 2 + Math.random() * (base / 2));
  }

  private reconnectSoon(ms: number): void {
    if (this.stopped || this.ws) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = window.setTimeout(() => this.connect(), ms);
  }

  private send(frame: Record<string, unknown>, timeout = SEND_TIMEOUT): Promise<any> {
    const ws = this.ws;
    const requestId = 'r' + ++this.reqSeq;
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.reject(new Error('offline'));
    ws.send(JSON.stringify({ requestId, ...frame }));
    return new Promise((resolve) => {
      const timer = window.setTimeout(() => {
        this.pending.delete(requestId);
        resolve({ error: { code: 'TIMEOUT', message: 'no answer' } });
      }, timeout);
      this.pending.set(requestId, { resolve, timer });
    });
  }

  /** A frame that is answered only when refused (signals). */
  private signal(frame: Record<string, unknown>): void {
    if (this.ws?.readyState === WebSocket.OPEN && this.resumed) this.ws.send(JSON.stringify({ requestId: 's' + ++this.reqSeq, ...frame }));
  }

  private onFrame(f: any): void {
    const rid = f.accepted?.requestId ?? f.error?.requestId ?? f.resumed?.requestId ?? f.pong?.requestId ?? f.presences?.requestId;
    if (rid && this.pending.has(rid)) {
      const p = this.pending.get(rid)!;
      clearTimeout(p.timer);
      this.pending.delete(rid);
      p.resolve(f);
    }
    if (f.welcome) this.onWelcome(f.welcome);
    else if (f.event) this.onEvent(f.event);
    else if (f.signal) this.onSignal(f.signal);
    else if (f.presences) for (const u of f.presences.users ?? []) this.presence.set(u.userId, online(u.state));
    else if (f.error && !f.error.requestId && f.error.code === 'ERROR_CODE_UNAUTHENTICATED') this.onSignOut('your session expired; sign in again');
    this.changed();
  }

  private async onWelcome(w: any): Promise<void> {
    this.userStream = w.userStreamId ?? '';
    const ws = this.ws;
    try {
      await this.loadInbox();
    } catch (err) {
      if (err instanceof AuthError) return this.onSignOut('your session ended; sign in again');
      // query unreachable: resume from what is known
    }
    if (this.ws !== ws) return;
    await this.resume(Object.keys(this.cursors));
    if (this.ws !== ws) return;
    this.attempt = 0;
    this.resumed = true;
    this.conn = 'online';
    this.error = '';
    this.watchPresence();
    this.flushOutbox();
    if (this.openId) {
      const c = this.convs.get(this.openId);
      if (c && !c.loaded) this.loadHistory(c);
    }
    this.markVisible();
    if (this.wantOpen) {
      this.open(this.wantOpen);
      this.wantOpen = '';
    }
    this.onReady?.();
    this.changed();
  }

  /** Opens a conversation now when in step, else once the connection is (its history and members need it). */
  openSoon(id: string): void {
    if (this.resumed) this.open(id);
    else {
      this.wantOpen = id;
      this.openId = id;
      this.changed();
    }
  }

  // ---- push targets (the user's own stream) ----

  /**
   * Sends registerPush or unregisterPush for this device; resolves once the gateway accepted it. A refusal
   * by the decider that comes later is reported through onPushLost.
   */
  async pushCommand(body: Record<string, unknown>): Promise<void> {
    const out = await this.command(body);
    if ('code' in out) throw new Error(out.code + ': ' + out.message);
    if (out.cid) {
      this.pushCommands.add(out.cid);
      setTimeout(() => this.pushCommands.delete(out.cid), 60_000);
    }
  }

  /**
   * Sends a command whose outcome is an event: its command id once the gateway accepted it, or its
   * refusal (offline, the gateway's answer, or a CommandRejected read before the Accepted).
   */
  private async command(body: Record<string, unknown>): Promise<{ cid: string } | { code: string; message: string }> {
    const refused = (code: string, message: string) => ({ code: String(code ?? 'UNKNOWN').replace(/^ERROR_CODE_/, ''), message: message ?? '' });
    if (!this.resumed) return refused('OFFLINE', 'not connected; try again when online');
    const r = await this.send(body).catch(() => null);
    if (!r) return refused('OFFLINE', 'the connection dropped; try again');
    if (r.error) return refused(r.error.code, r.error.message);
    const cid: string = r.accepted?.commandId ?? '';
    const early = this.early.get(cid);
    if (early) {
      this.early.delete(cid);
      return refused(early.code, early.message);
    }
    return { cid };
  }

  private onUserEvent(e: any): void {
    const rej = e.commandRejected;
    if (rej && this.pushCommands.has(e.commandId)) {
      this.pushCommands.delete(e.commandId);
      this.onPushLost?.(String(rej.code ?? '').replace(/^ERROR_CODE_/, '') + ': ' + (rej.message ?? ''));
    } else if (rej && e.commandId) {
      this.early.set(e.commandId, rej);
      setTimeout(() => this.early.delete(e.commandId), 30_000);
    }
    const u = e.pushTargetUnregistered;
    if (u && u.deviceId === this.session.deviceId) {
      // the notifier's, after the push service refused the subscription; or another device of this user took it
      if (u.reason === 'PUSH_UNREGISTER_REASON_INVALID_TOKEN') this.onPushLost?.('the push service no longer accepts this browser\'s subscription');
      else if (u.reason === 'PUSH_UNREGISTER_REASON_REPLACED' && e.actorDeviceId !== this.session.deviceId)
        this.onPushLost?.('another device of yours registered the same subscription');
    }
  }

  private async resume(ids: string[]): Promise<void> {
    const cursors = ids.map((id) => ({ conversationId: id, version: String(this.cursors[id] ?? 0) }));
    for (let round = 0; round < 20; round++) {
      const r = await this.send({ resume: cursors.length ? { cursors } : {} }, 60_000).catch(() => null);
      if (!r) return;
      if (r.error) {
        if (r.error.code === 'ERROR_CODE_NOT_MEMBER') {
          // a conversation the user is no longer in: drop it and resume the others
          const gone = /\b([dgu]:[0-9a-f]{32})\b/.exec(r.error.message ?? '')?.[1];
          const rest = gone ? ids.filter((x) => x !== gone) : [];
          if (gone) this.dropConv(gone);
          return this.resume(rest);
        }
        await sleep(1000);
        continue;
      }
      const res = r.resumed;
      for (const c of res.cursors ?? []) this.advance(c.conversationId, num(c.version));
      for (const c of res.removed ?? []) {
        const gone = this.convs.get(c.conversationId);
        if (gone && !gone.left) this.markLeft(gone, 'You are no longer a member of this group.');
      }
      const later: string[] = [];
      for (const c of [...(res.added ?? []), ...(res.refetch ?? [])]) {
        this.cursors[c.conversationId] = Math.max(this.cursors[c.conversationId] ?? 0, num(c.version));
        if (!c.conversationId.startsWith('u:')) this.refetch(c.conversationId);
      }
      for (const f of res.failed ?? []) {
        if (f.code === 'ERROR_CODE_INVALID_CURSOR') this.cursors[f.conversationId] = num(f.lastVersion);
        later.push(f.conversationId);
      }
      this.saveCursors();
      if (res.more) {
        cursors.splice(0, cursors.length, ...(res.cursors ?? []).map((c: any) => ({ conversationId: c.conversationId, version: String(c.version ?? 0) })));
        continue;
      }
      if (later.length) setTimeout(() => this.ws && this.resumed && this.resume(later), 3000);
      return;
    }
  }

  private advance(id: string, v: number): void {
    if (v > (this.cursors[id] ?? 0)) this.cursors[id] = v;
  }

  private saveCursors(): void {
    // kept in memory only (see the constructor)
  }

  // ---- the inbox ----

  private async loadInbox(): Promise<void> {
    let cursor = '';
    const seen = new Set<string>();
    for (let page = 0; page < 20; page++) {
      const r = await this.query.get<{ conversations: InboxItem[]; next_cursor?: string }>(
        '/v1/inbox?limit=200' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''),
      );
      for (const it of r.conversations) {
        seen.add(it.conversation_id);
        this.mergeInbox(it);
      }
      if (!r.next_cursor) break;
      cursor = r.next_cursor;
    }
    for (const [id, c] of [...this.convs]) if (!seen.has(id) && !this.cursors[id] && !c.left) this.convs.delete(id);
    this.changed();
  }

  private mergeInbox(it: InboxItem): void {
    const id = it.conversation_id;
    const known = this.cursors[id] ?? 0;
    const c = this.conv(id, it.kind);
    if (c.left) {
      // added back while away: a member again, its history read anew
      c.left = '';
      c.loaded = false;
      c.rolesKnown = false;
      if (this.openId === id) this.open(id);
    }
    if (it.title) c.title = it.title;
    // What the item shows is as of its version; a device ahead of it keeps its own (newer) marks.
    if (num(it.version) >= known) {
      c.lastSeq = Math.max(c.lastSeq, num(it.last_seq));
      c.readSeq = Math.max(c.readSeq, num(it.read_seq));
      if (it.preview) this.setPreview(c, num(it.preview.seq), it.preview.text ?? '');
      if (it.last_activity) c.lastActivity = it.last_activity;
      if (!known) this.cursors[id] = num(it.version);
    }
    if (c.kind === 'direct' && !c.members.length) this.loadInfo(c);
  }

  private loadInfo(c: Conv): void {
    this.fetchInfo(c);
  }

  /**
   * Reads the conversation (members, roles, settings) through query and applies it. The answer is as
   * of its version: while that is below what this device already applied live, the views are behind
   * and it is read again a moment later, so a member added or removed live is not undone.
   */
  private async fetchInfo(c: Conv, attempt = 0): Promise<ConversationInfo | null> {
    const again = async () => {
      if (attempt >= 8 || this.stopped || this.convs.get(c.id) !== c) return null;
      await sleep(250 * 2 ** Math.min(attempt, 4));
      return this.fetchInfo(c, attempt + 1);
    };
    let info: ConversationInfo;
    try {
      info = await this.query.get<ConversationInfo>('/v1/conversations/' + encodeURIComponent(c.id));
    } catch (err) {
      // not readable yet (a join the views have not reached), or query away
      return err instanceof AuthError ? null : again();
    }
    if (this.convs.get(c.id) !== c) return null;
    for (const m of info.members) this.mark(c, m.user_id, num(m.read_seq), num(m.delivered_seq));
    const fresh = num(info.version) >= (this.cursors[c.id] ?? 0);
    if (!fresh && attempt < 8) return again();
    c.kind = info.kind;
    if (info.title) c.title = info.title;
    c.lastSeq = Math.max(c.lastSeq, num(info.last_seq));
    const me = info.members.find((m) => m.user_id === this.session.userId);
    if (me) c.readSeq = Math.max(c.readSeq, num(me.read_seq));
    if (fresh || !c.rolesKnown) {
      c.members = info.members.map((m) => m.user_id);
      c.roles = new Map(info.members.map((m) => [m.user_id, m.role ?? 'member']));
      if (info.owner_user_id) c.roles.set(info.owner_user_id, 'owner');
      c.rolesKnown = true;
      c.whoMayAdd = info.settings?.who_may_add === 'admins' ? 'admins' : 'members';
      if (info.preview) this.setPreview(c, num(info.preview.seq), info.preview.text ?? '');
      if (info.last_activity) c.lastActivity = info.last_activity;
    }
    this.watchPresence();
    this.changed();
    return info;
  }

  private async refetch(id: string): Promise<void> {
    const c = this.conv(id, id.startsWith('d:') ? 'direct' : 'group');
    if (!(await this.fetchInfo(c))) return; // the next reconnect tries again
    if (c.loaded || this.openId === id) {
      c.loaded = false;
      this.loadHistory(c);
    }
  }

  conv(id: string, kind: 'direct' | 'group' = id.startsWith('d:') ? 'direct' : 'group'): Conv {
    let c = this.convs.get(id);
    if (!c) {
      c = {
        id,
        kind,
        title: '',
        members: [],
        lastSeq: 0,
        readSeq: 0,
        lastActivity: '',
        preview: '',
        previewSeq: 0,
        msgs: new Map(),
        loaded: false,
        hasMore: false,
        loadingOlder: false,
        receipts: new Map(),
        typing: new Map(),
        roles: new Map(),
        rolesKnown: false,
        whoMayAdd: 'members',
        left: '',
        actError: null,
      };
      this.convs.set(id, c);
    }
    return c;
  }

  private dropConv(id: string): void {
    this.convs.delete(id);
    delete this.cursors[id];
    if (this.openId === id) this.openId = '';
    this.outbox = this.outbox.filter((o) => o.conv !== id);
    this.saveOutbox();
  }

  /** The user left or was removed: the conversation stays on screen, read-only, and is no longer resumed. */
  private markLeft(c: Conv, why: string): void {
    const me = this.session.userId;
    c.left = why;
    c.members = c.members.filter((x) => x !== me);
    c.roles.delete(me);
    c.typing.clear();
    c.readSeq = Math.max(c.readSeq, c.lastSeq);
    delete this.cursors[c.id];
    for (const o of this.outbox)
      if (o.conv === c.id && o.state !== 'failed') {
        o.state = 'failed';
        o.error = 'not a member any more';
      }
    this.saveOutbox();
  }

  /** Takes a conversation the user left off the list. */
  forget(id: string): void {
    const c = this.convs.get(id);
    if (c?.left) this.dropConv(id);
    this.changed();
  }

  title(c: Conv): string {
    if (c.kind === 'direct') return this.peer(c) || c.title || 'Direct chat';
    return c.title || c.members.join(', ') || 'Group';
  }

  peer(c: Conv): string {
    return c.members.find((m) => m !== this.session.userId) ?? '';
  }

  unread(c: Conv): number {
    return Math.max(0, c.lastSeq - c.readSeq);
  }

  sortedConvs(): Conv[] {
    return [...this.convs.values()].sort((a, b) => ms(b.lastActivity) - ms(a.lastActivity) || a.id.localeCompare(b.id));
  }

  private watchPresence(): void {
    const peers = new Set<string>();
    for (const c of this.convs.values()) if (c.kind === 'direct') peers.add(this.peer(c));
    peers.delete('');
    const list = [...peers].sort().slice(0, 500);
    const key = list.join(',');
    if (!this.resumed || key === this.watched) return;
    this.watched = key;
    this.send({ watchPresence: { userIds: list } }).then((r) => {
      if (r?.error) this.watched = '';
    }, () => (this.watched = ''));
  }

  /** Presence is decided from the views, which follow a new conversation a moment later: watch again. */
  private rewatchSoon(): void {
    for (const ms of [600, 2000, 6000])
      setTimeout(() => {
        this.watched = '';
        this.watchPresence();
      }, ms);
  }

  // ---- events ----

  private onEvent(e: any): void {
    const id: string = e.conversationId;
    const v = num(e.version);
    if (!id) return;
    if (v > 0) {
      const have = this.cursors[id];
      if (have !== undefined && v <= have) return; // already applied
      if (have !== undefined && v > have + 1 && this.resumed) {
        // a version missed: apply what came (everything is idempotent) and catch up from the cursor
        this.catchUp(id);
      } else {
        this.cursors[id] = v;
        this.saveCursorsSoon();
      }
    }
    if (id.startsWith('u:')) return this.onUserEvent(e);
    if (e.withheld) return;
    const me = this.session.userId;
    const seq = num(e.seq);
    const actor: string = e.actorUserId ?? '';

    if (e.commandRejected) {
      const a = this.actions.get(e.commandId);
      if (a) {
        this.actions.delete(e.commandId);
        this.refuse(a.conv, a.what, e.commandRejected.code, e.commandRejected.message);
        return;
      }
      const cm = e.commandRejected.clientMsgId;
      const o = cm && this.outbox.find((x) => x.clientMsgId === cm);
      if (o) {
        o.state = 'failed';
        o.error = e.commandRejected.message;
        this.saveOutbox();
      } else if (e.commandRejected.commandType === 'CreateConversation' && e.commandRejected.code !== 'ERROR_CODE_CONVERSATION_EXISTS')
        this.error = e.commandRejected.message;
      else if (e.commandId) {
        // refused before its Accepted was read: kept a moment for act() to find
        this.early.set(e.commandId, e.commandRejected);
        setTimeout(() => this.early.delete(e.commandId), 30_000);
      }
      return;
    }
    if (e.messageDeduplicated) {
      this.confirmed(id, e.messageDeduplicated.clientMsgId, num(e.messageDeduplicated.originalSeq));
      return;
    }

    const known = this.convs.has(id);
    const c = this.conv(id);
    if (e.conversationCreated) {
      c.kind = e.conversationCreated.kind === 'CONVERSATION_KIND_DIRECT' ? 'direct' : 'group';
      c.title = e.conversationCreated.title ?? c.title;
      c.members = e.conversationCreated.memberUserIds ?? c.members;
      c.roles = new Map(c.members.map((u): [string, Role] => [u, c.kind === 'group' && u === actor ? 'owner' : 'member']));
      c.rolesKnown = true;
      if (!c.lastActivity) c.lastActivity = e.occurredAt ?? new Date().toISOString();
      this.rewatchSoon();
    } else if (!known && !e.membersAdded) {
      // an event of a conversation not in the inbox yet: fetch it
      this.refetch(id);
    }
    if (seq) {
      c.lastSeq = Math.max(c.lastSeq, seq);
      if (e.occurredAt && ms(e.occurredAt) > ms(c.lastActivity)) c.lastActivity = e.occurredAt;
    }
    if (e.messageSent) {
      const m = e.messageSent;
      const msg: Msg = { seq, type: 'MessageSent', sender: actor, clientMsgId: m.clientMsgId ?? '', text: m.text ?? '', at: e.occurredAt, state: 'sent' };
      if (m.contentType) msg.contentType = m.contentType;
      if (m.attachments?.length) msg.atts = m.attachments.map(attOf);
      const rt = num(m.replyToSeq);
      if (rt) msg.replyTo = this.quote(c, rt);
      msg.mentionsMe = actor !== me && (!!m.mentionAll || (m.mentionUserIds ?? []).includes(me));
      this.addMsg(c, msg);
      this.setPreview(c, seq, previewText(msg.text, msg.atts));
      this.mark(c, actor, seq, seq);
      if (actor === me) {
        c.readSeq = Math.max(c.readSeq, seq);
        this.confirmed(id, msg.clientMsgId, seq);
      } else {
        const d = this.deliveredSent.get(id) ?? 0;
        if (seq > d) {
          this.deliveredSent.set(id, seq);
          this.signalCommand({ conversationId: id, markDelivered: { upToSeq: String(seq) } });
        }
        c.typing.delete(actor);
        if (id === this.openId) queueMicrotask(() => this.markVisible());
      }
    } else if (e.readUpTo) {
      const n = num(e.readUpTo.upToSeq);
      this.mark(c, actor, n, n);
      if (actor === me) c.readSeq = Math.max(c.readSeq, n);
    } else if (e.deliveredUpTo) {
      this.mark(c, actor, 0, num(e.deliveredUpTo.upToSeq));
    } else if (e.membersAdded) {
      const ids: string[] = e.membersAdded.userIds ?? [];
      const back = ids.includes(me) && (!known || !!c.left);
      if (back) c.left = '';
      c.members = [...new Set([...c.members, ...ids])];
      for (const u of ids) c.roles.set(u, 'member');
      if (seq) this.addMsg(c, { seq, type: 'MembersAdded', sender: actor, clientMsgId: '', text: '', at: e.occurredAt, state: 'sent', members: ids });
      if (back) this.refetch(id);
      this.rewatchSoon();
    } else if (e.memberRemoved) {
      const u: string = e.memberRemoved.userId;
      const reason = e.memberRemoved.reason === 'MEMBER_REMOVED_REASON_LEFT' || (!e.memberRemoved.reason && actor === u) ? 'left' : 'removed';
      c.members = c.members.filter((x) => x !== u);
      c.roles.delete(u);
      c.receipts.delete(u);
      c.typing.delete(u);
      if (seq) this.addMsg(c, { seq, type: 'MemberRemoved', sender: actor, clientMsgId: '', text: '', at: e.occurredAt, state: 'sent', members: [u], removedReason: reason });
      if (u === me) this.markLeft(c, reason === 'left' ? 'You left this group.' : actor + ' removed you from this group.');
    } else if (e.memberRoleChanged) {
      const r = e.memberRoleChanged;
      if (c.members.includes(r.userId)) c.roles.set(r.userId, r.role === 'MEMBER_ROLE_ADMIN' ? 'admin' : 'member');
    } else if (e.ownershipTransferred) {
      const t = e.ownershipTransferred;
      if (c.roles.get(t.fromUserId) === 'owner' && c.members.includes(t.fromUserId)) c.roles.set(t.fromUserId, 'admin');
      if (c.members.includes(t.toUserId)) c.roles.set(t.toUserId, 'owner');
    } else if (e.messageEdited) {
      const ed = e.messageEdited;
      const at = num(ed.messageSeq);
      const m = c.msgs.get(at);
      if (m && !m.recalled) {
        m.text = ed.text ?? '';
        if (ed.contentType) m.contentType = ed.contentType;
        m.edits = Math.max(m.edits ?? 0, ed.editNumber ?? 1);
      }
      this.requote(c, at);
      if (at === c.previewSeq) c.preview = ed.text ?? '';
    } else if (e.messageRecalled) {
      const at = num(e.messageRecalled.messageSeq);
      const m = c.msgs.get(at);
      if (m) {
        m.recalled = true;
        m.text = '';
        m.edits = undefined;
        m.replyTo = undefined;
        m.reactions = undefined;
        m.atts = undefined;
      }
      this.requote(c, at);
      if (at === c.previewSeq || at === c.lastSeq) c.preview = '';
    } else if (e.reactionAdded || e.reactionRemoved) {
      const r = e.reactionAdded ?? e.reactionRemoved;
      const m = c.msgs.get(num(r.messageSeq));
      if (m && !m.recalled && actor) {
        const all = { ...(m.reactions ?? {}) };
        const who = (all[r.emoji] ?? []).filter((u) => u !== actor);
        if (e.reactionAdded) who.push(actor);
        if (who.length) all[r.emoji] = who;
        else delete all[r.emoji];
        m.reactions = all;
      }
    } else if (e.groupSettingsChanged) {
      const g = e.groupSettingsChanged.settings ?? {};
      if (g.title) c.title = g.title;
      if (g.whoMayAdd) c.whoMayAdd = g.whoMayAdd === 'GROUP_POLICY_ADMINS' ? 'admins' : 'members';
    } else if (e.conversationDeleted) {
      this.dropConv(id);
    }
  }

  private saveTimer = 0;
  private saveCursorsSoon(): void {
    if (this.saveTimer) return;
    this.saveTimer = window.setTimeout(() => {
      this.saveTimer = 0;
      this.saveCursors();
    }, 300);
  }

  private catchUp(id: string): void {
    clearTimeout(this.gapTimer);
    this.gapTimer = window.setTimeout(() => this.resume([id]), 200);
  }

  private setPreview(c: Conv, seq: number, text: string): void {
    if (seq < c.previewSeq) return;
    c.previewSeq = seq;
    c.preview = text;
  }

  private mark(c: Conv, user: string, read: number, delivered: number): void {
    if (!user) return;
    const r = c.receipts.get(user) ?? { read: 0, delivered: 0 };
    r.read = Math.max(r.read, read);
    r.delivered = Math.max(r.delivered, delivered, read);
    c.receipts.set(user, r);
  }

  private addMsg(c: Conv, m: Msg): void {
    const old = c.msgs.get(m.seq);
    if (old && old.recalled) return;
    c.msgs.set(m.seq, old ? { ...old, ...m, text: m.text || old.text, reactions: m.reactions ?? old.reactions, replyTo: m.replyTo ?? old.replyTo, atts: m.atts ?? old.atts } : m);
  }

  /** The quote of the message at seq as this device knows it (its sender and text may come with history). */
  private quote(c: Conv, seq: number): Quote {
    const t = c.msgs.get(seq);
    return { seq, sender: t?.sender ?? '', snippet: t ? snippet(t.text) : '', recalled: !!t?.recalled };
  }

  /** The message at seq changed (edited, recalled): the replies quoting it follow. */
  private requote(c: Conv, seq: number): void {
    for (const m of c.msgs.values()) if (m.replyTo?.seq === seq) m.replyTo = this.quote(c, seq);
  }

  private confirmed(conv: string, clientMsgId: string, seq: number): void {
    const i = this.outbox.findIndex((o) => o.clientMsgId === clientMsgId);
    if (i < 0) return;
    const o = this.outbox[i];
    this.outbox.splice(i, 1);
    this.saveOutbox();
    const c = this.convs.get(conv);
    if (c && seq && !c.msgs.has(seq)) {
      c.msgs.set(seq, { seq, type: 'MessageSent', sender: this.session.userId, clientMsgId, text: o.text, at: o.at, state: 'sent', replyTo: o.replyTo ? this.quote(c, o.replyTo) : undefined, atts: o.atts });
    }
  }

  private onSignal(s: any): void {
    if (s.typing) {
      const t = s.typing;
      const c = this.convs.get(t.conversationId);
      if (!c || t.userId === this.session.userId) return;
      if (t.active) c.typing.set(t.userId, t.expiresAt ? Date.parse(t.expiresAt) : Date.now() + 6000);
      else c.typing.delete(t.userId);
    } else if (s.presence) {
      this.presence.set(s.presence.userId, online(s.presence.state));
    }
  }

  private expireTyping(): void {
    const now = Date.now();
    let any = false;
    for (const c of this.convs.values())
      for (const [u, exp] of c.typing)
        if (exp < now) {
          c.typing.delete(u);
          any = true;
        }
    if (any) this.changed();
  }

  // ---- the open conversation ----

  open(id: string): void {
    this.openId = id;
    const c = this.convs.get(id);
    if (c) {
      if (!c.loaded && !c.left) this.loadHistory(c);
      if (!c.left) this.loadReceipts(c);
      if ((!c.members.length || !c.rolesKnown) && !c.left) this.loadInfo(c);
    }
    this.changed();
  }

  close(): void {
    this.openId = '';
    this.changed();
  }

  /**
   * Reads the newest history page. What came live is kept (merged by seq), so a conversation first
   * learned from a live event still gets the history before it. The views may lag the log: messages
   * that came live beyond the page are joined to it by reading forward. While the conversation is
   * open, a page that could not be read is read again (backing off to 5 s, for about two minutes),
   * and one that still leaves a gap below what came live a few times more.
   */
  private async loadHistory(c: Conv, attempt = 0): Promise<void> {
    const path = '/v1/conversations/' + encodeURIComponent(c.id) + '/messages?limit=';
    let top = 0;
    const gap = () => {
      const above = [...c.msgs.keys()].filter((s) => s > top);
      return above.length > 0 && Math.min(...above) > top + 1;
    };
    let failed = false;
    try {
      const p = await this.query.get<HistoryPage>(path + '50');
      this.mergeHistory(c, p.messages);
      c.hasMore = p.has_more;
      top = Math.max(0, ...p.messages.map((m) => num(m.seq)));
      for (let round = 0; gap() && round < 20; round++) {
        const f = await this.query.get<HistoryPage>(path + '200&after=' + top);
        this.mergeHistory(c, f.messages);
        const next = Math.max(top, ...f.messages.map((m) => num(m.seq)));
        if (next === top) break; // the views have not reached it yet
        top = next;
      }
    } catch (err) {
      if (err instanceof AuthError) return;
      failed = true; // not readable yet, or query away
    }
    c.loaded = !failed && !gap();
    this.changed();
    if (c.loaded || attempt >= (failed ? 30 : 8) || this.stopped || this.openId !== c.id || this.convs.get(c.id) !== c) return;
    clearTimeout(this.historyRetry); // one chain of retries, for the open conversation
    this.historyRetry = window.setTimeout(() => this.openId === c.id && !c.loaded && this.loadHistory(c, attempt + 1), Math.min(5000, 250 * 2 ** attempt));
  }

  async loadOlder(c: Conv): Promise<boolean> {
    if (!c.hasMore || c.loadingOlder) return false;
    const seqs = [...c.msgs.keys()].filter((s) => s > 0);
    if (!seqs.length) return false;
    c.loadingOlder = true;
    try {
      const p = await this.query.get<HistoryPage>(
        '/v1/conversations/' + encodeURIComponent(c.id) + '/messages?limit=50&before=' + Math.min(...seqs),
      );
      this.mergeHistory(c, p.messages);
      c.hasMore = p.has_more;
      return true;
    } catch {
      return false;
    } finally {
      c.loadingOlder = false;
      this.changed();
    }
  }

  private mergeHistory(c: Conv, items: HistoryItem[]): void {
    for (const it of items) {
      const seq = num(it.seq);
      if (!seq || c.msgs.has(seq)) continue;
      c.msgs.set(seq, {
        seq,
        type: it.type,
        sender: it.sender,
        clientMsgId: it.client_msg_id ?? '',
        text: it.text ?? '',
        at: it.occurred_at,
        state: 'sent',
        recalled: !!it.recalled,
        contentType: it.content_type,
        edits: it.edit_count,
        members: it.member_ids,
        removedReason: it.removed_reason,
        replyTo: it.reply_to ? { seq: num(it.reply_to.seq), sender: it.reply_to.sender ?? '', snippet: it.reply_to.snippet ?? '', recalled: !!it.reply_to.recalled } : undefined,
        reactions: it.reactions?.length ? Object.fromEntries(it.reactions.map((r) => [r.emoji, [...r.user_ids]])) : undefined,
        // history does not list mentions: the text's @tokens say it
        mentionsMe: it.sender !== this.session.userId && mentioned(it.text ?? '', this.session.userId, c.kind === 'group'),
        atts: it.attachments?.length && !it.recalled ? it.attachments.map(attOf) : undefined,
      });
      if (it.client_msg_id) this.confirmed(c.id, it.client_msg_id, seq);
      if (it.sender !== this.session.userId && it.type === 'MessageSent') {
        const d = this.deliveredSent.get(c.id) ?? 0;
        if (seq > d && seq > (c.receipts.get(this.session.userId)?.delivered ?? 0)) {
          this.deliveredSent.set(c.id, seq);
          this.signalCommand({ conversationId: c.id, markDelivered: { upToSeq: String(seq) } });
        }
      }
      c.lastSeq = Math.max(c.lastSeq, seq);
    }
  }

  private async loadReceipts(c: Conv): Promise<void> {
    try {
      const r = await this.query.get<Receipts>('/v1/conversations/' + encodeURIComponent(c.id) + '/receipts');
      for (const x of r.receipts) this.mark(c, x.user_id, num(x.read_seq), num(x.delivered_seq));
      this.changed();
    } catch {
      // ticks follow the live events
    }
  }

  /** The messages to show: sequenced ones by seq, then this device's unsent ones. */
  timeline(c: Conv): Msg[] {
    const list = [...c.msgs.values()].sort((a, b) => a.seq - b.seq);
    const shown = new Set(list.map((m) => m.clientMsgId).filter(Boolean));
    for (const o of this.outbox)
      if (o.conv === c.id && !shown.has(o.clientMsgId))
        list.push({
          seq: 0,
          type: 'MessageSent',
          sender: this.session.userId,
          clientMsgId: o.clientMsgId,
          text: o.text,
          at: o.at,
          state: o.state,
          error: o.error,
          replyTo: o.replyTo ? this.quote(c, o.replyTo) : undefined,
          atts: o.atts,
        });
    return list;
  }

  receipt(c: Conv, m: Msg): 'sent' | 'delivered' | 'read' {
    const p = c.receipts.get(this.peer(c));
    if (p && p.read >= m.seq) return 'read';
    if (p && p.delivered >= m.seq) return 'delivered';
    return 'sent';
  }

  readBy(c: Conv, m: Msg): number {
    let n = 0;
    for (const [u, r] of c.receipts) if (u !== this.session.userId && u !== m.sender && r.read >= m.seq && c.members.includes(u)) n++;
    return n;
  }

  typingUsers(c: Conv): string[] {
    return [...c.typing.keys()].sort();
  }

  /** Called by the view with the highest seq on screen. */
  visibleUpTo = 0;
  private focused = true;
  markVisible(): void {
    const c = this.convs.get(this.openId);
    if (!c || !this.resumed || document.visibilityState !== 'visible' || !this.focused) return;
    const n = Math.min(this.visibleUpTo, c.lastSeq);
    if (n <= c.readSeq || n <= (this.readSent.get(c.id) ?? 0)) return;
    this.readSent.set(c.id, n);
    this.send({ conversationId: c.id, markRead: { upToSeq: String(n) } }).then(
      (r) => r?.error && this.readSent.set(c.id, 0),
      () => this.readSent.set(c.id, 0),
    );
  }

  private signalCommand(frame: Record<string, unknown>): void {
    if (this.resumed) this.send(frame).catch(() => undefined);
  }

  // ---- sending ----

  sendText(convId: string, text: string, opts: SendOpts = {}): void {
    const o: OutItem = { clientMsgId: ulid(), conv: convId, text, state: 'pending', at: new Date().toISOString() };
    if (opts.replyTo) o.replyTo = opts.replyTo;
    if (opts.mentions?.length) o.mentions = opts.mentions;
    if (opts.mentionAll) o.mentionAll = true;
    if (opts.atts?.length) o.atts = opts.atts;
    this.outbox.push(o);
    this.saveOutbox();
    this.stopTyping(convId);
    this.changed();
    if (this.resumed) this.transmit(o);
  }

  retry(clientMsgId: string): void {
    const o = this.outbox.find((x) => x.clientMsgId === clientMsgId);
    if (!o) return;
    o.state = 'pending';
    o.error = undefined;
    this.saveOutbox();
    this.changed();
    if (this.resumed) this.transmit(o);
  }

  private flushOutbox(): void {
    for (const o of this.outbox) if (o.state === 'pending') this.transmit(o);
  }

  private async transmit(o: OutItem, attempt = 0): Promise<void> {
    const body: Record<string, unknown> = { clientMsgId: o.clientMsgId, text: o.text };
    if (o.replyTo) body.replyToSeq = String(o.replyTo);
    if (o.mentions) body.mentionUserIds = o.mentions;
    if (o.mentionAll) body.mentionAll = true;
    if (o.atts?.length) body.attachmentIds = o.atts.map((a) => a.id);
    const r = await this.send({ conversationId: o.conv, sendMessage: body }).catch(() => null);
    if (!this.outbox.includes(o)) return; // confirmed meanwhile
    if (!r) return; // offline: sent again on reconnect
    if (r.accepted) {
      if (o.state === 'pending') o.state = 'sent';
    } else if (r.error) {
      const code: string = r.error.code;
      if ((code === 'ERROR_CODE_RATE_LIMITED' || code === 'ERROR_CODE_UNAVAILABLE') && attempt < 8) {
        await sleep(Math.min(10_000, 300 * 2 ** attempt) * (0.5 + Math.random()));
        if (this.resumed && this.outbox.includes(o) && o.state === 'pending') return this.transmit(o, attempt + 1);
        return;
      }
      if (code === 'TIMEOUT' && !this.resumed) return; // the connection went: sent again on reconnect
      o.state = 'failed';
      o.error = r.error.message;
    }
    this.saveOutbox();
    this.changed();
  }

  private saveOutbox(): void {
    save(this.key('outbox'), this.outbox.map((o) => ({ ...o })));
  }

  // ---- attachments ----

  /** What the composer of conversation conv holds. */
  staged(convId: string): Staged[] {
    return this.uploads.get(convId) ?? [];
  }

  /** Attaches files in the composer of convId: each is uploaded at once (resumable), with its progress. */
  attach(convId: string, files: File[]): void {
    const list = this.uploads.get(convId) ?? [];
    this.uploads.set(convId, list);
    for (const f of files) {
      const st: Staged = { key: ulid(), conv: convId, name: f.name || 'file', size: f.size, state: 'uploading', sent: 0, up: null as unknown as Upload };
      st.up = new Upload(this.session.token, convId, f, (n) => {
        st.sent = n;
        this.changed();
      });
      if (f.type.startsWith('image/')) st.preview = URL.createObjectURL(f);
      list.push(st);
      if (list.length > MAX_ATTACHMENTS) this.failUpload(st, 'LIMIT_REACHED: at most ' + MAX_ATTACHMENTS + ' attachments in one message', true);
      else if (!f.size) this.failUpload(st, 'INVALID_ARGUMENT: the file is empty', true);
      else this.runUpload(st);
    }
    this.changed();
  }

  private failUpload(st: Staged, error: string, fatal: boolean): void {
    st.state = 'failed';
    st.error = error;
    st.fatal = fatal;
  }

  private async runUpload(st: Staged): Promise<void> {
    st.state = 'uploading';
    st.error = undefined;
    this.changed();
    try {
      st.att = await st.up.run();
      st.state = 'done';
      st.sent = st.size;
    } catch (err) {
      if (!this.staged(st.conv).includes(st)) return; // removed meanwhile
      const e = err as UploadError;
      if (e.code === 'UNAUTHENTICATED') this.onSignOut('your session ended; sign in again');
      this.failUpload(st, e.message, !!e.fatal);
    }
    this.changed();
  }

  /** Continues a failed upload from what the server has (the gateway's offset). */
  retryUpload(key: string): void {
    for (const list of this.uploads.values()) {
      const st = list.find((x) => x.key === key);
      if (st && st.state === 'failed' && !st.fatal) this.runUpload(st);
    }
  }

  /** Takes a file out of the composer; an unfinished upload is abandoned. */
  removeUpload(key: string): void {
    for (const [conv, list] of this.uploads) {
      const st = list.find((x) => x.key === key);
      if (!st) continue;
      if (st.state !== 'done') st.up.cancel();
      if (st.preview) URL.revokeObjectURL(st.preview);
      this.uploads.set(conv, list.filter((x) => x !== st));
    }
    this.changed();
  }

  /** Whether the composer's files are all uploaded (and there is at least one). */
  uploadsReady(convId: string): boolean {
    const list = this.staged(convId);
    return list.length > 0 && list.every((x) => x.state === 'done');
  }

  /** The uploaded attachments of the composer, taken out of it for a message. */
  takeUploads(convId: string): Att[] {
    const list = this.staged(convId).filter((x) => x.state === 'done');
    for (const st of list) if (st.preview) URL.revokeObjectURL(st.preview);
    this.uploads.set(convId, this.staged(convId).filter((x) => !list.includes(x)));
    return list.map((x) => x.att!);
  }

  // ---- actions: commands whose outcome is an event, or a refusal shown to the user ----

  /** Sends a command about a conversation; a refusal (Error or CommandRejected) is shown as its actError. */
  private async act(convId: string, what: string, body: Record<string, unknown>): Promise<boolean> {
    const c = this.convs.get(convId);
    if (c) c.actError = null;
    this.changed();
    const out = await this.command({ conversationId: convId, ...body });
    if ('code' in out) {
      this.refuse(convId, what, out.code, out.message);
      return false;
    }
    if (out.cid) {
      this.actions.set(out.cid, { conv: convId, what });
      setTimeout(() => this.actions.delete(out.cid), 60_000);
    }
    return true;
  }

  private refuse(convId: string, what: string, code: string, message: string): void {
    const c = this.convs.get(convId);
    if (c) c.actError = { what, code: String(code ?? 'UNKNOWN').replace(/^ERROR_CODE_/, ''), message: message ?? '' };
    this.changed();
  }

  dismissError(convId: string): void {
    const c = this.convs.get(convId);
    if (c) c.actError = null;
    this.changed();
  }

  role(c: Conv, user: string): Role | undefined {
    return c.rolesKnown ? (c.roles.get(user) ?? 'member') : undefined;
  }

  private privileged(c: Conv): boolean {
    const r = this.role(c, this.session.userId);
    return r === 'owner' || r === 'admin';
  }

  /** Whether the user may add members: a group's member, unless the group lets only admins add. */
  mayAdd(c: Conv): boolean {
    return c.kind === 'group' && !c.left && c.rolesKnown && (c.whoMayAdd === 'members' || this.privileged(c));
  }

  /** The owner removes anyone else, an admin plain members, a plain member nobody. */
  mayRemove(c: Conv, user: string): boolean {
    if (c.kind !== 'group' || c.left || user === this.session.userId || !c.rolesKnown) return false;
    const mine = this.role(c, this.session.userId);
    const theirs = this.role(c, user);
    return mine === 'owner' || (mine === 'admin' && theirs === 'member');
  }

  /** Whether the user may edit m: its own text message, not recalled, within the edit window. */
  mayEdit(c: Conv, m: Msg): boolean {
    const ct = (m.contentType ?? 'text/plain').split(';')[0].trim();
    return !c.left && m.seq > 0 && !m.recalled && m.type === 'MessageSent' && m.sender === this.session.userId && (ct === 'text/plain' || ct === 'text/markdown') && recent(m.at);
  }

  /** The sender within the recall window; in a group its owner and admins, any message. */
  mayRecall(c: Conv, m: Msg): boolean {
    if (c.left || m.seq <= 0 || m.recalled || m.type !== 'MessageSent') return false;
    return (m.sender === this.session.userId && recent(m.at)) || (c.kind === 'group' && this.privileged(c));
  }

  edit(convId: string, seq: number, text: string): Promise<boolean> {
    return this.act(convId, 'edit the message', { editMessage: { seq: String(seq), text, clientMsgId: ulid() } });
  }

  recall(convId: string, seq: number): Promise<boolean> {
    return this.act(convId, 'recall the message', { recallMessage: { seq: String(seq) } });
  }

  /** Adds the user's reaction emoji to the message at seq, or takes it off when the user has it. */
  react(convId: string, seq: number, emoji: string): Promise<boolean> {
    const m = this.convs.get(convId)?.msgs.get(seq);
    const mine = !!m?.reactions?.[emoji]?.includes(this.session.userId);
    return mine
      ? this.act(convId, 'remove the reaction', { removeReaction: { seq: String(seq), emoji } })
      : this.act(convId, 'react', { addReaction: { seq: String(seq), emoji } });
  }

  /** Whether the user may react to or answer m: a sent message, not recalled, of a conversation the user is in. */
  mayRespond(c: Conv, m: Msg): boolean {
    return !c.left && m.seq > 0 && !m.recalled && m.type === 'MessageSent';
  }

  /**
   * The mentions a text makes: `@id` of the conversation's current members (not the user), and `@all`
   * in a group.
   */
  mentionsIn(c: Conv, text: string): SendOpts {
    const ids = new Set<string>();
    let all = false;
    for (const m of text.matchAll(/(^|\s)@([^\s@]+)/g)) {
      const who = m[2].replace(/[.,:;!?)]+$/, '');
      if (who === 'all' && c.kind === 'group') all = true;
      else if (who !== this.session.userId && c.members.includes(who)) ids.add(who);
    }
    return all ? { mentionAll: true } : ids.size ? { mentions: [...ids].slice(0, 50) } : {};
  }

  addMembers(convId: string, ids: string[]): Promise<boolean> {
    return this.act(convId, 'add ' + ids.join(', '), { addMembers: { userIds: ids } });
  }

  removeMember(convId: string, user: string): Promise<boolean> {
    return this.act(convId, 'remove ' + user, { removeMember: { userId: user } });
  }

  leave(convId: string): Promise<boolean> {
    return this.act(convId, 'leave the group', { leaveConversation: {} });
  }

  // ---- typing ----

  typing(convId: string): void {
    const now = Date.now();
    if (now - this.lastTypingSent > TYPING_EVERY) {
      this.lastTypingSent = now;
      this.signal({ conversationId: convId, typing: { active: true } });
    }
    clearTimeout(this.typingStop);
    this.typingStop = window.setTimeout(() => this.stopTyping(convId), 4000);
  }

  stopTyping(convId: string): void {
    clearTimeout(this.typingStop);
    if (!this.lastTypingSent) return;
    this.lastTypingSent = 0;
    this.signal({ conversationId: convId, typing: { active: false } });
  }

  // ---- new conversations ----

  async createDirect(peer: string): Promise<string> {
    return this.create({ kind: 'CONVERSATION_KIND_DIRECT', memberUserIds: [peer] });
  }

  async createGroup(title: string, members: string[]): Promise<string> {
    return this.create({ kind: 'CONVERSATION_KIND_GROUP', title, memberUserIds: members });
  }

  private async create(body: Record<string, unknown>): Promise<string> {
    const r = await this.send({ createConversation: body });
    if (r.error) throw new Error(r.error.message || r.error.code);
    const id: string = r.accepted.conversationId;
    const c = this.conv(id);
    if (!c.members.length) {
      c.members = [this.session.userId, ...((body.memberUserIds as string[]) ?? [])];
      c.title = (body.title as string) ?? '';
      if (!c.lastActivity) c.lastActivity = new Date().toISOString();
    }
    if (this.cursors[id] === undefined) {
      // an existing direct chat is known to the inbox; a new one starts at version 0
      c.loaded = false;
    }
    this.watchPresence();
    this.open(id);
    return id;
  }
}

function online(state: string): boolean {
  return !!state && state !== 'PRESENCE_STATE_OFFLINE' && state !== 'PRESENCE_STATE_UNSPECIFIED' && state !== 'PRESENCE_STATE_INVISIBLE';
}

function ms(iso: string): number {
  const t = iso ? Date.parse(iso) : NaN;
  return isNaN(t) ? 0 : t;
}

/** Within the edit and recall windows (24 h of the send, the servers' default; they decide). */
function recent(at?: string): boolean {
  return !at || Date.now() - ms(at) < 24 * 3600_000;
}

/** Whether text mentions user (`@user`, or `@all` in a group). */
function mentioned(text: string, user: string, group: boolean): boolean {
  for (const m of text.matchAll(/(^|\s)@([^\s@]+)/g)) {
    const who = m[2].replace(/[.,:;!?)]+$/, '');
    if (who === user || (group && who === 'all')) return true;
  }
  return false;
}

/** The start of a message's text, as quoted (query's reply_to snippet is as long). */
export function snippet(text: string): string {
  const cps = [...text];
  return cps.length > 100 ? cps.slice(0, 100).join('') + '…' : text;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
