// Named constants of the RISC-V encoding: major opcodes, exception causes, interrupt bits, privilege modes.

/** Major opcodes, bits 6..0 of a 32-bit instruction (RISC-V unprivileged spec, table 24.1). */
export const OP_LOAD = 0x03;
export const OP_LOAD_FP = 0x07;
export const OP_MISC_MEM = 0x0f;
export const OP_IMM = 0x13;
export const OP_AUIPC = 0x17;
export const OP_IMM_32 = 0x1b;
export const OP_STORE = 0x23;
export const OP_STORE_FP = 0x27;
export const OP_AMO = 0x2f;
export const OP_OP = 0x33;
export const OP_LUI = 0x37;
export const OP_OP_32 = 0x3b;
export const OP_MADD = 0x43;
export const OP_MSUB = 0x47;
export const OP_NMSUB = 0x4b;
export const OP_NMADD = 0x4f;
export const OP_OP_FP = 0x53;
export const OP_BRANCH = 0x63;
export const OP_JALR = 0x67;
export const OP_JAL = 0x6f;
export const OP_SYSTEM = 0x73;

/** Privilege levels (privileged spec §1.2). */
export const PRIV_U = 0;
export const PRIV_S = 1;
export const PRIV_M = 3;

/** Synchronous exception causes (privileged spec table 3.6). */
export const CAUSE_MISALIGNED_FETCH = 0;
export const CAUSE_FETCH_ACCESS = 1;
export const CAUSE_ILLEGAL_INSTRUCTION = 2;
export const CAUSE_BREAKPOINT = 3;
export const CAUSE_MISALIGNED_LOAD = 4;
export const CAUSE_LOAD_ACCESS = 5;
export const CAUSE_MISALIGNED_STORE = 6;
export const CAUSE_STORE_ACCESS = 7;
export const CAUSE_USER_ECALL = 8;
export const CAUSE_SUPERVISOR_ECALL = 9;
export const CAUSE_MACHINE_ECALL = 11;
export const CAUSE_FETCH_PAGE_FAULT = 12;
export const CAUSE_LOAD_PAGE_FAULT = 13;
export const CAUSE_STORE_PAGE_FAULT = 15;
/** Guest-page faults: a G-stage translation denied the access (privileged spec §9.6.3, hypervisor extension). */
export const CAUSE_FETCH_GUEST_PAGE_FAULT = 20;
export const CAUSE_LOAD_GUEST_PAGE_FAULT = 21;
export const CAUSE_STORE_GUEST_PAGE_FAULT = 23;

/** Interrupt numbers = bit positions in mip/mie (privileged spec §3.1.9). */
export const IRQ_S_SOFT = 1;
export const IRQ_M_SOFT = 3;
export const IRQ_S_TIMER = 5;
export const IRQ_M_TIMER = 7;
export const IRQ_S_EXT = 9;
export const IRQ_M_EXT = 11;

export const MIP_SSIP = 1 << IRQ_S_SOFT;
export const MIP_MSIP = 1 << IRQ_M_SOFT;
export const MIP_STIP = 1 << IRQ_S_TIMER;
export const MIP_MTIP = 1 << IRQ_M_TIMER;
export const MIP_SEIP = 1 << IRQ_S_EXT;
export const MIP_MEIP = 1 << IRQ_M_EXT;
