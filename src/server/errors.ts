/**
 * Every error the API answers with: a stable code, its HTTP status, and a message a person
 * can act on. Routes throw these; the error handler turns anything else into INTERNAL
 * (logged with the request id) so no stack or SQL ever reaches a client.
 */

export interface ErrorDetail {
  /** Where in the request, e.g. `body.rules[3].services[0].port`. */
  readonly path: string;
  readonly message: string;
}

export class ApiError extends Error {
  constructor(
    readonly code: string,
    readonly statusCode: number,
    message: string,
    readonly details: readonly ErrorDetail[] = [],
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const errors = {
  unauthenticated: () =>
    new ApiError(
      'UNAUTHENTICATED',
      401,
      'a valid credential is required: send "Authorization: Bearer <API key>"',
    ),
  forbidden: (what: string) => new ApiError('FORBIDDEN', 403, `your role may not ${what}`),
  notFound: (kind: string, name: string) =>
    new ApiError('NOT_FOUND', 404, `${kind} "${name}" does not exist`),
  routeNotFound: (method: string, url: string) =>
    new ApiError(
      'ROUTE_NOT_FOUND',
      404,
      `no API route ${method} ${url} (see /api/v1/openapi.json)`,
    ),
  validation: (details: readonly ErrorDetail[]) =>
    new ApiError(
      'VALIDATION_FAILED',
      400,
      details.length === 1
        ? `${details[0]!.path}: ${details[0]!.message}`
        : `${details.length} problems in the request: ${details.map((d) => `${d.path}: ${d.message}`).join('; ')}`,
      details,
    ),
  badRequest: (message: string) => new ApiError('BAD_REQUEST', 400, message),
  conflict: (message: string) => new ApiError('CONFLICT', 409, message),
  invalidPolicy: (details: readonly ErrorDetail[]) =>
    new ApiError(
      'POLICY_INVALID',
      422,
      `the policy would not be valid: ${details.map((d) => `${d.path ? `${d.path}: ` : ''}${d.message}`).join('; ')}`,
      details,
    ),
  bodyTooLarge: (limit: number) =>
    new ApiError('BODY_TOO_LARGE', 413, `the request body is larger than ${limit} bytes`),
  unsupportedMediaType: (type: string) =>
    new ApiError(
      'UNSUPPORTED_MEDIA_TYPE',
      415,
      `content type "${type}" is not accepted here (send application/json)`,
    ),
  gone: (message: string) => new ApiError('GONE', 410, message),
  activationCodeInvalid: () =>
    new ApiError(
      'ACTIVATION_CODE_INVALID',
      401,
      'the activation code is not valid: ask an administrator for a new one (POST /api/v1/pairing-profiles/{id}/activation-codes)',
    ),
  activationCodeRevoked: (prefix: string) =>
    new ApiError(
      'ACTIVATION_CODE_REVOKED',
      401,
      `activation code ${prefix}... has been revoked: ask an administrator for a new one`,
    ),
  activationCodeExpired: (prefix: string, at: string) =>
    new ApiError(
      'ACTIVATION_CODE_EXPIRED',
      401,
      `activation code ${prefix}... expired at ${at}: ask an administrator for a new one`,
    ),
  activationCodeUsedUp: (prefix: string, maxUses: number) =>
    new ApiError(
      'ACTIVATION_CODE_USED_UP',
      401,
      `activation code ${prefix}... has already been used ${maxUses} time(s), its limit: ask an administrator for a new one`,
    ),
  internal: (requestId: string) =>
    new ApiError(
      'INTERNAL',
      500,
      `the server failed to handle this request; quote request id ${requestId} to an operator`,
    ),
} as const;
