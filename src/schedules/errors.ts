// Errors of the schedules module. Stable `name`s, messages that say what to do next.

/** A schedule's input is invalid; `fields` names each bad field. Nothing was stored. */
export class ScheduleInputError extends Error {
  override readonly name = 'ScheduleInputError';
  constructor(
    message: string,
    /** Dotted paths of the bad fields: `cron`, `timezone`, `options.maxTurns`. */
    readonly fields: readonly string[],
    /** One message per field, in the order of `fields`. */
    readonly messages: readonly string[] = [],
  ) {
    super(message);
  }
}

/** A schedule with this name already exists for the tenant; nothing was changed. */
export class ScheduleExistsError extends Error {
  override readonly name = 'ScheduleExistsError';
  constructor(
    readonly tenantId: string,
    readonly scheduleName: string,
  ) {
    super(`a schedule named ${JSON.stringify(scheduleName)} already exists for tenant ${tenantId}; remove it first or pick another name`);
  }
}
