/**
 * markers: instants and ranges programs mark themselves, through one system call and no
 * library (bpf/recorders/markers.bpf.c has the convention): "Track:Event" becomes an instant (or
 * a slice, for a begin/end pair) named Event on a track named Track under the marking thread.
 * The text is the program's: names are bounded in length and in number, past which they are
 * counted under one name rather than grow the trace's tables.
 */
import type { DecoderTable } from "../records/record_decoder.ts";
import { cString, Layout as L, MARKER_LEN, MarkerKind, RecordKind } from "../records/records.ts";
import type { DecoderScope, Recorder } from "./recorder.ts";

/** Distinct track and event names one drain worker keeps; past them, "(other)". */
const MAX_NAMES = 4096;
/** Tracks one worker remembers describing; past this it describes them again. */
const MAX_DESCRIBED = 1 << 16;
export const MARKER_TRACKS_DEFAULT = "markers";

/** 64-bit FNV-1a of the thread and track: a track uuid, tagged so no other track's can be it. */
export function markerTrack(tgid: number, tid: number, track: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (const c of `${tgid}/${tid}/${track}`) {
    h ^= BigInt(c.codePointAt(0)!);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  // Bit 63 set: the other recorders' uuids are numbers below 2^53.
  return h | (1n << 63n);
}

/** "Track:Event" as its parts; without a colon, the default track. */
export function splitMarker(text: string): [string, string] {
  const colon = text.indexOf(":");
  if (colon <= 0) return [MARKER_TRACKS_DEFAULT, text || "(empty)"];
  return [text.slice(0, colon), text.slice(colon + 1) || "(empty)"];
}

function decoders(scope: DecoderScope): DecoderTable {
  const t = scope.tracks;
  const names = new Map<string, number>();
  const described = new Set<bigint>();
  const bounded = (s: string) => names.has(s) || names.size < MAX_NAMES ? s : "(other)";
  const nameIid = (s: string) => {
    const key = bounded(s);
    let iid = names.get(key);
    if (iid === undefined) names.set(key, iid = t.nameIid(key));
    return iid;
  };
  return {
    [RecordKind.Marker]: (mem, off, size, ts) => {
      if (size !== L.rec_marker.size) return false;
      const w = off >> 2;
      const tid = mem.u32[w + 4], tgid = mem.u32[w + 5], kind = mem.u32[w + 6];
      const text = cString(mem.bytes, off + L.rec_marker.text, MARKER_LEN);
      // A text in a page the program never touched cannot be read (see the README).
      if (!text) scope.problem("markers whose text was not in memory (unreadable)");
      const [trackName, event] = splitMarker(text || "(unreadable)");
      const track = bounded(trackName);
      const uuid = markerTrack(tgid, tid, track);
      if (!described.has(uuid)) {
        if (described.size >= MAX_DESCRIBED) described.clear();
        described.add(uuid);
        t.threadTrack(uuid, tgid, tid, track);
      }
      if (kind === MarkerKind.End) {
        // Closes the innermost open slice of the track: its name is the begin's.
        t.sliceEnd(ts, uuid);
        return true;
      }
      const iid = nameIid(event);
      t.begin(ts, kind === MarkerKind.Begin ? 1 : 3, uuid, iid);
      t.end();
      return true;
    },
  };
}

export const markers: Recorder = {
  name: "markers",
  description: "instants and ranges programs mark with one faccessat2 call (see README)",
  defaultOn: false,
  bpf: { programs: ["on_marker"], maps: [] },
  kinds: [RecordKind.Marker],
  unsupported: (m) =>
    m.exists("/sys/kernel/tracing/events/syscalls/sys_enter_faccessat2")
      ? undefined
      : "this kernel has no syscalls:sys_enter_faccessat2 tracepoint (faccessat2 is 5.8+)",
  decoders,
  start: () => ({}),
};
