import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnApplicationShutdown,
} from '@nestjs/common';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { ensureChangesStream } from './changes.js';
import { InjectPool } from './database.module.js';
import { InjectNats } from './nats.module.js';

export const OUTBOX_RELAY_NAME = Symbol('OUTBOX_RELAY_NAME');

const BATCH_SIZE = 256;
const IDLE_MS = 100;
const STANDBY_MS = 2000;

interface OutboxRow {
  id: string;
  subject: string;
  payload: string;
}

/**
 * Publishes the outbox to JetStream in id order, `Nats-Msg-Id` = relay:row id, then marks the
 * rows published. One leader per database (a session advisory lock); others stand by.
 */
@Injectable()
export class OutboxRelay implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(OutboxRelay.name);
  private js: JetStreamClient;
  private running = true;
  private loop: Promise<void> | undefined;
  private readonly lockKey: string;

  constructor(
    @InjectPool() private readonly pool: pg.Pool,
    @InjectNats() private readonly nats: NatsConnection,
    @Inject(OUTBOX_RELAY_NAME) private readonly name: string,
  ) {
    this.lockKey = createHash('sha256')
      .update(`outbox:${name}`)
      .digest()
      .readBigInt64BE(0)
      .toString();
  }

  async onApplicationBootstrap(): Promise<void> {
    await ensureChangesStream(this.nats);
    this.js = jetstream(this.nats);
    this.loop = this.run();
  }

  async onApplicationShutdown(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  private async run(): Promise<void> {
    while (this.running) {
      const lock = await this.pool.connect();
      try {
        const { rows } = await lock.query<{ locked: boolean }>(
          'SELECT pg_try_advisory_lock($1) AS locked',
          [this.lockKey],
        );
        if (rows[0].locked) {
          try {
            await this.lead();
          } finally {
            await lock.query('SELECT pg_advisory_unlock($1)', [this.lockKey]);
          }
        }
      } catch (error) {
        this.logger.warn(`outbox relay failed; retrying: ${String(error)}`);
      } finally {
        lock.release();
      }
      if (this.running) {
        await sleep(STANDBY_MS);
      }
    }
  }

  private async lead(): Promise<void> {
    while (this.running) {
      const published = await this.publishPending();
      if (published < BATCH_SIZE) {
        await sleep(IDLE_MS);
      }
    }
  }

  async publishPending(): Promise<number> {
    const { rows } = await this.pool.query<OutboxRow>(
      'SELECT id, subject, payload FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1',
      [BATCH_SIZE],
    );
    // One at a time, in order: the stream keeps each record's changes in commit order.
    // Row ids are per database, so the message id names the relay too (the stream dedupes).
    for (const row of rows) {
      await this.js.publish(row.subject, row.payload, { msgID: `${this.name}:${row.id}` });
    }
    if (rows.length > 0) {
      await this.pool.query('UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])', [
        rows.map((row) => row.id),
      ]);
    }
    return rows.length;
  }
}
