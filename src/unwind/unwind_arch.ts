/**
 * The DWARF register numbering of one architecture, as far as unwinding needs it. `.eh_frame`
 * itself is architecture-neutral; only the unwinder must know which column holds the stack
 * pointer, the frame pointer and the return address, and how many columns it tracks.
 */
export interface UnwindArch {
  readonly name: string;
  /** Registers 0..registerCount-1 are tracked; rules for higher numbers are ignored. */
  readonly registerCount: number;
  readonly spRegister: number;
  readonly fpRegister: number;
  /**
   * The return-address column the compilers use (each CIE names its own). The unwinder also
   * keeps the frame's pc in this slot, which is exact on x86-64 (column 16 is rip); an AArch64
   * port needs a separate pc slot, because there the column is x30, a real register.
   */
  readonly raRegister: number;
  /** Bytes from the frame pointer to the saved frame pointer / return address, and the caller's sp. */
  readonly fpSavedFpOffset: number;
  readonly fpReturnAddressOffset: number;
  readonly fpCallerSpOffset: number;
  /** Names as readelf prints them, indexed by DWARF number. */
  readonly registerNames: readonly string[];
}

/** System V x86-64 psABI DWARF numbering: rax rdx rcx rbx rsi rdi rbp rsp r8..r15, 16 = rip. */
export const X86_64: UnwindArch = {
  name: "x86_64",
  registerCount: 17,
  spRegister: 7,
  fpRegister: 6,
  raRegister: 16,
  fpSavedFpOffset: 0,
  fpReturnAddressOffset: 8,
  fpCallerSpOffset: 16,
  registerNames: [
    "rax",
    "rdx",
    "rcx",
    "rbx",
    "rsi",
    "rdi",
    "rbp",
    "rsp",
    "r8",
    "r9",
    "r10",
    "r11",
    "r12",
    "r13",
    "r14",
    "r15",
    "rip",
  ],
};
