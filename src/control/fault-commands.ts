// The control commands of a machine's hardware faults, the same on `up`'s socket and `run`'s: inject one, repair what failed, read the failure report.

import { describeRecord } from '../board/failure-report.js';
import { parseFault, parseSimulatedTime } from '../board/fault-script.js';
import { FaultError, faultName } from '../board/faults.js';
import type { MachineHardware } from '../board/hardware.js';
import { QmpError, stringArgument, type QmpCommands } from './qmp.js';

/** `inject-fault`, `repair-hardware` and `query-failure-report` for `hardware`, whose machine's time (cycles) `now` gives. */
export function faultCommands(hardware: MachineHardware, now: () => number): QmpCommands {
  return {
    'inject-fault': {
      help: 'inject a hardware fault (docs/faults.md): {"fault": "node N" | "cpu N" | "link A-B" | "router N" | "page ADDR" | "line ADDR"}, ' +
        'at the next round boundary or at {"time": "20ms"} of simulated time → {"fault", "time"} (cycles)',
      args: ['fault', 'time'],
      run: (args) => {
        const text = stringArgument(args, 'fault');
        if (text === undefined) throw new QmpError('GenericError', "Parameter 'fault' is missing");
        if (args.time !== undefined && typeof args.time !== 'string') throw new QmpError('GenericError', "'time' must be a simulated time such as \"20ms\"");
        try {
          const fault = parseFault(text);
          const time = args.time === undefined ? now() : parseSimulatedTime(args.time);
          hardware.injector.schedule(time, fault);
          return { fault: faultName(fault), time };
        } catch (error) {
          if (error instanceof FaultError) throw new QmpError('GenericError', error.message);
          throw error;
        }
      },
    },
    'repair-hardware': {
      help: 'replace every failed part of the machine (docs/faults.md, "Repair"): failed nodes (with new memory), CPUs, links and routers work again, ' +
        'and the monitor takes them back (a failed cell rejoins); poison in memory that was not replaced stays → {"parts"} (how many came back)',
      args: [],
      run: () => ({ parts: hardware.state.repair() }),
    },
    'query-failure-report': {
      help: 'the machine\'s failure report, as the hardware logged it: [{"seq", "time" (cycles), "kind", …, "text"}], from {"from": SEQ} (default 0)',
      args: ['from'],
      run: (args) => {
        const from = args.from ?? 0;
        if (typeof from !== 'number' || !Number.isInteger(from) || from < 0) throw new QmpError('GenericError', "'from' must be a record's sequence number");
        return hardware.report.since(from).map((r) => ({ ...r, text: describeRecord(r) }));
      },
    },
  };
}
