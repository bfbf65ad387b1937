import {
  DynamicModule,
  Global,
  Inject,
  Injectable,
  Logger,
  Module,
  OnApplicationShutdown,
} from '@nestjs/common';
import pg from 'pg';

export const PG_POOL = Symbol('PG_POOL');
export const InjectPool = () => Inject(PG_POOL);

export interface DatabaseOptions {
  url: string;
  /** DDL run once at start-up (idempotent: CREATE ... IF NOT EXISTS). */
  schema: string;
  poolSize: number;
  applicationName: string;
}

@Injectable()
class PoolCloser implements OnApplicationShutdown {
  constructor(@InjectPool() private readonly pool: pg.Pool) {}

  async onApplicationShutdown(): Promise<void> {
    await this.pool.end();
  }
}

@Global()
@Module({})
export class DatabaseModule {
  static forRoot(options: DatabaseOptions): DynamicModule {
    return {
      module: DatabaseModule,
      providers: [
        {
          provide: PG_POOL,
          useFactory: async (): Promise<pg.Pool> => {
            const pool = new pg.Pool({
              connectionString: options.url,
              max: options.poolSize,
              application_name: options.applicationName,
            });
            // An idle client's connection can fail (a server restart, a terminated
            // backend); without a listener that error would crash the process.
            pool.on('error', (error) =>
              new Logger(DatabaseModule.name).warn(`idle database client failed: ${error}`),
            );
            await pool.query(options.schema);
            return pool;
          },
        },
        PoolCloser,
      ],
      exports: [PG_POOL],
    };
  }
}

/** Run `work` in one transaction on a pooled connection: commit, or roll back and rethrow. */
export async function transaction<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

export function isUniqueViolation(error: unknown): boolean {
  return error instanceof pg.DatabaseError && error.code === '23505';
}
