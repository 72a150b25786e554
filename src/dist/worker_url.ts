/**
 * Where a worker's code comes from. Run from source or `deno compile`, it is the module file
 * beside the caller. In dist/systing built by pack.ts the program is one bundled module with no
 * files beside it, so the workers' bundles travel inside it as text and start from a blob URL.
 */
export const WORKER_SOURCES_KEY = "systing.worker_sources";

export function workerUrl(name: string, beside: URL): URL | string {
  const sources = (globalThis as Record<symbol, Record<string, string> | undefined>)[
    Symbol.for(WORKER_SOURCES_KEY)
  ];
  const code = sources?.[name];
  if (code === undefined) return beside;
  return URL.createObjectURL(new Blob([code], { type: "text/javascript" }));
}
