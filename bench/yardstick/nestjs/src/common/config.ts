/** Settings from YARDSTICK_* environment variables (the bench script sets them). */

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set`);
  }
  return value;
}

export const config = {
  apiDatabaseUrl: () => required('YARDSTICK_API_DATABASE_URL'),
  workflowsDatabaseUrl: () => required('YARDSTICK_WORKFLOWS_DATABASE_URL'),
  natsUrl: () => required('YARDSTICK_NATS_URL'),
  httpPort: () => Number(process.env.YARDSTICK_HTTP_PORT ?? 3000),
  jwtPublicKeyFile: () => required('YARDSTICK_JWT_PUBLIC_KEY_FILE'),
  jwtIssuer: () => process.env.YARDSTICK_JWT_ISSUER ?? 'fieldsync',
  jwtAudience: () => process.env.YARDSTICK_JWT_AUDIENCE ?? 'fieldsync',
  // fieldsync's pool: 10 connections plus 10 overflow.
  dbPoolSize: () => Number(process.env.YARDSTICK_DB_POOL_SIZE ?? 20),
};
