/**
 * The recorders' sessions of one recording: started in registry order (a
 * shared one right before the first recorder that asked for it), and the
 * routing of forwarded records to the session that takes their kind.
 */
import type { Recorder, RecorderContext, RecorderSession } from "../recorders/recorder.ts";
import { Layout, type RecordKind } from "../records/records.ts";

/** Sessions' own sequences (RecorderContext.sequence) count up from here. */
const SEQUENCE_ID_SESSIONS = 200;

export interface Sessions {
  /** Every session, shared ones included, in the order the stages run them. */
  all: RecorderSession[];
  /** The session each recorder started, by the recorder's index. */
  own: RecorderSession[];
}

export function startSessions(
  recorders: readonly Recorder[],
  ctx: Omit<RecorderContext, "shared" | "sequence">,
): Sessions {
  const all: RecorderSession[] = [];
  const own: RecorderSession[] = [];
  const shared = new Map<string, RecorderSession>();
  let nextSequence = SEQUENCE_ID_SESSIONS;
  const context: RecorderContext = {
    ...ctx,
    sequence: () => nextSequence++,
    shared<T extends RecorderSession>(key: string, create: () => T): T {
      let s = shared.get(key);
      if (!s) {
        s = create();
        shared.set(key, s);
        all.push(s);
      }
      return s as T;
    },
  };
  for (const r of recorders) {
    const s = r.start(context);
    own.push(s);
    all.push(s);
  }
  return { all, own };
}

/** Which session takes each forwarded kind. */
export function forwardingTable(
  sessions: readonly RecorderSession[],
): Map<number, RecorderSession> {
  const byKind = new Map<number, RecorderSession>();
  for (const s of sessions) for (const k of s.forwarded ?? []) byKind.set(k, s);
  return byKind;
}

/** A batch of forwarded records, split by the session that takes them (usually one, whole). */
export function splitForwarded(
  batch: Uint8Array,
  byKind: ReadonlyMap<number, RecorderSession>,
): [RecorderSession, Uint8Array][] {
  const dv = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  const parts = new Map<RecorderSession, [number, number][]>();
  for (let off = 0; off + Layout.rec_hdr.size <= batch.length;) {
    const size = dv.getUint16(off + 2, true);
    if (size < Layout.rec_hdr.size) break;
    const session = byKind.get(dv.getUint16(off, true) as RecordKind);
    const next = off + ((size + 7) & ~7);
    if (session) {
      let runs = parts.get(session);
      if (!runs) parts.set(session, runs = []);
      const last = runs[runs.length - 1];
      if (last && last[1] === off) last[1] = next;
      else runs.push([off, next]);
    }
    off = next;
  }
  return [...parts].map(([session, runs]) => {
    if (runs.length === 1) return [session, batch.subarray(runs[0][0], runs[0][1])];
    const out = new Uint8Array(runs.reduce((n, [a, b]) => n + b - a, 0));
    let at = 0;
    for (const [a, b] of runs) {
      out.set(batch.subarray(a, b), at);
      at += b - a;
    }
    return [session, out];
  });
}
