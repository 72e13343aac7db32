// Web Push: the browser's subscription (through the service worker, sw.ts), registered as this
// device's push target over the WebSocket (registerPush / unregisterPush).
import { Store } from './store';
import { load, save } from './util';

export type PushState = 'off' | 'on' | 'working' | 'blocked' | 'failed' | 'unsupported';

/** What the control shows and does; one per signed-in store. */
export class Push {
  state: PushState = 'off';
  error = '';

  constructor(
    private store: Store,
    private vapidKey: string,
  ) {
    if (!supported()) this.state = 'unsupported';
    else if (Notification.permission === 'denied') this.state = 'blocked';
    store.onReady = () => void this.renew();
    store.onPushLost = (why) => void this.lost(why);
  }

  /** Whether the user turned notifications on in this browser (kept across reloads and sign-ins). */
  get wanted(): boolean {
    return load(this.flag(), false);
  }

  private flag() {
    return 'parley.push.' + this.store.session.userId;
  }

  private set(state: PushState, error = ''): void {
    this.state = state;
    this.error = error;
    this.store.changed();
  }

  /** The control's click: on when off, off when on. */
  toggle(): Promise<void> {
    return this.wanted ? this.turnOff() : this.turnOn();
  }

  async turnOn(): Promise<void> {
    if (this.state === 'working' || !supported()) return;
    this.set('working');
    try {
      const perm = await Notification.requestPermission();
      if (perm === 'denied') return this.set('blocked');
      if (perm !== 'granted') return this.set('off', 'permission not given');
      await navigator.serviceWorker.register('sw.js');
      // subscribing needs the worker active, which a registration just made may not have yet
      const reg = await navigator.serviceWorker.ready;
      const sub =
        (await reg.pushManager.getSubscription()) ??
        (await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: bytes(this.vapidKey) }));
      await this.store.pushCommand({ registerPush: { target: target(sub) } });
      save(this.flag(), true);
      this.set('on');
    } catch (x) {
      this.set('failed', reason(x));
    }
  }

  async turnOff(): Promise<void> {
    if (this.state === 'working') return;
    this.set('working');
    try {
      await this.store.pushCommand({ unregisterPush: { reason: 'PUSH_UNREGISTER_REASON_LOGOUT' } });
      save(this.flag(), undefined);
      await (await subscription())?.unsubscribe();
      this.set('off');
    } catch (x) {
      this.set('failed', reason(x));
    }
  }

  /**
   * On each connection in step: a subscription the user turned on is registered again (the same target
   * again is no change on the server), so a sign-in after a sign-out, or a reload, keeps pushes coming.
   */
  private async renew(): Promise<void> {
    if (!supported() || this.state === 'working' || !this.wanted) return;
    if (Notification.permission !== 'granted') {
      save(this.flag(), undefined);
      return this.set(Notification.permission === 'denied' ? 'blocked' : 'off');
    }
    try {
      const sub = await subscription();
      if (!sub) {
        save(this.flag(), undefined);
        return this.set('off');
      }
      await this.store.pushCommand({ registerPush: { target: target(sub) } });
      this.set('on');
    } catch (x) {
      this.set('failed', reason(x));
    }
  }

  /** The target was refused or taken off by the server: off, with why. */
  private async lost(why: string): Promise<void> {
    save(this.flag(), undefined);
    this.set('failed', why);
    await (await subscription().catch(() => null))?.unsubscribe();
  }

  /** Before signing out: this device stops being pushed for this user (the subscription and the choice stay). */
  async signOut(): Promise<void> {
    if (!this.wanted || !supported()) return;
    await Promise.race([
      this.store.pushCommand({ unregisterPush: { reason: 'PUSH_UNREGISTER_REASON_LOGOUT' } }).catch(() => undefined),
      new Promise((ok) => setTimeout(ok, 3000)),
    ]);
  }
}

function supported(): boolean {
  return 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
}

async function subscription(): Promise<PushSubscription | null> {
  const reg = await navigator.serviceWorker.getRegistration();
  return (await reg?.pushManager.getSubscription()) ?? null;
}

/** The push target of a subscription: its endpoint and keys, as PushSubscription.toJSON() gives them (base64url). */
function target(sub: PushSubscription) {
  const j = sub.toJSON();
  if (!j.endpoint || !j.keys?.p256dh || !j.keys?.auth) throw new Error('the browser gave a subscription without its keys');
  return { provider: 'PUSH_PROVIDER_WEB_PUSH', endpoint: j.endpoint, p256dh: j.keys.p256dh, auth: j.keys.auth };
}

function bytes(b64url: string): Uint8Array<ArrayBuffer> {
  const s = atob(b64url.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, ''));
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function reason(x: unknown): string {
  if (x instanceof Error) return (x.name && x.name !== 'Error' ? x.name + ': ' : '') + x.message;
  return String(x);
}

/** A conversation named by a notification's link (#conv=<id>), taken off the address bar. */
export function convFromHash(): string {
  const m = /[#&]conv=([^&]+)/.exec(location.hash);
  if (!m) return '';
  history.replaceState(null, '', location.pathname + location.search);
  return decodeURIComponent(m[1]);
}

/** The service worker asks an open window to show a conversation (a notification was clicked). */
export function onOpenRequest(f: (conv: string) => void): () => void {
  if (!('serviceWorker' in navigator)) return () => undefined;
  const h = (e: MessageEvent) => {
    if (e.data?.type === 'parley.open' && typeof e.data.conversationId === 'string') f(e.data.conversationId);
  };
  navigator.serviceWorker.addEventListener('message', h);
  return () => navigator.serviceWorker.removeEventListener('message', h);
}
