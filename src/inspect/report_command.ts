/** `systing report`: placeholder until the command lands. */
export function reportCommand(_args: string[]): Promise<number> {
  console.error("systing: report is not built yet");
  return Promise.resolve(1);
}
