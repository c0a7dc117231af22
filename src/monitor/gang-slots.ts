// Time slots for the gangs that span cells (Ousterhout's matrix, ICDCS 1982, as Cellular Disco needs it): a VM
// larger than a cell has its vCPUs dealt over several cells, and each cell schedules its own CPUs, so nothing
// would make the cells run its parts at the same time. Instead every cell derives the same fixed rotation of
// slots from what every cell knows already, the placement, with no message per round: in a spanning gang's
// slot each cell it spans runs its part first (every runnable vCPU of it) and fills the CPUs left with its
// own VMs; outside its slot no cell runs any of it (docs/cells.md, "Gangs across cells").

/** A gang spanning cells: its VM id, and how many of its vCPUs each of its cells schedules. */
export interface SpanningGang {
  vm: number;
  parts: readonly { cell: number; vcpus: number }[];
}

/**
 * The matrix's rows, each the VMs whose slot it is, in rotation order. Gangs are packed first fit, by VM id,
 * into the first row where each of their parts fits beside the row's others in its cell's CPUs (`capacity`, per
 * cell), so gangs that fit together run together. A gang whose part is larger than its cell can never run whole:
 * it gets a row where it is alone in that cell. One more row, with no spanning gang, when some VM is confined
 * to a cell a spanning gang uses (`confinedIn`), so that the spanning gangs cannot take those cells for ever.
 */
export function gangSlots(gangs: readonly SpanningGang[], capacity: readonly number[], confinedIn: ReadonlySet<number>): number[][] {
  const rows: number[][] = [];
  const used: number[][] = [];
  const spanned = new Set<number>();
  for (const gang of [...gangs].sort((a, b) => a.vm - b.vm)) {
    let row = used.findIndex((cells) => gang.parts.every((p) => cells[p.cell]! + p.vcpus <= capacity[p.cell]!));
    if (row < 0) {
      row = rows.length;
      rows.push([]);
      used.push(capacity.map(() => 0));
    }
    rows[row]!.push(gang.vm);
    for (const p of gang.parts) {
      used[row]![p.cell]! += p.vcpus;
      spanned.add(p.cell);
    }
  }
  if ([...spanned].some((cell) => confinedIn.has(cell))) rows.push([]);
  return rows;
}

/** The row whose slot it is at time `now`: slots of `slotCycles` each, in turn from time 0. */
export function slotAt(now: number, slotCycles: number, rows: number): number {
  return rows === 0 ? -1 : Math.floor(now / slotCycles) % rows;
}
