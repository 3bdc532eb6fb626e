/**
 * Every error the product throws on purpose, in one file. A thrown error's `name` is stable: the HTTP layer
 * maps it to a status code, and Step Functions matches it in `ErrorEquals`, so renaming one is a breaking change.
 */
export class ProvisionerError extends Error {
  /** HTTP status when the error reaches the API; 500 hides the message. */
  readonly statusCode: number = 500;
  /** A stable machine-readable code for API clients. */
  readonly code: string = 'internal_error';
}

export interface ErrorDetail {
  readonly path: string;
  readonly message: string;
}

/** Input refused: the body, a parameter or a header. */
export class ValidationError extends ProvisionerError {
  override readonly name = 'ValidationError';
  override readonly statusCode = 400;
  override readonly code = 'invalid_request';
  readonly details: readonly ErrorDetail[];

  constructor(message: string, details: readonly ErrorDetail[] = []) {
    super(message);
    this.details = details;
  }
}

export class UnauthorizedError extends ProvisionerError {
  override readonly name = 'UnauthorizedError';
  override readonly statusCode = 401;
  override readonly code = 'unauthorized';
}

export class ForbiddenError extends ProvisionerError {
  override readonly name = 'ForbiddenError';
  override readonly statusCode = 403;
  override readonly code = 'forbidden';
}

export class NotFoundError extends ProvisionerError {
  override readonly name = 'NotFoundError';
  override readonly statusCode = 404;
  override readonly code = 'not_found';
}

/** The slug belongs to another tenant; carries free alternatives. */
export class SlugTakenError extends ProvisionerError {
  override readonly name = 'SlugTakenError';
  override readonly statusCode = 409;
  override readonly code = 'slug_taken';
  readonly suggestions: readonly string[];

  constructor(slug: string, suggestions: readonly string[]) {
    super(`The slug "${slug}" is taken`);
    this.suggestions = suggestions;
  }
}

/** The tenant is not in a status that allows the operation. */
export class TenantStateError extends ProvisionerError {
  override readonly name = 'TenantStateError';
  override readonly statusCode = 409;
  override readonly code = 'invalid_state';
}

/** An `Idempotency-Key` reused with another request. */
export class IdempotencyKeyReusedError extends ProvisionerError {
  override readonly name = 'IdempotencyKeyReusedError';
  override readonly statusCode = 422;
  override readonly code = 'idempotency_key_reused';
}

/** A request with the same `Idempotency-Key` is still being answered. */
export class IdempotencyKeyInProgressError extends ProvisionerError {
  override readonly name = 'IdempotencyKeyInProgressError';
  override readonly statusCode = 409;
  override readonly code = 'idempotency_key_in_progress';
}

/** A service the API depends on failed; the request was undone and may be retried. The message is shown. */
export class ServiceUnavailableError extends ProvisionerError {
  override readonly name = 'ServiceUnavailableError';
  override readonly statusCode = 503;
  override readonly code = 'service_unavailable';
}

/**
 * The tenant's own sessions hold a lock the control plane waited for longer than its lock timeout (a tenant may lock
 * its tables): nothing was changed; retry when the tenant's work has ended.
 */
export class TenantDatabaseBusyError extends ProvisionerError {
  override readonly name = 'TenantDatabaseBusyError';
  override readonly statusCode = 409;
  override readonly code = 'tenant_database_busy';
}

/** A tenant database lacks a table or index its template promises (the validate step). */
export class SchemaValidationError extends ProvisionerError {
  override readonly name = 'SchemaValidationError';
}

/** A function's environment is missing or malformed: a deployment fault, raised at cold start. */
export class ConfigurationError extends ProvisionerError {
  override readonly name = 'ConfigurationError';
}

/** Another lifecycle operation runs for the tenant; retry when it has ended. */
export class OperationInProgressError extends ProvisionerError {
  override readonly name = 'OperationInProgressError';
  override readonly statusCode = 409;
  override readonly code = 'operation_in_progress';
}

/**
 * A plan change the tenant's current usage or features would exceed (a downgrade below what it uses):
 * `details` names each limit or feature and what exceeds it. Also what the change-plan run fails with when
 * usage grew between the request and the run.
 */
export class PlanChangeRefusedError extends ProvisionerError {
  override readonly name = 'PlanChangeRefusedError';
  override readonly statusCode = 409;
  override readonly code = 'plan_change_refused';
  readonly details: readonly ErrorDetail[];

  constructor(message: string, details: readonly ErrorDetail[]) {
    super(message);
    this.details = details;
  }
}

/** A restored database does not match its backup's manifest (row counts or checksums); the restore is undone. */
export class BackupVerificationError extends ProvisionerError {
  override readonly name = 'BackupVerificationError';
}

/** A backup's objects are missing or malformed (no manifest, a checksum that does not match its data). */
export class BackupCorruptError extends ProvisionerError {
  override readonly name = 'BackupCorruptError';
}

/**
 * A deleted tenant's object is over CopyObject's 5 GB: it cannot be rewritten to count its retention from the
 * deletion (the message names it and what to do).
 */
export class ObjectTooLargeToRetainError extends ProvisionerError {
  override readonly name = 'ObjectTooLargeToRetainError';
}

/** A fleet migration runs already; one runs at a time (the message names it). */
export class MigrationInProgressError extends ProvisionerError {
  override readonly name = 'MigrationInProgressError';
  override readonly statusCode = 409;
  override readonly code = 'migration_in_progress';
}
