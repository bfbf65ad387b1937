import type { PoolClient } from 'pg';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';

/** The yardstick's change stream; its own subjects, so fieldsync's consumers never see it. */
export const CHANGES_STREAM = 'YARDSTICK_CHANGES';
export const CHANGES_SUBJECTS = 'yardstick.changes.>';
const DUPLICATE_WINDOW_NANOS = 600 * 1_000_000_000;

export type ChangeOp = 'upsert' | 'delete';

/** One committed change, the same fields fieldsync's `Change` carries. */
export interface Change {
  collection: string;
  id: string;
  organization_id: string;
  op: ChangeOp;
  data: Record<string, unknown> | null;
  version: number;
  building_id: string | null;
  occurred_at: string;
}

export function changeSubject(organizationId: string, collection: string): string {
  return `yardstick.changes.${organizationId}.${collection}`;
}

/** Queue changes in the caller's transaction (one INSERT for all of them). */
export async function appendChanges(client: PoolClient, changes: Change[]): Promise<void> {
  if (changes.length === 0) {
    return;
  }
  await client.query(
    'INSERT INTO outbox (subject, payload) SELECT * FROM unnest($1::text[], $2::text[])',
    [
      changes.map((change) => changeSubject(change.organization_id, change.collection)),
      changes.map((change) => JSON.stringify(change)),
    ],
  );
}

export async function ensureChangesStream(connection: NatsConnection): Promise<JetStreamManager> {
  const manager = await jetstreamManager(connection);
  try {
    await manager.streams.info(CHANGES_STREAM);
  } catch {
    await manager.streams.add({
      name: CHANGES_STREAM,
      subjects: [CHANGES_SUBJECTS],
      duplicate_window: DUPLICATE_WINDOW_NANOS,
    });
  }
  return manager;
}

export const OUTBOX_DDL = `
CREATE TABLE IF NOT EXISTS outbox (
  id bigserial PRIMARY KEY,
  subject text NOT NULL,
  payload text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  published_at timestamptz
);
CREATE INDEX IF NOT EXISTS ix_outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
`;
