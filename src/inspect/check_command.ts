/** `systing check`: placeholder until the command lands. */
export function checkCommand(_args: string[]): Promise<number> {
  console.error("systing: check is not built yet");
  return Promise.resolve(1);
}
