// The service worker (built to sw.js, served at the root so that its scope is the whole client): shows
// the notifier's Web Push messages as notifications, one per conversation, and opens the conversation
// when one is clicked. It loads nothing and keeps nothing.
export {};

/** The notifier's payload, decrypted by the browser (projector/push WebPushPayload). */
interface Payload {
  id?: string;
  kind?: 'message' | 'clear';
  conversation_id?: string;
  seq?: number;
  title?: string;
  body?: string;
  badge?: number;
  data?: Record<string, string>;
}

interface Ext {
  waitUntil(p: Promise<unknown>): void;
}
interface PushEv extends Ext {
  data: { json(): unknown; text(): string } | null;
}
interface ClickEv extends Ext {
  notification: Notification;
}
interface WindowClient {
  url: string;
  focus(): Promise<WindowClient>;
  postMessage(m: unknown): void;
}
interface Worker {
  registration: ServiceWorkerRegistration;
  clients: {
    matchAll(o: { type: 'window'; includeUncontrolled: boolean }): Promise<WindowClient[]>;
    openWindow(url: string): Promise<WindowClient | null>;
    claim(): Promise<void>;
  };
  navigator: { setAppBadge?: (n?: number) => Promise<void>; clearAppBadge?: () => Promise<void> };
  skipWaiting(): Promise<void>;
  addEventListener(type: 'install' | 'activate', f: (e: Ext) => void): void;
  addEventListener(type: 'push', f: (e: PushEv) => void): void;
  addEventListener(type: 'notificationclick', f: (e: ClickEv) => void): void;
}

const sw = self as unknown as Worker;

// A new version takes over at once: it holds no state an older page depends on.
sw.addEventListener('install', (e) => e.waitUntil(sw.skipWaiting()));
sw.addEventListener('activate', (e) => e.waitUntil(sw.clients.claim()));

/** One notification per conversation: a newer message replaces the one shown. */
function tagOf(conv: string): string {
  return conv ? 'parley:' + conv : 'parley';
}

async function badge(n: number | undefined): Promise<void> {
  if (typeof n !== 'number') return;
  try {
    if (n > 0) await sw.navigator.setAppBadge?.(n);
    else await sw.navigator.clearAppBadge?.();
  } catch {
    // no badge where the platform has none
  }
}

sw.addEventListener('push', (e) => {
  let p: Payload = {};
  try {
    p = (e.data?.json() as Payload) ?? {};
  } catch {
    p = { body: e.data?.text() };
  }
  const conv = p.conversation_id || p.data?.conversation_id || '';
  const seq = Number(p.seq ?? p.data?.seq ?? 0);
  const tag = tagOf(conv);
  if (p.kind === 'clear') {
    // read on another device, or recalled: the conversation's notification up to that seq goes
    e.waitUntil(
      Promise.all([
        sw.registration.getNotifications({ tag }).then((ns) => ns.forEach((n) => (Number(n.data?.seq ?? 0) <= seq ? n.close() : undefined))),
        badge(p.badge),
      ]),
    );
    return;
  }
  e.waitUntil(
    Promise.all([
      sw.registration.showNotification(p.title || 'Parley', {
        body: p.body || 'New message',
        tag,
        // a newer message in the same conversation alerts again
        renotify: true,
        data: { conversationId: conv, seq, id: p.id ?? '' },
      } as NotificationOptions),
      badge(p.badge),
    ]),
  );
});

sw.addEventListener('notificationclick', (e) => {
  e.notification.close();
  const conv: string = e.notification.data?.conversationId ?? '';
  const scope = sw.registration.scope;
  e.waitUntil(
    (async () => {
      const wins = await sw.clients.matchAll({ type: 'window', includeUncontrolled: true });
      const w = wins.find((c) => c.url.startsWith(scope));
      if (w) {
        // an open client shows the conversation itself
        await w.focus();
        w.postMessage({ type: 'parley.open', conversationId: conv });
        return;
      }
      await sw.clients.openWindow(conv ? scope + '#conv=' + encodeURIComponent(conv) : scope);
    })(),
  );
});
