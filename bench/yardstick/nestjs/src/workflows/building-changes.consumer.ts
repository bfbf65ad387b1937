import { Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { AckPolicy, jetstream, type ConsumerMessages } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { CHANGES_STREAM, ensureChangesStream, type Change } from '../common/changes.js';
import { InjectNats } from '../common/nats.module.js';
import { WorkflowsService } from './workflows.service.js';

const DURABLE = 'yardstick-workflows-buildings';
const ACK_WAIT_NANOS = 30 * 1_000_000_000;

/**
 * Follows the api's building changes: an upsert gives the building its default workflow
 * through the same idempotent create (a no-op when the request path already did it).
 */
@Injectable()
export class BuildingChangesConsumer implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(BuildingChangesConsumer.name);
  private messages: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;

  constructor(
    @InjectNats() private readonly nats: NatsConnection,
    private readonly workflows: WorkflowsService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const manager = await ensureChangesStream(this.nats);
    await manager.consumers.add(CHANGES_STREAM, {
      durable_name: DURABLE,
      filter_subject: 'yardstick.changes.*.buildings',
      ack_policy: AckPolicy.Explicit,
      ack_wait: ACK_WAIT_NANOS,
    });
    const consumer = await jetstream(this.nats).consumers.get(CHANGES_STREAM, DURABLE);
    this.messages = await consumer.consume({ max_messages: 64 });
    this.loop = this.follow(this.messages);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.messages?.close();
    await this.loop;
  }

  private async follow(messages: ConsumerMessages): Promise<void> {
    for await (const message of messages) {
      try {
        const change = message.json<Change>();
        if (change.op === 'upsert') {
          await this.workflows.ensureDefault(change.organization_id, change.id);
        }
        message.ack();
      } catch (error) {
        this.logger.warn(`building change failed; retrying later: ${String(error)}`);
        message.nak(Math.min(2 ** message.info.deliveryCount, 60) * 1000);
      }
    }
  }
}
