// The monitor's refusals: a request it will not carry out, as a message for the user.

/** A request the monitor refuses (a name taken, memory that does not fit): a message for the user. */
export class MonitorError extends Error {}
