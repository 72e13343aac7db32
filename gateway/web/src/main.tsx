import { JSX, render } from 'preact';
import { useEffect, useLayoutEffect, useReducer, useRef, useState } from 'preact/hooks';
import { Config, Session, devSignIn, loadConfig, sessionFromFragment, sessionFromToken, storeSession, storedSession } from './api';
import { Conv, Msg, Quote, Staged, Store, snippet } from './store';
import { Push, convFromHash, onOpenRequest } from './push';
import { Att, fmtSize } from './upload';
import { timeOf } from './util';

function SignIn(props: { cfg: Config; note: string; onSession: (s: Session) => void }) {
  const [user, setUser] = useState('');
  const [token, setToken] = useState('');
  const [err, setErr] = useState(props.note);
  const [busy, setBusy] = useState(false);
  const cfg = props.cfg;
  const redirect = () => {
    const back = location.origin + location.pathname;
    location.href = cfg.signInUrl + (cfg.signInUrl!.includes('?') ? '&' : '?') + 'redirect_uri=' + encodeURIComponent(back);
  };
  useEffect(() => {
    // With a sign-in service and no dev tokens, go there at once (unless coming back with a problem to show).
    if (cfg.signInUrl && !cfg.devTokens && !props.note) redirect();
  }, []);
  const submit = async (e: Event) => {
    e.preventDefault();
    setErr('');
    if (props.cfg.devTokens && user.trim()) {
      setBusy(true);
      try {
        props.onSession(await devSignIn(user.trim()));
      } catch (x) {
        setErr((x as Error).message);
      } finally {
        setBusy(false);
      }
      return;
    }
    const s = sessionFromToken(token);
    if (s) props.onSession(s);
    else setErr('That token has no user (sub) or device (did).');
  };
  return (
    <main class="signin">
      <form onSubmit={submit} aria-label="Sign in">
        <h1>Parley</h1>
        {props.cfg.devTokens ? (
          <label>
            User name
            <input data-testid="signin-user" value={user} onInput={(e) => setUser(e.currentTarget.value)} autoFocus autoComplete="username" />
          </label>
        ) : (
          <label>
            Access token
            <textarea data-testid="signin-token" value={token} onInput={(e) => setToken(e.currentTarget.value)} rows={4} />
          </label>
        )}
        <button data-testid="signin-submit" type="submit" disabled={busy}>
          Sign in
        </button>
        {props.cfg.signInUrl && (
          <button type="button" onClick={redirect}>
            Sign in with your account
          </button>
        )}
        {err && <p role="alert" class="err">{err}</p>}
      </form>
    </main>
  );
}

function useStore(store: Store) {
  const [, bump] = useReducer((n: number, _a: void) => n + 1, 0);
  useEffect(() => {
    const off = store.subscribe(() => bump());
    bump(); // whatever changed before the subscription
    return off;
  }, [store]);
}

function Inbox(props: { store: Store }) {
  const s = props.store;
  const [form, setForm] = useState<'' | 'direct' | 'group'>('');
  return (
    <section class="inbox-pane" aria-label="Conversations">
      <div class="tools">
        <button data-testid="new-direct" onClick={() => setForm(form === 'direct' ? '' : 'direct')}>New chat</button>
        <button data-testid="new-group" onClick={() => setForm(form === 'group' ? '' : 'group')}>New group</button>
      </div>
      {form && <NewForm store={s} kind={form} done={() => setForm('')} />}
      <ul data-testid="inbox" role="list" class="inbox">
        {s.sortedConvs().map((c) => (
          <InboxItemView key={c.id} store={s} c={c} />
        ))}
      </ul>
    </section>
  );
}

function InboxItemView(props: { store: Store; c: Conv }) {
  const { store: s, c } = props;
  const n = s.unread(c);
  const open = () => s.open(c.id);
  return (
    <li
      role="listitem"
      tabIndex={0}
      data-testid="inbox-item"
      data-conv={c.id}
      data-unread={String(n)}
      data-left={c.left ? 'true' : undefined}
      class={'item' + (s.openId === c.id ? ' active' : '') + (c.left ? ' gone' : '')}
      aria-current={s.openId === c.id ? 'true' : undefined}
      onClick={open}
      onKeyDown={(e) => (e.key === 'Enter' || e.key === ' ') && (e.preventDefault(), open())}
    >
      <div class="row">
        {c.kind === 'direct' && <span class={'dot' + dotClass(s, s.peer(c))} aria-hidden="true" />}
        <span data-testid="inbox-title" class="title">{s.title(c)}</span>
        {n > 0 && <span class="badge" aria-label={n + ' unread'}>{n}</span>}
      </div>
      <div data-testid="inbox-preview" class="preview">{c.left || c.preview}</div>
    </li>
  );
}

function NewForm(props: { store: Store; kind: 'direct' | 'group'; done: () => void }) {
  const [peer, setPeer] = useState('');
  const [title, setTitle] = useState('');
  const [members, setMembers] = useState('');
  const [err, setErr] = useState('');
  const submit = async (e: Event) => {
    e.preventDefault();
    setErr('');
    try {
      if (props.kind === 'direct') {
        if (!peer.trim()) return;
        await props.store.createDirect(peer.trim());
      } else {
        const list = members.split(',').map((m) => m.trim()).filter((m) => m && m !== props.store.session.userId);
        await props.store.createGroup(title.trim(), [...new Set(list)]);
      }
      props.done();
    } catch (x) {
      setErr((x as Error).message);
    }
  };
  return (
    <form class="newform" onSubmit={submit} aria-label={props.kind === 'direct' ? 'New chat' : 'New group'}>
      {props.kind === 'direct' ? (
        <input data-testid="new-peer" placeholder="user id" value={peer} onInput={(e) => setPeer(e.currentTarget.value)} autoFocus aria-label="Peer user id" />
      ) : (
        <>
          <input data-testid="new-title" placeholder="title" value={title} onInput={(e) => setTitle(e.currentTarget.value)} autoFocus aria-label="Group title" />
          <input data-testid="new-members" placeholder="members, comma-separated" value={members} onInput={(e) => setMembers(e.currentTarget.value)} aria-label="Members" />
        </>
      )}
      <button data-testid="new-submit" type="submit">Create</button>
      {err && <p role="alert" class="err">{err}</p>}
    </form>
  );
}

function Conversation(props: { store: Store; c: Conv }) {
  const { store: s, c } = props;
  const log = useRef<HTMLDivElement>(null);
  const [panel, setPanel] = useState(false);
  const [menu, setMenu] = useState(0); // the seq whose actions are open
  const [draft, setDraft] = useState<Draft | null>(null);
  const [viewing, setViewing] = useState<Att | null>(null); // the image shown whole
  const [dropping, setDropping] = useState(false);
  const stick = useRef(true);
  const prevHeight = useRef(0);
  const sent = useRef(false); // the user just sent: to the bottom, wherever they were
  const msgs = s.timeline(c);
  const me = s.session.userId;
  const peer = s.peer(c);

  const measure = () => {
    const el = log.current;
    if (!el) return;
    const box = el.getBoundingClientRect();
    let top = 0;
    el.querySelectorAll<HTMLElement>('[data-seq]').forEach((m) => {
      const seq = Number(m.dataset.seq);
      if (!seq) return;
      const r = m.getBoundingClientRect();
      if (r.bottom > box.top && r.top < box.bottom && seq > top) top = seq;
    });
    s.visibleUpTo = top;
    s.markVisible();
  };

  useLayoutEffect(() => {
    const el = log.current;
    if (!el) return;
    // moved away from the bottom since the last render, its scroll event not yet handled: not stuck
    if (sent.current) sent.current = false;
    else if (stick.current && prevHeight.current && prevHeight.current - el.scrollTop - el.clientHeight >= 40) stick.current = false;
    if (prevHeight.current && el.scrollTop < 5 && el.scrollHeight > prevHeight.current && !stick.current) {
      el.scrollTop = el.scrollHeight - prevHeight.current;
    } else if (stick.current) el.scrollTop = el.scrollHeight;
    prevHeight.current = el.scrollHeight;
    measure();
  });

  useEffect(() => {
    stick.current = true;
    prevHeight.current = 0;
    setPanel(false);
    setMenu(0);
    setDraft(null);
    setViewing(null);
  }, [c.id]);

  const onScroll = async () => {
    const el = log.current!;
    stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    measure();
    if (el.scrollTop < 60 && c.hasMore && !c.loadingOlder) {
      prevHeight.current = el.scrollHeight;
      const before = el.scrollHeight;
      const top = el.scrollTop;
      if (await s.loadOlder(c)) {
        requestAnimationFrame(() => {
          el.scrollTop = el.scrollHeight - before + top;
        });
      }
    }
  };

  const typists = s.typingUsers(c);
  const hasFiles = (e: DragEvent) => !c.left && !!e.dataTransfer && [...e.dataTransfer.types].includes('Files');
  return (
    <section
      class={'conv-pane' + (dropping ? ' dropping' : '')}
      data-testid="conversation"
      data-conv={c.id}
      data-dropping={dropping ? 'true' : undefined}
      aria-label={s.title(c)}
      onDragOver={(e) => {
        if (!hasFiles(e)) return;
        e.preventDefault();
        e.dataTransfer!.dropEffect = 'copy';
        setDropping(true);
      }}
      onDragLeave={(e) => {
        if (!e.relatedTarget || !(e.currentTarget as Node).contains(e.relatedTarget as Node)) setDropping(false);
      }}
      onDrop={(e) => {
        setDropping(false);
        if (!hasFiles(e)) return;
        e.preventDefault();
        const files = [...(e.dataTransfer?.files ?? [])];
        if (files.length) s.attach(c.id, files);
      }}
    >
      <header class="conv-head">
        <button data-testid="back" class="back" onClick={() => s.close()} aria-label="Back to conversations">‹</button>
        {c.kind === 'direct' && (
          <span
            data-testid="presence"
            data-online={String(!!s.presence.get(peer))}
            data-known={String(s.conn === 'online')}
            class={'dot' + dotClass(s, peer)}
            title={s.conn !== 'online' ? 'unknown while this device is offline' : s.presence.get(peer) ? 'online' : 'offline'}
          />
        )}
        <h2>{s.title(c)}</h2>
        {c.kind === 'group' && (
          <button data-testid="members-toggle" class="members" aria-expanded={panel} aria-controls="members-panel" onClick={() => setPanel(!panel)}>
            {c.members.length} members
          </button>
        )}
      </header>
      {panel && c.kind === 'group' && <Members s={s} c={c} />}
      {c.actError && (
        <div role="alert" class="err banner act-error" data-testid="action-error" data-code={c.actError.code}>
          <span>
            Could not {c.actError.what}: <strong>{c.actError.code}</strong>
            {c.actError.message ? ' — ' + c.actError.message : ''}
          </span>
          <button type="button" data-testid="action-error-dismiss" aria-label="Dismiss" onClick={() => s.dismissError(c.id)}>×</button>
        </div>
      )}
      <div class="log" ref={log} role="log" aria-live="polite" aria-label="Messages" onScroll={onScroll} tabIndex={0}>
        {c.hasMore && <div class="more">{c.loadingOlder ? 'Loading…' : ''}</div>}
        {msgs.map((m) =>
          m.type === 'MessageSent' ? (
            <Bubble
              key={m.clientMsgId || 's' + m.seq}
              s={s}
              c={c}
              m={m}
              mine={m.sender === me}
              menu={menu === m.seq && m.seq > 0}
              setMenu={setMenu}
              onView={setViewing}
              setDraft={(d) => {
                setMenu(0);
                setDraft(d);
              }}
            />
          ) : (
            <Notice key={'s' + m.seq} m={m} />
          ),
        )}
      </div>
      <div data-testid="typing" class="typing" aria-live="polite">
        {typists.length ? typists.join(', ') + (typists.length > 1 ? ' are typing…' : ' is typing…') : ''}
      </div>
      {c.left ? (
        <div class="left-note" data-testid="left" role="status">
          <span>{c.left}</span>
          <button type="button" data-testid="forget" onClick={() => s.forget(c.id)}>Remove from list</button>
        </div>
      ) : (
        <Composer key={c.id} s={s} c={c} draft={draft} setDraft={setDraft} onSend={() => (stick.current = sent.current = true)} />
      )}
      {viewing && <Viewer s={s} c={c} a={viewing} close={() => setViewing(null)} />}
    </section>
  );
}

interface Draft {
  kind: 'edit' | 'reply';
  seq: number;
}

function Composer(props: { s: Store; c: Conv; draft: Draft | null; setDraft: (d: Draft | null) => void; onSend: () => void }) {
  const { s, c, draft, setDraft } = props;
  const [text, setText] = useState('');
  const saved = useRef(''); // what was being written before an edit took the composer
  const input = useRef<HTMLTextAreaElement>(null);
  const picker = useRef<HTMLInputElement>(null);
  const staged = s.staged(c.id);
  const target = draft ? c.msgs.get(draft.seq) : undefined;
  useEffect(() => {
    if (draft?.kind === 'edit') {
      saved.current = text;
      setText(target?.text ?? '');
    }
    if (draft) input.current?.focus();
  }, [draft?.kind, draft?.seq]);
  useEffect(() => {
    // the message went (recalled) while it was being edited or answered
    if (draft && (!target || target.recalled)) setDraft(null);
  });
  const cancel = () => {
    if (draft?.kind === 'edit') setText(saved.current);
    setDraft(null);
  };
  // @mention autocomplete (groups): members (and all) whose id starts with what follows the @
  const [caret, setCaret] = useState(0);
  const [pick, setPick] = useState(0);
  const [hideMentions, setHideMentions] = useState(false);
  const mq = c.kind === 'group' && draft?.kind !== 'edit' && !hideMentions ? mentionQuery(text, caret) : null;
  const options = mq
    ? [...c.members.filter((u) => u !== s.session.userId).sort(), 'all'].filter((u) => u.toLowerCase().startsWith(mq.prefix.toLowerCase())).slice(0, 8)
    : [];
  const choose = (u: string) => {
    if (!mq) return;
    const next = text.slice(0, mq.at) + '@' + u + ' ' + text.slice(caret);
    const at = mq.at + u.length + 2;
    // The field and its caret change now, not in a later frame: a key typed in between would land
    // where the caret was and then see the caret moved back behind it.
    const el = input.current;
    if (el) {
      el.value = next;
      el.focus();
      el.setSelectionRange(at, at);
    }
    setText(next);
    setCaret(at);
    setPick(0);
  };
  const send = () => {
    const t = text.trim();
    if (draft?.kind === 'edit') {
      if (t && target && t !== target.text) s.edit(c.id, draft.seq, t);
      setText(saved.current);
      setDraft(null);
      return;
    }
    const files = s.staged(c.id);
    if (files.length && !s.uploadsReady(c.id)) return; // still uploading, or one failed
    if (!t && !files.length) return;
    const replyTo = draft?.kind === 'reply' && target && !target.recalled ? draft.seq : undefined;
    s.sendText(c.id, t, { ...s.mentionsIn(c, t), replyTo, atts: files.length ? s.takeUploads(c.id) : undefined });
    setText('');
    if (draft?.kind === 'reply') setDraft(null);
    props.onSend();
  };
  return (
    <div class="composer-wrap">
      {draft && target && (
        <div class="draft" data-testid={draft.kind === 'edit' ? 'edit-draft' : 'reply-draft'} data-seq={String(draft.seq)}>
          <span class="draft-what">{draft.kind === 'edit' ? 'Editing your message' : 'Replying to ' + target.sender}</span>
          {draft.kind === 'reply' && <span class="draft-quote">{snippet(target.text)}</span>}
          <button type="button" data-testid="draft-cancel" aria-label={draft.kind === 'edit' ? 'Cancel editing' : 'Cancel reply'} onClick={cancel}>×</button>
        </div>
      )}
      {options.length > 0 && (
        <ul class="mention-list" data-testid="mention-list" role="listbox" id="mention-list" aria-label="Mention">
          {options.map((u, i) => (
            <li
              key={u}
              role="option"
              data-testid="mention-option"
              data-user={u}
              aria-selected={i === pick % options.length}
              class={i === pick % options.length ? 'sel' : ''}
              onMouseDown={(e) => {
                e.preventDefault();
                choose(u);
              }}
            >
              @{u}
              {u === 'all' && <span class="muted"> everyone here</span>}
            </li>
          ))}
        </ul>
      )}
      {staged.length > 0 && (
        <ul class="uploads" data-testid="uploads" role="list" aria-label="Attachments">
          {staged.map((u) => (
            <UploadItem key={u.key} s={s} u={u} />
          ))}
        </ul>
      )}
      <form
        class="composer"
        onSubmit={(e) => {
          e.preventDefault();
          send();
        }}
      >
        {draft?.kind !== 'edit' && (
          <>
            <input
              ref={picker}
              type="file"
              multiple
              class="file-input"
              data-testid="file-input"
              tabIndex={-1}
              aria-hidden="true"
              onChange={(e) => {
                const files = [...(e.currentTarget.files ?? [])];
                e.currentTarget.value = '';
                if (files.length) s.attach(c.id, files);
              }}
            />
            <button type="button" class="attach" data-testid="attach" aria-label="Attach files" title="Attach files" onClick={() => picker.current?.click()}>
              <svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" focusable="false">
                <path d="M16.5 6.5l-7.8 7.8a2 2 0 002.8 2.8l7.8-7.8a4 4 0 00-5.7-5.7L5.8 11.4a6 6 0 008.5 8.5l6.2-6.2" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" />
              </svg>
            </button>
          </>
        )}
        <textarea
          ref={input}
          data-testid="composer"
          aria-label={draft?.kind === 'edit' ? 'Edit message' : 'Message'}
          rows={1}
          value={text}
          placeholder="Message"
          aria-autocomplete="list"
          aria-controls={options.length ? 'mention-list' : undefined}
          onSelect={(e) => setCaret(e.currentTarget.selectionStart ?? 0)}
          onPaste={(e) => {
            // a pasted image (a screenshot) or file is attached; pasted text stays text
            const files = [...(e.clipboardData?.files ?? [])];
            if (!files.length || draft?.kind === 'edit') return;
            e.preventDefault();
            s.attach(c.id, files);
          }}
          onInput={(e) => {
            setText(e.currentTarget.value);
            setCaret(e.currentTarget.selectionStart ?? e.currentTarget.value.length);
            setHideMentions(false);
            if (draft?.kind === 'edit') return;
            if (e.currentTarget.value) s.typing(c.id);
            else s.stopTyping(c.id);
          }}
          onKeyDown={(e) => {
            if (options.length && !e.isComposing) {
              const n = options.length;
              if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
                e.preventDefault();
                setPick((pick + (e.key === 'ArrowDown' ? 1 : n - 1)) % n);
                return;
              }
              if (e.key === 'Enter' || e.key === 'Tab') {
                e.preventDefault();
                choose(options[pick % n]);
                return;
              }
              if (e.key === 'Escape') {
                e.preventDefault();
                setHideMentions(true);
                return;
              }
            }
            if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
              e.preventDefault();
              send();
            } else if (e.key === 'Escape' && draft) {
              e.preventDefault();
              cancel();
            }
          }}
        />
        <button data-testid="send" type="submit" disabled={draft?.kind === 'edit' ? !text.trim() : staged.length ? !s.uploadsReady(c.id) : !text.trim()}>
          {draft?.kind === 'edit' ? 'Save' : 'Send'}
        </button>
      </form>
    </div>
  );
}

/** A presence dot: green when online, grey (unknown) while this device is not connected. */
function dotClass(s: Store, user: string): string {
  if (s.conn !== 'online') return ' unknown';
  return s.presence.get(user) ? ' on' : '';
}

/** Quick reactions offered in a message's menu. */
const QUICK = ['👍', '❤️', '😂', '🎉', '😮', '😢'];

/** A message's text with its @mentions of members (and @all in groups) marked. */
function withMentions(text: string, c: Conv, me: string) {
  const parts: (string | JSX.Element)[] = [];
  let last = 0;
  for (const m of text.matchAll(/(^|\s)@([^\s@]+)/g)) {
    const who = m[2].replace(/[.,:;!?)]+$/, '');
    if (!(c.members.includes(who) || (who === 'all' && c.kind === 'group'))) continue;
    const at = m.index! + m[1].length;
    parts.push(text.slice(last, at));
    parts.push(<span data-testid="mention" data-user={who} class={'mention' + (who === me || who === 'all' ? ' me' : '')}>@{who}</span>);
    last = at + 1 + who.length;
  }
  parts.push(text.slice(last));
  return parts;
}

/** The members the `@` before the caret may complete to, or null when there is none. */
function mentionQuery(text: string, caret: number): { at: number; prefix: string } | null {
  const m = /(^|\s)@([^\s@]*)$/.exec(text.slice(0, caret));
  return m ? { at: caret - m[2].length - 1, prefix: m[2] } : null;
}

const ROLE_ORDER = { owner: 0, admin: 1, member: 2 };

function Members(props: { s: Store; c: Conv }) {
  const { s, c } = props;
  const me = s.session.userId;
  const [add, setAdd] = useState('');
  const [busy, setBusy] = useState('');
  const [leaving, setLeaving] = useState(false);
  const list = [...c.members].sort((a, b) => ROLE_ORDER[s.role(c, a) ?? 'member'] - ROLE_ORDER[s.role(c, b) ?? 'member'] || a.localeCompare(b));
  const run = async (key: string, f: () => Promise<boolean>) => {
    setBusy(key);
    const ok = await f();
    setBusy('');
    return ok;
  };
  const submit = async (e: Event) => {
    e.preventDefault();
    const ids = [...new Set(add.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean))];
    if (ids.length && (await run('add', () => s.addMembers(c.id, ids)))) setAdd('');
  };
  return (
    <section id="members-panel" data-testid="members-panel" class="members-panel" aria-label="Members">
      {!c.rolesKnown && <p class="muted">Loading members…</p>}
      <ul role="list">
        {list.map((u) => {
          const role = s.role(c, u);
          return (
            <li key={u} data-testid="member" data-user={u} data-role={role ?? ''}>
              <span class="who">{u === me ? u + ' (you)' : u}</span>
              {role && role !== 'member' && <span class="role">{role}</span>}
              {s.mayRemove(c, u) && (
                <button type="button" data-testid="member-remove" aria-label={'Remove ' + u} disabled={!!busy} onClick={() => run(u, () => s.removeMember(c.id, u))}>
                  Remove
                </button>
              )}
            </li>
          );
        })}
      </ul>
      {s.mayAdd(c) && (
        <form class="add-member" onSubmit={submit} aria-label="Add members">
          <input data-testid="add-member" value={add} onInput={(e) => setAdd(e.currentTarget.value)} placeholder="user ids, comma-separated" aria-label="User ids to add" />
          <button data-testid="add-member-submit" type="submit" disabled={!add.trim() || !!busy}>Add</button>
        </form>
      )}
      {!c.left &&
        (leaving ? (
          <div class="confirm" role="group" aria-label="Leave this group?">
            <span>Leave this group?</span>
            <button type="button" data-testid="leave-confirm" disabled={!!busy} onClick={() => run('leave', () => s.leave(c.id)).then(() => setLeaving(false))}>Leave</button>
            <button type="button" data-testid="leave-cancel" onClick={() => setLeaving(false)}>Cancel</button>
          </div>
        ) : (
          <button type="button" data-testid="leave" onClick={() => setLeaving(true)}>Leave group</button>
        ))}
    </section>
  );
}

function Bubble(props: { s: Store; c: Conv; m: Msg; mine: boolean; menu: boolean; setMenu: (seq: number) => void; setDraft: (d: Draft) => void; onView: (a: Att) => void }) {
  const { s, c, m, mine } = props;
  const [confirm, setConfirm] = useState(false);
  const menuRef = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (props.menu) menuRef.current?.querySelector('button')?.focus();
    else setConfirm(false);
  }, [props.menu]);
  const receipt = mine && c.kind === 'direct' && m.seq ? s.receipt(c, m) : undefined;
  const tick = receipt === 'read' ? '✓✓ read' : receipt === 'delivered' ? '✓✓' : receipt === 'sent' ? '✓' : '';
  const actionable = m.seq > 0 && !m.recalled && !c.left;
  const close = () => {
    props.setMenu(0);
    setConfirm(false);
  };
  return (
    <div
      data-testid="message"
      data-seq={m.seq ? String(m.seq) : ''}
      data-client-msg-id={m.clientMsgId}
      data-sender={m.sender}
      data-state={m.state}
      data-receipt={receipt}
      data-recalled={m.recalled ? 'true' : undefined}
      data-mentioned={m.mentionsMe ? 'true' : undefined}
      class={'msg' + (mine ? ' mine' : '') + ' ' + m.state + (m.mentionsMe ? ' mentioned' : '')}
    >
      {!mine && c.kind === 'group' && <div class="sender">{m.sender}</div>}
      {m.replyTo && !m.recalled && <ReplyQuote q={m.replyTo} />}
      {!m.recalled && m.atts && m.atts.length > 0 && (
        <div class="atts" data-testid="attachments">
          {m.atts.map((a) => (
            <AttachmentView key={a.id} s={s} c={c} a={a} onView={props.onView} />
          ))}
        </div>
      )}
      <div data-testid="message-text" class={'text' + (m.recalled ? ' recalled' : '') + (!m.recalled && !m.text && m.atts?.length ? ' empty' : '')}>{m.recalled ? 'message recalled' : withMentions(m.text, c, s.session.userId)}</div>
      {!m.recalled && m.reactions && Object.keys(m.reactions).length > 0 && (
        <div class="reactions" role="group" aria-label="Reactions">
          {Object.entries(m.reactions).map(([emoji, who]) => {
            const own = who.includes(s.session.userId);
            return (
              <button
                type="button"
                key={emoji}
                data-testid="reaction"
                data-emoji={emoji}
                data-count={String(who.length)}
                data-mine={String(own)}
                aria-pressed={own}
                class={'reaction' + (own ? ' own' : '')}
                title={who.join(', ')}
                disabled={!s.mayRespond(c, m)}
                onClick={() => s.react(c.id, m.seq, emoji)}
              >
                {emoji} {who.length}
              </button>
            );
          })}
        </div>
      )}
      <div class="meta">
        {!!m.edits && !m.recalled && <span data-testid="edited" class="edited">edited</span>}
        <span>{timeOf(m.at)}</span>
        {m.state === 'pending' && <span>sending…</span>}
        {tick && <span class="tick">{tick}</span>}
        {mine && c.kind === 'group' && m.seq > 0 && <span data-testid="read-by">read by {s.readBy(c, m)}</span>}
        {m.state === 'failed' && (
          <>
            <span class="err" title={m.error}>not sent</span>
            <button data-testid="retry" type="button" onClick={() => s.retry(m.clientMsgId)}>Retry</button>
          </>
        )}
        {actionable && (
          <button
            type="button"
            class="more-btn"
            data-testid="msg-actions"
            aria-label="Message actions"
            aria-haspopup="true"
            aria-expanded={props.menu}
            onClick={() => (props.menu ? close() : props.setMenu(m.seq))}
          >
            ⋯
          </button>
        )}
      </div>
      {props.menu && actionable && (
        <div ref={menuRef} class="msg-menu" data-testid="msg-menu" role="toolbar" aria-label="Message actions" onKeyDown={(e) => e.key === 'Escape' && close()}>
          {confirm ? (
            <>
              <span>Recall for everyone?</span>
              <button
                type="button"
                data-testid="recall-confirm"
                onClick={() => {
                  close();
                  s.recall(c.id, m.seq);
                }}
              >
                Recall
              </button>
              <button type="button" data-testid="recall-cancel" onClick={() => setConfirm(false)}>Cancel</button>
            </>
          ) : (
            <>
              {s.mayRespond(c, m) && (
                <>
                  {QUICK.map((emoji) => (
                    <button
                      type="button"
                      key={emoji}
                      data-testid="react"
                      data-emoji={emoji}
                      aria-label={'React ' + emoji}
                      onClick={() => {
                        close();
                        s.react(c.id, m.seq, emoji);
                      }}
                    >
                      {emoji}
                    </button>
                  ))}
                  <button type="button" data-testid="reply" onClick={() => props.setDraft({ kind: 'reply', seq: m.seq })}>Reply</button>
                </>
              )}
              {s.mayEdit(c, m) && <button type="button" data-testid="edit" onClick={() => props.setDraft({ kind: 'edit', seq: m.seq })}>Edit</button>}
              {s.mayRecall(c, m) && <button type="button" data-testid="recall" onClick={() => setConfirm(true)}>Recall</button>}
            </>
          )}
        </div>
      )}
    </div>
  );
}

/** A file in the composer: its name, size and upload progress; Retry continues a failed upload, × removes it. */
function UploadItem(props: { s: Store; u: Staged }) {
  const { s, u } = props;
  const pct = u.size ? Math.floor((100 * u.sent) / u.size) : 100;
  return (
    <li class={'upload ' + u.state} data-testid="upload" data-state={u.state} data-name={u.name} data-progress={String(pct)} data-sent={String(u.sent)}>
      {u.preview && <img class="upload-preview" src={u.preview} alt="" />}
      <span class="upload-name">{u.name}</span>
      <span class="upload-size">{fmtSize(u.size)}</span>
      {u.state !== 'failed' && (
        <progress max={100} value={pct} aria-label={'Uploading ' + u.name}>
          {pct}%
        </progress>
      )}
      {u.state === 'uploading' && <span class="muted">{pct}%</span>}
      {u.state === 'failed' && (
        <span class="err" data-testid="upload-error" role="alert">
          {u.error}
        </span>
      )}
      {u.state === 'failed' && !u.fatal && (
        <button type="button" data-testid="upload-retry" aria-label={'Retry uploading ' + u.name} onClick={() => s.retryUpload(u.key)}>
          Retry
        </button>
      )}
      <button type="button" data-testid="upload-remove" aria-label={'Remove ' + u.name} onClick={() => s.removeUpload(u.key)}>
        ×
      </button>
    </li>
  );
}

/** An attachment in a message: an image's thumbnail (a click shows it whole), else a named link with its size. */
function AttachmentView(props: { s: Store; c: Conv; a: Att; onView: (a: Att) => void }) {
  const { s, c, a } = props;
  const [urls, setUrls] = useState<{ url: string; thumb: string } | null>(null);
  const [tries, setTries] = useState(0);
  useEffect(() => {
    let live = true;
    s.files.url(c.id, a.id).then(
      (u) => live && setUrls(u),
      () => live && tries < 3 && setTimeout(() => live && setTries(tries + 1), 2000 * (tries + 1)),
    );
    return () => {
      live = false;
    };
  }, [c.id, a.id, tries]);
  const refused = () => {
    // the signed URL expired (or the attachment went): ask for a new one, a few times
    s.files.forget(c.id, a.id);
    if (tries < 3) setTries(tries + 1);
  };
  const common = { 'data-testid': 'attachment', 'data-kind': a.kind, 'data-attachment-id': a.id, 'data-name': a.name, 'data-size': String(a.size) };
  if (a.kind === 'image') {
    const ratio = a.w && a.h ? a.h / a.w : 0.75;
    const w = Math.min(240, a.w ?? 240);
    return (
      <div class="att image" {...common}>
        <button type="button" class="thumb" data-testid="attachment-open" aria-label={'Open image ' + (a.name || '')} disabled={!urls} onClick={() => props.onView(a)}>
          {urls && <img data-testid="attachment-image" src={urls.thumb || urls.url} alt={a.name || 'image'} width={w} height={Math.round(w * ratio)} onError={refused} />}
          {!urls && <span class="thumb-wait" style={{ width: w + 'px', height: Math.round(w * ratio) + 'px' }} />}
        </button>
      </div>
    );
  }
  const label = (a.name || 'file') + ' (' + fmtSize(a.size) + ')';
  return (
    <div class={'att file ' + a.kind} {...common}>
      {(a.kind === 'audio' || a.kind === 'video') && urls && (a.kind === 'audio' ? <audio controls preload="none" src={urls.url} /> : <video controls preload="metadata" src={urls.url} />)}
      <a data-testid="attachment-link" href={urls?.url} download={a.name || 'file'} aria-label={'Download ' + label} aria-disabled={!urls}>
        <span class="att-name">{a.name || 'file'}</span>
      </a>
      <span class="att-size" data-testid="attachment-size">{fmtSize(a.size)}</span>
    </div>
  );
}

/** The whole image, over the conversation; Escape or × closes it. */
function Viewer(props: { s: Store; c: Conv; a: Att; close: () => void }) {
  const { s, c, a } = props;
  const [url, setUrl] = useState('');
  const closer = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    let live = true;
    s.files.url(c.id, a.id).then((u) => live && setUrl(u.url), () => undefined);
    const opener = document.activeElement as HTMLElement | null;
    closer.current?.focus();
    return () => {
      live = false;
      opener?.focus(); // back to the image that was opened
    };
  }, [a.id]);
  return (
    <div
      class="viewer"
      data-testid="image-viewer"
      role="dialog"
      aria-modal="true"
      aria-label={a.name || 'image'}
      onKeyDown={(e) => e.key === 'Escape' && props.close()}
      onClick={(e) => e.target === e.currentTarget && props.close()}
    >
      <button type="button" ref={closer} class="viewer-close" data-testid="viewer-close" aria-label="Close image" onClick={props.close}>
        ×
      </button>
      {url && <img data-testid="viewer-image" src={url} alt={a.name || 'image'} />}
      {url && (
        <a class="viewer-download" href={url} download={a.name || 'image'}>
          Download {a.name} ({fmtSize(a.size)})
        </a>
      )}
    </div>
  );
}

/** The message a reply answers; a click shows it when it is on screen. */
function ReplyQuote(props: { q: Quote }) {
  const q = props.q;
  const show = () => {
    const el = document.querySelector<HTMLElement>('[data-testid=message][data-seq="' + q.seq + '"]');
    el?.scrollIntoView({ block: 'center' });
    el?.classList.add('flash');
    setTimeout(() => el?.classList.remove('flash'), 1200);
  };
  return (
    <button type="button" class="quote" data-testid="reply-quote" data-reply-seq={String(q.seq)} onClick={show}>
      <span class="quote-who">{q.sender || 'message ' + q.seq}</span>
      <span class="quote-text">{q.recalled ? 'message recalled' : q.snippet}</span>
    </button>
  );
}

function Notice(props: { m: Msg }) {
  const m = props.m;
  const who = (m.members ?? []).join(', ');
  const what =
    m.type === 'MembersAdded'
      ? m.sender + ' added ' + who
      : m.type === 'MemberRemoved'
        ? m.removedReason === 'left' || m.sender === who
          ? who + ' left'
          : m.sender + ' removed ' + who
        : m.type;
  return <div class="notice" data-testid="notice" data-notice-seq={String(m.seq)}>{what}</div>;
}

const PUSH_TEXT = { off: 'off', on: 'on', working: 'working…', blocked: 'blocked by the browser', failed: 'failed', unsupported: '' };

/** Turns Web Push on and off for this browser, and says where it stands. */
function PushControl(props: { p: Push }) {
  const p = props.p;
  if (p.state === 'unsupported') return null;
  return (
    <span class="push" data-testid="push" data-state={p.state}>
      <button
        data-testid="push-toggle"
        aria-pressed={p.wanted ? 'true' : 'false'}
        aria-describedby="push-state"
        title={p.state === 'blocked' ? 'Notifications are blocked in this browser\'s site settings' : undefined}
        disabled={p.state === 'working' || p.state === 'blocked'}
        onClick={() => void p.toggle()}
      >
        Notifications
      </button>
      <span id="push-state" data-testid="push-state" role="status" class="push-state">
        {PUSH_TEXT[p.state]}
        {p.state === 'failed' && p.error && <span data-testid="push-error">: {p.error}</span>}
      </span>
    </span>
  );
}

function Main(props: { store: Store; push: Push | null; signOut: () => void }) {
  const s = props.store;
  useStore(s);
  const open = s.openId ? s.convs.get(s.openId) : undefined;
  return (
    <div class={'app' + (open ? ' has-open' : '')}>
      <header class="top">
        <strong class="brand">Parley</strong>
        <span data-testid="conn" data-state={s.conn} role="status" class={'conn ' + s.conn}>
          {s.conn === 'online' ? 'online' : s.conn === 'connecting' ? 'connecting…' : 'offline'}
        </span>
        <span data-testid="me" class="me">{s.session.userId}</span>
        {props.push && <PushControl p={props.push} />}
        <button data-testid="signout" onClick={props.signOut}>Sign out</button>
      </header>
      {s.error && <p role="alert" class="err banner">{s.error}</p>}
      <div class="panes">
        <Inbox store={s} />
        {open ? <Conversation store={s} c={open} /> : <section class="conv-pane empty"><p>Pick a conversation, or start one.</p></section>}
      </div>
    </div>
  );
}

function App(props: { cfg: Config }) {
  const [session, setSession] = useState<Session | null>(() => sessionFromFragment() ?? storedSession());
  const [note, setNote] = useState('');
  const [store, setStore] = useState<Store | null>(null);
  const [push, setPush] = useState<Push | null>(null);
  useEffect(() => {
    if (!session) return;
    storeSession(session);
    const st = new Store(props.cfg, session, (why) => {
      st.stop();
      storeSession(null);
      setNote(why);
      setSession(null);
    });
    setPush(props.cfg.vapidPublicKey ? new Push(st, props.cfg.vapidPublicKey) : null);
    setStore(st);
    // a notification's link, or a click on one while this page is open
    const conv = convFromHash();
    if (conv) st.openSoon(conv);
    const off = onOpenRequest((c) => st.openSoon(c));
    return () => {
      off();
      st.stop();
    };
  }, [session]);
  if (!session) return <SignIn cfg={props.cfg} note={note} onSession={setSession} />;
  if (!store || store.session !== session) return null;
  return (
    <Main
      store={store}
      push={push}
      signOut={async () => {
        await push?.signOut();
        storeSession(null);
        setNote('');
        setSession(null);
      }}
    />
  );
}

loadConfig().then((cfg) => render(<App cfg={cfg} />, document.getElementById('app')!));
